"""Semantic mutants of ``refimpl/host/tdp_mmu.py`` (see ``tests/mutants/__init__.py``)."""

from mutants import Mutant

P = "refimpl/host/tdp_mmu.py"

MUTANTS = (
    Mutant(P, "if base < slot.base_gfn or base + span > slot.end_gfn:",
           "if base < slot.base_gfn or base + span > slot.end_gfn + 1:",
           "A huge page may end one page past the memslot (off by one at the slot end)."),
    Mutant(P, "if (slot.base_gfn ^ slot.host_pfn) & (span - 1):",
           "if slot.host_pfn & (span - 1):",
           "Checks that the host frames are aligned instead of congruent to the gfns."),
    Mutant(P, "if level > self.host_max_level:",
           "if level >= self.host_max_level:",
           "Off by one against the host mapping level: THP-backed memory is never mapped huge."),
    Mutant(P, "                self._write(sptep, 0)\n                self.flush()\n                spte = 0",
           "                self._write(sptep, 0)\n                spte = 0",
           "A huge SPTE replaced by a table on the fault path without a TLB flush."),
    Mutant(P, "if slot is not None and _writable(new) and level == 1:",
           "if slot is not None and _writable(old) and level == 1:",
           "Marks the page dirty when the old SPTE was writable rather than the new one."),
    Mutant(P, "if g + span <= start or g >= end or e == 0:",
           "if g + span <= start or g + span > end or e == 0:",
           "Zapping skips an entry that straddles the range end instead of descending into it."),
    Mutant(P, "self.zap_gfn_range(old.base_gfn, old.end_gfn, old.as_id)",
           "self.zap_gfn_range(old.base_gfn, old.end_gfn - 1, old.as_id)",
           "Treats the slot's exclusive end as inclusive: the last page is not zapped on delete."),
    Mutant(P, 'if self._protect(slot, gfns) and "no_flush_on_wrprot" not in self.bugs:',
           'if self._protect(slot, gfns) and "no_flush_on_wrprot" in self.bugs:',
           "Re-protecting harvested pages (CLEAR_DIRTY_LOG) without flushing the TLBs."),
    Mutant(P, "clear = fmt.dirty_mask if (self.kind.pml and lvl == 1) else PT_WRITABLE_MASK",
           "clear = fmt.dirty_mask if self.kind.pml else PT_WRITABLE_MASK",
           "With PML, huge SPTEs get D cleared instead of W, so writes to them are never logged."),
    Mutant(P, "if lvl >= self._max_mapping_level(slot, g):",
           "if lvl > self._max_mapping_level(slot, g):",
           "Recovery zaps 4 KiB SPTEs that can never be huge (at a slot edge), so they refault."),
    Mutant(P, "if level <= 3 and self._max_mapping_level(slot, g) >= level:",
           "if level <= 3 and self._max_mapping_level(slot, g) >= level - 1:",
           "In-place recovery promotes a table one level higher than the memslot allows."),
    Mutant(P, "            elif level > 2:\n                changed |= self._promote(",
           "            elif level > 3:\n                changed |= self._promote(",
           "In-place recovery does not descend below 1 GiB tables: 2 MiB pages never come back."),
    Mutant(P, "if not root.invalid and root.role.word == role.word:",
           "if root.role.word == role.word:",
           "Root lookup reuses an invalidated (obsolete) root with the same role."),
    Mutant(P, "if root is not None and not root.invalid and root.role == role:",
           "if root is not None and root.role == role:",
           "A vCPU keeps running on its root after the root was invalidated."),
    Mutant(P, "        if roots:\n            self.flush()",
           "        if roots:\n            pass",
           "kvm_mmu_zap_all_fast without the TLB flush."),
    Mutant(P, "get_mmio_spte_generation(spte) == self.kvm.generation & MMIO_SPTE_GEN_MASK:",
           "get_mmio_spte_generation(spte) >= 0:",
           "Trusts a cached MMIO SPTE of any memslot generation."),
    Mutant(P, "if write and slot.readonly:",
           "if slot.readonly:",
           "Every access to a read-only memslot, reads too, exits as MMIO."),
    Mutant(P, "make_small_spte(fmt, e, level - 1, i)",
           "make_small_spte(fmt, e, 1, i)",
           "Eager splitting builds 4 KiB children for a 1 GiB page (wrong child level)."),
)

#: Survivors no test can catch, and why (see ``tests/mutants/__init__.py``).
EQUIVALENT = {
    13: "role.invalid is a bit of the role word, so an invalidated root's word never equals "
        "a wanted role's (invalid=0): the explicit check is implied by the word compare.",
    14: "PageRole equality compares role.invalid too, so an invalidated root never equals the "
        "vCPU's current role: the explicit check is implied by the role compare.",
}
