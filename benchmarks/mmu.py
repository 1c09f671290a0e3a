"""How fast the model's MMUs build and tear down mappings, and how that scales.

Three measurements, each at several guest sizes (64 MiB to 4 GiB in the full
run, smaller with ``--quick``):

* **TDP fault-in**: a VM with one memslot, the host backing it with 4 KiB
  pages only (``host_max_level=1``), the guest touching every page once
  (:meth:`refimpl.host.tdp_mmu.TdpMmu.guest_access`, which faults). Reported:
  faults per second and SPTE operations (stores plus bulk reads) per second.
* **TDP disable dirty logging**: Ben Gardon's scenario,
  :func:`refimpl.host.tdp_mmu.measure_disable_dirty_logging`, with both recovery
  strategies: the guest mapped with 2 MiB pages, dirty logging on (eager
  split to 4 KiB), then off, then every 2 MiB page touched again.
* **Shadow MMU fault-in**: a four-level guest page table mapping every page,
  the guest touching each (:meth:`refimpl.host.shadow_mmu.ShadowMmu.access`):
  faults per second, and pages mapped per second (each fault also
  prefetches neighbouring entries).

Times are CPU time of this process (``time.process_time``).
"""

from __future__ import annotations

import time

import numpy as np

from refimpl.guest.cpu import CpuState, PagingMode
from refimpl.guest.formats import CR0, CR4, EFER
from refimpl.guest.memory import GuestMemory
from refimpl.host.vm import HostMemory, Kvm

MIB = 1 << 20
CLOCK = time.process_time


def _ops(stats) -> int:
    return stats.spte_writes + stats.sptes_visited


def tdp_fault_in(size: int) -> dict:
    from refimpl.host.tdp_mmu import TdpMmu

    npages = size >> 12
    tables = npages // 512 + 64
    # Room for the slot's aligned run above the page-table frames.
    host = HostMemory(2 * npages + tables + 1024, backed_frames=tables, maxphyaddr=46)
    kvm = Kvm(host)
    mmu = TdpMmu(kvm, host_max_level=1)
    vcpu = kvm.create_vcpu()
    kvm.add_memslot(0, 0, npages)
    before = mmu.stats.snapshot()
    t = CLOCK()
    for gfn in range(npages):
        mmu.guest_access(vcpu, gfn << 12)
    dt = CLOCK() - t
    s = mmu.stats.since(before)
    return {"size_mib": size // MIB, "seconds": dt, "faults": s.page_faults,
            "spte_ops": _ops(s), "faults_per_s": s.page_faults / dt, "spte_ops_per_s": _ops(s) / dt}


def tdp_disable_dirty_logging(size: int) -> dict:
    """Gardon's scenario (as :func:`refimpl.host.tdp_mmu.measure_disable_dirty_logging`),
    timing only what follows ``disable_dirty_logging``: the recovery and the
    second round of touches."""
    from refimpl.host.spte import ept_format
    from refimpl.host.tdp_mmu import RecoveryStrategy, TdpMmu
    from refimpl.host.kvm_mmu import tdp_kind

    npages = size >> 12
    out: dict = {"size_mib": size // MIB}
    for strategy in RecoveryStrategy:
        tables = npages // 512 + 64
        host = HostMemory(2 * npages + tables + 1024, backed_frames=tables, maxphyaddr=46)
        kvm = Kvm(host)
        mmu = TdpMmu(kvm, tdp_kind(ept_format(phys_bits=46)), eager_split=True,
                     recovery=strategy, host_max_level=2)
        vcpu = kvm.create_vcpu()
        kvm.add_memslot(0, 0, npages)
        for gfn in range(0, npages, 512):
            mmu.guest_access(vcpu, gfn << 12)
        kvm.enable_dirty_logging(0)
        before = mmu.stats.snapshot()
        t = CLOCK()
        kvm.disable_dirty_logging(0)
        for gfn in range(0, npages, 512):
            mmu.guest_access(vcpu, gfn << 12)
        dt = CLOCK() - t
        s = mmu.stats.since(before)
        out[strategy.name] = {"seconds": dt, "spte_ops": _ops(s), "faults": s.page_faults,
                              "tlb_flushes": s.tlb_flushes, "spte_ops_per_s": _ops(s) / dt}
    return out


SHADOW_BASE = 0x7F00_0000_0000  # the gva of the first page (2 MiB aligned)


def shadow_guest_tables(npages: int, *, bulk: bool = True):
    """A four-level guest page table mapping ``npages`` 4 KiB pages from
    :data:`SHADOW_BASE` to consecutive frames above the tables, as
    ``GuestPageTables.map(gva, gpa, leaf=0x67)`` page by page would.

    With ``bulk`` (the default), ``map`` makes only the first page of each
    2 MiB, which creates the tables on its path, and the rest of each page
    table is written in one store of the same values (a 4 GiB guest has a
    million pages). :func:`run` checks once that both ways give the same
    bytes. Returns the guest memory (tables only), the tables, and the
    number of frames below the first data frame.
    """
    from refimpl.guest.tables import GuestPageTables

    tables = npages // 512 + 8
    guest = GuestMemory((tables + 8) << 12)  # the guest's page tables only
    pt = GuestPageTables(guest, PagingMode.LEVEL4, first_gfn=1)
    first = tables + 8  # the first data frame
    step = 512 if bulk else 1
    for start in range(0, npages, step):
        path = pt.map(SHADOW_BASE + (start << 12), (first + start) << 12, leaf=0x67)
        if bulk:
            gfns = np.arange(first + start, first + min(start + 512, npages), dtype="<u8")
            guest.write(path[1], ((gfns << np.uint64(12)) | np.uint64(0x67)).tobytes())
    return guest, pt, first


def shadow_fault_in(size: int) -> dict:
    from refimpl.host.shadow_mmu import ShadowMmu

    npages = size >> 12
    guest, pt, first = shadow_guest_tables(npages)
    tables = first - 8
    base = SHADOW_BASE
    host = HostMemory(2 * npages + 2 * tables + 4096, backed_frames=2 * tables + 2048,
                      maxphyaddr=46)
    kvm = Kvm(host)
    kvm.add_memslot(0, 0, tables + 8 + npages)
    mmu = ShadowMmu(kvm, guest)
    cpu = CpuState(cr0=CR0.PE.bit | CR0.PG.bit | CR0.WP.bit, cr3=pt.cr3, cr4=CR4.PAE.bit,
                   efer=EFER.LME.bit | EFER.LMA.bit | EFER.NXE.bit,
                   maxphyaddr=kvm.guest_maxphyaddr)
    vc = mmu.add_vcpu(cpu)
    t = CLOCK()
    exits = 0
    for i in range(npages):
        r = mmu.access(vc, base + (i << 12))
        assert r.ok, r
        exits += r.exits
    dt = CLOCK() - t
    return {"size_mib": size // MIB, "seconds": dt, "pages": npages, "faults": exits,
            "faults_per_s": exits / dt, "pages_per_s": npages / dt,
            "shadow_pages": mmu.stats["sp_created"]}


def run(quick: bool) -> dict:
    sizes = [16 * MIB, 64 * MIB] if quick else [64 * MIB, 256 * MIB, 1024 * MIB, 4096 * MIB]
    shadow_sizes = [8 * MIB, 32 * MIB] if quick else [64 * MIB, 256 * MIB, 1024 * MIB, 4096 * MIB]
    # The bulk-built guest tables are the page-by-page ones (a few thousand pages).
    small = (8 * MIB if quick else 16 * MIB) >> 12
    bulk, by_page = shadow_guest_tables(small), shadow_guest_tables(small, bulk=False)
    assert bulk[0] == by_page[0] and bulk[2] == by_page[2]
    assert bulk[1].next_gfn == by_page[1].next_gfn
    out: dict = {"tdp_fault_in": [], "tdp_disable_dirty_logging": [], "shadow_fault_in": []}
    for size in sizes:
        out["tdp_fault_in"].append(tdp_fault_in(size))
        out["tdp_disable_dirty_logging"].append(tdp_disable_dirty_logging(size))
    for size in shadow_sizes:
        out["shadow_fault_in"].append(shadow_fault_in(size))
    rows = ["TDP MMU fault-in (4 KiB host pages):"]
    for r in out["tdp_fault_in"]:
        rows.append(f"  {r['size_mib']:5d} MiB  {r['faults']:8d} faults  {r['seconds']:7.2f} s  "
                    f"{r['faults_per_s'] / 1e3:7.1f} k faults/s  "
                    f"{r['spte_ops_per_s'] / 1e3:7.1f} k SPTE ops/s")
    rows.append("TDP MMU disabling dirty logging (recovery and re-touch):")
    for r in out["tdp_disable_dirty_logging"]:
        parts = [f"{k}: {v['spte_ops']} SPTE ops in {v['seconds']:.2f} s "
                 f"({v['spte_ops_per_s'] / 1e3:.0f} k/s)"
                 for k, v in r.items() if k != "size_mib"]
        rows.append(f"  {r['size_mib']:5d} MiB  " + "; ".join(parts))
    rows.append("Shadow MMU fault-in (4-level guest, 4 KiB pages):")
    for r in out["shadow_fault_in"]:
        rows.append(f"  {r['size_mib']:5d} MiB  {r['faults']:8d} faults  {r['seconds']:7.2f} s  "
                    f"{r['faults_per_s'] / 1e3:7.1f} k faults/s  "
                    f"{r['pages_per_s'] / 1e3:7.1f} k pages/s (prefetch maps neighbours)")
    out["rows"] = rows
    return out
