"""Facts behind :func:`refimpl.guest.nested.nested_translate`, one per rule.

Each rule of the two-dimensional walk was re-derived from KVM's source,
line by line, in these stored copies (commit prefixes kept to ten digits):

* the classic tree: ``torvalds/linux`` ``arch/x86/kvm/mmu/paging_tmpl.h`` at
  007a369fba (the v6.0-era walker: ``struct kvm_mmu``, ``cpu_role``,
  ``UNMAPPED_GVA``, ``vcpu->arch.exit_qualification``);
* the newest tree: ``kvm-x86/linux`` ``paging_tmpl.h`` at 115f9405a2 (the
  walker over ``struct kvm_pagewalk``, with ``gva_walk`` and ``ngpa_walk``),
  ``svm/nested.c`` and ``vmx/nested.c`` at 1a27afa051;
* ``arch/x86/kvm/x86.c`` (``load_pdptrs``, ``translate_nested_gpa``,
  ``kvm_set_cr3``) and ``arch/x86/kvm/mmu/mmu.c`` (``nonpaging_gva_to_gpa``,
  ``kvm_calc_shadow_ept_root_page_role``) as stored in 6.x copies and in
  list mails carrying patches to them.

The model follows the newest tree where the two differ; the claim says so.
Keys start with ``nested.`` so that they cannot collide with another part's.
"""

from refimpl.story.facts import Fact

_TMPL = "arch/x86/kvm/mmu/paging_tmpl.h"
_CLASSIC = f"torvalds/linux {_TMPL} at 007a369fba (stored)"
_NEWEST = f"kvm-x86/linux {_TMPL} at 115f9405a2 (stored)"
_X86 = "arch/x86/kvm/x86.c as stored (6.x copies, and list-mail patches to load_pdptrs)"
_MMU = "arch/x86/kvm/mmu/mmu.c as stored (6.x copies, and list-mail patches)"

FACTS = (
    # -- the shape of the walk --------------------------------------------------------
    Fact("nested.table-gpa-translated", "behaviour",
         "Before reading each of L2's tables, walk_addr_generic translates the table's page "
         "(gfn_to_gpa(table_gfn), page-aligned) with kvm_translate_gpa, then reads the entry "
         "at the resulting L1 page plus the entry's offset",
         f"{_CLASSIC} (walk_addr_generic); {_NEWEST}", True),
    Fact("nested.final-gpa-translated", "behaviour",
         "After the permission check passes, the final frame (gfn_to_gpa(gfn), page-aligned, "
         "PSE-36 bits included) is translated with the access itself; the offset is added "
         "back by gva_to_gpa (gpa |= addr & ~PAGE_MASK)",
         f"{_CLASSIC} (walk_addr_generic, FNAME(gva_to_gpa)); {_NEWEST}", True),
    Fact("nested.inner-failure-returns", "behaviour",
         "When kvm_translate_gpa fails (UNMAPPED_GVA / INVALID_GPA), walk_addr_generic returns "
         "0 at once with walker->fault as filled by the inner walk: no L2 error code is built "
         "and no L2 A/D bit is set",
         f"{_CLASSIC}; {_NEWEST}", True),
    Fact("nested.no-memslot-is-l2-pf", "behaviour",
         "A table whose translated L1 gfn has no (visible) memslot ends the walk at error: "
         "with errcode 0 plus W/U (F per role): a #PF for L2 with P=0",
         f"{_CLASSIC} (kvm_vcpu_gfn_to_hva_prot, goto error); {_NEWEST} "
         "(kvm_is_visible_memslot)", True),
    # -- inner access bits ------------------------------------------------------------
    Fact("nested.inner-access-user", "behaviour",
         "translate_nested_gpa ORs PFERR_USER_MASK into every inner access ('NPT walks are "
         "always user-walks'); the EPT walker reads U as 'readable'",
         f"{_X86} (translate_nested_gpa); {_CLASSIC} (FNAME(gpte_access), PTTYPE_EPT)", True),
    Fact("nested.inner-access-tables", "behaviour",
         "Tables are translated with nested_access = (have_ad ? W : 0) | U, where have_ad is "
         "that of L2's own format (PT_HAVE_ACCESSED_DIRTY is true for the 32- and 64-bit "
         "copies), so every table access is W|U whatever L1's EPTP A/D bit; a FIXME notes "
         "that hardware treats PDPTE loads as reads. The newest tree adds "
         "PFERR_GUEST_PAGE_MASK",
         f"{_CLASSIC}; {_NEWEST}", True),
    Fact("nested.inner-access-final", "behaviour",
         "The final page is translated with the L2 access itself (W, U, F as given); the "
         "newest tree adds PFERR_GUEST_FINAL_MASK",
         f"{_CLASSIC}; {_NEWEST}", True),
    # -- A/D --------------------------------------------------------------------------
    Fact("nested.l2-ad-after-final", "behaviour",
         "L2's A/D bits are set by update_accessed_dirty_bits only after the final "
         "translation succeeded (it runs after kvm_translate_gpa of the final gfn), through "
         "the host mapping of the L1 page, not through another EPT/NPT walk",
         f"{_CLASSIC} (walk_addr_generic, update_accessed_dirty_bits); {_NEWEST}", True),
    Fact("nested.l1-ad-per-inner-walk", "behaviour",
         "Each inner walk that succeeds sets A in L1's EPT entries (when the EPTP enables A/D) "
         "or NPT entries, and D in the leaf when its access has W: so table translations, "
         "made with W, dirty the EPT/NPT leaves of L2's table pages; a failed inner walk "
         "sets none",
         f"{_CLASSIC} (update_accessed_dirty_bits, PT_HAVE_ACCESSED_DIRTY for PTTYPE_EPT)", True),
    # -- the EPT walker's own error code and exit qualification -----------------------
    Fact("nested.ept-role-no-nx-smep", "behaviour",
         "kvm_calc_shadow_ept_root_page_role starts from a zeroed role and sets ext.word = 0 "
         "('EPT, and thus nested EPT, does not consume CR0, CR4, nor EFER'): efer_nx and "
         "cr4_smep are clear in the EPT walker's role",
         f"{_MMU} (kvm_calc_shadow_ept_root_page_role); list mail 'do not incorporate CR0/CR4 "
         "bits into the role for the nested EPT MMU'", True),
    Fact("nested.ept-errcode", "behaviour",
         "The EPT walker's error code is RSVD|P for a misconfiguration, P for a rights fault, "
         "0 for not present, ORed with W and U from the access; F is added only if "
         "is_efer_nx || is_cr4_smep (has_pferr_fetch in the newest tree), which the EPT role "
         "never has without MBEC, so an EPT walk's error code never has F",
         f"{_CLASSIC} (error:); {_NEWEST} (error:)", True),
    Fact("nested.ept-misconfig-vs-violation", "behaviour",
         "RSVD in the EPT walker's error code makes nested_ept_inject_page_fault exit with "
         "EXIT_REASON_EPT_MISCONFIG (exit qualification 0), anything else with "
         "EXIT_REASON_EPT_VIOLATION; guest_physical_address = fault->address",
         "kvm-x86/linux arch/x86/kvm/vmx/nested.c at 1a27afa051 (stored; "
         "nested_ept_inject_page_fault)", True),
    Fact("nested.ept-qual-newest", "behaviour",
         "Newest walker, EPT violation: exactly one of ACC_WRITE (write), ACC_INSTR (fetch), "
         "ACC_READ (otherwise); GVA_IS_VALID always; ACC_READ too for a paging-structure "
         "access (PFERR_GUEST_PAGE_MASK), GVA_TRANSLATED otherwise; bits 5:3 the raw RWX "
         "ANDed over the EPT walk; nested_ept_inject_page_fault keeps the walker's bits for "
         "a synthesized (not from_hardware) fault. The model follows this",
         f"{_NEWEST} (error:); kvm-x86/linux vmx/nested.c at 1a27afa051", True),
    Fact("nested.ept-qual-classic", "behaviour",
         "Classic walker: ACC_WRITE if W, ACC_READ if U (always, U being forced), ACC_INSTR "
         "if F, RWX << 3, and bits 8:7 kept from vcpu->arch.exit_qualification, the hardware "
         "exit being handled; so a final write reads WRITE|READ and a fetch INSTR|READ there",
         f"{_CLASSIC} (error:, PTTYPE_EPT)", True),
    Fact("nested.ept-rwx-includes-failing-entry", "behaviour",
         "pte_access = pt_access & pte is computed before the present and reserved checks, so "
         "bits 5:3 include the entry that failed (0 for a not-present one)",
         f"{_CLASSIC}; {_NEWEST}", True),
    # -- NPT ----------------------------------------------------------------------------
    Fact("nested.npf-exit-info", "behaviour",
         "Newest tree: the non-EPT walker ORs access & PFERR_GUEST_FAULT_STAGE_MASK into the "
         "error code of a nested fault, and nested_svm_inject_npf_exit (from_hardware false) "
         "sets exit_info_1 = that stage bit | the rest of the error code, exit_info_2 = "
         "fault->address. The classic tree sets bit 32 for every emulated #NPF (a TODO)",
         f"{_NEWEST} (error:); kvm-x86/linux arch/x86/kvm/svm/nested.c at 1a27afa051 "
         "(stored); torvalds/linux svm/nested.c (stored, classic TODO)", True),
    Fact("nested.npt-legacy-index-bits", "behaviour",
         "A 32-bit NPT is walked by the 32-bit copy, which indexes with PT32_INDEX (address "
         "bits 31:22 and 21:12), and a PAE NPT by the 64-bit copy from get_pdptr((addr >> 30) "
         "& 3); gva_to_gpa adds back addr & ~PAGE_MASK. So bits 63:32 of an L2 gpa are ignored "
         "(L2 gpa 0x1_0000_3000 is walked as 0x3000), while a fault reports the address as "
         "given (walker->fault.address = addr). The model had raised #NPF for such an address",
         f"{_CLASSIC} (PT_INDEX, walk_addr_generic, FNAME(gva_to_gpa)); {_NEWEST} (__PT_INDEX)",
         True),
    Fact("nested.npt-errcode-fetch", "behaviour",
         "The NPT walker is the 64- or 32-bit copy with L1's CR4/EFER (kvm_init_shadow_npt_mmu), "
         "so F appears in its error code when L1 has EFER.NX or CR4.SMEP",
         f"{_CLASSIC} (error:); {_MMU} (kvm_init_shadow_npt_mmu)", True),
    # -- who receives what ------------------------------------------------------------
    Fact("nested.routing", "behaviour",
         "The inner walker marks its fault nested_page_fault (mmu != walk_mmu; w != &gva_walk "
         "in the newest tree), and kvm_inject_emulated_page_fault sends it to that context's "
         "inject_page_fault (nested_ept_inject_page_fault / nested_svm_inject_npf_exit); a "
         "fault in L2's own tables goes to kvm_inject_page_fault, a #PF for L2",
         f"{_CLASSIC}; {_NEWEST}; {_X86} (kvm_inject_emulated_page_fault)", True),
    # -- the two corrected behaviours --------------------------------------------------
    Fact("nested.load_pdptrs-no-exception", "behaviour",
         "load_pdptrs translates CR3's page with kvm_translate_gpa(..., PFERR_USER_MASK | "
         "PFERR_WRITE_MASK, NULL): no exception pointer, so a failed translation reaches no "
         "one and load_pdptrs returns 0; kvm_set_cr3 then returns 1 and the CR3 load raises "
         "#GP in L2. Nothing reaches L1",
         f"{_X86} (load_pdptrs, kvm_set_cr3)", True),
    Fact("nested.nonpaging-whole-address", "behaviour",
         "nonpaging_gva_to_gpa clears the exception's error code and passes vaddr, the whole "
         "address, to kvm_translate_gpa; the inner walker's fault.address is that address, "
         "so the L2 gpa L1 is told keeps its low 12 bits",
         f"{_MMU} (nonpaging_gva_to_gpa); {_CLASSIC} (walker->fault.address = addr)", True),
    Fact("nested.svm-pae-pdptr-on-demand", "behaviour",
         "On SVM with NPT, L2's PAE PDPTEs are not loaded at VMRUN; kvm_pdptr_read reloads "
         "them through load_pdptrs when the register is not cached, so the emulator's view "
         "of a failed load is a stale or zero PDPTE rather than a #GP. The model treats the "
         "PDPTE load as a CR3 load on both vendors",
         "arch/x86/kvm/svm/svm.c (svm_cache_reg) — not read in a stored copy", False),
)
