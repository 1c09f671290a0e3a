"""The refactoring differential drives hardware accesses through the real MMUs.

What is checked, and against what:

* a directed workload (shadow-paging host, CR0.WP=0, a supervisor write to a
  read-only page, WP set, the same write): the expected outcomes are worked
  out by hand from the page tables and the SDM; the step that keeps shadow
  roots on a WP-only CR0 write gets the second write through, and the
  differential shows that event first;
* the same mistake is invisible to the emulated path and to the old way of
  computing a hardware access (a walk with the layout's context), which is
  why the shadow MMU has to answer;
* the direct kind is a parameter: the factory given is the one used;
* ``ShadowMmu.load_root`` / ``Tdp12Mmu.load_root``: a root loaded for the
  caller's roles, kept or replaced as asked, and bad input rejected with
  nothing changed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from refimpl.fast.scalar import translate
from refimpl.guest.cpu import CpuState
from refimpl.guest.memory import GuestMemory
from refimpl.host.roles import EFER_LMA, calc_cpu_role, calc_shadow_ept_role, calc_shadow_root_role
from refimpl.host.shadow_mmu import ShadowMmu
from refimpl.host.tdp12 import Tdp12Mmu
from refimpl.host.tdp_mmu import TdpMmu
from refimpl.host.vm import HostMemory, Kvm
from refimpl.layouts import legacy as L
from refimpl.layouts import workload as W
from refimpl.layouts.mistakes import MISTAKES
from refimpl.layouts.steps import STEPS

KEPT = MISTAKES["wp_keeps_shadow_roots"]


def _words(wl):
    idx, vals = wl.memory
    return dict(zip(idx.tolist(), vals.tolist()))


def _leaf_by_hand(words, cr3, gva):
    """4-level walk by hand: every entry on the path (no checks)."""
    table, out = cr3, []
    for level in (4, 3, 2, 1):
        e = words.get((table + 8 * ((gva >> (12 + 9 * (level - 1))) & 511)) // 8, 0)
        out.append(e)
        table = e & 0x000F_FFFF_FFFF_F000
    return out


def test_directed_wp_probe_by_hand():
    wl = W.wp_probe_workload()
    assert not wl.host.tdp_enabled and wl.n_vcpus == 1
    regs = wl.events[0].args[0]
    assert not regs.cr0 & L.CR0_WP and regs.cr0 & L.CR0_PG and regs.efer & EFER_LMA
    gva, access = wl.events[1].args
    assert access == W.ACCESS_WRITE and wl.events[3] == wl.events[1]
    assert wl.events[2].args[0] == regs.cr0 | L.CR0_WP
    path = _leaf_by_hand(_words(wl), regs.cr3, gva)
    assert all(e & 1 for e in path)            # present at every level
    leaf = path[-1]
    assert not leaf & 2 and not leaf & 4       # read-only, supervisor
    gpa = (leaf & 0x000F_FFFF_FFFF_F000) | (gva & 0xFFF)
    assert 0x100 <= gpa >> 12 < 0x130          # in memslot 0 or 1
    for step in ("legacy", STEPS[-1]):
        out = W.run(step, wl).outcomes
        # WP=0: a supervisor write to a read-only page is allowed (SDM).
        assert out[1][:2] == ("ok", gpa) and isinstance(out[1][2], int)
        # WP=1: #PF, error code P|W, at the address written.
        assert out[3] == ("fault", "L1", "#PF", 14, 0x3, gva, None, None)
    wrong = W.run(KEPT, wl)
    assert wrong.outcomes[3] == W.run("legacy", wl).outcomes[1]   # the write went through
    m = W.first_difference(wl, W.run("legacy", wl).outcomes, wrong.outcomes)
    assert (m.index, m.event.kind, m.what) == (3, "hw_access", "outcome")
    assert m.expected[0] == "fault" and m.got[0] == "ok"


def test_wp_probe_workload_rejects_bad_seeds():
    with pytest.raises(ValueError, match="seed"):
        W.wp_probe_workload(-1)
    with pytest.raises(TypeError, match="seed"):
        W.wp_probe_workload(1.5)
    assert W.wp_probe_workload(W.wp_probe_workload().seed).events == W.wp_probe_workload().events


def test_kept_roots_are_seen_by_the_shadow_mmu_only():
    wl = W.wp_probe_workload()
    legacy, wrong = W.run("legacy", wl), W.run(KEPT, wl)
    # The counters tell a reset from a re-init...
    assert legacy.stats["resets_cr0_wp"] == 1 and wrong.stats["resets_cr0_wp"] == 0
    # ...the walk the layout designates does not: emulating the second write
    # walks with the new WP and faults in both.
    emulated = dataclasses.replace(wl, events=wl.events[:3] + (
        W.Event(0, "emul_access", wl.events[3].args),))
    assert W.run("legacy", emulated).outcomes == W.run(KEPT, emulated).outcomes
    # Nor would a hardware access computed by walking the guest's tables with
    # the layout's paging context (the differential's former shortcut).
    lay = KEPT()
    v = lay.create_vcpu(lay.create_vm(wl.host))
    lay.set_regs(v, wl.events[0].args[0])
    lay.set_cr0(v, wl.events[2].args[0])
    w = lay.fault_mmu(v).walk
    cpu = W.cpu_state_from_role(w.cpu_role, w.pgd, maxphyaddr=wl.host.guest_maxphyaddr)
    mem = GuestMemory(W.MEM_PAGES << 12)
    idx, vals = wl.memory
    np.frombuffer(mem.buffer, dtype=np.uint64)[idx] = vals
    assert translate(mem, cpu, *wl.events[3].args).fault.error_code == 0x3


def test_the_seeded_workloads_reach_the_wp_probe():
    rep = W.differential(KEPT, 60, max_mismatches=60)
    assert not rep.ok
    kinds = {m.event.kind for m in rep.mismatches}
    # never an emulated access: those walk with the (re-initialised) context
    assert kinds <= {"hw_access", "get_dirty_log"}
    assert rep.mismatches[0].event.kind == "hw_access"
    # on TDP hosts the mistake is the real step 8: nothing differs there
    assert all(not W.generate(m.seed).host.tdp_enabled for m in rep.mismatches)


def test_the_direct_kind_is_a_parameter():
    made = []

    def factory(kvm, **kw):
        mmu = TdpMmu(kvm, **kw)
        made.append(mmu)
        return mmu

    wl = next(w for w in W.workloads(20) if w.host.tdp_enabled
              and any(e.kind == "hw_access" for e in w.events))
    assert W.run("legacy", wl, direct_mmu=factory).outcomes == W.run("legacy", wl).outcomes
    assert len(made) == 1 and made[0].stats  # the factory's MMU served the run
    rep = W.differential(STEPS[-1], 3, direct_mmu=factory)
    assert rep.ok and len(made) > 1
    with pytest.raises(TypeError, match="direct_mmu"):
        W.run("legacy", wl, direct_mmu=42)
    with pytest.raises(ValueError, match="direct_mmu: unknown name 'tdp'"):
        W.differential("legacy", 1, direct_mmu="tdp")


def test_the_legacy_direct_mmu_serves_the_direct_roots_by_name():
    # a run with direct_mmu="legacy" is served by a LegacyDirectMmu: its page
    # hash holds the direct pages the run's hardware accesses built
    from refimpl.host.legacy_direct_mmu import LegacyDirectMmu
    seen = []
    real = W.DIRECT_MMUS["legacy"]

    def spy(kvm, **kw):
        mmu = real(kvm, **kw)
        seen.append(mmu)
        return mmu

    wl = next(w for w in W.workloads(20) if w.host.tdp_enabled
              and any(e.kind == "hw_access" for e in w.events))
    W.DIRECT_MMUS["legacy"] = spy
    try:
        by_name = W.run("legacy", wl, direct_mmu="legacy")
    finally:
        W.DIRECT_MMUS["legacy"] = real
    assert len(seen) == 1 and isinstance(seen[0], LegacyDirectMmu)
    assert seen[0].arch.page_hash and all(sp.role.direct for sp in seen[0].arch.page_hash.values())
    assert by_name.outcomes == W.run("legacy", wl).outcomes


def _shadow_vm():
    kvm = Kvm(HostMemory(1 << 12, backed_frames=64))
    mem = GuestMemory(0x40 << 12)
    return kvm, mem


def test_shadow_mmu_load_root_keeps_or_replaces_the_root():
    kvm, mem = _shadow_vm()
    mmu = ShadowMmu(kvm, mem)
    wp1 = CpuState(cr0=0x8001_0001, cr3=0x1000, cr4=0x20, efer=0xD00, maxphyaddr=46)
    wp0 = CpuState(cr0=0x8000_0001, cr3=0x1000, cr4=0x20, efer=0xD00, maxphyaddr=46)
    vc = mmu.add_vcpu(wp1)
    root1 = vc.mmu.root
    r0 = calc_cpu_role(wp0.cr0, wp0.cr4, wp0.efer)
    # kvm_init_mmu alone: the roles change, the root built for WP=1 stays.
    mmu.load_root(vc, wp0, r0, calc_shadow_root_role(r0), keep_root=True)
    assert vc.mmu.root == root1 and vc.mmu.root_role.cr0_wp == 0
    assert mmu._root_sp(vc.mmu.root).role.cr0_wp == 1
    # a new root: one for the WP=0 role
    mmu.load_root(vc, wp0, r0, calc_shadow_root_role(r0))
    assert vc.mmu.root != root1 and mmu._root_sp(vc.mmu.root).role.cr0_wp == 0
    before = (vc.mmu.root, vc.cpu_role, vc.mmu.root_role)
    direct = calc_shadow_root_role(r0).replace(direct=1)
    for bad, exc in ((dict(cpu=0), TypeError), (dict(cpu_role="x"), TypeError),
                     (dict(root_role=direct), ValueError),
                     (dict(cpu=CpuState(cr0=1)), ValueError), (dict(keep_root=1), TypeError)):
        args = dict(cpu=wp0, cpu_role=r0, root_role=calc_shadow_root_role(r0)) | bad
        keep = args.pop("keep_root", False)
        with pytest.raises(exc):
            mmu.load_root(vc, args["cpu"], args["cpu_role"], args["root_role"], keep_root=keep)
        assert (vc.mmu.root, vc.cpu_role, vc.mmu.root_role) == before


def test_tdp12_load_root_reads_the_format_from_the_role():
    kvm, mem = _shadow_vm()
    mmu = Tdp12Mmu(kvm, mem)
    eptp = (0x10 << 12) | (3 << 3) | (1 << 6) | 6
    vc = mmu.add_vcpu(eptp)
    no_ad = calc_shadow_ept_role(4, False, True)
    mmu.load_root(vc, eptp, no_ad, no_ad.base, keep_root=True)
    assert not vc.ctx.have_ad and vc.mmu.root_role.ad_disabled
    root = vc.mmu.root
    mmu.load_root(vc, eptp, no_ad, no_ad.base)
    assert vc.mmu.root != root and mmu._root_sp(vc.mmu.root).role.ad_disabled
    with pytest.raises(ValueError):
        mmu.load_root(vc, eptp, no_ad, no_ad.base.replace(direct=1))
    with pytest.raises(ValueError):
        mmu.load_root(vc, 5, no_ad, no_ad.base)


def test_seeded_hardware_accesses_reach_every_shadow_mmu(monkeypatch):
    seen = {}
    mirror = W._World.mirror

    def counting(self, i, mv):
        mmu, vc = mirror(self, i, mv)
        key = (W._which(mv), type(mmu).__name__)
        seen[key] = seen.get(key, 0) + 1
        return mmu, vc

    monkeypatch.setattr(W._World, "mirror", counting)
    for wl in W.workloads(60):
        W.run("legacy", wl)
    assert set(seen) == {("x86", "ShadowMmu"), ("npt12", "ShadowMmu"), ("ept12", "Tdp12Mmu")}
    assert min(seen.values()) >= 5, seen


def test_a_broken_direct_mmu_cannot_pass_silently():
    class Broken(TdpMmu):
        def guest_access(self, vcpu, gpa, access):
            raise TypeError("not the direct kind's interface")

    # Both runs stop at the same event, so the differential alone agrees...
    assert W.differential(STEPS[-1], 5, direct_mmu=Broken).ok
    # ...which is why the step test also requires a reference without errors.
    _, outcomes, _ = W._reference(0, 5, Broken)
    assert any(out[-1][0] == "error" for out in outcomes)
    _, outcomes, _ = W._reference(0, 5, TdpMmu)
    assert all(out[-1][0] != "error" for out in outcomes)

    def unbuildable(kvm, **kw):
        raise TypeError("boom: unexpected keyword 'recovery'")

    # A factory that cannot be called as the driver calls it fails loudly.
    with pytest.raises(TypeError, match="boom"):
        W.run("legacy", W.generate(0, tdp=True), direct_mmu=unbuildable)


def _same_outcomes_with_either_direct_mmu(n: int) -> int:
    """Run the refactoring driver's first ``n`` workloads on step 0 with each
    direct kind; return how many hardware accesses a TDP host made."""
    hw = 0
    for wl in W.workloads(n):
        tdp = W.run("legacy", wl, direct_mmu="tdp_mmu")
        legacy = W.run("legacy", wl, direct_mmu="legacy")
        assert tdp.error is None and legacy.error is None
        m = W.first_difference(wl, tdp.outcomes, legacy.outcomes)
        assert m is None, m
        if wl.host.tdp_enabled:
            hw += sum(e.kind == "hw_access" for e in wl.events)
    return hw


def test_the_driver_sees_the_same_guest_with_either_direct_mmu():
    # every outcome, dirty logs read by userspace included, is the same
    # whether the TDP MMU or the legacy direct MMU serves the direct roots
    assert _same_outcomes_with_either_direct_mmu(30) > 50


@pytest.mark.slow
def test_the_driver_sees_the_same_guest_with_either_direct_mmu_many():
    assert _same_outcomes_with_either_direct_mmu(300) > 500
