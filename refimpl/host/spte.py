"""SPTEs: the entries of the page tables KVM itself builds.

KVM builds two kinds of tables that the CPU walks: *TDP* tables (EPT on
Intel, NPT on AMD) that map guest-physical to host-physical addresses, and
*shadow* tables that map guest-virtual to host-physical addresses. Their
entries are SPTEs ("shadow PTEs", whatever they shadow). An SPTE is a real
hardware entry with some of the bits that hardware ignores taken for KVM's
own bookkeeping.

Glossary
--------
format (:class:`SpteFormat`)
    The ``shadow_*_mask`` globals of ``arch/x86/kvm/mmu/spte.c`` as one
    value: which bit means present, user, executable, accessed, dirty, and
    where the software bits live. Built by :func:`ept_format` and
    :func:`x86_format` (``kvm_mmu_set_ept_masks`` and
    ``kvm_mmu_reset_all_pte_masks``).
MMU-present
    Bit 11: KVM's own "this SPTE maps something" bit. Hardware presence
    cannot serve, because an EPT entry with exec-only support, an
    access-tracked SPTE and an MMIO SPTE all have R=W=X=0 or P=0.
host-writable, MMU-writable
    Software bits: the host page may be written (the memslot and the host
    mapping allow it) and KVM's MMU allows it (no write tracking, no dirty
    logging). W may be set only if both are.
A/D type
    Bits 53:52 of TDP SPTEs: hardware A/D bits are used (0), disabled (1),
    or must be ignored for writes (2, nested PML).
access tracking
    Without hardware A/D bits, KVM clears R/X to notice accesses and saves
    them in bits 54 and 56.
MMIO SPTE
    A non-present SPTE that makes the hardware fault with a reserved-bit
    or misconfiguration error and records the gfn, the access and the
    memslot generation (19 bits in bits 10:3 and 62:52), so KVM can emulate
    an MMIO access without looking up memslots.
shadow_zero_check
    A :class:`refimpl.guest.rsvd.RsvdBitsValidate` for SPTEs, computed with the
    *host* MAXPHYADDR: a bit set there in an SPTE would make the hardware
    fault, so :func:`make_spte` must never produce one.

The point of Ben Gardon's 2021 series (patches 6-12): :func:`make_spte`
here takes the MMU *kind* (format and ``shadow_zero_check``) and the fault
inputs, and no vCPU, so the TDP MMU can build SPTEs in contexts that have no
vCPU, such as recovering huge pages when dirty logging is turned off.

All functions are pure: integers in, integers or frozen dataclasses out.
Each checks its arguments first (see :mod:`refimpl.errors`): an SPTE that
is not an ``int`` in ``[0, 2**64)`` raises ``TypeError``/``ValueError``
naming it, as does a ``fmt`` that is not a :class:`SpteFormat`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Union, runtime_checkable

from refimpl.bits import Field, Layout, bits
from refimpl.guest.memory import check_int
from refimpl.host.roles import ACC_EXEC_MASK, ACC_USER_MASK, ACC_WRITE_MASK
from refimpl.guest.rsvd import RsvdBitsValidate, reset_rsvds_bits_mask, reset_rsvds_bits_mask_ept
from refimpl.errors import check_fields, check_instance, check_range

__all__ = [
    "SPTE_X86",
    "SPTE_EPT",
    "MMIO_SPTE_X86",
    "MMIO_SPTE_EPT",
    "SPTE_MMU_PRESENT_MASK",
    "SPTE_TDP_AD_MASK",
    "SPTE_TDP_AD_ENABLED",
    "SPTE_TDP_AD_DISABLED",
    "SPTE_TDP_AD_WRPROT_ONLY",
    "SPTE_BASE_ADDR_MASK",
    "PT_WRITABLE_MASK",
    "PT_PAGE_SIZE_MASK",
    "MMIO_SPTE_GEN_MASK",
    "MMIO_SPTE_GEN_LOW",
    "MMIO_SPTE_GEN_HIGH",
    "SHADOW_ACC_TRACK_SAVED_BITS_MASK",
    "SHADOW_ACC_TRACK_SAVED_BITS_SHIFT",
    "EPT_MEMTYPE_WB",
    "SpteFormat",
    "SpteKind",
    "SpteResult",
    "ept_format",
    "x86_format",
    "tdp_shadow_zero_check",
    "shadow_zero_check_for",
    "ept_shadow_zero_check",
    "make_spte",
    "make_nonleaf_spte",
    "make_mmio_spte",
    "mark_spte_for_access_track",
    "restore_acc_track_spte",
    "is_shadow_present_pte",
    "is_large_pte",
    "is_last_spte",
    "is_writable_pte",
    "is_mmu_writable_spte",
    "is_host_writable_spte",
    "is_executable_pte",
    "is_accessed_spte",
    "is_dirty_spte",
    "spte_ad_enabled",
    "spte_ad_need_write_protect",
    "is_access_track_spte",
    "is_mmio_spte",
    "is_rsvd_spte",
    "spte_to_pfn",
    "get_mmio_spte_gfn",
    "get_mmio_spte_access",
    "get_mmio_spte_generation",
    "generation_mmio_spte_mask",
    "decode_spte",
    "make_small_spte",
    "make_huge_spte",
]

# ---------------------------------------------------------------------------
# Layouts. Hardware bits first, then the bits KVM takes for itself; each
# software bit says why it is where it is.
# ---------------------------------------------------------------------------

SPTE_X86 = Layout(
    "x86 / NPT SPTE",
    64,
    (
        Field("P", 0, 0, "present (shadow_present_mask)"),
        Field("W", 1, 1, "writable (PT_WRITABLE_MASK)"),
        Field("U", 2, 2, "user (shadow_user_mask); always 1 in NPT SPTEs, which are walked as user accesses"),
        Field("PWT", 3, 3, "page write-through"),
        Field("PCD", 4, 4, "page cache disable"),
        Field("A", 5, 5, "accessed (shadow_accessed_mask)"),
        Field("D", 6, 6, "dirty (shadow_dirty_mask)"),
        Field("PS", 7, 7, "page size: a 2 MiB / 1 GiB leaf (PT_PAGE_SIZE_MASK)"),
        Field("G", 8, 8, "global (never set by KVM)"),
        Field("HOST_WRITABLE", 9, 9, "software: the host page may be written (ignored by hardware)"),
        Field("MMU_WRITABLE", 10, 10, "software: KVM's MMU allows W (no write tracking or dirty logging)"),
        Field("MMU_PRESENT", 11, 11, "software: KVM maps something here (SPTE_MMU_PRESENT_MASK)"),
        Field("PFN", 12, 51, "host frame number (bits at or above host MAXPHYADDR reserved)"),
        Field("TDP_AD", 52, 53, "software, TDP only: A/D type 0 enabled, 1 disabled, 2 write-protect only"),
        Field("NX", 63, 63, "no-execute (shadow_nx_mask)"),
    ),
)
"""SPTE bit layout for shadow paging and AMD NPT (``kvm_mmu_reset_all_pte_masks``)."""

SPTE_EPT = Layout(
    "EPT SPTE",
    64,
    (
        Field("R", 0, 0, "readable (shadow_user_mask: EPT has no U, ACC_USER stands for read)"),
        Field("W", 1, 1, "writable (PT_WRITABLE_MASK)"),
        Field("X", 2, 2, "executable (shadow_x_mask)"),
        Field("MT", 3, 5, "memory type of a leaf (6 = write-back)"),
        Field("IPAT", 6, 6, "ignore guest PAT"),
        Field("PS", 7, 7, "page size: a 2 MiB / 1 GiB leaf"),
        Field("A", 8, 8, "accessed (if the CPU has EPT A/D bits)"),
        Field("D", 9, 9, "dirty (if the CPU has EPT A/D bits)"),
        Field("MMU_PRESENT", 11, 11, "software: KVM maps something here; ignored by EPT"),
        Field("PFN", 12, 51, "host frame number"),
        Field("TDP_AD", 52, 53, "software: A/D type 0 enabled, 1 disabled, 2 write-protect only"),
        Field("SAVED_R", 54, 54, "software: R saved while access-tracked (A/D disabled)"),
        Field("SAVED_X", 56, 56, "software: X saved while access-tracked (bit 55 would be W: never saved)"),
        Field("HOST_WRITABLE", 57, 57, "software: host page may be written; bits 9/10 are EPT A/D, so 57"),
        Field("MMU_WRITABLE", 58, 58, "software: KVM's MMU allows W"),
        Field("SVE", 63, 63, "suppress #VE"),
    ),
)
"""SPTE bit layout for Intel EPT (``kvm_mmu_set_ept_masks``)."""

MMIO_SPTE_X86 = Layout(
    "x86 / NPT MMIO SPTE",
    64,
    (
        Field("P", 0, 0, "set: together with RSVD51 the CPU faults with PFERR.RSVD"),
        Field("ACC", 1, 2, "ACC_WRITE / ACC_USER of the access that created it (shadow_mmio_access_mask)"),
        Field("GEN_LOW", 3, 10, "memslot generation bits 7:0"),
        Field("MMU_PRESENT", 11, 11, "clear: an MMIO SPTE maps nothing"),
        Field("GPA", 12, 50, "the gfn (as a gpa); below the reserved bit 51"),
        Field("RSVD51", 51, 51, "set: reserved when host MAXPHYADDR < 52 (shadow_mmio_value)"),
        Field("GEN_HIGH", 52, 62, "memslot generation bits 18:8"),
    ),
)
"""Layout of an MMIO SPTE in the x86/NPT format."""

MMIO_SPTE_EPT = Layout(
    "EPT MMIO SPTE",
    64,
    (
        Field("XWR", 0, 2, "110 (write+execute without read): an EPT misconfiguration"),
        Field("GEN_LOW", 3, 10, "memslot generation bits 7:0"),
        Field("MMU_PRESENT", 11, 11, "clear: an MMIO SPTE maps nothing"),
        Field("GPA", 12, 51, "the gfn (as a gpa)"),
        Field("GEN_HIGH", 52, 62, "memslot generation bits 18:8"),
    ),
)
"""Layout of an MMIO SPTE in the EPT format."""

SPTE_MMU_PRESENT_MASK = SPTE_X86.MMU_PRESENT.bit
PT_WRITABLE_MASK = SPTE_X86.W.bit
PT_PAGE_SIZE_MASK = SPTE_X86.PS.bit
SPTE_BASE_ADDR_MASK = SPTE_X86.PFN.mask
SPTE_TDP_AD_MASK = SPTE_X86.TDP_AD.mask
SPTE_TDP_AD_ENABLED = 0
SPTE_TDP_AD_DISABLED = 1 << SPTE_X86.TDP_AD.lo
SPTE_TDP_AD_WRPROT_ONLY = 2 << SPTE_X86.TDP_AD.lo
MMIO_SPTE_GEN_LOW = MMIO_SPTE_X86.GEN_LOW
MMIO_SPTE_GEN_HIGH = MMIO_SPTE_X86.GEN_HIGH
MMIO_SPTE_GEN_MASK = (1 << (MMIO_SPTE_GEN_LOW.width + MMIO_SPTE_GEN_HIGH.width)) - 1
SHADOW_ACC_TRACK_SAVED_BITS_MASK = SPTE_EPT.R.bit | SPTE_EPT.X.bit
SHADOW_ACC_TRACK_SAVED_BITS_SHIFT = SPTE_EPT.SAVED_R.lo
#: Memory type KVM gives RAM in EPT SPTEs without non-coherent DMA: WB | IPAT.
EPT_MEMTYPE_WB = SPTE_EPT.MT.set(0, 6) | SPTE_EPT.IPAT.bit

# Invariants across layouts (``static_assert`` in spte.h).
# The same bits are MMU-present, PS, W and the PFN in both formats.
for _name in ("MMU_PRESENT", "PS", "W", "PFN", "TDP_AD"):
    if SPTE_X86[_name].mask != SPTE_EPT[_name].mask:
        raise AssertionError(f"spte.py: {_name} differs between the SPTE formats")
# The generation is 19 bits, and its two halves avoid MMU-present and the gfn.
if MMIO_SPTE_GEN_MASK != (1 << 19) - 1:
    raise AssertionError("spte.py: the MMIO generation must be 19 bits")
for _mmio in (MMIO_SPTE_X86, MMIO_SPTE_EPT):
    if _mmio.GEN_LOW.mask != MMIO_SPTE_GEN_LOW.mask or _mmio.GEN_HIGH.mask != MMIO_SPTE_GEN_HIGH.mask:
        raise AssertionError("spte.py: the MMIO generation bits differ between formats")
# Access-tracking saved bits must not collide with the EPT software bits.
if (SHADOW_ACC_TRACK_SAVED_BITS_MASK << SHADOW_ACC_TRACK_SAVED_BITS_SHIFT) & (
    SPTE_EPT.HOST_WRITABLE.mask | SPTE_EPT.MMU_WRITABLE.mask | SPTE_TDP_AD_MASK
):
    raise AssertionError("spte.py: access-track saved bits overlap software bits")


# ---------------------------------------------------------------------------
# The format: KVM's shadow_*_mask globals as one value.
# ---------------------------------------------------------------------------


#: The integer mask fields of :class:`SpteFormat`, each below ``1 << 64``.
_SPTE_MASKS = ("present_mask", "user_mask", "x_mask", "nx_mask", "accessed_mask", "dirty_mask",
               "host_writable_mask", "mmu_writable_mask", "acc_track_mask", "me_mask",
               "mmio_value", "mmio_mask", "mmio_access_mask", "memtype_mask")


@dataclass(frozen=True)
class SpteFormat:
    """The ``shadow_*_mask`` set: how KVM writes an SPTE on this host.

    Parameters
    ----------
    name : str
        ``"ept"`` or ``"x86"``.
    layout : refimpl.bits.Layout
        :data:`SPTE_EPT` or :data:`SPTE_X86`.
    mmio_layout : refimpl.bits.Layout
        :data:`MMIO_SPTE_EPT` or :data:`MMIO_SPTE_X86`.
    present_mask, user_mask, x_mask, nx_mask, accessed_mask, dirty_mask : int
        ``shadow_present_mask`` ... ``shadow_dirty_mask``; A/D masks are 0
        when the hardware has no A/D bits.
    host_writable_mask, mmu_writable_mask : int
        The software writable bits.
    acc_track_mask : int
        Bits cleared to access-track an SPTE (EPT: RWX; x86: 0).
    me_mask : int
        Memory-encryption bit (0 in the model).
    mmio_value, mmio_mask, mmio_access_mask : int
        MMIO SPTE recognition: ``spte & mmio_mask == mmio_value``; 0 value
        means MMIO caching is off.
    memtype_mask : int
        Memory-type bits of a RAM leaf (EPT: WB|IPAT; NPT/shadow: 0).
    phys_bits : int
        Host MAXPHYADDR (``shadow_phys_bits``).
    tdp : bool
        The tables are TDP tables (``tdp_enabled``; adds the memory type).
    nx_huge_pages : bool
        The iTLB-multihit mitigation (``is_nx_huge_page_enabled``): huge
        SPTEs are never executable.

    KVM
    ---
    The globals in ``arch/x86/kvm/mmu/spte.c``; the 2026 "chainsaw" series
    gathers similar state in ``struct kvm_page_format``.
    """

    name: str
    layout: Layout
    mmio_layout: Layout
    present_mask: int
    user_mask: int
    x_mask: int
    nx_mask: int
    accessed_mask: int
    dirty_mask: int
    host_writable_mask: int
    mmu_writable_mask: int
    acc_track_mask: int
    me_mask: int
    mmio_value: int
    mmio_mask: int
    mmio_access_mask: int
    memtype_mask: int
    phys_bits: int
    tdp: bool
    nx_huge_pages: bool = False

    def __post_init__(self) -> None:
        check_fields(self, name=str, layout=Layout, mmio_layout=Layout, phys_bits=int,
                     tdp=bool, nx_huge_pages=bool,
                     **{mask: int for mask in _SPTE_MASKS})
        for mask in _SPTE_MASKS:
            check_range(f"SpteFormat.{mask}", getattr(self, mask), 0, 1 << 64)
        check_range("SpteFormat.phys_bits", self.phys_bits, 1, 65)

    @property
    def ad_bits(self) -> bool:
        """The hardware has A/D bits for this format."""
        return bool(self.accessed_mask)

    @property
    def mmio_caching(self) -> bool:
        """MMIO SPTEs can be made (``enable_mmio_caching`` and a value)."""
        return bool(self.mmio_value)

    @property
    def lower_gfn_mask(self) -> int:
        """``shadow_nonpresent_or_rsvd_lower_gfn_mask``: gpa bits of MMIO SPTEs."""
        return bits(12, self.phys_bits - 1)


def _check_phys_bits(phys_bits: object) -> int:
    p = check_int("phys_bits", phys_bits)
    if not 32 <= p <= 52:
        raise ValueError(f"phys_bits must be in [32, 52], got {p}")
    return p


def ept_format(*, has_ad_bits: bool = True, has_exec_only: bool = True,
               phys_bits: int = 46, nx_huge_pages: bool = False) -> SpteFormat:
    """The SPTE format on an Intel host with EPT.

    Parameters
    ----------
    has_ad_bits : bool
        EPT A/D bits supported (and enabled with ``enable_ept_ad_bits``).
    has_exec_only : bool
        Execute-only EPT entries supported; then ``shadow_present_mask`` is
        0 and R comes only from ACC_USER.
    phys_bits : int
        Host MAXPHYADDR.
    nx_huge_pages : bool
        The NX huge page mitigation is on.

    KVM
    ---
    ``kvm_mmu_set_ept_masks`` in ``arch/x86/kvm/mmu/spte.c`` (v5.15, the
    state of Ben Gardon's series); MMIO value W|X = 110, mask RWX, no access
    bits (``kvm_mmu_set_mmio_spte_mask``).
    """
    phys_bits = check_int("phys_bits", phys_bits)
    L = SPTE_EPT
    rwx = L.R.bit | L.W.bit | L.X.bit
    return SpteFormat(
        name="ept",
        layout=L,
        mmio_layout=MMIO_SPTE_EPT,
        present_mask=0 if has_exec_only else L.R.bit,
        user_mask=L.R.bit,
        x_mask=L.X.bit,
        nx_mask=0,
        accessed_mask=L.A.bit if has_ad_bits else 0,
        dirty_mask=L.D.bit if has_ad_bits else 0,
        host_writable_mask=L.HOST_WRITABLE.bit,
        mmu_writable_mask=L.MMU_WRITABLE.bit,
        acc_track_mask=rwx,
        me_mask=0,
        mmio_value=L.W.bit | L.X.bit,
        mmio_mask=rwx,
        mmio_access_mask=0,
        memtype_mask=EPT_MEMTYPE_WB,
        phys_bits=_check_phys_bits(phys_bits),
        tdp=True,
        nx_huge_pages=bool(nx_huge_pages),
    )


def x86_format(*, phys_bits: int = 46, tdp: bool = True,
               nx_huge_pages: bool = False) -> SpteFormat:
    """The SPTE format for AMD NPT (``tdp=True``) or shadow paging (``tdp=False``).

    Parameters
    ----------
    phys_bits : int
        Host MAXPHYADDR. At 52 no physical-address bit is reserved, so MMIO
        caching is off (``mmio_value`` 0).
    tdp : bool
        NPT tables rather than shadow tables.
    nx_huge_pages : bool
        The NX huge page mitigation is on.

    KVM
    ---
    ``kvm_mmu_reset_all_pte_masks`` in ``arch/x86/kvm/mmu/spte.c`` (no L1TF
    relocation of gfn bits, no SME).
    """
    L = SPTE_X86
    phys_bits = _check_phys_bits(phys_bits)
    mmio = (MMIO_SPTE_X86.RSVD51.bit | L.P.bit) if phys_bits < 52 else 0
    return SpteFormat(
        name="x86",
        layout=L,
        mmio_layout=MMIO_SPTE_X86,
        present_mask=L.P.bit,
        user_mask=L.U.bit,
        x_mask=0,
        nx_mask=L.NX.bit,
        accessed_mask=L.A.bit,
        dirty_mask=L.D.bit,
        host_writable_mask=L.HOST_WRITABLE.bit,
        mmu_writable_mask=L.MMU_WRITABLE.bit,
        acc_track_mask=0,
        me_mask=0,
        mmio_value=mmio,
        mmio_mask=mmio,
        mmio_access_mask=ACC_WRITE_MASK | ACC_USER_MASK,
        memtype_mask=0,
        phys_bits=phys_bits,
        tdp=bool(tdp),
        nx_huge_pages=bool(nx_huge_pages),
    )


def _with_me_bits(rsvd: RsvdBitsValidate, root_level: int, *, add: int, allow: int) -> RsvdBitsValidate:
    """``rsvd`` with ``add`` reserved and then ``allow`` freed, at levels 1..``root_level``.

    The loop ``for (i = root_level; --i >= 0;)`` of the two reset functions:
    only the slots of levels the tables have change, in both bit-7 rows.
    """
    if not add and not allow:
        return rsvd
    rows = tuple(
        tuple(((m | add) & ~allow) if i < root_level else m for i, m in enumerate(row))
        for row in rsvd.rsvd_bits_mask
    )
    return RsvdBitsValidate(rows, rsvd.bad_mt_xwr)


def tdp_shadow_zero_check(fmt: SpteFormat, root_level: int = 4, *, gbpages: bool = True,
                          huge_page_level: int = 3) -> RsvdBitsValidate:
    """``shadow_zero_check`` of TDP tables: bits that must be 0 in SPTEs.

    Parameters
    ----------
    fmt : SpteFormat
        The host's format; ``fmt.name`` plays ``boot_cpu_is_amd()`` (KVM
        asks whether ``shadow_x_mask`` is 0, i.e. whether the host has NPT
        rather than EPT).
    root_level : int
        ``root_role.level`` of the TDP root (4 or 5; 3 for 32-bit NPT).
    gbpages : bool
        NPT: ``boot_cpu_has(X86_FEATURE_GBPAGES)``; without it bit 7 of a
        PDPTE is reserved.
    huge_page_level : int
        EPT: ``max_huge_page_level`` (3 with 1 GiB EPT pages, else 2).

    KVM
    ---
    ``reset_tdp_shadow_zero_bits_mask`` in ``arch/x86/kvm/mmu/mmu.c``. NPT:
    ``__reset_rsvds_bits_mask`` with the host MAXPHYADDR (``reserved_hpa_bits``),
    the root level, NX on, the host's GBPAGES, PSE off and the AMD bit 8 on.
    EPT: ``__reset_rsvds_bits_mask_ept`` with the host MAXPHYADDR, execute-only
    off and ``max_huge_page_level``. Then the memory-encryption bits
    (``shadow_me_mask``) are freed at every level of the root. Older trees
    (about v5.5) passed NX *off* and PSE on for NPT.
    """
    check_instance("fmt", fmt, SpteFormat)
    root_level = check_int("root_level", root_level)
    if root_level not in (3, 4, 5):
        raise ValueError(f"root_level must be 3, 4 or 5, got {root_level}")
    if fmt.name == "ept":
        zero = reset_rsvds_bits_mask_ept(maxphyaddr=fmt.phys_bits, execonly=False,
                                         huge_page_level=huge_page_level)
    else:
        zero = reset_rsvds_bits_mask(root_level=root_level, maxphyaddr=fmt.phys_bits,
                                     nx=True, gbpages=gbpages, pse=False, amd=True)
    return _with_me_bits(zero, root_level, add=0, allow=fmt.me_mask)


def shadow_zero_check_for(fmt: SpteFormat, root_level: int, *, nx: bool = True,
                          gbpages: bool = True, me_value: Optional[int] = None) -> RsvdBitsValidate:
    """``shadow_zero_check`` of shadow tables (root level 3, 4 or 5).

    Parameters
    ----------
    fmt : SpteFormat
        An x86 format (shadow paging, or the shadow of L1's NPT tables).
    root_level : int
        ``root_role.level``: at least 3, since KVM never builds 2-level
        shadow tables.
    nx : bool
        ``root_role.efer_nx``. The shadow MMU of an L1 guest forces it to 1
        (``kvm_init_shadow_mmu``), so the default is True; the shadow of L1's
        NPT tables takes L1's EFER.NX (``kvm_init_shadow_npt_mmu``).
    gbpages : bool
        The guest's governed GBPAGES feature (``guest_can_use``), not the
        host's.
    me_value : int or None
        ``shadow_me_value``; None means ``fmt.me_mask`` (AMD's SME, where
        ``svm_hardware_setup`` sets value and mask to the same C-bit).

    KVM
    ---
    ``reset_shadow_zero_bits_mask`` in ``arch/x86/kvm/mmu/mmu.c``:
    ``__reset_rsvds_bits_mask`` with the host MAXPHYADDR, the root level,
    ``root_role.efer_nx``, the guest's GBPAGES, PSE off and the AMD bit 8
    on; then, if ``shadow_me_mask`` is set, its bits are reserved and those
    of ``shadow_me_value`` freed, at every level of the root.
    """
    check_instance("fmt", fmt, SpteFormat)
    root_level = check_int("root_level", root_level)
    if fmt.name != "x86":
        raise ValueError("fmt: shadow tables use the x86 format")
    if root_level not in (3, 4, 5):
        raise ValueError(f"root_level must be 3, 4 or 5, got {root_level}")
    me_value = fmt.me_mask if me_value is None else check_range("me_value", me_value, 0, 1 << 64)
    if me_value & ~fmt.me_mask:
        raise ValueError("me_value: shadow_me_value must be a subset of fmt.me_mask")
    zero = reset_rsvds_bits_mask(root_level=root_level, maxphyaddr=fmt.phys_bits,
                                 nx=nx, gbpages=gbpages, pse=False, amd=True)
    if not fmt.me_mask:
        return zero
    return _with_me_bits(zero, root_level, add=fmt.me_mask, allow=me_value)


def ept_shadow_zero_check(fmt: SpteFormat, *, execonly: bool,
                          huge_page_level: int = 3) -> RsvdBitsValidate:
    """``shadow_zero_check`` of the shadow of L1's EPT tables.

    Parameters
    ----------
    fmt : SpteFormat
        The host's EPT format.
    execonly : bool
        Whether L1 may use execute-only entries (L1's EPT capabilities).
    huge_page_level : int
        ``max_huge_page_level`` of the host.

    KVM
    ---
    ``reset_ept_shadow_zero_bits_mask`` in ``arch/x86/kvm/mmu/mmu.c``:
    ``__reset_rsvds_bits_mask_ept`` with the host MAXPHYADDR, L1's
    execute-only and ``max_huge_page_level``; no memory-encryption step.
    """
    check_instance("fmt", fmt, SpteFormat)
    if fmt.name != "ept":
        raise ValueError("fmt: the shadow of L1's EPT uses the EPT format")
    return reset_rsvds_bits_mask_ept(maxphyaddr=fmt.phys_bits, execonly=execonly,
                                     huge_page_level=huge_page_level)


@runtime_checkable
class SpteKind(Protocol):
    """What :func:`make_spte` needs from an MMU kind: no vCPU.

    :class:`refimpl.host.kvm_mmu.MmuKind` satisfies it.
    """

    spte_format: SpteFormat
    shadow_zero_check: RsvdBitsValidate


# ---------------------------------------------------------------------------
# Predicates (spte.h); they read as prose.
# ---------------------------------------------------------------------------


def _check_spte(name: str, value: object) -> int:
    """``value`` as an SPTE: an int in ``[0, 2**64)`` (TypeError/ValueError)."""
    return check_range(name, value, 0, 1 << 64)


def is_shadow_present_pte(spte: int) -> bool:
    """KVM maps something here (MMU-present; MMIO SPTEs are not present)."""
    return _present(_check_spte("spte", spte))


def is_large_pte(spte: int) -> bool:
    """The page-size bit is set."""
    return _large(_check_spte("spte", spte))


def is_last_spte(spte: int, level: int) -> bool:
    """The SPTE is a leaf: level 1, or a huge page."""
    spte = _check_spte("spte", spte)
    return _last(spte, check_range("level", level, 1, 6))


def is_writable_pte(spte: int) -> bool:
    """Hardware W is set."""
    return _writable(_check_spte("spte", spte))


def is_mmu_writable_spte(fmt: SpteFormat, spte: int) -> bool:
    """KVM's MMU allows making this SPTE writable (no write tracking)."""
    spte = _check_spte("spte", spte)
    check_instance("fmt", fmt, SpteFormat)
    return bool(spte & fmt.mmu_writable_mask)


def is_host_writable_spte(fmt: SpteFormat, spte: int) -> bool:
    """The host page behind this SPTE may be written."""
    spte = _check_spte("spte", spte)
    check_instance("fmt", fmt, SpteFormat)
    return bool(spte & fmt.host_writable_mask)


def is_executable_pte(fmt: SpteFormat, spte: int) -> bool:
    """The SPTE allows instruction fetches."""
    spte = _check_spte("spte", spte)
    check_instance("fmt", fmt, SpteFormat)
    return (spte & (fmt.x_mask | fmt.nx_mask)) == fmt.x_mask


def spte_ad_enabled(spte: int) -> bool:
    """Hardware A/D bits are used for this SPTE (A/D type is not "disabled")."""
    spte = _check_spte("spte", spte)
    return (spte & SPTE_TDP_AD_MASK) != SPTE_TDP_AD_DISABLED


def spte_ad_need_write_protect(spte: int) -> bool:
    """Dirty tracking must write-protect (A/D type is not "enabled")."""
    spte = _check_spte("spte", spte)
    return (spte & SPTE_TDP_AD_MASK) != SPTE_TDP_AD_ENABLED


def is_access_track_spte(fmt: SpteFormat, spte: int) -> bool:
    """Access-tracked: A/D disabled and the tracked bits cleared."""
    check_instance("fmt", fmt, SpteFormat)
    spte = _check_spte("spte", spte)
    return not spte_ad_enabled(spte) and (spte & fmt.acc_track_mask) == 0


def is_accessed_spte(fmt: SpteFormat, spte: int) -> bool:
    """The page was accessed since KVM last cleared the evidence."""
    spte = _check_spte("spte", spte)
    check_instance("fmt", fmt, SpteFormat)
    if spte_ad_enabled(spte):
        return bool(spte & fmt.accessed_mask)
    return not is_access_track_spte(fmt, spte)


def is_dirty_spte(fmt: SpteFormat, spte: int) -> bool:
    """The page may have been written through this SPTE."""
    spte = _check_spte("spte", spte)
    check_instance("fmt", fmt, SpteFormat)
    if spte_ad_enabled(spte):
        return bool(spte & fmt.dirty_mask)
    return is_writable_pte(spte)


def is_mmio_spte(fmt: SpteFormat, spte: int) -> bool:
    """An MMIO SPTE of this format (never when MMIO caching is off)."""
    spte = _check_spte("spte", spte)
    check_instance("fmt", fmt, SpteFormat)
    return _mmio(fmt, spte)


def is_rsvd_spte(rsvd: RsvdBitsValidate, spte: int, level: int) -> bool:
    """``shadow_zero_check`` flags ``spte`` at ``level`` (``is_rsvd_spte``)."""
    level = check_int("level", level)
    check_instance("rsvd", rsvd, RsvdBitsValidate)
    spte = _check_spte("spte", spte)
    return rsvd.is_rsvd_bits_set(spte, level)


def spte_to_pfn(spte: int) -> int:
    """The host frame number in a present SPTE."""
    return _to_pfn(_check_spte("spte", spte))


# The same predicates for the MMUs' inner loops, on SPTEs they read from
# their own tables (validated by construction): no argument checks.


def _present(spte: int) -> bool:
    return bool(spte & SPTE_MMU_PRESENT_MASK)


def _large(spte: int) -> bool:
    return bool(spte & PT_PAGE_SIZE_MASK)


def _last(spte: int, level: int) -> bool:
    return level == 1 or bool(spte & PT_PAGE_SIZE_MASK)


def _writable(spte: int) -> bool:
    return bool(spte & PT_WRITABLE_MASK)


def _to_pfn(spte: int) -> int:
    return (spte & SPTE_BASE_ADDR_MASK) >> 12


def _mmio(fmt: SpteFormat, spte: int) -> bool:
    return fmt.mmio_caching and (spte & fmt.mmio_mask) == fmt.mmio_value


# ---------------------------------------------------------------------------
# MMIO SPTEs
# ---------------------------------------------------------------------------


def generation_mmio_spte_mask(gen: int) -> int:
    """The 19-bit memslot generation scattered into bits 10:3 and 62:52."""
    gen = check_int("gen", gen)
    if not 0 <= gen <= MMIO_SPTE_GEN_MASK:
        raise ValueError(f"gen must be a 19-bit value, got {gen:#x}")
    low = gen & ((1 << MMIO_SPTE_GEN_LOW.width) - 1)
    high = gen >> MMIO_SPTE_GEN_LOW.width
    return MMIO_SPTE_GEN_LOW.set(0, low) | MMIO_SPTE_GEN_HIGH.set(0, high)


def make_mmio_spte(fmt: SpteFormat, gfn: int, access: int, generation: int) -> int:
    """An MMIO SPTE for ``gfn`` created by an access with ACC bits ``access``.

    Parameters
    ----------
    fmt : refimpl.host.spte.SpteFormat
    gfn : int
        The guest frame; its gpa must fit below host MAXPHYADDR.
    access : int
        ``ACC_*`` bits; only those in ``fmt.mmio_access_mask`` are kept.
    generation : int
        The memslot generation; its low 19 bits are recorded.

    Raises
    ------
    ValueError
        MMIO caching is off for ``fmt``, or ``gfn`` does not fit.

    KVM
    ---
    ``make_mmio_spte`` in ``arch/x86/kvm/mmu/spte.c``; the vCPU there is
    used only to read the memslot generation, passed here instead.
    """
    check_instance("fmt", fmt, SpteFormat)
    if not fmt.mmio_caching:
        raise ValueError("fmt: MMIO caching is disabled for this format")
    gfn = check_int("gfn", gfn)
    gpa = gfn << 12
    if gfn < 0 or gpa & ~fmt.lower_gfn_mask:
        raise ValueError(f"gfn {gfn:#x} does not fit below host MAXPHYADDR {fmt.phys_bits}")
    access = check_int("access", access) & fmt.mmio_access_mask
    gen = check_int("generation", generation) & MMIO_SPTE_GEN_MASK
    return generation_mmio_spte_mask(gen) | fmt.mmio_value | access | gpa


def get_mmio_spte_generation(spte: int) -> int:
    """The memslot generation recorded in an MMIO SPTE."""
    spte = _check_spte("spte", spte)
    return MMIO_SPTE_GEN_LOW.get(spte) | (MMIO_SPTE_GEN_HIGH.get(spte) << MMIO_SPTE_GEN_LOW.width)


def get_mmio_spte_gfn(fmt: SpteFormat, spte: int) -> int:
    """The gfn recorded in an MMIO SPTE."""
    spte = _check_spte("spte", spte)
    check_instance("fmt", fmt, SpteFormat)
    return (spte & fmt.lower_gfn_mask) >> 12


def get_mmio_spte_access(fmt: SpteFormat, spte: int) -> int:
    """The ACC bits recorded in an MMIO SPTE."""
    spte = _check_spte("spte", spte)
    check_instance("fmt", fmt, SpteFormat)
    return spte & fmt.mmio_access_mask


# ---------------------------------------------------------------------------
# Building SPTEs
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SpteResult:
    """What :func:`make_spte` produced.

    Parameters
    ----------
    spte : int
        The new SPTE.
    wrprot : bool
        W was requested but withheld because the gfn is write-tracked (a
        shadowed guest page table that cannot go unsync).
    rsvd_violation : bool
        ``shadow_zero_check`` flags the SPTE (KVM WARNs): the hardware
        would fault on it. A correct MMU never installs such an SPTE.
    """

    spte: int
    wrprot: bool = False
    rsvd_violation: bool = False

    @property
    def writable(self) -> bool:
        """The SPTE allows writes."""
        return is_writable_pte(self.spte)


def mark_spte_for_access_track(fmt: SpteFormat, spte: int) -> int:
    """Arm access tracking: clear A, or (A/D disabled) save and clear R/X.

    KVM
    ---
    ``mark_spte_for_access_track`` in ``arch/x86/kvm/mmu/spte.c``.
    """
    spte = _check_spte("spte", spte)
    check_instance("fmt", fmt, SpteFormat)
    if spte_ad_enabled(spte):
        return spte & ~fmt.accessed_mask
    if is_access_track_spte(fmt, spte):
        return spte
    saved = SHADOW_ACC_TRACK_SAVED_BITS_MASK << SHADOW_ACC_TRACK_SAVED_BITS_SHIFT
    spte &= ~saved
    spte |= (spte & SHADOW_ACC_TRACK_SAVED_BITS_MASK) << SHADOW_ACC_TRACK_SAVED_BITS_SHIFT
    return spte & ~fmt.acc_track_mask


def restore_acc_track_spte(spte: int) -> int:
    """Undo :func:`mark_spte_for_access_track` for an A/D-disabled SPTE.

    KVM
    ---
    ``restore_acc_track_spte`` in ``arch/x86/kvm/mmu/spte.h``.

    Raises
    ------
    TypeError, ValueError
        ``spte`` not an int in ``[0, 2**64)``.
    """
    spte = check_int("spte", spte)
    if not 0 <= spte < 1 << 64:
        raise ValueError(f"spte must be in [0, 2**64), got {spte:#x}")
    saved = (spte >> SHADOW_ACC_TRACK_SAVED_BITS_SHIFT) & SHADOW_ACC_TRACK_SAVED_BITS_MASK
    spte &= ~(SHADOW_ACC_TRACK_SAVED_BITS_MASK << SHADOW_ACC_TRACK_SAVED_BITS_SHIFT)
    return spte | saved


def _kind_parts(kind: Union[SpteKind, SpteFormat],
                shadow_zero_check: Optional[RsvdBitsValidate]) -> tuple[SpteFormat, Optional[RsvdBitsValidate]]:
    if isinstance(kind, SpteFormat):
        return kind, shadow_zero_check
    fmt = getattr(kind, "spte_format", None)
    if not isinstance(fmt, SpteFormat):
        raise TypeError(f"kind must be an SpteFormat or an MMU kind, got {type(kind).__name__}")
    return fmt, getattr(kind, "shadow_zero_check", None)


def make_spte(
    kind: Union[SpteKind, SpteFormat],
    *,
    pte_access: int,
    level: int,
    gfn: int,
    pfn: int,
    old_spte: int = 0,
    prefetch: bool = False,
    host_writable: bool = True,
    ad_disabled: bool = False,
    ad_need_write_protect: bool = False,
    can_unsync: bool = True,
    try_unsync: Optional[Callable[[int, bool], bool]] = None,
    is_mmio_pfn: bool = False,
    shadow_zero_check: Optional[RsvdBitsValidate] = None,
) -> SpteResult:
    """The SPTE that maps ``gfn`` to host frame ``pfn`` with rights ``pte_access``.

    Parameters
    ----------
    kind : refimpl.host.kvm_mmu.MmuKind or refimpl.host.spte.SpteFormat
        The MMU kind (its ``spte_format`` and ``shadow_zero_check``), or a
        bare format (then pass ``shadow_zero_check`` separately, or none).
    pte_access : int
        ``ACC_EXEC_MASK | ACC_WRITE_MASK | ACC_USER_MASK`` wanted; TDP
        passes ``ACC_ALL``, shadow paging the guest's rights.
    level : int
        1 (4 KiB), 2 (2 MiB), 3 (1 GiB).
    gfn : int
        The guest frame (only passed on to ``try_unsync``).
    pfn : int
        The host frame; for a huge page, its first frame.
    old_spte : int
        The SPTE being replaced: if it was already writable, the unsync
        check is skipped (KVM's shortcut for re-syncing SPTEs).
    prefetch : bool
        Made ahead of an access: no A bit (access tracking is armed).
    host_writable : bool
        The host allows writes (false for read-only memslots).
    ad_disabled, ad_need_write_protect : bool
        The page's role says A/D bits are off / dirty tracking must
        write-protect (A/D type bits 53:52).
    can_unsync : bool
        Passed to ``try_unsync``.
    try_unsync : callable or None
        ``try_unsync(gfn, can_unsync) -> bool``: the shadow MMU's
        ``mmu_try_to_unsync_pages``; True means "write-protect". None (TDP
        MMU: no shadow pages) never write-protects.
    is_mmio_pfn : bool
        The frame is host MMIO (EPT memory type UC, no encryption bit).
    shadow_zero_check : refimpl.guest.rsvd.RsvdBitsValidate or None
        Overrides the kind's.

    Returns
    -------
    refimpl.host.spte.SpteResult

    Raises
    ------
    ValueError
        ``level`` outside 1..3, ``pte_access`` outside ACC bits, or a
        negative ``pfn``.

    KVM
    ---
    ``make_spte`` in ``arch/x86/kvm/mmu/spte.c``. In v5.15 it took a vCPU
    to reach ``vcpu->arch.mmu->shadow_zero_check``, the memory type and
    the unsync check; Ben Gardon's 2021 RFC (patches 6-12, patch 11
    "Factor shadow_zero_check out of make_spte") removed that need. Here
    the kind supplies the first, the format the second, and the caller's
    ``try_unsync`` the third. Dirty-page marking (``mark_page_dirty_in_slot``
    in newer kernels) is the caller's job: this function is pure.
    """
    gfn = check_int("gfn", gfn)
    old_spte = check_int("old_spte", old_spte)
    fmt, zero_check = _kind_parts(kind, shadow_zero_check)
    level = check_int("level", level)
    if level not in (1, 2, 3):
        raise ValueError(f"level must be 1, 2 or 3, got {level}")
    pte_access = check_int("pte_access", pte_access)
    if pte_access & ~(ACC_EXEC_MASK | ACC_WRITE_MASK | ACC_USER_MASK) or pte_access < 0:
        raise ValueError(f"pte_access {pte_access:#x} has bits outside ACC_ALL")
    pfn = check_int("pfn", pfn)
    if pfn < 0:
        raise ValueError(f"pfn must be >= 0, got {pfn:#x}")

    # Step 1: KVM's present bit, and the A/D type of the page.
    spte = SPTE_MMU_PRESENT_MASK
    if ad_disabled:
        spte |= SPTE_TDP_AD_DISABLED
    elif ad_need_write_protect:
        spte |= SPTE_TDP_AD_WRPROT_ONLY
    # Step 2: hardware present (0 for EPT with execute-only support: R then
    # comes from ACC_USER below), and A unless this is a prefetch.
    spte |= fmt.present_mask
    if not prefetch and spte_ad_enabled(spte):
        spte |= fmt.accessed_mask
    # Step 3: the NX huge page mitigation: a huge SPTE is never executable.
    if level > 1 and pte_access & ACC_EXEC_MASK and fmt.nx_huge_pages:
        pte_access &= ~ACC_EXEC_MASK
    # Step 4: ACC bits to SPTE bits.
    spte |= fmt.x_mask if pte_access & ACC_EXEC_MASK else fmt.nx_mask
    if pte_access & ACC_USER_MASK:
        spte |= fmt.user_mask
    if level > 1:
        spte |= PT_PAGE_SIZE_MASK
    if fmt.tdp:
        spte |= 0 if is_mmio_pfn else fmt.memtype_mask
    # Step 5: the host decides whether W is possible at all.
    if host_writable:
        spte |= fmt.host_writable_mask
    else:
        pte_access &= ~ACC_WRITE_MASK
    if not is_mmio_pfn:
        spte |= fmt.me_mask
    spte |= pfn << 12
    # Step 6: W, unless the gfn is a write-tracked guest page table.
    wrprot = False
    skip_dirty = False
    if pte_access & ACC_WRITE_MASK:
        spte |= PT_WRITABLE_MASK | fmt.mmu_writable_mask
        if is_writable_pte(old_spte):
            skip_dirty = True  # already writable: no unsync check, no new D
        elif try_unsync is not None and try_unsync(gfn, can_unsync):
            wrprot = True
            pte_access &= ~ACC_WRITE_MASK
            spte &= ~(PT_WRITABLE_MASK | fmt.mmu_writable_mask)
    # Step 7: D on writable SPTEs (the write is about to happen, or the
    # page is logged as dirty when it is made writable).
    if pte_access & ACC_WRITE_MASK and not skip_dirty and spte_ad_enabled(spte):
        spte |= fmt.dirty_mask
    # Step 8: a prefetched SPTE starts out access-tracked.
    if prefetch:
        spte = mark_spte_for_access_track(fmt, spte)
    # Step 9: the SPTE must not trip the hardware's reserved-bit checks.
    bad = zero_check is not None and is_rsvd_spte(zero_check, spte, level)
    return SpteResult(spte, wrprot, bad)


def make_nonleaf_spte(fmt: SpteFormat, child_pfn: int, *, ad_disabled: bool = False) -> int:
    """The SPTE pointing to a lower-level table at host frame ``child_pfn``.

    All rights are granted at non-leaf levels; the leaf decides.

    KVM
    ---
    ``make_nonleaf_spte`` in ``arch/x86/kvm/mmu/spte.c``.
    """
    check_instance("fmt", fmt, SpteFormat)
    spte = SPTE_MMU_PRESENT_MASK
    spte |= (check_int("child_pfn", child_pfn) << 12) | fmt.present_mask | PT_WRITABLE_MASK
    spte |= fmt.user_mask | fmt.x_mask | fmt.me_mask
    spte |= SPTE_TDP_AD_DISABLED if ad_disabled else fmt.accessed_mask
    return spte


def decode_spte(fmt: SpteFormat, spte: int) -> dict[str, int]:
    """Every field of ``spte`` by name, MMIO layout for MMIO SPTEs."""
    spte = _check_spte("spte", spte)
    check_instance("fmt", fmt, SpteFormat)
    layout = fmt.mmio_layout if is_mmio_spte(fmt, spte) else fmt.layout
    return layout.decode(spte)


def make_small_spte(fmt: SpteFormat, huge_spte: int, level: int, index: int) -> int:
    """The ``index``-th child of a huge SPTE split into a level-``level`` table.

    The child keeps every attribute of the huge SPTE; its frame is offset
    by ``index`` pages of the child level, and it is a huge page itself
    only above level 1. (With the NX huge page mitigation KVM also gives
    4 KiB children back their X bit; the model's callers pass ACC via
    :func:`make_spte` in that case.)

    KVM
    ---
    ``make_small_spte`` (earlier ``make_huge_page_split_spte``) in
    ``arch/x86/kvm/mmu/spte.c``, used by eager page splitting.
    """
    huge_spte = _check_spte("huge_spte", huge_spte)
    level = check_int("level", level)
    if level not in (1, 2):
        raise ValueError(f"level must be 1 or 2, got {level}")
    check_instance("fmt", fmt, SpteFormat)
    index = check_range("index", index, 0, 512)
    child = huge_spte + ((index * (1 << (9 * (level - 1)))) << 12)
    if level == 1:
        child &= ~PT_PAGE_SIZE_MASK
    return child


def make_huge_spte(fmt: SpteFormat, small_spte: int, level: int) -> int:
    """A level-``level`` huge SPTE with the attributes of one of its future children.

    KVM
    ---
    ``make_huge_spte`` in ``arch/x86/kvm/mmu/spte.c`` (v6.13 in-place
    recovery of huge pages).
    """
    small_spte = _check_spte("small_spte", small_spte)
    level = check_int("level", level)
    if level not in (2, 3):
        raise ValueError(f"level must be 2 or 3, got {level}")
    check_instance("fmt", fmt, SpteFormat)
    pages = 1 << (9 * (level - 1))
    pfn = spte_to_pfn(small_spte) & ~(pages - 1)
    huge = (small_spte & ~SPTE_BASE_ADDR_MASK) | (pfn << 12) | PT_PAGE_SIZE_MASK
    if fmt.nx_huge_pages:
        huge = (huge & ~fmt.x_mask) | fmt.nx_mask
    return huge
