"""The concurrency model (refimpl.host.concurrency): the explorer enumerates exactly
every interleaving, every rule holds in every interleaving with the switches off,
and each switch is caught, by the invariant and in the number of steps worked out
by hand from the thread programs."""

from __future__ import annotations

from math import comb, factorial

import pytest

from refimpl.host.concurrency import model as M
from refimpl.host.concurrency.checker import (Config, count_interleavings, explore, replay,
                                              shortest_violation)
from refimpl.host.concurrency.invariants import violations
from refimpl.host.concurrency.scenarios import SCENARIOS, scenario
from refimpl.host.concurrency.threads import BUGS, Aging, FastFault, Guest, Notifier

# Scenarios small enough for the test suite (the three-thread zap_fault_fast
# takes about two seconds; the benchmark runs it).
QUICK = [s for s in SCENARIOS if s != "zap_fault_fast"]


# ---------------------------------------------------------------------------
# The explorer enumerates exactly all interleavings (counts worked by hand)
# ---------------------------------------------------------------------------


def _two_lockless():
    # Aging takes 2 steps (lock, age); a fast fault on the empty gfn 1 takes 3
    # (walk, read the empty leaf, end). The fast path takes no lock, so every
    # order is possible: C(5, 2) = 10 interleavings, over a 3 x 4 grid of states.
    vm = M._initial_vm(2, root="table", leaf0=M._leaf(0x10, writable=False))
    return Config((Aging(0), FastFault(1)), vm)


def test_two_threads_of_2_and_3_steps_have_c_5_2_interleavings():
    e = explore(_two_lockless())
    assert comb(5, 2) == 10
    assert e.interleavings == 10 and e.states == 12 and e.transitions == 17 and e.finals == 1
    assert count_interleavings(_two_lockless()) == 10
    assert e.complete and e.violation is None and e.depth == 5


def test_three_threads_of_1_1_2_steps_have_12_interleavings():
    vm = M._initial_vm(3, root="table", leaf0=M._leaf(0x10, writable=False))
    c = Config((Guest(0), Guest(1), Aging(0)), vm)
    expected = factorial(4) // (factorial(1) * factorial(1) * factorial(2))
    assert expected == 12
    assert explore(c).interleavings == count_interleavings(c) == 12


def test_the_write_lock_cuts_15_orders_to_5():
    # Notifier: n1 lock, n2 zap+unlock, n3 host frees, n4 lock+end+unlock.
    # Aging:    a1 lock, a2 age+unlock.
    # a1..a2 may not straddle n1 (or n4), and a1 may not fall between n1 and n2:
    # both in one of the gaps before n1, after n2, after n3, after n4 (4), or
    # a1 after n2 and a2 after n3 (1) -- 5 of the C(6, 2) = 15 orders.
    vm = M._initial_vm(2, root="table", leaf0=M._leaf(0x10, writable=False))
    c = Config((Notifier(0), Aging(0)), vm)
    assert count_interleavings(c) == 5 and explore(c).interleavings == 5


def test_count_interleavings_stops_at_its_limit():
    with pytest.raises(ValueError, match="more than 3"):
        count_interleavings(_two_lockless(), limit=3)


# ---------------------------------------------------------------------------
# Every rule holds with every switch off; each switch is caught
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", QUICK)
def test_every_scenario_holds_with_every_switch_off(name):
    e = explore(scenario(name))
    assert e.violation is None, e.violation and e.violation.broken
    assert e.complete and e.interleavings >= 1


#: switch -> (scenario, invariant broken, steps of the shortest interleaving),
#: each length counted by hand from the programs in threads.py.
CAUGHT = {
    # fault: snapshot, lookup, lock, check, root, link, leaf, set (8);
    # notifier: start, zap, host frees (3).
    "fault_skips_invalidate_retry": ("notifier_vs_fault", "stale_mapping", 11),
    # the same 8 + 3: the check passes because seq only moves at range_end.
    "retry_ignores_in_progress": ("notifier_vs_fault", "stale_mapping", 11),
    # fault 8 steps; the whole invalidation (4) between lookup and snapshot.
    "seq_snapshot_after_gup": ("notifier_vs_fault", "stale_mapping", 12),
    # fast: walk, read leaf, store (3); notifier: start, zap, host frees (3).
    "fast_pf_plain_store": ("fast_vs_notifier", "stale_mapping", 6),
    # fast: walk, read leaf, cmpxchg (3).
    "fast_pf_ignores_mmu_writable": ("fast_not_mmu_writable", "writable", 3),
    # fast: walk to the huge root, cmpxchg (2).
    "fast_pf_huge_while_logging": ("fast_huge_logging", "dirty_log", 2),
    # each fault: snapshot, lookup, lock, check, read root (5), then two links.
    "tdp_map_plain_store": ("fault_vs_fault", "counters", 12),
    "shadow_fault_read_lock": ("shadow_vs_shadow", "counters", 12),
    # splitter: 5 + zap to 0 (6); other fault: 5 + link, leaf, set (8).
    "zap_without_freeze": ("split_vs_fault", "tlb_coherent", 14),
    # zapper: lock, root, freeze, child0, child1, flush, clear, call_rcu,
    # unlock, free (10); fault: 5 + leaf, set, unlock (8).
    "removed_children_not_frozen": ("zap_vs_fault", "counters", 18),
    # zapper: lock ... clear, free now (8); fault: 5 + read leaf (6).
    "free_without_rcu": ("zap_vs_fault", "freed_table", 14),
}


def test_every_switch_has_a_worked_case():
    assert set(CAUGHT) == set(BUGS)


@pytest.mark.parametrize("bug", sorted(CAUGHT))
def test_each_switch_is_caught_in_its_scenario(bug):
    name, invariant, steps = CAUGHT[bug]
    t = shortest_violation(scenario(name, {bug}))
    assert t is not None and invariant in t.broken
    assert len(t) == steps
    # Shortest: nothing shorter breaks anything.
    assert explore(scenario(name, {bug}), max_depth=steps - 1).violation is None
    # The correct code survives the very same schedule.
    n = len(scenario(name).threads)
    fixed = replay(scenario(name), [s.thread for s in t.steps] + list(range(n)) * 20)
    assert not fixed.broken


# ---------------------------------------------------------------------------
# The model's pieces
# ---------------------------------------------------------------------------


def test_frozen_spte_is_not_present_and_has_no_rights():
    assert M.FROZEN_SPTE == 0x5A0
    assert not M._present(M.FROZEN_SPTE)
    assert M.FROZEN_SPTE & (M.SPTE_R | M.SPTE_W | M.SPTE_X) == 0


def test_spte_bits_come_from_the_ept_layout():
    # EPT: R bit 0, W bit 1, X bit 2, PS bit 7, MMU-present bit 11, PFN from bit 12.
    s = M._leaf(0x10, writable=True, huge=True)
    assert s & 0b111 == 0b111 and s & (1 << 7) and s & (1 << 11) and (s >> 12) & 0xFFFF == 0x10
    assert M._pfn(M._table_pointer(3)) == M.TABLE_PFN_BASE + 3


def test_access_tracking_round_trips():
    s = M._leaf(0x10, writable=False)
    t = M._mark_access_track(s)
    assert M._access_tracked(t) and not t & M.SPTE_R
    assert M._restore_access_track(t) == s


def test_each_invariant_flags_a_hand_made_state():
    vm = M._initial_vm(1, root="table", leaf0=M._leaf(0x10, writable=True))
    assert violations(vm) == {}
    assert "stale_mapping" in violations(vm._replace(dead=frozenset({0x10})))
    assert "counters" in violations(vm._replace(pages_4k=0))
    assert "dirty_log" in violations(vm._replace(logging=True))
    assert "freed_table" in violations(vm._replace(uaf="x"))
    not_mmu_w = M._leaf(0x10, writable=True, mmu_writable=False)
    assert "writable" in violations(vm._replace(tables=((not_mmu_w, 0), (0, 0))))
    # A TLB entry for a different frame than the SPTE: broken even with a flush pending.
    stale = vm._replace(tlb=frozenset({(0, 1, 0x30, False)}), owed=frozenset({0}))
    assert "tlb_coherent" in violations(stale)
    # A TLB entry whose SPTE is gone: fine while a flush is pending, not after.
    gone = vm._replace(tables=((0, 0), (0, 0)), pages_4k=0, tlb=frozenset({(0, 1, 0x10, False)}))
    assert "tlb_coherent" in violations(gone)
    assert violations(gone._replace(owed=frozenset({0}))) == {}


def test_a_grace_period_waits_for_the_readers_present_at_call_rcu():
    c = scenario("zap_vs_fault")
    # Fault walks to the table first, then the zap runs to its end.
    t = replay(c, [1, 1, 1, 1, 1] + [0] * 10)
    assert t.steps[-1].regs[0].pc == "rcu"       # the zap waits for the fault
    assert t.steps[-1].vm.tstate[0] == "removed"


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="name"):
        scenario("no_such_scenario")
    with pytest.raises(ValueError, match="bugs"):
        scenario("aging", {"no_such_bug"})
    with pytest.raises(TypeError, match="bugs"):
        scenario("aging", "free_without_rcu")
    with pytest.raises(ValueError, match="RCU slot"):
        Config((Aging(0),), M._initial_vm(2))
    with pytest.raises(ValueError, match="max_depth"):
        explore(scenario("aging"), max_depth=0)
    with pytest.raises(ValueError, match="schedule"):
        replay(scenario("aging"), [5])
    with pytest.raises(ValueError, match="gfn"):
        FastFault(7)
