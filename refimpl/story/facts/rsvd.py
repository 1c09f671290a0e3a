"""Facts of the reserved-bit masks: guest checks and the SPTE zero checks.

Every mask of :mod:`refimpl.guest.rsvd` and every zero check of
:mod:`refimpl.host.spte` was re-derived line by line from the functions
below, read in two stored copies of ``arch/x86/kvm/mmu/mmu.c`` that agree on
every line quoted here (``NEW`` and ``TV``), and compared with an older one
(``OLD``, the era of about v5.5) to note what changed.
"""

from refimpl.story.facts import Fact

NEW = "kvm-x86/linux@8cd6d6724eae2c105fdfbaac110e8018a232f29d:arch/x86/kvm/mmu/mmu.c"
TV = "torvalds/linux@56ea38e436ea98bff62e1e9433fd53bcdeb53254:arch/x86/kvm/mmu/mmu.c"
OLD = "torvalds/linux@005ba37cb89bcc0cf63c2029a41f8db165aeb615:arch/x86/kvm/mmu/mmu.c"
BOTH = f"{NEW}; {TV}"
SPTE_H = "stored arch/x86/kvm/mmu/spte.h copies (find_string ids 38848711, 29852034118)"
MMU_H = "stored arch/x86/kvm/mmu.h copies (find_string ids 132315705, 146053872)"

FACTS = (
    # --- the trees read ---------------------------------------------------------------
    Fact("8cd6d6724eae2c105fdfbaac110e8018a232f29d", "commit",
         "kvm-x86/linux at this commit: mmu.c with __reset_rsvds_bits_mask(rsvd_check, "
         "pa_bits_rsvd, level, nx, gbpages, pse, amd), reset_guest_rsvds_bits_mask calling "
         "guest_can_use(vcpu, X86_FEATURE_GBPAGES) and guest_cpuid_is_amd_or_hygon",
         f"stored {NEW}", True),
    Fact("56ea38e436ea98bff62e1e9433fd53bcdeb53254", "commit",
         "torvalds/linux at this commit: the same reserved-bit functions as the kvm-x86 copy "
         "at 8cd6d6724eae, line for line",
         f"stored {TV}", True),
    Fact("005ba37cb89bcc0cf63c2029a41f8db165aeb615", "commit",
         "torvalds/linux at this commit: an older mmu.c (kvm_x86_ops->, context->nx, "
         "shadow_root_level) whose __reset_rsvds_bits_mask takes maxphyaddr and still "
         "reserves AMD bit 8 in non-leaf PDPTEs",
         f"stored {OLD}", True),
    # --- helpers ---------------------------------------------------------------------
    Fact("rsvd.rsvd_bits", "function",
         "rsvd_bits(s, e) in arch/x86/kvm/mmu.h is the mask of bits s..e inclusive, "
         "((2ULL << (e - s)) - 1) << s, and 0 when e < s",
         MMU_H, True),
    Fact("rsvd.is_rsvd_bits_set", "function",
         "spte.h: get_rsvd_bits picks rsvd_bits_mask[(pte >> 7) & 1][level - 1]; "
         "__is_rsvd_bits_set is pte & that mask; __is_bad_mt_xwr is bad_mt_xwr & "
         "BIT_ULL(pte & 0x3f); is_rsvd_spte is the OR of the two",
         SPTE_H, True),
    Fact("rsvd.is_cpuid_PSE36", "function",
         "is_cpuid_PSE36() in mmu.c returns 1 unconditionally, so the 32-bit-only branch "
         "(rsvd_bits(13, 21) for a 4 MiB PDE) is never taken",
         TV, True),
    # --- __reset_rsvds_bits_mask, line by line --------------------------------------------
    Fact("rsvd.high-bits", "behaviour",
         "__reset_rsvds_bits_mask: high_bits_rsvd is pa_bits_rsvd & rsvd_bits(0, 62) at "
         "PT32E_ROOT_LEVEL and pa_bits_rsvd & rsvd_bits(0, 51) otherwise; without nx it also "
         "gets rsvd_bits(63, 63); bad_mt_xwr is set to 0",
         BOTH, True),
    Fact("rsvd.32bit", "behaviour",
         "__reset_rsvds_bits_mask, PT32_ROOT_LEVEL: [0][1], [0][0] and [1][0] are 0; [1][1] "
         "is 0 without pse, rsvd_bits(17, 21) with PSE-36, rsvd_bits(13, 21) without it; "
         "MAXPHYADDR and NX play no part; levels 3 to 5 are not assigned",
         BOTH, True),
    Fact("rsvd.pae", "behaviour",
         "__reset_rsvds_bits_mask, PT32E_ROOT_LEVEL: [0][2] = rsvd_bits(63, 63) | high | "
         "rsvd_bits(5, 8) | rsvd_bits(1, 2) (the PDPTE); [0][1] = [0][0] = high; [1][1] = "
         "high | rsvd_bits(13, 20); [1][0] = [0][0]; [1][2] and the level-4/5 slots are "
         "not assigned at all (the model stores 0 there; no walk consults them)",
         BOTH, True),
    Fact("rsvd.64bit", "behaviour",
         "__reset_rsvds_bits_mask, 5 then (fallthrough) 4 levels: [0][4] = [1][4] and "
         "[0][3] = [1][3] = high | nonleaf_bit8 | rsvd_bits(7, 7); [0][2] = high | "
         "gbpages_bit (no bit 8); [0][1] = [0][0] = [1][0] = high; [1][2] = high | "
         "gbpages_bit | rsvd_bits(13, 29); [1][1] = high | rsvd_bits(13, 20); gbpages_bit "
         "is rsvd_bits(7, 7) without gbpages",
         BOTH, True),
    Fact("rsvd.amd-bit8", "behaviour",
         "__reset_rsvds_bits_mask reserves bit 8 (nonleaf_bit8_rsvd) only in the level-5 "
         "and level-4 rows when amd is set; PDPTEs lost it in 2020",
         BOTH, True),
    Fact("5ecad245de2ae23dc4e2dbece92f8ccfbaed2fa7", "commit",
         "'KVM: x86: bit 8 of non-leaf PDPEs is not reserved' (Paolo Bonzini, posted 30 Jun "
         "2020, in the 5.8 fixes, Cc stable) removes nonleaf_bit8_rsvd from "
         "rsvd_bits_mask[0][2]: AMD ignores bit 8 in PDEs and PDPEs and reserves it in "
         "PML4Es; Fixes a0c0feb57992 (2014)",
         "list mail 20200630111005.457029-1-pbonzini@redhat.com and the 4.4/4.9/4.14 stable "
         "backports ('commit 5ecad245de2ae23dc4e2dbece92f8ccfbaed2fa7 upstream')", True),
    Fact("20200630111005.457029-1-pbonzini@redhat.com", "message-id",
         "[PATCH] KVM: x86: bit 8 of non-leaf PDPEs is not reserved, Paolo Bonzini, "
         "Tue, 30 Jun 2020 07:10:05 -0400",
         "stored stable@vger.kernel.org mail", True),
    Fact("a0c0feb57992", "commit",
         "'KVM: x86: reserve bit 8 of non-leaf PDPEs and PML4Es in 64-bit mode on AMD' "
         "(2014-09-03), named in the Fixes: tag of 5ecad245de2a",
         "list mail 20200630111005.457029-1-pbonzini@redhat.com (Fixes: line)", True),
    Fact("rsvd.reset_guest_rsvds_bits_mask", "function",
         "reset_guest_rsvds_bits_mask passes vcpu->arch.reserved_gpa_bits, "
         "cpu_role.base.level, is_efer_nx, guest_can_use(vcpu, X86_FEATURE_GBPAGES), "
         "is_cr4_pse and guest_cpuid_is_amd_or_hygon; reset_guest_paging_metadata calls it "
         "only when CR0.PG is set",
         BOTH, True),
    Fact("20240405235603.1173076-2-seanjc@google.com", "message-id",
         "'KVM: x86: Snapshot if a vCPU's vendor model is AMD vs. Intel compatible' (Sean "
         "Christopherson, Cc stable) adds vcpu->arch.is_amd_compatible and switches "
         "reset_guest_rsvds_bits_mask to guest_cpuid_is_amd_compatible",
         "stored kvm@vger.kernel.org repost of the patch (series "
         "20240506053020.3911940-1-mizhang@google.com)", True),
    Fact("20240517173926.965351-37-seanjc@google.com", "message-id",
         "'KVM: x86: Rename \"governed features\" helpers to use \"guest_cpu_cap\"' renames "
         "guest_can_use to guest_cpu_cap_has in reset_guest_rsvds_bits_mask and "
         "reset_shadow_zero_bits_mask; its context shows kvm_vcpu_after_set_cpuid granting "
         "GBPAGES from boot_cpu_has(X86_FEATURE_GBPAGES) under TDP and from guest CPUID "
         "otherwise",
         "stored review reply 8de7b84a-ba77-4df0-9cec-8478f56222bb@linux.intel.com quoting "
         "the patch", True),
    Fact("rsvd.gbpages-governed", "behaviour",
         "kvm_vcpu_after_set_cpuid (arch/x86/kvm/cpuid.c) grants the governed GBPAGES "
         "feature from boot_cpu_has(X86_FEATURE_GBPAGES) when tdp_enabled and from the "
         "guest's CPUID otherwise; the reserved-bit resets read that governed value",
         "context lines of the guest_cpu_cap rename patch quoted in "
         "8de7b84a-ba77-4df0-9cec-8478f56222bb@linux.intel.com", True),
    Fact("8de7b84a-ba77-4df0-9cec-8478f56222bb@linux.intel.com", "message-id",
         "Binbin Wu's Reviewed-by reply (22 May 2024) quoting the guest_cpu_cap rename patch",
         "stored kvm@vger.kernel.org mail", True),
    Fact("20240506053020.3911940-1-mizhang@google.com", "message-id",
         "cover letter of the v2 passthrough-PMU series that reposts the AMD-compatible "
         "snapshot patch as 02/54",
         "In-Reply-To of the stored repost", True),
    # --- EPT ------------------------------------------------------------------------
    Fact("rsvd.ept", "behaviour",
         "__reset_rsvds_bits_mask_ept(rsvd_check, pa_bits_rsvd, execonly, huge_page_level): "
         "high = pa_bits_rsvd & rsvd_bits(0, 51); bit 7 is large_1g_rsvd below PG_LEVEL_1G "
         "and large_2m_rsvd below PG_LEVEL_2M; [0][4] = [0][3] = high | rsvd_bits(3, 7); "
         "[0][2] = high | rsvd_bits(3, 6) | large_1g; [0][1] = high | rsvd_bits(3, 6) | "
         "large_2m; [0][0] = high; [1][4], [1][3], [1][0] copy row 0; [1][2] = high | "
         "rsvd_bits(12, 29) | large_1g; [1][1] = high | rsvd_bits(12, 20) | large_2m",
         BOTH, True),
    Fact("rsvd.bad_mt_xwr", "behaviour",
         "__reset_rsvds_bits_mask_ept: bad_mt_xwr has bytes 2, 3 and 7 all set (memory types "
         "2, 3, 7), REPEAT_BYTE(1 << 2) and REPEAT_BYTE(1 << 6) (XWR 010 and 110), and "
         "REPEAT_BYTE(1 << 4) (XWR 100) unless execonly",
         BOTH, True),
    Fact("rsvd.nested-ept-lpage-level", "function",
         "nested_ept_new_eptp (arch/x86/kvm/vmx/nested.c) passes execonly = L1's "
         "nested.msrs.ept_caps & VMX_EPT_EXECUTE_ONLY_BIT and huge_page_level = "
         "ept_caps_to_lpage_level(those caps) to kvm_init_shadow_ept_mmu, which hands them "
         "to reset_rsvds_bits_mask_ept for the guest check",
         "stored vmx/nested.c copies (find_string ids 29245454411, 36565681)", True),
    Fact("rsvd.ept-huge-page-level-added", "behaviour",
         "the older mmu.c has no huge_page_level argument: EPT bit 7 is never reserved "
         "there, and it takes maxphyaddr instead of pa_bits_rsvd",
         OLD, True),
    # --- PDPTEs on CR3 load ---------------------------------------------------------
    Fact("rsvd.pdptr_rsvd_bits", "function",
         "load_pdptrs (arch/x86/kvm/x86.c) rejects a present PDPTE that has any bit of "
         "pdptr_rsvd_bits(vcpu) = reserved_gpa_bits | rsvd_bits(5, 8) | rsvd_bits(1, 2), "
         "not the MMU's rsvd_bits_mask",
         "stored x86.c (find_string id 10336674) and stored patch mails", True),
    # --- the host's zero checks -----------------------------------------------------
    Fact("rsvd.reserved_hpa_bits", "function",
         "reserved_hpa_bits() is rsvd_bits(shadow_phys_bits, 63): the zero checks use the "
         "host MAXPHYADDR",
         BOTH, True),
    Fact("rsvd.reset_shadow_zero_bits_mask", "function",
         "reset_shadow_zero_bits_mask: WARN if root_role.level < 3; __reset_rsvds_bits_mask "
         "with reserved_hpa_bits(), root_role.level, root_role.efer_nx, guest_can_use(vcpu, "
         "GBPAGES), is_pse = false, is_amd = true; then, if shadow_me_mask, for every level "
         "below root_role.level both rows |= shadow_me_mask and &= ~shadow_me_value",
         BOTH, True),
    Fact("rsvd.reset_tdp_shadow_zero_bits_mask", "function",
         "reset_tdp_shadow_zero_bits_mask: if boot_cpu_is_amd() (shadow_x_mask == 0) "
         "__reset_rsvds_bits_mask(reserved_hpa_bits(), root_role.level, nx true, "
         "boot_cpu_has(GBPAGES), pse false, amd true), else __reset_rsvds_bits_mask_ept("
         "reserved_hpa_bits(), execonly false, max_huge_page_level); then, if "
         "shadow_me_mask, both rows &= ~shadow_me_mask for every level of the root",
         BOTH, True),
    Fact("rsvd.reset_ept_shadow_zero_bits_mask", "function",
         "reset_ept_shadow_zero_bits_mask(context, execonly) is __reset_rsvds_bits_mask_ept "
         "with reserved_hpa_bits(), L1's execonly and max_huge_page_level; called from "
         "kvm_init_shadow_ept_mmu after reset_rsvds_bits_mask_ept",
         BOTH, True),
    Fact("rsvd.zero-checks-older", "behaviour",
         "in the older mmu.c reset_shadow_zero_bits_mask passed uses_nx = context->nx || "
         "smep_andnot_wp and is_pse(vcpu), and only cleared shadow_me_mask; "
         "reset_tdp_shadow_zero_bits_mask on AMD passed nx false and pse true",
         OLD, True),
    Fact("rsvd.sme-me-value", "behaviour",
         "svm_hardware_setup calls kvm_mmu_set_me_spte_mask(sme_me_mask, sme_me_mask); "
         "kvm_mmu_set_me_spte_mask WARNs and zeroes both unless me_value is a subset of "
         "me_mask",
         "stored svm.c patch context and spte.c (find_string ids 10766211624, 145976604)",
         True),
)
