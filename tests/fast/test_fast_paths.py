"""The fast paths give exactly what the definition gives.

``refimpl.fast.scalar.translate`` (which is ``refimpl.translate``) takes an
unrolled walk with per-CPU constants in four- and five-level paging and
forwards everything else to the definition, ``refimpl.guest.walker.translate``;
``refimpl.fast.batch.translate_batch`` takes a blocked, branch-free NumPy
path in long mode and forwards everything else to ``translate_batch_clear``,
whose results must in turn be those of the definition on each address in
order. On seeded random images, in every paging mode, with random control
bits and accesses, each pair must return equal results and leave equal
memory (A/D bits) behind. Speed is measured in ``benchmarks/``, never here.
"""

import copy
import pickle
import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import refimpl
from refimpl import ACCESS_FETCH, ACCESS_IMPLICIT, ACCESS_USER, ACCESS_WRITE, CpuState, GuestMemory, translate_batch
from refimpl.fast import scalar
from refimpl.fast.batch import translate_batch_clear
from refimpl.fast.scalar import translate
from refimpl.guest.walker import TranslateResult
from refimpl.guest.walker import translate as definition
from strategies import MODES, PAGES, image, random_cpu, random_gvas, random_image


def test_the_public_translate_is_the_fast_one():
    assert refimpl.translate is scalar.translate
    assert refimpl.guest.walker.translate is not scalar.translate

ACCESSES = [
    a | i | f
    for a in (0, ACCESS_WRITE, ACCESS_USER, ACCESS_USER | ACCESS_WRITE)
    for f in (0, ACCESS_FETCH)
    for i in (0, ACCESS_IMPLICIT)
    if not (f and a & ACCESS_WRITE)
]
FIELDS = ("gpa", "fault", "level", "trace", "access_rights")


def fields(r) -> tuple:
    """Every field of a result, read through its attributes (the lazy ones too)."""
    return tuple(getattr(r, name) for name in FIELDS)


def assert_same_result(fast, clear, where: str) -> None:
    """Equal field by field, and alike in every other way a caller can see."""
    assert type(fast) is type(clear), where
    for name in FIELDS:
        assert getattr(fast, name) == getattr(clear, name), f"{name}: {where}"
        assert type(getattr(fast, name)) is type(getattr(clear, name)), f"{name}: {where}"
    assert fast == clear and not fast != clear, where
    assert hash(fast) == hash(clear) and repr(fast) == repr(clear), where
    assert type(fast.trace) is tuple and all(type(e) is tuple for e in fast.trace), where
    again = pickle.loads(pickle.dumps(fast))
    assert again == clear and fields(again) == fields(clear), where


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=30, derandomize=True, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_translate_fast_path_equals_clear(mode, seed):
    rng, mem, cpu = image(seed, mode)
    fast_mem, clear_mem = mem.copy(), mem.copy()
    pairs = []
    for gva in random_gvas(rng, mode, 40):
        access = rng.choice(ACCESSES)
        # Twice: the first walk of a path often sets A bits (the general
        # way); the second then finds them set, as most walks do.
        for again in (False, True):
            fast = translate(fast_mem, cpu, gva, access)
            clear = definition(clear_mem, cpu, gva, access)
            where = f"seed={seed} gva={gva:#x} access={access:#x} again={again}"
            assert_same_result(fast, clear, where)
            assert fast_mem == clear_mem, f"memory differs: {where}"
            pairs.append((fast, clear, where))
    # Results are values: later walks (which set A/D bits) and writes to
    # memory must not change them.
    fast_mem.write(0, bytes(rng.getrandbits(8) for _ in range(fast_mem.size)))
    for fast, clear, where in pairs:
        assert fields(fast) == fields(clear), where


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=20, derandomize=True, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), access=st.sampled_from(ACCESSES))
def test_batch_fast_path_equals_clear(mode, seed, access):
    rng, mem, cpu = image(seed, mode)
    gvas = np.array(random_gvas(rng, mode, 300), dtype=np.uint64)
    fast_mem, clear_mem = mem.copy(), mem.copy()
    fast = translate_batch(fast_mem, cpu, gvas, access)
    clear = translate_batch_clear(clear_mem, cpu, gvas, access)
    for name in ("gpa", "fault", "vector", "error_code", "level"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(clear, name), err_msg=name)
        assert getattr(fast, name).dtype == getattr(clear, name).dtype
    assert fast_mem == clear_mem


def test_fast_paths_are_taken_and_leave_other_modes_alone():
    """Long mode has a fast walker per CpuState; the other modes have none."""
    for mode in MODES:
        _, mem, cpu = image(1, mode)
        translate(mem, cpu, 0)
        assert (cpu.__dict__["_fast_walk"] is not None) == (mode in ("4", "5"))


def test_a_planted_mistake_in_the_fast_path_is_caught(monkeypatch):
    """The equality check can fail: a fast walker that forgets
    protect_clean_gpte (W kept on a read of a clean page) is told apart."""
    mem = GuestMemory(0x6000)
    for table in range(1, 4):
        mem.write64(table << 12, ((table + 1) << 12) | 0x27)  # P W U A
    mem.write64(0x4000, 0x5000 | 0x27)  # P W U A, D clear
    cpu = CpuState(cr0=0x8001_0001, cr3=0x1000, cr4=0x20, efer=0x500)
    good = translate(mem.copy(), cpu, 0x123)
    assert good == definition(mem.copy(), cpu, 0x123)
    monkeypatch.setattr(scalar, "_NOT_ACC_WRITE", -1)  # the planted mistake
    scalar._shared_fast_walk.cache_clear()
    twin = CpuState(cr0=0x8001_0001, cr3=0x1000, cr4=0x20, efer=0x500)
    bad = translate(mem.copy(), twin, 0x123)
    assert bad != definition(mem.copy(), twin, 0x123)
    assert bad.access_rights == 7 and good.access_rights == 5
    scalar._shared_fast_walk.cache_clear()


@pytest.mark.parametrize("mode", ["4", "5"])
def test_batch_fast_path_on_tiny_and_chunked_inputs(mode):
    """Empty memory, memory smaller than a table, and batches over a chunk."""
    import refimpl.fast.batch as batch

    rng, _, cpu = image(7, mode)
    for size in (0, 4, 8, 0x1000, 0x1000 + 4):
        mem = GuestMemory(size)
        if size >= 8:
            mem.write64(0, 0x1027)
        gvas = np.array(random_gvas(rng, mode, 50), dtype=np.uint64)
        a, b = mem.copy(), mem.copy()
        fast = translate_batch(a, cpu, gvas, ACCESS_WRITE)
        clear = translate_batch_clear(b, cpu, gvas, ACCESS_WRITE)
        for name in ("gpa", "fault", "vector", "error_code", "level"):
            np.testing.assert_array_equal(getattr(fast, name), getattr(clear, name))
        assert a == b
    _, mem, cpu = image(8, mode)
    gvas = np.array(random_gvas(rng, mode, 2 * batch._CHUNK + 17), dtype=np.uint64)
    a, b = mem.copy(), mem.copy()
    fast = translate_batch(a, cpu, gvas)
    clear = translate_batch_clear(b, cpu, gvas)
    np.testing.assert_array_equal(fast.gpa, clear.gpa)
    np.testing.assert_array_equal(fast.error_code, clear.error_code)
    np.testing.assert_array_equal(fast.level, clear.level)
    assert a == b


def test_realistic_benchmark_image():
    """The benchmark's image: every address, several accesses, both paths."""
    bench = pytest.importorskip("benchmarks.image")
    img = bench.build_image(1, mem_mib=8, scale=0.1)
    addrs = bench.scalar_addresses(img)
    for access in (0, ACCESS_WRITE, ACCESS_USER | ACCESS_WRITE, ACCESS_FETCH):
        fast_mem, clear_mem = img.mem.copy(), img.mem.copy()
        for gva in addrs:
            assert translate(fast_mem, img.cpu, gva, access) == definition(
                clear_mem, img.cpu, gva, access
            )
        assert fast_mem == clear_mem
        a, b = img.mem.copy(), img.mem.copy()
        gvas = np.array(addrs, dtype=np.uint64)
        fast = translate_batch(a, img.cpu, gvas, access)
        clear = translate_batch_clear(b, img.cpu, gvas, access)
        np.testing.assert_array_equal(fast.gpa, clear.gpa)
        np.testing.assert_array_equal(fast.error_code, clear.error_code)
        assert a == b


def test_memory_with_a_word_view_still_copies_and_pickles():
    """The fast walker's cached word view does not leak into copies."""
    mem = GuestMemory(0x2000)
    mem.write64(0x1000, 0x1234)
    cpu = CpuState(cr0=0x8000_0001, cr4=0x20, efer=0x500)
    translate(mem, cpu, 0)
    assert mem._words is not None
    for other in (mem.copy(), copy.deepcopy(mem), pickle.loads(pickle.dumps(mem))):
        assert other == mem
        other.write64(0x1000, 0x5678)
        assert mem.read64(0x1000) == 0x1234
        assert translate(other, cpu, 0) == definition(other.copy(), cpu, 0)


def test_translate_result_is_an_immutable_record():
    """The result is a NamedTuple: read through its five fields, compared by
    them (however it was built), never changed, copied and pickled as
    itself, with no state beyond its fields."""
    r = TranslateResult(0x1000, None, 1, ((4, 0x8, 0x1003),), 7)
    assert r._fields == tuple(FIELDS)
    assert not hasattr(r, "__dict__")  # nothing hidden beside the fields
    assert len(r) == len(FIELDS)
    assert fields(r) == (0x1000, None, 1, ((4, 0x8, 0x1003),), 7)
    assert fields(TranslateResult(gpa=5, fault=None, level=None)) == (5, None, None, (), 0)
    for other in (TranslateResult(0x1001, None, 1, ((4, 0x8, 0x1003),), 7),
                  TranslateResult(0x1000, None, 2, ((4, 0x8, 0x1003),), 7),
                  TranslateResult(0x1000, None, 1, ((4, 0x8, 0x1007),), 7),
                  TranslateResult(0x1000, None, 1, ((4, 0x8, 0x1003),), 5)):
        assert r != other and not r == other
    for name in FIELDS:
        with pytest.raises(AttributeError):
            setattr(r, name, 0)
    assert repr(r) == ("TranslateResult(gpa=4096, fault=None, level=1, "
                       "trace=((4, 8, 4099),), access_rights=7)")
    for c in (copy.copy(r), copy.deepcopy(r), pickle.loads(pickle.dumps(r))):
        assert c == r and fields(c) == fields(r)
    # A result of the fast path: a 4 KiB page with A and D set, mapped by
    # hand (CR3 = 0x1000; PML4E, PDPTE, PDE, PTE at index 0 of frames 1-4).
    mem = GuestMemory(0x6000)
    for table in range(1, 4):
        mem.write64(table << 12, ((table + 1) << 12) | 0x67)  # P W U A D
    mem.write64(0x4000, 0x5000 | 0x63)  # P W A D, supervisor
    cpu = CpuState(cr0=0x8001_0001, cr3=0x1000, cr4=0x20, efer=0x500)
    fast = translate(mem, cpu, 0x123)
    assert type(fast) is TranslateResult
    assert fast.trace == ((4, 0x1000, 0x2067), (3, 0x2000, 0x3067), (2, 0x3000, 0x4067),
                          (1, 0x4000, 0x5063))
    assert (fast.gpa, fast.fault, fast.level) == (0x5123, None, 1)
    assert fast.access_rights == 0x3  # EXEC | WRITE: the PTE has no U
    with pytest.raises(AttributeError):
        fast.gpa = 0
    assert pickle.loads(pickle.dumps(fast)) == fast == definition(mem, cpu, 0x123)
    assert fast._replace(gpa=1).gpa == 1 and fast.gpa == 0x5123


def test_equal_cpu_states_share_a_fast_walker():
    """The MMU models build a new, equal CpuState per access: the walker is
    made once per distinct register set, and differs when a register does."""
    a = CpuState(cr0=0x8000_0001, cr3=0x1000, cr4=0x20, efer=0x500)
    b = CpuState(cr0=0x8000_0001, cr3=0x1000, cr4=0x20, efer=0x500)
    c = CpuState(cr0=0x8000_0001, cr3=0x2000, cr4=0x20, efer=0x500)
    mem = GuestMemory(0x3000)
    for cpu in (a, b, c):
        translate(mem, cpu, 0)
    assert a.__dict__["_fast_walk"] is b.__dict__["_fast_walk"]
    assert a.__dict__["_fast_walk"] is not c.__dict__["_fast_walk"]
