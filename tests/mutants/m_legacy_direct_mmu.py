"""Semantic mutants of the legacy direct MMU: one-line plausible mistakes.

Each must be caught by the fast (not slow) tests of
``tests/host/test_legacy_direct_mmu.py`` and ``tests/host/test_direct_kinds.py``.
"""

from __future__ import annotations

from mutants import Mutant

PATH = "refimpl/host/legacy_direct_mmu.py"

MUTANTS = (
    Mutant(PATH,
           "child = arch._get_shadow_page(None, gfn & ~(level_pages(lvl) - 1), role)",
           "child = arch._get_shadow_page(None, gfn & ~(level_pages(lvl - 1) - 1), role)",
           "the child page's gfn rounded to the child's level instead of the level of "
           "the SPTE pointing to it (gfn_round_for_level(fault->gfn, it.level))."),
    Mutant(PATH,
           "arch._zap_pte(sp, i)  # drop_large_spte, with its flush\n                self.flush()",
           "arch._zap_pte(sp, i)  # drop_large_spte, with its flush\n                pass",
           "a huge SPTE replaced by a table without flushing: vCPUs keep the huge "
           "translation (writable, if logging has not started)."),
    Mutant(PATH,
           "clear = self.fmt.dirty_mask if (self.kind.pml and lvl == 1) else PT_WRITABLE_MASK",
           "clear = self.fmt.dirty_mask if self.kind.pml else PT_WRITABLE_MASK",
           "with PML, D cleared on huge SPTEs too, so they stay writable and a write "
           "to a 2 MiB page is logged as one 4 KiB page."),
    Mutant(PATH,
           "sp.role.level >= self._max_mapping_level(slot, sp.gfn):",
           "sp.role.level > self._max_mapping_level(slot, sp.gfn):",
           "off by one in kvm_mmu_zap_collapsible_spte: leaves that cannot become "
           "huge (slot edge, misaligned frames) are zapped too."),
    Mutant(PATH,
           "if sp.role.smm != as_id or lvl not in levels",
           "if lvl not in levels",
           "one rmap per gfn instead of per memslot: dirty logging an address-space-0 "
           "slot write-protects the SMM address space's SPTEs as well."),
    Mutant(PATH,
           "root.root_count += 1",
           "root.root_count = 1",
           "a root shared by two vCPUs counted once: unloading one frees it under the other."),
    Mutant(PATH,
           "if not rmapped:  # rmap_add",
           "if False:  # rmap_add",
           "leaves never entered in the rmaps: dirty logging cannot find them to "
           "write-protect."),
    Mutant(PATH,
           "self.arch.zap_all()\n            self.flush()",
           "pass\n            self.flush()",
           "kvm_mmu_zap_all_fast only flushing: pages of a deleted memslot stay mapped."),
)
