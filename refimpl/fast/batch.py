"""Many translations at once: a vectorised form of the walker.

:func:`translate_batch` gives exactly what calling
:func:`~refimpl.guest.walker.translate` on each address in order gives, including
the A/D bits left in memory, but walks all addresses together: one NumPy
gather per level, instead of a Python loop per address. It follows the steps
of :func:`refimpl.guest.walker.walk_addr_generic` one for one (the comments carry
the same step numbers), on arrays of lanes.

Why one pass over all addresses gives the sequential answer
------------------------------------------------------------
Calling ``translate`` in order, the walk of address *j* may read entries
whose A or D bit an earlier walk *i < j* has just set. Two facts make that
harmless except in one place:

1. A walk only ever ORs A and D into entries. OR is commutative and
   idempotent, so the final memory is the initial memory ORed with every
   bit every successful walk sets, in whatever order those ORs are applied.
2. No decision of a walk depends on an A or D bit (bits 5 and 6 of x86
   entries): not presence (bit 0), not rights (bits 1, 2, 63), not the
   leaf test (bit 7), not the protection key (62:59), not the address, and
   no reserved-bit mask contains bit 5 or 6, *except the mask of PAE
   PDPTEs* (bits 8:5 are reserved there).

So outside PAE, every walk sees the same outcome on the initial memory as it
would after its predecessors' writes, and the final memory is the initial one
ORed with all the writes. In PAE paging, each ``translate`` loads the four
PDPTEs from memory, and an earlier walk can set A or D in a word that is both
a page-table entry and a PDPTE (a PDPT page that is also used as a page
directory or page table). Then the later walk sees a reserved bit and raises
#GP. The batch therefore finds the first address whose writes change the
32 bytes of the PDPT, settles everything up to and including it, applies
those writes, and starts again from the next address with reloaded PDPTEs.
Each restart adds at least one of at most eight bits (A and D in four
PDPTEs), so there are at most nine rounds.

NumPy
-----
This is the only module of :mod:`refimpl` that needs NumPy, and it imports
it only when :func:`translate_batch` is first called (the book also runs in
browsers without NumPy); without it, the call raises :class:`ImportError`.

KVM
---
None: KVM walks one address at a time. This is ``paging_tmpl.h``'s
``FNAME(walk_addr_generic)`` restated over arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from refimpl.guest.cpu import CpuState, PagingMode
from refimpl.guest.faults import GP_VECTOR, PF_VECTOR
from refimpl.guest.formats import PFERR, PTE64, PTTYPE32, PSE36_SHIFT, PDE32_4M
from refimpl.guest.memory import GuestMemory
from refimpl.guest.permissions import PFEC_INDEX_MASK
from refimpl.guest.walker import (
    PAE_CR3_PDPT_MASK,
    WalkContext,
    check_access,
    root_table,
    walk_context,
)
from refimpl.guest.rsvd import pdpte_rsvd_mask

if TYPE_CHECKING:
    import numpy as np
else:
    np = None  # NumPy, bound by _numpy() on the first call

__all__ = ["BatchResult", "translate_batch", "translate_batch_clear"]


def _numpy():
    """Import NumPy (once), binding ``np`` and the constants made from it.

    Raises
    ------
    ImportError
        NumPy is not installed.
    """
    global np, _ALL_ONES, _U64
    if np is None:
        try:
            import numpy
        except ImportError as e:
            raise ImportError(
                "refimpl.fast.batch.translate_batch needs NumPy, which is not installed "
                "(pip install numpy); refimpl.translate works without it"
            ) from e
        _ALL_ONES = numpy.uint64(0xFFFF_FFFF_FFFF_FFFF)
        _U64 = numpy.uint64
        np = numpy
    return np


@dataclass(frozen=True, eq=False)
class BatchResult:
    """The results of :func:`translate_batch`, one array element per address.

    Parameters
    ----------
    gpa : numpy.ndarray of uint64
        The guest-physical address (0 where the translation faulted).
    fault : numpy.ndarray of bool
        Whether the translation faulted.
    vector : numpy.ndarray of uint8
        14 (#PF) or 13 (#GP) where it faulted, else 0.
    error_code : numpy.ndarray of uint64
        The error code where it faulted, else 0.
    level : numpy.ndarray of uint8
        Level of the leaf (or of the entry that ended a #PF walk); 0 without
        paging or on #GP.
    """

    gpa: np.ndarray
    fault: np.ndarray
    vector: np.ndarray
    error_code: np.ndarray
    level: np.ndarray

    def __len__(self) -> int:
        return len(self.gpa)


def _check_gvas(gvas: object, cpu: CpuState) -> np.ndarray:
    if isinstance(gvas, (int, bool)):
        raise TypeError("gvas must be a 1-D array of addresses, got a scalar")
    arr = np.asarray(gvas)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"gvas must be an integer (uint64) array, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"gvas must be 1-D, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.signedinteger) and arr.size and arr.min() < 0:
        raise ValueError("gvas must not contain negative addresses")
    arr = arr.astype(np.uint64, copy=False)  # only read
    if not cpu.lma and arr.size and int(arr.max()) >> 32:
        raise ValueError(
            "gvas: an address does not fit in 32 bits, and the CPU is not in long mode"
        )
    return arr


def _canonical(addrs: np.ndarray, width: int) -> np.ndarray:
    top = addrs >> _U64(width - 1)
    return (top == 0) | (top == _U64((1 << (65 - width)) - 1))


@dataclass(frozen=True)
class _Chunk:
    """Per-lane outcome of one vectorised pass (internal)."""

    ok: np.ndarray
    vector: np.ndarray
    errcode: np.ndarray
    gpa: np.ndarray
    level: np.ndarray
    # A/D writes of the successful lanes: (entry index into the view, bits).
    write_idx: list[np.ndarray]
    write_bits: list[np.ndarray]
    write_lane: list[np.ndarray]


def _walk_chunk(
    view: np.ndarray,
    ctx: WalkContext,
    cpu: CpuState,
    addrs: np.ndarray,
    access: int,
    pdpte_vals: np.ndarray | None,
) -> _Chunk:
    fmt = ctx.fmt
    n = len(addrs)
    nbytes = fmt.entry_bytes
    nshift = 3 if nbytes == 8 else 2
    count = len(view)
    nx = _U64(fmt.nx_mask)
    base_mask = _U64(fmt.base_addr_mask)
    index_mask = _U64(fmt.index_mask)

    vector = np.zeros(n, np.uint8)
    errcode = np.zeros(n, np.uint64)
    level_out = np.zeros(n, np.uint8)
    done = np.zeros(n, bool)  # lane finished (fault or leaf)
    leaf = np.zeros(n, bool)
    leaf_pte = np.zeros(n, np.uint64)
    pte_access = np.full(n, _ALL_ONES, np.uint64)
    entry_gpa: dict[int, np.ndarray] = {}

    # Step 1: the root (for PAE, the PDPTE, which must be present).
    level = ctx.root_level
    if pdpte_vals is not None:
        # The PDPTE for bits 31:30: the level-3 index of a 32-bit address.
        pdpt_index = (addrs >> _U64(fmt.shifts[level])) & index_mask
        table = pdpte_vals[pdpt_index.astype(np.intp)]
        absent = (table & _U64(1)) == 0
        vector[absent] = PF_VECTOR
        level_out[absent] = level
        done |= absent
        level -= 1
    else:
        table = np.full(n, _U64(root_table(cpu)), np.uint64)
    max_level = level

    while level >= 1:
        lanes = np.flatnonzero(~done)
        if lanes.size == 0:
            break
        # Step 2: the entry of this level, for every lane still walking.
        shift = _U64(fmt.shifts[level])
        index = (addrs[lanes] >> shift) & index_mask
        egpa = (table[lanes] & base_mask) + index * _U64(nbytes)
        eidx = egpa >> _U64(nshift)
        outside = eidx >= _U64(count)
        out_lanes = lanes[outside]
        vector[out_lanes] = PF_VECTOR
        level_out[out_lanes] = level
        done[out_lanes] = True
        lanes, egpa, eidx = lanes[~outside], egpa[~outside], eidx[~outside]
        pte = view[eidx.astype(np.intp)].astype(np.uint64)
        full = np.zeros(n, np.uint64)
        full[lanes] = egpa
        entry_gpa[level] = full
        # Step 3: accumulate rights, NX inverted.
        pte_access[lanes] &= pte ^ nx
        # Step 4: present, then reserved bits.
        absent = (pte & _U64(fmt.present_mask)) == 0
        bit7 = ((pte >> _U64(7)) & _U64(1)).astype(bool)
        m0 = _U64(ctx.rsvd.rsvd_bits_mask[0][level - 1])
        m1 = _U64(ctx.rsvd.rsvd_bits_mask[1][level - 1])
        rsvd = ~absent & ((pte & np.where(bit7, m1, m0)) != 0)
        bad = absent | rsvd
        vector[lanes[bad]] = PF_VECTOR
        errcode[lanes[rsvd]] = int(PFERR.RSVD | PFERR.P)
        level_out[lanes[bad]] = level
        done[lanes[bad]] = True
        # Step 5: leaves end the descent.
        if level == 1:
            is_last = ~bad
        elif fmt is PTTYPE32:
            is_last = ~bad & bit7 & (level == 2 and ctx.pse)
        else:
            is_last = ~bad & bit7
        last_lanes = lanes[is_last]
        leaf[last_lanes] = True
        leaf_pte[last_lanes] = pte[is_last]
        level_out[last_lanes] = level
        done[last_lanes] = True
        table = np.zeros(n, np.uint64)
        table[lanes] = pte
        level -= 1

    # Step 6: rights and protection keys, for lanes that reached a leaf.
    lanes = np.flatnonzero(leaf)
    natural = pte_access[lanes] ^ nx
    acc = (natural & _U64(7)) ^ ((natural >> _U64(63)) & _U64(1) if fmt.nx_mask else _U64(0))
    pfec = access & PFEC_INDEX_MASK
    not_smap = cpu.ac and not access & PFERR.IMPLICIT
    perm_byte = ctx.permissions[(pfec | (int(PFERR.RSVD) if not_smap else 0)) >> 1]
    denied = ((_U64(perm_byte) >> acc) & _U64(1)).astype(bool)
    pk = np.zeros(lanes.size, bool)
    if ctx.pkru_mask:
        pkey = (leaf_pte[lanes] >> _U64(PTE64.PKEY.lo)) & _U64(0xF)
        pkru_bits = (_U64(cpu.pkru) >> (pkey * _U64(2))) & _U64(3)
        user_page = (acc & _U64(4)) != 0
        offset = np.where(user_page, _U64(pfec | int(PFERR.RSVD)), _U64(pfec))
        pkru_bits &= _U64(ctx.pkru_mask) >> offset
        pk = pkru_bits != 0
    perm_fault = denied | pk
    f_lanes = lanes[perm_fault]
    vector[f_lanes] = PF_VECTOR
    errcode[f_lanes] = np.where(pk[perm_fault], _U64(PFERR.P | PFERR.PK), _U64(PFERR.P))

    # Step 7: addresses of the successful lanes.
    ok = np.zeros(n, bool)
    ok_lanes = lanes[~perm_fault]
    ok[ok_lanes] = True
    gpa = np.zeros(n, np.uint64)
    lv = level_out[ok_lanes]
    lpte = leaf_pte[ok_lanes]
    for lvl in range(1, ctx.root_level + 1):
        sel = lv == lvl
        if not sel.any():
            continue
        g = (lpte[sel] & _U64(fmt.leaf_addr_mask(lvl))) | (
            addrs[ok_lanes[sel]] & _U64(fmt.offset_mask(lvl))
        )
        if fmt is PTTYPE32 and lvl == 2:
            g |= (lpte[sel] & _U64(PDE32_4M.ADDR_HI.mask)) << _U64(PSE36_SHIFT)
        gpa[ok_lanes[sel]] = g

    # Error codes of page faults: the access's W and U, and F when KVM reports it.
    pf = vector == PF_VECTOR
    extra = access & (PFERR.W | PFERR.U)
    if access & PFERR.F and ctx.has_pferr_fetch:
        extra |= PFERR.F
    errcode[pf] |= _U64(int(extra))

    # Step 8: the A/D writes of the successful lanes (applied by the caller).
    write_idx, write_bits, write_lane = [], [], []
    write = bool(access & PFERR.W)
    if ctx.have_ad and ok_lanes.size:
        for lvl in range(max_level, 0, -1):
            if lvl not in entry_gpa:
                continue
            sel = lv <= lvl  # this level was part of the lane's walk
            lanes_l = ok_lanes[sel]
            if lanes_l.size == 0:
                continue
            bits_l = np.full(lanes_l.size, _U64(fmt.accessed_mask), np.uint64)
            if write:
                bits_l[lv[sel] == lvl] |= _U64(fmt.dirty_mask)
            write_idx.append(entry_gpa[lvl][lanes_l] >> _U64(nshift))
            write_bits.append(bits_l)
            write_lane.append(lanes_l)
    return _Chunk(ok, vector, errcode, gpa, level_out, write_idx, write_bits, write_lane)


def _apply_writes(view: np.ndarray, chunk: _Chunk, upto: int | None = None) -> None:
    """OR the A/D bits of the chunk's lanes (those ``< upto``) into memory."""
    for idx, bits, lanes in zip(chunk.write_idx, chunk.write_bits, chunk.write_lane):
        if upto is not None:
            keep = lanes < upto
            idx, bits = idx[keep], bits[keep]
        if idx.size:
            np.bitwise_or.at(view, idx.astype(np.intp), bits.astype(view.dtype))


def translate_batch(
    mem: GuestMemory, cpu: CpuState, gvas: np.ndarray, access: int = 0
) -> BatchResult:
    """Translate many addresses, as ``translate`` on each in order would.

    Parameters
    ----------
    mem : GuestMemory
        Guest memory; A/D bits are written as the sequential calls would.
    cpu : CpuState
        The CPU state, the same for every address.
    gvas : numpy.ndarray
        A 1-D array of addresses (``uint64``; other non-negative integer
        arrays are converted).
    access : int
        The access, the same for every address.

    Returns
    -------
    BatchResult
        Arrays ``gpa``, ``fault``, ``vector``, ``error_code`` (and ``level``).

    Raises
    ------
    TypeError, ValueError
        On misuse, as :func:`~refimpl.guest.walker.translate` would for any of the
        addresses.
    ImportError
        NumPy is not installed.

    KVM
    ---
    ``arch/x86/kvm/mmu/paging_tmpl.h`` (``FNAME(walk_addr_generic)``),
    vectorised; see the module docstring for why the result equals the
    sequential one.
    """
    addrs, access = _checked(mem, cpu, gvas, access)
    if cpu.mode.long_mode and _ctx_is_x86(cpu):
        return _batch_long_mode(mem, cpu, addrs, access)
    return _batch_generic(mem, cpu, addrs, access)


def _checked(mem: GuestMemory, cpu: CpuState, gvas: object, access: object):
    """The arguments of both batch walks, checked: (addresses, access)."""
    _numpy()
    if not isinstance(mem, GuestMemory):
        raise TypeError(f"mem must be a GuestMemory, got {type(mem).__name__}")
    if not isinstance(cpu, CpuState):
        raise TypeError(f"cpu must be a CpuState, got {type(cpu).__name__}")
    return _check_gvas(gvas, cpu), check_access(access)


def translate_batch_clear(
    mem: GuestMemory, cpu: CpuState, gvas: np.ndarray, access: int = 0
) -> BatchResult:
    """:func:`translate_batch` without its long-mode fast path.

    Same parameters, result and exceptions; ``tests/fast/test_fast_paths.py``
    checks that the two agree.
    """
    addrs, access = _checked(mem, cpu, gvas, access)
    return _batch_generic(mem, cpu, addrs, access)


def _batch_generic(
    mem: GuestMemory, cpu: CpuState, addrs: np.ndarray, access: int
) -> BatchResult:
    n = len(addrs)

    gpa = np.zeros(n, np.uint64)
    fault = np.zeros(n, bool)
    vector = np.zeros(n, np.uint8)
    error_code = np.zeros(n, np.uint64)
    level = np.zeros(n, np.uint8)
    mode = cpu.mode
    if mode is PagingMode.NONE:
        gpa[:] = addrs
        return BatchResult(gpa, fault, vector, error_code, level)

    todo = np.arange(n)
    if mode.long_mode:
        bad = ~_canonical(addrs, cpu.linear_address_bits)
        fault[bad] = True
        vector[bad] = GP_VECTOR
        todo = todo[~bad]

    ctx = walk_context(cpu)
    dtype = "<u8" if ctx.fmt.entry_bytes == 8 else "<u4"
    view = np.frombuffer(mem.buffer, dtype=dtype, count=mem.size // ctx.fmt.entry_bytes)

    def settle(lanes: np.ndarray, chunk: _Chunk, upto: int) -> None:
        sel = lanes[:upto]
        fault[sel] = ~chunk.ok[:upto]
        vector[sel] = chunk.vector[:upto]
        error_code[sel] = chunk.errcode[:upto]
        gpa[sel] = chunk.gpa[:upto]
        level[sel] = chunk.level[:upto]

    if mode is not PagingMode.PAE:
        chunk = _walk_chunk(view, ctx, cpu, addrs[todo], access, None)
        settle(todo, chunk, len(todo))
        _apply_writes(view, chunk)
        return BatchResult(gpa, fault, vector, error_code, level)

    # PAE: rounds, restarting after any address whose A/D writes change the PDPT.
    base = cpu.cr3 & PAE_CR3_PDPT_MASK
    rsvd = pdpte_rsvd_mask(cpu.maxphyaddr)
    while todo.size:
        if not mem.contains(base, 32):
            pdpte_vals = None
        else:
            pdpte_vals = view[base // 8 : base // 8 + 4].astype(np.uint64).copy()
            if any(int(v) & 1 and int(v) & rsvd for v in pdpte_vals):
                pdpte_vals = None
        if pdpte_vals is None:  # the CR3 load would #GP: no walk, no writes
            fault[todo] = True
            vector[todo] = GP_VECTOR
            break
        chunk = _walk_chunk(view, ctx, cpu, addrs[todo], access, pdpte_vals)
        # First lane whose writes set a bit that the PDPT does not have yet.
        first = len(todo)
        for idx, bits, lanes in zip(chunk.write_idx, chunk.write_bits, chunk.write_lane):
            word = idx.astype(np.int64) - base // 8
            inside = (word >= 0) & (word < 4)
            if not inside.any():
                continue
            w = word[inside]
            new = bits[inside] & ~pdpte_vals[w]
            hit = lanes[inside][new != 0]
            if hit.size:
                first = min(first, int(hit.min()))
        upto = min(first + 1, len(todo))
        settle(todo, chunk, upto)
        _apply_writes(view, chunk, upto)
        todo = todo[upto:]
    return BatchResult(gpa, fault, vector, error_code, level)


# ---------------------------------------------------------------------------
# The fast path: four- and five-level paging.
# ---------------------------------------------------------------------------
#
# _walk_chunk above narrows the lanes at every level (flatnonzero, then
# indexing every array by the survivors) and allocates per-level arrays of
# the whole batch. For long mode, _batch_long_mode instead walks blocks of
# _CHUNK lanes, small enough that a block's arrays stay in the CPU cache,
# and never narrows: every lane does every level. A lane that stops (not
# present, a reserved bit, a leaf, a table outside memory) has its level,
# entry and rights recorded at that moment and is then ignored, while it
# goes on walking whatever its entry points at (gathers clip to memory).
# The verdicts (steps 4 to 7) are then taken once, on the recorded values.
# A/D bits are ORed in only where one is missing.

#: Lanes walked together by the long-mode fast path.
_CHUNK = 8192
_PFERR_P = int(PFERR.P)
_PFERR_RSVD_P = int(PFERR.RSVD | PFERR.P)
_PFERR_P_PK = int(PFERR.P | PFERR.PK)


def _ctx_is_x86(cpu: CpuState) -> bool:
    """Whether ``cpu``'s walk context has the 64-bit x86 entry format."""
    return walk_context(cpu).fmt.name == "64"


def _batch_long_mode(
    mem: GuestMemory, cpu: CpuState, addrs: np.ndarray, access: int
) -> BatchResult:
    ctx = walk_context(cpu)
    fmt = ctx.fmt
    n = len(addrs)
    words = np.frombuffer(mem.buffer, dtype="<u8", count=mem.size // 8)
    gpa = np.zeros(n, np.uint64)
    vector = np.zeros(n, np.uint8)
    error_code = np.zeros(n, np.uint64)
    level = np.zeros(n, np.uint8)
    if n == 0 or len(words) == 0:
        if n:  # no memory: every canonical address faults at the root
            canonical = _canonical(addrs, cpu.linear_address_bits)
            vector[:] = np.where(canonical, PF_VECTOR, GP_VECTOR)
            level[:] = np.where(canonical, ctx.root_level, 0)
            error_code[canonical] = _error_extra(ctx, access)
        return BatchResult(gpa, vector != 0, vector, error_code, level)
    k = _LongModeConstants(ctx, cpu, access)
    # Per level: entry word indexes, entry values, rights so far (NX
    # inverted); one row per level, reused by every chunk.
    width = min(n, _CHUNK)
    rows = (
        np.empty((ctx.root_level, width), np.int64),
        np.empty((ctx.root_level, width), np.uint64),
        np.empty((ctx.root_level, width), np.uint64),
    )
    for start in range(0, n, _CHUNK):
        end = min(start + _CHUNK, n)
        _walk_long_chunk(
            words, k, rows, addrs[start:end],
            gpa[start:end], vector[start:end], error_code[start:end], level[start:end],
        )
    assert fmt.entry_bytes == 8
    return BatchResult(gpa, vector != 0, vector, error_code, level)


def _error_extra(ctx: WalkContext, access: int) -> int:
    """The access bits every #PF error code gets: W, U, and F if KVM reports it."""
    extra = access & int(PFERR.W | PFERR.U)
    if access & PFERR.F and ctx.has_pferr_fetch:
        extra |= int(PFERR.F)
    return extra


class _LongModeConstants:
    """What every block of a long-mode batch shares (internal)."""

    def __init__(self, ctx: WalkContext, cpu: CpuState, access: int) -> None:
        fmt = ctx.fmt
        self.root_level = ctx.root_level
        self.levels = tuple(range(ctx.root_level, 0, -1))
        # Step 2's index, as EntryFormat.index computes it.
        self.shifts = fmt.shifts
        self.index_mask = fmt.index_mask
        self.root_index = root_table(cpu) >> 3
        self.width = cpu.linear_address_bits
        # Bits that stop the plain descent at each level: P clear, a reserved
        # bit, or bit 7 above level 1 (index = level).
        masks = ctx.rsvd.rsvd_bits_mask
        self.stop = [0] + [
            int(PTE64.P.bit) | masks[0][lv - 1] | (PTE64.PS.bit if lv > 1 else 0)
            for lv in range(1, 6)
        ]
        # Reserved bits, indexed by bit 7 * 6 + level.
        self.rsvd = np.array([0] + list(masks[0]) + [0] + list(masks[1]), np.uint64)
        self.leaf_mask = np.array([fmt.leaf_addr_mask(max(lv, 1)) for lv in range(6)], np.uint64)
        self.offset_mask = np.array([fmt.offset_mask(max(lv, 1)) for lv in range(6)], np.uint64)
        self.base_addr_mask = fmt.base_addr_mask
        self.nx = fmt.nx_mask
        pfec = access & PFEC_INDEX_MASK
        not_smap = cpu.ac and not access & PFERR.IMPLICIT
        perm_byte = ctx.permissions[(pfec | (int(PFERR.RSVD) if not_smap else 0)) >> 1]
        #: Whether the access faults on a page with rights acc, by acc.
        self.denied = np.array([bool((perm_byte >> acc) & 1) for acc in range(8)])
        self.pfec = pfec
        self.pkru_mask = ctx.pkru_mask
        self.pkru = cpu.pkru
        self.extra = _error_extra(ctx, access)
        self.write = bool(access & PFERR.W)
        self.accessed = fmt.accessed_mask
        self.dirty = fmt.dirty_mask


def _walk_long_chunk(
    words: np.ndarray,
    k: _LongModeConstants,
    rows: tuple[np.ndarray, np.ndarray, np.ndarray],
    addrs: np.ndarray,
    gpa_out: np.ndarray,
    vector_out: np.ndarray,
    error_out: np.ndarray,
    level_out: np.ndarray,
) -> None:
    m = len(addrs)
    nwords = len(words)
    signed = addrs.view(np.int64)  # arithmetic shifts keep the index bits
    # Row r of each array is level levels[r] (columns past m are stale).
    index_rows, value_rows, access_rows = rows
    width = index_rows.shape[1]
    walking = np.ones(m, bool)
    depth = np.zeros(m, np.uint8)  # rows passed: the row where the lane stops
    outside_any = None
    table: np.ndarray | int = k.root_index  # the table, as a word index
    for row, lv in enumerate(k.levels):
        # Step 2: the entry; a table outside memory stops the lane here.
        index = index_rows[row, :m]
        np.right_shift(signed, k.shifts[lv], out=index)
        index &= k.index_mask
        index += table
        if index.max() >= nwords:
            outside = (index >= nwords) & walking
            outside_any = outside if outside_any is None else outside_any | outside
            walking &= ~outside
        pte = words.take(index, mode="clip", out=value_rows[row, :m])
        # Step 3: rights, NX inverted.
        pte_access = np.bitwise_xor(pte, _U64(k.nx), out=access_rows[row, :m])
        if row:
            pte_access &= access_rows[row - 1, :m]
        if lv == 1:
            break
        # Steps 4-5, deferred: a lane goes on only through an entry with P
        # set, no reserved bit and bit 7 clear; depth counts its rows.
        walking &= (pte & _U64(k.stop[lv])) == _U64(1)
        np.add(depth, walking, out=depth, casting="unsafe")
        table = ((pte & _U64(k.base_addr_mask)) >> _U64(3)).view(np.int64)

    # Where each lane stopped: its level, entry, and rights.
    flat = depth.astype(np.intp)
    flat *= width
    flat += np.arange(m)
    stop_pte = value_rows.take(flat)
    stop_access = access_rows.take(flat)
    stop_level = np.subtract(k.root_level, depth, dtype=np.uint8)

    # Step 4: not present (or outside memory), then reserved bits.
    present = (stop_pte & _U64(1)) != 0
    if outside_any is not None:
        present &= ~outside_any
    rsvd_index = ((stop_pte >> _U64(7)) & _U64(1)).astype(np.uint8)
    rsvd_index *= 6
    rsvd_index += stop_level
    rsvd = (stop_pte & k.rsvd.take(rsvd_index)) != 0
    rsvd &= present
    leaf = present & ~rsvd
    # Step 6: rights (ACC: W, U from the AND; EXEC where no NX), and keys.
    acc = (stop_access & _U64(6)) | (stop_access >> _U64(63))
    denied = k.denied.take(acc)
    if k.pkru_mask:
        pkey = (stop_pte >> _U64(PTE64.PKEY.lo)) & _U64(0xF)
        pkru_bits = (_U64(k.pkru) >> (pkey * _U64(2))) & _U64(3)
        offset = np.where((acc & _U64(4)) != 0, _U64(k.pfec | int(PFERR.RSVD)), _U64(k.pfec))
        pk = (pkru_bits & (_U64(k.pkru_mask) >> offset)) != 0
        denied = denied | pk
    else:
        pk = None
    ok = leaf & ~denied
    top = signed >> (k.width - 1)
    canonical = (top == 0) | (top == -1)
    all_canonical = bool(canonical.all())
    if not all_canonical:
        ok &= canonical
    # Step 7: addresses.
    gpa = stop_pte & k.leaf_mask.take(stop_level)
    gpa |= addrs & k.offset_mask.take(stop_level)
    gpa_out[:] = np.where(ok, gpa, _U64(0))
    # The outcome: #PF with its error code, or #GP for a non-canonical address.
    err = np.where(ok, _U64(0), _U64(k.extra))
    if rsvd.any():
        err[rsvd] |= _U64(_PFERR_RSVD_P)
    perm = leaf & denied
    if perm.any():
        err[perm] |= _U64(_PFERR_P) if pk is None else np.where(
            pk[perm], _U64(_PFERR_P_PK), _U64(_PFERR_P)
        )
    error_out[:] = err
    vector_out[:] = np.where(ok, np.uint8(0), np.uint8(PF_VECTOR))
    level_out[:] = stop_level
    if not all_canonical:
        vector_out[~canonical] = GP_VECTOR
        error_out[~canonical] = 0
        level_out[~canonical] = 0
        gpa_out[~canonical] = 0

    # Step 8: OR A into every entry of a successful walk, and D into its
    # leaf on a write, where a bit is missing (OR is order-free). The A bit
    # of stop_access is the AND of the A bits of the lane's entries.
    missing = (stop_access & _U64(k.accessed)) == 0
    if k.write:
        missing |= (stop_pte & _U64(k.dirty)) == 0
    missing &= ok
    if not missing.any():
        return
    lanes = np.flatnonzero(missing)
    last_row = depth[lanes]
    for row in range(len(k.levels)):
        sel = last_row >= row
        bits = np.full(int(sel.sum()), _U64(k.accessed), np.uint64)
        if k.write:
            bits[last_row[sel] == row] |= _U64(k.dirty)
        np.bitwise_or.at(words, index_rows[row, lanes[sel]], bits)
