"""The legacy direct MMU (``tdp_mmu=0``): directed cases worked out from mmu.c.

Each expectation is read off the C functions, not computed by the model:
``direct_map`` gives a child page the gfn of the fault rounded to the level
of the SPTE that points to it (``gfn_round_for_level(fault->gfn, it.level)``)
and the role of ``kvm_mmu_child_role`` (level one lower, ``direct=1``,
``access=ACC_ALL``); ``mmu_set_spte`` adds each new leaf to the rmap of its
gfn; ``mmu_alloc_direct_roots`` finds the root in the hash at gfn 0.
"""

from __future__ import annotations

import pytest

from refimpl.guest.walker import ACCESS_FETCH, ACCESS_WRITE
from refimpl.host.direct_mmu import DirectMmu, make_direct_mmu
from refimpl.host.kvm_mmu import tdp_kind
from refimpl.host.legacy_direct_mmu import (
    LegacyDirectMmu,
    measure_fault_in,
    measure_legacy_disable_dirty_logging,
)
from refimpl.host.outcomes import AccessPath, RetPf
from refimpl.host.roles import ACC_ALL
from refimpl.host.shadow_mmu import ShadowMmu
from refimpl.host.spte import (
    ept_format,
    get_mmio_spte_gfn,
    is_large_pte,
    is_mmio_spte,
    is_writable_pte,
    spte_to_pfn,
    x86_format,
)
from refimpl.host.tdp_mmu import RecoveryStrategy, TdpMmu
from refimpl.host.vm import HostMemory, Kvm

EPT = ept_format(phys_bits=46)


def make_vm(fmt=EPT, *, pml=False, nframes=16384, backed=512, **kw):
    host = HostMemory(nframes, backed_frames=backed, maxphyaddr=46)
    kvm = Kvm(host)
    return kvm, LegacyDirectMmu(kvm, tdp_kind(fmt, pml=pml), **kw)


def sps(mmu):
    """Every valid page: (level, gfn, direct, access, smm)."""
    return sorted((sp.role.level, sp.gfn, sp.role.direct, sp.role.access, sp.role.smm)
                  for sp in mmu.arch.page_hash.values())


def rmap(mmu):
    """gfn -> [(level of the page, index)]."""
    return {g: sorted((sp.role.level, i) for sp, i in s) for g, s in mmu.arch.rmap.items()}


# ---------------------------------------------------------------------------
# direct_map: which pages, which roles, which rmaps
# ---------------------------------------------------------------------------


def test_fault_builds_direct_pages_rounded_to_the_parent_level():
    kvm, mmu = make_vm(host_max_level=1)
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0x40000, 1024)  # at 1 GiB, 4 MiB long
    r = mmu.guest_access(v, (0x40203 << 12) | 0x10, ACCESS_WRITE)
    slot = kvm.memslot(0)
    assert r.path is AccessPath.HARDWARE and r.exits == 1
    assert r.hpa == ((slot.host_pfn + 0x203) << 12) | 0x10
    # Root at gfn 0; the level-3 page at 0 (gfn rounded to 512 GiB), the
    # level-2 page at 0x40000 (1 GiB), the level-1 page at 0x40200 (2 MiB).
    assert sps(mmu) == [(1, 0x40200, 1, ACC_ALL, 0), (2, 0x40000, 1, ACC_ALL, 0),
                        (3, 0, 1, ACC_ALL, 0), (4, 0, 1, ACC_ALL, 0)]
    # One leaf, in the rmap of its gfn, at index 0x203 & 511 = 3.
    assert rmap(mmu) == {0x40203: [(1, 3)]}
    # Pages live in the hash by (gfn, role.word) and are MmuPage.shadow pages.
    assert all(not sp.tdp_mmu_page and key == (sp.gfn, sp.role.word)
               for key, sp in mmu.arch.page_hash.items())
    assert mmu.stats.pages_allocated == 4 and mmu.stats.page_faults == 1


def test_the_page_cache_is_the_shadow_mmus_code():
    kvm, mmu = make_vm()
    assert isinstance(mmu.arch, ShadowMmu)
    # It is driven by the legacy MMU, not a second memslot listener.
    assert mmu.arch not in kvm.listeners and mmu in kvm.listeners
    assert type(mmu.arch)._link is ShadowMmu._link
    assert type(mmu.arch)._zap_pte is ShadowMmu._zap_pte
    assert type(mmu.arch)._prepare_zap is ShadowMmu._prepare_zap


def test_huge_pages_follow_the_host_mapping_level():
    for host_max_level, level in ((1, 1), (2, 2), (3, 3)):
        kvm, mmu = make_vm(host_max_level=host_max_level, nframes=1 << 20)
        v = kvm.create_vcpu()
        kvm.add_memslot(0, 0x40000, 1 << 18)  # 1 GiB, frames aligned by the VM
        mmu.guest_access(v, 0x40000 << 12)
        [leaf] = list(mmu.leaf_sptes())
        assert (leaf.level, leaf.gfn) == (level, 0x40000)
        assert is_large_pte(leaf.spte) == (level > 1)
        assert spte_to_pfn(leaf.spte) == kvm.memslot(0).host_pfn
        # A huge leaf sits in the rmap of its first gfn, in the page one level up.
        assert rmap(mmu) == {0x40000: [(level, (0x40000 >> (9 * (level - 1))) & 511)]}


def test_slot_one_page_short_of_a_huge_boundary_maps_4k_at_its_end():
    kvm, mmu = make_vm(host_max_level=2)
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 1023)  # 2 MiB + 511 pages, congruent
    mmu.guest_access(v, 0)
    mmu.guest_access(v, 0x3FE << 12)
    assert sorted((l.level, l.gfn) for l in mmu.leaf_sptes()) == [(1, 0x3FE), (2, 0)]


# ---------------------------------------------------------------------------
# Roots
# ---------------------------------------------------------------------------


def test_roots_are_found_in_the_hash_and_shared_by_role():
    kvm, mmu = make_vm()
    a, b, s = kvm.create_vcpu(), kvm.create_vcpu(), kvm.create_vcpu(smm=True)
    ra, rb, rs = mmu.load(a), mmu.load(b), mmu.load(s)
    assert ra is rb and ra.root_count == 2 and ra.gfn == 0
    assert rs is not ra and rs.role.smm == 1 and rs.role.level == ra.role.level == 4
    assert mmu.kind.roots == sorted([ra, rs], key=lambda p: p.pfn)
    mmu.unload(a)
    mmu.unload(b)
    # Unreferenced but valid: it stays in the hash for the next load.
    assert ra.root_count == 0 and (0, ra.role.word) in mmu.arch.page_hash
    assert mmu.load(a) is ra


def test_memslot_delete_zaps_everything_and_vcpus_reload():
    kvm, mmu = make_vm()
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 1024)
    mmu.guest_access(v, 0x1000)
    old_root = mmu.load(v)
    flushes = mmu.stats.tlb_flushes
    kvm.delete_memslot(0)
    assert mmu.arch.page_hash == {} and mmu.arch.rmap == {}
    assert mmu.stats.tlb_flushes == flushes + 1
    # The root is obsolete but still held by the vCPU until its next entry.
    assert old_root.invalid and old_root.root_count == 1 and old_root.pfn in mmu.pages
    r = mmu.guest_access(v, 0x1000)
    assert r.exit == "mmio"
    assert old_root.root_count == 0 and all(p is not old_root for p in mmu.pages.values())


def test_memslot_move_maps_the_new_range_only():
    for zap_all in (True, False):
        kvm, mmu = make_vm(zap_all_on_delete=zap_all)
        v = kvm.create_vcpu()
        s = kvm.add_memslot(0, 0, 16)
        mmu.guest_access(v, 0x3000)
        kvm.move_memslot(0, 0x100)
        assert mmu.guest_access(v, 0x3000).exit == "mmio"
        assert mmu.guest_access(v, 0x103000).hpa == (s.host_pfn + 3) << 12


def test_readonly_slot_maps_readonly_and_write_exits():
    kvm, mmu = make_vm(host_max_level=1)
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 16, flags=2)
    assert mmu.guest_access(v, 0x2000).path is AccessPath.HARDWARE
    before = mmu.stats.snapshot()
    r = mmu.guest_access(v, 0x2000, ACCESS_WRITE)
    assert r.exit == "mmio"
    d = mmu.stats.since(before)
    assert (d.spte_writes, d.mmio_faults) == (0, 1)
    [leaf] = list(mmu.leaf_sptes())
    assert not is_writable_pte(leaf.spte)


def test_no_memslot_installs_an_mmio_spte_then_emulates_at_once():
    kvm, mmu = make_vm()
    v = kvm.create_vcpu()
    r = mmu.guest_access(v, 0x7000)
    assert r.path is AccessPath.MMIO and r.exits == 1
    [e] = [sp.spt[7] for sp in mmu.arch.page_hash.values() if sp.role.level == 1]
    assert is_mmio_spte(mmu.fmt, e) and get_mmio_spte_gfn(mmu.fmt, e) == 7
    before = mmu.stats.snapshot()
    assert mmu.guest_access(v, 0x7000).path is AccessPath.MMIO
    assert mmu.stats.since(before).spte_writes == 0  # the RSVD fault emulates


def test_smm_address_space_has_its_own_pages_and_dirty_logging_leaves_it_alone():
    kvm, mmu = make_vm(host_max_level=1)
    v, s = kvm.create_vcpu(), kvm.create_vcpu(smm=True)
    kvm.add_memslot(0, 0, 16)
    kvm.add_memslot(0, 0, 16, as_id=1)
    mmu.guest_access(v, 0x4000, ACCESS_WRITE)
    mmu.guest_access(s, 0x4000, ACCESS_WRITE)
    assert sorted(sp.role.smm for sp, _ in mmu.arch.rmap[4]) == [0, 1]
    kvm.enable_dirty_logging(0)
    by_smm = {sp.role.smm: is_writable_pte(sp.spt[i]) for sp, i in mmu.arch.rmap[4]}
    assert by_smm == {0: False, 1: True}


# ---------------------------------------------------------------------------
# Dirty logging through the rmaps
# ---------------------------------------------------------------------------


def _logged_vm(**kw):
    kvm, mmu = make_vm(**kw)
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 1024)
    for gpa in (0, 0x200000):
        mmu.guest_access(v, gpa, ACCESS_WRITE)  # two 2 MiB pages
    return kvm, mmu, v


def test_enabling_logging_write_protects_through_the_rmaps():
    kvm, mmu, v = _logged_vm(host_max_level=2)
    before = mmu.stats.snapshot()
    kvm.enable_dirty_logging(0)
    d = mmu.stats.since(before)
    # slot_rmap_write_protect: two rmap entries visited, two SPTEs cleared, one flush.
    assert (d.sptes_visited, d.spte_writes, d.tlb_flushes) == (2, 2, 1)
    assert [(l.level, is_writable_pte(l.spte)) for l in mmu.leaf_sptes()] == [(2, False)] * 2


def test_a_write_while_logging_replaces_the_huge_page_by_a_direct_page():
    kvm, mmu, v = _logged_vm(host_max_level=2)
    kvm.enable_dirty_logging(0)
    before = mmu.stats.snapshot()
    r = mmu.guest_access(v, 0x5000, ACCESS_WRITE)
    d = mmu.stats.since(before)
    assert r.exits == 1 and kvm.get_dirty_log(0) == {5}
    # kvm_mmu_get_child_sp on a large SPTE: a level-1 page at gfn 0 (rounded
    # to 2 MiB), linked after drop_large_spte (one flush); one leaf at 5.
    assert (1, 0, 1, ACC_ALL, 0) in sps(mmu)
    assert rmap(mmu) == {5: [(1, 5)], 0x200: [(2, 1)]}
    # Writes: clear the huge SPTE, link the page, the leaf; then re-arming
    # the log write-protects gfn 5 once more.
    assert (d.spte_writes, d.tlb_flushes, d.pages_allocated) == (3, 1, 1)


def test_disabling_logging_zaps_collapsible_leaves_and_orphans_the_table():
    kvm, mmu, v = _logged_vm(host_max_level=2)
    kvm.enable_dirty_logging(0)
    for gfn in (5, 6, 0x205):
        mmu.guest_access(v, gfn << 12, ACCESS_WRITE)
    l1 = [sp for sp in mmu.arch.page_hash.values() if sp.role.level == 1]
    assert sorted(sp.gfn for sp in l1) == [0, 0x200]
    before = mmu.stats.snapshot()
    kvm.disable_dirty_logging(0)
    d = mmu.stats.since(before)
    # kvm_rmap_zap_collapsible_sptes: 3 rmap entries at level 1 (the level-2
    # ones are none: both huge pages were replaced), 3 zaps, one flush.
    assert (d.sptes_visited, d.spte_writes, d.tlb_flushes) == (3, 3, 1)
    assert mmu.arch.rmap == {}
    mmu.guest_access(v, 0x5000)
    # The refault maps 2 MiB again: drop_parent_pte empties the level-2 SPTE,
    # mmu_set_spte writes the huge one; the level-1 page stays in the hash,
    # unreachable (an orphan).
    assert [(l.level, l.gfn) for l in mmu.leaf_sptes()] == [(2, 0)]
    orphan = next(sp for sp in l1 if sp.gfn == 0)
    assert (0, orphan.role.word) in mmu.arch.page_hash and not orphan.parent_ptes
    assert not any(orphan.spt)


def test_zap_each_flushes_after_every_zap():
    kvm, mmu, v = _logged_vm(host_max_level=2, recovery=RecoveryStrategy.ZAP_EACH)
    kvm.enable_dirty_logging(0)
    for gfn in (5, 6, 0x205):
        mmu.guest_access(v, gfn << 12, ACCESS_WRITE)
    before = mmu.stats.snapshot()
    kvm.disable_dirty_logging(0)
    assert mmu.stats.since(before).tlb_flushes == 3


def test_a_slot_short_of_the_boundary_keeps_its_last_table():
    kvm, mmu = make_vm(host_max_level=2)
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 1023)
    kvm.enable_dirty_logging(0)
    for gfn in (5, 0x205):
        mmu.guest_access(v, gfn << 12, ACCESS_WRITE)
    kvm.disable_dirty_logging(0)
    # gfn 5's page can be 2 MiB again; 0x205's (slot ends at 0x3FF) cannot.
    assert rmap(mmu) == {0x205: [(1, 5)]}


def test_pml_clears_d_on_4k_leaves_and_write_protects_huge_ones():
    kvm, mmu = make_vm(pml=True, host_max_level=2)
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 1024)
    mmu.guest_access(v, 0, ACCESS_WRITE)
    kvm.add_memslot(1, 0x400, 16)
    mmu.guest_access(v, 0x401000, ACCESS_WRITE)
    kvm.enable_dirty_logging(0)
    kvm.enable_dirty_logging(1)
    leaves = {l.gfn: l.spte for l in mmu.leaf_sptes()}
    assert not is_writable_pte(leaves[0])  # huge: write-protected
    assert is_writable_pte(leaves[0x401]) and not leaves[0x401] & mmu.fmt.dirty_mask
    r = mmu.guest_access(v, 0x401000, ACCESS_WRITE)
    assert r.faults == 0 and v.pml_buffer == [0x401000]


def test_nx_huge_pages_fetch_maps_4k():
    kvm, mmu = make_vm(ept_format(phys_bits=46, nx_huge_pages=True), host_max_level=2)
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 1024)
    mmu.guest_access(v, 0x3000, ACCESS_FETCH)
    assert [l.level for l in mmu.leaf_sptes()] == [1]
    mmu.guest_access(v, 0x201000)  # a read: huge, not executable
    assert sorted((l.level, l.spte & 4) for l in mmu.leaf_sptes()) == [(1, 4), (2, 0)]


# ---------------------------------------------------------------------------
# Choosing, misuse, and the measurement
# ---------------------------------------------------------------------------


def test_make_direct_mmu_chooses_as_kvm_does():
    kvm = Kvm(HostMemory(4096, backed_frames=256, maxphyaddr=46))
    assert type(make_direct_mmu(kvm)) is TdpMmu
    kvm = Kvm(HostMemory(4096, backed_frames=256, maxphyaddr=46))
    legacy = make_direct_mmu(kvm, tdp_mmu=False, host_max_level=1)
    assert type(legacy) is LegacyDirectMmu and legacy.host_max_level == 1
    assert isinstance(legacy, DirectMmu) and isinstance(make_direct_mmu(Kvm(
        HostMemory(64, backed_frames=16, maxphyaddr=46))), DirectMmu)
    with pytest.raises(TypeError, match="tdp_mmu"):
        make_direct_mmu(kvm, tdp_mmu=0)


@pytest.mark.parametrize("kw, match", [
    ({"eager_split": True}, "eager_split"),
    ({"recovery": RecoveryStrategy.IN_PLACE}, "recovery"),
    ({"host_max_level": 4}, "host_max_level"),
    ({"bugs": ["nx_huge_exec"]}, "bugs"),
])
def test_bad_arguments_are_rejected_and_change_nothing(kw, match):
    kvm = Kvm(HostMemory(4096, backed_frames=256, maxphyaddr=46))
    snap, frames = kvm.snapshot(), kvm.host.used_frames
    with pytest.raises(ValueError, match=match):
        LegacyDirectMmu(kvm, **kw)
    assert kvm.listeners == [] and kvm.snapshot() == snap and kvm.host.used_frames == frames


def test_other_vms_vcpu_and_bad_recovery_call_are_misuse():
    kvm, mmu = make_vm()
    other = Kvm(HostMemory(64, backed_frames=16, maxphyaddr=46)).create_vcpu()
    with pytest.raises(ValueError, match="vcpu"):
        mmu.guest_access(other, 0)
    kvm.add_memslot(0, 0, 16)
    with pytest.raises(ValueError, match="strategy"):
        mmu.recover_huge_pages(kvm.memslot(0), RecoveryStrategy.IN_PLACE)
    with pytest.raises(TypeError):
        LegacyDirectMmu(kvm, kind=x86_format(phys_bits=46))


def test_measures_match_the_hand_counts():
    # 4 MiB: two 2 MiB pages, 1024 4 KiB SPTEs before logging stops.
    f = measure_fault_in(1024, LegacyDirectMmu)
    # Root, level-3 and level-2 pages; writes L4->L3, L3->L2, two huge leaves.
    assert (f.pages_allocated, f.spte_writes, f.tlb_flushes, f.page_faults) == (3, 4, 0, 2)
    assert f == measure_fault_in(1024, TdpMmu)
    d = measure_legacy_disable_dirty_logging(1024)
    # 1024 zaps and one flush; each refault clears the table's SPTE and
    # writes the huge one (2 writes) and flushes once.
    assert (d.spte_writes, d.tlb_flushes, d.page_faults, d.sptes_visited) == (1028, 3, 2, 1024)
    e = measure_legacy_disable_dirty_logging(1024, RecoveryStrategy.ZAP_EACH)
    assert (e.spte_writes, e.tlb_flushes) == (1028, 1026)
    # The emptied level-1 pages stay in the hash: nothing is freed.
    assert d.pages_freed == e.pages_freed == 0


@pytest.mark.slow
@pytest.mark.parametrize("mib", [1024, 4096])
def test_logging_off_counts_hold_at_large_sizes(mib):
    # The chapter's hand counts, at the sizes it leaves to this test.
    small, huge = 256 * mib, mib // 2
    d = measure_legacy_disable_dirty_logging(small)
    assert (d.spte_writes, d.tlb_flushes, d.sptes_visited, d.page_faults, d.pages_freed) == (
        small + 2 * huge, 1 + huge, small, huge, 0)
