"""Every benchmark, as one run: ``python -m benchmarks [--quick] [--out FILE]``.

Prints a table of rates and ratios and writes them, with the machine's size
and the date, to ``benchmarks/results.json`` (git-ignored). Every figure that
compares two things is a ratio of two timings taken in this process, in the
same run, interleaved, each the best of several repeats with the garbage
collector off (as :mod:`timeit` does). Every comparison first checks that the
two sides give identical answers on every input; a mismatch is an error, not
a footnote.

Sections
--------
scalar
    ``refimpl.translate`` against volatility3's ``Intel32e`` layer, on the
    same page-table image (:mod:`benchmarks.image`) and addresses: a
    few thousand distinct pages, mapped and unmapped, 4 KiB / 2 MiB / 1 GiB.
batch
    ``refimpl.translate_batch`` against a plain C loop
    (``benchmarks/walk.c``, compiled here with ``cc -O2``), and the batch
    size scaling of both.
access_enum
    The kvm-unit-tests ``access.c`` enumeration of one paging depth
    (``benchmarks/access_enum.py``), run as a subprocess.
mmu
    TDP MMU and shadow MMU fault rates (``benchmarks/mmu.py``), if those
    modules are present.

``--quick`` is the seconds-long version the Performance chapter runs at build
time: smaller image, fewer addresses and repeats, a 300,000-combination slice
of the enumeration. Its ratios are noisier; the chapter quotes the full run.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import image as bimage  # noqa: E402
from benchmarks import vol3  # noqa: E402
from refimpl import GuestMemory, translate, translate_batch# noqa: E402
from refimpl.fast.batch import translate_batch_clear  # noqa: E402
from refimpl.guest.walker import translate as translate_definition  # noqa: E402

VOLATILITY3 = "volatility3==2.28.2"
TARGETS = {
    "scalar_vs_volatility3": 4.0,  # refimpl at least this many times faster
    "batch_vs_c": 3.0,  # translate_batch at most this many times slower
    "access_enum_seconds": 120.0,
}


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


#: The clock: CPU time of this process (user + system), so that other
#: processes on a shared machine do not count, while page faults and the
#: like of the code under test do. Everything timed here is single-threaded.
CLOCK = time.process_time


def best_of(contenders: dict, repeats: int) -> dict[str, float]:
    """Best time (s) of each contender over ``repeats`` interleaved rounds.

    ``contenders`` maps a name to ``(setup, run)``: ``setup()`` (untimed)
    prepares a round, ``run()`` is timed with :data:`CLOCK`. Rounds
    alternate between the contenders, so that a slow spell of a shared
    machine (cache and memory-bandwidth contention, which CPU time does
    not remove) falls on all of them.
    """
    best = {name: float("inf") for name in contenders}
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            for name, (setup, run) in contenders.items():
                setup()
                t = CLOCK()
                run()
                best[name] = min(best[name], CLOCK() - t)
    finally:
        if enabled:
            gc.enable()
    return best


def machine() -> dict:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "loadavg_at_start": load,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


# ---------------------------------------------------------------------------
# Scalar: refimpl.translate against volatility3
# ---------------------------------------------------------------------------


def ensure_volatility3(install: bool) -> str | None:
    """volatility3's version, installing the pinned one if allowed; else None."""
    if not vol3.available() and install:
        print(f"installing {VOLATILITY3} (benchmark dependency) ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", VOLATILITY3], check=False)
    if not vol3.available():
        return None
    return vol3.version()


def bench_scalar(quick: bool, repeats: int, install: bool) -> dict:
    img = bimage.build_image(seed=1, scale=0.25 if quick else 1.0)
    addrs = bimage.scalar_addresses(img)
    mem, cpu = img.mem, img.cpu
    out: dict = {
        "image": {
            "memory_mib": mem.size >> 20,
            "tables": img.tables,
            "pages_4k": len(img.pages_4k),
            "pages_2m": len(img.pages_2m),
            "pages_1g": len(img.pages_1g),
        },
        "addresses": len(addrs),
        "access": "supervisor read",
        "repeats": repeats,
    }
    # Identical answers first, with A/D settled (the first walks set A bits).
    ref = [translate(mem, cpu, a).gpa for a in addrs]
    clear_mem = mem.copy()
    assert [translate_definition(clear_mem, cpu, a).gpa for a in addrs] == ref
    out["faults"] = sum(g is None for g in ref)
    version = ensure_volatility3(install)
    def loop(f, *args):
        # Call f on every address, keeping no result (as a user's loop would).
        def run():
            for a in addrs:
                f(*args, a)
        return run

    contenders = {
        "refimpl.translate": (lambda: None, loop(translate, mem, cpu)),
        "refimpl definition (guest.walker.translate)": (lambda: None,
                                                        loop(translate_definition, mem, cpu)),
    }
    if version is not None:
        layer = vol3.make_layer(mem.buffer, img.cr3)
        walk, public = vol3.walker(layer), vol3.public(layer)
        vol3.clear_caches()
        mismatches = [hex(a) for a, g in zip(addrs, ref) if walk(a) != g]
        vol3.clear_caches()
        mismatches += [hex(a) for a, g in zip(addrs, ref) if public(a) != g]
        if mismatches:
            raise AssertionError(f"volatility3 and refimpl disagree at {mismatches[:10]}")
        out["volatility3"] = version
        out["identical_answers"] = True
        contenders["volatility3 Intel32e._translate"] = (vol3.clear_caches, loop(walk))
        contenders["volatility3 Intel32e.translate"] = (vol3.clear_caches, loop(public))
    else:
        out["volatility3"] = None
    best = best_of(contenders, repeats)
    n = len(addrs)
    out["us_per_translation"] = {k: v / n * 1e6 for k, v in best.items()}
    t_ref = best["refimpl.translate"]
    out["speedup_over_clear_path"] = best["refimpl definition (guest.walker.translate)"] / t_ref
    if version is not None:
        out["ratio_vs_volatility3_walker"] = best["volatility3 Intel32e._translate"] / t_ref
        out["ratio_vs_volatility3_public"] = best["volatility3 Intel32e.translate"] / t_ref
        # The same, by kind of address: the ratio depends on how many levels
        # each side walks, and on faults (volatility3 raises an exception).
        kinds: dict[str, list[int]] = {}
        for a in addrs:
            r = translate(mem, cpu, a)
            kind = ("4 KiB page (four levels)" if r.level == 1 else "2 MiB / 1 GiB page"
                    ) if r.fault is None else "fault"
            kinds.setdefault(kind, []).append(a)
        out["by_kind"] = {}
        for kind, subset in kinds.items():
            def run_ref(subset=subset):
                for a in subset:
                    translate(mem, cpu, a)

            def run_vol(subset=subset):
                for a in subset:
                    walk(a)

            b = best_of({"ref": (lambda: None, run_ref),
                         "vol": (vol3.clear_caches, run_vol)}, repeats)
            out["by_kind"][kind] = {
                "addresses": len(subset),
                "refimpl_us": b["ref"] / len(subset) * 1e6,
                "volatility3_walker_us": b["vol"] / len(subset) * 1e6,
                "ratio": b["vol"] / b["ref"],
            }
    return out


# ---------------------------------------------------------------------------
# Batch: translate_batch against C
# ---------------------------------------------------------------------------


def _same(r, c) -> bool:
    return all(
        np.array_equal(x, y)
        for x, y in zip((r.gpa, r.fault, r.vector, r.error_code, r.level), c)
    )


def bench_batch(quick: bool, repeats: int) -> dict:
    from benchmarks import cwalk

    img = bimage.build_image(seed=1, scale=0.25 if quick else 1.0)
    mem, cpu = img.mem, img.cpu
    n = 1 << 16 if quick else 1 << 20
    gvas = bimage.batch_addresses(img, n)
    out: dict = {"addresses": n, "repeats": repeats}
    if cwalk.compiler() is None:
        out["c"] = None
        out["note"] = "no C compiler: translate_batch timed alone"
    cw = cwalk.CWalker() if cwalk.compiler() else None
    try:
        # Identical answers and identical memory afterwards, for a read and
        # for a user write (which sets D and faults on read-only pages).
        from refimpl import ACCESS_USER, ACCESS_WRITE

        for access in (0, ACCESS_USER | ACCESS_WRITE):
            a, b, c = mem.copy(), mem.copy(), mem.copy()
            got = translate_batch(a, cpu, gvas, access)
            clear = translate_batch_clear(b, cpu, gvas, access)
            assert _same(got, (clear.gpa, clear.fault, clear.vector, clear.error_code,
                               clear.level)) and a == b
            if cw is not None:
                assert _same(got, cw.walk_batch(c, cpu, gvas, access)) and a == c
        out["identical_answers"] = True
        translate_batch(mem, cpu, gvas)  # settle A bits, as the scalar section does
        contenders = {"refimpl.translate_batch": (lambda: None,
                                                  lambda: translate_batch(mem, cpu, gvas))}
        if cw is not None:
            out["c"] = cw.command
            contenders["C loop (walk.c)"] = (lambda: None, lambda: cw.walk_batch(mem, cpu, gvas))
        best = best_of(contenders, repeats)
        # The old path is slow; time it on a slice.
        m = min(n, 1 << 16)
        part = gvas[:m]
        clear_best = best_of({"clear": (lambda: None,
                                        lambda: translate_batch_clear(mem, cpu, part))},
                             max(3, repeats // 3))["clear"]
        out["ns_per_address"] = {k: v / n * 1e9 for k, v in best.items()}
        out["ns_per_address"]["refimpl translate_batch_clear (before)"] = clear_best / m * 1e9
        out["speedup_over_clear_path"] = (clear_best / m) / (best["refimpl.translate_batch"] / n)
        if cw is not None:
            out["ratio_vs_c"] = best["refimpl.translate_batch"] / best["C loop (walk.c)"]
            # How the two scale with the batch size.
            sizes = [2 ** k for k in range(6, 21 if not quick else 17, 2)]
            scaling = []
            for size in sizes:
                g = gvas[:size]
                reps = max(3, min(repeats, (1 << 20) // size))
                b = best_of({
                    "numpy": (lambda: None, lambda: translate_batch(mem, cpu, g)),
                    "c": (lambda: None, lambda: cw.walk_batch(mem, cpu, g)),
                }, reps)
                scaling.append({"n": size, "numpy_ns": b["numpy"] / size * 1e9,
                                "c_ns": b["c"] / size * 1e9})
            out["scaling"] = scaling
    finally:
        if cw is not None:
            cw.close()
    return out


# ---------------------------------------------------------------------------
# The access.c enumeration
# ---------------------------------------------------------------------------


def bench_access_enum(quick: bool) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.access_enum"]
    if quick:
        cmd += ["--limit", "300000"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t
    out: dict = {"command": " ".join(["python"] + cmd[1:]), "exit_status": proc.returncode,
                 "wall_seconds": wall}
    for line in proc.stdout.splitlines():
        if line.startswith("legal combos:"):
            out["checked"] = int(line.split(":")[1].split()[0])
        if line.startswith("passed:"):
            parts = line.replace(":", "").split()
            out["passed"], out["failed"] = int(parts[1]), int(parts[3])
            out["elapsed_seconds"] = float(parts[5])
    if "checked" in out:
        out["combos_per_second"] = out["checked"] / out.get("elapsed_seconds", wall)
    if proc.returncode:
        out["stdout_tail"] = proc.stdout[-2000:]
        out["stderr_tail"] = proc.stderr[-2000:]
    return out


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------


def run(quick: bool = False, install: bool = True, sections: tuple[str, ...] = (
        "scalar", "batch", "access_enum", "mmu")) -> dict:
    """Run the sections; returns the results dictionary (see the module doc)."""
    results: dict = {"machine": machine(), "quick": quick, "targets": TARGETS}
    repeats = 3 if quick else 11
    t0 = time.perf_counter()
    if "scalar" in sections:
        results["scalar"] = bench_scalar(quick, repeats, install)
    if "batch" in sections:
        results["batch"] = bench_batch(quick, repeats)
    if "access_enum" in sections:
        results["access_enum"] = bench_access_enum(quick)
    if "mmu" in sections:
        try:
            from benchmarks import mmu
        except ImportError as e:  # the MMU modules are not there yet
            results["mmu"] = {"skipped": str(e)}
        else:
            try:
                results["mmu"] = mmu.run(quick)
            except Exception as e:  # report, do not hide the other sections
                results["mmu"] = {"error": f"{type(e).__name__}: {e}"}
    results["total_seconds"] = time.perf_counter() - t0
    results["verdicts"] = verdicts(results)
    return results


def verdicts(r: dict) -> dict:
    v = {}
    s = r.get("scalar", {})
    if "ratio_vs_volatility3_walker" in s:
        v["scalar >= 4x volatility3 (walker)"] = s["ratio_vs_volatility3_walker"] >= 4
        v["scalar >= 4x volatility3 (public translate)"] = s["ratio_vs_volatility3_public"] >= 4
    b = r.get("batch", {})
    if "ratio_vs_c" in b:
        v["translate_batch within 3x of C"] = b["ratio_vs_c"] <= 3
    e = r.get("access_enum", {})
    if "elapsed_seconds" in e and not r.get("quick"):
        v["access_enum under 120 s, all agree"] = (
            e["elapsed_seconds"] < 120 and e.get("failed") == 0 and e["exit_status"] == 0
        )
    return v


def table(r: dict) -> str:
    rows = []
    m = r["machine"]
    rows.append(f"{m['date']}  {m['nproc']} CPUs ({m['cpu_model']}), load at start "
                f"{m['loadavg_at_start']}, Python {m['python']}, NumPy {m['numpy']}"
                + ("  [--quick]" if r["quick"] else ""))
    s = r.get("scalar")
    if s:
        rows.append("")
        rows.append(f"scalar translate: {s['addresses']} addresses "
                    f"({s['faults']} faults), best of {s['repeats']}")
        for k, us in s["us_per_translation"].items():
            rows.append(f"  {k:42s} {us:8.2f} us  {1 / us:8.3f} M/s")
        if "ratio_vs_volatility3_walker" in s:
            rows.append(f"  ratio vs volatility3 _translate          {s['ratio_vs_volatility3_walker']:6.2f}x"
                        "   (target >= 4)")
            rows.append(f"  ratio vs volatility3 translate           {s['ratio_vs_volatility3_public']:6.2f}x")
        else:
            rows.append("  volatility3 not installed: no comparison")
        rows.append(f"  speedup over the definition            {s['speedup_over_clear_path']:6.2f}x")
        for kind, k in s.get("by_kind", {}).items():
            rows.append(f"  {kind:28s} ({k['addresses']:5d}): refimpl {k['refimpl_us']:5.2f} us, "
                        f"volatility3 _translate {k['volatility3_walker_us']:5.2f} us, "
                        f"ratio {k['ratio']:5.2f}x")
    b = r.get("batch")
    if b:
        rows.append("")
        rows.append(f"translate_batch: {b['addresses']} addresses, best of {b['repeats']}")
        for k, ns in b.get("ns_per_address", {}).items():
            rows.append(f"  {k:42s} {ns:8.1f} ns/address")
        if "ratio_vs_c" in b:
            rows.append(f"  ratio to C                               {b['ratio_vs_c']:6.2f}x"
                        "   (target <= 3)")
        if "speedup_over_clear_path" in b:
            rows.append(f"  speedup over translate_batch_clear      {b['speedup_over_clear_path']:6.2f}x")
    e = r.get("access_enum")
    if e:
        rows.append("")
        rows.append(f"access.c enumeration: {e.get('checked')} combos, passed {e.get('passed')}, "
                    f"failed {e.get('failed')}, {e.get('elapsed_seconds')} s "
                    f"({e.get('combos_per_second', 0) / 1e6:.2f} M/s), exit {e['exit_status']}")
    mm = r.get("mmu")
    if mm:
        rows.append("")
        if "rows" in mm:
            for line in mm["rows"]:
                rows.append("  " + line)
        else:
            rows.append(f"mmu: {mm}")
    rows.append("")
    for k, ok in r.get("verdicts", {}).items():
        rows.append(f"  [{'met' if ok else 'NOT MET'}] {k}")
    rows.append(f"total {r['total_seconds']:.1f} s")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="seconds-long version")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON file (default benchmarks/results.json, or results-quick.json)")
    p.add_argument("--no-install", action="store_true",
                   help=f"do not pip-install {VOLATILITY3} if it is missing")
    p.add_argument("--only", default="scalar,batch,access_enum,mmu",
                   help="comma-separated sections to run")
    a = p.parse_args(argv)
    results = run(a.quick, not a.no_install, tuple(a.only.split(",")))
    print(table(results))
    out = a.out or ROOT / "benchmarks" / ("results-quick.json" if a.quick else "results.json")
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {out}")
    e = results.get("access_enum", {})
    return 1 if e.get("exit_status") else 0


if __name__ == "__main__":
    sys.exit(main())
