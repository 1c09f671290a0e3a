"""Known bugs, replayed (book/bugs_replayed.md): each switch caught when on, absent when off.

Every entry of :data:`refimpl.bugs.REPLAYED` names two tests: an *off* test
that passes on the correct model and an *on* test that asserts the bug's
symptom with the switch on. The access.c cases keep their tests in
``test_shadow_mmu.py``; the rest are here. Expectations are worked by hand
from the SDM/APM and the KVM fixes cited in the registry.
"""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest

from host import test_shadow_mmu as tsm
from refimpl.layouts import legacy as L
from refimpl.host import nested_svm, shadow_mmu, tdp_mmu
from refimpl.host.concurrency import threads as concurrency_threads
from refimpl.bugs import REPLAYED, switches
from refimpl.guest.cpu import PagingMode
from refimpl.guest.walker import ACCESS_FETCH, ACCESS_WRITE
from refimpl.host.kvm_mmu import tdp_kind
from refimpl.host.nested_svm import l2_vmload
from refimpl.guest.permissions import permission_fault, update_permission_bitmask
from refimpl.host.roles import EFER_NX
from refimpl.host.spte import ept_format, is_writable_pte
from refimpl.host.tdp_mmu import TdpMmu
from refimpl.host.vm import HostMemory, Kvm

ROOT = Path(__file__).resolve().parent.parent
EPT_X = 1 << 2  # EPT execute permission (SDM Vol. 3C, Table 29-6)


# ---------------------------------------------------------------------------
# The registry itself
# ---------------------------------------------------------------------------


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def test_every_registered_bug_has_an_off_and_an_on_test():
    names = {}
    for bug in REPLAYED:
        off, on = bug.tests
        assert off != on, bug.switch
        for t in (off, on):
            file, name = t.split("::")
            names.setdefault(file, _test_names(ROOT / file))
            assert name in names[file], f"{bug.switch}: {t} does not exist"


def test_every_switch_is_registered_and_every_entry_is_a_switch():
    modules = {"refimpl.host.shadow_mmu": shadow_mmu, "refimpl.host.tdp_mmu": tdp_mmu,
               "refimpl.layouts.legacy": L, "refimpl.host.nested_svm": nested_svm,
               "refimpl.host.concurrency.threads": concurrency_threads}
    expected = {(m, s) for m, mod in modules.items() for s in mod.BUGS}
    assert set(switches()) == expected
    assert len(switches()) == len(REPLAYED)            # no duplicate entries
    assert all(b.description() for b in REPLAYED)


def test_bugs_validation():
    kvm = Kvm(HostMemory(64))
    with pytest.raises(ValueError, match="bugs"):
        TdpMmu(kvm, bugs={"no_such_bug"})
    with pytest.raises(TypeError, match="bugs"):
        TdpMmu(kvm, bugs="nx_huge_exec")
    vcpu = L.kvm_mmu_create(L.Host())
    L.set_regs(vcpu, L.L1_REGS)
    with pytest.raises(ValueError, match="bugs"):
        L.emulated_permission_check(vcpu, bugs={"stale_cr0"})


# ---------------------------------------------------------------------------
# access.c role-bit switches (the scenarios of test_shadow_mmu.py, split)
# ---------------------------------------------------------------------------


def test_no_smep_andnot_wp_role_off():
    # WP=0 write makes the user page a kernel page; SMEP turned on afterwards
    # must stop the supervisor fetch: #PF with P|F (0x11).
    w, f = tsm.smep_andnot_wp(smep_first=False)
    assert w.ok and f.fault is not None and f.fault.error_code == 0x11


def test_no_smep_andnot_wp_role_on():
    w, f = tsm.smep_andnot_wp({"no_smep_andnot_wp_role"}, smep_first=False)
    assert w.ok and f.ok and f.path == "hardware"


def _smap_after_wp0_write(bugs=()):
    kvm, mem, pt, mmu = tsm.new_vm(bugs=bugs)
    gva = 0x40_0000
    pt.map(gva, tsm.DATA, leaf=tsm.P | tsm.U | tsm.A | tsm.D)
    vc = mmu.add_vcpu(tsm.regs(PagingMode.LEVEL4, wp=False, cr3=pt.cr3))
    w = mmu.access(vc, gva, ACCESS_WRITE)
    mmu.set_cpu(vc, tsm.regs(PagingMode.LEVEL4, wp=False, smap=True, cr3=pt.cr3))
    return w, mmu.access(vc, gva, 0)


def test_no_smap_andnot_wp_role_off():
    w, r = _smap_after_wp0_write()
    assert w.ok and r.fault is not None and r.fault.error_code == 0x1   # SMAP: P only


def test_no_smap_andnot_wp_role_on():
    w, r = _smap_after_wp0_write({"no_smap_andnot_wp_role"})
    assert w.ok and r.ok and r.path == "hardware"


def _write_after_wp_toggle(bugs=()):
    kvm, mem, pt, mmu = tsm.new_vm(bugs=bugs)
    gva = 0x40_0000
    pt.map(gva, tsm.DATA, leaf=tsm.P | tsm.A | tsm.D)          # read-only kernel page
    vc = mmu.add_vcpu(tsm.regs(PagingMode.LEVEL4, wp=False, cr3=pt.cr3))
    w0 = mmu.access(vc, gva, ACCESS_WRITE)
    mmu.set_cpu(vc, tsm.regs(PagingMode.LEVEL4, wp=True, cr3=pt.cr3))
    return w0, mmu.access(vc, gva, ACCESS_WRITE)


def test_no_cr0_wp_role_off():
    w0, w1 = _write_after_wp_toggle()
    assert w0.ok and w1.fault is not None and w1.fault.error_code == 0x3   # P|W


def test_no_cr0_wp_role_on():
    w0, w1 = _write_after_wp_toggle({"no_cr0_wp_role"})
    assert w0.ok and w1.ok and w1.path == "hardware"


# ---------------------------------------------------------------------------
# check_toggle_cr0_wp: stale CR0.WP with EPT (cf9f4c0eb169)
# ---------------------------------------------------------------------------

READ_ONLY_PAGE = 0b101   # ACC_USER | ACC_EXEC, no ACC_WRITE
SUPERVISOR_WRITE = 0b10  # error code W, U=0


def emulated_supervisor_write_faults(wp: bool, bugs=()) -> bool:
    """access.c's do_cr0_wp_access: set WP to !wp, toggle EFER.NX twice (two
    MMU resets, which snapshot !wp), set WP to wp, then an emulated (FEP)
    supervisor write to a read-only page."""
    vcpu = L.kvm_mmu_create(L.Host(tdp_enabled=True, vendor="vmx"))
    L.set_regs(vcpu, L.L1_REGS)
    L.vmx_guest_owned_cr0_wp_write(vcpu, not wp)
    for _ in range(2):
        L.set_regs(vcpu, replace(vcpu.regs, efer=vcpu.regs.efer ^ EFER_NX))
    L.vmx_guest_owned_cr0_wp_write(vcpu, wp)
    perms = L.emulated_permission_check(vcpu, bugs=bugs)
    table = update_permission_bitmask(**dict(perms.inputs))
    return bool(permission_fault(table, 0, pte_access=READ_ONLY_PAGE, pte_pkey=0,
                                 access=SUPERVISOR_WRITE, rflags_ac=False, pkru=0))


def test_stale_cr0_wp_off():
    # SDM: a supervisor write to a read-only page faults iff CR0.WP=1.
    assert emulated_supervisor_write_faults(wp=True)
    assert not emulated_supervisor_write_faults(wp=False)


def test_stale_cr0_wp_on():
    # The bitmap still encodes the WP of the last reset (the inverse).
    assert not emulated_supervisor_write_faults(wp=True, bugs={"stale_cr0_wp"})
    assert emulated_supervisor_write_faults(wp=False, bugs={"stale_cr0_wp"})


def test_refresh_is_skipped_for_shadow_paging_and_guest_mmu():
    with pytest.raises(ValueError, match="EPT"):
        L.vmx_guest_owned_cr0_wp_write(L.kvm_mmu_create(L.Host(tdp_enabled=False)), True)
    vcpu = L.kvm_mmu_create(L.Host(tdp_enabled=True))
    L.set_regs(vcpu, L.L1_REGS)
    L.nested_vmx_vmentry(vcpu, L.L2_REGS, ept=True)
    role = vcpu.guest_mmu.cpu_role
    L.kvm_mmu_refresh_passthrough_bits(vcpu, vcpu.guest_mmu)
    assert vcpu.guest_mmu.cpu_role is role          # EPT12 ignores CR0.WP


# ---------------------------------------------------------------------------
# iTLB multihit: the NX huge page mitigation (CVE-2018-12207)
# ---------------------------------------------------------------------------


def nx_huge_run(bugs=()):
    """Mitigation on; 4 MiB memslot at GPA 0 backed 2 MiB-aligned; a read of
    GPA 0x201000, then an instruction fetch from it."""
    host = HostMemory(16384, backed_frames=512, maxphyaddr=46)
    kvm = Kvm(host)
    mmu = TdpMmu(kvm, tdp_kind(ept_format(phys_bits=46, nx_huge_pages=True)), bugs=bugs)
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 1024)
    read = mmu.guest_access(v, 0x201000)
    after_read = sorted((l.level, l.gfn, bool(l.spte & EPT_X)) for l in mmu.leaf_sptes())
    fetch = mmu.guest_access(v, 0x201000, ACCESS_FETCH)
    after_fetch = sorted((l.level, l.gfn, bool(l.spte & EPT_X)) for l in mmu.leaf_sptes())
    return read, after_read, fetch, after_fetch


def test_nx_huge_exec_off():
    read, after_read, fetch, after_fetch = nx_huge_run()
    assert after_read == [(2, 0x200, False)]         # huge, not executable
    assert fetch.faults == 1                          # the fetch hits NX and faults
    assert after_fetch == [(1, 0x201, True)]          # split: one 4 KiB executable SPTE
    assert not any(lvl > 1 and x for lvl, _, x in after_fetch)


def test_nx_huge_exec_on():
    read, after_read, fetch, after_fetch = nx_huge_run({"nx_huge_exec"})
    assert after_read == [(2, 0x200, True)]          # an executable 2 MiB SPTE
    assert fetch.faults == 0                         # fetched through it, no split
    assert after_fetch == [(2, 0x200, True)]


# ---------------------------------------------------------------------------
# CVE-2021-3656: nested VMLOAD/VMSAVE not intercepted
# ---------------------------------------------------------------------------


def vmload_setup():
    """L1: one 1 MiB memslot at GPA 0 (host frames 0xF00..0xFFF); host frame
    0 is a page KVM allocated for itself (not L1's). The vCPU runs L2."""
    host = HostMemory(4096, backed_frames=64)
    kvm = Kvm(host)
    slot = kvm.add_memslot(0, 0, 256)
    kvm_page = host.alloc_page()
    vcpu = L.kvm_mmu_create(L.Host(tdp_enabled=True, vendor="svm"))
    L.set_regs(vcpu, L.L1_REGS)
    L.nested_svm_vmrun(vcpu, L.L2_REGS, npt=True)
    return kvm, slot, kvm_page, vcpu


def test_vmload_not_intercepted_off():
    kvm, slot, kvm_page, vcpu = vmload_setup()
    assert (slot.host_pfn, kvm_page) == (0xF00, 0)
    l1_frames = range(slot.host_pfn, slot.host_pfn + slot.npages)
    # rAX = 0: an L1 GPA, L1 gfn 0 -> host frame 0xF00.
    r = l2_vmload(kvm, vcpu, 0, l1_intercepts=False)
    assert (r.handler, r.hpa) == ("L0", 0xF00 << 12) and r.hpa >> 12 in l1_frames
    # rAX beyond L1's memory: #GP, nothing touched.
    r = l2_vmload(kvm, vcpu, 256 << 12, l1_intercepts=False)
    assert (r.handler, r.hpa, r.fault) == ("L0", None, "#GP")
    # L1 intercepts: a nested #VMEXIT, nothing touched.
    assert l2_vmload(kvm, vcpu, 0, l1_intercepts=True) == nested_svm.VmloadOutcome("L1")


def test_vmload_not_intercepted_on():
    kvm, slot, kvm_page, vcpu = vmload_setup()
    bugs = {"vmload_not_intercepted"}
    r = l2_vmload(kvm, vcpu, kvm_page << 12, l1_intercepts=False, bugs=bugs)
    # The CPU took rAX as host-physical: L2 reached KVM's own page.
    assert (r.handler, r.hpa) == ("cpu", 0)
    assert kvm_page not in range(slot.host_pfn, slot.host_pfn + slot.npages)
    # With L1's intercept VMCB02 still exits: the bug needs L1 to drop it.
    assert l2_vmload(kvm, vcpu, 0, l1_intercepts=True, bugs=bugs).handler == "L1"


def test_vmload_bad_input():
    kvm, slot, kvm_page, vcpu = vmload_setup()
    with pytest.raises(ValueError, match="rax"):
        l2_vmload(kvm, vcpu, 0x123, l1_intercepts=False)
    with pytest.raises(ValueError, match="rax"):
        l2_vmload(kvm, vcpu, 1 << 52, l1_intercepts=False)
    L.nested_svm_vmexit(vcpu)
    with pytest.raises(ValueError, match="L2"):
        l2_vmload(kvm, vcpu, 0, l1_intercepts=False)
    with pytest.raises(TypeError, match="bugs"):
        l2_vmload(kvm, vcpu, 0, l1_intercepts=False, bugs="vmload_not_intercepted")


# ---------------------------------------------------------------------------
# A missing TLB flush after write-protecting for dirty logging
# ---------------------------------------------------------------------------


def wrprot_run(bugs=()):
    """Write GPA 0x5000 (maps a writable 2 MiB page, cached in the TLB),
    turn dirty logging on, write GPA 0x5000 again, read the log."""
    host = HostMemory(16384, backed_frames=512, maxphyaddr=46)
    kvm = Kvm(host)
    mmu = TdpMmu(kvm, tdp_kind(ept_format(phys_bits=46)), bugs=bugs)
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 1024)
    first = mmu.guest_access(v, 0x5000, ACCESS_WRITE)
    kvm.enable_dirty_logging(0)
    leaves = [(l.level, is_writable_pte(l.spte)) for l in mmu.leaf_sptes()]
    second = mmu.guest_access(v, 0x5000, ACCESS_WRITE)
    return first, leaves, second, kvm.get_dirty_log(0)


def test_no_flush_on_wrprot_off():
    first, leaves, second, log = wrprot_run()
    assert first.faults == 1 and leaves == [(2, False)]
    assert second.faults == 1 and not second.tlb_hit     # flushed: the write faults...
    assert log == {5}                                     # ...and is logged


def test_no_flush_on_wrprot_on():
    first, leaves, second, log = wrprot_run({"no_flush_on_wrprot"})
    assert leaves == [(2, False)]                         # the SPTE is write-protected,
    assert second.faults == 0 and second.tlb_hit          # but the stale TLB entry wrote
    assert log == set()                                   # and the page is not in the log
