"""The explorer: every interleaving of a few threads, invariants checked after each step.

:func:`explore` runs a breadth-first search over the states of a
:class:`Config` (the shared :class:`~.model.Vm` and every thread's
registers). Each state is expanded once (state hashing): two interleavings
that only order independent steps differently meet in the same state and
share the rest of the search. Because the search is breadth-first, the first
state found that breaks an invariant is one reached by a *shortest*
interleaving, and the trace the explorer returns is that interleaving, step
by step.

The number of interleavings (maximal executions) is counted on the state
graph (paths from the first state to a final one), not by enumerating them;
:func:`count_interleavings` enumerates them one by one, without hashing, for
checking that count on small configurations.

Glossary
--------
enabled
    A thread can take a step: it is not done and not blocked (waiting for
    ``mmu_lock``, a frozen SPTE, a grace period).
deadlock
    No thread is enabled but some are not done; reported like a broken
    invariant.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Optional

from refimpl.errors import check_bugs, check_instance, check_int, check_items
from refimpl.host.concurrency.invariants import violations
from refimpl.host.concurrency.model import Vm
from refimpl.host.concurrency.threads import BUGS, Regs, _Thread

__all__ = ["Config", "explore", "shortest_violation", "count_interleavings", "replay"]


@dataclass(frozen=True)
class Config:
    """Threads, the VM they start from, and the bug switches that are on.

    Parameters
    ----------
    threads : tuple of thread programs
        From :mod:`refimpl.host.concurrency.threads` (one to six).
    vm : refimpl.host.concurrency.model.Vm
        The shared state before the first step; it must have one RCU slot
        per thread and one spare table per thread.
    bugs : frozenset of str
        Names from :data:`~refimpl.host.concurrency.threads.BUGS`.
    name : str
        For tables and reports.
    """

    threads: tuple
    vm: Vm
    bugs: frozenset = frozenset()
    name: str = ""

    def __post_init__(self):
        threads = check_items("threads", self.threads, _Thread)
        if not 1 <= len(threads) <= 6:
            raise ValueError(f"Config.threads: 1 to 6 threads, got {len(threads)}")
        check_instance("vm", self.vm, Vm)
        if len(self.vm.rcu) != len(threads) or len(self.vm.tables) != len(threads) + 1:
            raise ValueError("Config.vm: needs one RCU slot and one spare table per thread")
        object.__setattr__(self, "threads", threads)
        object.__setattr__(self, "bugs", check_bugs("bugs", self.bugs, BUGS))
        check_instance("name", self.name, str)


@dataclass(frozen=True)
class Step:
    """One step of a trace: which thread, what it did, the state after."""

    thread: int
    label: str
    vm: Vm
    regs: tuple


@dataclass(frozen=True)
class Trace:
    """An interleaving, step by step, and what it broke (empty if nothing)."""

    config: Config
    steps: tuple
    broken: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.steps)


@dataclass(frozen=True)
class Exploration:
    """What :func:`explore` found.

    Attributes
    ----------
    states, transitions : int
        Distinct states expanded, and steps taken between them.
    interleavings : int or None
        Maximal executions (None when the search stopped early).
    finals : int
        Distinct final states.
    violation : Trace or None
        A shortest interleaving that breaks an invariant.
    seconds : float
        Wall-clock time of the search.
    complete : bool
        False when the search stopped at a violation or at ``max_depth``.
    depth : int
        The longest interleaving explored (in steps).
    """

    states: int
    transitions: int
    interleavings: Optional[int]
    finals: int
    violation: Optional[Trace]
    seconds: float
    complete: bool
    depth: int


def _start(config: Config):
    return (config.vm, tuple(t.start(config.bugs) for t in config.threads))


def _successors(config: Config, state):
    vm, regs = state
    out = []
    for i, t in enumerate(config.threads):
        step = t.step(vm, i, regs[i], config.bugs)
        if step is not None:
            label, vm2, r2 = step
            out.append((i, label, (vm2, regs[:i] + (r2,) + regs[i + 1:])))
    return out


def _done(state) -> bool:
    return all(r.pc == "done" for r in state[1])


def _broken(state, succ) -> dict:
    bad = violations(state[0])
    if not succ and not _done(state):
        bad["deadlock"] = "no thread can move, but not all are done"
    return bad


def _trace(config, parent, state, broken) -> Trace:
    steps = []
    while parent[state] is not None:
        prev, thread, label = parent[state]
        steps.append(Step(thread, label, state[0], state[1]))
        state = prev
    return Trace(config, tuple(reversed(steps)), broken)


def explore(config: Config, max_depth: Optional[int] = None, stop: bool = False) -> Exploration:
    """Explore every interleaving of ``config`` breadth-first.

    Parameters
    ----------
    config : Config
    max_depth : int, optional
        Do not expand states more than this many steps from the start.
    stop : bool
        Stop at the first violation (it is then a shortest one).

    Returns
    -------
    Exploration

    Raises
    ------
    TypeError, ValueError
        ``config`` not a :class:`Config`, ``max_depth`` not a positive int.
    """
    check_instance("config", config, Config)
    if max_depth is not None:
        max_depth = check_int("max_depth", max_depth)
        if max_depth < 1:
            raise ValueError(f"max_depth must be >= 1, got {max_depth}")
    check_instance("stop", stop, bool)
    # The search allocates many small tuples and frees none until it ends:
    # the cyclic collector would only walk them again and again.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _explore(config, max_depth, stop)
    finally:
        if enabled:
            gc.enable()


def _explore(config: Config, max_depth: Optional[int], stop: bool) -> Exploration:
    t0 = time.perf_counter()
    init = _start(config)
    parent = {init: None}
    depth_of = {init: 0}
    succ_of = {}
    queue = deque([init])
    transitions = 0
    violation = None
    complete = True
    deepest = 0
    # Successors are computed once, when a state is found (the deadlock check
    # needs them), and kept until the state is expanded.
    found = {init: _successors(config, init)}
    first = _broken(init, found[init])
    if first:
        violation = _trace(config, parent, init, first)
    while queue and not (stop and violation):
        s = queue.popleft()
        d = depth_of[s]
        deepest = max(deepest, d)
        succ = found.pop(s)
        if max_depth is not None and d >= max_depth:
            complete = False
            succ_of[s] = None
            continue
        succ_of[s] = [c for _, _, c in succ]
        transitions += len(succ)
        for i, label, c in succ:
            if c in parent:
                continue
            parent[c] = (s, i, label)
            depth_of[c] = d + 1
            found[c] = _successors(config, c)
            bad = _broken(c, found[c])
            if bad and violation is None:
                violation = _trace(config, parent, c, bad)
                if stop:
                    break
            queue.append(c)
    if stop and violation:
        complete = False
    paths = _count_paths(init, succ_of) if complete else None
    finals = sum(1 for v in succ_of.values() if v == [])
    return Exploration(len(parent), transitions, paths, finals, violation,
                       time.perf_counter() - t0, complete, deepest)


def _count_paths(init, succ_of) -> Optional[int]:
    """Paths from ``init`` to a final state, on the (acyclic) state graph."""
    indeg = {s: 0 for s in succ_of}
    for cs in succ_of.values():
        for c in cs or ():
            indeg[c] += 1
    order, ready = [], [s for s, n in indeg.items() if n == 0]
    while ready:
        s = ready.pop()
        order.append(s)
        for c in succ_of[s] or ():
            indeg[c] -= 1
            if indeg[c] == 0:
                ready.append(c)
    if len(order) != len(succ_of):
        return None                          # a cycle: infinitely many
    paths = {}
    for s in reversed(order):
        cs = succ_of[s]
        paths[s] = 1 if not cs else sum(paths[c] for c in cs)
    return paths[init]


def shortest_violation(config: Config) -> Optional[Trace]:
    """A shortest interleaving of ``config`` that breaks an invariant, or None.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`Config`.
    """
    return explore(config, stop=True).violation


def count_interleavings(config: Config, limit: int = 100_000) -> int:
    """Enumerate the maximal interleavings one by one (no hashing) and count them.

    For checking :func:`explore` on small configurations; stops with a
    ``ValueError`` past ``limit`` interleavings.

    Raises
    ------
    TypeError, ValueError
        Bad ``config`` or ``limit``; more than ``limit`` interleavings.
    """
    check_instance("config", config, Config)
    limit = check_int("limit", limit)
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    n = 0
    stack = [_start(config)]
    while stack:
        s = stack.pop()
        succ = _successors(config, s)
        if not succ:
            n += 1
            if n > limit:
                raise ValueError(f"more than {limit} interleavings")
        stack.extend(c for _, _, c in succ)
    return n


def replay(config: Config, schedule, waits: bool = False) -> Trace:
    """Run ``config`` with the threads moving in the order ``schedule`` gives.

    A thread that is blocked or done at its turn is skipped; with ``waits``,
    a blocked thread's turn is shown as a step labelled ``"waits"`` that
    changes nothing. The trace stops at the first step that breaks an
    invariant.

    Raises
    ------
    TypeError, ValueError
        Bad ``config``; ``schedule`` not a sequence of thread indices.
    """
    check_instance("config", config, Config)
    check_instance("waits", waits, bool)
    sched = check_items("schedule", schedule, int)
    n = len(config.threads)
    for i in sched:
        if isinstance(i, bool) or not 0 <= i < n:
            raise ValueError(f"schedule: thread index must be in [0, {n}), got {i!r}")
    state = _start(config)
    steps = []
    broken = violations(state[0])
    for i in sched:
        if broken:
            break
        vm, regs = state
        step = config.threads[i].step(vm, i, regs[i], config.bugs)
        if step is None:
            if waits and regs[i].pc != "done":
                steps.append(Step(i, "waits", vm, regs))
            continue
        label, vm2, r2 = step
        state = (vm2, regs[:i] + (r2,) + regs[i + 1:])
        steps.append(Step(i, label, vm2, state[1]))
        broken = _broken(state, _successors(config, state))
    return Trace(config, tuple(steps), broken)


del Regs
