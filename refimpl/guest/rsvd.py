"""Reserved-bit masks of guest paging-structure entries.

A present entry with a reserved bit set ends the walk with a page fault whose
error code has ``RSVD`` and ``P`` (for EPT: an EPT misconfiguration). Which
bits are reserved depends on the format, on the level, on whether bit 7 (the
page-size bit) is set, and on the CPU: its MAXPHYADDR, EFER.NXE, 1 GiB-page
support and CR4.PSE.

KVM keeps the answer in a ``struct rsvd_bits_validate``: a ``[2][5]`` table
of masks indexed by ``[bit 7 of the entry][level - 1]``, plus, for EPT, a
64-bit ``bad_mt_xwr`` table indexed by the entry's bits 5:0 (memory type and
X/W/R). :class:`RsvdBitsValidate` is that struct.

Glossary
--------
high bits
    Physical-address bits from MAXPHYADDR up to the top of the address field
    (bit 51 in 4/5-level and EPT entries, bit 62 in PAE entries).
bad_mt_xwr
    A 64-bit set: bit ``n`` set means an entry whose bits 5:0 equal ``n`` is
    misconfigured.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from refimpl.bits import bits
from refimpl.errors import check_bool, check_fields, check_int, check_range
from refimpl.guest.formats import EPTE, PTE64

#: Lowest and highest MAXPHYADDR the model accepts.
MIN_MAXPHYADDR = 32
MAX_MAXPHYADDR = 52


@dataclass(frozen=True)
class RsvdBitsValidate:
    """Reserved-bit masks for one entry format (``struct rsvd_bits_validate``).

    Parameters
    ----------
    rsvd_bits_mask : tuple of two tuples of five ints
        ``rsvd_bits_mask[bit7][level - 1]``: the reserved bits of a
        level-``level`` entry whose bit 7 is ``bit7``.
    bad_mt_xwr : int
        EPT only: bit ``n`` set means bits 5:0 equal to ``n`` are a
        misconfiguration (0 for x86 formats).

    KVM
    ---
    ``arch/x86/include/asm/kvm_host.h`` (``struct rsvd_bits_validate``);
    checked by ``__is_rsvd_bits_set`` and ``__is_bad_mt_xwr`` in
    ``arch/x86/kvm/mmu/spte.h``.
    """

    rsvd_bits_mask: tuple[tuple[int, ...], tuple[int, ...]]
    bad_mt_xwr: int = 0

    def __post_init__(self) -> None:
        check_fields(self, rsvd_bits_mask=tuple, bad_mt_xwr=int)
        check_range("RsvdBitsValidate.bad_mt_xwr", self.bad_mt_xwr, 0, 1 << 64)

    def mask(self, pte: int, level: int) -> int:
        """The reserved bits that apply to ``pte`` at ``level``.

        Raises
        ------
        TypeError, ValueError
            ``pte`` not an int in ``[0, 2**64)``, ``level`` not in ``[1, 5]``.
        """
        pte = check_range("pte", pte, 0, 1 << 64)
        level = check_range("level", level, 1, len(self.rsvd_bits_mask[0]) + 1)
        return self.rsvd_bits_mask[(pte >> 7) & 1][level - 1]

    def is_rsvd_bits_set(self, pte: int, level: int) -> bool:
        """Whether ``pte`` at ``level`` has a reserved bit or a bad XWR/memory type.

        Raises
        ------
        TypeError, ValueError
            As :meth:`mask`.
        """
        masks = self.rsvd_bits_mask
        if type(pte) is not int or type(level) is not int or not (
            0 <= pte < 1 << 64 and 1 <= level <= len(masks[0])
        ):
            pte = check_range("pte", pte, 0, 1 << 64)
            level = check_range("level", level, 1, len(masks[0]) + 1)
        if pte & masks[(pte >> 7) & 1][level - 1]:
            return True
        return bool((self.bad_mt_xwr >> (pte & 0x3F)) & 1)


def _check_maxphyaddr(maxphyaddr: int) -> None:
    if not MIN_MAXPHYADDR <= maxphyaddr <= MAX_MAXPHYADDR:
        raise ValueError(
            f"maxphyaddr must be in [{MIN_MAXPHYADDR}, {MAX_MAXPHYADDR}], got {maxphyaddr}"
        )


def pa_bits_rsvd(maxphyaddr: int) -> int:
    """Bits 63:MAXPHYADDR, KVM's ``reserved_gpa_bits`` (``rsvd_bits(maxphyaddr, 63)``)."""
    maxphyaddr = check_int("maxphyaddr", maxphyaddr)
    _check_maxphyaddr(maxphyaddr)
    return bits(maxphyaddr, 63)


def reset_rsvds_bits_mask(
    *,
    root_level: int,
    maxphyaddr: int,
    nx: bool,
    gbpages: bool,
    pse: bool,
    amd: bool = False,
    pse36: bool = True,
) -> RsvdBitsValidate:
    """Reserved bits of guest x86 entries for one paging mode.

    Parameters
    ----------
    root_level : int
        2 (32-bit paging), 3 (PAE), 4 or 5.
    maxphyaddr : int
        The guest's MAXPHYADDR.
    nx : bool
        EFER.NXE; without it bit 63 is reserved in PAE and 64-bit entries.
    gbpages : bool
        Whether 1 GiB pages exist; without them bit 7 of a PDPTE is reserved.
    pse : bool
        CR4.PSE (32-bit paging only): without it bit 7 of a PDE is ignored,
        so a 4 MiB PDE has no reserved bits.
    amd : bool
        AMD-compatible guest (``guest_cpuid_is_amd_compatible``): bit 8 of
        non-leaf PML4Es and PML5Es is reserved. Not of PDPTEs: KVM dropped
        that in 2020 (commit 5ecad245de2a), because AMD ignores bit 8 there.
        The model's guests are Intel-like, so the default is False.
    pse36 : bool
        The 4 MiB PDE of 32-bit paging carries physical-address bits 35:32 in
        bits 16:13 (PSE-36). KVM's ``is_cpuid_PSE36`` always answers yes, so
        the default is True; False gives the 32-bit-only rule (bits 21:13).

    Returns
    -------
    RsvdBitsValidate
        The masks. Level 3 of PAE (the PDPTEs) equals what CR3 loads check
        (:func:`pdpte_rsvd_mask`).

    Raises
    ------
    TypeError, ValueError
        A level other than 2 to 5, a MAXPHYADDR outside [32, 52], or a flag
        that is not a bool.

    KVM
    ---
    ``arch/x86/kvm/mmu/mmu.c``: ``__reset_rsvds_bits_mask``, read line by
    line in kvm-x86/linux at 8cd6d6724eae and torvalds/linux at 56ea38e436ea
    (the two agree). ``reset_guest_rsvds_bits_mask`` passes the guest's
    ``reserved_gpa_bits``, the CPU role's level, EFER.NX and CR4.PSE, the
    governed GBPAGES feature and the vendor.
    """
    root_level = check_int("root_level", root_level)
    maxphyaddr = check_int("maxphyaddr", maxphyaddr)
    nx, gbpages, pse = check_bool("nx", nx), check_bool("gbpages", gbpages), check_bool("pse", pse)
    amd, pse36 = check_bool("amd", amd), check_bool("pse36", pse36)
    if root_level not in (2, 3, 4, 5):
        raise ValueError(f"root_level must be 2, 3, 4 or 5, got {root_level}")
    _check_maxphyaddr(maxphyaddr)
    m = [[0] * 5, [0] * 5]
    if root_level == 2:
        # 4 KiB PDEs and PTEs of 32-bit paging have no reserved bits at all;
        # without CR4.PSE bit 7 of a PDE is ignored, so neither has a 4 MiB
        # PDE. With PSE-36 a 4 MiB PDE reserves the bits between the address
        # bits 35:32 (held in 16:13) and the frame address (31:22); without
        # it every bit from 13 to 21 is reserved.
        if pse:
            m[1][1] = bits(17, 21) if pse36 else bits(13, 21)
        return RsvdBitsValidate((tuple(m[0]), tuple(m[1])))

    # Physical-address bits the guest does not have: up to bit 62 in PAE
    # entries (whose address field is that wide), up to 51 otherwise.
    top = 62 if root_level == 3 else 51
    high = pa_bits_rsvd(maxphyaddr) & bits(0, top)
    if not nx:
        high |= PTE64.XD.bit
    gbpages_bit7 = 0 if gbpages else PTE64.PS.bit
    # AMD reserves bit 8 (G in a leaf) in non-leaf PML4Es and PML5Es only.
    nonleaf_bit8 = PTE64.G.bit if amd else 0

    if root_level == 3:
        # The PDPTE registers: no R/W, U/S, A, D, PS, G or XD bits exist.
        m[0][2] = PTE64.XD.bit | high | bits(5, 8) | bits(1, 2)
        m[0][1] = high  # PDE pointing to a page table
        m[0][0] = high  # PTE
        m[1][1] = high | bits(13, 20)  # 2 MiB PDE: address bits 20:13 must be 0
        m[1][0] = m[0][0]  # bit 7 of a PTE is PAT
        return RsvdBitsValidate((tuple(m[0]), tuple(m[1])))

    if root_level == 5:
        m[0][4] = high | nonleaf_bit8 | PTE64.PS.bit  # PML5E: no large pages
        m[1][4] = m[0][4]
    m[0][3] = high | nonleaf_bit8 | PTE64.PS.bit  # PML4E: no 512 GiB pages
    m[1][3] = m[0][3]
    m[0][2] = high | gbpages_bit7  # PDPTE -> page directory (bit 8 free on AMD too)
    m[1][2] = high | gbpages_bit7 | bits(13, 29)  # 1 GiB page
    m[0][1] = high  # PDE -> page table
    m[1][1] = high | bits(13, 20)  # 2 MiB page
    m[0][0] = high  # PTE
    m[1][0] = m[0][0]  # bit 7 of a PTE is PAT
    return RsvdBitsValidate((tuple(m[0]), tuple(m[1])))


@lru_cache(maxsize=None)
def pdpte_rsvd_mask(maxphyaddr: int) -> int:
    """Reserved bits of a PAE PDPTE, checked when CR3 is loaded.

    Bits 63:MAXPHYADDR, 8:5 and 2:1. The value equals ``rsvd_bits_mask[0][2]``
    of the PAE masks, whatever EFER.NX is (bit 63 is reserved either way).

    KVM
    ---
    ``arch/x86/kvm/x86.c``: ``load_pdptrs`` tests each present PDPTE against
    ``pdptr_rsvd_bits``, which is ``reserved_gpa_bits`` with bits 8:5 and
    2:1, not against the MMU's masks.
    """
    return pa_bits_rsvd(maxphyaddr) | bits(5, 8) | bits(1, 2)


def _repeat_byte(b: int) -> int:
    """``b`` copied into all eight bytes of a 64-bit word (KVM's REPEAT_BYTE)."""
    return b * 0x0101010101010101


def bad_mt_xwr_mask(*, execonly: bool) -> int:
    """The EPT ``bad_mt_xwr`` set: bad memory types and bad XWR combinations.

    Index ``n`` is an entry's bits 5:0, i.e. ``memtype << 3 | XWR``.

    KVM
    ---
    ``arch/x86/kvm/mmu/mmu.c``: ``__reset_rsvds_bits_mask_ept``.
    """
    bad = 0
    for memtype in (2, 3, 7):  # reserved memory types
        bad |= 0xFF << (memtype * 8)
    bad |= _repeat_byte(1 << 0b010)  # write-only
    bad |= _repeat_byte(1 << 0b110)  # write+execute without read
    if not execonly:
        bad |= _repeat_byte(1 << 0b100)  # execute-only, unless the CPU allows it
    return bad


def reset_rsvds_bits_mask_ept(
    *, maxphyaddr: int, execonly: bool, huge_page_level: int = 3
) -> RsvdBitsValidate:
    """Reserved bits of EPT entries.

    Parameters
    ----------
    maxphyaddr : int
        MAXPHYADDR of the address space the EPT maps into.
    execonly : bool
        Whether execute-only entries (XWR = 100) are allowed.
    huge_page_level : int
        Largest page level supported: 3 (1 GiB), 2 (2 MiB) or 1 (none); below
        3, bit 7 of a PDPTE is reserved, below 2 that of a PDE too.

    Raises
    ------
    TypeError, ValueError
        A MAXPHYADDR out of range, ``execonly`` not a bool, a level not 1-3.

    KVM
    ---
    ``arch/x86/kvm/mmu/mmu.c``: ``__reset_rsvds_bits_mask_ept``. For the
    guest check (``reset_rsvds_bits_mask_ept``) KVM passes the guest's
    ``reserved_gpa_bits`` and what L1's EPT capabilities allow
    (``nested_ept_new_eptp``: ``ept_caps_to_lpage_level``); for the zero
    checks, the host's bits and ``max_huge_page_level``. Older trees had no
    ``huge_page_level`` and never reserved bit 7.
    """
    maxphyaddr = check_int("maxphyaddr", maxphyaddr)
    execonly = check_bool("execonly", execonly)
    huge_page_level = check_int("huge_page_level", huge_page_level)
    if huge_page_level not in (1, 2, 3):
        raise ValueError(f"huge_page_level must be 1, 2 or 3, got {huge_page_level}")
    high = pa_bits_rsvd(maxphyaddr) & bits(0, 51)
    large_1g = EPTE.PS.bit if huge_page_level < 3 else 0
    large_2m = EPTE.PS.bit if huge_page_level < 2 else 0
    m = [[0] * 5, [0] * 5]
    m[0][4] = high | bits(3, 7)  # PML5E: memtype, IPAT, PS reserved
    m[0][3] = high | bits(3, 7)  # PML4E
    m[0][2] = high | bits(3, 6) | large_1g  # PDPTE -> table
    m[0][1] = high | bits(3, 6) | large_2m  # PDE -> table
    m[0][0] = high  # PTE (memtype checked by bad_mt_xwr)
    m[1][4] = m[0][4]
    m[1][3] = m[0][3]
    m[1][2] = high | bits(12, 29) | large_1g  # 1 GiB page
    m[1][1] = high | bits(12, 20) | large_2m  # 2 MiB page
    m[1][0] = m[0][0]  # bit 7 of a 4 KiB EPTE is ignored
    return RsvdBitsValidate(
        (tuple(m[0]), tuple(m[1])), bad_mt_xwr_mask(execonly=execonly)
    )
