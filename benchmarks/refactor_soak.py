"""Soak the refactoring differential: many more workloads than the test run.

``python -m benchmarks.refactor_soak [--workloads N] [--first-seed S]``
runs :func:`refimpl.layouts.workload.differential` for every step of
:data:`refimpl.layouts.steps.STEPS` and every deliberate mistake of
:mod:`refimpl.layouts.mistakes` on ``N`` seeded workloads (default 10000)
and prints, per step, whether it agreed with the legacy layout, the events
run and the time taken. Exit status 1 if a real step disagreed or a mistake
went uncaught. The test suite runs the same check on
``REFACTOR_WORKLOADS`` (default 1000) workloads.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from refimpl.layouts.steps import STEPS# noqa: E402
from refimpl.layouts.mistakes import MISTAKES  # noqa: E402
from refimpl.layouts.workload import _reference, differential  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", type=int, default=10000)
    p.add_argument("--first-seed", type=int, default=0)
    a = p.parse_args(argv)
    t = time.process_time()
    _reference(a.first_seed, a.workloads)
    print(f"legacy reference: {a.workloads} workloads, {time.process_time() - t:.1f} s CPU")
    bad = 0
    for s in STEPS[1:]:
        t = time.process_time()
        r = differential(s, a.workloads, first_seed=a.first_seed)
        bad += not r.ok
        print(f"step {s.number} {s.name:<20} {'agrees' if r.ok else 'DISAGREES'} "
              f"events={r.events} {time.process_time() - t:.1f} s"
              + ("" if r.ok else f"  first: {r.mismatches[0]}"))
    for name, cls in MISTAKES.items():
        r = differential(cls, a.workloads, first_seed=a.first_seed)
        bad += r.ok
        m = r.mismatches[0] if r.mismatches else None
        print(f"mistake {name:<24} {'caught' if m else 'NOT CAUGHT'}"
              + (f" (seed {m.seed}, event {m.index}: {m.event.kind}, {m.what})" if m else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
