"""Arbitrary values thrown at every public callable of ``refimpl``.

The contract (``refimpl.errors``): a public call either returns, or raises
``TypeError``/``ValueError`` (or ``HostOutOfMemory``), and a call that
raises leaves the object it was called on and its arguments unchanged.
Every public function, constructor and method is found by introspection
(``tests/api_surface.py``) and fuzzed here; one that cannot be must appear
in :data:`NOT_FUZZED` with a reason, or ``test_every_public_callable_is_fuzzed``
fails. Any other exception fails, naming the callable and the arguments.

The default run draws ``FUZZ_EXAMPLES`` (8) argument sets per callable
(fewer for the few in :data:`EXAMPLES`); ``HYPOTHESIS_PROFILE=fuzz-long`` (or
``REFIMPL_FUZZ_EXAMPLES=N``) draws more, for every callable. Counts of
workloads are drawn small (:data:`BOUNDED`), whatever the run. A class with
several instance factories (a refactoring step with its vCPU in L1, in L2,
under shadow paging...) is fuzzed in a state drawn among them.
"""

from __future__ import annotations

import collections.abc
import enum
import inspect
import operator
import os
import pathlib
import types

import numpy as np

import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

import refimpl
from refimpl.errors import DOCUMENTED

from api_surface import (
    ARBITRARY, GOOD_FOR_INSTANCE, INSTANCES, good_value, public_callables, public_modules,
    state_of,
)

FUZZ_EXAMPLES = int(os.environ.get("REFIMPL_FUZZ_EXAMPLES", "8"))
if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz-long":
    FUZZ_EXAMPLES = max(FUZZ_EXAMPLES, 300)
# A run that asks for a number of examples gets it for every callable.
LONG_RUN = "REFIMPL_FUZZ_EXAMPLES" in os.environ or \
    os.environ.get("HYPOTHESIS_PROFILE") == "fuzz-long"

# Callables that are not fuzzed, each with the reason.
NOT_FUZZED: dict[str, str] = {
    # Widgets build ipywidgets trees; their inputs are WalkSetup & co,
    # which are fuzzed directly, and their callbacks take widget events.
    "refimpl.viz.widgets.WalkExplorer": "ipywidgets; its setup type WalkSetup is fuzzed",
    "refimpl.viz.widgets.WalkExplorer.setup": "ipywidgets",
    "refimpl.viz.widgets.WalkExplorer.update": "ipywidgets event callback",
    "refimpl.viz.widgets.BitmapExplorer": "ipywidgets; BitmapSetup is fuzzed",
    "refimpl.viz.widgets.BitmapExplorer.setup": "ipywidgets",
    "refimpl.viz.widgets.BitmapExplorer.update": "ipywidgets event callback",
    "refimpl.viz.widgets.LayoutExplorer": "ipywidgets; LayoutSetup is fuzzed",
    "refimpl.viz.widgets.LayoutExplorer.setup": "ipywidgets",
    "refimpl.viz.widgets.LayoutExplorer.update": "ipywidgets event callback",
    "refimpl.viz.widgets.NestedWalkExplorer": "ipywidgets; NestedSetup is fuzzed",
    "refimpl.viz.widgets.NestedWalkExplorer.setup": "ipywidgets",
    "refimpl.viz.widgets.NestedWalkExplorer.update": "ipywidgets event callback",
    # Steps shared by both layouts that call back into the caller's code:
    # their arguments are checked, but what a callback does is the caller's.
    # They are fuzzed through the entry/exit functions of both layouts.
    "refimpl.layouts.model.nested_entry": "runs caller-supplied callbacks; see nested_vmx_vmentry",
    "refimpl.layouts.model.nested_exit": "runs caller-supplied callbacks; see nested_vmx_vmexit",
    # Protocol classes are interfaces, not code.
    "refimpl.host.vm.MemslotListener": "typing.Protocol: an interface",
    "refimpl.host.vm.MemslotListener.memslot_changed": "Protocol method stub",
    "refimpl.host.vm.MemslotListener.sync_dirty_log": "Protocol method stub",
    "refimpl.host.vm.MemslotListener.dirty_log_cleared": "Protocol method stub",
}


def _not_a_big_count(v) -> bool:
    """False for a valid count above 2 (an int-like that is not a bool)."""
    if isinstance(v, (bool, np.bool_)):
        return True
    try:
        return operator.index(v) <= 2
    except TypeError:
        return True


#: A count of workloads that is either small (1 or 2) or not a valid count
#: at all: a valid large one (or the default, 200 or 1000 workloads) would
#: run for seconds to minutes, which tests nothing the small ones do not.
SMALL_COUNT = st.one_of(st.sampled_from([1, 2]), ARBITRARY.filter(_not_a_big_count))

# Parameters whose valid values can ask for unbounded work: the fuzz draws
# them from the given strategy instead (never the default, never arbitrary).
BOUNDED: dict[str, dict[str, st.SearchStrategy]] = {
    "refimpl.layouts.workload.workloads": {"n": SMALL_COUNT},
    "refimpl.layouts.workload.differential": {"n": SMALL_COUNT},
    "refimpl.layouts.measures.counters": {"n": SMALL_COUNT},
}

# Callables that cost more per example than the others: fewer examples.
EXAMPLES: dict[str, int] = {
    "refimpl.layouts.workload.differential": 4,
    "refimpl.layouts.measures.counters": 4,
    "refimpl.layouts.measures.pointer_tables": 4,
    "refimpl.layouts.measures.bytes_table": 4,
    "refimpl.layouts.figures.step_diagram": 4,
    "refimpl.layouts.figures.configured_vcpu": 4,
}

# Callables the fuzz still finds an undocumented exception in: each is run
# as a strict xfail, so fixing one makes the test say so (remove it then).
KNOWN_GAPS: dict[str, str] = {}

ALL = public_callables()
FUZZED = sorted(k for k in ALL if k not in NOT_FUZZED)


# ---------------------------------------------------------------------------
# Argument strategies
# ---------------------------------------------------------------------------

OMIT = object()


class Good:
    """A good value still to be made (after the instance, which it may need)."""

    def __init__(self, factory, wants_instance):
        self.factory, self.wants_instance = factory, wants_instance

    def make(self, instance):
        return self.factory(instance) if self.wants_instance else self.factory()


def _param_strategy(module: str, p: inspect.Parameter, owner_key: str | None = None,
                    key: str | None = None):
    """Draws (value, is_good); a good value is a :class:`Good` to make."""
    if p.name in BOUNDED.get(key, {}):
        return BOUNDED[key][p.name].map(lambda v: (v, False))
    good = good_value(module, p.name)
    wants = False
    if owner_key is not None and (owner_key, p.name) in GOOD_FOR_INSTANCE:
        good, wants = GOOD_FOR_INSTANCE[(owner_key, p.name)], True
    choices = [ARBITRARY.map(lambda v: (v, False))]
    if good is not None:
        choices.insert(0, st.just((Good(good, wants), True)))
    if p.default is not inspect.Parameter.empty:
        choices.insert(0, st.just((OMIT, True)))
    return st.one_of(*choices)


def _signature(obj):
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if inspect.isclass(obj) and issubclass(obj, (enum.Enum, BaseException)):
        return inspect.Signature([inspect.Parameter("value", inspect.Parameter.POSITIONAL_ONLY)])
    return inspect.signature(obj)


def _variants(cls) -> int:
    """How many states :data:`INSTANCES` offers for ``cls`` (1 if one factory)."""
    f = INSTANCES.get(f"{cls.__module__}.{cls.__qualname__}")
    return len(f) if isinstance(f, tuple) else 1


def _instance(cls, variant: int = 0):
    key = f"{cls.__module__}.{cls.__qualname__}"
    if key in INSTANCES:
        f = INSTANCES[key]
        return f[variant]() if isinstance(f, tuple) else f()
    kwargs = {}
    for p in _signature(cls).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.default is not p.empty:
            continue
        f = good_value(cls.__module__, p.name)
        if f is None:
            raise LookupError(f"no good value for {key}({p.name}=...)")
        kwargs[p.name] = f()
    return cls(**kwargs)


def _call_parts(key: str):
    obj, owner = ALL[key]
    module = (owner or obj).__module__ if not isinstance(obj, (staticmethod, classmethod)) \
        else owner.__module__
    params = [p for p in _signature(obj).parameters.values()
              if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    bound = owner is not None and not isinstance(obj, (staticmethod, classmethod))
    if bound:
        params = params[1:]  # self
    return obj, owner, module, params, bound


def _target(obj, owner, instance):
    if owner is None:
        return obj
    if isinstance(obj, (staticmethod, classmethod)):
        return getattr(owner, obj.__func__.__name__)
    return getattr(instance, obj.__name__)


def _consume(result):
    # Generators raise only when iterated.
    if isinstance(result, (types.GeneratorType, collections.abc.Iterator)):
        for _ in zip(range(10_000), result):
            pass


def check_call(key, fn, args, kwargs, watched):
    """Call ``fn``; fail on an undocumented exception, or on a documented
    one raised after ``watched`` (the instance and good arguments) changed."""
    before = state_of(watched)
    try:
        _consume(fn(*args, **kwargs))
    except DOCUMENTED as e:
        assert str(e), f"{key} raised {type(e).__name__} with no message"
        assert state_of(watched) == before, (
            f"{key}(*{args!r}, **{kwargs!r}) raised {type(e).__name__}({e}) "
            f"but changed its object or arguments")
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - the point of the test
        raise AssertionError(
            f"{key}(*{args!r}, **{kwargs!r}) raised undocumented "
            f"{type(e).__name__}: {e}") from e


@pytest.mark.parametrize("key", [
    pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[k]))
    if k in KNOWN_GAPS else k for k in FUZZED])
def test_public_callable_honours_the_contract(key):
    obj, owner, module, params, bound = _call_parts(key)
    owner_key = f"{owner.__module__}.{owner.__qualname__}" if bound else None
    strategies = st.tuples(*[_param_strategy(module, p, owner_key, key) for p in params])
    examples = FUZZ_EXAMPLES if LONG_RUN else min(FUZZ_EXAMPLES,
                                                   EXAMPLES.get(key, FUZZ_EXAMPLES))

    @settings(max_examples=examples, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck),
              # The failing call is reported as drawn: shrinking costs seconds.
              phases=[Phase.explicit, Phase.generate])
    @given(variant=st.integers(0, _variants(owner) - 1) if bound else st.just(0),
           drawn=strategies)
    def run(variant, drawn):
        instance = _instance(owner, variant) if bound else None
        args, kwargs, goods = [], {}, []
        for p, (value, is_good) in zip(params, drawn):
            if value is OMIT:
                continue
            if isinstance(value, Good):
                value = value.make(instance)
            if is_good:
                goods.append(value)
            if p.kind is p.POSITIONAL_ONLY:
                args.append(value)
            else:
                kwargs[p.name] = value
        check_call(key, _target(obj, owner, instance), args, kwargs, (instance, goods))

    run()


def test_every_public_callable_is_fuzzed():
    """A new public callable is fuzzed automatically, unless it cannot be
    instantiated: then it must be given an instance factory
    (``api_surface.INSTANCES``) or listed, with a reason, in NOT_FUZZED."""
    stale = sorted((set(NOT_FUZZED) | set(KNOWN_GAPS) | set(BOUNDED) | set(EXAMPLES)) - set(ALL))
    assert not stale, f"NOT_FUZZED names callables that no longer exist: {stale}"
    unreachable = []
    for key in FUZZED:
        obj, owner, module, params, bound = _call_parts(key)
        if bound:
            for variant in range(_variants(owner)):
                try:
                    _instance(owner, variant)
                except Exception as e:  # noqa: BLE001
                    unreachable.append(f"{key} (state {variant}): {type(e).__name__}: {e}")
    assert not unreachable, "\n".join(unreachable)
    assert all(NOT_FUZZED.values())


def test_discovery_walks_every_subpackage():
    """Every public module on disk under ``refimpl/`` (found with
    :mod:`pathlib`, not :mod:`pkgutil`) is discovered, in any subpackage at
    any depth; so is each module's public API (a sample from each subpackage)."""
    root = pathlib.Path(refimpl.__file__).parent
    on_disk = set()
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if not any(p.startswith("_") for p in parts):
            on_disk.add(".".join(parts))
    found = {m.__name__ for m in public_modules()}
    assert on_disk <= found, sorted(on_disk - found)
    assert {"refimpl.layouts.workload", "refimpl.layouts.steps.step8_cr0wp_no_reset",
            "refimpl.viz.svg"} <= found
    for key in ("refimpl.layouts.workload.differential",
                "refimpl.layouts.steps.step3_kind.Kind.kind_of",
                "refimpl.story.history.resolve_2026",
                "refimpl.viz.svg.Diagram.box", "refimpl.guest.walker.walk_addr_generic"):
        assert key in ALL, key


def test_the_fuzz_can_fail():
    """check_call rejects an undocumented exception, and a documented one
    raised after the object changed; it accepts a clean ValueError."""

    class Leaky:
        def __init__(self):
            self.n = 0

        def bad(self, x):
            return {}[x]

        def half(self, x):
            self.n += 1
            raise ValueError("x is bad")

        def clean(self, x):
            raise ValueError("x must be in [0, 1)")

    leaky = Leaky()
    with pytest.raises(AssertionError, match="undocumented KeyError"):
        check_call("Leaky.bad", leaky.bad, [1], {}, leaky)
    with pytest.raises(AssertionError, match="changed its object"):
        check_call("Leaky.half", leaky.half, [1], {}, leaky)
    check_call("Leaky.clean", leaky.clean, [1], {}, leaky)
