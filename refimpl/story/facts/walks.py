"""Facts behind the guest-walk and nested-paging chapters.

``book/walking.md``, ``errors_ad.md``, ``permissions.md``, ``reserved_bits.md``,
``ept_npt.md``, ``nested_paging.md``, ``nested_faults.md`` and
``who_walks_what.md`` name these KVM functions, files and behaviours. Each was
read in a stored copy: ``torvalds/linux`` (the classic tree; its
``paging_tmpl.h`` still builds the EPT exit qualification from
``vcpu->arch.exit_qualification``), ``kvm-x86/linux`` (the newest tree, where
the walker takes a ``struct kvm_pagewalk``), list mails carrying patches, and
``kvm-unit-tests/kvm-unit-tests``. Keys start with ``walks/`` so that they
cannot collide with another part's entries.
"""

from refimpl.story.facts import Fact

_TMPL = "arch/x86/kvm/mmu/paging_tmpl.h"
_CLASSIC = f"torvalds/linux, stored {_TMPL}"
_NEWEST = f"kvm-x86/linux, stored {_TMPL}"

FACTS = (
    # -- walking.md -----------------------------------------------------------------
    Fact("walks/paging_tmpl-three-copies", "file",
         "paging_tmpl.h is compiled for PTTYPE 64, 32 and PTTYPE_EPT, giving paging64_*, "
         "paging32_* and ept_* walkers; its per-type block defines pt_element_t, "
         "PT_LEVEL_BITS, PT_GUEST_ACCESSED_SHIFT and PT_GUEST_DIRTY_SHIFT",
         f"{_CLASSIC} (top of file); {_NEWEST}", True),
    Fact("walks/walk-helpers", "function",
         "FNAME(walk_addr_generic) with the per-format helpers FNAME(is_present_gpte), "
         "FNAME(gpte_access), FNAME(is_last_gpte), FNAME(is_rsvd_bits_set), "
         "FNAME(update_accessed_dirty_bits) and FNAME(protect_clean_gpte)",
         f"{_CLASSIC}; {_NEWEST}", True),
    Fact("walks/walk-root", "behaviour",
         "The walk starts at cpu_role.base.level from mmu->get_guest_pgd; at the PAE root "
         "level it takes the entry from mmu->get_pdptr((addr >> 30) & 3), without reading "
         "the PDPT again",
         f"{_CLASSIC} (walk_addr_generic, retry_walk)", True),
    Fact("walks/load_pdptrs", "function",
         "load_pdptrs (arch/x86/kvm/x86.c) reads the four PDPTEs at CR3 bits 11:5 of the "
         "PDPT page, fails if a present one has a reserved bit (MAXPHYADDR and above, 8:5, "
         "2:1), and otherwise stores them in pdptrs[4]; kvm_set_cr3, kvm_set_cr0 and "
         "kvm_set_cr4 call it and a failure makes the register write raise #GP. The walker "
         "then uses the stored copy: KVM does not re-read PDPTEs per translation",
         "torvalds/linux arch/x86/kvm/x86.c (load_pdptrs, pdptr_rsvd_bits) as stored in "
         "list mails of the x86.c history; newest tree's load_pdptrs and kvm_set_cr3", True),
    Fact("walks/pse36", "behaviour",
         "PSE-36 is KVM's choice, not a CPUID test: is_cpuid_PSE36() returns 1, and "
         "pse36_gfn_delta shifts PDE bits 16:13 (PT32_DIR_PSE36_MASK: size 4, shift 13) "
         "by 7 into gfn bits 23:20, i.e. physical-address bits 35:32. Defined in mmu.c in "
         "older trees, in paging_tmpl.h's 32-bit block in the newest",
         f"torvalds/linux arch/x86/kvm/mmu/mmu.c (stored); {_NEWEST}", True),
    Fact("walks/canonical-in-emulator", "function",
         "The emulator's __linearize (arch/x86/kvm/emulate.c) rejects a non-canonical linear "
         "address in 64-bit mode before any walk",
         "torvalds/linux arch/x86/kvm/emulate.c (stored, __linearize)", True),
    Fact("walks/gva_to_gpa", "function",
         "kvm_mmu_gva_to_gpa_read and friends (x86.c) call walk_mmu->gva_to_gpa; "
         "nonpaging_gva_to_gpa (mmu.c) serves CR0.PG=0",
         "torvalds/linux arch/x86/kvm/x86.c (stored v6.12 segment)", True),
    # -- errors_ad.md ---------------------------------------------------------------------
    Fact("walks/fetch-bit", "behaviour",
         "The walker's error path ORs W and U from the access, and F only if EFER.NX or "
         "CR4.SMEP (is_efer_nx || is_cr4_smep; has_pferr_fetch() in the newest tree), in "
         "every paging mode",
         f"{_CLASSIC} (error:); {_NEWEST} (error:)", True),
    Fact("walks/ad-after-permission", "behaviour",
         "update_accessed_dirty_bits runs only after permission_fault passes, uses a "
         "compare-and-exchange on guest memory, and a changed entry restarts the walk",
         f"{_CLASSIC}", True),
    Fact("walks/access-c-pde-a", "behaviour",
         "kvm-unit-tests' x86/access.c treats the PDE's A bit as don't-care when it was "
         "clear and the access faults (at->ignore_pde = PT_ACCESSED_MASK)",
         "kvm-unit-tests/kvm-unit-tests x86/access.c (ac_emulate_access)", True),
    Fact("walks/kvm_inject_emulated_page_fault", "function",
         "kvm_inject_emulated_page_fault (x86.c) picks vcpu->arch.mmu for a nested page "
         "fault and walk_mmu otherwise, invalidates the address when P=1 and RSVD=0, and "
         "calls that MMU's inject_page_fault",
         "torvalds/linux arch/x86/kvm/x86.c (stored)", True),
    # -- permissions.md -------------------------------------------------------------------
    Fact("walks/refresh-passthrough-bits", "function",
         "kvm_mmu_refresh_passthrough_bits (mmu.h, 2023) refreshes CR0.WP-dependent state "
         "before permission_fault, since with TDP a CR0.WP change no longer resets the MMU",
         "list mail of Apr 2023 (Sean Christopherson, Mathias Krause) adding "
         "__kvm_mmu_refresh_passthrough_bits; later mmu.h", True),
    Fact("walks/cr4_pke-long-mode", "behaviour",
         "The role's ext.cr4_pke is EFER.LMA && CR4.PKE ('PKEY and LA57 are active iff long "
         "mode is active'), and update_pkru_bitmask leaves pkru_mask 0 without it",
         "torvalds/linux arch/x86/kvm/mmu/mmu.c (stored, kvm_calc_cpu_role / "
         "kvm_calc_mmu_role_ext)", True),
    Fact("walks/kvm_page_format", "file",
         "In the newest tree the permission table lives in struct kvm_page_format "
         "(arch/x86/include/asm/kvm_host.h) as u16 permissions[16], beside pkru_mask, "
         "rsvd_bits_mask and bad_mt_xwr",
         "kvm-x86/linux arch/x86/include/asm/kvm_host.h (stored)", True),
    # -- reserved_bits.md -----------------------------------------------------------------
    Fact("walks/rsvd-amd-bit8", "behaviour",
         "__reset_rsvds_bits_mask reserves bit 8 of non-leaf PML4Es and PML5Es when its "
         "amd flag is set (not of PDPTEs: corrected, see rsvd.amd-bit8)",
         "torvalds/linux arch/x86/kvm/mmu/mmu.c (stored)", True),
    Fact("walks/is_rsvd_bits_set-file", "file",
         "__is_rsvd_bits_set and __is_bad_mt_xwr are inline helpers in "
         "arch/x86/kvm/mmu/spte.h (bad_mt_xwr indexed by the entry's bits 5:0)",
         "torvalds/linux arch/x86/kvm/mmu/spte.h (stored)", True),
    # -- ept_npt.md / nested_paging.md --------------------------------------------------
    Fact("walks/translate_nested_gpa", "function",
         "kvm_translate_gpa is an inline in arch/x86/kvm/mmu.h that forwards to "
         "translate_nested_gpa when the walking MMU is nested_mmu; translate_nested_gpa is "
         "defined in arch/x86/kvm/x86.c, ORs PFERR_USER_MASK ('NPT walks are always "
         "user-walks') and calls vcpu->arch.mmu->gva_to_gpa",
         "torvalds/linux arch/x86/kvm/mmu.h and x86.c (stored)", True),
    Fact("walks/nested_access", "behaviour",
         "The walker translates each table's gfn with nested_access = U, plus W when the "
         "walked format has A/D bits (PT_HAVE_ACCESSED_DIRTY), and the final gfn with the "
         "access itself",
         f"{_CLASSIC}; {_NEWEST}", True),
    Fact("walks/kvm_init_shadow_npt_mmu", "function",
         "nested_svm_init_mmu_context calls kvm_init_shadow_npt_mmu with CR0 = X86_CR0_PG "
         "and L1's CR4 and EFER from vmcb01; kvm_init_shadow_npt_mmu clears CR4.PKE",
         "torvalds/linux arch/x86/kvm/svm/nested.c and mmu/mmu.c (stored)", True),
    Fact("walks/kvm_init_shadow_ept_mmu", "function",
         "kvm_init_shadow_ept_mmu builds the EPT permission table "
         "(update_permission_bitmask with ept=true), sets pkru_mask = 0 and fills the EPT "
         "reserved-bit masks",
         "torvalds/linux arch/x86/kvm/mmu/mmu.c (stored)", True),
    Fact("walks/nested_svm_inject_npf_exit", "function",
         "nested_svm_inject_npf_exit (svm/nested.c) builds SVM_EXIT_NPF with exit_info_1 "
         "bit 32 set ('TODO: track the cause') unless the current exit is already #NPF, "
         "puts the error code in the low 32 bits and the address in exit_info_2",
         "torvalds/linux arch/x86/kvm/svm/nested.c (stored)", True),
    # -- nested_faults.md -------------------------------------------------------------
    Fact("walks/ept-exit-qual-bits-7-8", "behaviour",
         "In the classic tree bits 8:7 (GVA_IS_VALID, GVA_TRANSLATED) of the EPT violation "
         "that KVM reflects to L1 are those of the real exit being handled: the EPT "
         "walker's error path keeps only those bits of vcpu->arch.exit_qualification, "
         "saved by handle_ept_violation, and a 2024 rework moved the same masking of "
         "vmx_get_exit_qual() into nested_ept_inject_page_fault (vmx/nested.c). The walker "
         "supplies bits 2:0 from the access and 5:3 from the EPT rights it ANDed",
         f"{_CLASSIC} (error:, PTTYPE_EPT); list mail of the 2024 patch to "
         "nested_ept_inject_page_fault and handle_ept_violation", True),
    Fact("walks/ept-exit-qual-newest", "behaviour",
         "In the newest tree the EPT walker sets one of ACC_WRITE, ACC_INSTR or ACC_READ "
         "from the access, always GVA_IS_VALID, ACC_READ for a paging-structure access "
         "(PFERR_GUEST_PAGE_MASK) and GVA_TRANSLATED otherwise",
         f"{_NEWEST} (error:, PTTYPE_EPT)", True),
)
