"""Semantic mutants of ``refimpl/host/spte.py`` (see ``tests/mutants/__init__.py``)."""

from mutants import Mutant

P = "refimpl/host/spte.py"

MUTANTS = (
    Mutant(P, "        spte |= PT_WRITABLE_MASK | fmt.mmu_writable_mask\n",
           "        spte |= PT_WRITABLE_MASK\n",
           "make_spte forgets the MMU-writable bit on a writable SPTE."),
    Mutant(P, "if level > 1 and pte_access & ACC_EXEC_MASK and fmt.nx_huge_pages:",
           "if level > 2 and pte_access & ACC_EXEC_MASK and fmt.nx_huge_pages:",
           "The NX huge page mitigation applied to 1 GiB pages only, not 2 MiB ones."),
    Mutant(P, "    else:\n        pte_access &= ~ACC_WRITE_MASK\n    if not is_mmio_pfn:",
           "    else:\n        pass\n    if not is_mmio_pfn:",
           "A host-read-only page (read-only memslot) still gets W."),
    Mutant(P, "        if is_writable_pte(old_spte):",
           "        if is_writable_pte(spte):",
           "Tests the new SPTE instead of the old one: the unsync check is always skipped."),
    Mutant(P, "    if not prefetch and spte_ad_enabled(spte):",
           "    if spte_ad_enabled(spte):",
           "Prefetched SPTEs are marked accessed although the guest never touched them."),
    Mutant(P, "child = huge_spte + ((index * (1 << (9 * (level - 1)))) << 12)",
           "child = huge_spte + ((index * (1 << (9 * level))) << 12)",
           "Splitting a huge page offsets the children by the parent's page size (off-by-one level)."),
    Mutant(P, "    if level == 1:\n        child &= ~PT_PAGE_SIZE_MASK",
           "    if level == 2:\n        child &= ~PT_PAGE_SIZE_MASK",
           "Splitting keeps the page-size bit on 4 KiB children and drops it on 2 MiB ones."),
    Mutant(P, "return MMIO_SPTE_GEN_LOW.get(spte) | (MMIO_SPTE_GEN_HIGH.get(spte) << MMIO_SPTE_GEN_LOW.width)",
           "return MMIO_SPTE_GEN_LOW.get(spte) | (MMIO_SPTE_GEN_HIGH.get(spte) << MMIO_SPTE_GEN_HIGH.width)",
           "Reassembles the MMIO generation with the wrong shift for its high part."),
    Mutant(P, "    spte |= fmt.user_mask | fmt.x_mask | fmt.me_mask\n",
           "    spte |= fmt.x_mask | fmt.me_mask\n",
           "A non-leaf SPTE without the user (EPT: read) bit."),
)

#: Survivors no test can catch, and why (see ``tests/mutants/__init__.py``).
EQUIVALENT = {
    5: "A prefetched SPTE goes through mark_spte_for_access_track (step 8), which clears A "
       "again when A/D bits are enabled; with A/D disabled there is no A bit to set.",
}
