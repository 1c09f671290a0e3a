"""The legacy direct MMU: EPT/NPT tables built with the shadow MMU's code.

Before the TDP MMU (on by default from Linux 5.15), KVM built its EPT/NPT
tables with the same code that builds shadow page tables: every table is a
*direct* shadow page (``role.direct=1``: it maps a linear range of guest
frames, so nothing of the guest's own tables is shadowed) kept in the VM's
page hash beside any indirect ones, and every leaf SPTE is entered in an
rmap. KVM still runs this MMU with the module parameter ``tdp_mmu=0``. It is
the second implementation of the sketch's ``direct_mmu`` kind, which serves
"either legacy EPT/NPT or the new MMU"; :mod:`refimpl.host.direct_mmu`
chooses between the two as KVM does.

Glossary
--------
direct shadow page
    A :class:`refimpl.host.mmu_page.MmuPage` with ``role.direct=1``, found or
    created by ``(gfn, role.word)`` in the VM's page hash
    (``kvm_mmu_get_child_sp`` -> ``kvm_mmu_get_shadow_page`` ->
    ``kvm_mmu_find_shadow_page``). Its ``gfn`` is the first guest frame it
    maps; it is never unsync and never write-tracks anything.
rmap
    gfn -> the leaf SPTEs mapping it. Dirty logging write-protects a slot
    by walking the rmaps of its gfns (``slot_rmap_write_protect``), and
    turning logging off zaps the collapsible leaves through them
    (``kvm_rmap_zap_collapsible_sptes``); neither walks the tables.
roots
    Per vCPU references (``mmu_alloc_direct_roots`` -> ``mmu_alloc_root``),
    but the root page itself is found in the hash by role at gfn 0, so
    vCPUs with the same root role share it, as TDP MMU roots are shared.
orphans
    A table replaced by a huge SPTE is unlinked (``drop_parent_pte``) but
    stays in the hash, with its rmaps, until something zaps it (memslot
    deletion, the shrinker); only nested TDP pages are zapped with their
    parent (``mmu_page_zap_pte``).

What the two implementations share
----------------------------------
The VM's page hash, its pages, rmaps, linking and zapping are the shadow
MMU's code (:class:`refimpl.host.shadow_mmu.ShadowMmu`, held as
:attr:`LegacyDirectMmu.arch`, as ``struct kvm_arch`` holds them in KVM).
The steps every direct fault takes whichever MMU fills the tables
(``handle_mmio_page_fault``, ``kvm_faultin_pfn``, the huge page level of
``kvm_mmu_hugepage_adjust``), the memslot hooks of ``x86.c`` that call each
MMU's half, and everything on the CPU's side (TLB, hardware walk, retry)
are :class:`refimpl.host.tdp_mmu.TdpMmu`'s own functions, bound here
unchanged. What is this module's own: ``direct_map`` and ``mmu_set_spte``
(``LegacyDirectMmu._map``), the roots, and the rmap walks of dirty
logging and zapping.

Deliberate simplifications: ``mmu_lock`` is taken for write on every fault
(the TDP MMU takes it for read), which the counts cannot show; direct SPTE
prefetching (``direct_pte_prefetch``), fast page faults, the NX huge page
recovery list and the mmu-page shrinker are not modelled; the host is 64-bit
(no PAE roots for a 32-bit NPT host). The model records ``(gfn, ACC_ALL)``
per leaf in ``shadowed_translation`` of direct pages too, where KVM computes
the gfn from ``sp->gfn`` and the index, so the shadow MMU's rmap removal can
be reused.

KVM
---
``direct_map``, ``mmu_set_spte``, ``mmu_alloc_direct_roots``,
``kvm_mmu_slot_remove_write_access``, ``kvm_mmu_slot_leaf_clear_dirty``,
``kvm_rmap_zap_collapsible_sptes``, ``kvm_rmap_zap_gfn_range`` and
``kvm_mmu_zap_all_fast`` in ``arch/x86/kvm/mmu/mmu.c`` (torvalds/linux
56ea38e436ea; v5.15 and earlier call ``direct_map`` ``__direct_map``).
"""

from __future__ import annotations

from typing import Iterable, Optional

from refimpl.errors import check_bugs, check_instance, check_int
from refimpl.guest.memory import GuestMemory
from refimpl.host.kvm_mmu import MmuKind, MmuStats, RootInfo
from refimpl.host.mmu_page import MmuPage
from refimpl.host.outcomes import RetPf
from refimpl.host.roles import ACC_ALL, PageRole
from refimpl.host.shadow_mmu import ShadowMmu, kvm_mmu_child_role
from refimpl.host.spte import (
    PT_WRITABLE_MASK,
    SpteFormat,
    _last,
    _present,
    _to_pfn,
    _writable,
    make_spte,
)
from refimpl.host.tdp_mmu import FaultResult, RecoveryStrategy, TdpMmu, _index, _measure_vm, level_pages
from refimpl.host.vm import Kvm, Memslot

__all__ = [
    "BUGS",
    "SUPPORTED_RECOVERY",
    "LegacyDirectMmu",
    "measure_fault_in",
    "measure_legacy_disable_dirty_logging",
]

#: Replayed bugs (:mod:`refimpl.bugs`): each name switches one rule off.
BUGS: dict[str, str] = {
    "no_flush_on_wrprot": (
        "SPTEs write-protected through the rmaps for dirty logging without "
        "flushing the vCPUs' TLBs, so a cached writable translation keeps "
        "writing unlogged"),
}

#: How the legacy MMU recovers huge pages when dirty logging stops
#: (``kvm_rmap_zap_collapsible_sptes``): zap each collapsible leaf found
#: through the rmaps, then one flush for the slot (``ZAP_BATCHED``), or a
#: ranged flush after each zap when the host offers ranged flushes
#: (Hyper-V, ``kvm_available_flush_remote_tlbs_range``: ``ZAP_EACH``). It
#: never builds huge SPTEs in place.
SUPPORTED_RECOVERY = (RecoveryStrategy.ZAP_BATCHED, RecoveryStrategy.ZAP_EACH)


class _ArchPages(ShadowMmu):
    """The VM's shadow-page state (``kvm->arch.mmu_page_hash``, the active
    pages, the rmaps) with the shadow MMU's own code, counted into the
    direct kind's :class:`refimpl.host.kvm_mmu.MmuStats`.

    It does not listen to memslot changes itself: the legacy direct MMU
    does, and drives it. Direct pages read nothing of the guest, so its
    guest memory is empty.
    """

    def __init__(self, kvm: Kvm, fmt: SpteFormat, stats: MmuStats) -> None:
        self._counts = stats
        super().__init__(kvm, GuestMemory(0), fmt=fmt)
        kvm.listeners.remove(self)

    def _check_fmt(self, kvm: Kvm, fmt: Optional[SpteFormat]) -> SpteFormat:
        # The direct kind's EPT or NPT format (validated by tdp_kind).
        assert fmt is not None
        return fmt

    def _set_spte(self, sp: MmuPage, i: int, value: int) -> None:
        super()._set_spte(sp, i, value)
        self._counts.spte_writes += 1

    def _get_shadow_page(self, vc, gfn: int, role) -> MmuPage:
        created = self.stats["sp_created"]
        sp = super()._get_shadow_page(vc, gfn, role)
        if self.stats["sp_created"] != created:
            self._counts.pages_allocated += 1
        return sp

    def _free_sp_frame(self, sp: MmuPage) -> None:
        if self.sp_by_pfn.get(sp.pfn) is sp:
            self._counts.pages_freed += 1
        super()._free_sp_frame(sp)


class LegacyDirectMmu:
    """KVM's direct MMU with ``tdp_mmu=0``: EPT/NPT tables as direct shadow pages.

    The same public interface as :class:`refimpl.host.tdp_mmu.TdpMmu`, so
    either can be the VM's direct kind (:func:`refimpl.host.direct_mmu.make_direct_mmu`).

    Parameters
    ----------
    kvm : refimpl.host.vm.Kvm
        The VM; the MMU registers itself as a memslot listener.
    kind : refimpl.host.kvm_mmu.MmuKind or None
        The VM's direct kind; default :func:`refimpl.host.kvm_mmu.tdp_kind`
        of ``fmt``.
    fmt : refimpl.host.spte.SpteFormat or None
        Used when ``kind`` is None (default: EPT with A/D bits and the
        host's MAXPHYADDR).
    host_max_level : int
        Largest page the host maps guest memory with (1, 2 or 3).
    zap_all_on_delete : bool
        Memslot deletion/move zaps every page (``kvm_mmu_zap_all_fast``);
        False zaps only the slot's range through the rmaps.
    eager_split : bool
        Must be False: KVM splits huge pages eagerly only when the TDP MMU
        is on (``kvm_mmu_slot_try_split_huge_pages`` returns at once when
        ``tdp_mmu_enabled`` is false).
    recovery : refimpl.host.tdp_mmu.RecoveryStrategy
        One of :data:`SUPPORTED_RECOVERY` (default ``ZAP_BATCHED``).
    bugs : iterable of str
        Names from :data:`BUGS` to switch on.

    Raises
    ------
    TypeError
        Wrong types.
    ValueError
        ``eager_split`` set, ``recovery`` is ``IN_PLACE``, a bad
        ``host_max_level``, or a kind whose format does not match the host.

    KVM
    ---
    ``arch/x86/kvm/mmu/mmu.c`` with ``tdp_mmu_enabled`` false.
    """

    BUGS = BUGS

    def __init__(self, kvm: Kvm, kind: Optional[MmuKind] = None, *,
                 fmt: Optional[SpteFormat] = None, host_max_level: int = 3,
                 zap_all_on_delete: bool = True, eager_split: bool = False,
                 recovery: RecoveryStrategy = RecoveryStrategy.ZAP_BATCHED,
                 bugs: Iterable[str] = ()) -> None:
        bugs = check_bugs("bugs", bugs, BUGS)
        if eager_split:
            raise ValueError("eager_split: KVM splits huge pages eagerly only with the TDP MMU")
        if isinstance(recovery, RecoveryStrategy) and recovery not in SUPPORTED_RECOVERY:
            raise ValueError(f"recovery: the legacy MMU only zaps (ZAP_BATCHED, or ZAP_EACH "
                             f"with ranged flushes), not {recovery.name}")
        # The rest is the TDP MMU's own set-up: the kind and its checks, the
        # host's page size, the memslot listener.
        TdpMmu.__init__(self, kvm, kind, fmt=fmt, host_max_level=host_max_level,
                        zap_all_on_delete=zap_all_on_delete, recovery=recovery)
        self.bugs = bugs
        #: The VM's page hash, pages and rmaps: the shadow MMU's code.
        self.arch = _ArchPages(kvm, self.fmt, self.kind.stats)
        #: Every page by host frame (``sp_by_pfn``), as ``TdpMmu.pages``.
        self.pages = self.arch.sp_by_pfn

    # -- what the TDP MMU's functions give both implementations -------------
    # The CPU's side, the common fault steps and the memslot hooks: the
    # same functions, bound to this class (see the module docstring).
    stats = TdpMmu.stats
    flush = TdpMmu.flush
    _read = TdpMmu._read
    root_role = TdpMmu.root_role
    _root_role = TdpMmu._root_role
    _check_vcpu = TdpMmu._check_vcpu
    init_vcpu = TdpMmu.init_vcpu
    _init_vcpu = TdpMmu._init_vcpu
    load = TdpMmu.load
    _load = TdpMmu._load  # kvm_mmu_reload, with this MMU's get_root/put_root
    unload = TdpMmu.unload
    walk = TdpMmu.walk
    _walk = TdpMmu._walk
    _iter_leaves = TdpMmu._iter_leaves
    leaf_sptes = TdpMmu.leaf_sptes
    max_mapping_level = TdpMmu.max_mapping_level
    _max_mapping_level = TdpMmu._max_mapping_level
    page_fault = TdpMmu.page_fault
    _page_fault = TdpMmu._page_fault
    hw_translate = TdpMmu.hw_translate
    _hw_translate = TdpMmu._hw_translate
    guest_access = TdpMmu.guest_access
    memslot_changed = TdpMmu.memslot_changed
    start_dirty_logging = TdpMmu.start_dirty_logging
    sync_dirty_log = TdpMmu.sync_dirty_log
    dirty_log_cleared = TdpMmu.dirty_log_cleared

    # ------------------------------------------------------------------
    # Roots
    # ------------------------------------------------------------------

    def get_root(self, role: PageRole) -> MmuPage:
        """The root with this role, found in the hash at gfn 0 or created,
        with one more reference (``mmu_alloc_root``).

        Raises
        ------
        TypeError, ValueError
            ``role`` is not a direct role at the kind's root level.
        """
        check_instance("role", role, PageRole)
        if not role.direct or role.level != self.kind.root_level or role.invalid:
            raise ValueError(f"role: a valid direct role at level {self.kind.root_level} "
                             f"is needed, got {role}")
        root = self.arch._get_shadow_page(None, 0, role)
        root.root_count += 1
        self._note_roots()
        return root

    def put_root(self, root: MmuPage) -> None:
        """Drop a reference; an obsolete root is freed at zero, a valid one
        stays in the hash for the next vCPU (``mmu_free_root_page``)."""
        check_instance("root", root, MmuPage)
        if root.root_count <= 0:
            raise ValueError("root: reference count already zero")
        self.arch._free_root(RootInfo(root.hpa, 0))
        self._note_roots()

    def _note_roots(self) -> None:
        """Keep ``kind.roots`` listing the valid roots vCPUs hold (KVM has no
        such list for this MMU; the model keeps it for the kind's readers)."""
        self.kind.roots[:] = [sp for sp in self.arch.shadow_pages()
                              if sp.root_count > 0 and sp.role.level == self.kind.root_level]

    def all_roots(self) -> list[MmuPage]:
        """Roots vCPUs hold, valid or obsolete."""
        return [p for p in self.pages.values() if p.role.level == self.kind.root_level
                and p.root_count > 0]

    def invalidate_all_roots(self) -> None:
        """Zap every page, roots included, and flush (``kvm_mmu_zap_all_fast``);
        vCPUs load new roots at their next entry."""
        if self.arch.page_hash:
            self.arch.zap_all()
            self.flush()
        self._note_roots()

    # ------------------------------------------------------------------
    # The fault path: direct_map and mmu_set_spte
    # ------------------------------------------------------------------

    def _map(self, root: MmuPage, gfn: int, level: int, mmio_spte: Optional[int],
             slot: Optional[Memslot], pfn: int = 0) -> FaultResult:
        """``direct_map``: get or create the direct pages down to ``level``,
        then install the leaf (``mmu_set_spte``)."""
        arch = self.arch
        sp = root
        # Step 1: descend; a missing table, or a huge SPTE in the way, gets
        # the child page from the hash (kvm_mmu_get_child_sp).
        for lvl in range(root.role.level, level, -1):
            i = _index(gfn, lvl)
            spte = sp.spt[i]
            if _present(spte) and not _last(spte, lvl):
                sp = arch._child(spte)  # -EEXIST: follow it
                continue
            role = kvm_mmu_child_role(sp.role, i, True, ACC_ALL)
            child = arch._get_shadow_page(None, gfn & ~(level_pages(lvl) - 1), role)
            if _present(spte):
                arch._zap_pte(sp, i)  # drop_large_spte, with its flush
                self.flush()
            arch._link(sp, i, child)  # link_shadow_page
            sp = child
        # Step 2: the leaf.
        i = _index(gfn, level)
        old = sp.spt[i]
        if mmio_spte is not None:
            if _present(old):
                arch._zap_pte(sp, i)
            arch._set_spte(sp, i, mmio_spte)  # mark_mmio_spte
            return FaultResult(RetPf.EMULATE, level, mmio_spte, mmio=True)
        assert slot is not None
        flush = False
        rmapped = False
        if _present(old):
            if level > 1 and not _last(old, level):
                arch._zap_pte(sp, i)  # drop_parent_pte: the table becomes an orphan
                flush = True
            elif _to_pfn(old) != pfn:
                arch._zap_pte(sp, i)  # drop_spte
                flush = True
            else:
                rmapped = True
        cur = sp.spt[i]
        new = make_spte(self.kind, pte_access=ACC_ALL, level=level, gfn=gfn, pfn=pfn,
                        old_spte=cur, host_writable=not slot.readonly,
                        ad_disabled=bool(root.role.ad_disabled)).spte
        if new == cur:
            return FaultResult(RetPf.SPURIOUS, level, new)
        arch._set_spte(sp, i, new)
        # mmu_spte_update: an SPTE that loses W needs a flush.
        flush |= _present(cur) and _writable(cur) and not _writable(new)
        if flush:
            self.flush()
        if not rmapped:  # rmap_add
            sp.shadowed_translation[i] = (gfn, ACC_ALL)
            arch.rmap.setdefault(gfn, set()).add((sp, i))
        if _writable(new) and level == 1:
            self.kvm._mark_page_dirty(gfn, slot.as_id)
        return FaultResult(RetPf.FIXED, level, new)

    # ------------------------------------------------------------------
    # Walking the rmaps
    # ------------------------------------------------------------------

    def _rmap_leaves(self, as_id: int, start: int, end: int, levels: tuple[int, ...]):
        """The rmap entries ``(sp, index, gfn, level)`` of address space
        ``as_id`` whose leaf overlaps ``[start, end)`` at one of ``levels``
        (KVM keeps one rmap per memslot and level; the model one per gfn,
        so it filters by the page's ``role.smm`` and level). Counted as visited."""
        out = []
        for gfn in sorted(g for g in self.arch.rmap if g < end):
            for sp, i in self.arch.rmap[gfn]:
                lvl = sp.role.level
                if sp.role.smm != as_id or lvl not in levels or gfn + level_pages(lvl) <= start:
                    continue
                out.append((sp, i, gfn, lvl))
        self.kind.stats.sptes_visited += len(out)
        return sorted(out, key=lambda e: (e[2], e[3], e[0].pfn, e[1]))

    def zap_gfn_range(self, start: int, end: int, as_id: int = 0, *, flush: bool = True) -> bool:
        """Zap the leaves of ``[start, end)`` in address space ``as_id``
        through the rmaps (``kvm_rmap_zap_gfn_range``); flush if any was present."""
        start = check_int("start", start)
        end = check_int("end", end)
        as_id = check_int("as_id", as_id)
        leaves = self._rmap_leaves(as_id, start, end, (1, 2, 3))
        for sp, i, _, _ in leaves:
            self.arch._zap_pte(sp, i)
        if leaves and flush:
            self.flush()
        return bool(leaves)

    # ------------------------------------------------------------------
    # Dirty logging
    # ------------------------------------------------------------------

    def _protect(self, slot: Memslot, gfns: Optional[frozenset[int]] = None) -> bool:
        """Arm dirty tracking through the rmaps: clear W
        (``kvm_mmu_slot_remove_write_access``), or with PML clear D on 4 KiB
        leaves (``kvm_mmu_slot_leaf_clear_dirty``) and clear W on huge ones.
        True if an SPTE changed."""
        check_instance("slot", slot, Memslot)
        changed = False
        for sp, i, gfn, lvl in self._rmap_leaves(slot.as_id, slot.base_gfn, slot.end_gfn,
                                                 (1, 2, 3)):
            if gfns is not None and gfn not in gfns:
                continue
            clear = self.fmt.dirty_mask if (self.kind.pml and lvl == 1) else PT_WRITABLE_MASK
            spte = sp.spt[i]
            if spte & clear:
                self.arch._set_spte(sp, i, spte & ~clear)
                changed = True
        return changed

    def recover_huge_pages(self, slot: Memslot,
                           strategy: RecoveryStrategy = RecoveryStrategy.ZAP_BATCHED) -> None:
        """Zap the slot's leaves that a larger page could replace
        (``kvm_rmap_zap_collapsible_sptes``): levels 1 and 2, direct pages
        only, whenever the page's level is below the largest the memslot
        now allows at the page's gfn; the guest refaults them huge.

        Parameters
        ----------
        slot : refimpl.host.vm.Memslot
            The slot, with dirty logging already off.
        strategy : refimpl.host.tdp_mmu.RecoveryStrategy
            ``ZAP_BATCHED`` (one flush for the slot) or ``ZAP_EACH`` (a
            ranged flush after each zap, when the host has them).

        Raises
        ------
        ValueError
            ``strategy`` is ``IN_PLACE``.
        """
        check_instance("slot", slot, Memslot)
        if strategy not in SUPPORTED_RECOVERY:
            raise ValueError(f"strategy: the legacy MMU cannot recover {strategy!r}")
        each = strategy is RecoveryStrategy.ZAP_EACH
        changed = False
        for sp, i, _, _ in self._rmap_leaves(slot.as_id, slot.base_gfn, slot.end_gfn, (1, 2)):
            if not sp.role.direct or sp.role.level >= self._max_mapping_level(slot, sp.gfn):
                continue
            self.arch._zap_pte(sp, i)  # kvm_zap_one_rmap_spte
            changed = True
            if each:
                self.flush()
        if changed and not each:
            self.flush()  # kvm_flush_remote_tlbs_memslot


def measure_fault_in(npages: int, make_mmu=TdpMmu, *, host_max_level: int = 2) -> MmuStats:
    """The work of faulting in a guest of ``npages`` 4 KiB pages, one access
    per 2 MiB page (so each is mapped huge), with either direct MMU.

    Parameters
    ----------
    npages : int
        A positive multiple of 512.
    make_mmu : callable
        ``make_mmu(kvm, kind, host_max_level=...)``: :class:`refimpl.host.tdp_mmu.TdpMmu`
        or :class:`LegacyDirectMmu`.
    host_max_level : int
        2: the host backs the guest with 2 MiB pages.

    Returns
    -------
    refimpl.host.kvm_mmu.MmuStats
        The counts from the first access to the last (root allocation included).
    """
    kvm, mmu, (vcpu,) = _measure_vm(npages, make_mmu, host_max_level=host_max_level)
    before = mmu.stats.snapshot()
    for gfn in range(0, npages, 512):
        mmu.guest_access(vcpu, gfn << 12)
    return mmu.stats.since(before)


def measure_legacy_disable_dirty_logging(
        npages: int, strategy: RecoveryStrategy = RecoveryStrategy.ZAP_BATCHED, *,
        host_max_level: int = 2) -> MmuStats:
    """The work of turning dirty logging off with the legacy direct MMU.

    The state before logging stops is the one
    :func:`refimpl.host.tdp_mmu.measure_disable_dirty_logging` reaches by
    eager splitting: every 4 KiB page mapped by a 4 KiB SPTE. The legacy MMU
    cannot split eagerly, so it gets there as Ben Gardon's test guest does:
    the guest, mapped with 2 MiB pages, writes every 4 KiB page while
    logging is on (each write fault's ``direct_map`` at 4 KiB). Then
    logging is turned off with ``strategy`` and the guest touches each
    2 MiB page again.

    Parameters
    ----------
    npages : int
        Guest size in 4 KiB pages, a positive multiple of 512.
    strategy : refimpl.host.tdp_mmu.RecoveryStrategy
        One of :data:`SUPPORTED_RECOVERY`.
    host_max_level : int
        2: 2 MiB host pages.

    Returns
    -------
    refimpl.host.kvm_mmu.MmuStats
        The counts from disabling dirty logging to the end of the second
        round of accesses (refaults included).
    """
    kvm, mmu, (vcpu,) = _measure_vm(
        npages, lambda k, kind, **kw: LegacyDirectMmu(k, kind, recovery=strategy, **kw),
        host_max_level=host_max_level)
    for gfn in range(0, npages, 512):
        mmu.guest_access(vcpu, gfn << 12)
    kvm.enable_dirty_logging(0)
    # The guest writes every page: each write fault maps one 4 KiB page
    # (logging forces level 1). Straight to direct_map, as the fault path
    # would call it, to keep the model's time down; not counted anyway.
    root, slot = mmu.load(vcpu), kvm.memslot(0)
    for gfn in range(npages):
        mmu._map(root, gfn, 1, None, slot, pfn=slot.gfn_to_hfn(gfn))
    before = mmu.stats.snapshot()
    kvm.disable_dirty_logging(0)
    for gfn in range(0, npages, 512):
        mmu.guest_access(vcpu, gfn << 12)
    return mmu.stats.since(before)
