"""Soak: the stateful machines, run for minutes with every invariant checked.

    python -m benchmarks.soak --minutes 3 --seed 1
    python -m benchmarks.soak --steps 2000 --seed 1 --only tdp-ept shadow

Each *round* runs every registered machine (the hypothesis state machines of
``tests/host/test_tdp_mmu.py``, ``tests/host/test_shadow_mmu.py`` and, when it exists,
the nested machine of ``tests/host/test_tdp12.py``) for a few examples of up to
``--step-count`` steps, with a seed derived from ``--seed``, the machine and
the round; invariants run after every step. The soak stops when the time or
step budget is spent and prints, per machine, the steps run and the
violations found; it exits 1 if there was any. With ``--steps`` the output
is the same, byte for byte, for the same seed (timings go to stderr).

A violation is any exception out of a machine: a failed invariant or rule
assertion, or an error inside the model.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import sys
import time
import traceback
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")

# name -> "module:Class" (modules are imported from tests/). A machine whose
# module is missing is skipped, so the list can name machines still to come.
REGISTRY: dict[str, str] = {
    "tdp-ept": "host.test_tdp_mmu:TdpCoherence",
    "tdp-ept-pml": "host.test_tdp_mmu:TdpCoherenceEptPml",
    "tdp-npt": "host.test_tdp_mmu:TdpCoherenceNpt",
    "shadow": "host.test_shadow_mmu:ShadowMachine",
    "nested-ept": "host.test_tdp12:NestedEptMachine",
}


@dataclass
class Tally:
    steps: int = 0
    examples: int = 0
    violations: list[str] = field(default_factory=list)


def load(spec: str):
    """The machine class ``module:Class``, or None if the module is absent."""
    if TESTS not in sys.path:
        sys.path.insert(0, TESTS)
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    mod_name, cls_name = spec.split(":")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        if e.name == mod_name:
            return None
        raise
    return getattr(mod, cls_name, None)


def round_seed(seed: int, name: str, rnd: int) -> int:
    """A seed for one machine's round, independent of PYTHONHASHSEED."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{name}/{rnd}".encode()).digest()[:8], "little")


def counting(machine_cls, tally: Tally):
    """A subclass that counts the steps it runs (one invariant check each)."""

    class Counted(machine_cls):
        def __init__(self):
            super().__init__()
            tally.examples += 1

        def check_invariants(self, *args, **kwargs):
            tally.steps += 1
            return super().check_invariants(*args, **kwargs)

    Counted.__name__ = machine_cls.__name__
    Counted.__qualname__ = machine_cls.__qualname__
    return Counted


def run_round(machine_cls, tally: Tally, seed: int, examples: int, step_count: int) -> None:
    import hypothesis.core

    old = hypothesis.core.global_force_seed
    hypothesis.core.global_force_seed = seed
    try:
        run_state_machine_as_test(
            counting(machine_cls, tally),
            settings=settings(
                max_examples=examples, stateful_step_count=step_count, deadline=None,
                database=None, derandomize=False, print_blob=False,
                suppress_health_check=list(HealthCheck),
                # A violation is reported as found, unshrunk: shrinking a
                # long run takes minutes and the seed reproduces it.
                phases=[Phase.generate],
            ),
        )
    except Exception as e:  # noqa: BLE001 - any escape is a violation
        first = (str(e).strip().splitlines() or [""])[0][:200]
        frame = traceback.extract_tb(e.__traceback__)[-1]
        where = f"{os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}"
        tally.violations.append(f"seed {seed}: {type(e).__name__} at {where}: {first}".rstrip(": "))
    finally:
        hypothesis.core.global_force_seed = old


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n")[0])
    budget = ap.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=None,
                        help="wall-clock budget (default 3 when --steps is not given)")
    budget.add_argument("--steps", type=int, default=None,
                        help="stop each machine after this many steps (deterministic output)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--examples", type=int, default=3, help="examples per machine per round")
    ap.add_argument("--step-count", type=int, default=50, help="max steps per example")
    ap.add_argument("--only", nargs="*", default=None, help="machine names to run")
    ap.add_argument("--machine", action="append", default=[], metavar="NAME=MODULE:CLASS",
                    help="add a machine to the registry (modules are looked up in tests/)")
    args = ap.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        ap.error("--steps must be >= 1")
    if args.minutes is not None and args.minutes <= 0:
        ap.error("--minutes must be > 0")
    if args.examples < 1 or args.step_count < 1:
        ap.error("--examples and --step-count must be >= 1")
    minutes = args.minutes if args.minutes is not None else (3.0 if args.steps is None else None)

    registry = dict(REGISTRY)
    for extra in args.machine:
        name, _, spec = extra.partition("=")
        if not spec or ":" not in spec:
            ap.error(f"--machine wants NAME=MODULE:CLASS, got {extra!r}")
        registry[name] = spec
    names = args.only if args.only else list(registry)
    unknown = [n for n in names if n not in registry]
    if unknown:
        ap.error(f"unknown machine(s) {unknown}; known: {sorted(registry)}")

    machines = {}
    for n in names:
        cls = load(registry[n])
        if cls is None:
            print(f"{n}: not available ({registry[n]}), skipped")
            continue
        machines[n] = cls
    tallies = {n: Tally() for n in machines}
    deadline = None if minutes is None else time.monotonic() + 60 * minutes
    start = time.monotonic()
    rnd = 0
    while machines:
        active = [n for n in machines
                  if args.steps is None or tallies[n].steps < args.steps]
        if not active or (deadline is not None and time.monotonic() >= deadline):
            break
        for n in active:
            if deadline is not None and time.monotonic() >= deadline:
                break
            run_round(machines[n], tallies[n], round_seed(args.seed, n, rnd),
                      args.examples, args.step_count)
        rnd += 1
    elapsed = time.monotonic() - start

    total_steps = sum(t.steps for t in tallies.values())
    total_viol = sum(len(t.violations) for t in tallies.values())
    print(f"soak seed={args.seed} rounds={rnd}")
    for n, t in tallies.items():
        print(f"{n}: steps={t.steps} examples={t.examples} violations={len(t.violations)}")
        for v in t.violations:
            print(f"  violation: {v}")
    print(f"total: steps={total_steps} violations={total_viol}")
    rate = total_steps / elapsed * 60 if elapsed > 0 else 0.0
    print(f"elapsed {elapsed:.1f} s, {rate:.0f} steps/minute", file=sys.stderr)
    return 1 if total_viol else 0


if __name__ == "__main__":
    sys.exit(main())
