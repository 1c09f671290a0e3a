"""Known KVM MMU bugs, replayed: the registry.

Each entry names a bug KVM once had (a kvm-unit-tests ``x86/access.c``
directed regression, a CVE, or a published fix), the switch in ``refimpl``
that brings the wrong behaviour back, the pair of tests that show the bug
caught when the switch is on and absent when it is off, and the rule of the
correct model that prevents it. The modules hold the switches (each has a
``BUGS`` dict and takes ``bugs=`` sets of its names, all off by default);
this module only holds data about them, for the tests and the book.

Glossary
--------
switch
    A name in one module's ``BUGS`` dict, passed in a ``bugs=`` set.
off test, on test
    The test that passes with the switch off (today's KVM), and the test
    that asserts the bug's symptom with the switch on.
verified
    What of the citation was read in a public source during this work;
    anything else is said to be unverified.

KVM
---
The fixes cited per entry; the tests are under ``tests/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

from refimpl.errors import check_fields

__all__ = ["ReplayedBug", "REPLAYED", "switches", "table_markdown"]


@dataclass(frozen=True)
class ReplayedBug:
    """One replayed bug.

    Parameters
    ----------
    switch : str
        The name in ``module.BUGS`` that re-creates it.
    module : str
        The module holding the switch (``"refimpl.host.shadow_mmu"``).
    title : str
        What went wrong, in a line.
    origin : str
        Where it is known from: a kvm-unit-tests case, a CVE.
    fix : str
        The fix: commit title and id, with what was verified.
    tests : tuple of str
        ``(off test, on test)``, each ``"tests/file.py::name"``.
    rule : str
        The rule of the correct model that prevents it.
    section : str
        The book label of the section that replays it.
    """

    switch: str
    module: str
    title: str
    origin: str
    fix: str
    tests: tuple[str, str]
    rule: str
    section: str

    def __post_init__(self) -> None:
        check_fields(self, switch=str, module=str, title=str, origin=str, fix=str,
                     tests=tuple, rule=str, section=str)

    def description(self) -> str:
        """The module's own one-line description of the switch."""
        return import_module(self.module).BUGS[self.switch]


_SM = "tests/host/test_shadow_mmu.py::"
_BR = "tests/test_bugs_replayed.py::"

#: Every replayed bug, kvm-unit-tests' access.c cases first.
REPLAYED: tuple[ReplayedBug, ...] = (
    ReplayedBug(
        "single_pt_access", "refimpl.host.shadow_mmu",
        "two PUDs with different rights share one PMD table; the shadow page "
        "built under the writable one is reused under the read-only one",
        "kvm-unit-tests check_effective_sp_permissions (Lai Jiangshan, 2021)",
        "'Use the correct inherited permissions to get shadow page' (2021; id not verified)",
        (_SM + "test_check_effective_sp_permissions",
         _SM + "test_check_effective_sp_permissions_naive"),
        "role.access of a child SP is the AND of the rights *above* it on this walk",
        "shadow-mmu-regressions"),
    ReplayedBug(
        "direct_access_from_parents", "refimpl.host.shadow_mmu",
        "two large guest pages map one frame; the read-only one reuses the "
        "direct SP the writable one made writable",
        "kvm-unit-tests corrupt_hugepage_trigger ('commit e09e90a5 in the kvm tree')",
        "'KVM: MMU: fix direct sp's access corrupted' (Xiao Guangrong; 9e7b0e7fba45, "
        "unconfirmed) and 'fix conflict access permissions in direct sp' "
        "(5fd5387c89ec, unconfirmed)",
        (_SM + "test_corrupt_hugepage_trigger", _SM + "test_corrupt_hugepage_trigger_naive"),
        "a direct SP's role.access includes the large page's own rights",
        "shadow-mmu-regressions"),
    ReplayedBug(
        "wp0_fixup_after_role", "refimpl.host.shadow_mmu",
        "CR0.WP=0 supervisor write makes a read-only direct SP writable; the "
        "other large page aliasing it loses its dirty bit",
        "kvm-unit-tests check_large_pte_dirty_for_nowp",
        "'KVM: MMU: fix Dirty bit missed if CR0.WP = 0' (Xiao Guangrong, 2012; "
        "c22885050e65, unconfirmed)",
        (_SM + "test_check_large_pte_dirty_for_nowp",
         _SM + "test_check_large_pte_dirty_for_nowp_naive"),
        "the WP=0 fix-up (W=1, U=0) is applied before the direct SP's role is chosen",
        "shadow-mmu-regressions"),
    ReplayedBug(
        "smep_keeps_exec", "refimpl.host.shadow_mmu",
        "the WP=0 fix-up turns a user page into a kernel page but leaves it "
        "executable, so SMEP stops nothing",
        "kvm-unit-tests check_smep_andnot_wp (2011)",
        "SMEP support in the shadow MMU, 2011 (id not verified); related: "
        "5f0b819995e1 'fix reserved bit check for ept=0/CR0.WP=0/CR4.SMEP=1/EFER.NX=0' (unconfirmed)",
        (_SM + "test_check_smep_andnot_wp", _SM + "test_check_smep_andnot_wp_naive"),
        "with SMEP the WP=0 fix-up also sets NX on the SPTE",
        "shadow-mmu-regressions"),
    ReplayedBug(
        "no_smep_andnot_wp_role", "refimpl.host.shadow_mmu",
        "SPs built with CR0.WP=0 and SMEP=0 are reused after SMEP is turned on",
        "kvm-unit-tests check_smep_andnot_wp, SMEP turned on after the write",
        "role.smep_andnot_wp (id not verified)",
        (_BR + "test_no_smep_andnot_wp_role_off", _BR + "test_no_smep_andnot_wp_role_on"),
        "role.smep_andnot_wp is part of the page role",
        "shadow-mmu-regressions"),
    ReplayedBug(
        "no_smap_andnot_wp_role", "refimpl.host.shadow_mmu",
        "SPs built with CR0.WP=0 and SMAP=0 are reused after SMAP is turned on",
        "the SMAP analogue of check_smep_andnot_wp (not an access.c case)",
        "role.smap_andnot_wp (id not verified)",
        (_BR + "test_no_smap_andnot_wp_role_off", _BR + "test_no_smap_andnot_wp_role_on"),
        "role.smap_andnot_wp is part of the page role",
        "shadow-mmu-regressions"),
    ReplayedBug(
        "no_cr0_wp_role", "refimpl.host.shadow_mmu",
        "SPTEs made writable for a CR0.WP=0 supervisor write are reused after CR0.WP=1",
        "the shadow-paging half of check_toggle_cr0_wp",
        "role.cr0_wp (present since the role was introduced; id not verified)",
        (_BR + "test_no_cr0_wp_role_off", _BR + "test_no_cr0_wp_role_on"),
        "role.cr0_wp is part of the page role, so a WP toggle loads new roots",
        "shadow-mmu-regressions"),
    ReplayedBug(
        "prefetch_skips_checks", "refimpl.host.shadow_mmu",
        "a prefetched neighbour SPTE is installed for a gpte with a reserved "
        "bit, so the guest never sees its #PF(RSVD)",
        "kvm-unit-tests check_pfec_on_prefetch_pte ('commit 3ddf6c06e13e in the kvm tree')",
        "3ddf6c06e13e (2010; cited by access.c, text not verified: a reconstruction)",
        (_SM + "test_check_pfec_on_prefetch_pte", _SM + "test_check_pfec_on_prefetch_pte_naive"),
        "prefetch stops at the first gpte that is not present, has a reserved "
        "bit, or has A clear (prefetch_invalid_gpte)",
        "shadow-mmu-regressions"),
    ReplayedBug(
        "stale_cr0_wp", "refimpl.layouts.legacy",
        "with CR0.WP guest-owned under EPT, an emulated supervisor write is "
        "checked against the CR0.WP of the last MMU reset",
        "kvm-unit-tests check_toggle_cr0_wp (2023)",
        "'KVM: x86/mmu: Refresh CR0.WP prior to checking for emulated permission "
        "faults' (cf9f4c0eb169, fixes fb509f76acc8; verified)",
        (_BR + "test_stale_cr0_wp_off", _BR + "test_stale_cr0_wp_on"),
        "refresh the pass-through CR0.WP into cpu_role (and the permission "
        "bitmap) before every emulated permission check",
        "bugs-stale-cr0-wp"),
    ReplayedBug(
        "nx_huge_exec", "refimpl.host.tdp_mmu",
        "iTLB multihit: an executable huge SPTE while the mitigation is on",
        "CVE-2018-12207 (Machine Check Error Avoidance on Page Size Change)",
        "the nx_huge_pages mitigation (2019; Documentation/admin-guide/hw-vuln/"
        "multihit.rst verified; the mitigation commit id not verified) and 1aa9b9572b10 "
        "'kvm: x86: mmu: Recovery of shattered NX large pages' (verified)",
        (_BR + "test_nx_huge_exec_off", _BR + "test_nx_huge_exec_on"),
        "with nx_huge_pages, make_spte never makes a huge SPTE executable and an "
        "instruction fetch is mapped at 4 KiB",
        "bugs-nx-huge-pages"),
    ReplayedBug(
        "vmload_not_intercepted", "refimpl.host.nested_svm",
        "L2's VMLOAD/VMSAVE run unintercepted and take rAX as a host-physical address",
        "CVE-2021-3656",
        "'KVM: nSVM: always intercept VMLOAD/VMSAVE when nested (CVE-2021-3656)' "
        "(c7dfa4009965, verified)",
        (_BR + "test_vmload_not_intercepted_off", _BR + "test_vmload_not_intercepted_on"),
        "in guest mode VMCB02 always intercepts VMLOAD/VMSAVE; KVM performs them on "
        "L1's memory (rAX through L1's memslots) or injects #GP",
        "bugs-vmload"),
    ReplayedBug(
        "no_flush_on_wrprot", "refimpl.host.tdp_mmu",
        "SPTEs write-protected for dirty logging, TLBs not flushed: writes "
        "through a cached translation go unlogged",
        "KVM 'Flush remote tlbs when reducing shadow pte permissions' (kvm-28 release)",
        "kvm-28 release notes (title and text verified; commit id and date not verified)",
        (_BR + "test_no_flush_on_wrprot_off", _BR + "test_no_flush_on_wrprot_on"),
        "every change that removes rights from a present SPTE is followed by "
        "kvm_flush_remote_tlbs before the change is relied on",
        "bugs-tlb-flush"),
    # Races, replayed by the concurrency checker (book/concurrency.md).
    ReplayedBug(
        "fault_skips_invalidate_retry", "refimpl.host.concurrency.threads",
        "a fault maps the host page it looked up before an MMU-notifier invalidation freed it",
        "the MMU-notifier contract since e930bffe95e1 (title verified)",
        "mmu_invalidate_retry_gfn under mmu_lock (kvm_host.h verified); no single fix: the rule",
        ("tests/host/test_concurrency.py::test_every_scenario_holds_with_every_switch_off",
         "tests/host/test_concurrency.py::test_each_switch_is_caught_in_its_scenario"),
        "retry when mmu_invalidate_in_progress is set or mmu_invalidate_seq moved "
        "since the snapshot taken before the host page lookup", "concurrency-notifiers"),
    ReplayedBug(
        "retry_ignores_in_progress", "refimpl.host.concurrency.threads",
        "the fault checks the sequence count only, and maps a page whose invalidation has "
        "started but not ended",
        "the reason mmu_invalidate_in_progress exists (the sequence count moves only at range_end)",
        "mmu_invalidate_retry_gfn checks mmu_invalidate_in_progress first (kvm_host.h verified)",
        ("tests/host/test_concurrency.py::test_every_scenario_holds_with_every_switch_off",
         "tests/host/test_concurrency.py::test_each_switch_is_caught_in_its_scenario"),
        "a fault that finds an invalidation in progress retries", "concurrency-notifiers"),
    ReplayedBug(
        "seq_snapshot_after_gup", "refimpl.host.concurrency.threads",
        "the fault snapshots mmu_invalidate_seq after the host page lookup, so a whole "
        "invalidation in between goes unseen",
        "the ordering the smp_rmb() in the fault path keeps",
        "rule, not a fix (kvm_host.h verified for the retry side)",
        ("tests/host/test_concurrency.py::test_every_scenario_holds_with_every_switch_off",
         "tests/host/test_concurrency.py::test_each_switch_is_caught_in_its_scenario"),
        "snapshot the sequence count before looking up the host page",
        "concurrency-notifiers"),
    ReplayedBug(
        "fast_pf_plain_store", "refimpl.host.concurrency.threads",
        "the fast page fault writes its fixed SPTE back with a plain store and resurrects a "
        "mapping an invalidation just zapped",
        "the fast path's design since c7ba5b48cc8d (title verified): fix with one cmpxchg",
        "no fix: the fast path has used cmpxchg since it was added (c7ba5b48cc8d)",
        ("tests/host/test_concurrency.py::test_every_scenario_holds_with_every_switch_off",
         "tests/host/test_concurrency.py::test_each_switch_is_caught_in_its_scenario"),
        "fast_page_fault changes an SPTE only by compare-and-exchange against the "
        "value it read", "concurrency-fast"),
    ReplayedBug(
        "fast_pf_ignores_mmu_writable", "refimpl.host.concurrency.threads",
        "the fast page fault makes writable an SPTE that is write-protected for write tracking",
        "the MMU-writable bit (check_spte_writable_invariants, spte.h verified)",
        "706c9c55e5a3 renamed the test to is_mmu_writable_spte (verified); the rule is older",
        ("tests/host/test_concurrency.py::test_every_scenario_holds_with_every_switch_off",
         "tests/host/test_concurrency.py::test_each_switch_is_caught_in_its_scenario"),
        "the fast path sets W only on an MMU-writable SPTE", "concurrency-fast"),
    ReplayedBug(
        "fast_pf_huge_while_logging", "refimpl.host.concurrency.threads",
        "the fast page fault makes a huge SPTE writable while dirty logging is on; writes to "
        "its other 4 KiB pages go unlogged",
        "fast_page_fault's refusal of huge SPTEs during dirty logging",
        "rule (unconfirmed which commit added the check)",
        ("tests/host/test_concurrency.py::test_every_scenario_holds_with_every_switch_off",
         "tests/host/test_concurrency.py::test_each_switch_is_caught_in_its_scenario"),
        "with dirty logging on, the fast path fixes only 4 KiB SPTEs",
        "concurrency-fast"),
    ReplayedBug(
        "tdp_map_plain_store", "refimpl.host.concurrency.threads",
        "two TDP MMU faults under the read lock link a table in the same entry; one table is lost",
        "'Use atomic ops to set SPTEs in TDP MMU map'",
        "9a77daacc87d (title and text verified)",
        ("tests/host/test_concurrency.py::test_every_scenario_holds_with_every_switch_off",
         "tests/host/test_concurrency.py::test_each_switch_is_caught_in_its_scenario"),
        "under mmu_lock for read, every SPTE change is a compare-and-exchange "
        "(tdp_mmu_set_spte_atomic)", "concurrency-tdp"),
    ReplayedBug(
        "zap_without_freeze", "refimpl.host.concurrency.threads",
        "a fault zaps a huge SPTE and, before its TLB flush, another fault installs a table "
        "under it: the TLB and the SPTE disagree",
        "'Flush TLBs after zap in TDP MMU PF handler'",
        "08f07c800e9d (title and text verified)",
        ("tests/host/test_concurrency.py::test_every_scenario_holds_with_every_switch_off",
         "tests/host/test_concurrency.py::test_each_switch_is_caught_in_its_scenario"),
        "freeze the SPTE, flush, then clear it", "concurrency-tdp"),
    ReplayedBug(
        "removed_children_not_frozen", "refimpl.host.concurrency.threads",
        "a fault installs a mapping in a table another thread has unlinked; the mapping leaks "
        "and the counters go wrong",
        "'Mark SPTEs in disconnected pages as removed'",
        "e25f0e0cd51b (title and text verified)",
        ("tests/host/test_concurrency.py::test_every_scenario_holds_with_every_switch_off",
         "tests/host/test_concurrency.py::test_each_switch_is_caught_in_its_scenario"),
        "the entries of an unlinked table are frozen before it is freed",
        "concurrency-tdp"),
    ReplayedBug(
        "free_without_rcu", "refimpl.host.concurrency.threads",
        "an unlinked table is freed while a fault is still walking it",
        "'Protect TDP MMU page table memory with RCU'",
        "7cca2d0b7e7d (title and text verified)",
        ("tests/host/test_concurrency.py::test_every_scenario_holds_with_every_switch_off",
         "tests/host/test_concurrency.py::test_each_switch_is_caught_in_its_scenario"),
        "walk under rcu_read_lock; free unlinked tables with call_rcu",
        "concurrency-tdp"),
    ReplayedBug(
        "shadow_fault_read_lock", "refimpl.host.concurrency.threads",
        "shadow MMU code that writes with plain stores runs under mmu_lock for read",
        "'Fix race condition in direct_page_fault' (make_mmu_pages_available under the read lock)",
        "47b0c2e4c220 (title and text verified); the model's shadow fault stands in for "
        "make_mmu_pages_available",
        ("tests/host/test_concurrency.py::test_every_scenario_holds_with_every_switch_off",
         "tests/host/test_concurrency.py::test_each_switch_is_caught_in_its_scenario"),
        "the legacy and shadow MMUs change SPTEs only under mmu_lock for write",
        "concurrency-locks"),
)


def switches() -> dict[tuple[str, str], ReplayedBug]:
    """The registry keyed by ``(module, switch)``."""
    return {(b.module, b.switch): b for b in REPLAYED}


def table_markdown() -> str:
    """A Markdown table of every replayed bug, linking to its section."""
    rows = ["| switch | module | origin | rule that prevents it | section |",
            "|---|---|---|---|---|"]
    for b in REPLAYED:
        rows.append(f"| `{b.switch}` | `{b.module}` | {b.origin} | {b.rule} | "
                    f"{{ref}}`{b.section}` |")
    return "\n".join(rows)
