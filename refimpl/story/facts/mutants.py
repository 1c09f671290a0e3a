"""Facts behind the MMU edge tests (``tests/host/test_mmu_edges.py``) and
the mutant table of ``book/reliability.md``.

Each was read in stored copies of torvalds/linux (the function's text, or a
patch on the KVM list quoting it); the edge tests derive their expected
values from these rules, not from the model.
"""

from refimpl.story.facts import Fact

_X86 = "torvalds/linux arch/x86/kvm/x86.c"
_MMU = "torvalds/linux arch/x86/kvm/mmu/mmu.c"

FACTS = (
    Fact("mutants.kvm_alloc_memslot_metadata", "function",
         "kvm_alloc_memslot_metadata sets disallow_lpage on a slot's first huge page when "
         "base_gfn is not aligned, on its last when base_gfn + npages is not aligned, and on "
         "every one when base_gfn and the userspace address are not congruent modulo the "
         "huge page",
         _X86 + " (stored copy of the function, and list patches quoting it)", True),
    Fact("mutants.kvm_mmu_hugepage_adjust", "function",
         "kvm_mmu_hugepage_adjust returns before choosing a huge level when "
         "kvm_slot_dirty_track_enabled(slot), i.e. slot->flags & KVM_MEM_LOG_DIRTY_PAGES: "
         "faults in a logged slot map 4 KiB, read-only or not",
         _MMU + "; include/linux/kvm_host.h (kvm_slot_dirty_track_enabled)", True),
    Fact("mutants.kvm_mmu_slot_apply_flags_readonly", "function",
         "kvm_mmu_slot_apply_flags returns at once for a read-only slot (and for "
         "CREATE/MOVE/DELETE): no write protection or D clearing when logging starts, no "
         "huge page recovery when it stops",
         _X86 + " (comment 'Nothing more to do for RO slots ...')", True),
    Fact("mutants.kvm_tdp_mmu_map_zaps_huge", "function",
         "kvm_tdp_mmu_map replaces a huge SPTE above the goal level by first zapping it with "
         "tdp_mmu_zap_spte_atomic, which flushes the TLBs for its range (the explicit "
         "kvm_flush_remote_tlbs_with_address moved into it in 2021)",
         "torvalds/linux arch/x86/kvm/mmu/tdp_mmu.c (v5.15 text; Ben Gardon's patch moving "
         "the flush, on the KVM list)", True),
    Fact("mutants.mmu_try_to_unsync_pages", "function",
         "mmu_try_to_unsync_pages returns -EPERM (write-protect) for a write-tracked gfn, "
         "-EPERM when !can_unsync, skips SPs already unsync, and returns -EEXIST for a "
         "prefetch instead of unsyncing",
         _MMU, True),
    Fact("mutants.kvm_mmu_find_shadow_page_zaps_unsync", "function",
         "kvm_mmu_find_shadow_page zaps an unsync SP of the gfn when an SP of level above 4K "
         "is wanted for it, since the new upper-level page will be write-protected",
         _MMU, True),
    Fact("mutants.load_pdptrs_frees_root", "function",
         "load_pdptrs frees the current root (KVM_MMU_ROOT_CURRENT) when shadow paging is in "
         "use and the PDPTEs read at the CR3 load differ from the cached ones",
         _X86, True),
    Fact("mutants.nested_ept_root_matches", "function",
         "nested_ept_root_matches compares only the root addresses of two EPTPs "
         "(EPTP_PA_MASK, bits 51:12), so single-context INVEPT names a root whatever the "
         "EPTP's memory type, walk length or A/D bits",
         "torvalds/linux arch/x86/kvm/vmx/nested.c", True),
    Fact("mutants.mmio_spte_generation_bits", "behaviour",
         "an MMIO SPTE keeps the low bits of the memslot generation in SPTE bits 10:3 "
         "(MMIO_SPTE_GEN_LOW_START 3, _END 10) and the rest in bits 62:52; a later change "
         "moves the low end to bit 9",
         "torvalds/linux arch/x86/kvm/mmu/spte.h (stored copy, and the patch changing "
         "MMIO_SPTE_GEN_LOW_END)", True),
    Fact("mutants.kvm_mmu_unload_roots_all", "function",
         "kvm_mmu_reset_context unloads the MMU with kvm_mmu_free_roots(..., "
         "KVM_MMU_ROOTS_ALL), freeing prev_roots as well as the current root",
         _MMU + " (kvm_mmu_unload, both root_mmu and guest_mmu)", True),
    Fact("mutants.spte_write_protect_pt_protect", "function",
         "rmap_write_protect with pt_protect (shadowing a guest table) clears "
         "shadow_mmu_writable_mask as well as W, so the fast page fault cannot make the SPTE "
         "writable again",
         _MMU + " (spte_write_protect, rmap_write_protect)", True),
)
