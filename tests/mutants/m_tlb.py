"""Semantic mutants of ``refimpl/host/tlb.py`` (see ``tests/mutants/__init__.py``)."""

from mutants import Mutant

P = "refimpl/host/tlb.py"

MUTANTS = (
    Mutant(P, "        if access & ACCESS_WRITE and not (e.writable and e.dirty):",
           "        if access & ACCESS_WRITE and not e.writable:",
           "A write hits a TLB entry whose D bit is clear, so no walk sets D (or logs in PML)."),
    Mutant(P, "        if access & ACCESS_FETCH and not e.executable:",
           "        if access & ACCESS_FETCH and not e.user:",
           "A fetch checks the entry's user bit (copied from the line below) instead of X."),
)
