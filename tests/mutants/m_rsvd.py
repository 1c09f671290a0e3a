"""Semantic mutants of the reserved-bit masks (``refimpl/guest/rsvd.py``) and the
SPTE zero checks of ``refimpl/host/spte.py``.

Each is one plausible one-line misreading of ``__reset_rsvds_bits_mask``,
``__reset_rsvds_bits_mask_ept`` or ``reset_*_shadow_zero_bits_mask``; the
first is what KVM itself did until 2020. ``tests/guest/test_rsvd_masks.py``
and ``tests/host/test_spte_zero_masks.py`` kill every one.
"""

from mutants import Mutant

R = "refimpl/guest/rsvd.py"
S = "refimpl/host/spte.py"

MUTANTS = (
    Mutant(R, "    m[0][2] = high | gbpages_bit7  # PDPTE -> page directory",
           "    m[0][2] = high | nonleaf_bit8 | gbpages_bit7  # PDPTE -> page directory",
           "AMD's bit 8 reserved in non-leaf PDPTEs too, as KVM did before 5ecad245de2a."),
    Mutant(R, "    m[1][1] = high | bits(13, 20)  # 2 MiB page\n",
           "    m[1][1] = high | bits(12, 20)  # 2 MiB page\n",
           "The PAT bit (12) of a 2 MiB PDE taken for an address bit that must be 0."),
    Mutant(R, "    top = 62 if root_level == 3 else 51",
           "    top = 51",
           "PAE entries treated as having a 52-bit address field like 64-bit ones."),
    Mutant(R, "    m[1][2] = high | gbpages_bit7 | bits(13, 29)  # 1 GiB page",
           "    m[1][2] = high | bits(13, 29)  # 1 GiB page",
           "A 1 GiB page accepted although the CPU has no GBPAGES."),
    Mutant(R, "            m[1][1] = bits(17, 21) if pse36 else bits(13, 21)",
           "            m[1][1] = bits(17, 20) if pse36 else bits(13, 21)",
           "Bit 21 of a PSE-36 4 MiB PDE left usable (bits 20:17 only)."),
    Mutant(R, "        high |= PTE64.XD.bit",
           "        high |= 0",
           "Bit 63 not reserved when EFER.NX is off."),
    Mutant(R, "    nonleaf_bit8 = PTE64.G.bit if amd else 0",
           "    nonleaf_bit8 = PTE64.G.bit",
           "Bit 8 of PML4Es reserved for Intel guests as well."),
    Mutant(R, "    large_1g = EPTE.PS.bit if huge_page_level < 3 else 0",
           "    large_1g = EPTE.PS.bit if huge_page_level < 2 else 0",
           "1 GiB EPT pages accepted when only 2 MiB pages are supported."),
    Mutant(R, "    bad |= _repeat_byte(1 << 0b110)  # write+execute without read",
           "    bad |= 0  # write+execute without read",
           "EPT XWR = 110 (write and execute without read) accepted."),
    Mutant(R, "    if not execonly:\n        bad |= _repeat_byte(1 << 0b100)",
           "    if execonly:\n        bad |= _repeat_byte(1 << 0b100)",
           "Execute-only EPT entries refused exactly when the CPU allows them."),
    Mutant(R, "    return pa_bits_rsvd(maxphyaddr) | bits(5, 8) | bits(1, 2)",
           "    return pa_bits_rsvd(maxphyaddr) | bits(5, 7) | bits(1, 2)",
           "Bit 8 (G) of a PAE PDPTE accepted on a CR3 load."),
    Mutant(S, "                                     nx=True, gbpages=gbpages, pse=False, amd=True)",
           "                                     nx=False, gbpages=gbpages, pse=False, amd=True)",
           "The NPT zero check reserves NX, as it did around v5.5, although KVM sets NX in SPTEs."),
    Mutant(S, "        tuple(((m | add) & ~allow) if i < root_level else m for i, m in enumerate(row))",
           "        tuple(((m | add) & ~allow) if i <= root_level else m for i, m in enumerate(row))",
           "The memory-encryption step also touches the level above the root."),
    Mutant(S, "    return _with_me_bits(zero, root_level, add=fmt.me_mask, allow=me_value)",
           "    return _with_me_bits(zero, root_level, add=fmt.me_mask, allow=0)",
           "shadow_me_value ignored: SME's C-bit becomes reserved in shadow SPTEs."),
    Mutant(S, "        zero = reset_rsvds_bits_mask_ept(maxphyaddr=fmt.phys_bits, execonly=False,",
           "        zero = reset_rsvds_bits_mask_ept(maxphyaddr=fmt.phys_bits, execonly=True,",
           "The TDP zero check allows execute-only SPTEs, which KVM never builds."),
    Mutant(S, "    return reset_rsvds_bits_mask_ept(maxphyaddr=fmt.phys_bits, execonly=execonly,",
           "    return reset_rsvds_bits_mask_ept(maxphyaddr=fmt.phys_bits, execonly=False,",
           "The shadow of L1's EPT ignores L1's execute-only capability."),
)
