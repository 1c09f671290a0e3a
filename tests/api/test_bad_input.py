"""Misuse raises TypeError/ValueError naming the argument; guest data never raises.

The first half is a table of bad calls. The second half feeds random memory
contents and random (valid) register values to the walkers: whatever the guest
wrote, a walk returns a result.
"""

import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from refimpl import ACCESS_FETCH, ACCESS_IMPLICIT, ACCESS_USER, ACCESS_WRITE, CpuState, GuestMemory, ept_translate, translate, translate_batch
from refimpl.guest.ept import npt_translate

PG_PE = (1 << 31) | 1
LONG_CPU = CpuState(cr0=PG_PE, cr3=0x1000, cr4=0x20, efer=0x500)
CPU32 = CpuState(cr0=PG_PE, cr3=0x1000)
MEM = GuestMemory(0x2000)


def call_translate(**kw):
    args = dict(mem=MEM, cpu=LONG_CPU, gva=0x1000, access=0)
    args.update(kw)
    return lambda: translate(args["mem"], args["cpu"], args["gva"], args["access"])


def call_batch(**kw):
    args = dict(mem=MEM, cpu=LONG_CPU, gvas=np.array([0], dtype=np.uint64), access=0)
    args.update(kw)
    return lambda: translate_batch(args["mem"], args["cpu"], args["gvas"], args["access"])


BAD_CALLS = [
    # (description, callable, exception, word the message must contain)
    ("gva as str", call_translate(gva="0x10"), TypeError, "gva"),
    ("gva as float", call_translate(gva=1.0), TypeError, "gva"),
    ("gva as bool", call_translate(gva=True), TypeError, "gva"),
    ("gva None", call_translate(gva=None), TypeError, "gva"),
    ("negative gva", call_translate(gva=-1), ValueError, "gva"),
    ("gva >= 2**64", call_translate(gva=1 << 64), ValueError, "gva"),
    ("gva >= 2**32 in 32-bit paging", call_translate(cpu=CPU32, gva=1 << 32), ValueError, "gva"),
    ("gva >= 2**32 without paging", call_translate(cpu=CpuState(), gva=1 << 32), ValueError, "gva"),
    ("access P bit", call_translate(access=1), ValueError, "access"),
    ("access RSVD bit", call_translate(access=1 << 3), ValueError, "access"),
    ("access PK bit", call_translate(access=1 << 5), ValueError, "access"),
    ("access bit 49", call_translate(access=1 << 49), ValueError, "access"),
    ("negative access", call_translate(access=-2), ValueError, "access"),
    ("access as bool", call_translate(access=True), TypeError, "access"),
    ("access None", call_translate(access=None), TypeError, "access"),
    ("mem not GuestMemory", call_translate(mem=bytearray(16)), TypeError, "mem"),
    ("cpu not CpuState", call_translate(cpu={"cr0": 0}), TypeError, "cpu"),
    ("PG without PE", lambda: CpuState(cr0=1 << 31), ValueError, "cr0"),
    ("cr0 as bool", lambda: CpuState(cr0=True), TypeError, "cr0"),
    ("cr4 as float", lambda: CpuState(cr4=1.5), TypeError, "cr4"),
    ("negative cr3", lambda: CpuState(cr3=-1), ValueError, "cr3"),
    ("cr3 >= 2**64", lambda: CpuState(cr3=1 << 64), ValueError, "cr3"),
    ("rflags >= 2**64", lambda: CpuState(rflags=1 << 64), ValueError, "rflags"),
    ("LMA without PG", lambda: CpuState(efer=1 << 10), ValueError, "efer"),
    ("LMA without PAE", lambda: CpuState(cr0=PG_PE, efer=1 << 10), ValueError, "efer"),
    ("pkru >= 2**32", lambda: CpuState(pkru=1 << 32), ValueError, "pkru"),
    ("maxphyaddr 53", lambda: CpuState(maxphyaddr=53), ValueError, "maxphyaddr"),
    ("maxphyaddr 31", lambda: CpuState(maxphyaddr=31), ValueError, "maxphyaddr"),
    ("maxphyaddr as bool", lambda: CpuState(maxphyaddr=True), TypeError, "maxphyaddr"),
    ("gbpages as str", lambda: CpuState(gbpages="yes"), TypeError, "gbpages"),
    ("gbpages 2", lambda: CpuState(gbpages=2), TypeError, "gbpages"),
    ("negative size", lambda: GuestMemory(-1), ValueError, "size"),
    ("size as float", lambda: GuestMemory(4096.0), TypeError, "size"),
    ("size as bool", lambda: GuestMemory(True), TypeError, "size"),
    ("read past the end", lambda: MEM.read(0x1FFC, 8), ValueError, "gpa"),
    ("read at negative gpa", lambda: MEM.read(-1, 1), ValueError, "gpa"),
    ("read negative length", lambda: MEM.read(0, -1), ValueError, "n"),
    ("write past the end", lambda: MEM.write(0x2000, b"x"), ValueError, "gpa"),
    ("write a str", lambda: MEM.write(0, "abc"), TypeError, "data"),
    ("read32 past the end", lambda: MEM.read32(0x1FFD), ValueError, "gpa"),
    ("read64 past the end", lambda: MEM.read64(0x1FF9), ValueError, "gpa"),
    ("write32 too big", lambda: MEM.write32(0, 1 << 32), ValueError, "value"),
    ("write64 negative", lambda: MEM.write64(0, -1), ValueError, "value"),
    ("write64 gpa as bool", lambda: MEM.write64(True, 0), TypeError, "gpa"),
    ("write64 past the end", lambda: MEM.write64(0x1FF9, 0), ValueError, "gpa"),
    ("batch of floats", call_batch(gvas=np.array([1.0])), TypeError, "gvas"),
    ("batch of bools", call_batch(gvas=np.array([True])), TypeError, "gvas"),
    ("batch scalar", call_batch(gvas=5), TypeError, "gvas"),
    ("batch negative", call_batch(gvas=np.array([-1], dtype=np.int64)), ValueError, "gvas"),
    ("batch 2-D", call_batch(gvas=np.zeros((2, 2), dtype=np.uint64)), ValueError, "gvas"),
    ("batch >= 2**32 in 32-bit paging",
     call_batch(cpu=CPU32, gvas=np.array([1 << 32], dtype=np.uint64)), ValueError, "gvas"),
    ("batch access bit", call_batch(access=1 << 3), ValueError, "access"),
    ("batch mem", call_batch(mem=None), TypeError, "mem"),
    ("ept gpa >= 2**52", lambda: ept_translate(MEM, 0x101E, 1 << 52), ValueError, "gpa"),
    ("ept maxphyaddr", lambda: ept_translate(MEM, 0x101E, 0, maxphyaddr=60), ValueError,
     "maxphyaddr"),
    ("npt gpa >= 2**32 outside long mode",
     lambda: npt_translate(MEM, 0x1000, 1 << 32, cr4=0x20, efer=0), ValueError, "gpa"),
    ("npt access user", lambda: npt_translate(MEM, 0x1000, 0, ACCESS_USER, cr4=0x20, efer=0x500),
     ValueError, "access"),
]


@pytest.mark.parametrize(
    "call, exc, word", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS]
)
def test_misuse_raises_naming_the_argument(call, exc, word):
    with pytest.raises(exc, match=word):
        call()


def test_numpy_integers_are_accepted():
    # np.uint64 and np.int64 are integers, not misuse.
    assert translate(MEM, CpuState(), np.uint64(0x10)).gpa == 0x10
    assert CpuState(cr3=np.int64(0x1000)).cr3 == 0x1000
    # gbpages takes a bool, or 0/1.
    assert CpuState(gbpages=0).gbpages is False


def test_int_batches_of_other_dtypes_are_converted():
    res = translate_batch(MEM, CpuState(), np.array([1, 2], dtype=np.int32))
    assert res.gpa.tolist() == [1, 2] and res.gpa.dtype == np.uint64
    res = translate_batch(MEM, CpuState(), [3, 4])
    assert res.gpa.tolist() == [3, 4]


# --- guest-controlled contents never raise -----------------------------------
def guest_image(rng, size):
    """Random words, half of them entry-like (pointing into memory)."""
    mem = GuestMemory(size)
    pages = max(1, size // 0x1000)
    for off in range(0, size - 7, 8):
        if rng.random() < 0.5:
            word = rng.getrandbits(64)
        else:
            word = (rng.randrange(pages + 1) << 12) | rng.getrandbits(12)
            word |= rng.choice([0, 0, 1 << 63, rng.getrandbits(12) << 52, 1 << 40])
        mem.write64(off, word)
    return mem


ACCESS = st.sets(st.sampled_from([ACCESS_WRITE, ACCESS_USER, ACCESS_FETCH, ACCESS_IMPLICIT])).map(sum)


@settings(max_examples=150, derandomize=True, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.sampled_from([0, 8, 0x1000, 0x2004, 0x4000]),
    cr0=st.integers(0, 2**64 - 1), cr3=st.integers(0, 2**64 - 1),
    cr4=st.integers(0, 2**64 - 1), efer=st.integers(0, 2**64 - 1),
    rflags=st.integers(0, 2**64 - 1), pkru=st.integers(0, 2**32 - 1),
    maxphyaddr=st.integers(32, 52), gbpages=st.booleans(),
    gva=st.integers(0, 2**64 - 1), access=ACCESS,
)
def test_random_guest_state_never_raises(
    seed, size, cr0, cr3, cr4, efer, rflags, pkru, maxphyaddr, gbpages, gva, access
):
    rng = random.Random(seed)
    mem = guest_image(rng, size)
    # Registers are guest state too, but CpuState refuses impossible ones;
    # make them possible (PE with PG, LMA only with PG and PAE).
    if cr0 >> 31 & 1:
        cr0 |= 1
    if not (cr0 >> 31 & 1 and cr4 >> 5 & 1):
        efer &= ~(1 << 10)
    cpu = CpuState(cr0=cr0, cr3=cr3, cr4=cr4, efer=efer, rflags=rflags, pkru=pkru,
                   maxphyaddr=maxphyaddr, gbpages=gbpages)
    if not cpu.lma:
        gva &= 0xFFFF_FFFF
    r = translate(mem, cpu, gva, access)
    assert (r.fault is None) != (r.gpa is None)
    if r.fault is not None:
        assert r.fault.vector in (13, 14)
    b = translate_batch(mem.copy(), cpu, np.array([gva], dtype=np.uint64), access)
    assert b.fault[0] == (r.fault is not None)


@settings(max_examples=100, derandomize=True, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    root=st.integers(0, 2**40 - 1), levels=st.sampled_from([3, 4]),
    ad=st.booleans(), memtype=st.sampled_from([0, 6]),
    gpa=st.integers(0, 2**52 - 1),
    access=st.sampled_from([0, ACCESS_WRITE, ACCESS_FETCH, ACCESS_WRITE | ACCESS_FETCH]),
    execute_only=st.booleans(), maxphyaddr=st.integers(32, 52),
)
def test_random_ept_and_npt_never_raise(
    seed, root, levels, ad, memtype, gpa, access, execute_only, maxphyaddr
):
    rng = random.Random(seed)
    mem = guest_image(rng, 0x4000)
    eptp = (root << 12) | (ad << 6) | (levels << 3) | memtype
    r = ept_translate(mem, eptp, gpa, access, maxphyaddr=maxphyaddr, execute_only=execute_only)
    assert (r.fault is None) != (r.gpa is None)
    if r.fault is not None:
        assert r.fault.kind in ("violation", "misconfig")
    n = npt_translate(mem, root << 12, gpa, access, cr4=0x20, efer=0xD00, maxphyaddr=maxphyaddr)
    assert (n.fault is None) != (n.gpa is None)
