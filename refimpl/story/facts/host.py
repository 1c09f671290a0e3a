"""Facts about KVM that the host side (``refimpl/host``, ``refimpl/bugs.py``) cites.

Each entry was looked up in a stored copy (repository file at a commit, or a
list mail) during the audit of the ``KVM`` docstring sections of
``refimpl/host``; ``confirmed=False`` marks what no stored copy showed.
"""

from refimpl.story.facts import Fact

_LINUX = "torvalds/linux"
_SVM_NESTED = "arch/x86/kvm/svm/nested.c (stored copy in the code index, file id 441558495)"

FACTS = (
    # -- commits -----------------------------------------------------------
    Fact("c7dfa4009965", "commit",
         "'KVM: nSVM: always intercept VMLOAD/VMSAVE when nested (CVE-2021-3656)', "
         "Maxim Levitsky, 2021 (pulled for 5.14-rc6)",
         "kvm tree pull request 'tags/for-linus' (2021-08-16) and the v5.14-rc6 shortlog "
         "in the stored list archives", True),
    Fact("fb509f76acc8", "commit",
         "'KVM: VMX: Make CR0.WP a guest owned bit'",
         "list mail citing 'commits cf9f4c0eb169 (...) and fb509f76acc8 (\"KVM: VMX: Make "
         "CR0.WP a guest owned bit\")' (stored list archive)", True),
    Fact("1aa9b9572b10", "commit",
         "'kvm: x86: mmu: Recovery of shattered NX large pages' (Junaid Shahid)",
         "linux-next merge mail and 'Fixes: 1aa9b9572b105' tags in the stored list archives",
         True),
    Fact("3ddf6c06e13e", "commit",
         "kvm-unit-tests x86/access.c says check_pfec_on_prefetch_pte triggers the bug "
         "fixed by 'commit 3ddf6c06e13e in the kvm tree'; the commit's own text was not "
         "found, so the model's prefetch bug is a reconstruction",
         "kvm-unit-tests/kvm-unit-tests:x86/access.c (stored copy)", True),
    Fact("c22885050e65", "commit",
         "said to be 'KVM: MMU: fix Dirty bit missed if CR0.WP = 0' (Xiao Guangrong, 2012)",
         "not found in any stored copy (id and title searched)", False),
    Fact("9e7b0e7fba45", "commit",
         "said to be 'KVM: MMU: fix direct sp's access corrupted' (Xiao Guangrong)",
         "not found in any stored copy (id and title searched)", False),
    Fact("5fd5387c89ec", "commit",
         "said to be 'KVM: MMU: fix conflict access permissions in direct sp'",
         "not found in any stored copy (id and title searched)", False),
    Fact("5f0b819995e1", "commit",
         "said to be 'fix reserved bit check for ept=0/CR0.WP=0/CR4.SMEP=1/EFER.NX=0'",
         "not found in any stored copy (id and title searched)", False),
    # -- functions and behaviour --------------------------------------------
    Fact("RET_PF_*", "behaviour",
         "the page-fault return codes are RET_PF_CONTINUE (0), RET_PF_RETRY, "
         "RET_PF_EMULATE, RET_PF_WRITE_PROTECTED, RET_PF_INVALID, RET_PF_FIXED, "
         "RET_PF_SPURIOUS, an anonymous enum in arch/x86/kvm/mmu/mmu_internal.h",
         "arch/x86/kvm/mmu/mmu_internal.h as quoted in stored list mails (2024-2025) and a "
         "stored live-patch copy", True),
    Fact("recalc_intercepts", "behaviour",
         "recalc_intercepts (arch/x86/kvm/svm/nested.c) ORs L1's intercepts into vmcb02 "
         "and sets INTERCEPT_VMLOAD/INTERCEPT_VMSAVE only when "
         "nested_vmcb_needs_vls_intercept() says so (no virtual VMLOAD/VMSAVE for L2); "
         "the 2021 fix c7dfa4009965 set them whenever the vCPU is in guest mode",
         _LINUX + ":" + _SVM_NESTED, True),
    Fact("nested_vmcb_needs_vls_intercept", "function",
         "nested_vmcb_needs_vls_intercept in arch/x86/kvm/svm/nested.c: true unless the "
         "guest may use V_VMSAVE_VMLOAD, nested NPT is on and vmcb12 enables virtual "
         "VMLOAD/VMSAVE", _LINUX + ":" + _SVM_NESTED, True),
    Fact("kvm_mmu_find_shadow_page", "function",
         "kvm_mmu_find_shadow_page (arch/x86/kvm/mmu/mmu.c) looks (gfn, role) up in the "
         "per-VM page hash (for_each_valid_sp over kvm->arch.mmu_page_hash), syncing an "
         "unsync page it finds; it takes the kvm and, for indirect pages, the vCPU",
         "stored kvm list mails quoting arch/x86/kvm/mmu/mmu.c (David Matlack's 2022 "
         "series, 'Note, @vcpu may be NULL if @role.direct is true')", True),
    Fact("kvm_mmu_get_child_sp", "function",
         "kvm_mmu_get_child_sp (arch/x86/kvm/mmu/mmu.c) computes kvm_mmu_child_role and "
         "gets the child page through kvm_mmu_get_shadow_page, i.e. from the hash",
         "stored kvm list mails quoting arch/x86/kvm/mmu/mmu.c", True),
    Fact("struct kvm_mmu_page", "file",
         "struct kvm_mmu_page is defined in arch/x86/kvm/mmu/mmu_internal.h, one struct for "
         "both MMUs with a tdp_mmu_page flag; unions hold root_count or tdp_mmu_root_count, "
         "and parent_ptes or (TDP) ptep",
         _LINUX + ":arch/x86/kvm/mmu/mmu_internal.h (stored copy, tdp_mmu_page flag) and "
         "stored patches to that file quoting the unions", True),
    Fact("host-docstring-functions", "function",
         "these functions named in the KVM sections of refimpl/host exist in KVM: "
         "kvm_tdp_mmu_recover_huge_pages, make_huge_spte, kvm_mmu_max_mapping_level, "
         "kvm_tdp_mmu_zap_leafs, __kvm_mmu_invalidate_addr, kvm_mmu_track_write, "
         "page_fault_handle_page_track, kvm_gfn_is_write_tracked, tdp_mmu_alloc_sp, "
         "tdp_mmu_init_sp, kvm_tdp_mmu_get_walk, kvm_tdp_mmu_alloc_root, "
         "kvm_calc_shadow_ept_root_page_role, kvm_mmu_free_obsolete_roots, ept_sync_spte, "
         "vmx_flush_pml_buffer, nested_ept_root_matches, kvm_mmu_write_protect_pt_masked, "
         "kvm_slot_dirty_track_enabled, kvm_arch_vcpu_memslots_id",
         "stored copies of arch/x86/kvm (mmu/mmu.c, mmu/tdp_mmu.c, mmu/spte.c, "
         "mmu/paging_tmpl.h, vmx/vmx.c, vmx/nested.c), include/linux/kvm_host.h and "
         "patches to them in the stored list archives (find_string on each name)", True),
    Fact("kvm_mmu_memslot_address_space", "function",
         "no such KVM function: the vCPU's memslot address space is "
         "kvm_arch_vcpu_memslots_id (include/linux/kvm_host.h, x86 override), a page's "
         "is kvm_mmu_role_as_id; Vcpu.as_id's docstring was corrected",
         "searched in the stored copies (no hit); kvm_arch_vcpu_memslots_id found in "
         "include/linux/kvm_host.h", False),
)
