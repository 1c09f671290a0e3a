"""The TDP MMU: KVM's EPT/NPT tables, built per VM and shared by role.

With TDP (two-dimensional paging: Intel EPT, AMD NPT) the CPU translates
guest-physical addresses itself through tables KVM builds, so KVM needs to
know nothing about the guest's page tables. Its tables depend only on the
memslots, which are per VM, so one set of tables serves every vCPU with the
same root role (the roles differ only for SMM and for L2 guests).

Glossary
--------
root
    A top-level table (:class:`refimpl.host.mmu_page.MmuPage` with ``role.level`` 4 or 5) on
    ``kvm->arch.tdp_mmu_roots`` (here ``kind.roots``); found by role and
    reference-counted (:meth:`TdpMmu.get_root`, :meth:`TdpMmu.put_root`).
fault path
    GPA → gfn → memslot → host frame → the largest level the memslot and
    the host mapping allow → SPTEs installed top down
    (:meth:`TdpMmu.page_fault`). No memslot: an MMIO SPTE.
zap
    Clear SPTEs (and free the tables below them); the CPU's TLBs must be
    flushed before the frames can be reused.
invalidate
    Mark every root obsolete; vCPUs load new roots at their next entry.
dirty logging
    Turning it on write-protects the slot's SPTEs (or, with PML, clears
    their D bits) so every first write is seen; turning it off lets the
    slot be mapped with huge pages again, which is what Ben Gardon's 2021
    series made fast (:class:`RecoveryStrategy`).

Every SPTE store, bulk read, TLB flush and page fault is counted in the
kind's :class:`refimpl.host.kvm_mmu.MmuStats`. Nothing runs concurrently, so KVM's
atomic updates, frozen SPTEs and RCU-deferred frees are plain stores and
immediate frees here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from enum import Enum
from typing import Iterable, Iterator, Optional

from refimpl.guest.formats import PFERR
from refimpl.guest.walker import ACCESS_FETCH, ACCESS_WRITE
from refimpl.host.kvm_mmu import INVALID_ROOT, Mmu, MmuKind, RootInfo, tdp_kind
from refimpl.host.outcomes import AccessPath, AccessResult, HwFault, RetPf
from refimpl.host.mmu import HwResult, _flush_remote_tlbs, _hw_translate_tdp
from refimpl.host.mmu_page import MmuPage
from refimpl.host.tlb import TlbEntry, vcpu_tlb
from refimpl.host.roles import ACC_ALL, CpuRole, PageRole, calc_tdp_root_role
from refimpl.host.spte import (
    MMIO_SPTE_GEN_MASK,
    PT_WRITABLE_MASK,
    SpteFormat,
    _last,
    _mmio,
    _present,
    _to_pfn,
    _writable,
    ept_format,
    get_mmio_spte_generation,
    make_huge_spte,
    make_mmio_spte,
    make_nonleaf_spte,
    make_small_spte,
    make_spte,
)
from refimpl.host.vm import PAGE_SIZE, HostMemory, Kvm, Memslot, MemslotChange, MemslotChangeKind, Vcpu
from refimpl.errors import check_bugs, check_instance, check_int, check_range

__all__ = [
    "BUGS",
    "RecoveryStrategy",
    "FaultResult",
    "LeafSpte",
    "TdpMmu",
    "level_pages",
    "measure_disable_dirty_logging",
]

#: Replayed bugs (:mod:`refimpl.bugs`): each name switches one rule of this
#: module off, for the tests and the book; none is on by default.
BUGS: dict[str, str] = {
    "nx_huge_exec": (
        "the iTLB multihit mitigation's rule skipped (CVE-2018-12207): with "
        "nx_huge_pages on, a fetch fault is still mapped huge and huge SPTEs "
        "stay executable"),
    "no_flush_on_wrprot": (
        "SPTEs write-protected for dirty logging without flushing the vCPUs' "
        "TLBs, so a cached writable translation keeps writing unlogged"),
}

_TABLE = struct.Struct("<512Q")
_U64 = struct.Struct("<Q")


def level_pages(level: int) -> int:
    """4 KiB pages mapped by one SPTE at ``level`` (1, 512, 512**2...)."""
    level = check_range("level", level, 1, 6)
    return 1 << (9 * (level - 1))


def _index(gfn: int, level: int) -> int:
    return (gfn >> (9 * (level - 1))) & 511


class RecoveryStrategy(Enum):
    """How huge pages come back when dirty logging is disabled.

    Attributes
    ----------
    ZAP_EACH
        What v5.15 did: zap every 4 KiB SPTE that could be part of a huge
        page, flushing TLBs after each zap (``tdp_mmu_zap_spte_atomic``);
        the guest refaults and gets a huge page.
    ZAP_BATCHED
        Zap the same SPTEs, with one TLB flush at the end; the guest still
        refaults. No KVM release did exactly this: the 2022 change
        (5ba7c4c6d1c7) zaps the non-leaf SPTE above them instead, and
        batched flushing for this path came with v6.13 (35ef80eb29ab).
        Neither is modelled.
    IN_PLACE
        Replace each table that could be a huge page by the huge SPTE,
        built without a vCPU; one flush; no refaults. Ben Gardon's 2021 RFC
        proposed it; KVM got it in v6.13 from a later series
        (``kvm_tdp_mmu_recover_huge_pages``, building the SPTE with
        ``make_huge_spte``; 13e2e4f62a4b).
    """

    ZAP_EACH = "zap_each"
    ZAP_BATCHED = "zap_batched"
    IN_PLACE = "in_place"


@dataclass(frozen=True)
class FaultResult:
    """The outcome of :meth:`TdpMmu.page_fault` (``RET_PF_*``).

    Parameters
    ----------
    outcome : refimpl.host.outcomes.RetPf
        ``FIXED`` (an SPTE was installed or changed), ``SPURIOUS`` (the
        SPTE already allowed the access), ``EMULATE`` (MMIO or a write to
        a read-only memslot: userspace or the emulator handles it).
    level : int or None
        Level of the SPTE installed.
    spte : int or None
        The SPTE installed.
    mmio : bool
        The access is MMIO (no memslot, or a read-only slot written).
    """

    outcome: RetPf
    level: Optional[int] = None
    spte: Optional[int] = None
    mmio: bool = False


@dataclass(frozen=True)
class LeafSpte:
    """A leaf SPTE found by :meth:`TdpMmu.leaf_sptes`.

    Parameters
    ----------
    root : refimpl.host.mmu_page.MmuPage
    level : int
    gfn : int
        First gfn mapped.
    spte : int
    sptep : int
        Host-physical address of the SPTE.
    """

    root: MmuPage
    level: int
    gfn: int
    spte: int
    sptep: int


class TdpMmu:
    """The TDP MMU of one VM.

    Parameters
    ----------
    kvm : refimpl.host.vm.Kvm
        The VM; the TDP MMU registers itself as a memslot listener.
    kind : refimpl.host.kvm_mmu.MmuKind or None
        The VM's kind (``kvm->arch.direct_mmu`` of the sketch); default
        :func:`refimpl.host.kvm_mmu.tdp_kind` of ``fmt``.
    fmt : refimpl.host.spte.SpteFormat or None
        Used when ``kind`` is None (default: EPT with A/D and the host's
        MAXPHYADDR).
    host_max_level : int
        Largest page the host maps guest memory with: 1 (4 KiB), 2 (THP),
        3 (1 GiB hugetlbfs) (``host_pfn_mapping_level``).
    zap_all_on_delete : bool
        Memslot deletion/move invalidates every root (``kvm_mmu_zap_all_fast``,
        the default ``KVM_X86_QUIRK_SLOT_ZAP_ALL``); False zaps only the
        slot's range.
    eager_split : bool
        Enabling dirty logging splits huge pages at once (``eager_page_split``).
    recovery : refimpl.host.tdp_mmu.RecoveryStrategy
        How disabling dirty logging recovers huge pages.
    bugs : iterable of str
        Names from :data:`BUGS` to switch on (default: none, the correct
        MMU); see :mod:`refimpl.bugs`.

    KVM
    ---
    ``arch/x86/kvm/mmu/tdp_mmu.c`` and the TDP parts of ``mmu.c``.
    """

    def __init__(self, kvm: Kvm, kind: Optional[MmuKind] = None, *,
                 fmt: Optional[SpteFormat] = None, host_max_level: int = 3,
                 zap_all_on_delete: bool = True, eager_split: bool = False,
                 recovery: RecoveryStrategy = RecoveryStrategy.IN_PLACE,
                 bugs: Iterable[str] = ()) -> None:
        bugs = check_bugs("bugs", bugs, BUGS)
        host_max_level = check_int("host_max_level", host_max_level)
        if not isinstance(kvm, Kvm):
            raise TypeError(f"kvm must be a Kvm, got {type(kvm).__name__}")
        if kind is None:
            kind = tdp_kind(fmt if fmt is not None else ept_format(phys_bits=kvm.host.maxphyaddr))
        if not isinstance(kind, MmuKind) or not kind.direct:
            raise TypeError("kind must be a direct MmuKind (refimpl.host.kvm_mmu.tdp_kind)")
        if kind.spte_format.phys_bits != kvm.host.maxphyaddr:
            raise ValueError("kind: its format's phys_bits must equal the host's MAXPHYADDR")
        if host_max_level not in (1, 2, 3):
            raise ValueError(f"host_max_level must be 1, 2 or 3, got {host_max_level}")
        if not isinstance(recovery, RecoveryStrategy):
            raise TypeError(f"recovery must be a RecoveryStrategy, got {recovery!r}")
        self.kvm = kvm
        self.kind = kind
        self.fmt = kind.spte_format
        self.host_max_level = host_max_level
        self.zap_all_on_delete = bool(zap_all_on_delete)
        self.eager_split = bool(eager_split)
        self.recovery = recovery
        self.bugs = bugs
        self.pages: dict[int, MmuPage] = {}
        self._roles: dict[bool, PageRole] = {}
        kvm.listeners.append(self)

    # ------------------------------------------------------------------
    # Counting primitives
    # ------------------------------------------------------------------

    @property
    def stats(self):  # noqa: D401 - property
        """The kind's counters (:class:`refimpl.host.kvm_mmu.MmuStats`)."""
        return self.kind.stats

    def _read(self, sptep: int) -> int:
        return _U64.unpack_from(self.kvm.host.mem.buffer, sptep)[0]

    def _write(self, sptep: int, spte: int) -> None:
        _U64.pack_into(self.kvm.host.mem.buffer, sptep, spte)
        self.kind.stats.spte_writes += 1

    def flush(self) -> None:
        """``kvm_flush_remote_tlbs``: flush every vCPU's TLB; counted."""
        _flush_remote_tlbs(self.kind, self.kvm.vcpus)

    def _alloc_table(self, role: PageRole, gfn: int) -> MmuPage:
        pfn = self.kvm.host.alloc_page()
        sp = MmuPage.tdp(role, gfn, pfn)
        self.pages[pfn] = sp
        self.kind.stats.pages_allocated += 1
        return sp

    def _free_subtree(self, pfn: int, level: int) -> None:
        """Free a table no longer reachable (``handle_removed_pt``)."""
        entries = _TABLE.unpack_from(self.kvm.host.mem.buffer, pfn * PAGE_SIZE)
        self.kind.stats.sptes_visited += 512
        if level > 1:
            for e in entries:
                if _present(e) and not _last(e, level):
                    self._free_subtree(_to_pfn(e), level - 1)
        del self.pages[pfn]
        self.kvm.host.free_page(pfn)
        self.kind.stats.pages_freed += 1

    # ------------------------------------------------------------------
    # Roots
    # ------------------------------------------------------------------

    def root_role(self, vcpu: Vcpu) -> PageRole:
        """The root role of ``vcpu`` (``kvm_calc_tdp_mmu_root_page_role``)."""
        self._check_vcpu(vcpu)
        return self._root_role(vcpu)

    def _root_role(self, vcpu: Vcpu) -> PageRole:
        role = self._roles.get(vcpu.smm)
        if role is None:
            role = calc_tdp_root_role(CpuRole(PageRole(smm=int(vcpu.smm))),
                                      self.kind.root_level, self.kind.ad_enabled)
            self._roles[vcpu.smm] = role
        return role

    def _check_vcpu(self, vcpu: object) -> None:
        check_instance("vcpu", vcpu, Vcpu)
        if not any(v is vcpu for v in self.kvm.vcpus):
            raise ValueError("vcpu must be a vCPU of this VM")

    def init_vcpu(self, vcpu: Vcpu) -> Mmu:
        """Give ``vcpu`` its ``kvm_mmu`` on this VM's kind (``init_kvm_tdp_mmu``)."""
        self._check_vcpu(vcpu)
        return self._init_vcpu(vcpu)

    def _init_vcpu(self, vcpu: Vcpu) -> Mmu:
        vcpu.mmu = Mmu(self.kind, root_role=self._root_role(vcpu), page_fault=self.page_fault,
                       tlb=vcpu_tlb(vcpu))
        return vcpu.mmu

    def get_root(self, role: PageRole) -> MmuPage:
        """A valid root with this role, shared if one exists (``kvm_tdp_mmu_alloc_root``).

        Reuse is by ``role.word``; a new root starts with two references:
        the caller's and the roots list's.
        """
        for root in self.kind.roots:
            if not root.invalid and root.role.word == role.word:
                root.root_count += 1
                return root
        root = self._alloc_table(role, 0)
        root.root_count = 2
        self.kind.roots.append(root)
        return root

    def put_root(self, root: MmuPage) -> None:
        """Drop a reference; free the root's tables at zero (``kvm_tdp_mmu_put_root``)."""
        check_instance("root", root, MmuPage)
        if root.root_count <= 0:
            raise ValueError("root: reference count already zero")
        root.root_count -= 1
        if root.root_count == 0:
            self.kind.roots.remove(root)
            self._free_subtree(root.pfn, root.role.level)

    def load(self, vcpu: Vcpu) -> MmuPage:
        """Make sure ``vcpu`` runs on a valid root (``kvm_mmu_reload``/``kvm_mmu_load``)."""
        self._check_vcpu(vcpu)
        return self._load(vcpu)

    def _load(self, vcpu: Vcpu) -> MmuPage:
        mmu = vcpu.mmu
        if mmu is None or mmu.kind is not self.kind:
            mmu = self._init_vcpu(vcpu)
        role = self._root_role(vcpu)
        if mmu.root.valid:
            assert mmu.root.hpa is not None
            root = self.pages.get(mmu.root.hpa // PAGE_SIZE)
            # Equal PageRole values are equal role words (and cheaper to compare).
            if root is not None and not root.invalid and root.role == role:
                return root
            if root is not None:
                self.put_root(root)
        root = self.get_root(role)
        mmu.root = RootInfo(root.hpa, 0)
        mmu.root_role = role
        return root

    def unload(self, vcpu: Vcpu) -> None:
        """Drop ``vcpu``'s root (``kvm_mmu_unload``)."""
        self._check_vcpu(vcpu)
        mmu = vcpu.mmu
        if mmu is not None and mmu.root.valid:
            assert mmu.root.hpa is not None
            root = self.pages.get(mmu.root.hpa // PAGE_SIZE)
            if root is not None:
                self.put_root(root)
            mmu.root = INVALID_ROOT

    def invalidate_all_roots(self) -> None:
        """Obsolete every root, zap it, and flush (``kvm_mmu_zap_all_fast``).

        vCPUs keep a reference until their next entry, when :meth:`load`
        gives them a new root; the list's reference is dropped now.
        """
        roots = [r for r in self.kind.roots if not r.invalid]
        for root in roots:
            root.role = root.role.replace(invalid=1)
        for root in roots:
            self._zap_table(root.pfn, root.role.level, 0, 0, 1 << 62, root.role.level)
        if roots:
            self.flush()
        for root in roots:
            self.put_root(root)

    # ------------------------------------------------------------------
    # Walking
    # ------------------------------------------------------------------

    def walk(self, root: MmuPage, gfn: int) -> list[tuple[int, int, int]]:
        """The SPTEs on the path to ``gfn``: ``(level, sptep, spte)``, top down
        (``kvm_tdp_mmu_get_walk``)."""
        gfn = check_int("gfn", gfn)
        check_instance("root", root, MmuPage)
        return self._walk(root, gfn)

    def _walk(self, root: MmuPage, gfn: int) -> list[tuple[int, int, int]]:
        out = []
        pfn = root.pfn
        for level in range(root.role.level, 0, -1):
            sptep = pfn * PAGE_SIZE + _index(gfn, level) * 8
            spte = self._read(sptep)
            out.append((level, sptep, spte))
            if not _present(spte) or _last(spte, level):
                break
            pfn = _to_pfn(spte)
        return out

    def _iter_leaves(self, pfn: int, level: int, base_gfn: int, start: int,
                     end: int) -> Iterator[tuple[int, int, int, int]]:
        entries = _TABLE.unpack_from(self.kvm.host.mem.buffer, pfn * PAGE_SIZE)
        span = level_pages(level)
        for i, e in enumerate(entries):
            g = base_gfn + i * span
            if g + span <= start or g >= end or not _present(e):
                continue
            if _last(e, level):
                yield level, pfn * PAGE_SIZE + i * 8, e, g
            else:
                yield from self._iter_leaves(_to_pfn(e), level - 1, g, start, end)

    def _iter_leaf_tables(self, pfn: int, level: int, base_gfn: int, start: int,
                          end: int) -> Iterator[tuple[int, int, int, tuple[int, ...]]]:
        """Tables holding leaves of ``[start, end)``: ``(pfn, level, base_gfn, entries)``."""
        entries = _TABLE.unpack_from(self.kvm.host.mem.buffer, pfn * PAGE_SIZE)
        span = level_pages(level)
        has_leaf = False
        for i, e in enumerate(entries):
            g = base_gfn + i * span
            if g + span <= start or g >= end or not _present(e):
                continue
            if _last(e, level):
                has_leaf = True
            else:
                yield from self._iter_leaf_tables(_to_pfn(e), level - 1, g, start, end)
        if has_leaf:
            yield pfn, level, base_gfn, entries

    def leaf_sptes(self, *, include_invalid: bool = True) -> Iterator[LeafSpte]:
        """Every present leaf SPTE of every root."""
        roots = self.all_roots() if include_invalid else [r for r in self.kind.roots if not r.invalid]
        for root in roots:
            for level, sptep, e, g in self._iter_leaves(root.pfn, root.role.level, 0, 0, 1 << 62):
                yield LeafSpte(root, level, g, e, sptep)

    def all_roots(self) -> list[MmuPage]:
        """Roots on the list plus invalid roots still referenced by vCPUs."""
        return [p for p in self.pages.values() if p.role.level == self.kind.root_level
                and p.root_count > 0]

    # ------------------------------------------------------------------
    # Huge pages
    # ------------------------------------------------------------------

    def max_mapping_level(self, slot: Memslot, gfn: int) -> int:
        """Largest level that may map ``gfn`` (``kvm_mmu_max_mapping_level``).

        A huge page must lie wholly inside the memslot, the slot's gfns and
        host frames must be congruent modulo the huge page
        (``disallow_lpage``), the host must map it that large
        (``host_max_level``), and dirty logging forces 4 KiB.
        """
        gfn = check_int("gfn", gfn)
        check_instance("slot", slot, Memslot)
        return self._max_mapping_level(slot, gfn)

    def _max_mapping_level(self, slot: Memslot, gfn: int) -> int:
        if slot.dirty_logging:
            return 1
        for level in (3, 2):
            if level > self.host_max_level:
                continue
            span = level_pages(level)
            base = gfn & ~(span - 1)
            if base < slot.base_gfn or base + span > slot.end_gfn:
                continue
            if (slot.base_gfn ^ slot.host_pfn) & (span - 1):
                continue
            return level
        return 1

    # ------------------------------------------------------------------
    # The fault path
    # ------------------------------------------------------------------

    def page_fault(self, vcpu: Vcpu, gpa: int, error_code: int) -> FaultResult:
        """Handle an EPT violation / misconfig or #NPF at ``gpa``
        (``kvm_tdp_page_fault`` → ``kvm_tdp_mmu_map``).

        Parameters
        ----------
        vcpu : refimpl.host.vm.Vcpu
        gpa : int
            Below the guest's MAXPHYADDR.
        error_code : int
            PFERR bits: W, F (the access), RSVD (the CPU hit a misconfigured
            / reserved SPTE, i.e. perhaps an MMIO SPTE).

        Returns
        -------
        refimpl.host.tdp_mmu.FaultResult

        Raises
        ------
        TypeError
            ``vcpu`` not a Vcpu, ``gpa`` or ``error_code`` not an int.
        ValueError
            ``vcpu`` of another VM; ``gpa`` out of range (hardware never
            reports one); ``error_code`` outside ``[0, 2**64)``.
        """
        self._check_vcpu(vcpu)
        gpa = check_int("gpa", gpa)
        error_code = check_int("error_code", error_code)
        if not 0 <= gpa < self.kvm.max_gfn << 12:
            raise ValueError(f"gpa {gpa:#x} is outside the guest's physical address space")
        if error_code < 0 or error_code >> 64:
            raise ValueError(f"error_code must be in [0, 2**64), got {error_code:#x}")
        return self._page_fault(vcpu, gpa, error_code)

    def _page_fault(self, vcpu: Vcpu, gpa: int, error_code: int) -> FaultResult:
        self.kind.stats.page_faults += 1
        root = self._load(vcpu)
        gfn = gpa >> 12
        fmt = self.fmt
        # Step 1: an MMIO SPTE with the current generation: emulate at once
        # (handle_mmio_page_fault); a stale one takes the slow path.
        if error_code & PFERR.RSVD:
            spte = self._walk(root, gfn)[-1][2]
            if _mmio(fmt, spte) and \
                    get_mmio_spte_generation(spte) == self.kvm.generation & MMIO_SPTE_GEN_MASK:
                self.kind.stats.mmio_faults += 1
                return FaultResult(RetPf.EMULATE, mmio=True)
        # Step 2: gfn -> memslot -> host frame (kvm_faultin_pfn).
        slot = self.kvm._gfn_to_memslot(gfn, vcpu.as_id)
        write = bool(error_code & PFERR.W)
        if slot is None:
            self.kind.stats.mmio_faults += 1
            if not fmt.mmio_caching:
                return FaultResult(RetPf.EMULATE, mmio=True)
            spte = make_mmio_spte(fmt, gfn, ACC_ALL, self.kvm.generation)
            return self._map(root, gfn, 1, spte, None)
        if write and slot.readonly:
            self.kind.stats.mmio_faults += 1
            return FaultResult(RetPf.EMULATE, mmio=True)
        # Step 3: the level (kvm_mmu_hugepage_adjust, NX huge pages).
        level = self._max_mapping_level(slot, gfn)
        if error_code & PFERR.F and self.kind.nx_huge_pages and "nx_huge_exec" not in self.bugs:
            level = 1
        span = level_pages(level)
        base_gfn = gfn & ~(span - 1)
        pfn = slot.gfn_to_hfn(base_gfn)
        return self._map(root, base_gfn, level, None, slot, pfn=pfn)

    def _map(self, root: MmuPage, gfn: int, level: int, mmio_spte: Optional[int],
             slot: Optional[Memslot], pfn: int = 0) -> FaultResult:
        fmt = self.fmt
        ad_disabled = bool(root.role.ad_disabled)
        table = root.pfn
        # Step 4: walk down, replacing a huge page in the way and creating
        # missing tables.
        for lvl in range(root.role.level, level, -1):
            sptep = table * PAGE_SIZE + _index(gfn, lvl) * 8
            spte = self._read(sptep)
            if _present(spte) and _last(spte, lvl):
                self._write(sptep, 0)
                self.flush()
                spte = 0
            if not _present(spte):
                child = self._alloc_table(root.role.replace(level=lvl - 1),
                                          gfn & ~(level_pages(lvl) - 1))
                self._write(sptep, make_nonleaf_spte(fmt, child.pfn, ad_disabled=ad_disabled))
                table = child.pfn
            else:
                table = _to_pfn(spte)
        # Step 5: the target SPTE (tdp_mmu_map_handle_target_level).
        sptep = table * PAGE_SIZE + _index(gfn, level) * 8
        old = self._read(sptep)
        if mmio_spte is not None:
            new = mmio_spte
        else:
            assert slot is not None
            kind, zero_check = self.kind, None  # the kind carries its zero check
            if "nx_huge_exec" in self.bugs:  # make_spte without its NX huge page rule
                kind = replace(fmt, nx_huge_pages=False)
                zero_check = self.kind.shadow_zero_check
            new = make_spte(kind, pte_access=ACC_ALL, level=level, gfn=gfn, pfn=pfn,
                            old_spte=old, host_writable=not slot.readonly,
                            ad_disabled=ad_disabled, shadow_zero_check=zero_check).spte
        if new == old:
            return FaultResult(RetPf.SPURIOUS, level, new)
        self._write(sptep, new)
        if _present(old) and not _last(old, level):
            self._free_subtree(_to_pfn(old), level - 1)
            self.flush()
        elif _present(old) and (
                _to_pfn(old) != _to_pfn(new)
                or (_writable(old) and not _writable(new))):
            self.flush()
        if slot is not None and _writable(new) and level == 1:
            self.kvm._mark_page_dirty(gfn, slot.as_id)
        if mmio_spte is not None:
            return FaultResult(RetPf.EMULATE, level, new, mmio=True)
        return FaultResult(RetPf.FIXED, level, new)

    # ------------------------------------------------------------------
    # The guest's side: the CPU with its TLB
    # ------------------------------------------------------------------

    def hw_translate(self, vcpu: Vcpu, gpa: int, access: int = 0) -> HwResult:
        """The CPU's walk of ``vcpu``'s current root, no TLB, no fault handling.

        Like the processor, a write that sets the D bit of a 4 KiB leaf logs
        the page in ``vcpu``'s PML buffer when the kind uses PML, so no walk,
        not even a probe, can dirty a page behind the log's back.
        """
        gpa = check_int("gpa", gpa)
        access = check_int("access", access)
        self._check_vcpu(vcpu)
        return self._hw_translate(vcpu, gpa, access)

    def _hw_translate(self, vcpu: Vcpu, gpa: int, access: int) -> HwResult:
        root = self._load(vcpu)
        r = _hw_translate_tdp(self.kvm.host, self.fmt, root.hpa, root.role.level, gpa,
                              access, self.kind.ad_enabled and not root.role.ad_disabled)
        if (r.fault is None and self.kind.pml and access & ACCESS_WRITE and r.level == 1
                and not r.trace[-1][2] & self.fmt.dirty_mask):
            vcpu.pml_buffer.append(gpa & ~0xFFF)
        return r

    def guest_access(self, vcpu: Vcpu, gpa: int, access: int = 0) -> AccessResult:
        """A guest access to ``gpa``: TLB, hardware walk, KVM's fault handler, retry.

        Parameters
        ----------
        vcpu : refimpl.host.vm.Vcpu
        gpa : int
        access : int
            ``ACCESS_WRITE`` and/or ``ACCESS_FETCH`` (0: read).

        Returns
        -------
        refimpl.host.outcomes.AccessResult
            ``path`` is ``HARDWARE`` or ``MMIO``; ``exits`` (alias
            ``faults``) counts the EPT violations and misconfigurations.
        """
        gpa = check_int("gpa", gpa)
        access = check_int("access", access)
        if access & ~(ACCESS_WRITE | ACCESS_FETCH) or access < 0:
            raise ValueError(f"access {access:#x} has bits other than ACCESS_WRITE|ACCESS_FETCH")
        if not 0 <= gpa < self.kvm.max_gfn << 12:
            raise ValueError(f"gpa {gpa:#x} is outside the guest's physical address space")
        self._check_vcpu(vcpu)
        faults = 0
        for _ in range(8):
            root = self._load(vcpu)
            assert vcpu.mmu is not None
            tlb = vcpu.mmu.tlb
            hit = tlb._lookup(root.hpa, gpa, access)
            if hit is not None:
                return AccessResult(AccessPath.HARDWARE, hit.hpa | (gpa & 0xFFF), exits=faults,
                                    tlb_hit=True)
            r = self._hw_translate(vcpu, gpa, access)
            if r.fault is None:
                assert r.hpa is not None and r.level is not None
                tlb._fill(root.hpa, gpa, TlbEntry(r.hpa & ~0xFFF, r.level, r.writable,
                                                 r.user, r.executable, r.dirty))
                return AccessResult(AccessPath.HARDWARE, r.hpa, exits=faults)
            faults += 1
            ec = access & (ACCESS_WRITE | ACCESS_FETCH)
            if r.fault is HwFault.RSVD:
                ec |= int(PFERR.RSVD | PFERR.P)
            elif r.fault is HwFault.PERMISSION:
                ec |= int(PFERR.P)
            fr = self._page_fault(vcpu, gpa, ec)
            if fr.outcome is RetPf.EMULATE:
                return AccessResult(AccessPath.MMIO, exits=faults)
        raise RuntimeError(f"model bug: access to {gpa:#x} still faults after 8 tries")

    # ------------------------------------------------------------------
    # Zapping
    # ------------------------------------------------------------------

    def _zap_table(self, pfn: int, level: int, base_gfn: int, start: int, end: int,
                   top_level: int) -> bool:
        """Zap SPTEs of ``[start, end)`` in one table; True if any was present."""
        buf = self.kvm.host.mem.buffer
        entries = _TABLE.unpack_from(buf, pfn * PAGE_SIZE)
        self.kind.stats.sptes_visited += 512
        span = level_pages(level)
        changed = False
        for i, e in enumerate(entries):
            g = base_gfn + i * span
            if g + span <= start or g >= end or e == 0:
                continue
            present = _present(e)
            if present and not _last(e, level) and not (start <= g and g + span <= end):
                changed |= self._zap_table(_to_pfn(e), level - 1, g, start, end, top_level)
                continue
            self._write(pfn * PAGE_SIZE + i * 8, 0)
            if present and not _last(e, level):
                self._free_subtree(_to_pfn(e), level - 1)
            changed |= present
        return changed

    def zap_gfn_range(self, start: int, end: int, as_id: int = 0, *, flush: bool = True) -> bool:
        """Zap ``[start, end)`` in every root of address space ``as_id``
        (``kvm_tdp_mmu_zap_leafs``); flush if anything was present."""
        start = check_int("start", start)
        end = check_int("end", end)
        as_id = check_int("as_id", as_id)
        changed = False
        for root in list(self.kind.roots):
            if root.role.smm == as_id:
                changed |= self._zap_table(root.pfn, root.role.level, 0, start, end,
                                           root.role.level)
        if changed and flush:
            self.flush()
        return changed

    # ------------------------------------------------------------------
    # Memslot changes (MemslotListener)
    # ------------------------------------------------------------------

    def memslot_changed(self, kvm: Kvm, change: MemslotChange) -> None:
        """Follow a committed memslot change (``kvm_arch_flush_shadow_memslot``,
        ``kvm_mmu_slot_apply_flags``, ``kvm_mmu_invalidate_mmio_sptes``)."""
        check_instance("kvm", kvm, Kvm)
        check_instance("change", change, MemslotChange)
        kind = change.kind
        if kind in (MemslotChangeKind.DELETE, MemslotChangeKind.MOVE):
            old = change.old
            assert old is not None
            if self.zap_all_on_delete:
                self.invalidate_all_roots()
            else:
                self.zap_gfn_range(old.base_gfn, old.end_gfn, old.as_id)
        elif kind is MemslotChangeKind.FLAGS_ONLY:
            assert change.old is not None and change.new is not None
            if change.new.readonly:
                # kvm_mmu_slot_apply_flags returns at once for a read-only
                # slot: it cannot be dirtied, so nothing to protect or split,
                # and nothing to recover when logging stops.
                pass
            elif change.new.dirty_logging and not change.old.dirty_logging:
                self.start_dirty_logging(change.new)
            elif change.old.dirty_logging and not change.new.dirty_logging:
                self.recover_huge_pages(change.new, self.recovery)
        # Cached MMIO SPTEs record 19 bits of the generation: when those
        # wrap to 0 an old SPTE could look current, so zap everything.
        if change.generation & MMIO_SPTE_GEN_MASK == 0:
            self.invalidate_all_roots()

    # ------------------------------------------------------------------
    # Dirty logging
    # ------------------------------------------------------------------

    def _slot_roots(self, slot: Memslot) -> list[MmuPage]:
        return [r for r in self.kind.roots if r.role.smm == slot.as_id and not r.invalid]

    def split_huge_pages(self, slot: Memslot) -> int:
        """Split every huge SPTE of ``slot`` into 4 KiB SPTEs in place
        (eager page splitting, ``kvm_tdp_mmu_try_split_huge_pages``); the
        number of huge SPTEs split."""
        fmt = self.fmt
        buf = self.kvm.host.mem.buffer
        split = 0
        for root in self._slot_roots(slot):
            for level in (3, 2):
                for lvl, sptep, e, g in list(self._iter_leaves(
                        root.pfn, root.role.level, 0, slot.base_gfn, slot.end_gfn)):
                    if lvl != level:
                        continue
                    child = self._alloc_table(root.role.replace(level=level - 1), g)
                    _TABLE.pack_into(buf, child.hpa, *[
                        make_small_spte(fmt, e, level - 1, i) for i in range(512)])
                    self.kind.stats.spte_writes += 512
                    self._write(sptep, make_nonleaf_spte(fmt, child.pfn,
                                                         ad_disabled=bool(root.role.ad_disabled)))
                    split += 1
        if split:
            self.flush()
        return split

    def _protect(self, slot: Memslot, gfns: Optional[frozenset[int]] = None) -> bool:
        """Arm dirty tracking: write-protect, or (PML) clear D on 4 KiB SPTEs
        and write-protect huge ones. True if an SPTE changed."""
        fmt = self.fmt
        buf = self.kvm.host.mem.buffer
        changed = False
        stats = self.kind.stats
        for pfn, lvl, entries, leaves in self._slot_leaf_tables(slot):
            clear = fmt.dirty_mask if (self.kind.pml and lvl == 1) else PT_WRITABLE_MASK
            new = list(entries)
            n = 0
            for i, e, g in leaves:
                if gfns is not None and g not in gfns:
                    continue
                if e & clear:
                    new[i] = e & ~clear
                    n += 1
            if n:
                _TABLE.pack_into(buf, pfn * PAGE_SIZE, *new)
                stats.spte_writes += n
                changed = True
        return changed

    def _slot_leaf_tables(self, slot: Memslot) -> Iterator[
            tuple[int, int, tuple[int, ...], list[tuple[int, int, int]]]]:
        """Tables of the slot's valid roots that hold its leaves:
        ``(pfn, level, entries, [(index, spte, gfn)...])``, each listed leaf
        present and inside the slot, and counted as visited."""
        stats = self.kind.stats
        for root in self._slot_roots(slot):
            for pfn, lvl, base, entries in list(self._iter_leaf_tables(
                    root.pfn, root.role.level, 0, slot.base_gfn, slot.end_gfn)):
                span = level_pages(lvl)
                leaves = []
                for i, e in enumerate(entries):
                    g = base + i * span
                    if (_present(e) and _last(e, lvl)
                            and g + span > slot.base_gfn and g < slot.end_gfn):
                        leaves.append((i, e, g))
                stats.sptes_visited += len(leaves)
                yield pfn, lvl, entries, leaves

    def start_dirty_logging(self, slot: Memslot) -> None:
        """Dirty logging turned on for ``slot`` (``kvm_mmu_slot_apply_flags``)."""
        if self.eager_split:
            self.split_huge_pages(slot)
        if self._protect(slot) and "no_flush_on_wrprot" not in self.bugs:
            self.flush()

    def sync_dirty_log(self, kvm: Kvm, slot: Memslot) -> None:
        """Drain the vCPUs' PML buffers into the dirty bitmap (``vmx_flush_pml_buffer``)."""
        check_instance("kvm", kvm, Kvm)
        check_instance("slot", slot, Memslot)
        for v in kvm.vcpus:
            for gpa in v.pml_buffer:
                kvm._mark_page_dirty(gpa >> 12, v.as_id)
            v.pml_buffer.clear()

    def dirty_log_cleared(self, kvm: Kvm, slot: Memslot, gfns: frozenset[int]) -> None:
        """Re-arm tracking for pages userspace just harvested
        (``kvm_arch_mmu_enable_log_dirty_pt_masked``), then flush."""
        if self._protect(slot, gfns) and "no_flush_on_wrprot" not in self.bugs:
            self.flush()

    def recover_huge_pages(self, slot: Memslot,
                           strategy: RecoveryStrategy = RecoveryStrategy.IN_PLACE) -> None:
        """Let ``slot`` be mapped with huge pages again after dirty logging.

        Parameters
        ----------
        slot : refimpl.host.vm.Memslot
            The slot, with dirty logging already off.
        strategy : refimpl.host.tdp_mmu.RecoveryStrategy
            Zap 4 KiB SPTEs (flushing after each, or once) and let the guest
            refault; or replace whole tables by huge SPTEs in place.

        KVM
        ---
        ``kvm_mmu_zap_collapsible_sptes`` / ``zap_collapsible_spte_range``
        (v5.15 to v6.12) and ``kvm_tdp_mmu_recover_huge_pages`` (v6.13) in
        ``arch/x86/kvm/mmu/tdp_mmu.c``.
        """
        if strategy is RecoveryStrategy.IN_PLACE:
            changed = False
            for root in self._slot_roots(slot):
                changed |= self._promote(root, root.pfn, root.role.level, 0, slot)
            if changed:
                self.flush()
            return
        each = strategy is RecoveryStrategy.ZAP_EACH
        changed = False
        stats = self.kind.stats
        buf = self.kvm.host.mem.buffer
        for pfn, lvl, entries, leaves in self._slot_leaf_tables(slot):
            new = list(entries)
            for i, _, g in leaves:
                if lvl >= self._max_mapping_level(slot, g):
                    continue
                new[i] = 0  # zap (tdp_mmu_zap_spte_atomic)
                stats.spte_writes += 1
                changed = True
                if each:
                    self.flush()
            _TABLE.pack_into(buf, pfn * PAGE_SIZE, *new)
        if changed and not each:
            self.flush()

    def _promote(self, root: MmuPage, pfn: int, level: int, base_gfn: int,
                 slot: Memslot) -> bool:
        buf = self.kvm.host.mem.buffer
        entries = _TABLE.unpack_from(buf, pfn * PAGE_SIZE)
        span = level_pages(level)
        changed = False
        for i, e in enumerate(entries):
            g = base_gfn + i * span
            if g + span <= slot.base_gfn or g >= slot.end_gfn:
                continue
            self.kind.stats.sptes_visited += 1
            if not _present(e) or _last(e, level):
                continue
            if level <= 3 and self._max_mapping_level(slot, g) >= level:
                # The whole table can be one huge page: build it without a
                # vCPU, from the memslot, as the RFC's make_spte allows.
                new = make_spte(self.kind, pte_access=ACC_ALL, level=level, gfn=g,
                                pfn=slot.gfn_to_hfn(g), host_writable=not slot.readonly,
                                ad_disabled=bool(root.role.ad_disabled)).spte
                self._write(pfn * PAGE_SIZE + i * 8, new)
                self._free_subtree(_to_pfn(e), level - 1)
                changed = True
            elif level > 2:
                changed |= self._promote(root, _to_pfn(e), level - 1, g, slot)
        return changed


# make_huge_spte is the v6.13 alternative to make_spte for in-place recovery;
# re-exported for the book.
_ = make_huge_spte


def _measure_vm(npages: int, make_mmu, *, fmt: Optional[SpteFormat] = None,
                nvcpus: int = 1, host_max_level: int = 2):
    """The VM the measurements run on: one memslot of ``npages`` at GPA 0,
    its MMU made by ``make_mmu(kvm, kind, host_max_level=...)``; returns
    ``(kvm, mmu, vcpus)``."""
    npages = check_int("npages", npages)
    nvcpus = check_int("nvcpus", nvcpus)
    host_max_level = check_int("host_max_level", host_max_level)
    if npages < 512 or npages % 512:
        raise ValueError(f"npages must be a positive multiple of 512, got {npages}")
    tables = npages // 512 + 64
    # Room for the slot to be placed above the page-table pages at any alignment.
    host = HostMemory(2 * npages + tables + 1024, backed_frames=tables, maxphyaddr=46)
    kvm = Kvm(host)
    mmu = make_mmu(kvm, tdp_kind(fmt or ept_format(phys_bits=46)), host_max_level=host_max_level)
    vcpus = [kvm.create_vcpu() for _ in range(nvcpus)]
    kvm.add_memslot(0, 0, npages)
    return kvm, mmu, vcpus


def measure_disable_dirty_logging(npages: int, strategy: RecoveryStrategy, *,
                                  fmt: Optional[SpteFormat] = None,
                                  nvcpus: int = 1, host_max_level: int = 2):
    """The work of turning dirty logging off for a guest of ``npages`` 4 KiB pages.

    The scenario of Ben Gardon's 2021 cover letter, small: one memslot at
    GPA 0 backed by 2 MiB-aligned host frames; the guest touches every
    2 MiB page (so it is mapped huge); dirty logging is enabled with eager
    splitting (every huge page becomes 512 write-protected 4 KiB SPTEs);
    then dirty logging is disabled with ``strategy`` and the guest touches
    every 2 MiB page again.

    Parameters
    ----------
    npages : int
        Guest size in 4 KiB pages, a positive multiple of 512.
    strategy : refimpl.host.tdp_mmu.RecoveryStrategy
    fmt : refimpl.host.spte.SpteFormat or None
        Default: EPT with A/D bits, host MAXPHYADDR 46.
    nvcpus : int
        vCPUs whose TLBs each flush reaches.
    host_max_level : int
        2: the host backs the guest with 2 MiB transparent huge pages (the
        common case); 3 would allow 1 GiB pages.

    Returns
    -------
    refimpl.host.kvm_mmu.MmuStats
        The counts from disabling dirty logging to the end of the second
        round of accesses (refaults included).
    """
    kvm, mmu, vcpus = _measure_vm(
        npages, lambda k, kind, **kw: TdpMmu(k, kind, eager_split=True, recovery=strategy, **kw),
        fmt=fmt, nvcpus=nvcpus, host_max_level=host_max_level)
    for gfn in range(0, npages, 512):
        mmu.guest_access(vcpus[0], gfn << 12)
    kvm.enable_dirty_logging(0)
    before = mmu.stats.snapshot()
    kvm.disable_dirty_logging(0)
    for gfn in range(0, npages, 512):
        mmu.guest_access(vcpus[0], gfn << 12)
    return mmu.stats.since(before)
