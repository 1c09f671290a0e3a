"""Tests of the shadow MMU (refimpl.host.shadow_mmu).

Three groups:

* directed cases with hand-worked expectations (roles, quadrants, written
  SPTEs, unsync/sync, fast CR3 switch, write flooding, bad input);
* the directed regressions of kvm-unit-tests ``x86/access.c``: each passes
  with the correct model and, with the matching naive switch, shows the
  wrong outcome the regression was written to catch;
* a hypothesis state machine: random guest page-table writes, INVLPG, CR3
  loads, control-register changes and accesses; after every step, whatever
  the CPU may do through the shadow tables agrees with the guest walker
  (``refimpl.guest.walker.translate``), up to the stale translations the
  architecture allows until a flush.
"""

from __future__ import annotations

import dataclasses
import random
import struct

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from refimpl.guest.cpu import CpuState, PagingMode
from refimpl.guest.memory import GuestMemory
from refimpl.host.roles import PAGE_ROLE, PageRole
from refimpl.guest.tables import GuestPageTables
from refimpl.host.shadow_mmu import (
    BUGS, ShadowMmu, detect_write_misaligned, get_written_sptes, kvm_mmu_child_role,
)
from refimpl.host.spte import is_shadow_present_pte, spte_to_pfn
from refimpl.host.vm import HostMemory, Kvm
from refimpl.guest.faults import fault_for
from refimpl.guest.walker import (
    ACCESS_FETCH, ACCESS_USER, ACCESS_WRITE, TranslateResult, load_pdptrs, translate,
    walk_addr_generic, walk_context,
)

P, W, U, A, D, PS = 1, 2, 4, 0x20, 0x40, 0x80
NX = 1 << 63
CR0_PE, CR0_WP, CR0_PG = 1, 1 << 16, 1 << 31
CR4_PSE, CR4_PAE, CR4_SMEP, CR4_SMAP = 1 << 4, 1 << 5, 1 << 20, 1 << 21
EFER_LME, EFER_LMA, EFER_NX = 1 << 8, 1 << 10, 1 << 11

GUEST_FRAMES = 0x400  # 4 MiB of guest RAM, one memslot
DATA = 0x200000       # a 2 MiB-aligned data page


def regs(mode: PagingMode, *, wp=True, smep=False, smap=False, nx=True, cr3=0) -> CpuState:
    """Register values for a paging mode (CR4.PSE always on)."""
    cr0 = CR0_PE | CR0_PG | (CR0_WP if wp else 0)
    cr4 = CR4_PSE | (CR4_SMEP if smep else 0) | (CR4_SMAP if smap else 0)
    efer = EFER_NX if nx else 0
    if mode in (PagingMode.PAE, PagingMode.LEVEL4):
        cr4 |= CR4_PAE
    if mode is PagingMode.LEVEL4:
        efer |= EFER_LME | EFER_LMA
    return CpuState(cr0=cr0, cr3=cr3, cr4=cr4, efer=efer, maxphyaddr=46)


def new_vm(mode=PagingMode.LEVEL4, bugs=()):
    host = HostMemory(0x1000, backed_frames=0x200)
    kvm = Kvm(host)
    kvm.add_memslot(0, 0, GUEST_FRAMES)
    mem = GuestMemory(GUEST_FRAMES << 12)
    pt = GuestPageTables(mem, mode, 0x100)
    mmu = ShadowMmu(kvm, mem, bugs=bugs)
    return kvm, mem, pt, mmu


def hpa_of(kvm: Kvm, gpa: int) -> int:
    return (kvm.gfn_to_hfn(gpa >> 12) << 12) | (gpa & 0xFFF)


# ---------------------------------------------------------------------------
# Directed cases
# ---------------------------------------------------------------------------


def test_child_role_quadrant_and_access():
    root = PageRole(level=2, has_4_byte_gpte=1, quadrant=3, access=7, cr0_wp=1, efer_nx=1)
    c = kvm_mmu_child_role(root, 0x41, False, 4)
    # Level one lower, the given access, quadrant = index parity.
    assert (c.level, c.access, c.quadrant, c.direct) == (1, 4, 1, 0)
    assert c.cr0_wp == 1 and c.efer_nx == 1
    c = kvm_mmu_child_role(root.replace(has_4_byte_gpte=0, quadrant=0), 0x41, True, 5)
    assert (c.quadrant, c.direct, c.access) == (0, 1, 5)


def test_written_sptes_32bit_and_64bit():
    pd32 = PageRole(level=2, has_4_byte_gpte=1, quadrant=3)
    # Guest PDE 0x301 (gva 0xC0400000) lives at offset 0xC04: quadrant 3,
    # shadow PDEs 2 and 3 (two 2 MiB halves of the 4 MiB guest PDE).
    assert get_written_sptes(pd32, 0x5000 + 0x301 * 4) == (2, 2)
    assert get_written_sptes(pd32.replace(quadrant=2), 0x5000 + 0x301 * 4) is None
    pt32 = PageRole(level=1, has_4_byte_gpte=1, quadrant=1)
    # Guest PTE 600 = quadrant 1, index 88.
    assert get_written_sptes(pt32, 0x5000 + 600 * 4) == (88, 1)
    pt64 = PageRole(level=1)
    assert get_written_sptes(pt64, 0x5000 + 0x28) == (5, 1)


def test_write_misaligned():
    r64, r32 = PageRole(level=2), PageRole(level=2, has_4_byte_gpte=1)
    assert not detect_write_misaligned(r64, 0x1008, 8)
    assert not detect_write_misaligned(r64, 0x100C, 4)      # high half of a gpte
    assert not detect_write_misaligned(r64, 0x1008, 1)      # one byte at an entry start
    assert detect_write_misaligned(r64, 0x1009, 1)
    assert detect_write_misaligned(r64, 0x1006, 4)          # straddles two gptes
    assert detect_write_misaligned(r64, 0x1008, 2)
    assert not detect_write_misaligned(r32, 0x1004, 4)
    assert detect_write_misaligned(r32, 0x1006, 4)


def test_traced_fault_builds_one_sp_per_level():
    kvm, mem, pt, mmu = new_vm()
    gva = 0x40_0000
    path = pt.map(gva, DATA, leaf=P | W | A | D)
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    r = mmu.access(vc, gva, ACCESS_WRITE)
    assert r.path == "hardware" and r.exits == 1 and r.hpa == hpa_of(kvm, DATA)
    sps = mmu.shadow_pages()
    # Root (level 4) + one SP per guest table below it.
    assert [sp.role.level for sp in sps] == [4, 3, 2, 1]
    assert [sp.gfn for sp in sps] == [path[l] >> 12 for l in (4, 3, 2, 1)]
    assert all(sp.role.access == 7 and not sp.role.direct for sp in sps)
    # The leaf SPTE: present, W, no U (the gpte has no U), NX clear.
    leaf = sps[-1].spt[0]
    assert leaf & (P | W | U) == P | W and not leaf >> 63
    assert spte_to_pfn(leaf) == kvm.gfn_to_hfn(DATA >> 12)
    # The four table frames are shadowed: the upper three write-tracked.
    assert [mmu.gfn_write_tracked(sp.gfn) for sp in sps] == [True, True, True, False]
    # A second access needs no exit.
    assert mmu.access(vc, gva, ACCESS_WRITE).exits == 0


def test_quadrants_for_a_32bit_guest():
    kvm, mem, pt, mmu = new_vm(PagingMode.BITS32)
    small = 0xC025_8000             # PDE 0x300, PTE 600
    large = 0xC040_0000             # PDE 0x301, a 4 MiB page
    pt.map(small, DATA, leaf=P | W | A | D)
    pt.map(large, 0, leaf_level=2, leaf=P | W | A | D)
    vc = mmu.add_vcpu(regs(PagingMode.BITS32, nx=False, cr3=pt.cr3))
    roots = [sp for sp in mmu.shadow_pages() if sp.role.level == 2]
    # Four PAE roots, one per GiB: the same guest PD, quadrants 0-3.
    assert sorted(sp.role.quadrant for sp in roots) == [0, 1, 2, 3]
    assert {sp.gfn for sp in roots} == {pt.root_gfn}
    assert mmu.access(vc, small, 0).hpa == hpa_of(kvm, DATA)
    pt_sp = [sp for sp in mmu.shadow_pages() if sp.role.level == 1 and not sp.role.direct]
    assert len(pt_sp) == 1 and pt_sp[0].role.quadrant == 1       # PTE 600 >= 512
    assert is_shadow_present_pte(pt_sp[0].spt[600 - 512])
    # Both 2 MiB halves of the 4 MiB page: two direct SPs, quadrants 0 and 1.
    assert mmu.access(vc, large + 0x1000, 0).hpa == hpa_of(kvm, 0x1000)
    assert mmu.access(vc, large + 0x20_3000, 0).hpa == hpa_of(kvm, 0x20_3000)
    direct = sorted((sp.gfn, sp.role.quadrant) for sp in mmu.shadow_pages() if sp.role.direct)
    assert direct == [(0, 0), (0x200, 1)]


def test_unsync_stale_spte_until_invlpg():
    kvm, mem, pt, mmu = new_vm()
    gva = 0x40_0000
    path = pt.map(gva, DATA, leaf=P | W | A | D)
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    assert mmu.access(vc, gva, 0).hpa == hpa_of(kvm, DATA)
    # The PT is only write-protected: the store unsyncs it and goes direct.
    new = (DATA + 0x1000) | P | W | A | D
    assert mmu.guest_write(vc, path[1], struct.pack("<Q", new)) == "direct"
    leaf_sp = [sp for sp in mmu.shadow_pages() if sp.role.level == 1][0]
    assert leaf_sp.unsync
    # Until the guest flushes, the CPU may use the old translation: KVM's does.
    assert mmu.access(vc, gva, 0).hpa == hpa_of(kvm, DATA)
    mmu.invlpg(vc, gva)
    assert mmu.access(vc, gva, 0).hpa == hpa_of(kvm, DATA + 0x1000)
    # A CR3 load syncs too (and write-protects the table again).
    mmu.guest_write(vc, path[1], struct.pack("<Q", DATA | P | A))
    assert mmu.access(vc, gva, 0).hpa == hpa_of(kvm, DATA + 0x1000)
    mmu.write_cr3(vc, pt.cr3)
    assert not leaf_sp.unsync
    r = mmu.access(vc, gva, ACCESS_WRITE)
    assert r.fault is not None and r.fault.error_code == 0x3


def test_upper_level_write_is_emulated_and_zaps():
    kvm, mem, pt, mmu = new_vm()
    gva = 0x40_0000
    path = pt.map(gva, DATA, leaf=P | W | A | D)
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    mmu.access(vc, gva, 0)
    pde = pt.read(path[2])
    # Clear U... rather P: the PDE is in a write-tracked table.
    assert mmu.guest_write(vc, path[2], struct.pack("<Q", pde & ~P)) == "emulated"
    r = mmu.access(vc, gva, 0)
    assert r.fault is not None and r.fault.error_code == 0   # no flush needed
    # Write flooding: the third emulated store in a row zaps the PD's SP,
    # after which the PD is no longer write-tracked.
    pd_gfn = path[2] >> 12
    mmu.guest_write(vc, path[2] + 8, struct.pack("<Q", 0))
    mmu.guest_write(vc, path[2] + 16, struct.pack("<Q", 0))
    assert not mmu.gfn_write_tracked(pd_gfn) and mmu.stats["flooded"] == 1
    assert mmu.guest_write(vc, path[2], struct.pack("<Q", pde)) == "direct"


def test_fast_cr3_switch_prev_roots():
    kvm, mem, pt, mmu = new_vm()
    pt2 = GuestPageTables(mem, PagingMode.LEVEL4, 0x180)
    pt.map(0x40_0000, DATA, leaf=P | A)
    pt2.map(0x40_0000, DATA + 0x1000, leaf=P | A)
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    assert mmu.access(vc, 0x40_0000, 0).hpa == hpa_of(kvm, DATA)
    root_a = vc.mmu.root
    mmu.write_cr3(vc, pt2.cr3)
    root_b = vc.mmu.root
    assert vc.mmu.prev_roots[0] == root_a and root_b.hpa != root_a.hpa
    assert mmu.access(vc, 0x40_0000, 0).hpa == hpa_of(kvm, DATA + 0x1000)
    mmu.write_cr3(vc, pt.cr3)               # back: reused, not rebuilt
    assert vc.mmu.root == root_a and vc.mmu.prev_roots[0] == root_b
    r = mmu.access(vc, 0x40_0000, 0)     # A's SPTEs are still there
    assert r.exits == 0 and r.hpa == hpa_of(kvm, DATA)
    # LRU of three: a fourth and fifth address space push A out.
    pts = [GuestPageTables(mem, PagingMode.LEVEL4, g) for g in (0x1a0, 0x1c0, 0x1e0)]
    for p in pts:
        mmu.write_cr3(vc, p.cr3)
    assert [r.pgd for r in vc.mmu.prev_roots] == [pts[1].cr3, pts[0].cr3, pt.cr3]
    mmu.write_cr3(vc, pt2.cr3)
    assert pt.cr3 not in [r.pgd for r in vc.mmu.prev_roots]


def test_pae_roots_are_never_cached():
    kvm, mem, pt, mmu = new_vm(PagingMode.PAE)
    pt2 = GuestPageTables(mem, PagingMode.PAE, 0x180)
    pt.map(0x40_0000, DATA, leaf=P | A)
    pt2.map(0x40_0000, DATA, leaf=P | A)
    vc = mmu.add_vcpu(regs(PagingMode.PAE, cr3=pt.cr3))
    mmu.write_cr3(vc, pt2.cr3)
    assert all(not r.valid for r in vc.mmu.prev_roots)


def test_bad_input():
    kvm, mem, pt, mmu = new_vm()
    with pytest.raises(ValueError, match="bugs"):
        ShadowMmu(kvm, mem, bugs={"no_such_bug"})
    with pytest.raises(TypeError, match="bugs"):
        ShadowMmu(kvm, mem, bugs="single_pt_access")
    with pytest.raises(TypeError, match="guest_mem"):
        ShadowMmu(kvm, b"")
    with pytest.raises(ValueError, match="CR0.PG"):
        mmu.add_vcpu(CpuState(maxphyaddr=46))
    with pytest.raises(ValueError, match="maxphyaddr"):
        mmu.add_vcpu(CpuState(cr0=CR0_PE | CR0_PG, maxphyaddr=52))
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    with pytest.raises(ValueError, match="access"):
        mmu.access(vc, 0, 0x100)
    with pytest.raises(ValueError, match="gva"):
        mmu.access(vc, -1, 0)
    with pytest.raises(TypeError, match="data"):
        mmu.guest_write(vc, 0x1000, "x")
    with pytest.raises(ValueError, match="gpa"):
        mmu.guest_write(vc, GUEST_FRAMES << 12, b"\0")
    with pytest.raises(ValueError, match="index"):
        kvm_mmu_child_role(PageRole(level=2), 512, False, 7)
    # Garbage in the guest's tables never raises: it is a guest fault.
    mem.write(pt.cr3, b"\xff" * 4096)
    r = mmu.access(vc, 0x40_0000, 0)
    assert r.fault is not None and r.fault.error_code == 0x9


def test_mmio_gfn_gets_an_mmio_spte():
    kvm, mem, pt, mmu = new_vm()
    mmio = GUEST_FRAMES << 12
    pt.map(0x40_0000, mmio, leaf=P | W | A | D)
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    assert mmu.access(vc, 0x40_0000, ACCESS_WRITE).path == "mmio"
    r = mmu.access(vc, 0x40_0000, 0)
    # The second access hits the MMIO SPTE (a reserved-bit fault), not a walk.
    assert r.path == "mmio" and r.gpa == mmio and r.exits == 1


# ---------------------------------------------------------------------------
# kvm-unit-tests x86/access.c directed regressions
# ---------------------------------------------------------------------------


def effective_sp_permissions(bugs=()):
    """``check_effective_sp_permissions``: two PUDs with different rights
    (uw- and u--) point at one PMD table. Returns the four accesses."""
    kvm, mem, pt, mmu = new_vm(bugs=bugs)
    ptr1 = 0xFFFF_9234_8000_0000
    ptr2, ptr3 = ptr1 + (2 << 20), ptr1 + (1 << 30)
    ptr4 = ptr3 + (2 << 20)
    page1, page2 = DATA, DATA + 0x1000
    p1 = pt.map(ptr1, page1, leaf=P | W | U | A, upper={2: P | U | A})
    pt.map(ptr2, page2, leaf=P | W | U | A | D, upper={2: P | W | U | A})
    pmd = p1[2] >> 12
    pt.map(ptr3, page1, leaf=P | W | U | A, upper={3: P | U, 2: P | U | A}, tables={3: pmd})
    pt.map(ptr4, page2, leaf=P | W | U | A | D, upper={3: P | U, 2: P | W | U | A},
           tables={3: pmd})
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    return kvm, [mmu.access(vc, ptr1, ACCESS_USER),
                 mmu.access(vc, ptr2, ACCESS_USER | ACCESS_WRITE),
                 mmu.access(vc, ptr3, ACCESS_USER),
                 mmu.access(vc, ptr4, ACCESS_USER | ACCESS_WRITE)]


def test_check_effective_sp_permissions():
    kvm, (a1, a2, a3, a4) = effective_sp_permissions()
    assert a1.ok and a2.ok and a3.ok
    # ptr4 goes through pud2 (no W): a user write faults with P|W|U.
    assert a4.fault is not None and a4.fault.error_code == 0x7


def test_check_effective_sp_permissions_naive():
    kvm, (a1, a2, a3, a4) = effective_sp_permissions({"single_pt_access"})
    assert a1.ok and a2.ok and a3.ok
    # The PMD's SP built for pud1 is reused under pud2, and its child (made
    # writable by the ptr2 write) lets the CPU write through ptr4.
    assert a4.ok and a4.path == "hardware" and a4.hpa == hpa_of(kvm, DATA + 0x1000)


def corrupt_hugepage(bugs=()):
    """``corrupt_hugepage_trigger``: two 2 MiB PDEs map one guest page,
    at2 read-only, at1 writable; CR0.WP=1."""
    kvm, mem, pt, mmu = new_vm(bugs=bugs)
    at1, at2 = 0xFFFF_9234_0000_0000, 0xFFFF_E666_0000_0000
    pt.map(at2, DATA, leaf_level=2, leaf=P)
    pt.map(at1, DATA, leaf_level=2, leaf=P | W)
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    return [mmu.access(vc, at2, 0), mmu.access(vc, at1, 0),
            mmu.access(vc, at1, ACCESS_WRITE), mmu.access(vc, at2, ACCESS_WRITE)]


def test_corrupt_hugepage_trigger():
    r = corrupt_hugepage()
    assert r[0].ok and r[1].ok and r[2].ok
    assert r[3].fault is not None and r[3].fault.error_code == 0x3


def test_corrupt_hugepage_trigger_naive():
    r = corrupt_hugepage({"direct_access_from_parents"})
    assert r[0].ok and r[1].ok and r[2].ok
    # at2 shares at1's direct SP, whose SPTE became writable.
    assert r[3].ok and r[3].path == "hardware"


def large_pte_dirty_for_nowp(bugs=()):
    """``check_large_pte_dirty_for_nowp``: CR0.WP=0, two read-only 2 MiB
    PDEs map one page; read via at2, write via at1, write via at2."""
    kvm, mem, pt, mmu = new_vm(bugs=bugs)
    at1, at2 = 0xFFFF_9234_0300_0000, 0xFFFF_E666_0600_0000
    pde2 = pt.map(at2, DATA, leaf_level=2, leaf=P)[2]
    pde1 = pt.map(at1, DATA, leaf_level=2, leaf=P)[2]
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, wp=False, cr3=pt.cr3))
    r = [mmu.access(vc, at2, 0), mmu.access(vc, at1, ACCESS_WRITE),
         mmu.access(vc, at2, ACCESS_WRITE)]
    return r, pt.read(pde1), pt.read(pde2)


def test_check_large_pte_dirty_for_nowp():
    r, pde1, pde2 = large_pte_dirty_for_nowp()
    assert all(x.ok for x in r)
    # Each write went through KVM's walk of its own PDE, which set D.
    assert pde1 & (A | D) == A | D and pde2 & (A | D) == A | D


def test_check_large_pte_dirty_for_nowp_naive():
    r, pde1, pde2 = large_pte_dirty_for_nowp({"wp0_fixup_after_role"})
    assert all(x.ok for x in r)
    # The write via at2 was done by the CPU through at1's writable SPTE in
    # the shared direct SP: at2's PDE never got its dirty bit.
    assert r[2].path == "hardware" and r[2].exits == 0
    assert pde1 & D and not pde2 & D


def smep_andnot_wp(bugs=(), smep_first=True):
    """``check_smep_andnot_wp`` (behaviour 17): CR0.WP=0, SMEP; a supervisor
    write to a read-only user page, then a supervisor fetch from it."""
    kvm, mem, pt, mmu = new_vm(bugs=bugs)
    gva = 0xFFFF_9234_0600_1000
    pt.map(gva, DATA, leaf=P | U | A, upper={2: P | U | A})
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, wp=False, smep=smep_first, nx=False, cr3=pt.cr3))
    w = mmu.access(vc, gva, ACCESS_WRITE)
    if not smep_first:
        mmu.set_cpu(vc, regs(PagingMode.LEVEL4, wp=False, smep=True, nx=False, cr3=pt.cr3))
    return w, mmu.access(vc, gva, ACCESS_FETCH)


def test_check_smep_andnot_wp():
    w, f = smep_andnot_wp()
    assert w.ok
    assert f.fault is not None and f.fault.error_code == 0x11   # P|F: SMEP


def test_check_smep_andnot_wp_naive():
    w, f = smep_andnot_wp({"smep_keeps_exec"})
    # The page became a kernel page (U=0) but stayed executable.
    assert w.ok and f.ok and f.path == "hardware"


def test_smep_andnot_wp_role_bit():
    w, f = smep_andnot_wp(smep_first=False)
    assert w.ok and f.fault is not None and f.fault.error_code == 0x11
    w, f = smep_andnot_wp({"no_smep_andnot_wp_role"}, smep_first=False)
    # Without the role bit the SPs built with SMEP=0 are reused.
    assert w.ok and f.ok and f.path == "hardware"


def test_cr0_wp_role_bit():
    def run(bugs=()):
        kvm, mem, pt, mmu = new_vm(bugs=bugs)
        gva = 0x40_0000
        pt.map(gva, DATA, leaf=P | A | D)
        vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, wp=False, cr3=pt.cr3))
        w0 = mmu.access(vc, gva, ACCESS_WRITE)
        mmu.set_cpu(vc, regs(PagingMode.LEVEL4, wp=True, cr3=pt.cr3))
        return w0, mmu.access(vc, gva, ACCESS_WRITE)
    w0, w1 = run()
    assert w0.ok and w1.fault is not None and w1.fault.error_code == 0x3
    w0, w1 = run({"no_cr0_wp_role"})
    assert w0.ok and w1.ok and w1.path == "hardware"


def test_smap_andnot_wp_role_bit():
    def run(bugs=()):
        kvm, mem, pt, mmu = new_vm(bugs=bugs)
        gva = 0x40_0000
        pt.map(gva, DATA, leaf=P | U | A | D)
        vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, wp=False, cr3=pt.cr3))
        w = mmu.access(vc, gva, ACCESS_WRITE)
        mmu.set_cpu(vc, regs(PagingMode.LEVEL4, wp=False, smap=True, cr3=pt.cr3))
        return w, mmu.access(vc, gva, 0)
    w, r = run()
    assert w.ok and r.fault is not None and r.fault.error_code == 0x1   # SMAP
    w, r = run({"no_smap_andnot_wp_role"})
    assert w.ok and r.ok and r.path == "hardware"


def pfec_on_prefetch(bugs=()):
    """``check_pfec_on_prefetch_pte``: EFER.NX=0; at1's PTE is usable, its
    neighbour at2's PTE has bit 63 set (reserved without NX) and A clear."""
    kvm, mem, pt, mmu = new_vm(bugs=bugs)
    at1, at2 = 0xFFFF_9234_0600_1000, 0xFFFF_9234_0600_3000
    pt.map(at1, DATA, leaf=P, upper={2: P})
    pte2 = pt.map(at2, DATA, leaf=P | NX, upper={2: P})[1]
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, wp=False, nx=False, cr3=pt.cr3))
    return mmu.access(vc, at1, 0), mmu.access(vc, at2, 0), pt.read(pte2), mmu


def test_check_pfec_on_prefetch_pte():
    r1, r2, pte2, mmu = pfec_on_prefetch()
    assert r1.ok
    assert r2.fault is not None and r2.fault.error_code == 0x9   # P|RSVD
    assert mmu.stats["prefetched"] == 0


def test_check_pfec_on_prefetch_pte_naive():
    r1, r2, pte2, mmu = pfec_on_prefetch({"prefetch_skips_checks"})
    assert r1.ok and mmu.stats["prefetched"] == 1
    # at2 is read through the prefetched SPTE: no #PF, and no A bit either.
    assert r2.ok and r2.path == "hardware" and not pte2 & A


def test_prefetch_fills_accessed_neighbours():
    kvm, mem, pt, mmu = new_vm()
    base = 0x40_0000
    for k in range(8):
        pt.map(base + k * 0x1000, DATA + k * 0x1000, leaf=P | W | (A if k % 2 else 0))
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    assert mmu.access(vc, base, 0).exits == 1
    # Entry 1 (A=1) was prefetched; entry 2 (A=0) stops the prefetch.
    assert mmu.stats["prefetched"] == 1
    assert mmu.access(vc, base + 0x1000, 0).exits == 0
    assert mmu.access(vc, base + 0x3000, 0).exits == 1


def test_efer_nx_toggle_keeps_stale_sptes():
    """A KVM quirk the model keeps: shadow roots always have efer_nx=1, so
    SPs built while EFER.NX=1 are reused after the guest clears it. A gpte
    with bit 63 set (NX then, reserved now) keeps its SPTE: the CPU reads
    through it although the guest walker reports P|RSVD, and INVLPG does
    not help (the SP is not unsync). The stateful test therefore never
    toggles EFER.NX within a run."""
    kvm, mem, pt, mmu = new_vm()
    gva = 0x40_0000
    pt.map(gva, DATA, leaf=P | A | NX)
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, nx=True, cr3=pt.cr3))
    assert mmu.access(vc, gva, 0).ok
    mmu.set_cpu(vc, regs(PagingMode.LEVEL4, nx=False, cr3=pt.cr3))
    expect = translate(mem, vc.cpu, gva, 0)
    assert expect.fault is not None and expect.fault.error_code == 0x9
    mmu.invlpg(vc, gva)
    r = mmu.access(vc, gva, 0)
    assert r.ok and r.path == "hardware"


def test_every_bug_is_covered():
    covered = {"single_pt_access", "direct_access_from_parents", "wp0_fixup_after_role",
               "smep_keeps_exec", "no_smep_andnot_wp_role", "no_smap_andnot_wp_role",
               "no_cr0_wp_role", "prefetch_skips_checks"}
    assert covered == set(BUGS)
    assert PAGE_ROLE.decode(PageRole(cr0_wp=1).word)["cr0_wp"] == 1


# ---------------------------------------------------------------------------
# The stateful test
# ---------------------------------------------------------------------------

ACCESSES = (0, ACCESS_WRITE, ACCESS_FETCH, ACCESS_USER, ACCESS_USER | ACCESS_WRITE,
            ACCESS_USER | ACCESS_FETCH)
MODES = (PagingMode.LEVEL4, PagingMode.PAE, PagingMode.BITS32)
#: Per mode: first pool gfn, probe gvas, entry indices the guest writes.
POOLS = {PagingMode.LEVEL4: 0x100, PagingMode.PAE: 0x140, PagingMode.BITS32: 0x180}
POOL_TABLES = 8


def _gvas(mode: PagingMode) -> list[int]:
    if mode is PagingMode.LEVEL4:
        return [(i4 << 39) | (i3 << 30) | (i2 << 21) | (i1 << 12)
                for i4 in (0, 1) for i3 in (0, 1) for i2 in (0, 1) for i1 in (0, 5, 6)][::2]
    if mode is PagingMode.PAE:
        return [(i3 << 30) | (i2 << 21) | (i1 << 12)
                for i3 in (0, 3) for i2 in (0, 1) for i1 in (0, 5, 6)]
    return [(i2 << 22) | (i1 << 12) for i2 in (0, 0x300, 0x301) for i1 in (0, 5, 600)]


GVAS = {m: _gvas(m) for m in MODES}
INDICES = {PagingMode.LEVEL4: (0, 1, 5, 6), PagingMode.PAE: (0, 1, 5, 6),
           PagingMode.BITS32: (0, 5, 0x300, 0x301, 600)}
SHIFT = {PagingMode.LEVEL4: {1: 12, 2: 21, 3: 30, 4: 39}, PagingMode.PAE: {1: 12, 2: 21, 3: 30},
         PagingMode.BITS32: {1: 12, 2: 22}}


def oracle(mem: GuestMemory, cpu: CpuState, gva: int, access: int, pdptrs=None):
    """The guest walker, with its A/D side effects undone: (result, ad_needed).

    PAE walks start from the PDPTE registers ``pdptrs`` loaded at the last
    CR3 load, as the CPU does (memory may have changed since)."""
    if cpu.mode is PagingMode.PAE:
        ctx = walk_context(cpu)
        i = (gva >> 30) & 3
        w = walk_addr_generic(mem, ctx, 0, gva, access, rflags_ac=cpu.ac, pkru=cpu.pkru,
                              pdpte=((cpu.cr3 & 0xFFFF_FFE0) + 8 * i, pdptrs[i]))
        if w.error is None:
            r = TranslateResult(w.gpa, None, w.level, w.trace, w.acc)
        else:
            r = TranslateResult(None, fault_for(w.error, access, has_pferr_fetch=ctx.has_pferr_fetch,
                                                perm_errcode=w.errcode), w.level, w.trace)
    else:
        r = translate(mem, cpu, gva, access)
    if r.fault is not None:
        return r, False
    size = 4 if cpu.mode is PagingMode.BITS32 else 8
    entries = [e for e in r.trace if not (cpu.mode is PagingMode.PAE and e[0] == 3)]
    need = any(not v & A for _, _, v in entries) or bool(access & ACCESS_WRITE and not entries[-1][2] & D)
    for _, gpa, value in entries:
        mem._store(gpa, size, value)
    return r, need


class ShadowMachine(RuleBasedStateMachine):
    """Random guest activity against the shadow MMU and the guest walker."""

    steps_run = 0

    @initialize(mode=st.sampled_from(MODES), seed=st.integers(0, 2**32 - 1), nx=st.booleans())
    def setup(self, mode, seed, nx):
        self.host = HostMemory(0x1000, backed_frames=0x300)
        self.kvm = Kvm(self.host)
        self.kvm.add_memslot(0, 0, GUEST_FRAMES)
        self.mem = GuestMemory(GUEST_FRAMES << 12)
        self.mmu = ShadowMmu(self.kvm, self.mem)
        # Each mode gets a pool of tables; its first two are the CR3 roots
        # (for PAE: PDPT pages, never written afterwards). Every probe is
        # mapped at first, with random rights; the rules then perturb.
        rnd = random.Random(seed)
        for m in MODES:
            self._initial_tables(m, rnd)
        self.mode = mode
        # EFER.NX stays as drawn: see test_efer_nx_toggle_keeps_stale_sptes.
        self.wp, self.smep, self.smap, self.nx = True, False, False, nx
        self.root_k = 0
        self.cpu = self._regs()
        self.vc = self.mmu.add_vcpu(self.cpu)
        self.pdptrs = self._load_pdptrs(self.cpu)
        self.stale: dict[int, set[tuple[int, int, int]]] = {}

    # -- helpers ------------------------------------------------------------

    def _initial_tables(self, m: PagingMode, rnd: random.Random) -> None:
        base = POOLS[m]
        size = 4 if m is PagingMode.BITS32 else 8

        def put(table: int, index: int, value: int) -> None:
            self.mem._store((table << 12) + index * size, size, value)

        def flags(leaf: bool) -> int:
            f = P | rnd.choice([0, W]) | rnd.choice([0, U, U]) | rnd.choice([0, A, A])
            if leaf:
                f |= rnd.choice([0, D])
                if size == 8 and rnd.random() < 0.2:
                    f |= NX
            return f

        def data() -> int:
            return rnd.choice([0x200, 0x201, 0x206, 0x3FF, 0x7F0]) << 12

        if m is PagingMode.LEVEL4:
            for k in (0, 1):
                for i4 in (0, 1):
                    put(base + k, i4, ((base + 2) << 12) | flags(False))
            for i3 in (0, 1):
                put(base + 2, i3, ((base + 3 + i3) << 12) | flags(False))
            for i3 in (0, 1):
                for i2 in (0, 1):
                    if rnd.random() < 0.2:
                        put(base + 3 + i3, i2, 0x200000 | PS | flags(True))
                    else:
                        put(base + 3 + i3, i2, ((base + 5 + i2) << 12) | flags(False))
            for t in (base + 5, base + 6, base + 7):
                for i1 in (0, 5, 6):
                    put(t, i1, data() | flags(True))
        elif m is PagingMode.PAE:
            for k in (0, 1):
                self.mem.write((base + k) << 12, struct.pack(
                    "<4Q", ((base + 2 + k) << 12) | P, 0, 0, ((base + 4 + k) << 12) | P))
            for t in range(base + 2, base + 6):
                for i2 in (0, 1):
                    put(t, i2, ((base + 6 + i2) << 12) | flags(False))
            for t in (base + 6, base + 7):
                for i1 in (0, 5, 6):
                    put(t, i1, data() | flags(True))
        else:
            for k in (0, 1):
                for n, i2 in enumerate((0, 0x300, 0x301)):
                    if i2 == 0x301 and rnd.random() < 0.3:
                        put(base + k, i2, PS | flags(True))
                    else:
                        put(base + k, i2, ((base + 2 + n) << 12) | flags(False))
            for t in (base + 2, base + 3, base + 4):
                for i1 in (0, 5, 600):
                    put(t, i1, data() | flags(True))

    def _regs(self) -> CpuState:
        return regs(self.mode, wp=self.wp, smep=self.smep, smap=self.smap, nx=self.nx,
                    cr3=(POOLS[self.mode] + self.root_k) << 12)

    def _load_pdptrs(self, cpu: CpuState):
        """The PDPTE registers a CR3 load gives (None: #GP)."""
        if cpu.mode is not PagingMode.PAE:
            return (0, 0, 0, 0)
        loaded = load_pdptrs(self.mem, cpu.cr3, cpu.maxphyaddr)
        return None if loaded is None else tuple(v for _, v in loaded)

    def _writable_tables(self) -> list[int]:
        base = POOLS[self.mode]
        first = 2 if self.mode is PagingMode.PAE else 0
        return [base + k for k in range(first, POOL_TABLES)]

    def _diag(self, gva, acc, exp, hw) -> str:
        """A failure message: both walks and the SPs on the shadow path."""
        lines = [f"gva {gva:#x} access {acc:#x}: guest walker {exp}, CPU {hw}",
                 f"cpu {self.vc.cpu}", f"stale {self.stale.get(gva)}"]
        r, _ = oracle(self.mem, self.vc.cpu, gva, acc, self.pdptrs)
        lines += [f"  guest L{lv} @{g:#x} = {v:#x}" for lv, g, v in r.trace]
        for lv, h, v in hw.trace:
            sp = self.mmu.sp_by_pfn.get(h >> 12)
            lines.append(f"  shadow L{lv} @{h:#x} = {v:#x} in {sp} "
                         f"bits={sorted(sp.unsync_child_bitmap) if sp else None}")
        return "\n".join(lines)

    def _expected(self, gva: int, access: int):
        r, need = oracle(self.mem, self.vc.cpu, gva, access, self.pdptrs)
        if r.fault is not None:
            return ("fault", r.fault.vector, r.fault.error_code), need, r
        gfn = r.gpa >> 12
        hfn = self.kvm.gfn_to_hfn(gfn)
        if hfn is None:
            return ("mmio", r.gpa), need, r
        return ("ok", (hfn << 12) | (r.gpa & 0xFFF)), need, r

    # -- rules --------------------------------------------------------------

    @rule(data=st.data())
    def write_gpte(self, data):
        mode = self.mode
        table = data.draw(st.sampled_from(self._writable_tables()))
        index = data.draw(st.sampled_from(INDICES[mode]))
        size = 4 if mode is PagingMode.BITS32 else 8
        # (PAE: the PDPT pages are never used as tables, so their PDPTEs
        # never get A bits, which would be reserved bits at the next CR3 load.)
        pool = self._writable_tables() if mode is PagingMode.PAE else [
            POOLS[mode] + k for k in range(POOL_TABLES)]
        # "own": one of the guest's own tables, present, writable and dirty,
        # so that at level 1 the guest maps (and may then write) its page
        # tables as data: write tracking and unsync at work.
        kind = data.draw(st.sampled_from(["table", "table", "data", "own", "large", "mmio", "zero"]))
        flags = data.draw(st.integers(0, 0x7F)) | (P if data.draw(st.integers(0, 4)) else 0)
        flags &= ~PS
        if kind == "own":
            value = (data.draw(st.sampled_from(pool)) << 12) | (flags & U) | P | W | A | D
        elif kind == "table":
            value = (data.draw(st.sampled_from(pool)) << 12) | flags
        elif kind == "data":
            value = (data.draw(st.sampled_from([0x200, 0x201, 0x206, 0x3FF])) << 12) | flags
        elif kind == "large":
            value = data.draw(st.sampled_from([0, 0x200000, 0x400000])) | flags | PS
        elif kind == "mmio":
            value = (0x7F0 << 12) | flags
        else:
            value = 0
        if size == 8 and data.draw(st.integers(0, 3)) == 0:
            value |= NX
        if data.draw(st.integers(0, 15)) == 0:
            value |= 1 << (20 if size == 4 else 51)   # a reserved bit
        gpa = (table << 12) + index * size
        raw = value.to_bytes(size, "little")
        nbytes = data.draw(st.sampled_from([size, size, size, 1, 2]))
        raw = raw[:nbytes]
        # Record what the CPU may have cached for every probe whose walk
        # reads the entry being changed: allowed until the next flush.
        for gva in GVAS[mode]:
            r, _ = oracle(self.mem, self.vc.cpu, gva, 0, self.pdptrs)
            if any(e[1] < gpa + nbytes and gpa < e[1] + size for e in r.trace):
                for acc in ACCESSES:
                    exp, _, rr = self._expected(gva, acc)
                    if exp[0] == "ok":
                        self.stale.setdefault(gva, set()).add((acc, exp[1] >> 12, rr.level))
        self.mmu.guest_write(self.vc, gpa, raw)

    @rule(acc=st.sampled_from(ACCESSES))
    def touch_every_probe(self, acc):
        for gva in GVAS[self.mode]:
            self._access(gva, acc)

    @rule(i=st.integers(0, 100), acc=st.sampled_from(ACCESSES))
    def access(self, i, acc):
        self._access(GVAS[self.mode][i % len(GVAS[self.mode])], acc)

    def _access(self, gva: int, acc: int) -> None:
        exp, _, _ = self._expected(gva, acc)
        got = self.mmu.access(self.vc, gva, acc)
        if got.fault is not None:
            g = ("fault", got.fault.vector, got.fault.error_code)
        elif got.path == "mmio":
            g = ("mmio", got.gpa)
        else:
            g = ("ok", got.hpa)
        stale = self.stale.get(gva, set())
        if g != exp:
            assert g[0] == "ok" and got.path == "hardware" and any(
                a == acc and h == g[1] >> 12 for a, h, _ in stale), self._diag(
                    gva, acc, exp, self.mmu.hw_walk(self.vc, gva, acc)) + f"\ngot {got}"
        elif g[0] == "ok" and not stale:
            # The access went through (CPU or KVM): the guest's A/D bits
            # must now say so, as if the guest walker had done it.
            _, need = oracle(self.mem, self.vc.cpu, gva, acc, self.pdptrs)
            assert not need, (gva, acc)

    @rule(i=st.integers(0, 100))
    def invlpg(self, i):
        gva = GVAS[self.mode][i % len(GVAS[self.mode])]
        self.mmu.invlpg(self.vc, gva)
        shifts = SHIFT[self.mode]
        for p, entries in list(self.stale.items()):
            kept = {e for e in entries if p >> shifts[e[2]] != gva >> shifts[e[2]]}
            if kept:
                self.stale[p] = kept
            else:
                del self.stale[p]

    def _load_regs(self, new: dict, write) -> None:
        """Load registers; a PAE CR3 whose PDPTEs are bad is #GP, no change."""
        saved = (self.mode, self.wp, self.smep, self.smap, self.root_k)
        for k, v in new.items():
            setattr(self, k, v)
        cpu = self._regs()
        pdptrs = self._load_pdptrs(cpu)
        fault = write(cpu)
        if pdptrs is None:
            assert fault is not None and fault.vector == 13
            self.mode, self.wp, self.smep, self.smap, self.root_k = saved
            return
        assert fault is None
        self.pdptrs = pdptrs
        # A CR3 load flushes; so does any change of a paging-mode bit, as
        # far as KVM is concerned (it resets the MMU context and syncs). A
        # MOV to CR0/CR4 that changes nothing flushes nothing.
        if "root_k" in new or saved != (self.mode, self.wp, self.smep, self.smap, self.root_k):
            self.stale.clear()

    @rule(k=st.integers(0, 1))
    def mov_cr3(self, k):
        self._load_regs({"root_k": k}, lambda cpu: self.mmu.write_cr3(self.vc, cpu.cr3))

    @rule(mode=st.sampled_from((None, None, None) + MODES), wp=st.booleans(),
          smep=st.booleans(), smap=st.booleans())
    def set_control_regs(self, mode, wp, smep, smap):
        # The paging mode stays as it is more often than not (None), so that
        # WP/SMEP/SMAP toggles meet SPs built under the other value.
        self._load_regs({"mode": mode or self.mode, "wp": wp, "smep": smep, "smap": smap},
                        lambda cpu: self.mmu.set_cpu(self.vc, cpu))

    # -- invariants -----------------------------------------------------------

    @invariant()
    def hardware_agrees_with_guest_walker(self):
        if not hasattr(self, "vc"):
            return
        ShadowMachine.steps_run += 1
        for gva in GVAS[self.mode]:
            stale = self.stale.get(gva, set())
            for acc in ACCESSES:
                hw = self.mmu.hw_walk(self.vc, gva, acc)
                if hw.fault is not None:
                    continue
                exp, need, _ = self._expected(gva, acc)
                if any(a == acc and h == hw.hpa >> 12 for a, h, _ in stale):
                    continue
                assert exp == ("ok", hw.hpa), self._diag(gva, acc, exp, hw)
                assert not need, ("CPU would skip the guest's A/D update", gva, acc)

    @invariant()
    def sptes_map_memslot_frames(self):
        if not hasattr(self, "vc"):
            return
        for sp, i, spte in self.mmu.leaf_sptes():
            gfn, _ = sp.shadowed_translation[i]
            assert self.kvm.gfn_to_hfn(gfn) == spte_to_pfn(spte)


ShadowMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
TestShadowMachine = ShadowMachine.TestCase
TestShadowMachine.pytestmark = [pytest.mark.slow]


# ---------------------------------------------------------------------------
# hw_walk against refimpl.host.mmu.hw_translate_shadow
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_hw_walk_is_hw_translate_shadow(mode):
    """``ShadowMmu.hw_walk`` builds the CPU's registers once per root (and
    guest SMEP/SMAP/AC) instead of at every access. Whatever it returns, and
    whatever A/D bits it sets in the shadow tables, must be what
    ``hw_translate_shadow`` returns and sets from the same memory."""
    import dataclasses
    import itertools

    from refimpl.host.mmu import hw_translate_shadow

    nx = 0 if mode is PagingMode.BITS32 else NX  # 32-bit entries have no NX
    leaves = [P | W | U | A | D, P | A, P | U | A | nx, P | W | A, P | U | W]
    for smep, smap, ac in itertools.product((False, True), repeat=3):
        kvm, mem, pt, mmu = new_vm(mode)
        gvas = GVAS[mode]
        for k, gva in enumerate(gvas[:-2]):  # the last two stay unmapped
            pt.map(gva, DATA + 0x1000 * k, leaf=leaves[k % len(leaves)])
        cpu = regs(mode, smep=smep, smap=smap, cr3=pt.cr3)
        cpu = dataclasses.replace(cpu, rflags=(1 << 18) if ac else 0)
        vc = mmu.add_vcpu(cpu)
        for gva in gvas[::2]:  # shadow half of them, with several rights
            for acc in (0, ACCESS_WRITE, ACCESS_USER):
                mmu.access(vc, gva, acc)
        buf = kvm.host.mem.buffer
        root = vc.mmu.root
        compared = 0
        for gva in gvas:
            for acc in ACCESSES:
                before = bytes(buf)
                got = mmu.hw_walk(vc, gva, acc)
                after = bytes(buf)
                buf[:] = before
                want = hw_translate_shadow(kvm.host, mmu.fmt, root.hpa, vc.mmu.root_role.level,
                                           gva, acc, cr4_smep=smep, cr4_smap=smap, rflags_ac=ac)
                assert got == want, (mode, smep, smap, ac, hex(gva), acc)
                assert bytes(buf) == after, ("A/D bits differ", mode, hex(gva), acc)
                compared += want.fault is None
        assert compared, "no access went through the shadow tables"


# ---------------------------------------------------------------------------
# Shadow pages live in the VM's hash; outcomes are values
# ---------------------------------------------------------------------------


def test_unsync_pages_are_per_vm_and_found_again_by_another_vcpu():
    from refimpl.host.outcomes import GuestStore
    from refimpl.host.mmu_page import MmuPage
    kvm, mem, pt, mmu = new_vm()
    gva = 0x40_0000
    path = pt.map(gva, DATA, leaf=P | W | A | D)
    vc0 = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    mmu.access(vc0, gva, 0)
    new = (DATA + 0x1000) | P | W | A | D
    assert mmu.guest_write(vc0, path[1], struct.pack("<Q", new)) is GuestStore.DIRECT
    (leaf_sp,) = [sp for sp in mmu.shadow_pages() if sp.role.level == 1]
    assert type(leaf_sp) is MmuPage and not leaf_sp.tdp_mmu_page and leaf_sp.unsync
    # The unsync page is in the VM's page hash, keyed by (gfn, role word).
    assert mmu.page_hash[(leaf_sp.gfn, leaf_sp.role.word)] is leaf_sp
    # A second vCPU loading the same CR3 gets the same root and, as its
    # fault path descends, the same child SPs from the hash: no new SP.
    created = mmu.stats["sp_created"]
    vc1 = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    assert vc1.mmu.root.hpa == vc0.mmu.root.hpa
    r = mmu.access(vc1, gva, 0)
    assert mmu.stats["sp_created"] == created
    # The root load synced the unsync page (vc1 sees the new gpte).
    assert r.hpa == hpa_of(kvm, DATA + 0x1000)


def test_shadow_access_paths_are_enum_values():
    from refimpl.host.outcomes import AccessPath
    kvm, mem, pt, mmu = new_vm()
    pt.map(0x40_0000, DATA, leaf=P | A)
    vc = mmu.add_vcpu(regs(PagingMode.LEVEL4, cr3=pt.cr3))
    r = mmu.access(vc, 0x40_0000, 0)
    assert r.path is AccessPath.HARDWARE and r.path == "hardware" and r.exits == 1
    r = mmu.access(vc, 0x40_0000, ACCESS_WRITE)       # read-only gpte
    assert r.path is AccessPath.FAULT and r.fault.error_code == 0x3
    r = mmu.access(vc, 0x80_0000, 0)                  # not mapped
    assert r.path == "fault" and r.fault.error_code == 0


@pytest.mark.parametrize("gbpages", [True, False])
def test_shadow_zero_check_takes_the_guest_gbpages(gbpages):
    # reset_shadow_zero_bits_mask passes the guest's GBPAGES (guest_can_use /
    # guest_cpu_cap_has) to __reset_rsvds_bits_mask, which reserves bit 7 of
    # a 1 GiB PDPTE (rsvd_bits_mask[1][2]) only when that is false. The shadow
    # MMU sets the check when a vCPU is created and again when its role changes.
    kvm, mem, pt, mmu = new_vm()
    cpu = dataclasses.replace(regs(PagingMode.LEVEL4, cr3=pt.cr3), gbpages=gbpages)
    vc = mmu.add_vcpu(cpu)
    want_bit7 = 0 if gbpages else 1 << 7
    assert vc.kind.shadow_zero_check.rsvd_bits_mask[1][2] & (1 << 7) == want_bit7
    mmu.set_cpu(vc, dataclasses.replace(cpu, cr0=cpu.cr0 & ~CR0_WP))
    assert vc.kind.shadow_zero_check.rsvd_bits_mask[1][2] & (1 << 7) == want_bit7
