"""``struct kvm_mmu_kind`` and ``struct kvm_mmu``: the state KVM's tables run on.

:mod:`refimpl.layouts.split` draws Paolo Bonzini's 2021 sketch as a *layout*:
which field lives in which struct. This module gives the same two structs
behaviour, so the TDP MMU (:mod:`refimpl.host.tdp_mmu`) and the shadow MMU
(:mod:`refimpl.host.shadow_mmu`) can run on them. Everything here is
re-exported, and documented, by :mod:`refimpl.host.mmu`.

The glossary (kind, MMU) is that of :mod:`refimpl.host.mmu`.

The module sits below :mod:`refimpl.host.vm` (a vCPU holds its ``Mmu``), so
it imports nothing of the VM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from refimpl.errors import check_fields, check_instance, check_int, check_range
from refimpl.guest.rsvd import RsvdBitsValidate
from refimpl.host.roles import PageRole
from refimpl.host.spte import SpteFormat, shadow_zero_check_for, tdp_shadow_zero_check
from refimpl.host.tlb import Tlb

__all__ = [
    "KVM_MMU_NUM_PREV_ROOTS",
    "MmuStats",
    "MmuKind",
    "RootInfo",
    "INVALID_ROOT",
    "Mmu",
    "tdp_kind",
    "shadow_kind",
]

#: Previous roots kept for a fast CR3 switch (``KVM_MMU_NUM_PREV_ROOTS``).
KVM_MMU_NUM_PREV_ROOTS = 3


@dataclass
class MmuStats:
    """Counters of the work an MMU did (what the dirty-logging chapter plots).

    Attributes
    ----------
    spte_writes : int
        SPTE stores (install, change, zap).
    sptes_visited : int
        SPTEs read by a bulk operation (zap, write-protect, recovery).
    tlb_flushes : int
        ``kvm_flush_remote_tlbs`` calls (each flushes every vCPU).
    page_faults : int
        Calls of the page-fault handler.
    mmio_faults : int
        Faults that ended in MMIO emulation.
    pages_allocated, pages_freed : int
        Page-table pages.
    """

    spte_writes: int = 0
    sptes_visited: int = 0
    tlb_flushes: int = 0
    page_faults: int = 0
    mmio_faults: int = 0
    pages_allocated: int = 0
    pages_freed: int = 0

    def snapshot(self) -> "MmuStats":
        """A copy of the counters."""
        return MmuStats(**vars(self))

    def since(self, before: "MmuStats") -> "MmuStats":
        """The counts accumulated after ``before`` was taken.

        Raises
        ------
        TypeError
            ``before`` is not an :class:`MmuStats`.
        """
        check_instance("before", before, MmuStats)
        return MmuStats(**{k: v - getattr(before, k) for k, v in vars(self).items()})


@dataclass(eq=False)
class MmuKind:
    """``struct kvm_mmu_kind`` of the 2021 sketch, operational.

    Attributes
    ----------
    direct : bool
        TDP tables (one kind per VM) rather than shadow tables.
    spte_format : refimpl.host.spte.SpteFormat
        How SPTEs are written.
    shadow_zero_check : refimpl.guest.rsvd.RsvdBitsValidate
        Bits that must be zero in an SPTE (host MAXPHYADDR): per VM, as
        Paolo argued, because it does not depend on the guest's registers.
    root_level : int
        Levels of the tables (4 or 5 for TDP; 3, 4 or 5 for shadow).
    ad_enabled : bool
        Hardware A/D bits are used (``kvm_ad_enabled``).
    pml : bool
        Dirty logging clears D and lets the CPU log writes (Intel PML)
        instead of write-protecting.
    roots : list
        TDP only: the VM's roots (``kvm->arch.tdp_mmu_roots``), each a
        :class:`refimpl.host.mmu_page.MmuPage` with ``tdp_mmu_page`` set; shared by role.
    stats : refimpl.host.kvm_mmu.MmuStats

    KVM
    ---
    Proposed in the 2021 mail (see :class:`refimpl.layouts.split.KvmMmuKind`
    for where each field sat in ``struct kvm_mmu``); in real KVM these are
    the ``shadow_*_mask`` globals, ``vcpu->arch.mmu->shadow_zero_check``
    and ``kvm->arch.tdp_mmu_roots``.
    """

    direct: bool
    spte_format: SpteFormat
    shadow_zero_check: RsvdBitsValidate
    root_level: int
    ad_enabled: bool = True
    pml: bool = False
    roots: list[Any] = field(default_factory=list)
    stats: MmuStats = field(default_factory=MmuStats)

    def __post_init__(self) -> None:
        check_fields(self, direct=bool, spte_format=SpteFormat,
                     shadow_zero_check=RsvdBitsValidate, root_level=int, ad_enabled=bool,
                     pml=bool, roots=list, stats=MmuStats)
        check_range("MmuKind.root_level", self.root_level, 2, 6)

    @property
    def nx_huge_pages(self) -> bool:
        """The NX huge page mitigation is on (``is_nx_huge_page_enabled``)."""
        return self.spte_format.nx_huge_pages


def tdp_kind(fmt: SpteFormat, *, root_level: int = 4, pml: bool = False) -> MmuKind:
    """The per-VM kind of TDP tables in format ``fmt``.

    Raises
    ------
    ValueError
        ``fmt`` is not a TDP format, ``root_level`` not 4/5, or PML
        requested without EPT A/D bits.

    KVM
    ---
    ``init_kvm_tdp_mmu`` and ``reset_tdp_shadow_zero_bits_mask`` in
    ``arch/x86/kvm/mmu/mmu.c``; PML needs EPT A/D (``enable_pml``).
    """
    root_level = check_int("root_level", root_level)
    if not isinstance(fmt, SpteFormat):
        raise TypeError(f"fmt must be an SpteFormat, got {type(fmt).__name__}")
    if not fmt.tdp:
        raise ValueError("fmt: not a TDP format (x86_format(tdp=True) or ept_format())")
    if root_level not in (4, 5):
        raise ValueError(f"root_level must be 4 or 5, got {root_level}")
    if pml and (fmt.name != "ept" or not fmt.ad_bits):
        raise ValueError("pml: needs the EPT format with A/D bits")
    return MmuKind(True, fmt, tdp_shadow_zero_check(fmt, root_level), root_level,
                   ad_enabled=fmt.ad_bits, pml=bool(pml))


def shadow_kind(fmt: SpteFormat, *, root_level: int = 4) -> MmuKind:
    """A kind for shadow tables (x86 format, root level 3, 4 or 5).

    KVM
    ---
    ``shadow_mmu_init_context`` / ``reset_shadow_zero_bits_mask`` in
    ``arch/x86/kvm/mmu/mmu.c``.
    """
    root_level = check_int("root_level", root_level)
    if not isinstance(fmt, SpteFormat):
        raise TypeError(f"fmt must be an SpteFormat, got {type(fmt).__name__}")
    if fmt.name != "x86" or fmt.tdp:
        raise ValueError("fmt: shadow tables need x86_format(tdp=False)")
    if root_level not in (3, 4, 5):
        raise ValueError(f"root_level must be 3, 4 or 5, got {root_level}")
    return MmuKind(False, fmt, shadow_zero_check_for(fmt, root_level), root_level,
                   ad_enabled=True)


@dataclass(frozen=True)
class RootInfo:
    """``struct kvm_mmu_root_info``: a root's host address and guest pgd.

    Parameters
    ----------
    hpa : int or None
        Host-physical address of the root table; None is ``INVALID_PAGE``.
    pgd : int
        Guest root it shadows (CR3); 0 for TDP roots.
    """

    hpa: Optional[int] = None
    pgd: int = 0

    def __post_init__(self) -> None:
        check_fields(self, hpa=(int, None), pgd=int)
        if self.hpa is not None:
            check_range("RootInfo.hpa", self.hpa, 0, 1 << 64)
        check_range("RootInfo.pgd", self.pgd, 0, 1 << 64)

    @property
    def valid(self) -> bool:
        """The root points to a table (``VALID_PAGE``)."""
        return self.hpa is not None


INVALID_ROOT = RootInfo()


@dataclass(eq=False)
class Mmu:
    """``struct kvm_mmu`` of the 2021 sketch: one vCPU's run-time MMU state.

    Attributes
    ----------
    kind : refimpl.host.kvm_mmu.MmuKind
        The tables' kind: the VM's (TDP) or the vCPU's own (shadow).
    root : refimpl.host.kvm_mmu.RootInfo
        ``mmu->root``: current root table and the pgd it was built for.
    root_role : refimpl.host.roles.PageRole or None
        ``mmu->root_role``: format of the tables KVM builds.
    prev_roots : list of refimpl.host.kvm_mmu.RootInfo
        ``mmu->prev_roots[3]``, most recent first.
    page_fault : callable or None
        ``mmu->page_fault``: ``page_fault(vcpu, addr, error_code)``, set by
        the MMU implementation (``kvm_tdp_page_fault``,
        ``paging64_page_fault``...).
    tlb : refimpl.host.tlb.Tlb
        The vCPU's TLB (:func:`refimpl.host.tlb.vcpu_tlb`), shared by all its MMUs; not part
        of ``struct kvm_mmu``, kept here for convenience.

    KVM
    ---
    ``struct kvm_mmu`` in ``arch/x86/include/asm/kvm_host.h``, reduced to the
    fields the 2021 sketch leaves in it (see :class:`refimpl.layouts.split.KvmMmu`).
    Guest-walk state (``cpu_role``, permission bitmap, ``guest_rsvd_check``)
    belongs in the paging context (:class:`refimpl.layouts.split.KvmPagingContext`).
    """

    kind: MmuKind
    root: RootInfo = INVALID_ROOT
    root_role: Optional[PageRole] = None
    prev_roots: list[RootInfo] = field(
        default_factory=lambda: [INVALID_ROOT] * KVM_MMU_NUM_PREV_ROOTS)
    page_fault: Optional[Callable[..., Any]] = None
    tlb: Tlb = field(default_factory=Tlb)

    def __post_init__(self) -> None:
        check_fields(self, kind=MmuKind, root=RootInfo, root_role=(PageRole, None),
                     prev_roots=list, tlb=Tlb)
        if self.page_fault is not None and not callable(self.page_fault):
            raise TypeError(f"Mmu.page_fault must be callable or None, "
                            f"got {type(self.page_fault).__name__}")
