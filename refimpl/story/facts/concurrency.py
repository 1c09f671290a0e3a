"""Facts behind the concurrency chapter (book/concurrency.md) and refimpl.host.concurrency."""

from refimpl.story.facts import Fact

_LL = "torvalds/linux shortlog in a stored kvm pull/revlist mail"

FACTS = (
    # Stored trees read for this chapter.
    Fact("006100212d7f", "commit",
         "a torvalds/linux tree stored in full; its arch/x86/kvm/mmu/spte.h was read",
         "torvalds/linux@006100212d7f1d608a97af37bf218d87afb80db6:arch/x86/kvm/mmu/spte.h", True),
    Fact("18adb02dd2d7", "commit",
         "a kvm-x86/linux tree stored in full; its include/linux/kvm_host.h was read",
         "kvm-x86/linux@18adb02dd2d73bfe4f73c49b3e67841b8737d3b7:include/linux/kvm_host.h", True),
    # Functions and values.
    Fact("mmu_invalidate_retry_gfn", "function",
         "under mmu_lock, a fault retries if mmu_invalidate_in_progress is set and the gfn is in "
         "the range being invalidated, or if mmu_invalidate_seq differs from its snapshot",
         "kvm-x86/linux@18adb02dd2d7:include/linux/kvm_host.h", True),
    Fact("FROZEN_SPTE value", "behaviour",
         "the frozen (formerly removed) SPTE is 0x5a0: no R/W/X bits, no MMU-present bit, no PFN "
         "(later ORed with SHADOW_NONPRESENT_VALUE)",
         "torvalds/linux@006100212d7f:arch/x86/kvm/mmu/spte.h (REMOVED_SPTE 0x5a0ULL); "
         "spte.h hunks in 2024 kvm list mails (FROZEN_SPTE = SHADOW_NONPRESENT_VALUE | 0x5a0)", True),
    Fact("KVM_MMU_LOCK", "function",
         "common KVM code takes mmu_lock with KVM_MMU_LOCK, which is write_lock when the "
         "architecture defines KVM_HAVE_MMU_RWLOCK (virt/kvm/kvm_mm.h)",
         "virt/kvm/kvm_mm.h in stored kvm list patches", True),
    Fact("kvm_mmu_notifier_invalidate_range_start", "function",
         "the MMU-notifier callbacks live in virt/kvm/kvm_main.c",
         "diff headers of virt/kvm/kvm_main.c in stored kvm list patches", True),
    Fact("check_spte_writable_invariants", "function",
         "a writable SPTE must be MMU-writable, and an MMU-writable SPTE host-writable",
         "torvalds/linux@006100212d7f:arch/x86/kvm/mmu/spte.h", True),
    Fact("mmu_invalidate rename", "behaviour",
         "mmu_notifier_seq/mmu_notifier_count were renamed mmu_invalidate_seq/"
         "mmu_invalidate_in_progress by 'KVM: Rename mmu_notifier_* to mmu_invalidate_*' "
         "(Chao Peng, 2022); the mainline id was not confirmed (stored shortlogs of several "
         "trees give different ids)", _LL, True),
    # The commits.
    Fact("e930bffe95e1", "commit",
         "'KVM: Synchronize guest physical memory map to host virtual memory map': KVM has taken "
         "mmu_lock in invalidate_range_start since this commit (as a 2025 kvm list mail by Sean "
         "Christopherson says); that it introduced the sequence count itself is unconfirmed",
         "a stored kvm list mail quoting the commit", True),
    Fact("c7ba5b48cc8d", "commit",
         "'KVM: MMU: fast path of handling guest page fault' (Xiao Guangrong): the lockless fast "
         "page fault, which fixes an SPTE with one cmpxchg",
         "the Fixes: tag of 706c9c55e5a3 in a stored stable mail", True),
    Fact("706c9c55e5a3", "commit",
         "'KVM: x86/mmu: Don't treat fully writable SPTEs as volatile (modulo A/D)' (Sean "
         "Christopherson, 2022): KVM sets W out of mmu_lock (the fast path) but never clears it "
         "there; renames spte_can_locklessly_be_made_writable to is_mmu_writable_spte",
         "stable mail quoting the original commit in Linus's tree", True),
    Fact("531810caa9f4", "commit", "'KVM: x86/mmu: Use an rwlock for the x86 MMU' (Ben Gardon, 2021)",
         _LL, True),
    Fact("9a77daacc87d", "commit",
         "'KVM: x86/mmu: Use atomic ops to set SPTEs in TDP MMU map': atomic SPTE updates in "
         "the TDP MMU fault so that changes are not lost when threads modify the same SPTE",
         "patch mail (Ben Gardon, v2 20/28) and a stable mail naming the upstream commit", True),
    Fact("08f07c800e9d", "commit",
         "'KVM: x86/mmu: Flush TLBs after zap in TDP MMU PF handler': freeze a zapped SPTE until "
         "the TLBs are flushed, so no thread installs a present SPTE for a different PFN before "
         "the flush",
         "patch mail (Ben Gardon, 22/24, January 2021) and " + _LL, True),
    Fact("e25f0e0cd51b", "commit",
         "'KVM: x86/mmu: Mark SPTEs in disconnected pages as removed': set the entries of an "
         "unlinked table to the removed value so a thread holding a pointer into it cannot "
         "install a mapping there (memory leaks and accounting errors)",
         "patch mail (Ben Gardon, v2 22/28, February 2021) and " + _LL, True),
    Fact("7cca2d0b7e7d", "commit",
         "'KVM: x86/mmu: Protect TDP MMU page table memory with RCU': page-table pages removed "
         "while other threads traverse them are freed only after an RCU grace period",
         "patch mail (Ben Gardon, January 2021) and " + _LL, True),
    Fact("a2855afc7ee8", "commit",
         "'KVM: x86/mmu: Allow parallel page faults for the TDP MMU' (TDP MMU faults under "
         "mmu_lock for read)", _LL, True),
    Fact("964cea817196", "commit",
         "'KVM: x86/tdp_mmu: Rename REMOVED_SPTE to FROZEN_SPTE' (Rick Edgecombe, 2024)",
         _LL, True),
    Fact("47b0c2e4c220", "commit",
         "'KVM: x86/mmu: Fix race condition in direct_page_fault' (Kazuki Takiguchi, 2022): "
         "make_mmu_pages_available, which must run with mmu_lock held for write, was called "
         "with it held for read when the TDP MMU was in use, zapping shadow pages of nested "
         "TDP concurrently (a BUG in pte_list_remove seen in the field)",
         "stable mail quoting the original commit in Linus's tree", True),
)
