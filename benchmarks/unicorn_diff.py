"""Long differential run: refimpl's walker against QEMU (unicorn).

    python benchmarks/unicorn_diff.py --cases 20000 --seed 1 --jobs 2
    python benchmarks/unicorn_diff.py --modes LEVEL4,LEVEL5 --cases 5000 --show 5

Runs ``--cases`` random cases per paging mode (split into chunks over
``--jobs`` processes), prints one summary line per mode (cases, agreements,
known disagreement classes, unexplained ones, refimpl outcome coverage) and
the first ``--show`` unexplained cases in full. Exit status 1 if any
disagreement is unexplained. The harness is ``tests/unicorn_harness.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import unicorn_harness as H  # noqa: E402


def _chunk(args):
    mode_name, seed, start, n = args
    H.calibrate()
    mode = H.Mode[mode_name]
    rng = H.random.Random(f"{seed}-{mode_name}-{start}")
    s = H.Summary(mode)
    for i in range(start, start + n):
        s.add(H.run_case(H.gen_case(rng, mode, label=f"seed={seed} mode={mode_name} chunk={start} #{i}")))
    # CaseResult holds NumPy images; keep only the reports of failures.
    s.unexplained = [r.report() for r in s.unexplained[:20]]
    return s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=5000, help="cases per mode")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=500)
    ap.add_argument("--modes", default=",".join(m.name for m in H.Mode))
    ap.add_argument("--show", type=int, default=3, help="unexplained cases to print per mode")
    a = ap.parse_args(argv)
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    tasks = [(m, a.seed, start, min(a.chunk, a.cases - start)) for m in modes for start in range(0, a.cases, a.chunk)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=a.jobs) as ex:
        parts = list(ex.map(_chunk, tasks))
    bad = 0
    for m in modes:
        total = H.Summary(H.Mode[m])
        for p in parts:
            if p.mode.name != m:
                continue
            total.cases += p.cases
            total.agree += p.agree
            total.unexplained += p.unexplained
            for src, dst in ((p.per_class, total.per_class), (p.outcomes, total.outcomes), (p.notes, total.notes)):
                for k, v in src.items():
                    dst[k] = dst.get(k, 0) + v
        print(total.line())
        for rep in total.unexplained[: a.show]:
            print(rep, end="\n\n")
        bad += len(total.unexplained)
    print(f"{sum(p.cases for p in parts)} cases in {time.perf_counter() - t0:.1f}s (seed {a.seed}, {a.jobs} jobs)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
