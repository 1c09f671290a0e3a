"""Access rights: KVM's permission bitmap, the PKRU mask, and the SDM's rule.

After a walk has reached a leaf, the rights of all the entries on the path
are ANDed into one ACC value (EXEC, WRITE, USER; see
:class:`~refimpl.guest.formats.ACC`). Whether an access with a given error code may
use a page with given rights depends on CR0.WP, CR4.SMEP, CR4.SMAP, EFER.NXE
and RFLAGS.AC. KVM does not decide this with ``if`` statements on every
fault: when the paging mode changes it precomputes a 16-entry table,
``permissions[16]``, indexed by the error code's W, U, F bits and a fourth
bit that says "SMAP does not apply". Bit ``acc`` of an entry says whether an
access of that kind faults on a page with rights ``acc``.

This module builds that table (:func:`update_permission_bitmask`), the
protection-key table (:func:`update_pkru_bitmask`), and the check that uses
both (:func:`permission_fault`). Beside them, :func:`direct_permission_rule`
states the same decision straight from the SDM's prose, with no tables, so a
chapter (and ``tests/guest/test_permissions.py``) can show the two agree on every
input.

Glossary
--------
pfec
    Page-fault error code; here the access being checked (W, U, F bits).
not-SMAP bit
    Bit 3 of the pfec (RSVD in a real error code, never set in an access);
    KVM borrows it to say "RFLAGS.AC exempts this access from SMAP".
kf
    Faults of a supervisor access to a user page (SMEP for fetches, SMAP for
    data accesses).
"""

from __future__ import annotations

from refimpl.errors import check_bool, check_int, check_range

from refimpl.guest.formats import ACC, PFERR

#: The bits of an access that index the permission table.
PFEC_INDEX_MASK = int(PFERR.W | PFERR.U | PFERR.F)

# Plain ints for the check that runs on every walk (IntFlag arithmetic is slow).
_P, _RSVD, _PK, _IMPLICIT = int(PFERR.P), int(PFERR.RSVD), int(PFERR.PK), int(PFERR.IMPLICIT)
_ACC_USER = int(ACC.USER)


def byte_mask(acc_bit: int) -> int:
    """The set of ACC values (0..7) that contain ``acc_bit``, as a byte.

    KVM
    ---
    ``arch/x86/kvm/mmu/mmu.c`` (``BYTE_MASK``).
    """
    acc_bit = check_int("acc_bit", acc_bit)
    return sum(1 << acc for acc in range(8) if acc & acc_bit)


def update_permission_bitmask(
    *, cr0_wp: bool, cr4_smep: bool, cr4_smap: bool, efer_nx: bool, ept: bool = False
) -> tuple[int, ...]:
    """The 16-entry permission-fault table of one paging mode.

    Entry ``i`` covers the access whose error code is ``i << 1`` (bit 0 W,
    bit 1 U, bit 2 not-SMAP, bit 3 F). Bit ``acc`` of the entry is 1 when
    that access faults on a page whose accumulated rights are ``acc``.

    Parameters
    ----------
    cr0_wp, cr4_smep, cr4_smap, efer_nx : bool
        The control bits that shape the table (ignored for EPT).
    ept : bool
        Build the EPT table: only "write needs W", "read needs R" (carried
        as ACC.USER and the U bit of the access) and "fetch needs X".

    Returns
    -------
    tuple of int
        Sixteen bytes.

    KVM
    ---
    ``arch/x86/kvm/mmu/mmu.c``: ``update_permission_bitmask``.
    """
    cr0_wp, cr4_smep = check_bool("cr0_wp", cr0_wp), check_bool("cr4_smep", cr4_smep)
    cr4_smap, efer_nx = check_bool("cr4_smap", cr4_smap), check_bool("efer_nx", efer_nx)
    ept = check_bool("ept", ept)
    x = byte_mask(ACC.EXEC)
    w = byte_mask(ACC.WRITE)
    u = byte_mask(ACC.USER)
    table = []
    for index in range(16):
        pfec = index << 1
        write = bool(pfec & PFERR.W)
        user = bool(pfec & PFERR.U)
        fetch = bool(pfec & PFERR.F)
        not_smap = bool(pfec & PFERR.RSVD)

        wf = ~w & 0xFF if write else 0  # writes to read-only pages
        uf = ~u & 0xFF if user else 0  # user accesses to supervisor pages
        ff = ~x & 0xFF if fetch else 0  # fetches from no-execute pages
        smepf = 0  # supervisor fetches from user pages
        smapf = 0  # supervisor data accesses to user pages
        if not ept:
            kf = 0 if user else u  # supervisor access to a user page
            if not efer_nx:
                ff = 0  # no NX: every page is executable
            if not cr0_wp:
                wf = wf if user else 0  # WP=0 lets supervisor writes through
            if cr4_smep:
                smepf = kf if fetch else 0
            if cr4_smap:
                smapf = 0 if (not_smap or fetch) else kf
        table.append(wf | uf | ff | smepf | smapf)
    return tuple(table)


def update_pkru_bitmask(*, cr4_pke: bool, cr0_wp: bool) -> int:
    """The protection-key table: which PKRU bits apply to which access.

    For each even offset ``pfec`` (W, U, F as in an error code, and bit 3
    standing for "the page is a user page"), bits ``pfec`` and ``pfec + 1``
    of the result say whether PKRU.AD and PKRU.WD of the page's key apply.

    Parameters
    ----------
    cr4_pke : bool
        CR4.PKE in long mode (KVM sets its ``cr4_pke`` role bit only with
        EFER.LMA). Without it the mask is 0 and keys are never checked.
    cr0_wp : bool
        WD stops supervisor writes only when CR0.WP=1.

    Returns
    -------
    int
        A 32-bit mask (KVM's ``pkru_mask``).

    KVM
    ---
    ``arch/x86/kvm/mmu/mmu.c``: ``update_pkru_bitmask``.
    """
    cr4_pke, cr0_wp = check_bool("cr4_pke", cr4_pke), check_bool("cr0_wp", cr0_wp)
    if not cr4_pke:
        return 0
    mask = 0
    for index in range(16):
        pfec = index << 1
        fetch = bool(pfec & PFERR.F)
        user = bool(pfec & PFERR.U)
        write = bool(pfec & PFERR.W)
        pte_user = bool(pfec & PFERR.RSVD)  # bit 3 reused for the page's U
        # Keys guard data accesses to user pages only.
        check_pkey = not fetch and pte_user
        # WD guards writes: always in user mode, in supervisor mode if WP=1.
        check_write = check_pkey and write and (user or cr0_wp)
        pkey_bits = int(check_pkey) | (int(check_write) << 1)
        mask |= pkey_bits << pfec
    return mask


def permission_fault(
    permissions: tuple[int, ...],
    pkru_mask: int,
    *,
    pte_access: int,
    pte_pkey: int,
    access: int,
    rflags_ac: bool,
    pkru: int,
) -> int:
    """Whether an access faults on a page, and with which error-code bits.

    Parameters
    ----------
    permissions : tuple of int
        The table from :func:`update_permission_bitmask`.
    pkru_mask : int
        The table from :func:`update_pkru_bitmask`.
    pte_access : int
        The page's ACC rights, ANDed over the walk.
    pte_pkey : int
        The leaf's protection key.
    access : int
        W, U, F and IMPLICIT bits of the access.
    rflags_ac : bool
        RFLAGS.AC.
    pkru : int
        The PKRU register.

    Returns
    -------
    int
        0 (allowed), ``P`` (rights fault) or ``P | PK`` (protection key).

    Raises
    ------
    TypeError, ValueError
        ``permissions`` not a 16-entry tuple of bytes; ``pte_access`` not in
        ``[0, 8)``, ``pte_pkey`` not in ``[0, 16)``, ``pkru`` or
        ``pkru_mask`` not in ``[0, 2**32)``, ``rflags_ac`` not a bool.

    KVM
    ---
    ``arch/x86/kvm/mmu.h``: ``permission_fault``. The not-SMAP bit is set
    when RFLAGS.AC is set and the access is not implicit; it goes where RSVD
    sits in an error code, which an access never has.
    """
    if type(permissions) is not tuple or len(permissions) != 16:
        raise TypeError("permissions must be the 16-byte tuple of update_permission_bitmask")
    pkru_mask = check_range("pkru_mask", pkru_mask, 0, 1 << 32)
    pte_access = check_range("pte_access", pte_access, 0, 8)
    pte_pkey = check_range("pte_pkey", pte_pkey, 0, 16)
    access = check_range("access", access, 0, 1 << 64)
    pkru = check_range("pkru", pkru, 0, 1 << 32)
    rflags_ac = check_bool("rflags_ac", rflags_ac)
    return _permission_fault(permissions, pkru_mask, pte_access, pte_pkey, access, rflags_ac,
                             pkru)


def _permission_fault(
    permissions: tuple[int, ...], pkru_mask: int, pte_access: int, pte_pkey: int, access: int,
    rflags_ac: bool, pkru: int,
) -> int:
    """:func:`permission_fault` for arguments the walker has already checked."""
    pfec = access & PFEC_INDEX_MASK
    not_smap = rflags_ac and not access & _IMPLICIT
    index = (pfec | (_RSVD if not_smap else 0)) >> 1
    fault = (permissions[index] >> pte_access) & 1
    errcode = _P
    if pkru_mask:
        pkru_bits = (pkru >> (pte_pkey * 2)) & 3
        # Offset: the access's W/U/F, with bit 3 saying "user page".
        offset = pfec | (_RSVD if pte_access & _ACC_USER else 0)
        pkru_bits &= pkru_mask >> offset
        if pkru_bits:
            errcode |= _PK
            fault = 1
    return errcode if fault else 0


def direct_permission_rule(
    *,
    write: bool,
    user: bool,
    fetch: bool,
    implicit: bool,
    page_user: bool,
    page_writable: bool,
    page_executable: bool,
    cr0_wp: bool,
    cr4_smep: bool,
    cr4_smap: bool,
    efer_nx: bool,
    rflags_ac: bool,
    cr4_pke: bool = False,
    pkru_ad: bool = False,
    pkru_wd: bool = False,
) -> int:
    """The SDM's access-rights rules, written out with no tables.

    The page's rights are those of all entries on the walk combined: it is a
    user page only if every entry has U/S=1, writable only if every entry has
    R/W=1, executable only if no entry has XD=1.

    Parameters
    ----------
    write, user, fetch, implicit : bool
        The access: a data write, in user mode, an instruction fetch, an
        implicit supervisor access (e.g. a descriptor-table read).
    page_user, page_writable, page_executable : bool
        The page's combined rights.
    cr0_wp, cr4_smep, cr4_smap, efer_nx, rflags_ac : bool
        The control bits.
    cr4_pke, pkru_ad, pkru_wd : bool
        Protection keys enabled (in long mode), and the AD and WD bits of
        the page's key in PKRU.

    Returns
    -------
    int
        0, ``P`` or ``P | PK``, like :func:`permission_fault`.

    KVM
    ---
    None: this is Intel SDM Vol. 3A, 4.6 "Access Rights" and 4.6.2
    "Protection Keys", restated. ``tests/guest/test_permissions.py`` checks it
    against ``update_permission_bitmask`` / ``permission_fault`` from
    ``arch/x86/kvm/mmu/mmu.c`` and ``mmu.h``.
    """
    faults = []
    if user:
        # A user-mode access needs a user page (U/S=1 at every level), ...
        faults.append(not page_user)
        # ... R/W=1 to write (CR0.WP plays no part in user mode), ...
        faults.append(write and not page_writable)
    else:
        # A supervisor write to a read-only page faults only if CR0.WP=1.
        faults.append(write and cr0_wp and not page_writable)
        # SMEP: no supervisor instruction fetch from a user page.
        faults.append(fetch and cr4_smep and page_user)
        # SMAP: no supervisor data access to a user page, unless RFLAGS.AC=1
        # and the access is explicit.
        faults.append(
            not fetch and cr4_smap and page_user and (implicit or not rflags_ac)
        )
    # In either mode, with EFER.NXE=1 a fetch needs XD=0 at every level.
    faults.append(fetch and efer_nx and not page_executable)
    rights_fault = any(faults)

    pk_fault = False
    if cr4_pke and page_user and not fetch:
        if pkru_ad:
            pk_fault = True
        elif write and pkru_wd and (user or cr0_wp):
            pk_fault = True

    if pk_fault:
        return int(PFERR.P | PFERR.PK)
    return int(PFERR.P) if rights_fault else 0
