"""Semantic mutants of ``refimpl/host/kvm_mmu.py`` (see ``tests/mutants/__init__.py``)."""

from mutants import Mutant

P = "refimpl/host/kvm_mmu.py"

MUTANTS = (
    Mutant(P, "KVM_MMU_NUM_PREV_ROOTS = 3",
           "KVM_MMU_NUM_PREV_ROOTS = 2",
           "Two cached previous roots instead of three."),
    Mutant(P, "                   ad_enabled=fmt.ad_bits, pml=bool(pml))",
           "                   ad_enabled=True, pml=bool(pml))",
           "The TDP kind claims hardware A/D bits for an EPT format without them."),
    Mutant(P, "    return MmuKind(False, fmt, shadow_zero_check_for(fmt, root_level), root_level,",
           "    return MmuKind(False, fmt, shadow_zero_check_for(fmt, 4), root_level,",
           "The shadow kind's zero check is built for 4 levels whatever the root level."),
)

#: Survivors no test can catch, and why (see ``tests/mutants/__init__.py``).
EQUIVALENT = {
    3: "The shadow MMU builds only 4 KiB leaf SPTEs with make_spte, and none with a bit in "
       "62:52 (its software bits sit at 9-11, and its roles never disable A/D), so the PAE "
       "root's extra reserved bits 62:52 never meet an SPTE that has them.",
}
