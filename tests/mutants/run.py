"""Apply each semantic mutant of the MMU modules and run the fast MMU tests.

Usage (from the repository root, with the project's virtual environment)::

    python tests/mutants/run.py                 # every mutant, one at a time
    python tests/mutants/run.py --list          # the catalogue, nothing run
    python tests/mutants/run.py --only tdp_mmu  # ids or paths containing a string
    python tests/mutants/run.py -j 2 --json out.json
    python tests/mutants/run.py -k "edges"      # passed to pytest

For each mutant the runner copies what pytest needs (``refimpl/``,
``tests/``, ``conftest.py``, ``pyproject.toml``) into a fresh temporary
directory, replaces the mutant's fragment (it must occur exactly once),
and runs ``python -m pytest -x -q -m "not slow" -p no:cacheprovider`` on the
MMU tests with the copy as working directory and first on ``PYTHONPATH``.
A guard plugin (:mod:`mutants.guard`) stops the run unless ``refimpl`` is
imported from the copy. A failing test *kills* the mutant; a passing run
means it *survived*; anything else (a collection error, the guard, a
timeout) is reported as such. A survivor its catalogue declares
``EQUIVALENT`` (no test can catch it; the catalogue says why) is reported as
*equivalent*. The table is printed at the end, and the exit status is 1 if
any other mutant survived, or any errored.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from mutants import REPO_ROOT, Mutant, apply, equivalents, load  # noqa: E402

#: What pytest needs from the repository.
COPIED = ("refimpl", "tests", "conftest.py", "pyproject.toml")

#: The fast MMU tests every mutant is run against (the not-slow subset).
FAST_TESTS = (
    "tests/host",
    "tests/test_bugs_replayed.py",
    "tests/guest/test_rsvd_masks.py",
)

#: Seconds before a run is stopped (a mutant that loops is killed by it).
TIMEOUT = 600


@dataclass
class Outcome:
    """What happened to one mutant."""

    id: str
    path: str
    why: str
    status: str          # "killed", "survived", "equivalent", "timeout", "error"
    seconds: float
    detail: str          # the first failing test, or the error


def _ignore(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n in ("__pycache__", ".hypothesis", ".pytest_cache")}


def make_copy(mutant: Mutant | None, root: Path = REPO_ROOT) -> Path:
    """A temporary copy of what pytest needs, with ``mutant`` applied."""
    tmp = Path(tempfile.mkdtemp(prefix="mutant-"))
    for name in COPIED:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, tmp / name, ignore=_ignore)
        else:
            shutil.copy2(src, tmp / name)
    if mutant is not None:
        target = tmp / mutant.path
        if not target.is_file():
            shutil.rmtree(tmp)
            raise ValueError(f"mutant: no file {mutant.path} in the copy")
        try:
            target.write_text(apply(target.read_text(encoding="utf-8"), mutant), encoding="utf-8")
        except ValueError:
            shutil.rmtree(tmp)
            raise
    return tmp


_FAILED = re.compile(r"^(FAILED|ERROR) (\S+)", re.M)


def run_one(ident: str, mutant: Mutant | None, *, tests=FAST_TESTS, pytest_args=(),
            root: Path = REPO_ROOT, timeout: float = TIMEOUT) -> Outcome:
    """Apply ``mutant`` (None: none) to a copy and run ``tests`` there."""
    start = time.monotonic()
    why = mutant.why if mutant else "no mutant"
    path = mutant.path if mutant else "-"
    try:
        copy = make_copy(mutant, root)
    except ValueError as e:
        return Outcome(ident, path, why, "error", 0.0, str(e))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(copy), str(copy / "tests")])
    env["MUTANT_COPY"] = str(copy)
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_CURRENT_TEST", None)
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-m", "not slow", "-p",
           "no:cacheprovider", "-p", "mutants.guard", "-rfE", "--no-header",
           *pytest_args, *tests]
    try:
        proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return Outcome(ident, path, why, "timeout", time.monotonic() - start,
                       f"no result after {timeout:.0f} s")
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    seconds = time.monotonic() - start
    out = proc.stdout + proc.stderr
    if proc.returncode == 0:
        return Outcome(ident, path, why, "survived", seconds, "")
    if proc.returncode == 1:
        m = _FAILED.search(out)
        return Outcome(ident, path, why, "killed", seconds, m.group(2) if m else "a test failed")
    tail = " | ".join(line for line in out.strip().splitlines()[-3:])
    return Outcome(ident, path, why, "error", seconds, f"pytest exit {proc.returncode}: {tail}")


def table(outcomes: list[Outcome]) -> str:
    """The results as a Markdown table."""
    lines = ["| mutant | file | status | s | killed by / detail |",
             "| --- | --- | --- | ---: | --- |"]
    for o in outcomes:
        lines.append(f"| {o.id} | {o.path} | {o.status} | {o.seconds:.1f} | {o.detail} |")
    counts = {s: sum(o.status == s for o in outcomes)
              for s in ("killed", "survived", "equivalent", "timeout", "error")}
    lines.append("")
    lines.append(", ".join(f"{k}: {v}" for k, v in counts.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="run mutants whose id or path contains this")
    ap.add_argument("--list", action="store_true", help="print the catalogue and stop")
    ap.add_argument("-k", default=None, help="pytest -k expression")
    ap.add_argument("-j", type=int, default=1, help="mutants run at once (default 1)")
    ap.add_argument("--json", default=None, help="also write the outcomes to this file")
    ap.add_argument("--tests", nargs="*", default=list(FAST_TESTS),
                    help="test paths (default: the fast MMU tests)")
    args = ap.parse_args(argv)
    chosen = [(i, m) for i, m in load() if args.only in i or args.only in m.path]
    equivalent = equivalents()
    if args.list:
        for i, m in chosen:
            print(f"{i:16} {m.path:30} {m.why}")
        return 0
    if not chosen:
        print("no mutant matches", file=sys.stderr)
        return 2
    pytest_args = ["-k", args.k] if args.k else []
    start = time.monotonic()

    def one(item):
        i, m = item
        o = run_one(i, m, tests=tuple(args.tests), pytest_args=pytest_args)
        if o.status == "survived" and i in equivalent:
            o.status, o.detail = "equivalent", equivalent[i]
        print(f"{o.id:16} {o.status:9} {o.seconds:6.1f} s  {o.detail}", flush=True)
        return o

    if args.j > 1:
        with ThreadPoolExecutor(args.j) as pool:
            outcomes = list(pool.map(one, chosen))
    else:
        outcomes = [one(item) for item in chosen]
    wall = time.monotonic() - start
    print()
    print(table(outcomes))
    print(f"wall time {wall:.0f} s for {len(outcomes)} mutants")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"wall_seconds": round(wall, 1), "outcomes": [asdict(o) for o in outcomes]},
            indent=1) + "\n", encoding="utf-8")
    return 0 if all(o.status in ("killed", "equivalent", "timeout") for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
