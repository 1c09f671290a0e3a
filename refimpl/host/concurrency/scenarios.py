"""The named configurations: which threads, from which state, showing which rule.

Each scenario is the smallest setting in which one of KVM's rules matters:
two (or three) threads and a starting VM. :data:`CATCHES` says which bug
switch each scenario exposes and which invariant breaks.

==========================  ==================================================
``notifier_vs_fault``       a fault races an MMU-notifier invalidation of the
                            page it looked up (``mmu_invalidate_retry``)
``fast_vs_notifier``        the fast page fault races an invalidation of the
                            page its SPTE maps (compare-and-exchange)
``fast_not_mmu_writable``   the fast page fault meets an SPTE write-protected
                            for write tracking, not for dirty logging
``fast_huge_logging``       the fast page fault meets a huge SPTE
                            write-protected for dirty logging
``fault_vs_fault``          two TDP MMU faults under the read lock link a
                            table in the same empty root entry
``shadow_vs_shadow``        the same with the shadow MMU, which writes SPTEs
                            with plain stores under the write lock
``split_vs_fault``          a fault replaces a huge SPTE the TLB caches while
                            another fault maps the other half
``zap_vs_fault``            a table is unlinked and freed under the read lock
                            while a fault walks it
``aging``                   clear_flush_young access-tracks an SPTE, the fast
                            page fault restores it, the guest reads
``fault_fault_notifier``    three threads: two faults and an invalidation
``zap_fault_fast``          three threads: a zap, a fault, a fast fault
==========================  ==================================================
"""

from __future__ import annotations

from refimpl.errors import check_bugs, check_choice
from refimpl.host.concurrency import model as M
from refimpl.host.concurrency.checker import Config
from refimpl.host.concurrency.threads import BUGS, Aging, FastFault, Fault, Guest, Notifier, ZapTable

__all__ = ["SCENARIOS", "CATCHES", "scenario"]


def _wp_leaf(**kw) -> int:
    """gfn 0's leaf, write-protected (W clear) but MMU-writable: dirty logging."""
    return M._leaf(0x10, writable=False, **kw)


def _build(name: str):
    if name == "notifier_vs_fault":
        return (Fault(0), Notifier(0)), {}
    if name == "fast_vs_notifier":
        return (FastFault(0), Notifier(0)), dict(root="table", leaf0=_wp_leaf(), logging=True)
    if name == "fast_not_mmu_writable":
        return (FastFault(0), Guest(0, write=True)), dict(
            root="table", leaf0=_wp_leaf(mmu_writable=False))
    if name == "fast_huge_logging":
        return (FastFault(0), Guest(1, write=True)), dict(root="huge", logging=True)
    if name == "fault_vs_fault":
        return (Fault(0, write=True), Fault(1)), {}
    if name == "shadow_vs_shadow":
        return (Fault(0, write=True, mmu="shadow"), Fault(1, mmu="shadow")), {}
    if name == "split_vs_fault":
        return (Fault(0, write=True, split=True), Fault(1)), dict(
            root="huge", tlb=frozenset({(0, 2, 0x10, False)}))
    if name == "zap_vs_fault":
        return (ZapTable(), Fault(1)), dict(root="table", leaf0=M._leaf(0x10, writable=False))
    if name == "aging":
        return (Aging(0), FastFault(0, write=False), Guest(0)), dict(
            root="table", leaf0=M._leaf(0x10, writable=False))
    if name == "fault_fault_notifier":
        return (Fault(0, write=True), Fault(1), Notifier(0)), {}
    if name == "zap_fault_fast":
        return (ZapTable(), Fault(1), FastFault(0)), dict(root="table", leaf0=_wp_leaf(), logging=True)
    raise AssertionError(name)  # pragma: no cover


#: Every scenario name, two-thread ones first.
SCENARIOS = ("notifier_vs_fault", "fast_vs_notifier", "fast_not_mmu_writable", "fast_huge_logging",
             "fault_vs_fault", "shadow_vs_shadow", "split_vs_fault", "zap_vs_fault", "aging",
             "fault_fault_notifier", "zap_fault_fast")

#: bug switch -> (the scenario that shows it, the invariant it breaks).
CATCHES = {
    "fault_skips_invalidate_retry": ("notifier_vs_fault", "stale_mapping"),
    "retry_ignores_in_progress": ("notifier_vs_fault", "stale_mapping"),
    "seq_snapshot_after_gup": ("notifier_vs_fault", "stale_mapping"),
    "fast_pf_plain_store": ("fast_vs_notifier", "stale_mapping"),
    "fast_pf_ignores_mmu_writable": ("fast_not_mmu_writable", "writable"),
    "fast_pf_huge_while_logging": ("fast_huge_logging", "dirty_log"),
    "tdp_map_plain_store": ("fault_vs_fault", "counters"),
    "shadow_fault_read_lock": ("shadow_vs_shadow", "counters"),
    "zap_without_freeze": ("split_vs_fault", "tlb_coherent"),
    "removed_children_not_frozen": ("zap_vs_fault", "counters"),
    "free_without_rcu": ("zap_vs_fault", "freed_table"),
}
if set(CATCHES) != set(BUGS):
    raise AssertionError("scenarios.py: every bug switch needs a scenario")


def scenario(name: str, bugs=frozenset()) -> Config:
    """The configuration called ``name``, with the switches ``bugs`` on.

    Raises
    ------
    TypeError, ValueError
        ``name`` not one of :data:`SCENARIOS`; ``bugs`` not a set of
        :data:`~refimpl.host.concurrency.threads.BUGS` names.
    """
    check_choice("name", name, SCENARIOS)
    bugs = check_bugs("bugs", bugs, BUGS)
    threads, kw = _build(name)
    return Config(threads, M._initial_vm(len(threads), **kw), bugs, name)
