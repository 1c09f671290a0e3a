"""Walks of the second-level tables an L1 hypervisor builds: EPT and NPT.

When L1 runs L2 with EPT (Intel) or NPT (AMD), every L2 guest-physical
address goes through L1's tables to become an L1 guest-physical address. KVM
walks those tables in software with the same ``walk_addr_generic``
(``PTTYPE_EPT`` for EPT; the 64-bit or 32-bit copy for NPT), so here they are
:func:`refimpl.guest.walker.walk_addr_generic` with a different
:class:`~refimpl.guest.walker.WalkContext`.

EPT failures come in two kinds. An *EPT violation* means the entry is not
present or its rights (R, W, X ANDed over the walk) do not allow the access;
an *EPT misconfiguration* means an entry is malformed (reserved bits, write
without read, execute-only where unsupported, a bad memory type). KVM tells
them apart by the RSVD bit of the walker's error code.

NPT tables are ordinary long-mode (or PAE / 32-bit) page tables, walked as
*user* accesses: a page must be U=1 at every level.

Glossary
--------
EPTP
    The EPT pointer: root table address, walk length, A/D enable.
exit qualification
    What a VM exit tells L1 about an EPT violation: the kind of access, the
    R/W/X the walk found, and whether a guest linear address was involved.
nCR3
    The NPT root (``nested_cr3`` in the VMCB).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from refimpl.errors import check_instance
from refimpl.guest.cpu import CpuState, PagingMode
from refimpl.guest.faults import WalkError
from refimpl.guest.formats import CR0, CR4, EPT_EXIT_QUAL, EPTP, PFERR, PTTYPE_EPT
from refimpl.guest.memory import GuestMemory, check_int
from refimpl.guest.permissions import update_permission_bitmask
from refimpl.guest.rsvd import MAX_MAXPHYADDR, MIN_MAXPHYADDR, reset_rsvds_bits_mask_ept
from refimpl.guest.walker import (
    ACCESS_FETCH,
    ACCESS_WRITE,
    TranslateResult,
    Walk,
    WalkContext,
    _load_pdptrs,
    _result_from_walk,
    _root_table,
    _walk_addr_generic,
    _walk_context_of,
    check_access,
)

#: EPTP memory types the model accepts: uncacheable and write-back.
EPTP_MEMORY_TYPES = (0, 6)
#: EPTP walk lengths (levels minus one): four and five levels.
EPTP_WALK_LENGTHS = (3, 4)


class EptFaultKind(StrEnum):
    """The two ways an EPT walk fails; each equals its string.

    KVM
    ---
    ``arch/x86/kvm/mmu/paging_tmpl.h``: the RSVD bit of the walker's error
    code tells a misconfiguration (``EXIT_REASON_EPT_MISCONFIG``) from a
    violation (``EXIT_REASON_EPT_VIOLATION``), which
    ``nested_ept_inject_page_fault`` in ``arch/x86/kvm/vmx/nested.c``
    reflects to L1.
    """

    #: Not present, or the rights ANDed over the walk deny the access.
    VIOLATION = "violation"
    #: A malformed entry: reserved bits, write without read, execute-only
    #: where unsupported, a bad memory type.
    MISCONFIG = "misconfig"


@dataclass(frozen=True)
class EptFault:
    """Why an EPT walk failed.

    Parameters
    ----------
    kind : EptFaultKind
        ``"violation"`` or ``"misconfig"`` (a ``str`` enum, equal to those
        strings).
    level : int
        Level of the entry where the walk stopped.
    error_code : int
        KVM's walker error code: ``P|RSVD`` for a misconfiguration, ``P``
        for a rights violation, 0 for not present; plus the access's W and
        U (a read) bits. Never F: the walker adds F only when its role has
        EFER.NX or CR4.SMEP, and the EPT role has neither.
    ept_rwx : int
        R, W, X (bits 0-2) of the entries ANDed along the walk up to and
        including the one that failed (7 if the root table itself could not
        be read): bits 5:3 of the exit qualification.
    reason : WalkError
        NOT_PRESENT, NO_MEMSLOT, RSVD or PERMISSION.
    access : int or None
        The error code the walk was given (W, U, F): what the exit
        qualification's access bits are built from. None when the fault
        was built from an error code alone, which then stands for it.

    KVM
    ---
    ``arch/x86/kvm/mmu/paging_tmpl.h`` (the ``PTTYPE_EPT`` part of the
    ``error:`` path of ``FNAME(walk_addr_generic)``: ``errcode |=
    write_fault | user_fault``, and ``PFERR_FETCH_MASK`` only if
    ``is_efer_nx || is_cr4_smep`` of the walker's role, which
    ``kvm_calc_shadow_ept_root_page_role`` in ``mmu.c`` leaves clear).
    """

    kind: EptFaultKind
    level: int
    error_code: int
    ept_rwx: int
    reason: WalkError
    access: int | None = None


def ept_fault_from_walk(walk: Walk, pfec: int) -> EptFault:
    """The :class:`EptFault` of a failed EPT walk made with error code ``pfec``.

    Raises
    ------
    TypeError, ValueError
        ``walk`` is not a failed :class:`~refimpl.guest.walker.Walk`.

    KVM
    ---
    ``arch/x86/kvm/mmu/paging_tmpl.h`` (the ``error:`` path of
    ``FNAME(walk_addr_generic)`` for ``PTTYPE_EPT``).
    """
    check_instance("walk", walk, Walk)
    if walk.error is None:
        raise ValueError("walk: the walk succeeded, there is no fault")
    return _ept_fault(walk, check_int("pfec", pfec))


def _ept_fault(walk: Walk, pfec: int) -> EptFault:
    kind = EptFaultKind.MISCONFIG if walk.error is WalkError.RSVD else EptFaultKind.VIOLATION
    # The error: path ORs W and U from the access; F would need EFER.NX or
    # CR4.SMEP in the walker's role, which the EPT role never has.
    code = walk.errcode | (pfec & _EPT_ERRCODE_ACCESS)
    return EptFault(kind, walk.level, code, walk.pte_access & 7, walk.error, pfec)


#: The access bits the EPT walker's error path copies into its error code.
_EPT_ERRCODE_ACCESS = int(PFERR.W | PFERR.U)


@dataclass(frozen=True)
class EptResult:
    """The result of :func:`ept_translate`.

    Parameters
    ----------
    gpa : int or None
        The address reached (L1 guest-physical), or None on a fault.
    fault : EptFault or None
    level : int or None
        Level of the leaf (or of the entry where the walk stopped).
    trace : tuple of (level, entry gpa, entry value)
        The entries read, top down.
    """

    gpa: int | None
    fault: EptFault | None
    level: int | None
    trace: tuple[tuple[int, int, int], ...] = ()


def _check_flag(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {value!r}")


def _check_maxphyaddr(maxphyaddr: object) -> int:
    m = check_int("maxphyaddr", maxphyaddr)
    if not MIN_MAXPHYADDR <= m <= MAX_MAXPHYADDR:
        raise ValueError(
            f"maxphyaddr must be in [{MIN_MAXPHYADDR}, {MAX_MAXPHYADDR}], got {m}"
        )
    return m


@lru_cache(maxsize=64)
def ept_walk_context(walk_levels: int, ad: bool, maxphyaddr: int, execute_only: bool) -> WalkContext:
    """The walk context for an EPT hierarchy.

    KVM
    ---
    ``arch/x86/kvm/mmu/mmu.c``: ``kvm_init_shadow_ept_mmu`` (permission
    bitmap with ``ept=true``, no PKU, EPT reserved bits with the guest's
    MAXPHYADDR and 1 GiB pages allowed).
    """
    return WalkContext(
        fmt=PTTYPE_EPT,
        root_level=walk_levels,
        rsvd=reset_rsvds_bits_mask_ept(maxphyaddr=maxphyaddr, execonly=execute_only),
        permissions=update_permission_bitmask(
            cr0_wp=True, cr4_smep=False, cr4_smap=False, efer_nx=True, ept=True
        ),
        pkru_mask=0,
        have_ad=ad,
    )


def ept_access_pfec(access: int) -> int:
    """The error code KVM's EPT walker is given for an access.

    A read carries U (for EPT, ACC_USER stands for "readable"), a write W,
    a fetch F: the bits KVM derives from the hardware exit qualification.

    KVM
    ---
    ``arch/x86/kvm/vmx/vmx.c`` (``handle_ept_violation``).
    """
    access = check_int("access", access)
    pfec = access & (PFERR.W | PFERR.F)
    if not pfec:
        pfec = PFERR.U
    return int(pfec)


def ept_translate(
    mem: GuestMemory,
    eptp: int,
    gpa: int,
    access: int = 0,
    *,
    maxphyaddr: int = 52,
    execute_only: bool = True,
) -> EptResult:
    """Translate an L2 guest-physical address through an EPT hierarchy.

    Parameters
    ----------
    mem : GuestMemory
        Holds the EPT tables; A/D bits are written here.
    eptp : int
        The EPT pointer: bits 2:0 memory type (0 or 6), bits 5:3 walk
        length minus one (3 or 4), bit 6 A/D enable, bits 51:12 the root.
    gpa : int
        The address to translate, in ``[0, 2**52)``. Bits above the walk's
        reach (47 or 56) are not used, as in KVM's index computation.
    access : int
        ``ACCESS_WRITE`` and/or ``ACCESS_FETCH``; 0 is a read.
    maxphyaddr : int
        MAXPHYADDR of the L1 address space (reserved address bits).
    execute_only : bool
        Whether execute-only entries are allowed.

    Returns
    -------
    EptResult

    Raises
    ------
    TypeError, ValueError
        Misuse: bad types, an EPTP memory type other than 0/6, a walk length
        other than 4/5 levels, access bits other than W/F, ``gpa`` out of
        range.

    KVM
    ---
    ``arch/x86/kvm/mmu/paging_tmpl.h`` compiled with ``PTTYPE_EPT``
    (``ept_walk_addr_generic``); A/D only when the EPTP enables them.
    """
    if not isinstance(mem, GuestMemory):
        raise TypeError(f"mem must be a GuestMemory, got {type(mem).__name__}")
    eptp = check_int("eptp", eptp)
    if not 0 <= eptp < 1 << 64:
        raise ValueError(f"eptp must be in [0, 2**64), got {eptp:#x}")
    memtype = EPTP.MT.get(eptp)
    if memtype not in EPTP_MEMORY_TYPES:
        raise ValueError(f"eptp memory type (bits 2:0) must be 0 or 6, got {memtype}")
    walk_length = EPTP.WALK_LENGTH.get(eptp)
    if walk_length not in EPTP_WALK_LENGTHS:
        raise ValueError(
            f"eptp walk length (bits 5:3) must be 3 or 4 (four or five levels), got {walk_length}"
        )
    gpa = check_int("gpa", gpa)
    if not 0 <= gpa < 1 << 52:
        raise ValueError(f"gpa must be in [0, 2**52), got {gpa:#x}")
    access = check_access(access, ACCESS_WRITE | ACCESS_FETCH)
    maxphyaddr = _check_maxphyaddr(maxphyaddr)
    execute_only = _check_flag("execute_only", execute_only)

    ctx = ept_walk_context(walk_length + 1, bool(EPTP.AD.get(eptp)), maxphyaddr, execute_only)
    pfec = ept_access_pfec(access)
    walk = _walk_addr_generic(mem, ctx, eptp, gpa, pfec, False, 0, None, None)
    if walk.error is None:
        return EptResult(walk.gpa, None, walk.level, walk.trace)
    return EptResult(None, _ept_fault(walk, pfec), walk.level, walk.trace)


def ept_violation_exit_qualification(fault: EptFault, *, hw_exit_qualification: int = 0) -> int:
    """The exit qualification KVM gives L1 for an EPT violation it found.

    Bits 7 and 8 (guest linear address valid / translated) are kept from
    the exit qualification of the hardware exit that led to the walk; the
    access bits come from the access the walk was given (W → write, U →
    read, F → fetch), and bits 5:3 are the R/W/X the walk accumulated.

    Parameters
    ----------
    fault : EptFault
        A fault of kind ``"violation"``.
    hw_exit_qualification : int
        The exit qualification of the exit KVM was handling.

    Raises
    ------
    ValueError
        For a misconfiguration, which is reported without an exit
        qualification.

    KVM
    ---
    ``arch/x86/kvm/mmu/paging_tmpl.h`` (classic ``error:`` path for
    ``PTTYPE_EPT``), injected by ``nested_ept_inject_page_fault`` in
    ``arch/x86/kvm/vmx/nested.c``. The newest tree reports exactly one access
    bit and sets GVA_IS_VALID itself; this is the classic form.
    """
    hw_exit_qualification = check_int("hw_exit_qualification", hw_exit_qualification)
    check_instance("fault", fault, EptFault)
    if fault.kind != EptFaultKind.VIOLATION:
        raise ValueError("fault: an EPT misconfiguration has no exit qualification")
    q = hw_exit_qualification & (EPT_EXIT_QUAL.GVA_IS_VALID.bit | EPT_EXIT_QUAL.GVA_TRANSLATED.bit)
    access = fault.error_code if fault.access is None else fault.access
    if access & PFERR.W:
        q |= EPT_EXIT_QUAL.ACC_WRITE.bit
    if access & PFERR.U:
        q |= EPT_EXIT_QUAL.ACC_READ.bit
    if access & PFERR.F:
        q |= EPT_EXIT_QUAL.ACC_INSTR.bit
    q |= (fault.ept_rwx & 7) << EPT_EXIT_QUAL.RWX.lo
    return q


def npt_translate(
    mem: GuestMemory,
    ncr3: int,
    gpa: int,
    access: int = 0,
    *,
    cr4: int,
    efer: int,
    maxphyaddr: int = 52,
    gbpages: bool = True,
) -> TranslateResult:
    """Translate an L2 guest-physical address through L1's nested page tables.

    The NPT format follows L1's CR4 and EFER (long mode: four or five
    levels; else PAE or 32-bit). Every access is a user access, so the
    pages must be U=1 at every level; CR0.WP, SMEP, SMAP and PKU cannot
    matter. A fault is a #NPF whose ``error_code`` is the exit_info_1 that
    L1 receives (it always has U).

    Parameters
    ----------
    mem : GuestMemory
    ncr3 : int
        The NPT root (``nested_cr3``).
    gpa : int
        The L2 guest-physical address (below ``2**52`` in long mode,
        ``2**32`` otherwise).
    access : int
        ``ACCESS_WRITE`` and/or ``ACCESS_FETCH`` (0: a read).
    cr4, efer : int
        L1's CR4 and EFER (CR4.PKE is ignored).
    maxphyaddr, gbpages : int, bool
        L1's MAXPHYADDR and 1 GiB-page support.

    Returns
    -------
    TranslateResult

    KVM
    ---
    ``arch/x86/kvm/mmu/mmu.c``: ``kvm_init_shadow_npt_mmu`` (CR4 without
    PKE); ``arch/x86/kvm/x86.c``: ``translate_nested_gpa``, which adds
    ``PFERR_USER_MASK`` to every access (NPT walks are user walks), reached
    through ``kvm_translate_gpa`` in ``arch/x86/kvm/mmu.h``;
    ``arch/x86/kvm/svm/nested.c``: ``nested_svm_get_tdp_pdptr`` (PAE PDPTEs
    read unchecked).
    """
    if not isinstance(mem, GuestMemory):
        raise TypeError(f"mem must be a GuestMemory, got {type(mem).__name__}")
    ncr3 = check_int("ncr3", ncr3)
    if not 0 <= ncr3 < 1 << 64:
        raise ValueError(f"ncr3 must be in [0, 2**64), got {ncr3:#x}")
    cpu = CpuState(
        cr0=CR0.PE.bit | CR0.PG.bit,
        cr3=ncr3,
        cr4=check_int("cr4", cr4) & ~CR4.PKE.mask,
        efer=efer,
        maxphyaddr=maxphyaddr,
        gbpages=gbpages,
    )
    gpa = check_int("gpa", gpa)
    limit = 52 if cpu.lma else 32
    if not 0 <= gpa < 1 << limit:
        raise ValueError(f"gpa must be in [0, 2**{limit}), got {gpa:#x}")
    access = check_access(access, ACCESS_WRITE | ACCESS_FETCH) | int(PFERR.U)

    ctx = _walk_context_of(cpu)
    pdpte = None
    root = 0
    if cpu.mode is PagingMode.PAE:
        pdptes = _load_pdptrs(mem, cpu.cr3, cpu.maxphyaddr, check=False)
        pdpte = pdptes[ctx.fmt.index(gpa, 3)]  # bits 31:30 of a 32-bit address
    else:
        root = _root_table(cpu)
    walk = _walk_addr_generic(mem, ctx, root, gpa, access, False, 0, pdpte, None)
    return _result_from_walk(walk, access, ctx)
