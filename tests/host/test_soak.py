"""The soak script: a short run is clean, and a planted violation fails it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from hypothesis import strategies as st

#: Runs the soak script in a process, for seconds.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class PlantedMachine(RuleBasedStateMachine):
    """A counter whose invariant breaks once it reaches 3."""

    def __init__(self):
        super().__init__()
        self.n = 0

    @rule(k=st.integers(0, 2))
    def bump(self, k):
        self.n += k

    @invariant()
    def small(self):
        assert self.n < 3, f"planted violation: n={self.n}"


def soak(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "benchmarks.soak", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_short_soak_of_every_machine_is_clean():
    r = soak("--steps", "60", "--seed", "7", "--examples", "2", "--step-count", "30")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    for name in ("tdp-ept", "tdp-ept-pml", "tdp-npt", "shadow"):
        row = next(line for line in lines if line.startswith(name + ":"))
        steps = int(row.split("steps=")[1].split()[0])
        assert steps >= 60 and row.endswith("violations=0"), row
    assert lines[-1].startswith("total: ") and lines[-1].endswith("violations=0")


def test_planted_violation_makes_the_soak_fail():
    r = soak("--steps", "200", "--seed", "1", "--only", "planted",
             "--machine", "planted=host.test_soak:PlantedMachine")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "planted violation" in r.stdout
    row = next(line for line in r.stdout.splitlines() if line.startswith("planted:"))
    assert "violations=0" not in row


def test_bad_arguments_are_refused():
    r = soak("--steps", "0")
    assert r.returncode == 2 and "--steps" in r.stderr
    r = soak("--only", "no-such-machine", "--steps", "1")
    assert r.returncode == 2 and "unknown machine" in r.stderr
