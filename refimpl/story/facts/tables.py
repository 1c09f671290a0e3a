"""Facts behind the part "KVM's own tables" (events, sptes, shadow_mmu, tdp12_mmu, tdp_mmu, dirty_logging)."""

from refimpl.story.facts import Fact

_MMU_C = "torvalds/linux:arch/x86/kvm/mmu/mmu.c"
_KVM_HOST_H = "torvalds/linux (stored copy) arch/x86/include/asm/kvm_host.h"

FACTS = (
    # -- the 2021 RFC and what dirty-log recovery did when ------------------------------
    Fact("20211110223010.1392399-1-bgardon@google.com", "message-id",
         "Ben Gardon's RFC 00/19 'KVM: x86/mmu: Optimize disabling dirty logging' (10 Nov 2021): "
         "on a 96 vCPU / 96G VM disabling dirty logging took ~45 s with the TDP MMU against "
         "~3.5 s with the legacy MMU (the dirty_log_perf_test runs on an Intel Skylake, i.e. "
         "EPT with tdp_mmu=0, not shadow paging); patches 2-5 batch flushes, 6-12 remove the "
         "vCPU from make_spte, 19 promotes pages in place; ~2 s with the series.",
         "list mail <20211110223010.1392399-1-bgardon@google.com>", True),
    Fact("20211110223010.1392399-6-bgardon@google.com", "message-id",
         "RFC 05/19 'Remove redundant flushes when disabling dirty logging': its text says "
         "tdp_mmu_zap_spte_atomic flushes on every zap already (the code of late 2021, v5.15).",
         "list mail <20211110223010.1392399-6-bgardon@google.com>", True),
    Fact("tdp_mmu_zap_spte_atomic", "behaviour",
         "tdp_mmu_zap_spte_atomic freezes the SPTE and calls kvm_flush_remote_tlbs_with_address "
         "for every zap; zap_collapsible_spte_range used it on each collapsible 4 KiB leaf.",
         "stored arch/x86/kvm/mmu/tdp_mmu.c of 2021 (read_file id 235398811) and the 5.18 stable "
         "backport of 5ba7c4c6d1c7", True),
    Fact("5ba7c4c6d1c7", "commit",
         "'KVM: x86/MMU: Zap non-leaf SPTEs when disabling dirty logging' (Ben Gardon, 2022, "
         "merged for v5.19 and backported to 5.18): step up from a collapsible leaf and zap the "
         "parent non-leaf SPTE once instead of every 4 KiB leaf; ~200 s -> ~3 s on a 96 vCPU / "
         "96G VM backed by 1 GiB pages.",
         "stable backport mail of upstream commit 5ba7c4c6d1c7af47a916f728bb5940669684a087", True),
    Fact("35ef80eb29ab", "commit",
         "'KVM: x86/mmu: Batch TLB flushes when zapping collapsible TDP MMU SPTEs' (David "
         "Matlack, kvm-x86-mmu-6.13): one flush per slot instead of one per zap; "
         "tdp_mmu_zap_spte_atomic disappeared with it.",
         "kvm-x86 mmu-6.13 pull request and the applied-patches mail (kvm-x86/linux commit 35ef80eb29ab)",
         True),
    Fact("13e2e4f62a4b", "commit",
         "'KVM: x86/mmu: Recover TDP MMU huge page mappings in-place instead of zapping' (David "
         "Matlack, v6.13): kvm_tdp_mmu_recover_huge_pages replaces kvm_tdp_mmu_zap_collapsible_sptes "
         "and builds the huge SPTE from a child leaf with the new make_huge_spte, not make_spte.",
         "patch mail <20240823235648.3236880-5-dmatlack@google.com> (v2 4/6) and the mmu-6.13 pull",
         True),
    Fact("20240823235648.3236880-5-dmatlack@google.com", "message-id",
         "v2 4/6 of David Matlack's 2024 series: in-place huge page recovery with make_huge_spte.",
         "list mail <20240823235648.3236880-5-dmatlack@google.com>", True),
    Fact("20241112193335.597514-4-seanjc@google.com", "message-id",
         "'[GIT PULL] KVM: x86: MMU changes for 6.13': batched flushes for collapsible SPTEs "
         "(~3x faster) and in-place TDP MMU huge page recovery.",
         "list mail <20241112193335.597514-4-seanjc@google.com>", True),
    # -- roots, quadrants, the page hash -------------------------------------------------
    Fact("kvm_mmu_child_role", "function",
         "For a guest with 4-byte gptes the child (level-1) role's quadrant is spte_index(sptep) & 1, "
         "i.e. gva bit 21; the four PAE-root PDs get quadrants 0-3 in mmu_alloc_root.",
         f"{_MMU_C} (kvm_mmu_child_role and its comment)", True),
    Fact("mmu_page_hash", "behaviour",
         "Shadow pages, synced or unsync, are found by (gfn, role) in kvm->arch.mmu_page_hash, "
         "a field of struct kvm_arch (per VM), so a new root or another vCPU finds them again.",
         _KVM_HOST_H + " (struct kvm_arch) and mmu.c kvm_mmu_find_shadow_page", True),
    Fact("mmu.rst reaction to events", "file",
         "Documentation/virt/kvm/x86/mmu.rst has a 'Reaction to events' section: guest page "
         "fault, invlpg, mov to cr3, mov to cr0/cr4/efer, mmu notifier (host translation updates).",
         "torvalds/linux (stored copy) Documentation/virt/kvm/x86/mmu.rst",
         True),
    # -- the functions named by the events map ------------------------------------------
    Fact("events: page fault, CR3, INVLPG", "function",
         "kvm_mmu_page_fault, kvm_mmu_invlpg, kvm_mmu_invalidate_addr, kvm_mmu_new_pgd, "
         "kvm_set_cr3 and kvm_mmu_free_roots are declared in kvm_host.h.",
         _KVM_HOST_H, True),
    Fact("events: memslots and dirty logging", "function",
         "kvm_mmu_slot_remove_write_access, kvm_mmu_slot_try_split_huge_pages, "
         "kvm_mmu_slot_leaf_clear_dirty, kvm_mmu_invalidate_mmio_sptes are declared in kvm_host.h; "
         "kvm_arch_flush_shadow_memslot (x86.c, later mmu.c) calls kvm_mmu_zap_all_fast under "
         "KVM_X86_QUIRK_SLOT_ZAP_ALL.",
         _KVM_HOST_H + "; patch mails touching kvm_arch_flush_shadow_memslot", True),
    Fact("events: MMU notifier", "function",
         "kvm_mmu_notifier_invalidate_range_start (virt/kvm/kvm_main.c) unmaps through the arch "
         "hook kvm_unmap_gfn_range (x86: mmu.c, TDP MMU and rmaps).",
         "virt/kvm/kvm_main.c and arch/x86/kvm/mmu/mmu.c as found by find_string", True),
    Fact("events: nested entry and exit", "function",
         "VMX: nested_ept_init_mmu_context / nested_ept_uninit_mmu_context and "
         "nested_vmx_vmexit in vmx/nested.c; SVM: enter_svm_guest_mode, "
         "nested_svm_init_mmu_context / nested_svm_uninit_mmu_context in svm/nested.c.",
         "arch/x86/kvm/vmx/nested.c and arch/x86/kvm/svm/nested.c as found by find_string", True),
    Fact("MMIO_SPTE_GEN bits", "behaviour",
         "The MMIO SPTE keeps 19 generation bits, 10:3 and 62:52 (MMIO_SPTE_GEN_LOW_START/END 3/10, "
         "HIGH_START/END 52/62 in spte.h); Documentation/virt/kvm/x86/mmu.rst still says 18.",
         "arch/x86/kvm/mmu/spte.h as found by find_string; mmu.rst (stored copy)", True),
    Fact("216b1a47e80c", "commit",
         "'KVM: x86/mmu: use kvm_page_format to test SPTEs', in Paolo Bonzini's 2026 kvm-chainsaw "
         "series, after 72f734a435b2 'pull page format to a new struct'.",
         "commit listings of the kvm-chainsaw branch (stored shortlog lists)", True),
    Fact("72f734a435b2", "commit",
         "'KVM: x86/mmu: pull page format to a new struct', in the 2026 kvm-chainsaw series.",
         "commit listings of the kvm-chainsaw branch (stored shortlog lists)", True),
)
