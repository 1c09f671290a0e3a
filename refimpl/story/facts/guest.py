"""Facts behind the ``KVM`` sections of ``refimpl.guest``, ``refimpl.fast`` and ``refimpl.bits``.

Every function, macro, struct and file that a docstring of those modules
names was looked up in a stored copy of the kernel: ``torvalds/linux``
(``arch/x86/kvm/mmu/paging_tmpl.h``, ``mmu/mmu.c``, ``mmu/spte.h`` and
``arch/x86/kvm/mmu.h`` read in full or around the name), or, for files read
only through a search, the excerpt that shows the definition with its file.
Keys start with ``guest/`` so that they cannot collide with another part's
entries. The audit corrected four docstrings; those entries say so.
"""

from refimpl.story.facts import Fact

_LINUX = "torvalds/linux, stored"
_TMPL = f"{_LINUX} arch/x86/kvm/mmu/paging_tmpl.h"
_MMU_C = f"{_LINUX} arch/x86/kvm/mmu/mmu.c"
_MMU_H = f"{_LINUX} arch/x86/kvm/mmu.h"
_SPTE_H = f"{_LINUX} arch/x86/kvm/mmu/spte.h"
_SEARCH = "stored public source, found by exact-string search"

FACTS = (
    # -- paging_tmpl.h: the walker (refimpl.guest.walker, formats, fast/*) ----------
    Fact("guest/paging_tmpl-three-copies", "file",
         "paging_tmpl.h is compiled three times (PTTYPE 64, 32 and PTTYPE_EPT, the last with "
         "FNAME(name) = ept_##name, so the EPT walker is ept_walk_addr_generic); its "
         "per-type block defines pt_element_t, PT_LEVEL_BITS (9 or 10), "
         "PT_GUEST_ACCESSED_SHIFT and PT_GUEST_DIRTY_SHIFT (8 and 9 for EPT)",
         f"{_TMPL} (top of file); {_MMU_C} (the three #include lines)", True),
    Fact("guest/PT_INDEX", "function",
         "PT_BASE_ADDR_MASK and PT_INDEX(addr, lvl), the latter through __PT_INDEX with "
         "PT_LEVEL_BITS, are defined in paging_tmpl.h",
         _TMPL, True),
    Fact("guest/walk_addr_generic", "function",
         "FNAME(walk_addr_generic) walks from mmu->get_guest_pgd (PAE: mmu->get_pdptr), "
         "translates each table through kvm_translate_gpa with nested_access (U, plus W "
         "when the format has A/D), ANDs pte_access with NX inverted, stops on "
         "!is_present_gpte or is_rsvd_bits_set (errcode RSVD|P), ends at is_last_gpte, "
         "calls permission_fault, translates the final gfn, applies protect_clean_gpte on "
         "a read, and calls update_accessed_dirty_bits only when an A (or, on a write, D) "
         "bit is missing; its error: label adds W and U, and F when EFER.NX or CR4.SMEP",
         f"{_TMPL} (FNAME(walk_addr_generic))", True),
    Fact("guest/walker-helpers", "function",
         "paging_tmpl.h defines FNAME(is_present_gpte), FNAME(gpte_access), "
         "FNAME(is_last_gpte), FNAME(is_rsvd_bits_set), FNAME(protect_clean_gpte), "
         "FNAME(update_accessed_dirty_bits) and FNAME(gva_to_gpa)",
         _TMPL, True),
    Fact("guest/pse36_gfn_delta", "function",
         "pse36_gfn_delta is defined in paging_tmpl.h for PTTYPE == 32 only, and the walk "
         "adds it to a large 32-bit leaf when is_cpuid_PSE36(). The docstring of "
         "refimpl.guest.formats.pse36_addr said mmu.c; corrected",
         _TMPL, True),
    # -- mmu.c: contexts, reserved bits, permission tables --------------------------
    Fact("guest/mmu-context-functions", "function",
         "mmu.c defines kvm_calc_cpu_role, shadow_mmu_init_context, init_kvm_nested_mmu, "
         "kvm_init_shadow_npt_mmu (which clears X86_CR4_PKE from the CR4 it is given) and "
         "kvm_init_shadow_ept_mmu (update_permission_bitmask(context, true), pkru_mask = "
         "0, reset_rsvds_bits_mask_ept); nonpaging_gva_to_gpa is the gva_to_gpa of a "
         "context without paging",
         _MMU_C, True),
    Fact("guest/reserved-bit-functions", "function",
         "mmu.c defines __reset_rsvds_bits_mask (using is_cpuid_PSE36 for the 4 MiB PDE), "
         "reset_guest_rsvds_bits_mask and __reset_rsvds_bits_mask_ept",
         _MMU_C, True),
    Fact("guest/permission-tables", "function",
         "mmu.c defines BYTE_MASK, update_permission_bitmask(mmu, ept) and "
         "update_pkru_bitmask(mmu); reset_guest_paging_metadata calls the reserved-bit "
         "reset and both",
         _MMU_C, True),
    # -- mmu.h, spte.h ---------------------------------------------------------------
    Fact("guest/permission_fault", "function",
         "permission_fault is a static inline in arch/x86/kvm/mmu.h: the not-SMAP bit "
         "takes the place of PFERR_RSVD in the index, and pkru_mask is indexed by the "
         "error code with RSVD replaced by the page's U bit",
         _MMU_H, True),
    Fact("guest/kvm_translate_gpa", "function",
         "kvm_translate_gpa is a static inline in arch/x86/kvm/mmu.h that calls "
         "translate_nested_gpa only for the nested_mmu; translate_nested_gpa is declared "
         "there and defined in arch/x86/kvm/x86.c, where it ORs PFERR_USER_MASK into the "
         "access (NPT walks are user walks). The docstring of "
         "refimpl.guest.ept.npt_translate placed translate_nested_gpa in mmu.h; corrected",
         f"{_MMU_H}; {_SEARCH} (x86.c diff context of translate_nested_gpa)", True),
    Fact("guest/rsvd-checks", "function",
         "__is_rsvd_bits_set and __is_bad_mt_xwr are static inlines in "
         "arch/x86/kvm/mmu/spte.h. The docstring of RsvdBitsValidate said mmu.h / mmu.c; "
         "corrected",
         _SPTE_H, True),
    Fact("guest/ACC-masks", "function",
         "spte.h defines ACC_EXEC_MASK 1, ACC_WRITE_MASK PT_WRITABLE_MASK, ACC_USER_MASK "
         "PT_USER_MASK and ACC_ALL",
         _SPTE_H, True),
    # -- x86.c, nested VMX/SVM, headers ---------------------------------------------
    Fact("guest/load_pdptrs", "function",
         "load_pdptrs(vcpu, cr3) is in arch/x86/kvm/x86.c",
         f"{_SEARCH} (x86.c diff context and definition)", True),
    Fact("guest/cr-checks", "function",
         "kvm_set_cr0 and kvm_is_valid_cr4 are in arch/x86/kvm/x86.c",
         f"{_SEARCH} (x86.c diff headers)", True),
    Fact("guest/nested-injection", "function",
         "nested_ept_inject_page_fault is in arch/x86/kvm/vmx/nested.c; "
         "nested_svm_inject_npf_exit and nested_svm_get_tdp_pdptr are in "
         "arch/x86/kvm/svm/nested.c; handle_ept_violation is in arch/x86/kvm/vmx/vmx.c",
         f"{_SEARCH} (diff headers of those files)", True),
    Fact("guest/x86_exception", "file",
         "struct x86_exception (vector, error_code, address, nested_page_fault) is "
         "declared in arch/x86/kvm/kvm_emulate.h. The docstring of "
         "refimpl.guest.faults.Fault said kvm_host.h; corrected",
         f"{_SEARCH} (kvm_emulate.h diff context)", True),
    Fact("guest/PFERR-masks", "function",
         "kvm_host.h defines PFERR_*_MASK, PFERR_GUEST_FINAL_MASK (bit 32), "
         "PFERR_GUEST_PAGE_MASK (bit 33) and KVM's synthetic PFERR_IMPLICIT_ACCESS "
         "(bit 48)",
         f"{_SEARCH} (arch/x86/include/asm/kvm_host.h diff context)", True),
    Fact("guest/kvm_pagewalk", "function",
         "A patch series splits the guest-walk half of struct kvm_mmu into struct "
         "kvm_pagewalk and struct kvm_page_format; seen in shortlogs and a header, not "
         "located in a stored torvalds/linux tree",
         f"{_SEARCH} ('struct kvm_pagewalk', 'struct kvm_page_format')", False),
)
