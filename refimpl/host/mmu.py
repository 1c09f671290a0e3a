"""The MMU objects, the CPU's walk of KVM's tables, and the words for outcomes.

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
page (:class:`MmuPage`, ``struct kvm_mmu_page``)
    One page of KVM's tables, built by either MMU.
TLB (:class:`Tlb`)
    The vCPU's cached translations. KVM does not have one; the CPU does,
    and KVM must flush it (``kvm_flush_remote_tlbs``) whenever it removes
    rights from an SPTE. Modelling it makes a missing flush observable.
outcome (:class:`RetPf`, :class:`HwFault`, :class:`AccessPath`...)
    How a fault, a hardware walk or a guest access ended, as enum values.
hardware walk (:func:`hw_translate`)
    What the CPU does with the tables KVM built: an EPT/NPT walk of a GPA
    (:func:`refimpl.guest.ept.ept_translate`, :func:`refimpl.guest.ept.npt_translate`)
    or a 64-bit/PAE walk of a GVA with CR3 = the shadow root
    (:func:`refimpl.guest.walker.translate`), over host memory.

Where things live: the two structs in ``refimpl/host/kvm_mmu.py``, the page
in ``mmu_page.py``, the TLB in ``tlb.py``, the outcomes in ``outcomes.py``
(all in ``refimpl/host``). This module re-exports them, and the API
reference documents them here; what needs the VM is defined here: the
remote TLB flush and the hardware walk.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Optional

from refimpl.errors import check_bool, check_choice, check_instance, check_int, check_items, check_page_aligned
from refimpl.guest.cpu import CpuState
from refimpl.guest.ept import ept_translate, npt_translate
from refimpl.guest.formats import CR0, CR4, EFER, EPTP, PFERR
from refimpl.guest.walker import ACCESS_FETCH, ACCESS_USER, ACCESS_WRITE, check_access
from refimpl.fast.scalar import translate
from refimpl.host.kvm_mmu import (
    INVALID_ROOT, KVM_MMU_NUM_PREV_ROOTS, Mmu, MmuKind, MmuStats, RootInfo, shadow_kind, tdp_kind,
)
from refimpl.host.mmu_page import SPTE_ENT_PER_PAGE, MmuPage
from refimpl.host.outcomes import AccessPath, AccessResult, GuestStore, HwFault, RetPf
from refimpl.host.spte import SpteFormat
from refimpl.host.tlb import Tlb, TlbEntry, vcpu_tlb
from refimpl.host.vm import HostMemory, Kvm, Vcpu

__all__ = [
    "HwResult",
    "make_eptp",
    "hw_translate_tdp",
    "hw_translate_shadow",
    "hw_translate",
    "flush_remote_tlbs",
]


def flush_remote_tlbs(kind: MmuKind, vcpus: list[Vcpu]) -> None:
    """Flush every vCPU's TLB and count one flush (``kvm_flush_remote_tlbs``).

    Raises
    ------
    TypeError
        ``kind`` not an :class:`MmuKind`, ``vcpus`` not an iterable of
        :class:`refimpl.host.vm.Vcpu`.
    """
    check_instance("kind", kind, MmuKind)
    _flush_remote_tlbs(kind, check_items("vcpus", vcpus, Vcpu))


def _flush_remote_tlbs(kind: MmuKind, vcpus) -> None:
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
    fault : refimpl.host.outcomes.HwFault or None
        None, or why the walk stopped: ``NOT_PRESENT``, ``PERMISSION``
        (EPT violation / #NPF / #PF) or ``RSVD`` (EPT misconfiguration or
        PFERR.RSVD: the MMIO path).
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
    fault: Optional[HwFault]
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
    return _make_eptp(root_hpa, root_level, ad)


def _make_eptp(root_hpa: int, root_level: int, ad: bool) -> int:
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
    return _hw_translate_tdp(host, fmt, root_hpa, root_level, gpa, access, bool(ad))


def _hw_translate_tdp(host: HostMemory, fmt: SpteFormat, root_hpa: int, root_level: int,
                      gpa: int, access: int, ad: bool) -> HwResult:
    """:func:`hw_translate_tdp` on checked arguments (the MMUs' path)."""
    if fmt.name == "ept":
        r = ept_translate(host.mem, _make_eptp(root_hpa, root_level, ad), gpa, access,
                          maxphyaddr=host.maxphyaddr, execute_only=True)
        if r.fault is not None:
            reason = r.fault.reason.name
            kind = (HwFault.RSVD if r.fault.kind == "misconfig" else
                    HwFault.PERMISSION if reason == "PERMISSION" else HwFault.NOT_PRESENT)
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
        if ec & PFERR.RSVD:
            kind = HwFault.RSVD
        elif ec & PFERR.P:
            kind = HwFault.PERMISSION
        else:
            kind = HwFault.NOT_PRESENT
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
    return _hw_translate_shadow(host, fmt, root_hpa, root_level, gva, access, bool(cr4_smep),
                                bool(cr4_smap), bool(rflags_ac))


def _hw_translate_shadow(host: HostMemory, fmt: SpteFormat, root_hpa: int, root_level: int,
                         gva: int, access: int, cr4_smep: bool, cr4_smap: bool,
                         rflags_ac: bool) -> HwResult:
    """:func:`hw_translate_shadow` on checked arguments (the MMUs' path)."""
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
        return HwResult(None, None, HwFault.NOT_PRESENT)
    assert mmu.root.hpa is not None
    kind = mmu.kind
    if kind.direct:
        ad = kind.ad_enabled and not (mmu.root_role is not None and mmu.root_role.ad_disabled)
        return hw_translate_tdp(kvm.host, kind.spte_format, mmu.root.hpa, kind.root_level,
                                addr, access & (ACCESS_WRITE | ACCESS_FETCH), ad=ad)
    return hw_translate_shadow(kvm.host, kind.spte_format, mmu.root.hpa, kind.root_level,
                               addr, access, **shadow)
