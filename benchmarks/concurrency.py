"""How far the concurrency checker gets: ``python -m benchmarks.concurrency [--quick]``.

Three tables:

* **scenarios**: every named scenario of :mod:`refimpl.host.concurrency.scenarios`
  with every switch off, explored to the end: states, steps, interleavings
  and time (none may break an invariant);
* **switches**: each bug switch in its scenario: the length of the shortest
  interleaving that breaks an invariant, the states explored to find it
  (breadth-first, so it is a shortest one), and the time;
* **scaling**: ``n`` TDP MMU faults (alternating gfn 0 written and gfn 1 read)
  against one MMU-notifier invalidation, ``n = 1, 2, ...``, each explored to
  the end under a time limit (60 s; 20 s with ``--quick``), two
  configurations at a time on two worker processes. For the first ``n`` that
  does not finish, the run then deepens a depth bound (iterative deepening)
  within the same limit and reports the deepest bound it completed.

Times are wall-clock seconds of the explorer in its worker.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from refimpl.host.concurrency import model as M  # noqa: E402
from refimpl.host.concurrency.checker import Config, explore  # noqa: E402
from refimpl.host.concurrency.scenarios import CATCHES, SCENARIOS, scenario  # noqa: E402
from refimpl.host.concurrency.threads import Fault, Notifier  # noqa: E402


def storm(n: int) -> Config:
    """``n`` faults and one invalidation of gfn 0."""
    threads = tuple(Fault(i % 2, write=(i % 2 == 0)) for i in range(n)) + (Notifier(0),)
    return Config(threads, M._initial_vm(len(threads)), name=f"{n} faults + invalidate")


def _scenario_row(name):
    e = explore(scenario(name))
    return name, e.states, e.transitions, e.interleavings, e.seconds, bool(e.violation)


def _switch_row(bug):
    name, _ = CATCHES[bug]
    e = explore(scenario(name, {bug}), stop=True)
    t = e.violation
    return bug, name, len(t), ", ".join(t.broken), e.states, e.seconds


def _storm_row(n):
    e = explore(storm(n))
    return n, e.states, e.transitions, e.interleavings, e.seconds


def _deepen(n, limit):
    """The deepest depth bound explored completely within ``limit`` seconds."""
    t0, best = time.perf_counter(), None
    depth = 4
    while True:
        e = explore(storm(n), max_depth=depth)
        if time.perf_counter() - t0 > limit:
            return best
        best = (depth, e.states, e.transitions, time.perf_counter() - t0)
        if e.complete:
            return best
        depth += 2


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 s limit instead of 60 s")
    args = ap.parse_args(argv)
    limit = 20.0 if args.quick else 60.0
    print(f"# concurrency checker, {os.cpu_count()} CPUs visible, 2 workers, limit {limit:.0f} s\n")

    print("## every scenario, every switch off\n")
    print("| scenario | states | steps | interleavings | s | broken |\n|---|---|---|---|---|---|")
    for name, st, tr, il, sec, bad in map(_scenario_row, SCENARIOS):
        print(f"| {name} | {st:,} | {tr:,} | {il:,} | {sec:.2f} | {'YES' if bad else 'no'} |")

    print("\n## each switch, shortest interleaving that breaks an invariant\n")
    print("| switch | scenario | steps | broken | states explored | s |\n|---|---|---|---|---|---|")
    for bug, name, n, broken, st, sec in map(_switch_row, sorted(CATCHES)):
        print(f"| {bug} | {name} | {n} | {broken} | {st:,} | {sec:.3f} |")

    print(f"\n## scaling: n faults + 1 invalidation, explored to the end within {limit:.0f} s\n")
    print("| n | threads | states | steps | interleavings | s |\n|---|---|---|---|---|---|")
    ctx = mp.get_context("fork")
    n, stopped = 1, None
    with ctx.Pool(2) as pool:
        while stopped is None:
            jobs = [(k, pool.apply_async(_storm_row, (k,))) for k in (n, n + 1)]
            for k, job in jobs:
                try:
                    _, st, tr, il, sec = job.get(timeout=limit)
                except mp.TimeoutError:
                    stopped = k if stopped is None else stopped
                    continue
                if stopped is None or k < stopped:
                    print(f"| {k} | {k + 1} | {st:,} | {tr:,} | {il:,} | {sec:.1f} |")
            n += 2
        pool.terminate()
    print(f"| {stopped} | {stopped + 1} | (did not finish in {limit:.0f} s) | | | |")
    best = _deepen(stopped, limit)
    if best:
        d, st, tr, sec = best
        print(f"\nWith {stopped + 1} threads, iterative deepening completed depth {d} "
              f"({st:,} states, {tr:,} steps) in {sec:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
