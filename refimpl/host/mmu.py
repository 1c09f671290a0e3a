"""The operational MMU objects: the kind (per VM or per vCPU) and the MMU (per vCPU).

:mod:`refimpl.layouts.split` draws Paolo Bonzini's 2021 sketch as a *layout*: which
field lives in which struct. This module gives the same two structs
behaviour, so the TDP MMU (:mod:`refimpl.host.tdp_mmu`) and the shadow MMU
(``refimpl.host.shadow_mmu``) can run on them:

Glossary
--------
kind (:class:`MmuKind`, ``struct kvm_mmu_kind``)
    The state needed to *operate on* KVM's tables without a vCPU: the SPTE
    format, ``shadow_zero_check``, the root level, and for direct (TDP)
    tables the list of roots shared by every vCPU. One per VM for TDP
    (the sketch's ``kvm->arch.direct_mmu``); one per vCPU for shadow paging
    (``vcpu->arch.shadow_mmu``). It also keeps the counters the book plots
    (:class:`MmuStats`).
MMU (:class:`Mmu`, ``struct kvm_mmu``)
    What one vCPU needs while it runs on a set of roots: the current root
    (host address and the guest pgd it was built for), the root role, the
    three previous roots of a fast CR3 switch, the page-fault entry point,
    and a pointer to its kind.
TLB (:class:`Tlb`)
    The vCPU's cached translations. KVM does not have one; the CPU does,
    and KVM must flush it (``kvm_flush_remote_tlbs``) whenever it removes
    rights from an SPTE. Modelling it makes a missing flush observable.
hardware walk (:func:`hw_translate`)
    What the CPU does with the tables KVM built: an EPT/NPT walk of a GPA
    (:func:`refimpl.guest.ept.ept_translate`, :func:`refimpl.guest.ept.npt_translate`)
    or a 64-bit/PAE walk of a GVA with CR3 = the shadow root
    (:func:`refimpl.guest.walker.translate`), over host memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Optional

from refimpl.guest.cpu import CpuState
from refimpl.guest.ept import ept_translate, npt_translate
from refimpl.guest.formats import CR0, CR4, EFER, EPTP
from refimpl.host.roles import PageRole
from refimpl.guest.rsvd import RsvdBitsValidate
from refimpl.host.spte import SpteFormat, shadow_zero_check_for, tdp_shadow_zero_check
from refimpl.host.vm import HostMemory, Kvm, Vcpu
from refimpl.fast.scalar import translate
from refimpl.guest.walker import ACCESS_FETCH, ACCESS_USER, ACCESS_WRITE, check_access
from refimpl.errors import (check_bool, check_choice, check_fields, check_instance, check_int, check_items,
                     check_page_aligned, check_range)

__all__ = [
    "KVM_MMU_NUM_PREV_ROOTS",
    "ACCESS_WRITE",
    "ACCESS_FETCH",
    "ACCESS_USER",
    "MmuStats",
    "MmuKind",
    "RootInfo",
    "INVALID_ROOT",
    "TlbEntry",
    "Tlb",
    "Mmu",
    "HwResult",
    "tdp_kind",
    "shadow_kind",
    "make_eptp",
    "hw_translate_tdp",
    "hw_translate_shadow",
    "hw_translate",
    "flush_remote_tlbs",
    "vcpu_tlb",
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
        :class:`refimpl.host.tdp_mmu.TdpMmuPage`; shared by role.
    stats : refimpl.host.mmu.MmuStats

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


@dataclass(frozen=True)
class TlbEntry:
    """One cached translation of a page.

    Parameters
    ----------
    hpa : int
        Host-physical address of the 4 KiB page.
    level : int
        Level of the leaf that mapped it.
    writable, user, executable : bool
        Rights of the whole walk.
    dirty : bool
        The leaf's D bit was set when cached (a write through a clean
        entry walks again to set D, and to log it with PML).
    """

    hpa: int
    level: int
    writable: bool
    user: bool
    executable: bool
    dirty: bool


class Tlb:
    """A vCPU's TLB: translations tagged by root, filled by hardware walks.

    KVM
    ---
    Not a KVM object: the CPU's TLB (tagged by EPTP/VPID on Intel, ASID on
    AMD), flushed by ``kvm_flush_remote_tlbs`` / ``kvm_vcpu_flush_tlb_*``.
    """

    def __init__(self) -> None:
        self.entries: dict[tuple[int, int], TlbEntry] = {}
        self.flushes = 0

    def lookup(self, root_hpa: int, addr: int, access: int) -> Optional[TlbEntry]:
        """A cached entry that allows ``access`` without a walk, else None."""
        root_hpa = check_int("root_hpa", root_hpa)
        addr = check_int("addr", addr)
        access = check_int("access", access)
        e = self.entries.get((root_hpa, addr >> 12))
        if e is None:
            return None
        if access & ACCESS_WRITE and not (e.writable and e.dirty):
            return None
        if access & ACCESS_FETCH and not e.executable:
            return None
        if access & ACCESS_USER and not e.user:
            return None
        return e

    def fill(self, root_hpa: int, addr: int, entry: TlbEntry) -> None:
        """Cache ``entry`` for the page of ``addr``."""
        root_hpa = check_int("root_hpa", root_hpa)
        addr = check_int("addr", addr)
        self.entries[(root_hpa, addr >> 12)] = entry

    def flush_all(self) -> None:
        """Drop every entry."""
        self.entries.clear()
        self.flushes += 1

    def flush_addr(self, root_hpa: int, addr: int) -> None:
        """Drop the entry for one page (INVLPG)."""
        root_hpa = check_int("root_hpa", root_hpa)
        addr = check_int("addr", addr)
        self.entries.pop((root_hpa, addr >> 12), None)


@dataclass(eq=False)
class Mmu:
    """``struct kvm_mmu`` of the 2021 sketch: one vCPU's run-time MMU state.

    Attributes
    ----------
    kind : refimpl.host.mmu.MmuKind
        The tables' kind: the VM's (TDP) or the vCPU's own (shadow).
    root : refimpl.host.mmu.RootInfo
        ``mmu->root``: current root table and the pgd it was built for.
    root_role : refimpl.host.roles.PageRole or None
        ``mmu->root_role``: format of the tables KVM builds.
    prev_roots : list of refimpl.host.mmu.RootInfo
        ``mmu->prev_roots[3]``, most recent first.
    page_fault : callable or None
        ``mmu->page_fault``: ``page_fault(vcpu, addr, error_code)``, set by
        the MMU implementation (``kvm_tdp_page_fault``,
        ``paging64_page_fault``...).
    tlb : refimpl.host.mmu.Tlb
        The vCPU's TLB (:func:`vcpu_tlb`), shared by all its MMUs; not part
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


def vcpu_tlb(vcpu: Vcpu) -> Tlb:
    """The TLB of ``vcpu``, made on first use; pass it to every Mmu of the vCPU.

    KVM
    ---
    Not a KVM structure: the processor's TLB. Its entries are tagged by root
    (VPID/EPTP on Intel, ASID on AMD), so L1's and L2's translations live
    side by side, and ``kvm_flush_remote_tlbs`` (``KVM_REQ_TLB_FLUSH``,
    ``kvm_vcpu_flush_tlb_all`` in ``arch/x86/kvm/x86.c``) drops them all.
    """
    check_instance("vcpu", vcpu, Vcpu)
    if vcpu.tlb is None:
        vcpu.tlb = Tlb()
    return vcpu.tlb


def flush_remote_tlbs(kind: MmuKind, vcpus: list[Vcpu]) -> None:
    """Flush every vCPU's TLB and count one flush (``kvm_flush_remote_tlbs``).

    Raises
    ------
    TypeError
        ``kind`` not an :class:`MmuKind`, ``vcpus`` not an iterable of
        :class:`refimpl.host.vm.Vcpu`.
    """
    check_instance("kind", kind, MmuKind)
    vcpus = check_items("vcpus", vcpus, Vcpu)
    kind.stats.tlb_flushes += 1
    for v in vcpus:
        if v.tlb is not None:
            v.tlb.flush_all()


# ---------------------------------------------------------------------------
# The hardware walk of KVM's tables.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HwResult:
    """What the CPU did with an access through KVM's tables.

    Parameters
    ----------
    hpa : int or None
        The host-physical address reached, or None on a fault.
    level : int or None
        Leaf level (or where the walk stopped).
    fault : str or None
        None, ``"not_present"``, ``"permission"`` (EPT violation / #NPF /
        #PF) or ``"rsvd"`` (EPT misconfiguration or PFERR.RSVD: the MMIO
        path).
    error_code : int
        The walker's error code (PFERR bits).
    writable, user, executable : bool
        Rights of the whole walk (only meaningful on success).
    dirty : bool
        The leaf is dirty after the walk (always True after a write).
    trace : tuple of (level, entry hpa, entry value)
        The SPTEs read, top down, before A/D updates.
    """

    hpa: Optional[int]
    level: Optional[int]
    fault: Optional[str]
    error_code: int = 0
    writable: bool = False
    user: bool = False
    executable: bool = False
    dirty: bool = False
    trace: tuple[tuple[int, int, int], ...] = ()

    def tlb_entry(self) -> TlbEntry:
        """The TLB entry for a successful walk."""
        if self.hpa is None or self.level is None:
            raise ValueError("a faulting walk has no TLB entry")
        return TlbEntry(self.hpa & ~0xFFF, self.level, self.writable, self.user,
                        self.executable, self.dirty)


def make_eptp(root_hpa: int, root_level: int, ad: bool) -> int:
    """An EPT pointer: WB memory type, walk length, A/D enable, root."""
    root_hpa = check_page_aligned("root_hpa", root_hpa)
    if root_hpa >> 52:
        raise ValueError(f"root_hpa must be below 2**52, got {root_hpa:#x}")
    root_level = check_choice("root_level", root_level, (4, 5))
    ad = check_bool("ad", ad)
    return (EPTP.MT.set(0, 6) | EPTP.WALK_LENGTH.set(0, root_level - 1)
            | (EPTP.AD.bit if ad else 0) | (root_hpa & EPTP.ADDR.mask))


def _rights(trace: tuple[tuple[int, int, int], ...], ept: bool) -> tuple[bool, bool, bool, int]:
    w = u = x = True
    for _, _, e in trace:
        w &= bool(e & 2)
        if ept:
            x &= bool(e & 4)
        else:
            u &= bool(e & 4)
            x &= not e >> 63
    return w, u, x, trace[-1][2] if trace else 0


def hw_translate_tdp(host: HostMemory, fmt: SpteFormat, root_hpa: int, root_level: int,
                     gpa: int, access: int = 0, *, ad: bool = True) -> HwResult:
    """The CPU's walk of KVM's EPT or NPT tables for a guest-physical access.

    Parameters
    ----------
    host : refimpl.host.vm.HostMemory
        Holds the tables; the CPU sets A/D bits there.
    fmt : refimpl.host.spte.SpteFormat
        ``"ept"`` walks as EPT, ``"x86"`` as NPT (a long-mode user walk).
    root_hpa, root_level : int
        The root table and its level (4 or 5).
    gpa : int
        The guest-physical address accessed.
    access : int
        ``ACCESS_WRITE`` and/or ``ACCESS_FETCH`` (0: a read).
    ad : bool
        EPT A/D enabled in the EPTP (ignored for NPT, which always has A/D).

    Returns
    -------
    refimpl.host.mmu.HwResult

    KVM
    ---
    Not KVM: the processor, modelled with the same walker KVM uses for
    nested EPT/NPT (``paging_tmpl.h``), with the host's MAXPHYADDR.
    """
    check_instance("host", host, HostMemory)
    check_instance("fmt", fmt, SpteFormat)
    root_hpa = check_int("root_hpa", root_hpa)
    root_level = check_int("root_level", root_level)
    gpa = check_int("gpa", gpa)
    access = check_access(access, ACCESS_WRITE | ACCESS_FETCH)
    if fmt.name == "ept":
        r = ept_translate(host.mem, make_eptp(root_hpa, root_level, ad), gpa, access,
                          maxphyaddr=host.maxphyaddr, execute_only=True)
        if r.fault is not None:
            reason = r.fault.reason.name
            kind = ("rsvd" if r.fault.kind == "misconfig" else
                    "permission" if reason == "PERMISSION" else "not_present")
            return HwResult(None, r.level, kind, r.fault.error_code, trace=r.trace)
        w, _, x, leaf = _rights(r.trace, True)
        dirty = bool(access & ACCESS_WRITE) or not ad or bool(leaf & fmt.dirty_mask)
        return HwResult(r.gpa, r.level, None, 0, w, True, x, dirty, r.trace)
    cr4 = CR4.PAE.bit | (CR4.LA57.bit if root_level == 5 else 0)
    efer = EFER.LME.bit | EFER.LMA.bit | EFER.NXE.bit
    t = npt_translate(host.mem, root_hpa, gpa, access, cr4=cr4, efer=efer,
                      maxphyaddr=host.maxphyaddr)
    return _from_translate(t, access, fmt)


def _from_translate(t: Any, access: int, fmt: SpteFormat) -> HwResult:
    if t.fault is not None:
        ec = t.fault.error_code
        if ec & 0x8:
            kind = "rsvd"
        elif ec & 0x1:
            kind = "permission"
        else:
            kind = "not_present"
        return HwResult(None, t.level, kind, ec, trace=t.trace)
    w, u, x, leaf = _rights(t.trace, False)
    dirty = bool(access & ACCESS_WRITE) or bool(leaf & fmt.dirty_mask)
    return HwResult(t.gpa, t.level, None, 0, w, u, x, dirty, t.trace)


@lru_cache(maxsize=256)
def _shadow_hw_cpu(root_hpa: int, root_level: int, smep: bool, smap: bool, ac: bool,
                  maxphyaddr: int) -> CpuState:
    """The registers :func:`hw_translate_shadow` gives the CPU.

    CR0.PG|PE|WP, CR4.PAE (LA57 for a five-level root), EFER.NX (and long
    mode for a four- or five-level root); SMEP, SMAP and RFLAGS.AC the
    guest's. Made once per distinct set, as building a ``CpuState`` costs
    more than the walk.
    """
    cr4 = CR4.PAE.bit | (CR4.LA57.bit if root_level == 5 else 0)
    cr4 |= (CR4.SMEP.bit if smep else 0) | (CR4.SMAP.bit if smap else 0)
    efer = EFER.NXE.bit | ((EFER.LME.bit | EFER.LMA.bit) if root_level >= 4 else 0)
    return CpuState(cr0=CR0.PE.bit | CR0.PG.bit | CR0.WP.bit, cr3=root_hpa, cr4=cr4, efer=efer,
                    rflags=(1 << 18) if ac else 0, maxphyaddr=maxphyaddr)


def hw_translate_shadow(host: HostMemory, fmt: SpteFormat, root_hpa: int, root_level: int,
                        gva: int, access: int = 0, *, cr4_smep: bool = False,
                        cr4_smap: bool = False, rflags_ac: bool = False) -> HwResult:
    """The CPU's walk of KVM's shadow tables for a guest-virtual access.

    The CPU runs with the *hardware* control registers KVM chose for
    shadow paging: CR0.PG|PE|WP (WP always 1: KVM emulates CR0.WP=0 in the
    SPTEs), CR4.PAE (and LA57 for a 5-level root), EFER.NX, long mode for
    4/5-level roots; only SMEP and SMAP (and RFLAGS.AC) are the guest's.

    Parameters
    ----------
    host : refimpl.host.vm.HostMemory
    fmt : refimpl.host.spte.SpteFormat
        The shadow format (for the D mask).
    root_hpa : int
        The shadow root (for root level 3: the PAE PDPT, 32-byte aligned,
        below 4 GiB).
    root_level : int
        3 (PAE), 4 or 5.
    gva : int
    access : int
        ``ACCESS_WRITE``, ``ACCESS_USER``, ``ACCESS_FETCH`` ORed.

    Returns
    -------
    refimpl.host.mmu.HwResult

    KVM
    ---
    Not KVM: the processor; ``vmx_set_cr0``/``vmx_set_cr4`` (``hw_cr0``,
    ``hw_cr4`` without EPT) choose the registers.
    """
    root_hpa = check_int("root_hpa", root_hpa)
    root_level = check_int("root_level", root_level)
    gva = check_int("gva", gva)
    access = check_int("access", access)
    check_instance("host", host, HostMemory)
    check_instance("fmt", fmt, SpteFormat)
    if root_level not in (3, 4, 5):
        raise ValueError(f"root_level must be 3, 4 or 5, got {root_level}")
    cpu = _shadow_hw_cpu(root_hpa, root_level, bool(cr4_smep), bool(cr4_smap), bool(rflags_ac),
                         host.maxphyaddr)
    t = translate(host.mem, cpu, gva, access)
    return _from_translate(t, access & ACCESS_WRITE, fmt)


def hw_translate(kvm: Kvm, vcpu: Vcpu, addr: int, access: int = 0, **shadow: bool) -> HwResult:
    """The CPU's access through ``vcpu``'s current root, without the TLB.

    For a direct kind ``addr`` is a GPA and the walk is EPT/NPT; otherwise
    a GVA through the shadow root (``shadow`` passes ``cr4_smep``,
    ``cr4_smap``, ``rflags_ac``). An invalid root is a not-present fault.
    """
    addr = check_int("addr", addr)
    access = check_int("access", access)
    check_instance("kvm", kvm, Kvm)
    check_instance("vcpu", vcpu, Vcpu)
    mmu = vcpu.mmu
    if mmu is None:
        raise ValueError("vcpu has no MMU")
    if not mmu.root.valid:
        return HwResult(None, None, "not_present")
    assert mmu.root.hpa is not None
    kind = mmu.kind
    if kind.direct:
        ad = kind.ad_enabled and not (mmu.root_role is not None and mmu.root_role.ad_disabled)
        return hw_translate_tdp(kvm.host, kind.spte_format, mmu.root.hpa, kind.root_level,
                                addr, access & (ACCESS_WRITE | ACCESS_FETCH), ad=ad)
    return hw_translate_shadow(kvm.host, kind.spte_format, mmu.root.hpa, kind.root_level,
                               addr, access, **shadow)
