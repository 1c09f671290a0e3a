"""The walker against an access.c-style oracle (see ``tests/access_oracle.py``).

Three kinds of test:

* the oracle's own enumeration (how many flag words are legal, and in which
  order), checked against a combinatorial count and access.c's stepping rule;
* hand-worked cases, each with its reasoning in a comment, checked against the
  oracle and then against the walker;
* a large seeded random sample of legal flag words for 4- and 5-level paging,
  which must give zero mismatches, and a deliberately broken walker, which
  must not.
"""

from __future__ import annotations

import functools
import os
import time

import numpy as np
import pytest

import access_oracle as ao
from access_oracle import AC

# ---------------------------------------------------------------------------
# Enumeration
# ---------------------------------------------------------------------------


def test_legal_count_matches_published_figures():
    # 37 <= MAXPHYADDR < 52 with PKU: bit 36 is not reserved, bit 51 is.
    assert ao.count_legal(40) == 19_169_280
    # MAXPHYADDR = 36 (the "access-reduced-maxphyaddr" run): bit 36 is
    # reserved too, so two more reserved-bit flags are testable.
    assert ao.count_legal(36) == 28_999_680
    assert ao.count_legal(40, pku=False) == 1_916_928
    assert ao.count_legal(40, fep=True) == 2 * 19_169_280


def test_legal_count_by_hand():
    # The product written out for MAXPHYADDR=40 with PKU. 27 candidate bits
    # (31 minus PTE/PDE bit 36, FEP, and CR4.SMEP which is always rejected).
    # Groups: {fetch, write}: 3 of 4. {PKE, AD, WD}: PKE=1 -> 4, PKE=0 -> 1: 5.
    # Reserved group {EFER.NX, PSE, PDE.NX, PTE.NX, pde.13, pde.51, pte.51}:
    #   EFER.NX=1, PSE=0: 13 must be 0; at most one of {51, 51}: 3; NX free x4 -> 12
    #   EFER.NX=1, PSE=1: at most one of {13, 51, 51}: 4; x4 -> 16
    #   EFER.NX=0, PSE=0: at most one of {51, 51, NX, NX}: 5
    #   EFER.NX=0, PSE=1: at most one of {13, 51, 51, NX, NX}: 6     total 39
    # Free bits: 27 - 2 - 3 - 7 = 15.
    assert 2**15 * 3 * 5 * 39 == 19_169_280 == ao.count_legal(40)


@pytest.mark.parametrize("maxphyaddr,pku,smep", [(40, True, False), (36, True, False),
                                                 (52, False, False), (36, True, True)])
def test_legal_count_by_scalar_rules(maxphyaddr, pku, smep):
    # Count with legal() itself over every combination of the flags any rule
    # mentions; every other candidate flag is unconstrained (factor 2 each).
    constrained = (AC.CPU_EFER_NX | AC.PDE_PSE | AC.PDE_NX | AC.PTE_NX | AC.PDE_BIT13
                   | AC.PDE_BIT51 | AC.PTE_BIT51 | AC.PDE_BIT36 | AC.PTE_BIT36
                   | AC.ACCESS_FETCH | AC.ACCESS_WRITE | AC.ACCESS_USER
                   | AC.CPU_CR4_PKE | AC.PKU_AD | AC.PKU_WD | AC.CPU_CR4_SMEP)
    cbits = [1 << i for i in range(ao.NR_AC_FLAGS) if constrained >> i & 1]
    cands = ao.candidate_bits(maxphyaddr, pku, smep)
    free = [b for b in cands if not constrained >> b & 1]
    n = 0
    for k in range(1 << len(cbits)):
        w = sum(b for j, b in enumerate(cbits) if k >> j & 1)
        n += ao.legal(w, maxphyaddr, pku, smep)
    assert n << len(free) == ao.count_legal(maxphyaddr, pku, smep)


@pytest.mark.slow
def test_full_enumeration_count_maxphyaddr_40():
    # The vectorised enumeration (used by benchmarks/access_enum.py) visits
    # exactly the counted number of words, each legal, in ascending order.
    n, last = 0, -1
    for chunk in ao.enumerate_legal(40):
        n += chunk.size
        if chunk.size:
            assert int(chunk[0]) > last and np.all(np.diff(chunk.astype(np.int64)) > 0)
            last = int(chunk[-1])
    assert n == 19_169_280


def _ac_test_bump_order(maxphyaddr, limit):
    """access.c's stepping, literally: skip invalid bits by carrying through
    them, then skip illegal words."""
    inv = ao.invalid_mask(maxphyaddr)
    flags, out = 0, [0]
    while len(out) < limit:
        while True:
            flags = ((flags | inv) + 1) & ~inv
            if flags >= 1 << ao.NR_AC_FLAGS or ao.legal(flags, maxphyaddr):
                break
        if flags >= 1 << ao.NR_AC_FLAGS:
            break
        out.append(flags)
    return out


def test_enumeration_order_is_ac_test_bump():
    want = _ac_test_bump_order(36, 8000)
    got: list[int] = []
    for chunk in ao.enumerate_legal(36, chunk_bits=16):
        got.extend(chunk.tolist())
        if len(got) >= len(want):
            break
    assert got[:len(want)] == want


def test_legal_scalar_and_vector_agree():
    rng = np.random.default_rng(2024)
    w = rng.integers(0, 1 << 32, size=50_000, dtype=np.uint32)  # bit 31 too
    for maxphyaddr in (36, 40, 52):
        for smep in (False, True):
            vec = ao.legal_vec(w, maxphyaddr, smep=smep)
            sca = [ao.legal(int(x), maxphyaddr, smep=smep) for x in w]
            assert vec.tolist() == sca


def test_smep_rejected_by_access_c_rules_only():
    base = int(AC.PDE_PRESENT | AC.PTE_PRESENT | AC.ACCESS_FETCH)
    assert ao.legal(base)
    assert not ao.legal(base | AC.CPU_CR4_SMEP)
    assert ao.legal(base | AC.CPU_CR4_SMEP, smep=True)            # extension
    assert ao.legal(base | AC.CPU_CR4_SMEP | AC.ACCESS_USER, smep=True)
    assert not ao.legal(base | AC.ACCESS_WRITE)                   # fetch+write
    assert not ao.legal(int(AC.PKU_AD))                           # AD without PKE
    assert not ao.legal(int(AC.PDE_BIT13))                        # 13 without PSE
    assert not ao.legal(int(AC.PDE_PSE | AC.PDE_BIT13 | AC.PTE_BIT51))  # two reserved
    assert not ao.legal(int(AC.PTE_NX | AC.PTE_BIT51))            # NX reserved w/o EFER.NX
    assert ao.legal(int(AC.PTE_NX | AC.PTE_BIT51 | AC.CPU_EFER_NX))
    assert not ao.legal(int(AC.PTE_BIT36), 40) and ao.legal(int(AC.PTE_BIT36), 36)


def test_expected_scalar_and_vector_agree():
    rng = np.random.default_rng(7)
    s = ao.sample_legal(rng, 20_000, 36, smep=True)
    ev = ao.expected_vec(s)
    for i, x in enumerate(s.tolist()):
        e = ao.expected(x)
        assert e.fault == ev.fault[i] and e.error_code == ev.error_code[i], ao.show(x)
        assert e.pde == ao.pde_value(x, 4) | int(ev.pde_add[i]), ao.show(x)
        assert e.pde_ignore == ev.pde_ignore[i], ao.show(x)
        if e.pte is None:
            assert ev.pte_add[i] == 0
        else:
            assert e.pte == ao.pte_value(x) | int(ev.pte_add[i]), ao.show(x)


# ---------------------------------------------------------------------------
# Hand-worked cases
# ---------------------------------------------------------------------------

P = AC.PDE_PRESENT | AC.PTE_PRESENT
UPAGE = AC.PDE_USER | AC.PTE_USER
WPAGE = AC.PDE_WRITABLE | AC.PTE_WRITABLE
A, D = ao.E_A, ao.E_D

# (name, flags, fault, error code, A/D the PTE gains, A/D the PDE gains
#  (ignored bits aside), whether PDE.A is "don't care")
HAND = [
    # User write, PTE.W=0, CR0.WP=0: CR0.WP=0 only exempts supervisor writes,
    # so the user write faults: P (present) | W | U = 0x7. Nothing gains A;
    # PDE.A started clear and the access faulted, so it is don't care.
    ("user write, pte ro, wp=0", P | UPAGE | AC.PDE_WRITABLE | AC.ACCESS_USER | AC.ACCESS_WRITE,
     True, 0x7, 0, 0, True),
    # Supervisor write, PTE.W=0, CR0.WP=0: allowed; the leaf gains A and D,
    # the (non-leaf) PDE gains A.
    ("sup write, pte ro, wp=0", P | AC.PDE_WRITABLE | AC.ACCESS_WRITE, False, 0, A | D, A, False),
    # Same with CR0.WP=1: write protection applies to supervisor too: P|W.
    ("sup write, pte ro, wp=1", P | AC.PDE_WRITABLE | AC.ACCESS_WRITE | AC.CPU_CR0_WP,
     True, 0x3, 0, 0, True),
    # A read-only PDPTE removes W from the whole path, even with WP=1 and
    # PDE.W = PTE.W = 1: P|W.
    ("pdpte ro", P | WPAGE | AC.PDPTE_NO_WRITABLE | AC.ACCESS_WRITE | AC.CPU_CR0_WP,
     True, 0x3, 0, 0, True),
    # Fetch from a PTE.NX page with EFER.NX=1: P|F = 0x11.
    ("fetch nx", P | AC.PTE_NX | AC.CPU_EFER_NX | AC.ACCESS_FETCH, True, 0x11, 0, 0, True),
    # PTE.NX with EFER.NX=0 is a reserved bit: P|RSVD; a fetch would add F
    # but F is dropped without EFER.NX and SMEP, so still 0x9. The walk did
    # pass the PDE, but on a fault PDE.A (clear) is don't care.
    ("nx reserved", P | AC.PTE_NX | AC.ACCESS_FETCH, True, 0x9, 0, A, True),
    # ... and with PDE.A already set it must stay set (here: it is in the
    # value written, the walker adds nothing).
    ("nx reserved, pde.a", P | AC.PTE_NX | AC.PDE_ACCESSED, True, 0x9, 0, A, False),
    # PDE not present, user fetch, EFER.NX=1: P clears, U|F = 0x14.
    ("pde !p, user fetch", AC.PTE_PRESENT | AC.ACCESS_USER | AC.ACCESS_FETCH | AC.CPU_EFER_NX,
     True, 0x14, 0, 0, True),
    # 2 MiB PDE with bit 13 set: reserved in a large-page PDE: P|RSVD.
    ("pse bit13", AC.PDE_PRESENT | AC.PDE_PSE | AC.PDE_BIT13, True, 0x9, 0, 0, True),
    # 2 MiB PDE, supervisor write, everything writable: the PDE is the leaf
    # and gains A|D.
    ("pse write", AC.PDE_PRESENT | AC.PDE_PSE | AC.PDE_WRITABLE | AC.ACCESS_WRITE | AC.CPU_CR0_WP,
     False, 0, 0, A | D, False),
    # PKU access-disable on key 1 faults even a supervisor read of a user
    # page: P|PK = 0x21.
    ("pkru.ad sup read", P | UPAGE | AC.PKU_PKEY | AC.CPU_CR4_PKE | AC.PKU_AD,
     True, 0x21, 0, 0, True),
    # PKU write-disable, supervisor write, CR0.WP=0: WD does not apply to
    # supervisor writes when WP=0 -> allowed, leaf gains A|D.
    ("pkru.wd sup write wp=0", P | UPAGE | AC.PDE_WRITABLE | AC.PKU_PKEY | AC.CPU_CR4_PKE
     | AC.PKU_WD | AC.ACCESS_WRITE, False, 0, A | D, A, False),
    # ... with CR0.WP=1 and a writable page: only the key forbids it: P|W|PK.
    ("pkru.wd sup write wp=1", P | UPAGE | WPAGE | AC.PKU_PKEY | AC.CPU_CR4_PKE | AC.PKU_WD
     | AC.ACCESS_WRITE | AC.CPU_CR0_WP, True, 0x23, 0, 0, True),
    # Key 1 allowed, key 2 (on the non-leaf PDE) fully denied: keys are read
    # from the leaf only, so a user read succeeds.
    ("non-leaf pkey ignored", P | UPAGE | AC.PKU_PKEY | AC.CPU_CR4_PKE | AC.ACCESS_USER,
     False, 0, A, A, False),
    # CR4.PKE=0: PKRU (0xfffffffc, key 1 denied) must be ignored.
    ("pke off", P | UPAGE | AC.PKU_PKEY | AC.ACCESS_USER, False, 0, A, A, False),
    # Twice: the priming supervisor read succeeds (supervisor page) and sets
    # A in PTE and PDE; the user read then faults U/S: P|U = 0x5. The PTE
    # keeps the A from the first read; PDE.A is don't care (fault, A clear).
    ("twice", P | AC.ACCESS_TWICE | AC.ACCESS_USER, True, 0x5, A, A, True),
]

# Extension (CR4.SMEP is never enumerated by access.c).
HAND_SMEP = [
    # Supervisor fetch from a user page with SMEP, EFER.NX=0: fault, and F
    # is kept because SMEP is on: P|F = 0x11.
    ("smep sup fetch", P | UPAGE | AC.CPU_CR4_SMEP | AC.ACCESS_FETCH, True, 0x11, 0, 0, True),
    # User fetch of the same page: SMEP does not apply -> allowed.
    ("smep user fetch", P | UPAGE | AC.CPU_CR4_SMEP | AC.ACCESS_FETCH | AC.ACCESS_USER,
     False, 0, A, A, False),
    # Supervisor fetch of a supervisor page: allowed.
    ("smep sup fetch sup page", P | AC.CPU_CR4_SMEP | AC.ACCESS_FETCH, False, 0, A, A, False),
]


def _check_hand(flags, fault, err, pte_add, pde_add, dont_care):
    e = ao.expected(int(flags))
    assert e.fault == fault
    assert e.error_code == err
    if flags & AC.PDE_PSE:
        assert e.pte is None
        assert e.pde == ao.pde_value(int(flags), 4) | pde_add
    else:
        assert e.pte == ao.pte_value(int(flags)) | pte_add
        assert e.pde & ~e.pde_ignore == (ao.pde_value(int(flags), 4) | pde_add) & ~e.pde_ignore
    assert e.pde_a_dont_care == dont_care


@pytest.mark.parametrize("name,flags,fault,err,pte_add,pde_add,dont_care", HAND,
                         ids=[h[0] for h in HAND])
def test_hand_case_oracle(name, flags, fault, err, pte_add, pde_add, dont_care):
    assert ao.legal(int(flags), 40)
    _check_hand(flags, fault, err, pte_add, pde_add, dont_care)


@pytest.mark.parametrize("name,flags,fault,err,pte_add,pde_add,dont_care", HAND_SMEP,
                         ids=[h[0] for h in HAND_SMEP])
def test_hand_case_oracle_smep_extension(name, flags, fault, err, pte_add, pde_add, dont_care):
    assert not ao.legal(int(flags), 40) and ao.legal(int(flags), 40, smep=True)
    _check_hand(flags, fault, err, pte_add, pde_add, dont_care)


@pytest.mark.parametrize("depth", [4, 5])
@pytest.mark.parametrize("case", HAND + HAND_SMEP, ids=[h[0] for h in HAND + HAND_SMEP])
def test_hand_case_walker(case, depth):
    assert ao.run_case(int(case[1]), depth) is None


# ---------------------------------------------------------------------------
# Random sample against the walker
# ---------------------------------------------------------------------------

# Sized so that the two depths together take well under ~40 s on 2 cores;
# override with ACCESS_ORACLE_SAMPLES.
SAMPLES = int(os.environ.get("ACCESS_ORACLE_SAMPLES", "40000"))


def _run_sample(depth, maxphyaddr, smep, seed, n=SAMPLES):
    rng = np.random.default_rng(seed)
    flags = ao.sample_legal(rng, n, maxphyaddr, smep=smep)
    env = ao.AccessEnv(depth, maxphyaddr)
    t = time.perf_counter()
    bad = []
    for f in flags.tolist():
        m = ao.run_case(f, env=env)
        if m is not None:
            bad.append(m)
    dt = time.perf_counter() - t
    line = (f"access.c oracle, {depth}-level, MAXPHYADDR={maxphyaddr}, "
            f"smep={'ext' if smep else 'access.c'}: {n} legal combos checked, "
            f"{len(bad)} mismatches ({dt:.1f} s)")
    print("\n" + line)
    return bad, line


@pytest.mark.parametrize("depth,maxphyaddr,smep,seed", [
    (4, 36, False, 4036),
    (5, 40, False, 5040),
    (4, 40, True, 4140),    # extension: CR4.SMEP combos, user ones included
])
@pytest.mark.slow
def test_random_sample_matches_walker(depth, maxphyaddr, smep, seed, request):
    bad, line = _run_sample(depth, maxphyaddr, smep, seed)
    request.node.user_properties.append(("differential_summary", line))
    assert not bad, f"{len(bad)} mismatches, first ones:\n" + "\n".join(bad[:20])


# ---------------------------------------------------------------------------
# The oracle notices a wrong walker
# ---------------------------------------------------------------------------


class _Fault:
    def __init__(self, vector, error_code):
        self.vector, self.error_code = vector, error_code


class _Result:
    def __init__(self, r, fault):
        self.gpa, self.level, self.fault = r.gpa, r.level, fault


def _clear_w(r):
    if r.fault is None:
        return r
    return _Result(r, _Fault(r.fault.vector, r.fault.error_code & ~ao.PF_W))


def _drop_pk_faults(r):
    # Pretend protection keys never fault: a PK fault becomes a success.
    if r.fault is not None and r.fault.error_code & ao.PF_PK:
        return _Result(r, None)
    return r


@pytest.mark.parametrize("mangle", [_clear_w, _drop_pk_faults])
def test_oracle_catches_broken_walker(mangle):
    import refimpl

    def broken(mem, cpu, gva, access=0):
        return mangle(refimpl.translate(mem, cpu, gva, access))

    rng = np.random.default_rng(99)
    flags = ao.sample_legal(rng, 3000, 40)
    env = ao.AccessEnv(4, 40)
    bad = [m for f in flags.tolist() if (m := ao.run_case(f, env=env, translate=broken))]
    assert len(bad) > 10
    # Sanity: the same sample passes with the real walker.
    assert all(ao.run_case(f, env=env) is None for f in flags.tolist()[:500])


def test_oracle_catches_spurious_accessed_bit():
    # A walker that sets PTE.A even when the access faults.
    import refimpl

    def broken(mem, cpu, gva, access=0):
        r = refimpl.translate(mem, cpu, gva, access)
        if r.fault is not None:
            pte_gpa = ao.entry_gpa(4, 1)
            mem.write64(pte_gpa, mem.read64(pte_gpa) | ao.E_A)
        return r

    flags = int(P | AC.PDE_WRITABLE | AC.ACCESS_WRITE | AC.CPU_CR0_WP)  # faults (hand case)
    assert ao.run_case(flags, 4, translate=broken) is not None


# ---------------------------------------------------------------------------
# The vectorised comparison of benchmarks/access_enum.py
# ---------------------------------------------------------------------------


@functools.cache
def _load_bench():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "access_enum.py"
    spec = importlib.util.spec_from_file_location("access_enum_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_prefix_agrees():
    # The first 400,000 combos of the full enumeration (the benchmark runs
    # all 19,169,280).
    assert _load_bench().main(["--limit", "400000", "--show", "5"]) == 0


@pytest.mark.parametrize("mutation", ["drop_pk", "no_bit13_rsvd", "no_fetch_bit"])
def test_benchmark_catches_broken_tables(mutation):
    bench = _load_bench()
    t = bench.ModelTables(4, 36)
    if mutation == "drop_pk":
        t.perm[t.perm == (ao.PF_P | ao.PF_PK)] = 0         # keys never fault
    elif mutation == "no_bit13_rsvd":
        t.rsvd[2][:, 1] &= ~np.uint64(1 << 13)             # 2 MiB PDE bit 13 allowed
    else:
        t.err &= np.uint8(0xFF ^ ao.PF_F)                   # F never reported
    flags = ao.sample_legal(np.random.default_rng(5), 50_000, 36)
    bad = bench.compare(flags, ao.expected_vec(flags), bench.model_vec(t, flags, 4))
    assert bad.size > 100
    # Unmutated tables agree on the same sample.
    good = bench.ModelTables(4, 36)
    assert bench.compare(flags, ao.expected_vec(flags), bench.model_vec(good, flags, 4)).size == 0


def test_benchmark_batch_mode_prefix_agrees():
    # --mode batch drives refimpl.translate_batch over whole groups of cases.
    assert _load_bench().main(["--mode", "batch", "--limit", "300000", "--show", "5"]) == 0


@pytest.mark.parametrize("mutation", ["clear_w", "lose_accessed"])
def test_benchmark_batch_mode_catches_broken_walker(mutation, monkeypatch):
    import dataclasses

    import refimpl

    real = refimpl.translate_batch

    def broken(mem, cpu, gvas, access=0):
        r = real(mem, cpu, gvas, access)
        if mutation == "clear_w":
            return dataclasses.replace(r, error_code=r.error_code & ~np.uint64(ao.PF_W))
        view = np.frombuffer(mem.buffer, dtype="<u8")
        view[ao.TABLES_GPA // 8:] &= ~np.uint64(ao.E_A)   # forget every A bit
        return r

    monkeypatch.setattr(refimpl, "translate_batch", broken)
    bench = _load_bench()
    checked, failed = bench.run_batch(4, 40, True, False, 300_000, 0)
    assert checked == 300_000 and failed > 1000
