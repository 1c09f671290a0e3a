"""Semantic mutants of ``refimpl/host/tdp12.py`` (see ``tests/mutants/__init__.py``)."""

from mutants import Mutant

P = "refimpl/host/tdp12.py"

MUTANTS = (
    Mutant(P, "            vc.mmu.root_role = root_role\n            vc.kind = vc.mmu.kind",
           "            pass\n            vc.kind = vc.mmu.kind",
           "An EPTP12 format change keeps the old root role."),
    Mutant(P, "            return (root.pgd & EPTP.ADDR.mask) == (eptp & EPTP.ADDR.mask)",
           "            return root.pgd == eptp",
           "Single-context INVEPT compares whole EPTPs, flag bits included, not root addresses."),
    Mutant(P, "            if named(root):\n                self._free_root(root)\n                mmu.prev_roots[i] = INVALID_ROOT",
           "            if named(root) and False:\n                self._free_root(root)\n                mmu.prev_roots[i] = INVALID_ROOT",
           "INVEPT frees the current root only, not the matching prev_roots."),
    Mutant(P, "        return _hw_translate_tdp(self.host, self.fmt, root.hpa, role.level, gva, access & _WF,\n"
              "                                 not role.ad_disabled)",
           "        return _hw_translate_tdp(self.host, self.fmt, root.hpa, role.level, gva, access & _WF,\n"
              "                                 True)",
           "The CPU walks EPT02 with A/D on although EPTP12 turned them off."),
)
