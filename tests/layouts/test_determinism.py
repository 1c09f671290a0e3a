"""The same seed gives the same results, byte for byte, in a fresh process.

Each check runs twice in new interpreters with different ``PYTHONHASHSEED``
values (so set or dict order, ``hash()`` or ``id()`` leaking into a result
would show) and compares SHA-256 digests of the serialised results:

* ``image``: the benchmarks' page-table image (``benchmarks.image``), its
  memory, registers and address lists;
* ``batch``: a seeded ``translate_batch`` workload on it, results and the
  memory after (A/D bits);
* ``scalar``: ``translate`` on the image's scalar addresses;
* ``diff-gen``: the unicorn-free case generator and image builder of the
  differential test (``tests/unicorn_harness.py``);
* ``soak``: the output of a short ``benchmarks.soak --steps`` run;
* ``refactor``: seeded workloads of the refactoring driver
  (``refimpl.layouts.workload``) and every outcome the legacy layout and
  the last step record for them.

``test_the_check_can_fail`` shows the comparison catches a result that
depends on the hash seed or on an unseeded generator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

#: Runs whole processes or long soaks.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROGRAM = r'''
import contextlib, hashlib, io, json, random, sys
import numpy as np
sys.path.insert(0, "tests")
which = sys.argv[1].split(",")
out = {}

def h(*parts):
    d = hashlib.sha256()
    for p in parts:
        d.update(p if isinstance(p, bytes) else repr(p).encode())
    return d.hexdigest()

if {"image", "batch", "scalar"} & set(which):
    from benchmarks.image import batch_addresses, build_image, scalar_addresses
    from refimpl import translate, translate_batch
    img = build_image(seed=5, mem_mib=8, scale=0.05)
    sa = scalar_addresses(img, seed=6)
    ba = batch_addresses(img, 4096, seed=7)
    out["image"] = h(bytes(img.mem.buffer), img.cpu, sa, ba.tobytes())
    if "batch" in which:
        mem = img.mem.copy()
        r = translate_batch(mem, img.cpu, ba, 2)
        out["batch"] = h(r.gpa.tobytes(), r.fault.tobytes(), r.vector.tobytes(),
                         r.error_code.tobytes(), bytes(mem.buffer))
    if "scalar" in which:
        mem = img.mem.copy()
        res = [translate(mem, img.cpu, a, 0) for a in sa[:2000]]
        out["scalar"] = h([(r.gpa, r.level, None if r.fault is None else
                            (r.fault.vector, r.fault.error_code)) for r in res], bytes(mem.buffer))
if "diff-gen" in which:
    import unicorn_harness as U
    rng = random.Random(11)
    parts = []
    for mode in U.Mode:
        for _ in range(8):
            case = U.gen_case(rng, mode, "det")
            parts.append((repr(case), U.build_image(case).tobytes()))
    out["diff-gen"] = h(*[p for pair in parts for p in pair])
if "soak" in which:
    from benchmarks import soak
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        rc = soak.main(["--steps", "40", "--seed", "3", "--examples", "2", "--step-count", "20"])
    out["soak"] = h(rc, buf.getvalue())
if "refactor" in which:
    from refimpl.layouts import workload as W
    runs = []
    for wl in W.workloads(12, first_seed=500):
        for step in ("legacy", "cr0wp_no_reset"):
            r = W.run(step, wl)
            runs.append((repr(wl.events), r.outcomes, r.internal, sorted(r.stats.items()), r.error))
    out["refactor"] = h(*runs)
if "hash-canary" in which:
    out["hash-canary"] = h(sorted({"a", "b", "c"}, key=hash), hash("refimpl"))
if "unseeded" in which:
    out["unseeded"] = h(random.Random().getrandbits(64))
print(json.dumps(out, sort_keys=True))
'''

CHECKS = ["image", "batch", "scalar", "diff-gen", "soak", "refactor"]


def start(which: list[str], hashseed: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONHASHSEED=hashseed)
    return subprocess.Popen([sys.executable, "-c", PROGRAM, ",".join(which)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> dict[str, str]:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return json.loads(out.splitlines()[-1])


def digests_pair(which: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The digests from two fresh interpreters (run side by side) with
    PYTHONHASHSEED 0 and 4242."""
    a, b = start(which, "0"), start(which, "4242")
    return finish(a), finish(b)


@pytest.fixture(scope="module")
def two_runs():
    return digests_pair(CHECKS)


@pytest.mark.parametrize("check", CHECKS)
def test_same_seed_same_bytes_across_processes(two_runs, check):
    a, b = two_runs
    assert check in a and len(a[check]) == 64
    assert a[check] == b[check], f"{check} differs between PYTHONHASHSEED=0 and 4242"


def test_the_check_can_fail():
    a, b = digests_pair(["hash-canary", "unseeded"])
    assert a["hash-canary"] != b["hash-canary"]
    assert a["unseeded"] != b["unseeded"]
