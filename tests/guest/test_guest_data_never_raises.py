"""Guest-controlled data never raises, in every mode of every walk.

Random memory (half random words, half entry-like words pointing into the
memory, with random reserved, NX and high address bits), random table roots
and random addresses go through ``translate``, ``translate_batch``,
``ept_translate``, ``npt_translate`` (32-bit, PAE, four- and five-level NPT)
and ``nested_translate`` (L2 in every paging mode, over EPT with four or five
levels and over NPT in every mode). Every call must return a translation or
a guest-visible fault, never raise. ``tests/api/test_bad_input.py`` has the
first version of this for the walker alone.
"""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings, strategies as st

from refimpl import CpuState, GuestMemory, ept_translate, translate, translate_batch
from refimpl.guest.ept import npt_translate
from refimpl.guest.nested import nested_translate

PG_PE = (1 << 31) | 1
# (cr4, efer) of each paging mode: 32-bit, 32-bit with PSE, PAE, 4-level, 5-level.
MODES = [(0, 0), (0x10, 0), (0x20, 0x800), (0x20, 0xD00), (0x1020, 0xD00)]
ACCESS = st.sampled_from([0, 2, 4, 16, 6, 1 << 48, 20])
SIZE = 0x8000


def guest_image(seed: int) -> GuestMemory:
    rng = random.Random(seed)
    mem = GuestMemory(SIZE)
    pages = SIZE >> 12
    for off in range(0, SIZE, 8):
        if rng.random() < 0.4:
            word = rng.getrandbits(64)
        else:
            word = (rng.randrange(pages + 2) << 12) | rng.getrandbits(12)
            word |= rng.choice([0, 0, 0, 1 << 63, rng.getrandbits(12) << 52, 1 << 45])
        mem.write64(off, word)
    return mem


def is_result(r) -> bool:
    return (r.fault is None) != (r.gpa is None)


def cpu_for(mode: int, cr3: int, extra_cr4: int, maxphyaddr: int) -> CpuState:
    cr4, efer = MODES[mode]
    # WP, SMEP, SMAP, PKE as drawn: all legal in every mode.
    return CpuState(cr0=PG_PE | (1 << 16), cr3=cr3, cr4=cr4 | extra_cr4, efer=efer,
                    maxphyaddr=maxphyaddr)


def gva_for(cpu: CpuState, gva: int) -> int:
    return gva if cpu.lma else gva & 0xFFFF_FFFF


EXTRA_CR4 = st.sampled_from([0, 1 << 20, 1 << 21, 1 << 22, (1 << 20) | (1 << 21)])


@settings(max_examples=40, derandomize=True, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), mode=st.integers(0, 4), root=st.integers(0, 9),
       extra=EXTRA_CR4, maxphyaddr=st.integers(32, 52), gva=st.integers(0, 2**64 - 1),
       access=ACCESS)
def test_translate_and_batch_in_every_mode(seed, mode, root, extra, maxphyaddr, gva, access):
    mem = guest_image(seed)
    cpu = cpu_for(mode, root << 12, extra, maxphyaddr)
    gva = gva_for(cpu, gva)
    r = translate(mem.copy(), cpu, gva, access)
    assert is_result(r)
    if r.fault is not None:
        assert r.fault.vector in (13, 14)
    b = translate_batch(mem.copy(), cpu, np.array([gva, gva ^ 0x1000], dtype=np.uint64), access)
    assert bool(b.fault[0]) == (r.fault is not None)


@settings(max_examples=40, derandomize=True, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), root=st.integers(0, 9), levels=st.sampled_from([3, 4]),
       ad=st.booleans(), mode=st.integers(0, 4), maxphyaddr=st.integers(32, 52),
       gpa=st.integers(0, 2**52 - 1), access=st.sampled_from([0, 2, 16, 18]),
       execute_only=st.booleans())
def test_ept_and_npt_in_every_mode(seed, root, levels, ad, mode, maxphyaddr, gpa, access,
                                   execute_only):
    mem = guest_image(seed)
    eptp = (root << 12) | (ad << 6) | (levels << 3) | 6
    e = ept_translate(mem, eptp, gpa, access, maxphyaddr=maxphyaddr, execute_only=execute_only)
    assert is_result(e)
    if e.fault is not None:
        assert e.fault.kind in ("violation", "misconfig")
    cr4, efer = MODES[mode]
    npt_gpa = gpa if efer & 0x400 else gpa & 0xFFFF_FFFF
    n = npt_translate(mem, root << 12, npt_gpa, access, cr4=cr4, efer=efer, maxphyaddr=maxphyaddr)
    assert is_result(n)


@settings(max_examples=40, derandomize=True, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), l2_mode=st.integers(0, 4), l2_root=st.integers(0, 9),
       extra=EXTRA_CR4, l1_root=st.integers(0, 9), use_ept=st.booleans(),
       levels=st.sampled_from([3, 4]), ad=st.booleans(), l1_mode=st.integers(0, 4),
       maxphyaddr=st.integers(32, 52), gva=st.integers(0, 2**64 - 1), access=ACCESS,
       execute_only=st.booleans())
def test_nested_translate_in_every_mode(seed, l2_mode, l2_root, extra, l1_root, use_ept, levels,
                                        ad, l1_mode, maxphyaddr, gva, access, execute_only):
    mem = guest_image(seed)
    l2 = cpu_for(l2_mode, l2_root << 12, extra, 52)
    gva = gva_for(l2, gva)
    if use_ept:
        eptp = (l1_root << 12) | (ad << 6) | (levels << 3) | 6
        r = nested_translate(mem, l2, gva, access, eptp=eptp, maxphyaddr=maxphyaddr,
                             execute_only=execute_only)
    else:
        cr4, efer = MODES[l1_mode]
        r = nested_translate(mem, l2, gva, access, ncr3=l1_root << 12, l1_cr4=cr4, l1_efer=efer,
                             maxphyaddr=maxphyaddr)
    assert (r.fault is None) == (r.l1_gpa is not None)
