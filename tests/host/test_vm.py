"""The VM: host frames and memslot validation; bad input leaves the VM unchanged."""

from __future__ import annotations

import pytest

from refimpl.host.vm import HostMemory, Kvm, MemslotChangeKind


def vm():
    host = HostMemory(8192, backed_frames=256, maxphyaddr=40)
    kvm = Kvm(host)
    kvm.add_memslot(0, 0x100, 0x100)
    kvm.add_memslot(1, 0x1000, 0x10, flags=2)
    return kvm


BAD_ADDS = [
    # (kwargs, message fragment)
    (dict(slot_id=0, base_gfn=0x4000, npages=1), "already exists"),
    (dict(slot_id=2, base_gfn=0x180, npages=0x100), "overlaps slot 0"),
    (dict(slot_id=2, base_gfn=0xF0, npages=0x11), "overlaps slot 0"),
    (dict(slot_id=2, base_gfn=0x4000, npages=0), "npages"),
    (dict(slot_id=2, base_gfn=-1, npages=1), "base_gfn"),
    (dict(slot_id=2, base_gfn=(1 << 28) - 1, npages=2), "physical address space"),
    (dict(slot_id=2, base_gfn=0x4000, npages=1, flags=4), "flags"),
    (dict(slot_id=-1, base_gfn=0x4000, npages=1), "slot_id"),
    (dict(slot_id=2, base_gfn=0x4000, npages=1, as_id=2), "as_id"),
    (dict(slot_id=2, base_gfn=0x4000, npages=4, host_pfn=8190), "outside host memory"),
    (dict(slot_id=2, base_gfn=0x4000, npages=4, host_pfn=100), "not allocated"),
]


@pytest.mark.parametrize("kwargs,msg", BAD_ADDS)
def test_bad_memslot_rejected_state_unchanged(kwargs, msg):
    kvm = vm()
    snap = kvm.snapshot()
    with pytest.raises(ValueError, match=msg):
        kvm.add_memslot(**kwargs)
    assert kvm.snapshot() == snap


def test_same_range_in_smm_address_space_is_fine():
    kvm = vm()
    s = kvm.add_memslot(0, 0x100, 0x100, as_id=1)
    assert kvm.gfn_to_memslot(0x150, 1) == s
    assert kvm.gfn_to_memslot(0x150, 0).id == 0


@pytest.mark.parametrize("op", [
    lambda k: k.delete_memslot(7),
    lambda k: k.move_memslot(7, 0),
    lambda k: k.set_memslot_flags(7, 0),
    lambda k: k.enable_dirty_logging(7),
    lambda k: k.get_dirty_log(7),
    lambda k: k.move_memslot(0, 0x1008),  # overlaps slot 1
    lambda k: k.set_memslot_flags(1, 0),  # READONLY cannot change
    lambda k: k.get_dirty_log(0),  # logging is off
])
def test_bad_operations_rejected_state_unchanged(op):
    kvm = vm()
    snap = kvm.snapshot()
    with pytest.raises(ValueError):
        op(kvm)
    assert kvm.snapshot() == snap


def test_deleted_slot_is_named_as_deleted():
    kvm = vm()
    kvm.delete_memslot(0)
    with pytest.raises(ValueError, match="slot_id 0 .*was deleted"):
        kvm.delete_memslot(0)


def test_move_with_dirty_logging_refused():
    kvm = vm()
    kvm.enable_dirty_logging(0)
    snap = kvm.snapshot()
    with pytest.raises(ValueError, match="dirty logging"):
        kvm.move_memslot(0, 0x3000)
    assert kvm.snapshot() == snap


def test_gfn_to_hfn_and_generation():
    host = HostMemory(8192, maxphyaddr=40)
    kvm = Kvm(host)
    pfn = host.alloc_range(16)
    kvm.add_memslot(3, 0x50, 16, host_pfn=pfn)
    assert kvm.gfn_to_hfn(0x55) == pfn + 5
    assert kvm.gfn_to_hfn(0x60) is None
    kvm.move_memslot(3, 0x70)
    assert kvm.gfn_to_hfn(0x75) == pfn + 5 and kvm.gfn_to_hfn(0x55) is None
    assert kvm.generation == 2


def test_vm_allocates_aligned_frames_and_frees_them():
    host = HostMemory(8192, maxphyaddr=40)
    kvm = Kvm(host)
    s = kvm.add_memslot(0, 0x205, 1024)
    # gfn and host frame congruent modulo 512: huge pages possible.
    assert (s.host_pfn - s.base_gfn) % 512 == 0
    used = host.used_frames
    kvm.delete_memslot(0)
    assert host.used_frames == used - 1024


def test_dirty_log_only_while_logging():
    kvm = vm()
    kvm.mark_page_dirty(0x150)
    kvm.enable_dirty_logging(0)
    kvm.mark_page_dirty(0x150)
    kvm.mark_page_dirty(0x5000)  # no slot: ignored
    assert kvm.get_dirty_log(0) == {0x150}
    assert kvm.get_dirty_log(0) == frozenset()


def test_listeners_hear_changes():
    kvm = vm()
    seen = []

    class L:
        def memslot_changed(self, kvm, change):
            seen.append((change.kind, change.generation))

        def sync_dirty_log(self, kvm, slot):
            pass

        def dirty_log_cleared(self, kvm, slot, gfns):
            pass

    kvm.listeners.append(L())
    kvm.add_memslot(5, 0x9000, 1)
    kvm.delete_memslot(5)
    assert seen == [(MemslotChangeKind.CREATE, 3), (MemslotChangeKind.DELETE, 4)]


def test_host_memory_misuse():
    host = HostMemory(64, backed_frames=4)
    with pytest.raises(ValueError, match="not all allocated"):
        host.free_page(3)
    with pytest.raises(ValueError, match="align"):
        host.alloc_range(1, 3)
    for _ in range(4):
        host.alloc_page()
    with pytest.raises(MemoryError):
        host.alloc_page()
    with pytest.raises(ValueError, match="maxphyaddr"):
        HostMemory(1 << 21, maxphyaddr=32)
