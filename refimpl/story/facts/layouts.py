"""Facts behind the layouts (``refimpl/layouts``) and the refactoring chapters."""

from refimpl.story.facts import Fact

_HOST_H = "torvalds/linux@004a0aa56edea3effc97bc90a620da1bcde5c63c:arch/x86/include/asm/kvm_host.h"
_PULL_64 = ("kvm-x86 pull request 'tags/kvm-x86-misc-6.4' (kvm@vger, April 2023, "
            "\"KVM x86 changes for 6.4\"), shortlog and file list")
_RFC = "Ben Gardon, [RFC 00/19] \"Optimize disabling dirty logging\", kvm@vger, 10 Nov 2021"

FACTS = (
    Fact("004a0aa56edea3effc97bc90a620da1bcde5c63c", "commit",
         "a torvalds/linux tree (struct kvm_mmu without the TDX mirror_root_hpa) whose kvm_host.h is "
         "the stored copy step 0's structures are checked against",
         "torvalds/linux@004a0aa56edea3effc97bc90a620da1bcde5c63c (stored file index)", True),
    Fact("struct kvm_mmu", "file",
         "struct kvm_mmu has 18 members, in this order: get_guest_pgd, get_pdptr, page_fault, "
         "inject_page_fault, gva_to_gpa, sync_spte, root, cpu_role, root_role, pkru_mask, "
         "prev_roots, permissions, pae_root, pml4_root, pml5_root, shadow_zero_check, "
         "guest_rsvd_check, pdptrs (types restated in refimpl.layouts.structs)",
         _HOST_H, True),
    Fact("struct kvm_vcpu_arch MMU members", "file",
         "the MMU members of struct kvm_vcpu_arch are, in order: struct kvm_mmu *mmu, "
         "struct kvm_mmu root_mmu, guest_mmu, nested_mmu, struct kvm_mmu *walk_mmu",
         _HOST_H, True),
    Fact("01b31714bd90", "commit",
         "\"KVM: x86: Do not unload MMU roots when only toggling CR0.WP with TDP enabled\" "
         "(Mathias Krause): kvm_post_set_cr0 re-initialises the MMU instead of resetting it; "
         "pulled for v6.4", _PULL_64, True),
    Fact("20211110223010.1392399-9-bgardon@google.com", "message-id",
         "[RFC 08/19] \"KVM: x86/mmu: Factor mt_mask out of make_spte\": in 2021 make_spte "
         "called kvm_x86_ops get_mt_mask with the vCPU to compute the memory type",
         _RFC, True),
    Fact("20211110223010.1392399-11-bgardon@google.com", "message-id",
         "[RFC 10/19] \"KVM: x86/mmu: Remove need for a vcpu from mmu_try_to_unsync_pages\": "
         "in 2021 make_spte passed the vCPU to mmu_try_to_unsync_pages (the unsync check)",
         _RFC, True),
    Fact("make_spte (2021)", "behaviour",
         "make_spte(struct kvm_vcpu *vcpu, ...) in arch/x86/kvm/mmu/spte.c read the vCPU for "
         "the memory type (get_mt_mask), the unsync check (mmu_try_to_unsync_pages), the "
         "zero-bit check (vcpu->arch.mmu->shadow_zero_check) and dirty logging (vcpu->kvm)",
         "spte.c of late 2021 as quoted by the RFC patches 08/19 and 10/19 "
         "(20211110223010.1392399-9 and -11)", True),
    Fact("kvm_mmu_get_tdp_level", "function",
         "kvm_mmu_get_tdp_level (arch/x86/kvm/mmu/mmu.c) uses 4-level TDP when the host "
         "allows 5 levels but the guest's CPUID MAXPHYADDR is at most 48: the TDP root level "
         "depends on the vCPU's CPUID",
         "arch/x86/kvm/mmu/mmu.c as quoted in list patches to kvm_mmu_get_tdp_level "
         "(kvm@vger, 2022-2024)", True),
    Fact("kvm_post_set_cr0", "function",
         "kvm_post_set_cr0 in arch/x86/kvm/x86.c decides between kvm_init_mmu and "
         "kvm_mmu_reset_context on a CR0 write", _PULL_64 + " (arch/x86/kvm/x86.c hunk)", True),
    Fact("functions the steps touch", "function",
         "these functions exist with these files in 2021-era KVM: kvm_mmu_create, "
         "kvm_mmu_init_vm, kvm_init_mmu, init_kvm_tdp_mmu, init_kvm_nested_mmu, "
         "shadow_mmu_init_context, kvm_init_shadow_ept_mmu, reset_guest_paging_metadata, "
         "reset_tdp_shadow_zero_bits_mask (arch/x86/kvm/mmu/mmu.c); mmu_is_nested "
         "(arch/x86/kvm/x86.h, walk_mmu == &nested_mmu); nested_ept_init_mmu_context, "
         "nested_ept_uninit_mmu_context (arch/x86/kvm/vmx/nested.c); "
         "nested_svm_init_mmu_context (arch/x86/kvm/svm/nested.c)",
         "patch mails of 2020-2022 quoting these functions in their hunks (kvm@vger)", True),
)
