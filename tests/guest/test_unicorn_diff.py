"""Differential tests: refimpl's guest page-table walk against QEMU (unicorn).

Two kinds of tests:

* harness sanity tests (``test_harness_*``) check the unicorn side alone
  against error codes the SDM fixes, so the harness is trusted independently
  of refimpl;
* ``test_unicorn_diff[mode]`` runs seeded random cases through both and fails
  on any disagreement that no :class:`unicorn_harness.DiffClass` explains.

``UNICORN_DIFF_CASES`` (cases per mode, default 500) and ``UNICORN_DIFF_SEED``
(default 20261125) change the random run. See ``tests/unicorn_harness.py`` for
how the unicorn side works and what it cannot reach.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("unicorn", reason="unicorn (QEMU x86 emulator bindings) is not installed")

import unicorn_harness as H  # noqa: E402
from unicorn_harness import (  # noqa: E402
    CR0_PE, CR0_PG, CR4_PKE, CR4_PSE, CR4_SMAP, CR4_SMEP, E_A, E_D, E_NX, E_P, E_PS, E_U, E_W,
    PF_F, PF_U, PF_W, RFLAGS_AC, RFLAGS_FIXED, Mode, simple_case,
)

N_CASES = int(os.environ.get("UNICORN_DIFF_CASES", "500"))
SEED = int(os.environ.get("UNICORN_DIFF_SEED", "20261125"))
ALL_MODES = list(Mode)
LONG_MODES = [Mode.LEVEL4, Mode.LEVEL5]
WIDE_MODES = [Mode.PAE, Mode.LEVEL4, Mode.LEVEL5]
URW = E_P | E_W | E_U


@pytest.fixture(scope="module", autouse=True)
def _calibrated():
    H.calibrate()


def run(case):
    out = H.run_unicorn(case)
    assert out.kind != "harness", f"harness failure: {out.detail}\n{case.describe()}"
    return out


def leaf_after(case, out):
    addr, _, size = case.writes[-1]
    return int.from_bytes(out.memory[addr : addr + size].tobytes(), "little")


# ---------------------------------------------------------------------------
# Harness sanity (unicorn only)
# ---------------------------------------------------------------------------


def test_harness_calibration():
    assert H.CALIB.err_offset is not None
    # QEMU TCG's physical-address width; refimpl is run with the same value.
    assert 36 <= H.CALIB.maxphyaddr <= 52, H.CALIB.maxphyaddr


@pytest.mark.parametrize("mode", ALL_MODES, ids=lambda m: m.name)
@pytest.mark.parametrize("access", [0, PF_W, PF_F, PF_U, PF_U | PF_W, PF_U | PF_F],
                         ids=["sup-read", "sup-write", "sup-fetch", "user-read", "user-write", "user-fetch"])
def test_harness_present_page(mode, access):
    """A present, writable, user page: no fault, the right PA, A (and D on write) set."""
    case = simple_case(mode, access, URW)
    out = run(case)
    assert out.kind == "ok", out.describe()
    assert out.pa == H.SIMPLE_DATA_PA + (case.gva & 0xFFF), out.describe()
    leaf = leaf_after(case, out)
    assert leaf & E_A
    assert bool(leaf & E_D) == bool(access & PF_W)


@pytest.mark.parametrize("mode", ALL_MODES, ids=lambda m: m.name)
@pytest.mark.parametrize("access,code", [(0, 0x0), (PF_W, 0x2), (PF_U, 0x4), (PF_U | PF_W, 0x6)])
def test_harness_not_present(mode, access, code):
    """SDM: a not-present leaf gives P=0 with W/U from the access."""
    case = simple_case(mode, access, 0)
    out = run(case)
    assert (out.kind, out.vector, out.error_code) == ("fault", 14, code), out.describe()
    assert out.cr2 == case.gva


@pytest.mark.parametrize("mode", ALL_MODES, ids=lambda m: m.name)
def test_harness_protection(mode):
    out = run(simple_case(mode, PF_U, E_P | E_W))  # user read of a supervisor page
    assert (out.vector, out.error_code) == (14, 0x5), out.describe()
    out = run(simple_case(mode, PF_W, E_P | E_U))  # supervisor write, read-only, WP=1
    assert (out.vector, out.error_code) == (14, 0x3), out.describe()
    out = run(simple_case(mode, PF_W, E_P | E_U, cr0=CR0_PE | CR0_PG))  # ... WP=0
    assert out.kind == "ok", out.describe()
    out = run(simple_case(mode, PF_U | PF_W, E_P | E_U, cr0=CR0_PE | CR0_PG))  # user write, WP=0
    assert (out.vector, out.error_code) == (14, 0x7), out.describe()


@pytest.mark.parametrize("mode", WIDE_MODES, ids=lambda m: m.name)
def test_harness_nx(mode):
    out = run(simple_case(mode, PF_F, URW | E_NX))
    assert (out.vector, out.error_code) == (14, 0x11), out.describe()
    out = run(simple_case(mode, PF_U | PF_F, URW | E_NX))
    assert (out.vector, out.error_code) == (14, 0x15), out.describe()
    out = run(simple_case(mode, 0, URW | E_NX, nxe=False))  # bit 63 reserved without NXE
    assert (out.vector, out.error_code) == (14, 0x9), out.describe()


@pytest.mark.parametrize("mode", WIDE_MODES, ids=lambda m: m.name)
def test_harness_reserved_pa_bit(mode):
    out = run(simple_case(mode, 0, URW | (1 << 51)))
    assert (out.vector, out.error_code) == (14, 0x9), out.describe()
    out = run(simple_case(mode, PF_U | PF_W, URW | (1 << H.CALIB.maxphyaddr)))
    assert (out.vector, out.error_code) == (14, 0xF), out.describe()


@pytest.mark.parametrize("mode", ALL_MODES, ids=lambda m: m.name)
def test_harness_smep_smap(mode):
    out = run(simple_case(mode, PF_F, URW, cr4_extra=CR4_SMEP))
    assert (out.vector, out.error_code) == (14, 0x11), out.describe()
    out = run(simple_case(mode, PF_F, E_P | E_W, cr4_extra=CR4_SMEP))  # supervisor page
    assert out.kind == "ok", out.describe()
    out = run(simple_case(mode, 0, URW, cr4_extra=CR4_SMAP))
    assert (out.vector, out.error_code) == (14, 0x1), out.describe()
    out = run(simple_case(mode, 0, URW, cr4_extra=CR4_SMAP, rflags=RFLAGS_FIXED | RFLAGS_AC))
    assert out.kind == "ok", out.describe()
    out = run(simple_case(mode, PF_U, URW, cr4_extra=CR4_SMAP))  # user access: SMAP n/a
    assert out.kind == "ok", out.describe()


@pytest.mark.parametrize("mode", LONG_MODES, ids=lambda m: m.name)
def test_harness_pku(mode):
    key1 = 1 << 59
    ad1, wd1 = 1 << 2, 1 << 3
    out = run(simple_case(mode, PF_U, URW | key1, cr4_extra=CR4_PKE, pkru=ad1))
    assert (out.vector, out.error_code) == (14, 0x25), out.describe()
    out = run(simple_case(mode, 0, URW | key1, cr4_extra=CR4_PKE, pkru=ad1))
    assert (out.vector, out.error_code) == (14, 0x21), out.describe()
    out = run(simple_case(mode, PF_U | PF_W, URW | key1, cr4_extra=CR4_PKE, pkru=wd1))
    assert (out.vector, out.error_code) == (14, 0x27), out.describe()
    out = run(simple_case(mode, PF_U | PF_F, URW | key1, cr4_extra=CR4_PKE, pkru=ad1))  # fetch ignores PKRU
    assert out.kind == "ok", out.describe()
    out = run(simple_case(mode, PF_U, URW | key1, cr4_extra=CR4_PKE, pkru=ad1 << 2))  # other key
    assert out.kind == "ok", out.describe()


@pytest.mark.parametrize("mode", LONG_MODES, ids=lambda m: m.name)
def test_harness_non_canonical(mode):
    case = simple_case(mode, 0, URW)
    case.gva ^= 1 << 62
    out = run(case)
    assert (out.kind, out.vector) == ("fault", 13), out.describe()


def test_harness_pse_4mib():
    """32-bit paging, CR4.PSE: a 4 MiB PDE maps directly; without PSE its bit 7 is ignored."""
    case = simple_case(Mode.BITS32, 0, URW, cr4_extra=CR4_PSE)
    pde_addr, pde, _ = case.writes[0]
    case.writes[0] = (pde_addr, 0x00400000 | E_PS | URW, 4)  # 4 MiB frame at 4 MiB
    out = run(case)
    assert out.pa == 0x00400000 + (case.gva & 0x3FFFFF), out.describe()
    case.cr4 &= ~CR4_PSE
    case.writes[0] = (pde_addr, pde | E_PS, 4)
    out = run(case)
    assert out.pa == H.SIMPLE_DATA_PA + (case.gva & 0xFFF), out.describe()


def test_harness_qemu_32bit_fetch_fault_has_no_f_bit():
    """The premise of DiffClass.F_BIT_32BIT_NXE: QEMU omits F in 32-bit paging with NXE=1."""
    out = run(simple_case(Mode.BITS32, PF_F, 0, nxe=True))
    assert (out.vector, out.error_code) == (14, 0x0), out.describe()
    out = run(simple_case(Mode.BITS32, PF_F, 0, nxe=True, cr4_extra=CR4_SMEP))
    assert (out.vector, out.error_code) == (14, 0x10), out.describe()


def test_harness_qemu_pse40():
    """The premise of DiffClass.PSE36_RSVD_BITS_17_20: QEMU takes PDE bits 20:13 as PA 39:32."""
    case = simple_case(Mode.BITS32, 0, URW, cr4_extra=CR4_PSE)
    pde_addr = case.writes[0][0]
    case.writes[0] = (pde_addr, 0x00400000 | (1 << 17) | E_PS | URW, 4)
    out = run(case)
    assert out.kind == "unmapped" and out.pa == (1 << 36) + 0x00400000 + (case.gva & 0x3FFFFF), out.describe()
    case.writes[0] = (pde_addr, 0x00400000 | (1 << 21) | E_PS | URW, 4)
    out = run(case)
    assert (out.vector, out.error_code) == (14, 0x9), out.describe()


def test_harness_qemu_sets_upper_a_bits_on_fault():
    """The premise of DiffClass.QEMU_A_BITS_ON_FAULT: QEMU leaves A set in upper levels."""
    case = simple_case(Mode.LEVEL4, 0, 0)
    out = run(case)
    assert out.kind == "fault"
    for addr, val, size in case.writes[:-1]:
        after = int.from_bytes(out.memory[addr : addr + size].tobytes(), "little")
        assert after == val | E_A


# ---------------------------------------------------------------------------
# The comparison itself must catch wrong answers
# ---------------------------------------------------------------------------


def _require_refimpl():
    try:
        import refimpl  # noqa: F401
        from refimpl import translate# noqa: F401
    except ImportError as e:  # pragma: no cover
        pytest.fail(f"refimpl is not importable: {e}")


def test_compare_rejects_wrong_answers():
    """Perturbed refimpl results must be reported, never absorbed by a class."""
    _require_refimpl()
    rng = random.Random(5)
    checked = 0
    for mode in ALL_MODES:
        for _ in range(40):
            case = H.gen_case(rng, mode)
            img = H.build_image(case)
            uc = H.run_unicorn(case, img)
            ref, after = H.run_ref(case, img)
            base = H.compare(case, img, uc, ref, after)
            if base.problems:
                continue
            if ref.vector == 14:
                for bit in (H.PF_P, H.PF_W, H.PF_U, H.PF_RSVD, H.PF_PK):
                    bad = H.RefResult(14, ref.error_code ^ bit, None, None)
                    if uc.kind == "fault" and (uc.vector, uc.error_code) == (14, bad.error_code):
                        continue  # the perturbed answer is unicorn's own: an agreement
                    res = H.compare(case, img, uc, bad, after)
                    assert res.problems, f"flipping {bit:#x} went unnoticed:\n{res.report()}"
                    checked += 1
            elif ref.vector is None and uc.pa is not None:
                bad = H.RefResult(None, None, ref.gpa ^ 0x1000, ref.level)
                assert H.compare(case, img, uc, bad, after).problems
                bad_after = after.copy()
                addr = case.writes[-1][0]
                bad_after[addr] ^= E_D  # a D bit refimpl did not write the same way
                assert H.compare(case, img, uc, ref, bad_after).problems
                bad = H.RefResult(14, 0x1, None, None)
                assert H.compare(case, img, uc, bad, after).problems
                checked += 1
    assert checked > 50


# ---------------------------------------------------------------------------
# Differential run
# ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("mode", ALL_MODES, ids=lambda m: m.name)
def test_unicorn_diff(mode, request):
    _require_refimpl()
    t0 = time.perf_counter()
    summary = H.run_mode(mode, N_CASES, SEED)
    line = f"{summary.line()} ({time.perf_counter() - t0:.1f}s, seed {SEED})"
    print("\n" + line)
    request.node.user_properties.append(("unicorn_diff", line))
    if summary.unexplained:
        shown = "\n\n".join(r.report() for r in summary.unexplained[:3])
        pytest.fail(f"{line}\nfirst unexplained disagreements:\n{shown}", pytrace=False)
    assert summary.cases == N_CASES
