"""One guest page-table walker for every format: the ``paging_tmpl.h`` analogue.

KVM compiles ``paging_tmpl.h`` three times (32-bit entries, 64-bit entries,
EPT entries) to get three copies of ``walk_addr_generic``. Here the walk is
written once, in :func:`walk_addr_generic`, and the differences are data: an
:class:`~refimpl.guest.formats.EntryFormat` (entry size, bits per level, A/D
positions, present test, rights extraction) inside a :class:`WalkContext`
(root level, reserved-bit masks, permission tables, A/D enabled). The same
function serves 32-bit, PAE, 4-level and 5-level paging (:func:`translate`),
EPT and NPT (:mod:`refimpl.guest.ept`).

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

import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import lru_cache
from operator import itemgetter

from refimpl.guest.cpu import CpuState, PagingMode
from refimpl.guest.faults import Fault, WalkError, fault_for
from refimpl.guest.formats import (
    ACC,
    PDPTE_PAE,
    PFERR,
    PTE32,
    PTE64,
    PTTYPE32,
    PTTYPE64,
    EntryFormat,
    pse36_addr,
)
from refimpl.guest.memory import GuestMemory, check_int
from refimpl.guest.permissions import permission_fault, update_permission_bitmask, update_pkru_bitmask
from refimpl.guest.rsvd import RsvdBitsValidate, pdpte_rsvd_mask, reset_rsvds_bits_mask
from refimpl.errors import check_bool, check_instance, check_range

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

# Plain-int copies of the bits the hot loop tests.
_PS = PTE64.PS.bit
_W = int(PFERR.W)
_ACC_WRITE = int(ACC.WRITE)
_RSVD_FAULT = int(PFERR.RSVD | PFERR.P)
_PTE32_ADDR = PTE32.ADDR.mask
_UNPACK = {4: struct.Struct("<I").unpack_from, 8: struct.Struct("<Q").unpack_from}
_PTE64_ADDR = PTE64.ADDR.mask

_tuple_new = tuple.__new__

#: Where the four PAE PDPTEs live: CR3 bits 31:5.
PAE_CR3_PDPT_MASK = 0xFFFF_FFE0


@dataclass(frozen=True)
class WalkContext:
    """Everything a walk needs that does not change from one address to the next.

    This is the guest-walk half of KVM's ``struct kvm_mmu`` (the newest
    tree calls it ``struct kvm_pagewalk`` plus ``struct kvm_page_format``).

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
        # Per-level constants for the hot loop, indexed by level (0 unused):
        # where the index starts, which address bits a leaf supplies and
        # which pass through, and whether bit 7 can end the walk there.
        levels = range(self.root_level + 1)
        fmt = self.fmt
        object.__setattr__(self, "_shift", tuple(fmt.level_shift(max(lv, 1)) for lv in levels))
        object.__setattr__(
            self, "_leaf_mask", tuple(fmt.leaf_addr_mask(max(lv, 1)) for lv in levels)
        )
        object.__setattr__(
            self, "_offset_mask", tuple(fmt.offset_mask(max(lv, 1)) for lv in levels)
        )
        object.__setattr__(
            self,
            "_ps_ends_walk",
            tuple(
                lv == 1 or fmt is not PTTYPE32 or (lv == 2 and self.pse) for lv in levels
            ),
        )

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
        level = check_int("level", level)
        pte = check_int("pte", pte)
        if level == 1:
            return True
        if not pte & PTE64.PS.bit:
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
        The address to translate (gva, or an L2 gpa for EPT/NPT).
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
    root = check_int("root", root)
    addr = check_int("addr", addr)
    access = check_int("access", access)
    pkru = check_int("pkru", pkru)
    check_instance("mem", mem, GuestMemory)
    check_instance("ctx", ctx, WalkContext)
    fmt = ctx.fmt
    nbytes = fmt.entry_bytes
    nx_mask = fmt.nx_mask
    present_mask = fmt.present_mask
    base_addr_mask = fmt.base_addr_mask
    index_mask = (1 << fmt.level_bits) - 1
    shifts = ctx._shift  # type: ignore[attr-defined]
    ps_ends_walk = ctx._ps_ends_walk  # type: ignore[attr-defined]
    rsvd_masks = ctx.rsvd.rsvd_bits_mask
    bad_mt_xwr = ctx.rsvd.bad_mt_xwr
    mem_size = mem.size
    buf = mem.buffer
    unpack = _UNPACK[nbytes]
    trace: list[tuple[int, int, int]] = []
    if translate_gpa is not None:
        # KVM's nested_access: table reads are user accesses, and writes too
        # when the format has A/D bits.
        nested_access = (_W if ctx.have_ad else 0) | int(PFERR.U)

    # Step 1: the root.
    level = ctx.root_level
    pte = root
    if pdpte is not None:
        pdpte_gpa, pte = pdpte
        trace.append((level, pdpte_gpa, pte))
        if not pte & present_mask:
            return Walk(WalkError.NOT_PRESENT, 0, level, None, ~0, 0, tuple(trace))
        level -= 1

    pte_access = ~0
    while True:
        pt_access = pte_access
        # Step 2: the entry for addr in this level's table.
        index = (addr >> shifts[level]) & index_mask
        pte_gpa = (pte & base_addr_mask) + index * nbytes
        if translate_gpa is not None:
            table, nested_fault = translate_gpa(pte & base_addr_mask, nested_access)
            if table is None:
                return Walk(WalkError.NO_MEMSLOT, 0, level, None, pt_access, 0,
                            tuple(trace), nested_fault)
            pte_gpa = table + index * nbytes
        if pte_gpa + nbytes > mem_size:
            return Walk(WalkError.NO_MEMSLOT, 0, level, None, pt_access, 0, tuple(trace))
        pte = unpack(buf, pte_gpa)[0]
        trace.append((level, pte_gpa, pte))
        # Step 3: accumulate rights; NX is inverted so that AND works for it.
        pte_access = pt_access & (pte ^ nx_mask)
        # Step 4: present, then reserved bits.
        if not pte & present_mask:
            return Walk(WalkError.NOT_PRESENT, 0, level, None, pte_access, 0, tuple(trace))
        if pte & rsvd_masks[(pte >> 7) & 1][level - 1] or (bad_mt_xwr >> (pte & 0x3F)) & 1:
            errcode = _RSVD_FAULT
            return Walk(WalkError.RSVD, errcode, level, None, pte_access, 0, tuple(trace))
        # Step 5: a leaf ends the descent: level 1, or bit 7 where it means
        # page size (ctx.is_last_gpte, unrolled into a table).
        if level == 1 or (pte & _PS and ps_ends_walk[level]):
            break
        level -= 1

    # Step 6: rights and protection key.
    acc = fmt.gpte_access(pte_access ^ nx_mask)
    errcode = permission_fault(
        ctx.permissions,
        ctx.pkru_mask,
        pte_access=acc,
        pte_pkey=fmt.gpte_pkey(pte) if ctx.pkru_mask else 0,
        access=access,
        rflags_ac=rflags_ac,
        pkru=pkru,
    )
    if errcode:
        return Walk(WalkError.PERMISSION, errcode, level, None, pte_access, acc, tuple(trace))

    # Step 7: the address.
    gpa = (pte & ctx._leaf_mask[level]) | (addr & ctx._offset_mask[level])  # type: ignore[attr-defined]
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
    write = bool(access & _W)
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
            update_accessed_dirty_bits(mem, fmt, trace[first:], write)
    return Walk(None, 0, level, gpa, pte_access, acc, tuple(trace))


def update_accessed_dirty_bits(
    mem: GuestMemory,
    fmt: EntryFormat,
    entries: list[tuple[int, int, int]],
    write: bool,
) -> None:
    """Set A in every entry of a successful walk, and D in its leaf on a write.

    ``entries`` runs from the top level down to the leaf. Each entry is
    re-read and ORed, so an entry used at two levels (a table that maps
    itself) ends with both bits, as KVM's cmpxchg-and-retry loop leaves it.

    KVM
    ---
    ``arch/x86/kvm/mmu/paging_tmpl.h``: ``FNAME(update_accessed_dirty_bits)``.
    """
    check_instance("mem", mem, GuestMemory)
    check_instance("fmt", fmt, EntryFormat)
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


class TranslateResult(tuple):
    """The result of :func:`translate`.

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

    Notes
    -----
    An immutable record, read through its five attributes. Two results are
    equal when those five are. Underneath it is a tuple (as
    ``os.stat_result`` is), because a tuple is what Python builds fastest;
    its items are an implementation detail. The fast path of
    :func:`translate` does not build ``trace``: it keeps the CR3 table and
    the entry values it read, and ``trace`` works out the entry addresses
    from them, and from the address, whenever it is asked for
    (``_record_trace``); on an inline success ``access_rights`` too is
    worked out from the entries (``_record_rights``). What was read never
    changes, so neither do they.
    """

    __slots__ = ()
    __match_args__ = ("gpa", "fault", "level", "trace", "access_rights")

    def __new__(
        cls,
        gpa: int | None,
        fault: Fault | None,
        level: int | None,
        trace: tuple[tuple[int, int, int], ...] = (),
        access_rights: int = 0,
    ) -> TranslateResult:
        return _tuple_new(cls, (gpa, fault, level, access_rights, tuple(trace)))

    gpa = property(itemgetter(0), doc="The guest-physical address, or None.")
    fault = property(itemgetter(1), doc="The guest exception, or None.")
    level = property(itemgetter(2), doc="Level of the leaf, or where the walk stopped.")

    @property
    def access_rights(self) -> int:
        """The page's ACC rights (0 if no leaf was reached)."""
        acc = tuple.__getitem__(self, 3)
        if acc is None:
            return _record_rights(self)
        return acc

    @property
    def trace(self) -> tuple[tuple[int, int, int], ...]:
        """The entries read, as ``(level, entry gpa, entry value)``, top down."""
        if tuple.__len__(self) == 5:
            return tuple.__getitem__(self, 4)
        return _record_trace(self)

    def _fields(self) -> tuple:
        return (self.gpa, self.fault, self.level, self.trace, self.access_rights)

    # Compare by fields, and never as a tuple (which would let tuple's
    # comparison answer for a bare tuple).
    def __eq__(self, other: object) -> bool:
        if type(other) is not TranslateResult:
            return False if isinstance(other, tuple) else NotImplemented
        return self._fields() == other._fields()

    def __ne__(self, other: object) -> bool:
        if type(other) is not TranslateResult:
            return True if isinstance(other, tuple) else NotImplemented
        return self._fields() != other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        names = ("gpa", "fault", "level", "trace", "access_rights")
        return "TranslateResult(" + ", ".join(
            f"{n}={v!r}" for n, v in zip(names, self._fields())) + ")"

    def __reduce__(self):
        return (TranslateResult, self._fields())


def _record_trace(result: TranslateResult) -> tuple[tuple[int, int, int], ...]:
    """The trace of a result built by the fast path.

    Such a result holds, after its four public items, ``(root level, root
    table)``, the address, and the values of the entries read from the root
    down. Each entry's address is its table (the root, then the address bits
    of the entry above) plus eight times the index that the address selects
    at that level: the same sums the walk made.
    """
    (level, table), gva, *values = tuple.__getitem__(result, slice(4, None))
    trace: list[tuple[int, int, int]] = []
    for value in values:
        trace.append((level, table + 8 * ((gva >> (3 + 9 * level)) & 511), value))
        table = value & _PTE64_ADDR
        level -= 1
    return tuple(trace)


def _record_rights(result: TranslateResult) -> int:
    """The ACC rights of a successful result built by the fast path.

    The fast path finishes inline only walks whose leaf has D set when the
    access is a write, so the rights follow from the entries alone: W and U
    ANDed over them, EXEC unless one has NX, and W dropped when the leaf is
    clean (``protect_clean_gpte``).
    """
    both, ored = _ALL_ONES, 0
    for value in tuple.__getitem__(result, slice(6, None)):
        both &= value
        ored |= value
    acc = (both & int(ACC.WRITE | ACC.USER)) | (int(ACC.EXEC) if ored < _NX else 0)
    if not value & _D:
        acc &= _NOT_ACC_WRITE
    return acc


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
    gva = check_range("gva", gva, 0, 1 << 64)
    width = check_range("width", width, 1, 65)
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
    ctx = cpu.__dict__.get("_walk_context")
    if ctx is None:
        mode = cpu.mode
        if mode is PagingMode.NONE:
            raise ValueError("cpu: no walk context without paging (CR0.PG=0)")
        ctx = _walk_context(
            mode, cpu.maxphyaddr, cpu.nx, cpu.gbpages, cpu.pse,
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
    if cpu.mode is PagingMode.BITS32:
        return cpu.cr3 & _PTE32_ADDR
    return cpu.cr3 & _PTE64_ADDR


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
        ``gpa``, ``fault`` (``vector``/``error_code``), ``level``, ``trace``.

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
    # Four- and five-level paging take a fast path with the same answers
    # (see "The fast path" below); everything else, and any argument that
    # needs checking or converting, goes through translate_clear.
    try:
        walk = cpu._fast_walk  # type: ignore[attr-defined]
    except AttributeError:
        walk = _fast_walk(cpu)
    if walk is not None and type(mem) is GuestMemory and int is type(gva) is type(access):
        return walk(mem, gva, access)
    return translate_clear(mem, cpu, gva, access)


def translate_clear(
    mem: GuestMemory, cpu: CpuState, gva: int, access: int = 0
) -> TranslateResult:
    """:func:`translate` without its fast path: the definition it must match.

    Same parameters, result and exceptions as :func:`translate`, which
    forwards here for every mode without a fast path.
    ``tests/test_fast_paths.py`` checks that the two agree.
    """
    if not isinstance(mem, GuestMemory):
        raise TypeError(f"mem must be a GuestMemory, got {type(mem).__name__}")
    if not isinstance(cpu, CpuState):
        raise TypeError(f"cpu must be a CpuState, got {type(cpu).__name__}")
    gva = check_gva(gva, cpu)
    access = check_access(access)

    mode = cpu.mode
    if mode is PagingMode.NONE:
        return TranslateResult(gpa=gva, fault=None, level=None)
    if mode.long_mode and not is_canonical(gva, cpu.linear_address_bits):
        fault = fault_for(WalkError.NON_CANONICAL, access, has_pferr_fetch=cpu.has_pferr_fetch)
        return TranslateResult(gpa=None, fault=fault, level=None)

    ctx = walk_context(cpu)
    pdpte = None
    if mode is PagingMode.PAE:
        pdptes = load_pdptrs(mem, cpu.cr3, cpu.maxphyaddr)
        if pdptes is None:
            fault = fault_for(WalkError.BAD_PDPTE, access, has_pferr_fetch=cpu.has_pferr_fetch)
            return TranslateResult(gpa=None, fault=fault, level=None)
        pdpte = pdptes[(gva >> 30) & 3]
        root = 0
    else:
        root = root_table(cpu)

    walk = walk_addr_generic(
        mem, ctx, root, gva, access, rflags_ac=cpu.ac, pkru=cpu.pkru, pdpte=pdpte
    )
    return result_from_walk(walk, access, ctx)


def result_from_walk(walk: Walk, access: int, ctx: WalkContext) -> TranslateResult:
    """Turn a :class:`Walk` into the public result, building the fault KVM injects."""
    access = check_int("access", access)
    check_instance("walk", walk, Walk)
    check_instance("ctx", ctx, WalkContext)
    if walk.error is None:
        return TranslateResult(walk.gpa, None, walk.level, walk.trace, walk.acc)
    fault = fault_for(
        walk.error,
        access,
        has_pferr_fetch=ctx.has_pferr_fetch,
        perm_errcode=walk.errcode,
        level=walk.level,
    )
    return TranslateResult(None, fault, walk.level, walk.trace, walk.acc)


# ---------------------------------------------------------------------------
# The fast path of translate: four- and five-level paging.
# ---------------------------------------------------------------------------
#
# walk_addr_generic above is the definition: one loop for every format, the
# checks spelled out. Most of its time goes on generality (looking up the
# format's masks, the loop itself, building a Walk and then a result, the
# keyword call to permission_fault), not on the walk. For long mode,
# _fast_walk builds, once per set of register values, a closure with every
# constant bound (the root, the reserved-bit masks, the permission byte of
# each access). In four-level paging its walk is written out level by level
# (walk4), as the C of paging_tmpl.h would be after unrolling; five-level
# paging makes the same reads and tests in a loop (walk5).
#
# Per level walk4 reads the entry (step 2) through a view of guest memory as
# 64-bit words, and makes one test, "are the bits that matter exactly P?".
# An entry that is not a plain present table entry (not present, a reserved
# bit, bit 7) fails it. A plain 2 MiB or 1 GiB leaf, or a plain 4 KiB leaf,
# that the access may use with every A bit (and, for a write, D) already
# set, is finished inline. Everything else goes to stopped(), which takes
# steps 3 to 8 as walk_addr_generic does. A table outside memory
# (IndexError from the word view) is rare enough to hand to translate_clear:
# nothing has been written yet.
#
# Profiling showed that much of the rest went on building the result: a
# frozen dataclass, its trace of (level, gpa, value) triples, the rights.
# The fast path builds one flat tuple instead: the four public fields, then
# a record of what was read, (root level, root), the address and the entry
# values. TranslateResult.trace rebuilds the triples from the record when
# asked (_record_trace), and access_rights, left as None by an inline
# finish, is worked out from the entries (_record_rights). Both are
# recomputed at each access: the record is immutable, so they never change.

_GVA_LIMIT = 1 << 64
_ALL_ONES = (1 << 64) - 1
_NX = PTE64.XD.bit
_P = PTE64.P.bit
_A = PTE64.A.bit
_D = PTE64.D.bit
_NOT_ACC_WRITE = ~_ACC_WRITE
_PFEC_INDEX = int(PFERR.W | PFERR.U | PFERR.F)
_NOT_SMAP = int(PFERR.RSVD)
_PERM_FAULT = int(PFERR.P)
#: Every valid access: the subsets of W, U, F and IMPLICIT.
_ACCESSES = frozenset(
    w | u | f | i
    for w in (0, ACCESS_WRITE)
    for u in (0, ACCESS_USER)
    for f in (0, ACCESS_FETCH)
    for i in (0, ACCESS_IMPLICIT)
)


def _fast_walk(cpu: CpuState):
    """The fast walker for ``cpu``, or None; remembered on ``cpu``.

    ``walk(mem, gva, access)`` returns what ``translate_clear`` returns, for
    a ``GuestMemory``, and an int ``gva`` and ``access`` (it hands anything
    it does not handle, including bad values, to ``translate_clear``).
    Equal CpuStates share one walker.
    """
    if type(cpu) is not CpuState:
        if isinstance(cpu, CpuState):
            object.__setattr__(cpu, "_fast_walk", None)
        return None
    walk = None
    if cpu.mode.long_mode and _LITTLE_ENDIAN:
        walk = _shared_fast_walk(tuple(getattr(cpu, name) for name in _CPU_FIELDS))
    object.__setattr__(cpu, "_fast_walk", walk)
    return walk


_CPU_FIELDS = tuple(f.name for f in fields(CpuState))


@lru_cache(maxsize=1024)
def _shared_fast_walk(values: tuple):
    """One walker per distinct set of register values, ``values`` in the
    order of CpuState's fields (the MMU models build a new, equal CpuState
    for each access)."""
    return _make_fast_walk(CpuState(**dict(zip(_CPU_FIELDS, values))))


_LITTLE_ENDIAN = GuestMemory(8)._word_view() is not None


def _make_fast_walk(cpu: CpuState):
    ctx = walk_context(cpu)
    fmt = ctx.fmt
    assert fmt is PTTYPE64 and ctx.have_ad and not ctx.rsvd.bad_mt_xwr
    root = root_table(cpu)
    root_index = root >> 3  # the root table, as an index into the word view
    five_level = ctx.root_level == 5
    start = (ctx.root_level, root)  # where a result's record of the walk begins
    addr = fmt.base_addr_mask
    # Reserved bits by [bit 7][level]. An entry's bits under stopN must read
    # exactly P (present, no reserved bit, and bit 7 clear above level 1)
    # for the walk to go on to the next level.
    rsvd = ((0,) + ctx.rsvd.rsvd_bits_mask[0], (0,) + ctx.rsvd.rsvd_bits_mask[1])
    stops = (None,) + tuple(_P | rsvd[0][lv] | (_PS if lv > 1 else 0) for lv in range(1, 6))
    _, stop1, stop2, stop3, stop4, _ = stops
    # A 1 GiB or 2 MiB leaf: its bits under bigN must read exactly P|PS
    # (present, bit 7, no reserved bit of a large page). Where bit 7 is
    # itself reserved (1 GiB pages without gbpages) nothing equals None.
    big3, big2 = _P | _PS | rsvd[1][3], _P | _PS | rsvd[1][2]
    big3_ok = None if rsvd[1][3] & _PS else _P | _PS
    big2_ok = None if rsvd[1][2] & _PS else _P | _PS
    leaf_mask = ctx._leaf_mask  # type: ignore[attr-defined]
    offset_mask = ctx._offset_mask  # type: ignore[attr-defined]
    # Step 6: the permission byte of each access (RFLAGS.AC folded in as
    # permission_fault does), and the protection-key inputs. inline_perm is
    # the byte the inline test uses, indexed by W and U alone: that is
    # enough for any access but a fetch (only a fetch looks at EXEC). For a
    # fetch, or when protection keys are on, it is 0xFF: no leaf passes the
    # inline test, and stopped() decides. Its keys are also the test of a
    # valid access.
    rflags_ac = cpu.ac
    pkru = cpu.pkru
    pkru_mask = ctx.pkru_mask
    permissions = ctx.permissions
    perm_byte = {}
    for access in _ACCESSES:
        pfec = access & _PFEC_INDEX
        if rflags_ac and not access & ACCESS_IMPLICIT:
            pfec |= _NOT_SMAP
        perm_byte[access] = permissions[pfec >> 1]
    inline_perm = {
        a: 0xFF if pkru_mask or a & ACCESS_FETCH else p for a, p in perm_byte.items()
    }
    has_pferr_fetch = ctx.has_pferr_fetch
    # The canonical range: below half_low, or at or above half_high.
    half_low = 1 << (cpu.linear_address_bits - 1)
    half_high = _GVA_LIMIT - half_low

    # The same few faults recur, and Faults are values: one of each.
    faults: dict[tuple[int, int, int], Fault] = {}

    def fault_result(reason, access, level, record, acc=0, errcode=0):
        key = (access, level, errcode)  # errcode tells the three reasons apart
        fault = faults.get(key)
        if fault is None:
            fault = faults[key] = fault_for(
                reason, access, has_pferr_fetch=has_pferr_fetch, perm_errcode=errcode,
                level=level,
            )
        return _tuple_new(TranslateResult, (None, fault, level, acc) + record)

    def stopped(mem, gva, access, level, entries):
        """Steps 3 to 8, as walk_addr_generic takes them, for a walk that the
        plain path does not finish; ``entries`` are the values read, from the
        root down to where it stopped."""
        pte = entries[-1]
        record = (start, gva) + entries
        # Step 4: present, then reserved bits.
        if not pte & _P:
            return fault_result(WalkError.NOT_PRESENT, access, level, record)
        if pte & rsvd[(pte >> 7) & 1][level]:
            return fault_result(WalkError.RSVD, access, level, record, 0, _RSVD_FAULT)
        # Step 5: what is left is a leaf (bit 7 above level 1, or level 1).
        # Step 3, then 6: W, U and A ANDed over the entries, NX ORed. ACC is
        # W and U, and EXEC (1) unless some entry has NX.
        both = ored = pte
        for entry in entries:
            both &= entry
            ored |= entry
        acc = (both & 6) | (ored < _NX)
        if pkru_mask:
            errcode = permission_fault(
                permissions, pkru_mask, pte_access=acc, pte_pkey=fmt.gpte_pkey(pte),
                access=access, rflags_ac=rflags_ac, pkru=pkru,
            )
        else:
            errcode = _PERM_FAULT if (perm_byte[access] >> acc) & 1 else 0
        if errcode:
            return fault_result(WalkError.PERMISSION, access, level, record, acc, errcode)
        # Step 7, and protect_clean_gpte.
        gpa = (pte & leaf_mask[level]) | (gva & offset_mask[level])
        write = access & _W
        if not write and not pte & _D:
            acc &= _NOT_ACC_WRITE
        result = _tuple_new(TranslateResult, (gpa, None, level, acc) + record)
        # Step 8: A/D, only when a bit is missing.
        if not both & _A or (write and not pte & _D):
            update_accessed_dirty_bits(mem, fmt, list(result.trace), bool(write))
        return result

    def walk5(mem: GuestMemory, gva: int, access: int) -> TranslateResult:
        """Five-level paging: the same reads and test, in a loop; stopped()
        finishes every walk."""
        if (
            not 0 <= gva < half_low and not half_high <= gva < _GVA_LIMIT
            or access not in inline_perm
        ):
            # Not canonical (#GP), or a bad address or access (ValueError).
            return translate_clear(mem, cpu, gva, access)
        words = mem._words or mem._word_view()
        table = root_index
        entries: list[int] = []
        try:
            for level in (5, 4, 3, 2, 1):
                pte = words[table + ((gva >> (3 + 9 * level)) & 511)]
                entries.append(pte)
                if level == 1 or pte & stops[level] != _P:
                    break
                table = (pte & addr) >> 3
        except IndexError:  # a table outside guest memory
            return translate_clear(mem, cpu, gva, access)
        return stopped(mem, gva, access, level, tuple(entries))

    def walk4(mem: GuestMemory, gva: int, access: int) -> TranslateResult:
        """Four-level paging, unrolled."""
        if not 0 <= gva < half_low and not half_high <= gva < _GVA_LIMIT:
            # Not canonical (#GP), or not an address at all (ValueError).
            return translate_clear(mem, cpu, gva, access)
        try:
            perm = inline_perm[access]
        except KeyError:  # not an access: translate_clear says why
            return translate_clear(mem, cpu, gva, access)
        words = mem._words or mem._word_view()
        try:
            # Step 2 at each level: the entry, at index (table >> 3) plus the
            # 9 bits of gva for the level, in the word view; then the test.
            p4 = words[root_index + ((gva >> 39) & 511)]
            if p4 & stop4 != _P:
                return stopped(mem, gva, access, 4, (p4,))
            p3 = words[((p4 & addr) >> 3) + ((gva >> 30) & 511)]
            if p3 & stop3 != _P:
                if p3 & big3 != big3_ok:
                    return stopped(mem, gva, access, 3, (p4, p3))
                # A 1 GiB page: finished below.
                level, leaf, entries, both = 3, p3, (p4, p3), p4 & p3
            else:
                p2 = words[((p3 & addr) >> 3) + ((gva >> 21) & 511)]
                if p2 & stop2 != _P:
                    if p2 & big2 != big2_ok:
                        return stopped(mem, gva, access, 2, (p4, p3, p2))
                    # A 2 MiB page: finished below.
                    level, leaf, entries, both = 2, p2, (p4, p3, p2), p4 & p3 & p2
                else:
                    p1 = words[((p2 & addr) >> 3) + ((gva >> 12) & 511)]
                    # A 4 KiB page. Anything but a present, reserved-bit-free
                    # leaf, that the access may use by the W and U bits ANDed
                    # over the entries (steps 3 and 6), with A set everywhere
                    # and, for a write, D in the leaf, goes the general way.
                    if p1 & stop1 != _P:
                        return stopped(mem, gva, access, 1, (p4, p3, p2, p1))
                    both = p4 & p3 & p2 & p1
                    if (perm >> (both & 6)) & 1 or not both & _A or (access & _W and not p1 & _D):
                        return stopped(mem, gva, access, 1, (p4, p3, p2, p1))
                    # Step 7; step 8 has nothing to do. The ACC rights are
                    # left for the result to work out (_record_rights).
                    return _tuple_new(TranslateResult, (
                        (p1 & _PTE64_ADDR) | (gva & 0xFFF), None, 1, None, start, gva,
                        p4, p3, p2, p1,
                    ))
        except IndexError:  # a table outside guest memory
            return translate_clear(mem, cpu, gva, access)
        # A 2 MiB or 1 GiB page, as a 4 KiB page above.
        if (perm >> (both & 6)) & 1 or not both & _A or (access & _W and not leaf & _D):
            return stopped(mem, gva, access, level, entries)
        return _tuple_new(TranslateResult, (
            (leaf & leaf_mask[level]) | (gva & offset_mask[level]), None, level, None, start, gva
        ) + entries)

    return walk5 if five_level else walk4
