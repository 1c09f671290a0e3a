"""Facts of the book's opening: the 2021 thread, today's ``kvm_mmu`` and the sketch.

Each entry was read in a stored copy: list mail by Message-ID (the
kvm@vger.kernel.org archive; times converted from the ``Date:`` header to
UTC), or a repository file at a commit. ``KVMX86`` below is kvm-x86/linux at
04f2bbf1c779, the "classic" tree the book models; ``NEWEST`` is a stored 2026
``arch/x86/include/asm/kvm_host.h`` that defines ``struct kvm_pagewalk`` (the
2026 "chainsaw" layout), whose repository and commit the index did not name.
"""

from refimpl.story.facts import Fact

KVMX86 = "kvm-x86/linux@04f2bbf1c779"
HOST_H = f"{KVMX86}:arch/x86/include/asm/kvm_host.h"
MMU_C = f"{KVMX86}:arch/x86/kvm/mmu/mmu.c"
NEWEST = "stored 2026 arch/x86/include/asm/kvm_host.h with struct kvm_pagewalk (index id 57367114967)"

FACTS = (
    # --- the trees read ---------------------------------------------------
    Fact("04f2bbf1c779", "commit",
         "kvm-x86/linux at 04f2bbf1c779c55149d12d350d7477792caf1067: the classic layout "
         "(struct kvm_mmu with 18 fields, no mirror_root_hpa) the book models",
         "stored kvm-x86/linux arch/x86/include/asm/kvm_host.h and arch/x86/kvm/mmu/mmu.c "
         "at that commit", True),
    Fact("004a0aa56ede", "commit",
         "torvalds/linux at 004a0aa56edea3effc97bc90a620da1bcde5c63c: kvm_host.h with the "
         "same 18-field struct kvm_mmu and the vCPU's root_mmu, guest_mmu, nested_mmu, mmu, "
         "walk_mmu",
         "stored torvalds/linux arch/x86/include/asm/kvm_host.h at that commit", True),
    # --- the thread -------------------------------------------------------
    Fact("legacy-mmu-3.5s-is-ept", "behaviour",
         "the 3.5 s figure is for the legacy MMU building the same TDP (EPT) tables "
         "(TDP MMU off, module parameter kvm.tdp_mmu), not for shadow paging: the cover "
         "letter compares 'TDP MMU' with 'legacy MMU', Paolo's reply speaks of "
         "'EPT/NPT (on either the legacy aka shadow or the TDP MMU)', and the TDP MMU "
         "only exists with tdp_enabled (kvm_mmu_init_tdp_mmu returns early otherwise)",
         "list mails 20211110223010.1392399-1-bgardon@google.com and "
         "80407e4a-36e1-e606-ed9f-74429f850e77@redhat.com; "
         "module_param_named(tdp_mmu, tdp_mmu_enabled, ...) in mmu.c / tdp_mmu.c mails", True),
    Fact("80407e4a-36e1-e606-ed9f-74429f850e77@redhat.com", "message-id",
         "Paolo Bonzini on RFC 11/19, 10 Nov 2021 23:44:54 +0100 (22:44 UTC): with "
         "EPT/NPT large parts of vcpu->arch.mmu are the same for all vCPUs; suggests "
         "splitting kvm_mmu and moving the EPT/NPT MMU to kvm->arch",
         "list mail 80407e4a-36e1-e606-ed9f-74429f850e77@redhat.com", True),
    Fact("CANgfPd8hzDU+v52t9Kr=b48utC1p_j3yJ8gHzo-uifAxHbh-eQ@mail.gmail.com", "message-id",
         "Ben Gardon, 10 Nov 2021 15:49:44 -0800 (23:49 UTC): agrees; finds a per-vCPU "
         "struct kvm_mmu confusing",
         "list mail CANgfPd8hzDU+v52t9Kr=b48utC1p_j3yJ8gHzo-uifAxHbh-eQ@mail.gmail.com", True),
    Fact("YYxvSfUPTXbclpSa@google.com", "message-id",
         "Sean Christopherson, 11 Nov 2021 01:18:01 +0000: 'what would you actually "
         "move?'; lists 15 fields as guest context, ept_ad/direct_map/shadow_root_level "
         "as redundant, prev_roots droppable only with per-VM TDP roots, "
         "shadow_zero_check per VM only with one cpuid.MAXPHYADDR for all vCPUs or "
         "without the 4- vs 5-level choice, root_hpa/pae_root/pml4_root/pml5_root never "
         "per VM (normal, SMM, L2 roots)",
         "list mail YYxvSfUPTXbclpSa@google.com", True),
    Fact("YYx1mDJo/L79cKOH@google.com", "message-id",
         "Sean Christopherson replying to himself, 11 Nov 2021 01:44:56 +0000: "
         "page_fault() and inject_page_fault() could be per-VM; neither is particularly "
         "interesting",
         "list mail YYx1mDJo/L79cKOH@google.com (In-Reply-To YYxvSfUPTXbclpSa@google.com)",
         True),
    Fact("2c924ef5-2ff9-c9a8-f28c-8bedaf8b1af6@redhat.com", "message-id",
         "Paolo Bonzini, 11 Nov 2021 08:06:31 +0100 (07:06 UTC), in reply to "
         "YYxvSfUPTXbclpSa: the sketch (kvm_mmu_kind, kvm_mmu, kvm_paging_context, the "
         "vCPU declarations quoted in the sketch chapter); shadow_zero_check stays per VM "
         "'just like 32-bit shadow page tables are always built for EFER.NXE=CR4.PAE=1'",
         "list mail 2c924ef5-2ff9-c9a8-f28c-8bedaf8b1af6@redhat.com", True),
    # --- what happened to the fields -------------------------------------
    Fact("1f5a21ee8400", "commit",
         "KVM: X86: Add parameter struct kvm_mmu *mmu into mmu->gva_to_gpa() "
         "(Lai Jiangshan; series posted 24 Nov 2021)",
         "shortlogs in stored kvm pull mails; series 20211124122055.64424-1-jiangshanlai", True),
    Fact("c59a0f57fa32", "commit",
         "KVM: X86: Remove mmu->translate_gpa (Lai Jiangshan): adds kvm_translate_gpa() in "
         "mmu.h, which translates only when the walking mmu is &vcpu->arch.nested_mmu",
         "shortlogs in stored kvm pull mails; patch mail 20211124122055.64424-4-jiangshanlai",
         True),
    Fact("b9e5603c2a3a", "commit",
         "KVM: x86: use struct kvm_mmu_root_info for mmu->root (Paolo Bonzini, Feb 2022): "
         "root_hpa and root_pgd become root.{hpa,pgd}",
         "shortlogs in stored pull mails; patch mail 20220209170020.1775368-8-pbonzini", True),
    Fact("c3c6c9fc5d24", "commit",
         "KVM: x86/mmu: Move the code out of FNAME(sync_page)'s loop body into mmu.c "
         "(Lai Jiangshan, 2023): renames mmu->sync_page to mmu->sync_spte(vcpu, sp, i)",
         "kvm-x86 'applied' mail listing [05/14] c3c6c9fc5d24; patch mail "
         "20230216154115.710033-6-jiangshanlai (v3)", True),
    Fact("9fd4a4e3a3d9", "commit",
         "KVM: x86/mmu: Remove FNAME(invlpg) and use FNAME(sync_spte) to update vTLB "
         "instead (Lai Jiangshan, 2023)",
         "kvm-x86 'applied' mail listing [12/14] 9fd4a4e3a3d9; stored shortlogs", True),
    Fact("20220204115718.14934-1-pbonzini@redhat.com", "message-id",
         "[PATCH 00/23] KVM: MMU: MMU role refactoring, Paolo Bonzini, 4 Feb 2022 (v1)",
         "list mail 20220204115718.14934-1-pbonzini@redhat.com", True),
    Fact("20220221162243.683208-1-pbonzini@redhat.com", "message-id",
         "[PATCH v2 00/25] KVM MMU refactoring part 2: role changes, Paolo Bonzini, "
         "21 Feb 2022 (v2 of the role series)",
         "list mail 20220221162243.683208-1-pbonzini@redhat.com", True),
    Fact("20220414074000.31438-1-pbonzini@redhat.com", "message-id",
         "v3 of the role series (22 patches, 14 Apr 2022; its subject line is a URL by "
         "mistake): splits cpu_role from mmu_role, renames mmu_role to root_role, removes "
         "ept_ad, replaces shadow_root_level, root_level and direct_map; its commits "
         "appear in the 5.19 KVM merge",
         "list mail 20220414074000.31438-1-pbonzini@redhat.com; stored 5.19 KVM pull shortlog",
         True),
    Fact("cr0wp-2023-series", "behaviour",
         "Mathias Krause's CR0.WP series (v4, 22 Mar 2023, with patches by Paolo Bonzini "
         "and Sean Christopherson) stops unloading MMU roots when only CR0.WP toggles "
         "with TDP; __kvm_mmu_refresh_passthrough_bits recomputes the guest paging "
         "metadata when CR0.WP changed",
         f"patch mails 20230322013731.102955-*; {MMU_C}", True),
    Fact("chainsaw-v2-2026-06-24", "date",
         "'KVM: apply chainsaw to struct kvm_mmu', v2, Message-ID dated 2026-06-24; "
         "kvm_pagewalk (gva_walk, ngpa_walk), kvm_mmu, kvm_page_format",
         "third-party digest citing lore 20260624213102.71082-1-pbonzini; " + NEWEST, True),
    # --- today's kvm_mmu --------------------------------------------------
    Fact("struct-kvm_mmu-18-fields", "file",
         "struct kvm_mmu has 18 fields: get_guest_pgd, get_pdptr, page_fault, "
         "inject_page_fault, gva_to_gpa, sync_spte, root, cpu_role, root_role, pkru_mask, "
         "prev_roots, permissions, pae_root, pml4_root, pml5_root, shadow_zero_check, "
         "guest_rsvd_check, pdptrs",
         f"{HOST_H}; torvalds/linux@004a0aa56ede:arch/x86/include/asm/kvm_host.h", True),
    Fact("kvm_vcpu_arch-mmu-members", "file",
         "struct kvm_vcpu_arch embeds three struct kvm_mmu (root_mmu, guest_mmu, "
         "nested_mmu) and has two pointers into them (mmu, walk_mmu); the same in the "
         "2021-era header (with root_hpa, lm_root) and in the classic tree",
         f"{HOST_H}; stored kvm_host.h of about v5.11 (index id 5097635)", True),
    Fact("kvm_mmu_create-pointers", "function",
         "kvm_mmu_create() sets vcpu->arch.mmu and walk_mmu to &vcpu->arch.root_mmu",
         "patch mail 20211124122055.64424-4-jiangshanlai (context lines of mmu.c)", True),
    Fact("rsvd-rows-by-level", "behaviour",
         "__reset_rsvds_bits_mask: for level 3 (PAE) high_bits_rsvd covers bits up to 62, "
         "for 4 and 5 levels up to 51; the 5-level case only adds the level-5 rows before "
         "falling through to the 4-level rows; bit 7 of level-3 entries is reserved "
         "without gbpages; __reset_rsvds_bits_mask_ept takes no level",
         MMU_C, True),
    Fact("kvm_init_shadow_npt_mmu-nx", "function",
         "the shadow NPT root role is the CPU role computed from L1's CR0/CR4/EFER with "
         "the TDP level (passthrough when 5 over 4), so its efer_nx is L1's EFER.NX",
         MMU_C, True),
    Fact("translate_nested_gpa", "function",
         "translate_nested_gpa (arch/x86/kvm/x86.c) walks with vcpu->arch.mmu->gva_to_gpa, "
         "adding PFERR_USER_MASK ('NPT walks are always user-walks')",
         "stored x86.c of Linux 6.12 (segment copy)", True),
    Fact("kvm_inject_emulated_page_fault", "function",
         "kvm_inject_emulated_page_fault (x86.c) injects through vcpu->arch.mmu when "
         "fault->nested_page_fault, else through vcpu->arch.walk_mmu",
         "stored x86.c copies and patch mails", True),
    Fact("nested_ept_init_mmu_context", "function",
         "nested_ept_init_mmu_context (arch/x86/kvm/vmx/nested.c) sets mmu = &guest_mmu and "
         "walk_mmu = &nested_mmu; nested_ept_uninit_mmu_context sets both to &root_mmu",
         "stored vmx/nested.c", True),
    Fact("mmu_is_nested", "function",
         "mmu_is_nested (arch/x86/kvm/x86.h) is walk_mmu == &nested_mmu",
         "stored x86.h copies", True),
    Fact("kvm_calc_tdp_mmu_root_page_role", "function",
         "the TDP root role: access ACC_ALL, cr0_wp 1, efer_nx 1, direct 1, level from "
         "kvm_mmu_get_tdp_level, ad_disabled from kvm_ad_enabled, smm and guest_mode "
         "copied from the CPU role",
         MMU_C, True),
    Fact("kvm_init_shadow_mmu-root-role", "function",
         "the shadow root role is the CPU role with level raised to at least 3 (PAE) "
         "and efer_nx forced to 1",
         MMU_C, True),
    Fact("init_kvm_nested_mmu", "function",
         "init_kvm_nested_mmu sets cpu_role, get_guest_pgd, get_pdptr, inject_page_fault, "
         "sync_spte=NULL and gva_to_gpa of nested_mmu; no page_fault and no roots",
         MMU_C, True),
    Fact("kvm_translate_gpa", "function",
         "kvm_translate_gpa() (mmu.h) translates through translate_nested_gpa only when "
         "the walking mmu is &vcpu->arch.nested_mmu, otherwise returns the gpa",
         "patch mail 20211124122055.64424-4-jiangshanlai", True),
    Fact("tdp_mmu_roots-shared-by-role", "behaviour",
         "TDP MMU roots are kept on kvm->arch.tdp_mmu_roots and a vCPU reuses a root whose "
         "role.word equals its own (kvm_tdp_mmu_get_vcpu_root_hpa / kvm_tdp_mmu_alloc_root)",
         "stored tdp_mmu.c patch mails", True),
    # --- the sketch and its zero check ------------------------------------
    Fact("reset_shadow_zero_bits_mask", "function",
         "shadow tables' zero check: __reset_rsvds_bits_mask(reserved_hpa_bits() [host "
         "MAXPHYADDR], root_role.level, root_role.efer_nx, guest_can_use(vcpu, GBPAGES), "
         "pse=false, amd=true), plus the memory-encryption mask; called from "
         "shadow_mmu_init_context (shadow paging and nested NPT)",
         MMU_C, True),
    Fact("reset_tdp_shadow_zero_bits_mask", "function",
         "TDP tables' zero check: on AMD the x86 masks at root_role.level with NX and the "
         "host's GBPAGES, on Intel the EPT masks with max_huge_page_level; host "
         "MAXPHYADDR; no guest input but the root level",
         MMU_C, True),
    Fact("cpuid-frozen-after-kvm-run", "behaviour",
         "changing guest CPUID after KVM_RUN is forbidden: kvm_mmu_after_set_cpuid ends "
         "with KVM_BUG_ON(kvm_vcpu_has_run(vcpu)) and points to kvm_arch_vcpu_ioctl; its "
         "comment says KVM does not track per-vCPU CPUID models in the page role",
         MMU_C, True),
    Fact("mmu_page_hash-per-vm", "behaviour",
         "shadow pages, unsync ones included, are per VM: struct kvm_arch holds "
         "mmu_page_hash; mmu_try_to_unsync_pages(struct kvm *kvm, ...) walks the VM's "
         "pages for a gfn and kvm_unsync_page(kvm, sp) sets sp->unsync",
         f"{HOST_H}; mmu_internal.h declaration and mmu.c patch mails", True),
    Fact("sync_spte-needs-the-vcpu", "behaviour",
         "FNAME(sync_spte)(vcpu, sp, i) reads the gpte with kvm_vcpu_read_guest_atomic, "
         "drops it through FNAME(prefetch_invalid_gpte) (reserved bits of the vCPU's "
         "MMU), computes access with protect_clean_gpte(vcpu->arch.mmu, ...), looks the "
         "memslot up with kvm_vcpu_gfn_to_memslot and rebuilds the SPTE with make_spte",
         "patch mail 20230216154115.710033-6-jiangshanlai", True),
    Fact("kvm_mmu-2026-keeps-sync_spte", "file",
         "in the 2026 layout struct kvm_mmu holds page_fault, sync_spte, w, root, "
         "mirror_root_hpa, root_role, prev_roots, pae_root, pml4_root, pml5_root, fmt; "
         "struct kvm_pagewalk holds get_guest_pgd, get_pdptr, inject_page_fault, "
         "gva_to_gpa, cpu_role, fmt; the vCPU has mmu, root_mmu, guest_mmu, ngpa_walk, "
         "gva_walk and pdptrs",
         NEWEST, True),
)
