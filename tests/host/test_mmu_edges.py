"""Directed tests at the edges of the TDP MMU, the shadow MMU and EPT02.

The state machines of ``test_tdp_mmu.py`` and ``test_shadow_mmu.py`` draw
memslots, accesses and guest stores at random; the boundaries where a
one-line mistake in an MMU shows are rarely drawn. Each test here builds
one such boundary by hand: a memslot that ends one page short of a huge
page with host frames congruent to its gfns, read-only memslots taken
through dirty logging, a guest that maps its own page tables as data, PAE
CR3 loads with the same and with new PDPTEs, and previous roots under each
kind of root. The expectation of every test is worked out from the KVM
function named in its comment, not from the model; the mutants these tests
were written against are in ``tests/mutants/`` (``tests/mutants/run.py``).
"""

from __future__ import annotations

import struct

import pytest

from host.test_shadow_mmu import (
    A, D, DATA, P, U, W, hpa_of, new_vm, regs,
)
from host.test_tdp12 import AD, EPTP_A, EPTP_B, world
from refimpl.guest.cpu import PagingMode
from refimpl.guest.tables import GuestPageTables
from refimpl.guest.walker import ACCESS_USER, ACCESS_WRITE
from refimpl.host.kvm_mmu import tdp_kind
from refimpl.host.spte import (
    PT_PAGE_SIZE_MASK, ept_format, get_mmio_spte_generation, is_mmio_spte, is_mmu_writable_spte,
    is_writable_pte, spte_to_pfn,
)
from refimpl.host.tdp12 import INVEPT_SINGLE_CONTEXT
from refimpl.host.tdp_mmu import RecoveryStrategy, TdpMmu
from refimpl.host.vm import HostMemory, Kvm

RO = 2  # KVM_MEM_READONLY


def tdp_vm(*, pml=False, nframes=16384, initial_generation=0, **kw):
    """A VM on the TDP MMU (EPT with A/D): page tables from the 512 backed
    frames at the bottom, guest RAM above them."""
    host = HostMemory(nframes, backed_frames=512, maxphyaddr=46)
    kvm = Kvm(host, initial_generation=initial_generation)
    mmu = TdpMmu(kvm, tdp_kind(ept_format(phys_bits=46), pml=pml), **kw)
    return kvm, mmu, kvm.create_vcpu()


def leaves(mmu):
    return sorted((leaf.level, leaf.gfn) for leaf in mmu.leaf_sptes())


# ---------------------------------------------------------------------------
# TDP MMU: huge pages at memslot edges
#
# kvm_alloc_memslot_metadata (arch/x86/kvm/x86.c) sets disallow_lpage on the
# first huge page of a slot whose base is not aligned, on the last one whose
# end is not aligned, and on every one when base_gfn and the host address
# are not congruent modulo the huge page; kvm_mmu_max_mapping_level then
# takes the largest level not disallowed, capped by the host's mapping
# (host_pfn_mapping_level).
# ---------------------------------------------------------------------------


def test_slot_one_page_short_of_2m_with_congruent_frames_maps_4k():
    kvm, mmu, v = tdp_vm()
    base = kvm.host.alloc_range(1024, 512)       # 2 MiB-aligned host frames
    # gfns [0x200, 0x3FF): congruent to the frames, ending one page short
    # of 0x400: the only 2 MiB page of the slot is disallowed.
    kvm.add_memslot(0, 0x200, 511, host_pfn=base)
    assert mmu.guest_access(v, 0x3FE010).hpa == ((base + 0x1FE) << 12) | 0x10
    assert mmu.guest_access(v, 0x200000).hpa == base << 12
    assert leaves(mmu) == [(1, 0x200), (1, 0x3FE)]


def test_congruent_frames_not_aligned_at_the_slot_start_allow_interior_huge_pages():
    kvm, mmu, v = tdp_vm()
    base = kvm.host.alloc_range(2048, 512)
    # gfns [0x1FF, 0x601) on frames base+0x1FF...: congruent modulo 512,
    # the host range itself starts one frame before a 2 MiB boundary.
    kvm.add_memslot(0, 0x1FF, 0x402, host_pfn=base + 0x1FF)
    assert mmu.guest_access(v, 0x205008).hpa == ((base + 0x205) << 12) | 8
    mmu.guest_access(v, 0x1FF000)                # first huge page: partly outside
    mmu.guest_access(v, 0x600000)                # last huge page: partly outside
    assert leaves(mmu) == [(1, 0x1FF), (1, 0x600), (2, 0x200)]
    (huge,) = [leaf for leaf in mmu.leaf_sptes() if leaf.level == 2]
    assert spte_to_pfn(huge.spte) == base + 0x200


def test_aligned_but_incongruent_frames_forbid_every_huge_page():
    kvm, mmu, v = tdp_vm()
    base = kvm.host.alloc_range(2048, 512)
    kvm.add_memslot(0, 0x1FF, 0x402, host_pfn=base)   # gfn 0x200 -> frame base+1
    assert mmu.guest_access(v, 0x200000).hpa == (base + 1) << 12
    assert leaves(mmu) == [(1, 0x200)]


@pytest.mark.parametrize("host_level,want", [(1, 1), (2, 2)])
def test_host_mapping_level_caps_the_spte_level(host_level, want):
    # host_pfn_mapping_level: 4 KiB host pages give 4 KiB SPTEs, THP 2 MiB.
    kvm, mmu, v = tdp_vm(host_max_level=host_level)
    kvm.add_memslot(0, 0, 1024)
    mmu.guest_access(v, 0x1000)
    assert [leaf.level for leaf in mmu.leaf_sptes()] == [want]


# ---------------------------------------------------------------------------
# TDP MMU: dirty logging at the edges, and every recovery strategy
# ---------------------------------------------------------------------------


def _edge_slot_through_dirty_logging(strategy):
    """A slot of 1023 pages at gfn 0 (congruent frames): [0, 0x200) can be
    one 2 MiB page, [0x200, 0x3FF) cannot. Map both parts, log with eager
    splitting, then stop logging and touch the same three pages."""
    kvm, mmu, v = tdp_vm(eager_split=True, recovery=strategy)
    kvm.add_memslot(0, 0, 1023)
    for gpa in (0, 0x200000, 0x3FE000):
        mmu.guest_access(v, gpa)
    assert leaves(mmu) == [(1, 0x200), (1, 0x3FE), (2, 0)]
    kvm.enable_dirty_logging(0)
    assert len(leaves(mmu)) == 512 + 2
    before = mmu.stats.snapshot()
    kvm.disable_dirty_logging(0)
    for gpa in (0, 0x200000, 0x3FE000):
        mmu.guest_access(v, gpa)
    d = mmu.stats.since(before)
    assert leaves(mmu) == [(1, 0x200), (1, 0x3FE), (2, 0)]
    return d.spte_writes, d.tlb_flushes, d.page_faults


def test_recovery_zap_each_leaves_the_slot_tail_alone():
    # zap_collapsible_spte_range: only SPTEs below the level the slot allows
    # are zapped, each flushed (v5.15): the 512 of [0, 0x200). The refault of
    # gfn 0 replaces the emptied table by a 2 MiB SPTE (1 write) and frees
    # the table (1 flush); 0x200 and 0x3FE are still mapped.
    assert _edge_slot_through_dirty_logging(RecoveryStrategy.ZAP_EACH) == (513, 513, 1)


def test_recovery_zap_batched_leaves_the_slot_tail_alone():
    assert _edge_slot_through_dirty_logging(RecoveryStrategy.ZAP_BATCHED) == (513, 2, 1)


def test_recovery_in_place_promotes_only_what_fits_in_the_slot():
    # kvm_tdp_mmu_recover_huge_pages: one huge SPTE replaces the table of
    # [0, 0x200); the table of [0x200, 0x400) stays (the slot ends at 0x3FF).
    assert _edge_slot_through_dirty_logging(RecoveryStrategy.IN_PLACE) == (1, 1, 0)


@pytest.mark.parametrize("strategy", list(RecoveryStrategy))
def test_readonly_slot_through_dirty_logging_changes_no_spte(strategy):
    # kvm_mmu_slot_apply_flags (arch/x86/kvm/x86.c) returns at once for a
    # read-only slot: nothing to write-protect, split or recover. Faults
    # while logging map 4 KiB (kvm_mmu_hugepage_adjust stops at
    # kvm_slot_dirty_track_enabled), and stay 4 KiB after logging stops.
    kvm, mmu, v = tdp_vm(eager_split=True, recovery=strategy)
    slot = kvm.add_memslot(0, 0, 1024, flags=RO)
    mmu.guest_access(v, 0)
    mmu.guest_access(v, 0x200000)
    before = mmu.stats.snapshot()
    kvm.enable_dirty_logging(0)
    assert leaves(mmu) == [(2, 0), (2, 0x200)]
    assert mmu.guest_access(v, 0x5000, ACCESS_WRITE).exit == "mmio"
    assert kvm.peek_dirty_log(0) == frozenset()
    kvm.disable_dirty_logging(0)
    d = mmu.stats.since(before)
    assert (d.spte_writes, d.tlb_flushes) == (0, 0)
    # Logging again, then a fault in a part not yet mapped: 4 KiB.
    mmu.zap_gfn_range(0x200, 0x400)
    kvm.enable_dirty_logging(0)
    assert mmu.guest_access(v, 0x234000).hpa == (slot.host_pfn + 0x234) << 12
    kvm.disable_dirty_logging(0)
    assert leaves(mmu) == [(1, 0x234), (2, 0)]
    assert not any(is_writable_pte(leaf.spte) for leaf in mmu.leaf_sptes())


def test_pml_write_protects_huge_pages_so_their_writes_are_logged():
    # With PML, kvm_mmu_slot_leaf_clear_dirty clears D on 4 KiB SPTEs only;
    # huge SPTEs are write-protected (kvm_mmu_slot_remove_write_access at
    # PG_LEVEL_2M), so the first write faults, maps 4 KiB, and is logged.
    kvm, mmu, v = tdp_vm(pml=True)
    kvm.add_memslot(0, 0, 1024)
    mmu.guest_access(v, 0)
    kvm.enable_dirty_logging(0)
    ((level, gfn),) = leaves(mmu)
    assert (level, gfn) == (2, 0)
    assert not is_writable_pte(next(mmu.leaf_sptes()).spte)
    r = mmu.guest_access(v, 0x5000, ACCESS_WRITE)
    assert r.faults == 1
    assert 5 in kvm.peek_dirty_log(0)


def test_pml_write_through_a_clean_tlb_entry_is_logged():
    # A write through a TLB entry whose D bit is clear is not completed from
    # the TLB: the processor walks to set D, and with PML logs the GPA
    # (SDM Vol. 3C, "Page-Modification Logging"). After the log is read
    # (D cleared, TLBs flushed), a read caches a clean entry; the next
    # write must still be logged.
    kvm, mmu, v = tdp_vm(pml=True)
    kvm.add_memslot(0, 0, 16)
    kvm.enable_dirty_logging(0)
    mmu.guest_access(v, 0x3000, ACCESS_WRITE)
    assert kvm.get_dirty_log(0) == {3}
    assert mmu.guest_access(v, 0x3000).faults == 0
    assert kvm.peek_dirty_log(0) == frozenset()
    r = mmu.guest_access(v, 0x3000, ACCESS_WRITE)
    assert r.faults == 0 and kvm.peek_dirty_log(0) == {3}


def test_replacing_a_huge_spte_by_a_table_flushes():
    # kvm_tdp_mmu_map: a huge SPTE above the goal level is zapped with
    # tdp_mmu_zap_spte_atomic, which flushes the TLBs for its range, before
    # a table is linked in its place.
    kvm, mmu, v = tdp_vm()
    kvm.add_memslot(0, 0, 1024)
    mmu.guest_access(v, 0)
    kvm.enable_dirty_logging(0)                  # no eager split: W cleared
    before = mmu.stats.snapshot()
    mmu.guest_access(v, 0x5000, ACCESS_WRITE)
    d = mmu.stats.since(before)
    # Zap (1 write, 1 flush), link the new table (1 write), the 4 KiB SPTE.
    assert (d.page_faults, d.spte_writes, d.tlb_flushes) == (1, 3, 1)
    assert leaves(mmu) == [(1, 5)]


def test_eager_split_children_map_consecutive_frames_without_ps():
    # make_small_spte (make_huge_page_split_spte): child i of a 2 MiB SPTE
    # maps the huge page's frame + i, and a 4 KiB child has no PS bit.
    kvm, mmu, v = tdp_vm(eager_split=True)
    slot = kvm.add_memslot(0, 0, 512)
    mmu.guest_access(v, 0)
    kvm.enable_dirty_logging(0)
    got = {leaf.gfn: leaf.spte for leaf in mmu.leaf_sptes()}
    assert sorted(got) == list(range(512))
    for gfn in (0, 1, 0x1FF):
        assert spte_to_pfn(got[gfn]) == slot.host_pfn + gfn
        assert not got[gfn] & PT_PAGE_SIZE_MASK


# ---------------------------------------------------------------------------
# TDP MMU: zapping ranges and obsolete roots
# ---------------------------------------------------------------------------


def test_deleting_a_slot_zaps_its_last_page_without_zap_all():
    # kvm_tdp_mmu_zap_leafs(start, end): end is exclusive and reached.
    kvm, mmu, v = tdp_vm(zap_all_on_delete=False)
    kvm.add_memslot(0, 0, 16)
    kvm.add_memslot(1, 16, 16)
    for gfn in (0, 15, 16):
        mmu.guest_access(v, gfn << 12)
    kvm.delete_memslot(0)
    assert leaves(mmu) == [(1, 16)]
    assert mmu.guest_access(v, 15 << 12).exit == "mmio"


def test_zap_range_inside_one_table():
    kvm, mmu, v = tdp_vm()
    kvm.add_memslot(0, 0, 16)
    for gfn in range(8):
        mmu.guest_access(v, gfn << 12)
    assert mmu.zap_gfn_range(3, 5)
    assert [g for _, g in leaves(mmu)] == [0, 1, 2, 5, 6, 7]
    assert not mmu.zap_gfn_range(3, 5)           # nothing left there


def test_an_obsolete_root_is_never_handed_out_again():
    # kvm_tdp_mmu_get_vcpu_root_hpa looks only at valid roots; a vCPU whose
    # root is obsolete gets a new one at its next kvm_mmu_reload.
    kvm, mmu, a = tdp_vm()
    b = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 16)
    mmu.guest_access(a, 0x1000)
    old = mmu.load(a)
    assert mmu.load(b) is old
    mmu.invalidate_all_roots()
    assert old.invalid
    new = mmu.load(a)
    assert new is not old and not new.invalid
    assert mmu.load(b) is new


def test_mmio_generation_above_the_low_bits():
    # The 19-bit generation is stored in SPTE bits 10:3 (low 8) and 62:52
    # (spte.h, MMIO_SPTE_GEN_LOW/HIGH): generation 0x100 sets bit 52 only.
    kvm, mmu, v = tdp_vm(initial_generation=0xFF)
    kvm.add_memslot(0, 0, 16)                    # generation 0x100
    assert mmu.guest_access(v, 0x100000).exit == "mmio"
    spte = mmu.walk(mmu.load(v), 0x100)[-1][2]
    assert is_mmio_spte(mmu.fmt, spte)
    assert (spte >> 3) & 0xFF == 0 and (spte >> 52) & 0x7FF == 1
    assert get_mmio_spte_generation(spte) == 0x100
    # The generation matches: the second access is emulated at once.
    assert mmu.guest_access(v, 0x100000).faults == 1


# ---------------------------------------------------------------------------
# Shadow MMU: a guest that maps its own page tables as data
# ---------------------------------------------------------------------------


def test_guest_table_mapped_as_data_loses_w_and_mmu_writable_when_shadowed():
    kvm, mem, pt, mmu = new_vm()
    x = pt.alloc_table()                         # a free frame, for now data
    alias, other = 0x40_0000, 0x80_0000_0000     # other: PML4 index 1
    pt.map(alias, x << 12, leaf=P | W | A | D)
    pt.map(other, DATA, leaf=P | W | A | D, tables={3: x})   # x is other's PD
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    r = mmu.access(vc, alias, ACCESS_WRITE)
    assert r.path == "hardware" and r.hpa == hpa_of(kvm, x << 12)
    (sp, i, spte), = [e for e in mmu.leaf_sptes() if spte_to_pfn(e[2]) == kvm.gfn_to_hfn(x)]
    # make_spte: a writable SPTE carries W and shadow_mmu_writable_mask.
    assert is_writable_pte(spte) and is_mmu_writable_spte(mmu.fmt, spte)
    # A walk through other shadows x as a page directory: account_shadowed
    # write-tracks x and kvm_mmu_slot_gfn_write_protect -> rmap_write_protect
    # (pt_protect) clears both W and MMU-writable in every SPTE mapping x.
    assert mmu.access(vc, other, 0).hpa == hpa_of(kvm, DATA)
    assert mmu.gfn_write_tracked(x)
    spte = sp.spt[i]
    assert not is_writable_pte(spte) and not is_mmu_writable_spte(mmu.fmt, spte)
    # The guest's next store through the alias is emulated
    # (page_fault_handle_page_track).
    assert mmu.access(vc, alias, ACCESS_WRITE).path == "emulated"


def test_write_fault_on_a_write_tracked_frame_never_maps_it_writable():
    # A read of the alias after x is shadowed: mmu_try_to_unsync_pages
    # returns -EPERM for a write-tracked gfn, so make_spte withholds W even
    # though the gpte allows it; a write then exits to be emulated.
    kvm, mem, pt, mmu = new_vm()
    gva = 0x40_0000
    path = pt.map(gva, DATA, leaf=P | W | A | D)
    pd = path[2] >> 12
    alias = 0x60_0000
    pt.map(alias, pd << 12, leaf=P | W | A | D)
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    assert mmu.access(vc, gva, 0).hpa == hpa_of(kvm, DATA)   # shadows the PD
    assert mmu.gfn_write_tracked(pd)
    assert mmu.access(vc, alias, 0).path == "hardware"
    assert mmu.hw_walk(vc, alias, ACCESS_WRITE).fault is not None
    assert mmu.access(vc, alias, ACCESS_WRITE).path == "emulated"
    # The shadowed PD is still a synced, write-tracked page.
    (pd_sp,) = [sp for sp in mmu.shadow_pages() if sp.gfn == pd and sp.role.level == 2]
    assert not pd_sp.unsync


def test_unsync_page_table_shadowed_as_a_directory_is_zapped():
    # kvm_mmu_find_shadow_page: when a gfn gets an upper-level SP, every
    # unsync SP of that gfn is zapped (an upper table is write-tracked, and
    # a write-tracked frame may not have unsync pages).
    kvm, mem, pt, mmu = new_vm()
    a, b = 0x40_0000, 0x80_0000_0000
    path = pt.map(a, DATA, leaf=P | W | A | D)
    t = path[1] >> 12                            # a's page table
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    mmu.access(vc, a, 0)
    assert mmu.guest_write(vc, path[1], struct.pack("<Q", DATA | P | W | A | D)) == "direct"
    (leaf_sp,) = [sp for sp in mmu.shadow_pages() if sp.gfn == t]
    assert leaf_sp.unsync
    # t becomes b's PD too (b's PML4E and PDPT are new: nothing shadowed
    # goes stale, and no CR3 load syncs t before the walk through b).
    pt.map(b, DATA, leaf=P | A, tables={3: t})
    mmu.access(vc, b, 0)
    assert leaf_sp.invalid
    assert [sp.role.level for sp in mmu.shadow_pages() if sp.gfn == t] == [2]


def test_unsync_page_found_again_is_synced_before_it_is_linked():
    # Two PDEs share one page table t. The guest edits t (t goes unsync);
    # a first access through the second PDE finds t's SP in the hash:
    # kvm_mmu_get_shadow_page syncs it (kvm_sync_page) before linking, so
    # an entry never used through that PDE is not stale there.
    kvm, mem, pt, mmu = new_vm()
    a, b = 0x40_0000, 0x60_0000                  # PD indices 2 and 3
    path = pt.map(a, DATA, leaf=P | W | U | A | D)
    t = path[1] >> 12
    for k in (1, 2):
        pt.map(a + 0x1000 * k, DATA + 0x1000 * k, leaf=P | W | U | A | D)
    pt.map(b, DATA, leaf=P | W | U | A | D, tables={2: t})
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    for k in range(3):
        assert mmu.access(vc, a + 0x1000 * k, 0).hpa == hpa_of(kvm, DATA + 0x1000 * k)
    new = (DATA + 0x5000) | P | W | U | A | D
    assert mmu.guest_write(vc, (t << 12) + 16, struct.pack("<Q", new)) == "direct"
    assert mmu.access(vc, b, 0).hpa == hpa_of(kvm, DATA)
    assert mmu.access(vc, b + 0x2000, 0).hpa == hpa_of(kvm, DATA + 0x5000)


def test_sync_write_protects_an_spte_whose_gpte_lost_its_dirty_bit():
    # FNAME(sync_spte) recomputes the rights with protect_clean_gpte: a gpte
    # with W but not D gives a read-only SPTE, so the next write faults and
    # the walk sets the guest's D bit (FNAME(update_accessed_dirty_bits)).
    kvm, mem, pt, mmu = new_vm()
    gva = 0x40_0000
    path = pt.map(gva, DATA, leaf=P | W | A | D)
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    assert mmu.access(vc, gva, ACCESS_WRITE).exits == 1
    assert mmu.guest_write(vc, path[1], struct.pack("<Q", DATA | P | W | A)) == "direct"
    mmu.invlpg(vc, gva)
    assert mmu.hw_walk(vc, gva, ACCESS_WRITE).fault is not None
    assert mmu.access(vc, gva, ACCESS_WRITE).ok
    assert pt.read(path[1]) & D


def test_rmap_follows_a_zapped_spte():
    # drop_spte -> rmap_remove: once a gpte is re-pointed and the SPTE
    # synced away, no rmap entry for the old frame names it.
    kvm, mem, pt, mmu = new_vm()
    gva = 0x40_0000
    path = pt.map(gva, DATA, leaf=P | W | A | D)
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    mmu.access(vc, gva, ACCESS_WRITE)
    assert (DATA >> 12) in mmu.rmap
    mmu.guest_write(vc, path[1], struct.pack("<Q", (DATA + 0x1000) | P | W | A | D))
    mmu.invlpg(vc, gva)
    mmu.access(vc, gva, ACCESS_WRITE)
    assert (DATA >> 12) not in mmu.rmap
    for gfn, entries in mmu.rmap.items():
        for sp, i in entries:
            assert spte_to_pfn(sp.spt[i]) == kvm.gfn_to_hfn(gfn)


def test_shadow_dirty_logging_write_protects_existing_sptes():
    # kvm_mmu_slot_apply_flags -> kvm_mmu_slot_remove_write_access: every
    # writable SPTE of the slot is found through the rmap and made
    # read-only, so the next write faults and is logged.
    kvm, mem, pt, mmu = new_vm()
    gva = 0x40_0000
    pt.map(gva, DATA, leaf=P | W | A | D)
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    mmu.access(vc, gva, ACCESS_WRITE)
    kvm.enable_dirty_logging(0)
    assert mmu.hw_walk(vc, gva, ACCESS_WRITE).fault is not None
    assert mmu.access(vc, gva, ACCESS_WRITE).exits == 1
    assert (DATA >> 12) in kvm.get_dirty_log(0)


def test_prefetched_sptes_are_not_marked_accessed():
    # make_spte: the A bit only for the faulting access, not for prefetched
    # SPTEs (FNAME(pte_prefetch) -> mmu_set_spte with prefetch=true).
    kvm, mem, pt, mmu = new_vm()
    gva = 0x40_0000
    pt.map(gva, DATA, leaf=P | W | A | D)
    pt.map(gva + 0x1000, DATA + 0x1000, leaf=P | W | A | D)
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    mmu.access(vc, gva, 0)
    (sp,) = [sp for sp in mmu.shadow_pages() if sp.role.level == 1]
    a_bit = mmu.fmt.accessed_mask
    assert sp.spt[0] & a_bit and not sp.spt[1] & a_bit
    assert mmu.stats["prefetched"] == 1


def test_cr0_wp0_fixup_is_for_supervisor_writes_only():
    # FNAME(gpte_access) / the CR0.WP=0 case of FNAME(fetch): a supervisor
    # write to a read-only page is allowed with WP=0; a user write faults
    # with P|W|U whatever WP says.
    kvm, mem, pt, mmu = new_vm()
    gva = 0x40_0000
    pt.map(gva, DATA, leaf=P | U | A | D)
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, wp=False, cr3=pt.cr3))
    r = mmu.access(vc, gva, ACCESS_USER | ACCESS_WRITE)
    assert r.fault is not None and r.fault.error_code == P | W | U
    assert mmu.access(vc, gva, ACCESS_WRITE).ok


def test_zapped_sp_is_unlinked_from_its_parents():
    # kvm_mmu_prepare_zap_page -> kvm_mmu_unlink_parents: after write
    # flooding zaps a PD's SP, no parent SPTE points at its frame.
    kvm, mem, pt, mmu = new_vm()
    gva = 0x40_0000
    path = pt.map(gva, DATA, leaf=P | A)
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    mmu.access(vc, gva, 0)
    (pd_sp,) = [sp for sp in mmu.shadow_pages() if sp.role.level == 2]
    for k in range(3):                           # three emulated stores
        mmu.guest_write(vc, path[2] + 8 * (k + 8), struct.pack("<Q", 0))
    assert pd_sp.invalid
    for sp in mmu.shadow_pages():
        assert all(not (e & 1 and spte_to_pfn(e) == pd_sp.pfn) for e in sp.spt)
    assert mmu.access(vc, gva, 0).hpa == hpa_of(kvm, DATA)


# ---------------------------------------------------------------------------
# Shadow MMU: PAE CR3 loads, and previous roots
# ---------------------------------------------------------------------------


def _pae_vm():
    kvm, mem, pt, mmu = new_vm(PagingMode.PAE)
    pt.map(0x40_0000, DATA, leaf=P | A)          # PDPTE 0, PDE 2, PTE 0
    vc = mmu.add_vcpu(regs(PagingMode.PAE, cr3=pt.cr3))
    assert mmu.access(vc, 0x40_0000, 0).hpa == hpa_of(kvm, DATA)
    return kvm, mem, pt, mmu, vc


def test_pae_reload_of_the_same_cr3_with_new_pdptes_rebuilds_the_roots():
    # load_pdptrs (arch/x86/kvm/x86.c): the PDPTEs are read at the CR3 load;
    # if they differ from the cached ones, KVM frees the current root
    # (kvm_mmu_free_roots, KVM_MMU_ROOT_CURRENT) so the shadow is rebuilt.
    kvm, mem, pt, mmu, vc = _pae_vm()
    pd_b, pt_b = pt.alloc_table(), pt.alloc_table()
    mem.write64((pd_b << 12) + 2 * 8, (pt_b << 12) | P | W | U)
    mem.write64(pt_b << 12, (DATA + 0x1000) | P | A)
    mmu.guest_write(vc, pt.cr3, struct.pack("<Q", (pd_b << 12) | P))
    # Until CR3 is loaded again the PDPTE registers keep the old value.
    assert mmu.access(vc, 0x40_0000, 0).hpa == hpa_of(kvm, DATA)
    assert mmu.write_cr3(vc, pt.cr3) is None     # the same CR3
    assert vc.pdptrs[0] == (pd_b << 12) | P
    assert mmu.access(vc, 0x40_0000, 0).hpa == hpa_of(kvm, DATA + 0x1000)


def test_pae_switch_to_a_copy_with_identical_pdptes_reuses_the_directories():
    # A PAE root is never kept in prev_roots (it has no SP); the new root's
    # four PDs are found again in the page hash (kvm_mmu_get_shadow_page),
    # so no SP is created and the translation is unchanged.
    kvm, mem, pt, mmu, vc = _pae_vm()
    copy = pt.alloc_table()
    mem.write(copy << 12, mem.read(pt.cr3, 32))
    created = mmu.stats["sp_created"]
    assert mmu.write_cr3(vc, copy << 12) is None
    assert mmu.access(vc, 0x40_0000, 0).hpa == hpa_of(kvm, DATA)
    assert mmu.stats["sp_created"] == created
    assert all(not r.valid for r in vc.mmu.prev_roots)


def test_pae_switch_to_different_pdptes_builds_new_directories():
    kvm, mem, pt, mmu, vc = _pae_vm()
    other = pt.alloc_table()
    pd_b, pt_b = pt.alloc_table(), pt.alloc_table()
    mem.write64(other << 12, (pd_b << 12) | P)
    mem.write64((pd_b << 12) + 2 * 8, (pt_b << 12) | P | W | U)
    mem.write64(pt_b << 12, (DATA + 0x2000) | P | A)
    assert mmu.write_cr3(vc, other << 12) is None
    assert mmu.access(vc, 0x40_0000, 0).hpa == hpa_of(kvm, DATA + 0x2000)
    assert mmu.write_cr3(vc, pt.cr3) is None
    assert mmu.access(vc, 0x40_0000, 0).hpa == hpa_of(kvm, DATA)


def test_role_change_frees_every_previous_root():
    # kvm_mmu_reset_context -> kvm_mmu_unload -> kvm_mmu_free_roots with
    # KVM_MMU_ROOTS_ALL: a CR0.WP toggle leaves no previous root behind.
    kvm, mem, pt, mmu = new_vm()
    pt2 = GuestPageTables(mem, PagingMode.LEVEL4, 0x180)
    pt.map(0x40_0000, DATA, leaf=P | A)
    pt2.map(0x40_0000, DATA + 0x1000, leaf=P | A)
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    mmu.write_cr3(vc, pt2.cr3)
    assert vc.mmu.prev_roots[0].valid
    mmu.set_cpu(vc, regs(PagingMode.LEVEL4, wp=False, cr3=pt2.cr3))
    assert all(not r.valid for r in vc.mmu.prev_roots)


# ---------------------------------------------------------------------------
# EPT02 (tdp12): previous roots and INVEPT
# ---------------------------------------------------------------------------


def test_invept_single_context_frees_a_previous_root_named_by_address():
    # handle_invept: single-context INVEPT frees the current root and every
    # prev_root for which nested_ept_root_matches, which compares only the
    # root addresses (EPTP_PA_MASK, bits 51:12), not the EPTP's flag bits.
    kvm, mem, mmu = world()
    vc = mmu.add_vcpu(EPTP_A)
    mmu.access(vc, 0x3123, 0)
    mmu.set_eptp(vc, EPTP_B)
    assert vc.mmu.prev_roots[0].pgd == EPTP_A
    assert mmu.invept(vc, INVEPT_SINGLE_CONTEXT, EPTP_A | AD) == 1
    assert all(not r.valid for r in vc.mmu.prev_roots)
    assert vc.mmu.root.pgd == EPTP_B


def test_eptp_format_change_gets_a_root_of_the_new_role():
    # kvm_init_shadow_ept_mmu recomputes the role from EPTP12 (A/D is part
    # of it); kvm_mmu_new_pgd reuses a cached root only if its role matches.
    kvm, mem, mmu = world()
    vc = mmu.add_vcpu(EPTP_A)
    mmu.access(vc, 0x3123, 0)
    old = vc.mmu.root
    mmu.set_eptp(vc, EPTP_A | AD)
    assert vc.mmu.root.hpa != old.hpa
    assert mmu.sp_by_pfn[vc.mmu.root.hpa >> 12].role.ad_disabled == 0
    mmu.set_eptp(vc, EPTP_A)                     # back: the cached root again
    assert vc.mmu.root.hpa == old.hpa


# ---------------------------------------------------------------------------
# A/D bits off, and prefetching onto a shadowed table
# ---------------------------------------------------------------------------


def test_ept_without_ad_bits_builds_ad_disabled_sptes():
    # kvm_mmu_get_tdp_root / kvm_calc_tdp_mmu_root_page_role: role.ad_disabled
    # = !kvm_ad_enabled; make_spte then sets the A/D type SPTE_TDP_AD_DISABLED
    # (1 in bits 53:52), and the SPTE relies on access tracking instead.
    host = HostMemory(16384, backed_frames=512, maxphyaddr=46)
    kvm = Kvm(host)
    mmu = TdpMmu(kvm, tdp_kind(ept_format(phys_bits=46, has_ad_bits=False)))
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 16)
    mmu.guest_access(v, 0x1000, ACCESS_WRITE)
    assert mmu.load(v).role.ad_disabled == 1
    (leaf,) = mmu.leaf_sptes()
    assert (leaf.spte >> 52) & 3 == 1


def test_prefetch_never_unsyncs_a_shadowed_page_table():
    # FNAME(pte_prefetch) -> mmu_set_spte(prefetch) -> make_spte ->
    # mmu_try_to_unsync_pages returns -EEXIST for a prefetch: the neighbour
    # that maps a shadowed page table as data is installed read-only and
    # that table's SP stays in sync.
    kvm, mem, pt, mmu = new_vm()
    a, other = 0x40_0000, 0x80_0000
    t = pt.map(a, DATA, leaf=P | W | A | D)[1] >> 12                   # a's PT
    t2 = pt.map(other, DATA + 0x3000, leaf=P | W | A | D)[1] >> 12   # other's PT
    pt.map(a + 0x1000, t2 << 12, leaf=P | W | A | D)                   # a's neighbour
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    mmu.access(vc, other, 0)                     # t2 gets a level-1 SP
    mmu.access(vc, a, 0)                         # prefetches a + 0x1000
    assert mmu.stats["prefetched"] >= 1
    (t2_sp,) = [sp for sp in mmu.shadow_pages() if sp.gfn == t2 and sp.role.level == 1]
    assert not t2_sp.unsync
    (sp_a,) = [sp for sp in mmu.shadow_pages() if sp.gfn == t and sp.role.level == 1]
    assert sp_a.spt[1] & 1 and not is_writable_pte(sp_a.spt[1])


def test_ept02_leaves_ad_bits_alone_when_eptp12_has_them_off():
    # kvm_calc_shadow_ept_root_page_role: ad_disabled = !accessed_dirty;
    # construct_eptp enables EPT A/D for EPT02 only if EPTP12 does, so the
    # CPU's walk sets no A/D bit in EPT02 (EPT A is bit 8, D bit 9).
    kvm, mem, mmu = world()
    vc = mmu.add_vcpu(EPTP_A)                    # A/D off in EPTP12
    assert mmu.access(vc, 0x3123, ACCESS_WRITE).path == "hardware"
    # The CPU writes A/D into the tables in host memory (not into the MMU's
    # bookkeeping copy of the SPTEs): read them there.
    for sp, i, _ in mmu.leaf_sptes():
        spte = mmu.host.read64(sp.hpa + 8 * i)
        assert not spte & (1 << 8) and not spte & (1 << 9)


def test_eager_split_of_a_1g_page_goes_through_2m_children():
    # kvm_tdp_mmu_try_split_huge_pages splits top-down: a 1 GiB SPTE becomes
    # 512 2 MiB SPTEs (make_small_spte at level 2: frame + i * 512), each of
    # which becomes 512 4 KiB SPTEs.
    host = HostMemory(1 << 20, backed_frames=1024, maxphyaddr=46)
    kvm = Kvm(host)
    mmu = TdpMmu(kvm, tdp_kind(ept_format(phys_bits=46)), eager_split=True)
    v = kvm.create_vcpu()
    slot = kvm.add_memslot(0, 0, 1 << 18)        # 1 GiB, congruent frames
    mmu.guest_access(v, 0x12345000)
    assert [(leaf.level, leaf.gfn) for leaf in mmu.leaf_sptes()] == [(3, 0)]
    kvm.enable_dirty_logging(0)
    root = mmu.load(v)
    for gfn in (0, 0x12345, (1 << 18) - 1):
        level, _, spte = mmu.walk(root, gfn)[-1]
        assert level == 1 and spte_to_pfn(spte) == slot.host_pfn + gfn
    assert mmu.guest_access(v, 0x12345008).hpa == ((slot.host_pfn + 0x12345) << 12) | 8
