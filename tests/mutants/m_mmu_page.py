"""Semantic mutants of ``refimpl/host/mmu_page.py`` (see ``tests/mutants/__init__.py``)."""

from mutants import Mutant

P = "refimpl/host/mmu_page.py"

MUTANTS = (
    Mutant(P, "        return not self.role.direct and not self.role.passthrough",
           "        return not self.role.direct",
           "sp_has_gptes forgets passthrough pages, which shadow no guest table."),
    Mutant(P, "        return cls(role, gfn, pfn, True)",
           "        return cls(role, gfn, pfn, False)",
           "tdp_mmu_init_sp does not set tdp_mmu_page."),
    Mutant(P, "        return len(self.unsync_child_bitmap) if self.unsync_child_bitmap else 0",
           "        return len(self.unsync_child_bitmap) - 1 if self.unsync_child_bitmap else 0",
           "unsync_children counts one fewer than the bits set in the bitmap."),
)

#: Survivors no test can catch, and why (see ``tests/mutants/__init__.py``).
EQUIVALENT = {
    1: "No shadow page of the model is passthrough: the shadow MMU clears passthrough in "
       "every child role and builds its roots with calc_shadow_root_role, which never sets "
       "it (only the nested NPT role of a 5-level host does, and no MMU here uses it).",
}
