"""Semantic mutants of ``refimpl/host/shadow_mmu.py`` (see ``tests/mutants/__init__.py``)."""

from mutants import Mutant

P = "refimpl/host/shadow_mmu.py"

MUTANTS = (
    Mutant(P, "role = role.replace(quadrant=index & 1)",
           "role = role.replace(quadrant=index & 3)",
           "The child's quadrant takes two index bits, like the PAE root's, instead of one."),
    Mutant(P, "    return bool(misaligned) or nbytes < 4",
           "    return bool(misaligned)",
           "A store of 2 bytes inside one gpte is not treated as misaligned."),
    Mutant(P, "        self.indirect_shadow_pages += 1\n        if sp.role.level > 1:",
           "        self.indirect_shadow_pages += 1\n        if sp.role.level >= 1:",
           "Level-1 guest tables are write-tracked too, so they can never go unsync."),
    Mutant(P, "            n = self.write_track[sp.gfn] - 1",
           "            n = self.write_track[sp.gfn]",
           "Zapping an upper-level SP does not drop its write-tracking count."),
    Mutant(P, "            if sp.role.level == 1 or _large(spte):\n                self._rmap_remove(sp, i)",
           "            if sp.role.level == 1 and _large(spte):\n                self._rmap_remove(sp, i)",
           "A zapped leaf SPTE is not removed from the rmap."),
    Mutant(P, "        if not was_rmapped:\n            self.rmap.setdefault(gfn, set()).add((sp, i))",
           "        if was_rmapped:\n            self.rmap.setdefault(gfn, set()).add((sp, i))",
           "A new leaf SPTE is not added to the rmap (rmap_add skipped)."),
    Mutant(P, "if change.new.dirty_logging and not (change.old and change.old.dirty_logging):",
           "if change.new.dirty_logging and change.old is None:",
           "Enabling dirty logging on an existing memslot does not write-protect it."),
    Mutant(P, "        if self.write_track.get(gfn, 0) > 0:\n            return True\n        for sp in",
           "        if self.write_track.get(gfn, 0) > 1:\n            return True\n        for sp in",
           "A frame holding one shadowed upper-level table can be mapped writable as data."),
    Mutant(P, "            if prefetch:\n                return True",
           "            if prefetch and sp.unsync:\n                return True",
           "A prefetched SPTE unsyncs a shadowed page table instead of staying read-only."),
    Mutant(P, "        return (sp is not None and root.pgd == pgd and not sp.role.invalid\n"
              "                and sp.role.word == vc.mmu.root_role.word)",
           "        return (sp is not None and root.pgd == pgd and not sp.role.invalid\n"
              "                and True)",
           "A cached root is reused for its pgd whatever its role (prev_roots kept on a role change)."),
    Mutant(P, "            if loaded != vc.pdptrs:",
           "            if cr3 != vc.cpu.cr3:",
           "PAE roots are rebuilt when CR3 changes rather than when the PDPTEs change."),
    Mutant(P, "        if old is None or gfn != old[0]:",
           "        if old is None:",
           "Syncing an SPTE does not notice that its gpte now maps another frame."),
    Mutant(P, "            pte_access &= ~ACC_WRITE_MASK  # protect_clean_gpte",
           "            pass  # protect_clean_gpte",
           "Syncing an SPTE makes it writable although the gpte's D bit is clear."),
    Mutant(P, "                flooded = sp.write_flooding_count >= 3",
           "                flooded = sp.write_flooding_count > 3",
           "Write flooding zaps after the fourth emulated store instead of the third."),
    Mutant(P, "                access = w.pt_access[level - 1]",
           "                access = w.pt_access[level]",
           "An indirect child SP gets the rights above its parent, not above itself (off-by-one level)."),
    Mutant(P, "            base_gfn = w.gfn & ~((1 << (9 * (level - 1))) - 1)",
           "            base_gfn = w.gfn & ~((1 << (9 * level)) - 1)",
           "A direct SP below a guest large page starts at the wrong gfn (off-by-one level)."),
    Mutant(P, "if write and not pte_access & ACC_WRITE_MASK and not cpu.wp and not user and slot is not None:",
           "if write and not pte_access & ACC_WRITE_MASK and not cpu.wp and slot is not None:",
           "The CR0.WP=0 fix-up also lets user-mode writes through to read-only pages."),
    Mutant(P, "            self._set_spte(parent, j, 0)\n        sp.parent_ptes.clear()",
           "            pass\n        sp.parent_ptes.clear()",
           "A zapped SP stays linked from its parents' SPTEs."),
    Mutant(P, "                if role.level > 1 and sp.unsync:",
           "                if role.level > 2 and sp.unsync:",
           "An unsync level-1 SP survives when its frame is shadowed as a page directory."),
    Mutant(P, "            if sp.unsync:\n                # Found but stale",
           "            if sp.unsync and sp.role.level > 1:\n                # Found but stale",
           "An unsync SP found in the hash is reused without syncing it."),
    Mutant(P, "        self._free_roots(vc, current=True, previous=True)\n        self._reinit(vc, cpu, cpu_role, root_role, pdptrs)",
           "        self._free_roots(vc, current=True, previous=False)\n        self._reinit(vc, cpu, cpu_role, root_role, pdptrs)",
           "A control-register role change frees the current root but keeps prev_roots."),
)

#: Survivors no test can catch, and why (see ``tests/mutants/__init__.py``).
EQUIVALENT = {
    10: "Every role change frees all previous roots (kvm_mmu_reset_context, pinned by "
        "shadow_mmu.21's test), and for EPT02 the pgd is the EPTP, which fixes the role: a "
        "cached root with the right pgd always has the current role, so the role check "
        "is a second guard that never decides.",
    17: "A user write reaches the CR0.WP=0 fix-up only after the guest walk allowed it, and "
        "the walk allows a user write only through entries that all have W, so pte_access "
        "already has ACC_WRITE and the fix-up's condition is false either way.",
}
