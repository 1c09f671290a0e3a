"""One guest page-table walker for every format: the ``paging_tmpl.h`` analogue.

KVM compiles ``paging_tmpl.h`` three times (32-bit entries, 64-bit entries,
EPT entries) to get three copies of ``walk_addr_generic``. Here the walk is
written once, in :func:`walk_addr_generic`, and the differences are data: an
:class:`~refimpl.guest.formats.EntryFormat` (entry size, bits per level, A/D
positions, present test, rights extraction) inside a :class:`WalkContext`
(root level, reserved-bit masks, permission tables, A/D enabled). The same
function serves 32-bit, PAE, 4-level and 5-level paging (:func:`translate`),
EPT and NPT (:mod:`refimpl.guest.ept`).

This module is the definition. ``refimpl.fast.scalar`` walks four- and
five-level tables faster (``refimpl.translate`` is that one), and
:mod:`refimpl.fast.batch` walks arrays of addresses; both are tested equal
to :func:`translate` here, and neither is needed to read it.

Arguments are checked once, where they come in: by :func:`translate` and
the other public functions here, and by the records (:class:`WalkContext`,
:class:`~refimpl.guest.cpu.CpuState`) when they are built. What runs after
that trusts them.

The walk, step by step (numbers as in the comments below):

1. Start at the root: CR3 (or EPTP/nCR3); for PAE, the PDPTE for address
   bits 31:30, which must be present.
2. At each level, find the entry: table address from the previous entry plus
   the index taken from the address. A table outside guest memory ends the
   walk as if the entry were not present.
3. AND the entry into the accumulated rights (with NX inverted so that ANDing
   works for it too).
4. Stop if the entry is not present, or has a reserved bit set.
5. Stop descending at a leaf: level 1, or bit 7 where it means page size.
6. Check the accumulated rights (and protection key) against the access.
7. Compute the guest-physical address from the leaf and the address offset.
8. Only now, on success, set A in every entry used and D in the leaf on a
   write (:func:`update_accessed_dirty_bits`).

Glossary
--------
gva, gpa
    Guest-virtual (linear) and guest-physical addresses.
pte_access
    The entries' bits ANDed along the walk (NX inverted), from which the
    ACC rights of the page are taken.
trace
    The entries the walk read, as ``(level, entry gpa, entry value)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple
from functools import lru_cache

from refimpl.errors import check_bool, check_instance, check_int, check_range
from refimpl.guest.cpu import CpuState, PagingMode
from refimpl.guest.faults import Fault, WalkError, _fault_for
from refimpl.guest.formats import ACC, PDPTE_PAE, PFERR, PTE32, PTE64, PTTYPE32, PTTYPE64, \
    EntryFormat, pse36_addr
from refimpl.guest.memory import GuestMemory
from refimpl.guest.permissions import _permission_fault, update_permission_bitmask, \
    update_pkru_bitmask
from refimpl.guest.rsvd import RsvdBitsValidate, pdpte_rsvd_mask, reset_rsvds_bits_mask

#: A write (error-code bit 1, ``PFERR_WRITE_MASK``).
ACCESS_WRITE = int(PFERR.W)
#: A user-mode access, CPL 3 (error-code bit 2, ``PFERR_USER_MASK``).
ACCESS_USER = int(PFERR.U)
#: An instruction fetch (error-code bit 4, ``PFERR_FETCH_MASK``).
ACCESS_FETCH = int(PFERR.F)
#: An implicit supervisor access, which RFLAGS.AC cannot exempt from SMAP
#: (KVM's synthetic bit 48, ``PFERR_IMPLICIT_ACCESS``).
ACCESS_IMPLICIT = int(PFERR.IMPLICIT)
ACCESS_MASK = ACCESS_WRITE | ACCESS_USER | ACCESS_FETCH | ACCESS_IMPLICIT

#: Where the four PAE PDPTEs live: CR3 bits 31:5.
PAE_CR3_PDPT_MASK = 0xFFFF_FFE0

_PS = PTE64.PS.bit
_ACC_WRITE = int(ACC.WRITE)
_RSVD_FAULT = int(PFERR.RSVD | PFERR.P)


@dataclass(frozen=True)
class WalkContext:
    """Everything a walk needs that does not change from one address to the next.

    This is the guest-walk half of KVM's ``struct kvm_mmu``. (A later patch
    series splits it into ``struct kvm_pagewalk`` and ``struct
    kvm_page_format``; unconfirmed in a stored kernel tree.)

    Parameters
    ----------
    fmt : EntryFormat
        The entry format (KVM's ``PTTYPE``).
    root_level : int
        Level of the root table (``cpu_role.base.level``).
    rsvd : RsvdBitsValidate
        Reserved-bit masks (``guest_rsvd_check``).
    permissions : tuple of int
        The permission bitmap (``permissions[16]``).
    pkru_mask : int
        The protection-key table (``pkru_mask``).
    have_ad : bool
        Whether the format has accessed/dirty bits (EPT: EPTP bit 6).
    pse : bool
        32-bit paging: whether bit 7 of a PDE makes a 4 MiB page.
    has_pferr_fetch : bool
        Whether F is reported in fetch-fault error codes.

    KVM
    ---
    ``arch/x86/include/asm/kvm_host.h`` (``struct kvm_mmu``);
    filled in by ``arch/x86/kvm/mmu/mmu.c`` (``init_kvm_nested_mmu``,
    ``shadow_mmu_init_context``, ``kvm_init_shadow_ept_mmu``).

    Raises
    ------
    TypeError, ValueError
        A field of the wrong type, ``root_level`` not in ``[1, 5]``,
        ``pkru_mask`` not in ``[0, 2**32)``.
    """

    fmt: EntryFormat
    root_level: int
    rsvd: RsvdBitsValidate
    permissions: tuple[int, ...]
    pkru_mask: int
    have_ad: bool
    pse: bool = False
    has_pferr_fetch: bool = False

    def __post_init__(self) -> None:
        check_instance("fmt", self.fmt, EntryFormat)
        object.__setattr__(self, "root_level", check_range("root_level", self.root_level, 1, 6))
        check_instance("rsvd", self.rsvd, RsvdBitsValidate)
        if type(self.permissions) is not tuple or len(self.permissions) != 16:
            raise TypeError("permissions must be the 16-byte tuple of update_permission_bitmask")
        object.__setattr__(self, "pkru_mask", check_range("pkru_mask", self.pkru_mask, 0, 1 << 32))
        for name in ("have_ad", "pse", "has_pferr_fetch"):
            object.__setattr__(self, name, check_bool(name, getattr(self, name)))

    def is_last_gpte(self, level: int, pte: int) -> bool:
        """Whether ``pte`` at ``level`` ends the walk.

        Level 1 always does. Above it, bit 7 does: in 64-bit and EPT entries
        it is either the page-size bit or reserved (and the reserved-bit
        check has already rejected it); in 32-bit paging it means a 4 MiB
        page only at level 2 with CR4.PSE=1, and is ignored otherwise.

        KVM
        ---
        ``arch/x86/kvm/mmu/paging_tmpl.h``: ``FNAME(is_last_gpte)``.
        """
        if type(level) is not int or type(pte) is not int:
            level, pte = check_int("level", level), check_int("pte", pte)
        if level == 1:
            return True
        if not pte & _PS:
            return False
        if self.fmt is PTTYPE32:
            return level == 2 and self.pse
        return True


@dataclass(frozen=True)
class Walk:
    """The outcome of :func:`walk_addr_generic` (KVM's ``struct guest_walker``).

    Parameters
    ----------
    error : WalkError or None
        Why the walk failed, or None.
    errcode : int
        KVM's partial error code for the failure: 0 (not present / no
        memslot), ``P|RSVD`` or what ``permission_fault`` returned; the
        access bits are added by the caller.
    level : int
        Level of the entry where the walk ended (the leaf on success).
    gpa : int or None
        The translated address on success.
    pte_access : int
        The raw entry bits ANDed along the walk, NX still inverted (EPT
        exit qualifications report its R/W/X bits).
    acc : int
        The page's ACC rights (0 if the walk did not reach a leaf).
    trace : tuple of (level, entry gpa, entry value)
        Every entry read, top down. With ``translate_gpa``, the entry's
        address is where it was read in ``mem`` (the translated address).
    nested_fault : object or None
        With ``translate_gpa`` only: the fault the hook returned when it
        could not translate a table or the final address. ``error`` is then
        ``NO_MEMSLOT`` (the outer walk could not go on) and the caller
        routes ``nested_fault`` instead of a fault of its own.
    """

    error: WalkError | None
    errcode: int
    level: int
    gpa: int | None
    pte_access: int
    acc: int
    trace: tuple[tuple[int, int, int], ...]
    nested_fault: object | None = None


def walk_addr_generic(
    mem: GuestMemory,
    ctx: WalkContext,
    root: int,
    addr: int,
    access: int,
    *,
    rflags_ac: bool = False,
    pkru: int = 0,
    pdpte: tuple[int, int] | None = None,
    translate_gpa: Callable[[int, int], tuple[int | None, object]] | None = None,
) -> Walk:
    """Walk the tables rooted at ``root`` for ``addr``; set A/D on success.

    Parameters
    ----------
    mem : GuestMemory
        Holds the tables; A/D bits are written here.
    ctx : WalkContext
        The format and the checks.
    root : int
        CR3, EPTP or nCR3 (its table-address bits are used).
    addr : int
        The address to translate (gva, or an L2 gpa for EPT/NPT), in
        ``[0, 2**64)``.
    access : int
        W, U, F, IMPLICIT bits.
    rflags_ac, pkru : bool, int
        RFLAGS.AC and PKRU, read at check time as KVM does.
    pdpte : (int, int) or None
        PAE only: ``(gpa, value)`` of the PDPTE for ``addr`` (KVM's
        ``get_pdptr``), already loaded at CR3 time.
    translate_gpa : callable or None
        KVM's ``kvm_translate_gpa`` for a nested walk (:mod:`refimpl.guest.nested`):
        ``translate_gpa(page gpa, access)`` returns ``(translated page gpa,
        None)`` or ``(None, fault)``. It is called with the page address of
        every table before the table is read (access ``U``, plus ``W`` when
        the format has A/D bits, since setting them writes the table) and
        with the page of the final address after the permission check (the
        walk's own access). Entries are then read (and A/D written) at the
        translated address. None (the default): addresses are used as they
        are.

    Returns
    -------
    Walk

    KVM
    ---
    ``arch/x86/kvm/mmu/paging_tmpl.h``: ``FNAME(walk_addr_generic)``.
    Divergence: KVM retries the walk when a concurrent write races its A/D
    cmpxchg; here nothing runs concurrently, so A/D is a plain OR.
    """
    check_instance("mem", mem, GuestMemory)
    check_instance("ctx", ctx, WalkContext)
    root = check_range("root", root, 0, 1 << 64)
    addr = check_range("addr", addr, 0, 1 << 64)
    access = check_range("access", access, 0, 1 << 64)
    rflags_ac = check_bool("rflags_ac", rflags_ac)
    pkru = check_range("pkru", pkru, 0, 1 << 32)
    if pdpte is not None:
        if type(pdpte) is not tuple or len(pdpte) != 2:
            raise TypeError("pdpte must be a (gpa, value) pair")
        pdpte = (check_int("pdpte gpa", pdpte[0]), check_range("pdpte value", pdpte[1], 0, 1 << 64))
    if translate_gpa is not None and not callable(translate_gpa):
        raise TypeError("translate_gpa must be callable or None")
    return _walk_addr_generic(mem, ctx, root, addr, access, rflags_ac, pkru, pdpte, translate_gpa)


def _walk_addr_generic(mem, ctx, root, addr, access, rflags_ac, pkru, pdpte, translate_gpa):
    """The walk of :func:`walk_addr_generic`, on arguments already checked."""
    fmt = ctx.fmt
    nbytes = fmt.entry_bytes
    trace: list[tuple[int, int, int]] = []
    if translate_gpa is not None:
        # KVM's nested_access: table reads are user accesses, and writes too
        # when the format has A/D bits.
        nested_access = (ACCESS_WRITE if ctx.have_ad else 0) | ACCESS_USER

    # Step 1: the root.
    level = ctx.root_level
    pte = root
    if pdpte is not None:
        pdpte_gpa, pte = pdpte
        trace.append((level, pdpte_gpa, pte))
        if not pte & fmt.present_mask:
            return Walk(WalkError.NOT_PRESENT, 0, level, None, ~0, 0, tuple(trace))
        level -= 1

    pte_access = ~0
    while True:
        pt_access = pte_access
        # Step 2: the entry for addr in this level's table.
        table = pte & fmt.base_addr_mask
        offset = fmt.index(addr, level) * nbytes
        if translate_gpa is not None:
            table, nested_fault = translate_gpa(table, nested_access)
            if table is None:
                return Walk(WalkError.NO_MEMSLOT, 0, level, None, pt_access, 0,
                            tuple(trace), nested_fault)
        pte_gpa = table + offset
        if not mem.contains(pte_gpa, nbytes):
            return Walk(WalkError.NO_MEMSLOT, 0, level, None, pt_access, 0, tuple(trace))
        pte = mem._load(pte_gpa, nbytes)
        trace.append((level, pte_gpa, pte))
        # Step 3: accumulate rights; NX is inverted so that AND works for it.
        pte_access = pt_access & (pte ^ fmt.nx_mask)
        # Step 4: present, then reserved bits.
        if not pte & fmt.present_mask:
            return Walk(WalkError.NOT_PRESENT, 0, level, None, pte_access, 0, tuple(trace))
        if ctx.rsvd.is_rsvd_bits_set(pte, level):
            return Walk(WalkError.RSVD, _RSVD_FAULT, level, None, pte_access, 0, tuple(trace))
        # Step 5: a leaf ends the descent.
        if ctx.is_last_gpte(level, pte):
            break
        level -= 1

    # Step 6: rights and protection key.
    acc = fmt.gpte_access(pte_access ^ fmt.nx_mask)
    errcode = _permission_fault(
        ctx.permissions, ctx.pkru_mask, acc, fmt.gpte_pkey(pte) if ctx.pkru_mask else 0,
        access, rflags_ac, pkru,
    )
    if errcode:
        return Walk(WalkError.PERMISSION, errcode, level, None, pte_access, acc, tuple(trace))

    # Step 7: the address.
    gpa = (pte & fmt.leaf_addr_mask(level)) | (addr & fmt.offset_mask(level))
    if level == 2 and fmt is PTTYPE32:
        gpa |= pse36_addr(pte)
    if translate_gpa is not None:
        page, nested_fault = translate_gpa(gpa & ~0xFFF, access)
        if page is None:
            return Walk(WalkError.NO_MEMSLOT, 0, level, None, pte_access, acc,
                        tuple(trace), nested_fault)
        gpa = page | (gpa & 0xFFF)

    # A read of a clean page yields a translation without W, so that the
    # first write walks again and sets D (KVM's protect_clean_gpte).
    write = bool(access & ACCESS_WRITE)
    if ctx.have_ad and not write and not pte & fmt.dirty_mask:
        acc &= ~_ACC_WRITE

    # Step 8: accessed and dirty bits, only now that the walk succeeded.
    # pte_access holds the AND of every entry's A bit: if all are set (and,
    # on a write, the leaf's D), there is nothing to write.
    if ctx.have_ad:
        accessed_dirty = pte_access & fmt.accessed_mask
        if write and not pte & fmt.dirty_mask:
            accessed_dirty = 0
        if not accessed_dirty:
            first = 1 if pdpte is not None else 0  # PDPTEs have no A bit
            _update_accessed_dirty_bits(mem, fmt, trace[first:], write)
    return Walk(None, 0, level, gpa, pte_access, acc, tuple(trace))


def update_accessed_dirty_bits(
    mem: GuestMemory,
    fmt: EntryFormat,
    entries: list[tuple[int, int, int]],
    write: bool,
) -> None:
    """Set A in every entry of a successful walk, and D in its leaf on a write.

    ``entries`` runs from the top level down to the leaf, as
    ``(level, entry gpa, value)``. Each entry is re-read and ORed, so an
    entry used at two levels (a table that maps itself) ends with both
    bits, as KVM's cmpxchg-and-retry loop leaves it.

    Raises
    ------
    TypeError, ValueError
        ``entries`` not a sequence of ``(level, gpa, value)`` triples, or an
        entry outside ``mem`` (checked before anything is written).

    KVM
    ---
    ``arch/x86/kvm/mmu/paging_tmpl.h``: ``FNAME(update_accessed_dirty_bits)``.
    """
    check_instance("mem", mem, GuestMemory)
    check_instance("fmt", fmt, EntryFormat)
    write = check_bool("write", write)
    if not isinstance(entries, (list, tuple)):
        raise TypeError(f"entries must be a list of (level, gpa, value), got {entries!r}")
    for entry in entries:
        if type(entry) is not tuple or len(entry) != 3:
            raise TypeError(f"entries: each must be a (level, gpa, value) triple, got {entry!r}")
        gpa = check_int("entry gpa", entry[1])
        if not mem.contains(gpa, fmt.entry_bytes):
            raise ValueError(f"entries: entry gpa {gpa:#x} is outside guest memory")
    _update_accessed_dirty_bits(mem, fmt, entries, write)


def _update_accessed_dirty_bits(mem, fmt, entries, write) -> None:
    nbytes = fmt.entry_bytes
    last = len(entries) - 1
    for i, (_level, gpa, _value) in enumerate(entries):
        bits_to_set = fmt.accessed_mask
        if write and i == last:
            bits_to_set |= fmt.dirty_mask
        old = mem._load(gpa, nbytes)
        if old & bits_to_set != bits_to_set:
            mem._store(gpa, nbytes, old | bits_to_set)


# ---------------------------------------------------------------------------
# Guest virtual -> guest physical.
# ---------------------------------------------------------------------------


class TranslateResult(NamedTuple):
    """The result of :func:`translate`: an immutable record.

    A :class:`~typing.NamedTuple`: its fields are read by name, it cannot be
    changed, and building one is a single allocation, which matters because
    the fast scalar walk (:mod:`refimpl.fast.scalar`) returns one per call.

    Parameters
    ----------
    gpa : int or None
        The guest-physical address, or None if the translation faulted.
    fault : Fault or None
        The guest exception (``vector``, ``error_code``), or None.
    level : int or None
        Level of the leaf that mapped the address (1 = 4 KiB page); on a
        #PF, the level where the walk stopped; None without paging or on #GP.
    trace : tuple of (level, entry gpa, entry value)
        The entries read, top down, with the values as read (before A/D).
    access_rights : int
        The page's ACC rights (``refimpl.guest.formats.ACC``) when a leaf was
        reached, 0 otherwise. On a successful non-write access to a leaf
        with D=0, WRITE is removed, as KVM's ``protect_clean_gpte`` does, so
        that a later write walks again and sets D.

    KVM
    ---
    What ``FNAME(gva_to_gpa)`` in ``arch/x86/kvm/mmu/paging_tmpl.h``
    returns (a gpa, or a ``struct x86_exception``), with the ``struct
    guest_walker`` fields a reader wants to see.
    """

    gpa: int | None
    fault: Fault | None
    level: int | None
    trace: tuple[tuple[int, int, int], ...] = ()
    access_rights: int = 0


def check_access(access: object, allowed: int = ACCESS_MASK) -> int:
    """``access`` as an int, refusing bools and bits outside ``allowed``."""
    allowed = check_int("allowed", allowed)
    access = check_int("access", access)
    if access < 0 or access & ~allowed:
        raise ValueError(
            f"access {access:#x} has bits outside the allowed set {allowed:#x}"
        )
    return access


def check_gva(gva: object, cpu: CpuState) -> int:
    """``gva`` as an int in ``[0, 2**64)``, and below ``2**32`` outside long mode."""
    check_instance("cpu", cpu, CpuState)
    gva = check_int("gva", gva)
    if not 0 <= gva < 1 << 64:
        raise ValueError(f"gva must be in [0, 2**64), got {gva:#x}")
    if not cpu.lma and gva >> 32:
        raise ValueError(
            f"gva {gva:#x} does not fit in 32 bits, and the CPU is not in long mode"
        )
    return gva


def is_canonical(gva: int, width: int) -> bool:
    """Whether bits 63:width-1 of ``gva`` are all equal."""
    return _is_canonical(check_range("gva", gva, 0, 1 << 64), check_range("width", width, 1, 65))


def _is_canonical(gva: int, width: int) -> bool:
    top = gva >> (width - 1)
    return top == 0 or top == (1 << (65 - width)) - 1


def walk_context(cpu: CpuState) -> WalkContext:
    """The walk context of a paged mode (KVM's MMU reset on a mode change).

    Depends only on the mode-defining bits, not on CR3, RFLAGS or PKRU; it
    is computed once per distinct set of those bits and remembered on the
    (frozen) ``cpu`` object.

    KVM
    ---
    ``arch/x86/kvm/mmu/mmu.c``: ``kvm_calc_cpu_role``,
    ``reset_guest_rsvds_bits_mask``, ``update_permission_bitmask``,
    ``update_pkru_bitmask``.
    """
    check_instance("cpu", cpu, CpuState)
    if cpu.mode is PagingMode.NONE:
        raise ValueError("cpu: no walk context without paging (CR0.PG=0)")
    return _walk_context_of(cpu)


def _walk_context_of(cpu: CpuState) -> WalkContext:
    ctx = cpu.__dict__.get("_walk_context")
    if ctx is None:
        ctx = _walk_context(
            cpu.mode, cpu.maxphyaddr, cpu.nx, cpu.gbpages, cpu.pse,
            cpu.wp, cpu.smep, cpu.smap, cpu.pke_active,
        )
        object.__setattr__(cpu, "_walk_context", ctx)
    return ctx


@lru_cache(maxsize=256)
def _walk_context(
    mode: PagingMode, maxphyaddr: int, nx: bool, gbpages: bool, pse: bool,
    wp: bool, smep: bool, smap: bool, pke: bool,
) -> WalkContext:
    fmt = PTTYPE32 if mode is PagingMode.BITS32 else PTTYPE64
    return WalkContext(
        fmt=fmt,
        root_level=mode.root_level,
        rsvd=reset_rsvds_bits_mask(
            root_level=mode.root_level, maxphyaddr=maxphyaddr, nx=nx, gbpages=gbpages, pse=pse
        ),
        permissions=update_permission_bitmask(
            cr0_wp=wp, cr4_smep=smep, cr4_smap=smap, efer_nx=nx
        ),
        pkru_mask=update_pkru_bitmask(cr4_pke=pke, cr0_wp=wp),
        have_ad=True,
        pse=pse,
        has_pferr_fetch=nx or smep,
    )


def root_table(cpu: CpuState) -> int:
    """The table-address bits of CR3 for the current mode.

    32-bit paging uses CR3 bits 31:12; four/five-level paging bits 51:12
    (KVM masks with ``PT_BASE_ADDR_MASK``; a CR3 with bits at or above
    MAXPHYADDR could not have been loaded, and here simply points outside
    memory). PAE uses :func:`load_pdptrs` instead.
    """
    check_instance("cpu", cpu, CpuState)
    return _root_table(cpu)


def _root_table(cpu: CpuState) -> int:
    if cpu.mode is PagingMode.BITS32:
        return cpu.cr3 & PTE32.ADDR.mask
    return cpu.cr3 & PTE64.ADDR.mask


def load_pdptrs(
    mem: GuestMemory, cr3: int, maxphyaddr: int, *, check: bool = True
) -> tuple[tuple[int, int], ...] | None:
    """Read the four PAE PDPTEs at CR3, as a MOV to CR3 does.

    Parameters
    ----------
    mem : GuestMemory
    cr3 : int
        CR3; bits 31:5 locate the 32-byte PDPT.
    maxphyaddr : int
        Guest MAXPHYADDR, for the reserved-bit check.
    check : bool
        Check reserved bits (False for nested NPT roots, which KVM reads
        without checking; an unreadable PDPT then reads as not present).

    Returns
    -------
    tuple of four (gpa, value), or None
        None when the load would fail with #GP: the PDPT is outside
        memory, or a present PDPTE has a reserved bit.

    KVM
    ---
    ``arch/x86/kvm/x86.c``: ``load_pdptrs``; ``arch/x86/kvm/svm/nested.c``:
    ``nested_svm_get_tdp_pdptr`` for ``check=False``.
    """
    check_instance("mem", mem, GuestMemory)
    cr3 = check_int("cr3", cr3)
    maxphyaddr = check_int("maxphyaddr", maxphyaddr)
    check = check_bool("check", check)
    return _load_pdptrs(mem, cr3, maxphyaddr, check)


def _load_pdptrs(mem, cr3, maxphyaddr, check=True):
    base = cr3 & PAE_CR3_PDPT_MASK
    out = []
    rsvd = pdpte_rsvd_mask(maxphyaddr)
    for i in range(4):
        gpa = base + 8 * i
        if not mem.contains(gpa, 8):
            if check:
                return None
            out.append((gpa, 0))
            continue
        value = mem._load(gpa, 8)
        if check and value & PDPTE_PAE.P.bit and value & rsvd:
            return None
        out.append((gpa, value))
    return tuple(out)


def translate(
    mem: GuestMemory, cpu: CpuState, gva: int, access: int = 0
) -> TranslateResult:
    """Translate a guest-virtual address as KVM's guest walker does.

    This is the definition. ``refimpl.translate`` is
    ``refimpl.fast.scalar.translate``, which gives the same results
    faster in four- and five-level paging (``tests/fast/test_fast_paths.py``).

    Parameters
    ----------
    mem : GuestMemory
        Guest memory holding the page tables; A/D bits are written to it
        when the walk succeeds.
    cpu : CpuState
        The registers that select the paging mode and the checks.
    gva : int
        The linear address, in ``[0, 2**64)`` (below ``2**32`` outside long
        mode).
    access : int
        ``ACCESS_WRITE``, ``ACCESS_USER``, ``ACCESS_FETCH``,
        ``ACCESS_IMPLICIT`` ORed (0: a supervisor read).

    Returns
    -------
    TranslateResult
        ``gpa``, ``fault`` (``vector``/``error_code``), ``level``, ``trace``,
        ``access_rights``.

    Raises
    ------
    TypeError, ValueError
        For misuse only (wrong types, out-of-range ``gva``, unknown access
        bits). Guest memory contents never raise.

    KVM
    ---
    ``arch/x86/kvm/mmu/paging_tmpl.h`` (``FNAME(gva_to_gpa)`` and
    ``FNAME(walk_addr_generic)``); ``nonpaging_gva_to_gpa`` in
    ``arch/x86/kvm/mmu/mmu.c`` without paging. Canonical checks (#GP) are
    made by KVM's emulator before it walks; PAE PDPTEs are checked when CR3
    is loaded (#GP), which this model does at the start of each translation.
    """
    # The checks, once: everything below trusts these four arguments.
    check_instance("mem", mem, GuestMemory)
    gva = check_gva(gva, cpu)
    access = check_access(access)

    mode = cpu.mode
    if mode is PagingMode.NONE:
        return TranslateResult(gpa=gva, fault=None, level=None)
    if mode.long_mode and not _is_canonical(gva, cpu.linear_address_bits):
        fault = _fault_for(WalkError.NON_CANONICAL, access, cpu.has_pferr_fetch)
        return TranslateResult(gpa=None, fault=fault, level=None)

    ctx = _walk_context_of(cpu)
    pdpte = None
    root = 0
    if mode is PagingMode.PAE:
        pdptes = _load_pdptrs(mem, cpu.cr3, cpu.maxphyaddr)
        if pdptes is None:
            fault = _fault_for(WalkError.BAD_PDPTE, access, cpu.has_pferr_fetch)
            return TranslateResult(gpa=None, fault=fault, level=None)
        # The PDPTE for bits 31:30: the level-3 index of a 32-bit address.
        pdpte = pdptes[ctx.fmt.index(gva, 3)]
    else:
        root = _root_table(cpu)

    walk = _walk_addr_generic(mem, ctx, root, gva, access, cpu.ac, cpu.pkru, pdpte, None)
    return _result_from_walk(walk, access, ctx)



def _result_from_walk(walk: Walk, access: int, ctx: WalkContext) -> TranslateResult:
    """Turn a :class:`Walk` into the public result, building the fault KVM injects."""
    if walk.error is None:
        return TranslateResult(walk.gpa, None, walk.level, walk.trace, walk.acc)
    fault = _fault_for(walk.error, access, ctx.has_pferr_fetch, walk.errcode, walk.level)
    return TranslateResult(None, fault, walk.level, walk.trace, walk.acc)
