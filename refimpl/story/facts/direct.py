"""Facts of the legacy direct MMU (``tdp_mmu=0``) and how KVM chooses it.

``MMU_C`` is a stored ``arch/x86/kvm/mmu/mmu.c`` of torvalds/linux at
56ea38e436ea (a v6.x tree with ``direct_map``, ``tdp_mmu_allowed`` and
``kvm_mmu_x86_module_init``); each behaviour below was read there, function
by function.
"""

from refimpl.story.facts import Fact

MMU_C = "torvalds/linux@56ea38e436ea98bff62e1e9433fd53bcdeb53254:arch/x86/kvm/mmu/mmu.c"

FACTS = (
    Fact("56ea38e436ea", "commit",
         "torvalds/linux at 56ea38e436ea98bff62e1e9433fd53bcdeb53254: the mmu.c the legacy "
         "direct MMU model was read against",
         "stored torvalds/linux arch/x86/kvm/mmu/mmu.c at that commit", True),
    Fact("71ba3f3189c7", "commit",
         "71ba3f3189c78f756a659568fb473600fd78f207 'KVM: x86: enable TDP MMU by default' "
         "(Paolo Bonzini), merged for Linux 5.15: before it the legacy direct MMU built "
         "every VM's EPT/NPT tables",
         "shortlog listings of torvalds/linux naming the commit; the 5.15 KVM pull "
         "20210907171639.574037-1-pbonzini@redhat.com lists the patch and says "
         "'new MMU now the default'", True),
    Fact("20210726163106.1433600-1-pbonzini@redhat.com", "message-id",
         "[PATCH] KVM: x86: enable TDP MMU by default, Paolo Bonzini, 26 Jul 2021",
         "list mail 20210726163106.1433600-1-pbonzini@redhat.com", True),
    Fact("20210907171639.574037-1-pbonzini@redhat.com", "message-id",
         "[GIT PULL] KVM changes for Linux 5.15 (7 Sep 2021): x86 'new MMU now the default', "
         "with 'KVM: x86: enable TDP MMU by default' and 'Refactor shadow walk in "
         "__direct_map()' (the legacy fault path's older name) in its shortlog",
         "list mail 20210907171639.574037-1-pbonzini@redhat.com", True),
    Fact("direct.tdp_mmu_enabled", "behaviour",
         "tdp_mmu_enabled is the module parameter tdp_mmu (default true, 0444, CONFIG_X86_64 "
         "only); kvm_mmu_x86_module_init snapshots it into tdp_mmu_allowed and "
         "kvm_configure_mmu sets tdp_mmu_enabled = tdp_mmu_allowed && tdp_enabled",
         f"{MMU_C}: module_param_named(tdp_mmu, ...), kvm_mmu_x86_module_init, "
         "kvm_configure_mmu", True),
    Fact("direct.kvm_tdp_page_fault", "function",
         "kvm_tdp_page_fault calls kvm_tdp_mmu_page_fault when tdp_mmu_enabled (mmu_lock "
         "for read) and direct_page_fault otherwise (mmu_lock for write)",
         f"{MMU_C}: kvm_tdp_page_fault, direct_page_fault (write_lock), "
         "kvm_tdp_mmu_page_fault (read_lock)", True),
    Fact("direct.direct_map", "function",
         "direct_map walks the root with for_each_shadow_entry; at each level above the "
         "goal it calls kvm_mmu_get_child_sp(vcpu, sptep, gfn rounded to that level, "
         "direct=true, ACC_ALL) and link_shadow_page; then mmu_set_spte(ACC_ALL) and "
         "direct_pte_prefetch (v5.15 and before: __direct_map)",
         f"{MMU_C}: direct_map", True),
    Fact("direct.kvm_mmu_get_child_sp", "function",
         "kvm_mmu_get_child_sp returns -EEXIST for a present non-leaf SPTE, else "
         "kvm_mmu_get_shadow_page with kvm_mmu_child_role (level-1, access, direct, "
         "passthrough cleared), which looks the page up in kvm->arch.mmu_page_hash "
         "(kvm_mmu_find_shadow_page; a direct page is returned at once, never synced) or "
         "allocates it",
         f"{MMU_C}: kvm_mmu_get_child_sp, kvm_mmu_child_role, __kvm_mmu_get_shadow_page, "
         "kvm_mmu_find_shadow_page", True),
    Fact("direct.link_shadow_page", "function",
         "__link_shadow_page drops a present (large) SPTE with drop_large_spte and a flush "
         "before writing the non-leaf SPTE and adding the parent pte",
         f"{MMU_C}: __link_shadow_page", True),
    Fact("direct.mmu_set_spte", "function",
         "mmu_set_spte: over a non-leaf SPTE at level > 4K it drops the child's parent pte "
         "and flushes; over another pfn it drops the SPTE and flushes; then make_spte, "
         "mmu_spte_update (a flush when an MMU-writable SPTE loses W), and rmap_add for a "
         "new leaf",
         f"{MMU_C}: mmu_set_spte, mmu_spte_update", True),
    Fact("direct.mmu_page_zap_pte", "function",
         "mmu_page_zap_pte drops a child's parent pte and zaps the child with it only when "
         "tdp_enabled and the child has role.guest_mode and no other parent: a direct "
         "table of the legacy MMU stays in the hash as an orphan",
         f"{MMU_C}: mmu_page_zap_pte", True),
    Fact("direct.mmu_alloc_direct_roots", "function",
         "mmu_alloc_direct_roots returns kvm_tdp_mmu_alloc_root when tdp_mmu_enabled; "
         "otherwise mmu_alloc_root(vcpu, gfn 0, quadrant 0, root level), which finds the "
         "root in the hash by role (so vCPUs with one role share it) and increments "
         "root_count; a PAE (level 3) root uses four level-2 pages at gfn i << 18",
         f"{MMU_C}: mmu_alloc_direct_roots, mmu_alloc_root", True),
    Fact("direct.kvm_mmu_slot_remove_write_access", "function",
         "kvm_mmu_slot_remove_write_access walks the slot's rmaps from start_level to "
         "KVM_MAX_HUGEPAGE_LEVEL with slot_rmap_write_protect when the VM has rmaps, "
         "and calls kvm_tdp_mmu_wrprot_slot when tdp_mmu_enabled",
         f"{MMU_C}: kvm_mmu_slot_remove_write_access, slot_rmap_write_protect", True),
    Fact("direct.kvm_mmu_slot_leaf_clear_dirty", "function",
         "kvm_mmu_slot_leaf_clear_dirty clears D through the 4 KiB rmaps only (the legacy "
         "MMU logs at 4 KiB)",
         f"{MMU_C}: kvm_mmu_slot_leaf_clear_dirty", True),
    Fact("direct.no_eager_split", "behaviour",
         "kvm_mmu_slot_try_split_huge_pages returns at once when tdp_mmu_enabled is false, "
         "and the shadow MMU's split only handles role.guest_mode pages: the legacy direct "
         "MMU never splits eagerly",
         f"{MMU_C}: kvm_mmu_slot_try_split_huge_pages, shadow_mmu_try_split_huge_pages", True),
    Fact("direct.kvm_rmap_zap_collapsible_sptes", "function",
         "kvm_rmap_zap_collapsible_sptes walks rmaps from 4K to KVM_MAX_HUGEPAGE_LEVEL - 1 "
         "with kvm_mmu_zap_collapsible_spte: a leaf of a direct page whose level is below "
         "kvm_mmu_max_mapping_level(slot, sp->gfn) is zapped; with ranged flushes "
         "(kvm_available_flush_remote_tlbs_range, Hyper-V) each zap is flushed at once, "
         "else one kvm_flush_remote_tlbs_memslot at the end",
         f"{MMU_C}: kvm_rmap_zap_collapsible_sptes, kvm_mmu_zap_collapsible_spte", True),
    Fact("direct.kvm_mmu_zap_all_fast", "function",
         "kvm_arch_flush_shadow_memslot calls kvm_mmu_zap_all_fast: every shadow page "
         "becomes obsolete and is zapped (roots freed when vCPUs drop them, "
         "KVM_REQ_MMU_FREE_OBSOLETE_ROOTS); the TDP MMU's roots are invalidated in the same "
         "call",
         f"{MMU_C}: kvm_arch_flush_shadow_memslot, kvm_mmu_zap_all_fast", True),
    Fact("direct.kvm_rmap_zap_gfn_range", "function",
         "kvm_zap_gfn_range zaps through the rmaps of every memslot in the range "
         "(kvm_rmap_zap_gfn_range, 4K to KVM_MAX_HUGEPAGE_LEVEL) and, with the TDP MMU, "
         "kvm_tdp_mmu_zap_leafs; one ranged flush",
         f"{MMU_C}: kvm_zap_gfn_range, kvm_rmap_zap_gfn_range", True),
    Fact("direct.direct_pte_prefetch", "behaviour",
         "direct_map prefetches up to PTE_PREFETCH_NUM (8) neighbouring 4 KiB SPTEs of a "
         "level-1 direct page when A/D bits are on (not modelled)",
         f"{MMU_C}: direct_pte_prefetch, __direct_pte_prefetch", True),
)
