"""A faster :func:`~refimpl.guest.walker.translate` for four- and five-level paging.

Can be skipped on a first reading: nothing here defines behaviour.
:func:`refimpl.guest.walker.translate` is the definition, and
:func:`translate` below gives exactly its results (every field, and the A/D
bits left in memory); ``tests/fast/test_fast_paths.py`` checks that on seeded
random images in every paging mode, with random control bits and accesses.
``refimpl.translate`` is this one.

How it is faster
----------------
:func:`~refimpl.guest.walker.walk_addr_generic` is written once for every
format: it looks the format's masks up at each call, loops over levels,
builds a ``Walk`` and then a result. For long mode, :func:`fast_walker`
builds, once per set of register values, a closure with every constant
bound (the root, the reserved-bit masks, the permission byte of each
access, the index shifts of :class:`~refimpl.guest.formats.EntryFormat`).
In four-level paging its walk is written out level by level (``walk4``), as
the C of ``paging_tmpl.h`` would be after unrolling; five-level paging makes
the same reads and tests in a loop (``walk5``).

Per level ``walk4`` reads the entry (step 2 of the walker) through a view
of guest memory as 64-bit words, and makes one test, "are the bits that
matter exactly P?". An entry that is not a plain present table entry (not
present, a reserved bit, bit 7) fails it. A plain 2 MiB or 1 GiB leaf, or
a plain 4 KiB leaf, that the access may use with every A bit (and, for a
write, D) already set, is finished inline. Everything else goes to
``stopped()``, which takes steps 3 to 8 as the walker does. A table outside
memory (``IndexError`` from the word view) is rare enough to hand to the
definition: nothing has been written yet. So is every other mode, and any
argument that needs checking or converting.

KVM
---
None: KVM walks with ``FNAME(walk_addr_generic)`` in
``arch/x86/kvm/mmu/paging_tmpl.h``, which this restates, unrolled.
"""

from __future__ import annotations

from dataclasses import fields
from functools import lru_cache

from refimpl.guest import walker
from refimpl.guest.cpu import CpuState
from refimpl.guest.faults import Fault, WalkError, _fault_for
from refimpl.guest.formats import ACC, PFERR, PTE64, PTTYPE64
from refimpl.guest.memory import GuestMemory
from refimpl.guest.permissions import _permission_fault
from refimpl.guest.walker import (
    ACCESS_FETCH,
    ACCESS_IMPLICIT,
    ACCESS_USER,
    ACCESS_WRITE,
    TranslateResult,
    _update_accessed_dirty_bits,
)

__all__ = ["translate", "fast_walker"]


def translate(
    mem: GuestMemory, cpu: CpuState, gva: int, access: int = 0
) -> TranslateResult:
    """:func:`refimpl.guest.walker.translate`, faster in four- and five-level paging.

    Same parameters, result and exceptions as the definition, to which it
    hands every call it does not finish itself. This is ``refimpl.translate``.

    KVM
    ---
    ``arch/x86/kvm/mmu/paging_tmpl.h`` (``FNAME(walk_addr_generic)``),
    unrolled; see the module docstring.
    """
    try:
        walk = cpu._fast_walk  # type: ignore[union-attr]
    except AttributeError:
        walk = fast_walker(cpu)
    if walk is not None and type(mem) is GuestMemory and int is type(gva) is type(access):
        return walk(mem, gva, access)
    return walker.translate(mem, cpu, gva, access)


def fast_walker(cpu: CpuState):
    """The fast walker for ``cpu``, or None outside long mode; remembered on ``cpu``.

    ``walk(mem, gva, access)`` returns what the definition returns, for a
    ``GuestMemory`` and an int ``gva`` and ``access`` (it hands anything it
    does not handle, bad values included, to the definition). Equal
    CpuStates share one walker.

    Raises
    ------
    TypeError
        ``cpu`` is not a CpuState.
    """
    if not isinstance(cpu, CpuState):
        raise TypeError(f"cpu must be a CpuState, got {type(cpu).__name__}")
    walk = None
    if type(cpu) is CpuState and cpu.mode.long_mode and _LITTLE_ENDIAN:
        walk = _shared_fast_walk(tuple(getattr(cpu, name) for name in _CPU_FIELDS))
    object.__setattr__(cpu, "_fast_walk", walk)
    return walk


_CPU_FIELDS = tuple(f.name for f in fields(CpuState))
_LITTLE_ENDIAN = GuestMemory(8)._word_view() is not None


@lru_cache(maxsize=1024)
def _shared_fast_walk(values: tuple):
    """One walker per distinct set of register values, ``values`` in the
    order of CpuState's fields (the MMU models build a new, equal CpuState
    for each access)."""
    return _make_fast_walk(CpuState(**dict(zip(_CPU_FIELDS, values))))


# Plain ints for the hot loop.
_GVA_LIMIT = 1 << 64
_NX = PTE64.XD.bit
_P = PTE64.P.bit
_A = PTE64.A.bit
_D = PTE64.D.bit
_PS = PTE64.PS.bit
_W = ACCESS_WRITE
_NOT_ACC_WRITE = ~int(ACC.WRITE)
_ACC_WU = int(ACC.WRITE | ACC.USER)
_PFEC_INDEX = int(PFERR.W | PFERR.U | PFERR.F)
_NOT_SMAP = int(PFERR.RSVD)
_PERM_FAULT = int(PFERR.P)
_RSVD_FAULT = int(PFERR.RSVD | PFERR.P)
#: Every valid access: the subsets of W, U, F and IMPLICIT.
_ACCESSES = frozenset(
    w | u | f | i
    for w in (0, ACCESS_WRITE)
    for u in (0, ACCESS_USER)
    for f in (0, ACCESS_FETCH)
    for i in (0, ACCESS_IMPLICIT)
)

# TranslateResult is a NamedTuple: one tuple allocation builds it, with no
# Python-level __init__ (the keyword-checking __new__ NamedTuple generates
# costs a third of a walk).
_tuple_new = tuple.__new__


def _result(gpa, fault, level, trace, access_rights) -> TranslateResult:
    return _tuple_new(TranslateResult, (gpa, fault, level, trace, access_rights))


def _make_fast_walk(cpu: CpuState):
    ctx = walker.walk_context(cpu)
    fmt = ctx.fmt
    assert fmt is PTTYPE64 and ctx.have_ad and not ctx.rsvd.bad_mt_xwr
    definition = walker.translate
    root = walker.root_table(cpu)
    root_word = root >> 3  # the root table, as an index into the word view
    five_level = ctx.root_level == 5
    addr = fmt.base_addr_mask
    # Step 2's index, from EntryFormat: (gva >> shift) & mask at each level.
    _, s1, s2, s3, s4, s5 = fmt.shifts
    index_mask = fmt.index_mask
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
    leaf_mask = (0,) + tuple(fmt.leaf_addr_mask(lv) for lv in range(1, 6))
    offset_mask = (0,) + tuple(fmt.offset_mask(lv) for lv in range(1, 6))
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

    def fault_result(reason, access, level, trace, acc=0, errcode=0):
        key = (access, level, errcode)  # errcode tells the three reasons apart
        fault = faults.get(key)
        if fault is None:
            fault = faults[key] = _fault_for(reason, access, has_pferr_fetch, errcode, level)
        return _result(None, fault, level, trace, acc)

    def stopped(mem, gva, access, level, trace):
        """Steps 3 to 8, as the walker takes them, for a walk that the plain
        path does not finish; ``trace`` holds the entries read, from the
        root down to where it stopped."""
        pte = trace[-1][2]
        # Step 4: present, then reserved bits.
        if not pte & _P:
            return fault_result(WalkError.NOT_PRESENT, access, level, trace)
        if pte & rsvd[(pte >> 7) & 1][level]:
            return fault_result(WalkError.RSVD, access, level, trace, 0, _RSVD_FAULT)
        # Step 5: what is left is a leaf (bit 7 above level 1, or level 1).
        # Step 3, then 6: W, U and A ANDed over the entries, NX ORed. ACC is
        # W and U, and EXEC (1) unless some entry has NX.
        both = ored = pte
        for _level, _gpa, entry in trace:
            both &= entry
            ored |= entry
        acc = (both & _ACC_WU) | (ored < _NX)
        if pkru_mask:
            errcode = _permission_fault(
                permissions, pkru_mask, acc, fmt.gpte_pkey(pte), access, rflags_ac, pkru
            )
        else:
            errcode = _PERM_FAULT if (perm_byte[access] >> acc) & 1 else 0
        if errcode:
            return fault_result(WalkError.PERMISSION, access, level, trace, acc, errcode)
        # Step 7, and protect_clean_gpte.
        gpa = (pte & leaf_mask[level]) | (gva & offset_mask[level])
        write = access & _W
        if not write and not pte & _D:
            acc &= _NOT_ACC_WRITE
        # Step 8: A/D, only when a bit is missing.
        if not both & _A or (write and not pte & _D):
            _update_accessed_dirty_bits(mem, fmt, trace, bool(write))
        return _result(gpa, None, level, trace, acc)

    shifts = (0, s1, s2, s3, s4, s5)

    def walk5(mem: GuestMemory, gva: int, access: int) -> TranslateResult:
        """Five-level paging: the same reads and test, in a loop; stopped()
        finishes every walk."""
        if (
            not 0 <= gva < half_low and not half_high <= gva < _GVA_LIMIT
            or access not in inline_perm
        ):
            # Not canonical (#GP), or a bad address or access (ValueError).
            return definition(mem, cpu, gva, access)
        words = mem._words or mem._word_view()
        table = root_word
        trace = []
        try:
            for level in (5, 4, 3, 2, 1):
                w = table + ((gva >> shifts[level]) & index_mask)
                pte = words[w]
                trace.append((level, w << 3, pte))
                if level == 1 or pte & stops[level] != _P:
                    break
                table = (pte & addr) >> 3
        except IndexError:  # a table outside guest memory
            return definition(mem, cpu, gva, access)
        return stopped(mem, gva, access, level, tuple(trace))

    def walk4(mem: GuestMemory, gva: int, access: int) -> TranslateResult:
        """Four-level paging, unrolled."""
        if not 0 <= gva < half_low and not half_high <= gva < _GVA_LIMIT:
            # Not canonical (#GP), or not an address at all (ValueError).
            return definition(mem, cpu, gva, access)
        try:
            perm = inline_perm[access]
        except KeyError:  # not an access: the definition says why
            return definition(mem, cpu, gva, access)
        words = mem._words or mem._word_view()
        try:
            # Step 2 at each level: the entry, at word w: the table's word
            # plus the index of gva for the level; then the test.
            w4 = root_word + ((gva >> s4) & index_mask)
            p4 = words[w4]
            e4 = (4, w4 << 3, p4)
            if p4 & stop4 != _P:
                return stopped(mem, gva, access, 4, (e4,))
            w3 = ((p4 & addr) >> 3) + ((gva >> s3) & index_mask)
            p3 = words[w3]
            e3 = (3, w3 << 3, p3)
            if p3 & stop3 != _P:
                if p3 & big3 != big3_ok:
                    return stopped(mem, gva, access, 3, (e4, e3))
                # A 1 GiB page: finished below.
                level, leaf, trace, both, ored = 3, p3, (e4, e3), p4 & p3, p4 | p3
            else:
                w2 = ((p3 & addr) >> 3) + ((gva >> s2) & index_mask)
                p2 = words[w2]
                e2 = (2, w2 << 3, p2)
                if p2 & stop2 != _P:
                    if p2 & big2 != big2_ok:
                        return stopped(mem, gva, access, 2, (e4, e3, e2))
                    # A 2 MiB page: finished below.
                    level, leaf, trace = 2, p2, (e4, e3, e2)
                    both, ored = p4 & p3 & p2, p4 | p3 | p2
                else:
                    w1 = ((p2 & addr) >> 3) + ((gva >> s1) & index_mask)
                    p1 = words[w1]
                    trace = (e4, e3, e2, (1, w1 << 3, p1))
                    # A 4 KiB page. Anything but a present, reserved-bit-free
                    # leaf, that the access may use by the W and U bits ANDed
                    # over the entries (steps 3 and 6), with A set everywhere
                    # and, for a write, D in the leaf, goes the general way.
                    if p1 & stop1 != _P:
                        return stopped(mem, gva, access, 1, trace)
                    level, leaf = 1, p1
                    both, ored = p4 & p3 & p2 & p1, p4 | p3 | p2 | p1
        except IndexError:  # a table outside guest memory
            return definition(mem, cpu, gva, access)
        if (perm >> (both & _ACC_WU)) & 1 or not both & _A or (access & _W and not leaf & _D):
            return stopped(mem, gva, access, level, trace)
        # Step 7; step 8 has nothing to do. ACC: W and U ANDed, EXEC unless
        # an entry has NX, W dropped for a read of a clean page.
        acc = (both & _ACC_WU) | (ored < _NX)
        if not leaf & _D:
            acc &= _NOT_ACC_WRITE
        return _tuple_new(TranslateResult, ((leaf & leaf_mask[level]) | (gva & offset_mask[level]),
                                            None, level, trace, acc))

    return walk5 if five_level else walk4
