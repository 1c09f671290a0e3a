"""The refactoring steps from today's kvm_mmu to the 2021 sketch, proved.

What is checked, and against what:

* every step gives the legacy layout's guest-visible outcomes on the seeded
  workloads (``REFACTOR_WORKLOADS``, default 1000, per step); the outcomes
  come from real walks over what each layout selects, so they can differ;
* the deliberately wrong steps are caught, at the event where they go wrong
  (the kept shadow roots through the shadow MMU, as a guest-visible outcome);
* step 0 is :mod:`refimpl.layouts.legacy` field for field except for the 2021
  CR0.WP rule; the last step is :mod:`refimpl.layouts.split` field for field;
* each step's ledger delta matches its structures;
* the seeded workloads exercise every event kind and every kind of outcome;
* a hand-worked scenario (tables read by hand) gives the expected outcomes;
* the measures: byte counts worked out by hand from the C types, resets and
  root loads against the CR0 writes in the workloads, and the vCPU
  parameters against the 2021 RFC and mail.
"""

import dataclasses
import inspect

import pytest
from hypothesis import given, settings, strategies as st

from refimpl.layouts import legacy as L
from refimpl.layouts import split as S
from refimpl.layouts.steps import STEPS, Layout, get_step, ledger_delta_markdown, step_names
from refimpl.layouts import measures as M
from refimpl.layouts import workload as W
from refimpl.layouts.mistakes import MISTAKES
from refimpl.host.roles import CR0_PG, CR4_PAE, EFER_LMA, EFER_LME, EFER_NX
from refimpl.host.tdp_mmu import RecoveryStrategy, TdpMmu

N = W.default_count()


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------


def test_registry_is_a_chain_of_subclasses():
    assert [s.number for s in STEPS] == list(range(len(STEPS)))
    assert STEPS[0].name == "legacy" and STEPS[0].previous is None
    for prev, s in zip(STEPS, STEPS[1:]):
        assert s.previous == prev.name
        assert s.cls.__bases__ == (prev.cls,), s.name  # the smallest delta
        assert s.cls.name == s.name and s.cls.number == s.number
        assert s.module == f"refimpl.layouts.steps.step{s.number}_{s.name}"
        assert s.title and len(s.summary) > 80
    assert step_names()[-1] == "cr0wp_no_reset"
    assert get_step(3) is get_step("kind") is get_step(STEPS[3].cls) is get_step(STEPS[3])


def test_steps_are_small_enough_to_read_whole():
    import importlib
    for s in STEPS[1:]:
        src = inspect.getsource(importlib.import_module(s.module))
        assert len(src.splitlines()) <= 130, s.name


@pytest.mark.parametrize("bad, exc", [("nope", ValueError), (99, ValueError), (-1, ValueError),
                                      (1.5, TypeError), (True, TypeError), (object, TypeError)])
def test_get_step_rejects_bad_input(bad, exc):
    with pytest.raises(exc):
        get_step(bad)


def _field_sets(step):
    layout = get_step(step).layout()
    vm = layout.create_vm(L.Host())
    v = layout.create_vcpu(vm)
    names = lambda o: {f.name for f in dataclasses.fields(o)}  # noqa: E731
    out = {"kvm_vcpu_arch": names(v) - M.MODEL_ONLY,
           "kvm_arch": names(vm) - M.MODEL_ONLY if dataclasses.is_dataclass(vm) else set(),
           "kvm_mmu": names(v.root_mmu)}
    out["kvm_paging_context"] = names(v.walk12) if hasattr(v, "walk12") else set()
    out["kvm_mmu_kind"] = names(v.shadow_mmu) if hasattr(v, "shadow_mmu") else set()
    return out


def _has(fs, ref):
    struct, _, name = ref.partition(".")
    return name in fs[struct]


@pytest.mark.parametrize("step", STEPS[1:], ids=lambda s: s.name)
def test_ledger_delta_matches_the_structures(step):
    before, after = _field_sets(step.previous), _field_sets(step)
    checked = 0
    for action, src, dst in step.delta:
        if action == "changed":
            continue
        if src != "-":
            assert _has(before, src) and not _has(after, src), (action, src)
        if dst != "-":
            assert _has(after, dst), (action, dst)
            # a moved field may join a struct that already existed (walk12's)
            assert action == "moved" or not _has(before, dst), (action, dst)
        checked += 1
    if step.name in ("walk12", "paging_context", "kind", "direct_kind_per_vm"):
        assert checked == len(step.delta) - (1 if step.name == "walk12" else 0)
    assert ledger_delta_markdown(step).count("\n") == len(step.delta) + 1


# ---------------------------------------------------------------------------
# The two ends: step 0 is mmu_legacy, the last step is mmu_split
# ---------------------------------------------------------------------------


def _configs(step):
    layouts = {}

    def create(host):
        lay = get_step(step).layout()
        v = lay.create_vcpu(lay.create_vm(host))
        layouts[id(v)] = lay
        return v

    def via(name):
        return lambda v, *a, **k: getattr(layouts[id(v)], name)(v, *a, **k)

    return L.run_configurations(create, via("set_regs"), via("vmx_vmentry"), via("svm_vmrun"),
                                via("vmx_vmexit")), layouts


def _values(obj, vcpu):
    """Field values of a struct; pointers replaced by the member they designate."""
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if f.name in ("kind", "walk") and v is not None:
            v = vcpu.name_of(v)
        out[f.name] = v
    return out


def test_step0_is_mmu_legacy_field_for_field():
    want = L.configurations()
    got, _ = _configs("legacy")
    for key in L.CONFIGURATIONS:
        assert L.pointer_table(got[key]) == L.pointer_table(want[key]), key
        for member in L.MMU_STRUCTS:
            assert _values(getattr(got[key], member), got[key]) == \
                _values(getattr(want[key], member), want[key]), (key, member)


def test_final_step_is_the_sketch_field_for_field():
    legacy = L.configurations()
    split = S.configurations()
    got, layouts = _configs(STEPS[-1])
    for key in L.CONFIGURATIONS:
        v = got[key]
        assert type(v) is S.KvmVcpuArch
        assert S.differences(legacy[key], v) == [], key
        assert layouts[id(v)].pointer_table(v) == S.pointer_table(split[key]) \
            == S.expected_pointer_table(legacy[key])
        for member in ("shadow_mmu", "root_mmu", "tdp12_mmu", "root_walk", "walk01", "walk12"):
            assert _values(getattr(v, member), v) == _values(getattr(split[key], member),
                                                             split[key]), (key, member)
        if v.kvm.direct_mmu is not None:
            assert _values(v.kvm.direct_mmu, v) == _values(split[key].kvm.direct_mmu, split[key])


def test_cr0_wp_rule_of_step0_and_of_the_last_step():
    # 2021 (step 0): a WP-only CR0 write resets; 2023 (mmu_legacy, last step): with TDP it does not.
    for step, resets in (("legacy", 1), ("cr0wp_no_reset", 0)):
        lay = get_step(step).layout()
        v = lay.create_vcpu(lay.create_vm(L.Host(tdp_enabled=True)))
        lay.set_regs(v, L.L1_REGS)
        before = lay.stats["resets"]
        lay.set_cr0(v, L.L1_REGS.cr0 ^ L.CR0_WP)
        assert lay.stats["resets"] - before == resets
        assert lay.stats["resets_cr0_wp"] == resets
        assert v.regs.cr0 & L.CR0_WP == 0
        assert lay.emulation_walk(v).cpu_role.base.cr0_wp == 0  # the walk sees the new WP
    legacy = L.kvm_mmu_create(L.Host(tdp_enabled=True))
    L.set_regs(legacy, L.L1_REGS)
    r = legacy.resets
    L.kvm_set_cr0(legacy, L.L1_REGS.cr0 ^ L.CR0_WP)
    assert legacy.resets == r
    # Shadow paging: WP is in the root role; both rules reset.
    lay = get_step("cr0wp_no_reset").layout()
    v = lay.create_vcpu(lay.create_vm(L.Host(tdp_enabled=False)))
    lay.set_regs(v, L.L1_REGS)
    lay.set_cr0(v, L.L1_REGS.cr0 ^ L.CR0_WP)
    assert lay.stats["resets_cr0_wp"] == 1


# ---------------------------------------------------------------------------
# The differential
# ---------------------------------------------------------------------------


DIRECT_MMUS = {"tdp_mmu": TdpMmu, "legacy": W.legacy_direct_mmu}
"""The implementations of the direct kind the differential runs each step with:
the TDP MMU and the legacy direct MMU (``tdp_mmu=0``)."""


@pytest.mark.slow
@pytest.mark.parametrize("direct", sorted(DIRECT_MMUS))
@pytest.mark.parametrize("step", STEPS[1:], ids=lambda s: s.name)
def test_every_step_keeps_every_outcome(step, direct):
    factory = DIRECT_MMUS[direct]
    # the reference itself ran to the end (two runs that fail alike agree)
    _, outcomes, _ = W._reference(0, N, factory)
    assert all(out[-1][0] != "error" for out in outcomes)
    report = W.differential(step, N, direct_mmu=factory)
    assert report.workloads == N
    assert report.events > 20 * N
    assert report.ok, report.mismatches[0]


EXPECTED_CATCH = {
    # the mistake -> the kind of event where it shows first
    "walk_left_on_root_walk": "emul_access",
    "wp_no_bitmap_update": "emul_access",
    "wp_keeps_shadow_roots": "hw_access",
    "role_in_kind": "hw_access",
    "zero_check_per_vcpu": "hw_access",
}


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_deliberate_mistakes_are_caught(name):
    report = W.differential(MISTAKES[name], N)
    assert not report.ok
    m = report.mismatches[0]
    assert m.event.kind == EXPECTED_CATCH[name]
    wl = W.generate(m.seed)
    legacy, wrong = W.run("legacy", wl), W.run(MISTAKES[name], wl)
    before = wl.events[:m.index]
    if name == "zero_check_per_vcpu":
        # invisible to the guest: only what make_spte checks differs
        assert m.what == "spte_inputs" and legacy.outcomes == wrong.outcomes
        (_, want), (_, got) = m.expected, m.got
        assert want.fn == got.fn == "reset_tdp_shadow_zero_bits_mask"
        assert want.get("level") == wl.host.tdp_level != got.get("level")
        return
    assert m.what == "outcome"
    legacy, wrong = legacy.outcomes, wrong.outcomes
    assert legacy[:m.index] == wrong[:m.index]  # identical up to the reported event
    assert (legacy[m.index], wrong[m.index]) == (m.expected, m.got)
    if name == "walk_left_on_root_walk":
        # the vCPU is in L2 with nested TDP: its last entry had ept/npt set
        entries = [e for e in before if e.vcpu == m.event.vcpu and e.kind in
                   ("vmx_vmentry", "svm_vmrun", "vmx_vmexit", "svm_vmexit")]
        assert entries[-1].kind in ("vmx_vmentry", "svm_vmrun") and entries[-1].args[1]
    elif name == "wp_keeps_shadow_roots":
        # A shadow-paging host; the vCPU's last CR0 write set WP, and the event
        # is a supervisor write that the reference refuses with #PF, error
        # code P|W (SDM: CR0.WP=1 forbids supervisor writes to read-only
        # pages), while the kept shadow root lets it through.
        assert not wl.host.tdp_enabled
        cr0 = [e for e in before if e.vcpu == m.event.vcpu and e.kind == "cr0"]
        assert cr0 and cr0[-1].args[0] & L.CR0_WP
        gva, access = m.event.args
        assert access == W.ACCESS_WRITE
        assert m.expected[0] == "fault" and m.expected[2:6] == ("#PF", 14, 0x3, gva)
        assert m.got[0] == "ok"
        # the same write under WP=0 earlier on this vCPU reached a page
        same = [k for k, e in enumerate(before) if e == m.event]
        assert same and legacy[same[-1]][0] == "ok"
    elif name == "wp_no_bitmap_update":
        assert wl.host.tdp_enabled
        assert any(e.kind == "cr0" and e.vcpu == m.event.vcpu for e in before)
        assert m.event.args[1] & W.ACCESS_WRITE and not m.event.args[1] & W.ACCESS_USER
    else:
        assert wl.n_vcpus > 1 and any(e.kind in ("smm", "vmx_vmentry", "svm_vmrun")
                                      for e in before)


def test_outcomes_are_deterministic_and_independent_of_the_step_instance():
    wl = W.generate(7)
    assert W.run("legacy", wl).outcomes == W.run("legacy", wl).outcomes
    assert W.run(get_step("kind").layout(), wl).outcomes == W.run("kind", wl).outcomes


def test_the_seeded_workloads_exercise_everything():
    wls, outcomes, _internal = W._reference(0, N)
    counts = {k: 0 for k in W.EVENT_KINDS}
    for w in wls:
        for k, c in w.counts().items():
            counts[k] += c
    assert all(c > 0 for c in counts.values()), counts
    flat = [o for outs in outcomes for o in outs]
    kinds = {o[0] for o in flat}
    assert {"ok", "fault", "dirty", "-"} <= kinds and "error" not in kinds
    faults = [o for o in flat if o[0] == "fault"]
    assert {"L1", "L2", "L1-exit"} <= {o[1] for o in faults}
    assert {"#PF", "#GP", "EPT violation", "#NPF"} <= {o[2] for o in faults}
    oks = [o for o in flat if o[0] == "ok"]
    assert any(o[2] == "mmio" for o in oks) and any(isinstance(o[2], int) for o in oks)
    assert any(o[1] for o in flat if o[0] == "dirty")
    hosts = {(w.host.vendor, w.host.tdp_enabled) for w in wls}
    assert hosts == {("vmx", True), ("vmx", False), ("svm", True), ("svm", False)}
    # accesses of both kinds from L2 with nested TDP (walks through EPT12/NPT12)
    nested = sum(1 for o in faults if o[1] == "L1-exit")
    assert nested > 50 and sum(1 for o in faults if o[1] == "L2") > 50


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**40), n_vcpus=st.integers(1, 4), n_events=st.integers(1, 80),
       vendor=st.sampled_from(["vmx", "svm"]), tdp=st.booleans())
def test_last_step_agrees_with_legacy_on_any_workload(seed, n_vcpus, n_events, vendor, tdp):
    wl = W.generate(seed, n_vcpus=n_vcpus, n_events=n_events, vendor=vendor, tdp=tdp)
    assert W.run(STEPS[-1], wl).outcomes == W.run("legacy", wl).outcomes


# ---------------------------------------------------------------------------
# A hand-worked scenario: tables read by hand, outcomes predicted
# ---------------------------------------------------------------------------


def _leaf_by_hand(mem_words, cr3, gva):
    """4-level walk by hand: the leaf PTE of gva (no A/D, no checks)."""
    idx, vals = mem_words
    word = dict(zip(idx.tolist(), vals.tolist()))
    table = cr3
    for level in (4, 3, 2, 1):
        e = word.get((table + 8 * ((gva >> (12 + 9 * (level - 1))) & 511)) // 8, 0)
        if level == 1:
            return e
        table = e & 0x000F_FFFF_FFFF_F000


@pytest.mark.parametrize("step", [STEPS[0], STEPS[-1]], ids=lambda s: s.name)
def test_hand_worked_wp_scenario(step):
    base = W.generate(3, tdp=True, vendor="vmx", n_vcpus=1)
    roots = dict(long=None)
    # find a supervisor-writable-only-if-WP=0 page: present, read-only
    cr3 = W._L1_TABLES["long"] << 12
    for gva in W._GVAS[:10]:
        pte = _leaf_by_hand(base.memory, cr3, gva)
        if pte & 1 and not pte & 2:
            break
    else:
        pytest.skip("no read-only page in this seed")
    gpa = (pte & 0x000F_FFFF_FFFF_F000) | (gva & 0xFFF)
    regs = L.GuestRegs(cr0=CR0_PG | L.CR0_WP | 1, cr3=cr3, cr4=CR4_PAE,
                       efer=EFER_LME | EFER_LMA | EFER_NX)
    E = W.Event
    events = (E(0, "set_regs", (regs,)), E(0, "emul_access", (gva, W.ACCESS_WRITE)),
              E(0, "cr0", (regs.cr0 ^ L.CR0_WP,)), E(0, "emul_access", (gva, W.ACCESS_WRITE)),
              E(0, "hw_access", (gva, W.ACCESS_WRITE)))
    wl = dataclasses.replace(base, events=events)
    out = W.run(step, wl).outcomes
    # SDM: CR0.WP=1 forbids supervisor writes to read-only pages: #PF, error code P|W.
    assert out[1] == ("fault", "L1", "#PF", 14, 0x3, gva, None, None)
    # CR0.WP=0 allows them; the same GPA is reached by the emulator and by the CPU.
    assert out[3][:2] == ("ok", gpa) and out[4][:2] == ("ok", gpa)
    in_slot = 0x100 <= gpa >> 12 < 0x130
    assert isinstance(out[3][2], int) == in_slot


# ---------------------------------------------------------------------------
# Measures
# ---------------------------------------------------------------------------

# By hand, x86-64, fields in order with C alignment:
# legacy kvm_mmu: 6 fn ptrs 48 + root 16 + cpu_role 8 + root_role 4 + pkru_mask 4 + prev_roots 48
#   + permissions u8[16] 16 + 3 root page ptrs 24 + 2 rsvd_bits_validate 2*88 + pdptrs 32 = 376
LEGACY_KVM_MMU = 48 + 16 + 8 + 4 + 4 + 48 + 16 + 24 + 176 + 32
# paging context: 4 fn ptrs 32 + cpu_role 8 + permissions 16 + pkru_mask 4 (+4 pad) + 88 + 32 = 184
PAGING_CONTEXT = 32 + 8 + 16 + 4 + 4 + 88 + 32
# sketch kvm_mmu: kind, walk, page_fault 24 + root 16 + root_role 4 (+4) + prev_roots 48 + 3 ptrs 24
SKETCH_KVM_MMU = 24 + 16 + 4 + 4 + 48 + 24
# kind: bool (+7) + sync_spte 8 + rsvd_bits_validate 88
KIND = 1 + 7 + 8 + 88


def test_struct_bytes_by_hand():
    assert LEGACY_KVM_MMU == 376 and PAGING_CONTEXT == 184 and SKETCH_KVM_MMU == 120
    assert M.struct_bytes("legacy") == {"vcpu.root_mmu": 376, "vcpu.guest_mmu": 376,
                                        "vcpu.nested_mmu": 376, "vcpu.mmu": 8,
                                        "vcpu.walk_mmu": 8}
    assert M.state_bytes("legacy", 1) == {"per_vm": 0, "per_vcpu": 3 * 376 + 16,
                                          "total": 3 * 376 + 16}
    assert M.state_bytes("walk12", 1)["per_vcpu"] == 2 * 376 + PAGING_CONTEXT + 16
    final = M.state_bytes(STEPS[-1], 512)
    assert final["per_vm"] == KIND
    assert final["per_vcpu"] == KIND + 2 * SKETCH_KVM_MMU + 3 * PAGING_CONTEXT + 16
    assert final["total"] == KIND + 512 * final["per_vcpu"]
    rows = M.bytes_table()
    assert [r["step"] for r in rows] == step_names()
    assert all(r["totals"][512] < rows[0]["totals"][512] for r in rows[1:])
    # the kind split costs a per-vCPU direct kind until step 4 moves it to the VM
    assert rows[3]["per_vcpu"] - rows[2]["per_vcpu"] == 2 * KIND + 2 * SKETCH_KVM_MMU - 2 * 208
    assert rows[4]["per_vcpu"] == rows[3]["per_vcpu"] - KIND
    with pytest.raises(ValueError):
        M.state_bytes("legacy", 0)
    with pytest.raises(TypeError):
        M.state_bytes("legacy", 2.0)
    with pytest.raises(ValueError):
        M.bytes_table(())


def test_counters_single_out_cr0_wp():
    n = 60
    legacy, final = M.counters("legacy", n), M.counters(STEPS[-1], n)
    wls = W.workloads(n)
    cr0 = sum(w.counts()["cr0"] for w in wls) / n
    assert legacy["cr0_writes"] == final["cr0_writes"] == cr0
    # 2021: every CR0 write of the workloads toggles WP, and each one resets and reloads.
    assert legacy["resets_cr0_wp"] == legacy["root_loads_cr0_wp"] == cr0
    assert legacy["init_mmu_cr0_wp"] == 0
    # 2023 rule: only shadow-paging hosts still reset on WP (PG on); TDP re-inits.
    shadow = sum(w.counts()["cr0"] for w in wls if not w.host.tdp_enabled) / n
    assert 0 < final["resets_cr0_wp"] <= shadow < cr0
    assert final["init_mmu_cr0_wp"] > 0
    assert final["resets_cr0_wp"] + final["init_mmu_cr0_wp"] <= cr0
    assert final["resets"] == pytest.approx(legacy["resets"] - (cr0 - final["resets_cr0_wp"]))


def test_which_functions_need_a_vcpu():
    # 2021 RFC patches 6-12 / the mail: make_spte takes a kind; TDP MMU leaf installs take the VM.
    table = {r["step"]: r for r in M.vcpu_table()}
    for s in STEPS:
        assert table[s.name]["make_spte"] == ("vcpu" if s.number < 5 else "kind")
        assert table[s.name]["tdp_mmu_set_leaf"] == (None if s.number < 6 else "kvm")
        assert table[s.name]["tdp_mmu_map"] == "vcpu"  # needs the vCPU's root
        want = RecoveryStrategy.IN_PLACE if s.number >= 6 else RecoveryStrategy.ZAP_BATCHED
        assert s.layout().recover_huge_pages(None) is want
    for prev, s in zip(STEPS, STEPS[1:]):
        assert set(M.needs_vcpu(s)) <= set(M.needs_vcpu(prev))
    assert "make_spte" in M.needs_vcpu("legacy") and "make_spte" not in M.needs_vcpu(STEPS[-1])


def test_pointer_tables_per_step():
    first, last = M.pointer_tables("legacy"), M.pointer_tables(STEPS[-1])
    assert first["vmx_ept"] == {"mmu": "guest_mmu", "walk_mmu": "nested_mmu"}
    assert M.pointer_tables("walk12")["vmx_ept"] == {"mmu": "guest_mmu", "walk": "walk12"}
    assert last["svm_npt"]["mmu->walk"] == "walk01"
    assert last["tdp"]["root_mmu.kind"] == "kvm.direct_mmu"
    assert M.pointer_tables("kind")["tdp"]["root_mmu.kind"] == "direct_mmu"
    assert M.members("direct_kind_per_vm")["vm"] == {"direct_mmu": "kvm_mmu_kind"}


def test_step_diagrams_draw_the_pointer_tables():
    from refimpl.layouts.figures import configured_vcpu, step_diagram
    from refimpl.viz.svg import render
    # Hand-written from nested_ept_init_mmu_context (arch/x86/kvm/vmx/nested.c):
    # mmu -> the EPT12 shadow, walk -> L2's walk.
    assert step_diagram("legacy").edges() == {("mmu", "mmu", "guest_mmu"),
                                              ("walk_mmu", "walk_mmu", "nested_mmu")}
    assert step_diagram("walk12").edges() == {("mmu", "mmu", "guest_mmu"),
                                              ("walk", "walk", "walk12")}
    last = step_diagram(STEPS[-1], "vmx_ept")
    assert last.edges() == {("mmu", "mmu", "tdp12_mmu"), ("walk", "walk", "walk12"),
                            ("tdp12_mmu", "mmu->walk", "walk01"),
                            ("root_mmu", "root_mmu.kind", "kvm.direct_mmu"),
                            ("tdp12_mmu", "tdp12_mmu.kind", "shadow_mmu")}
    style = {b.key: b.style for b in last.boxes}
    assert style["root_mmu"] == style["root_walk"] == style["kvm.direct_mmu"] == "idle"
    assert style["tdp12_mmu"] == style["walk01"] == style["walk12"] == "used"
    assert {b.key: b.style for b in step_diagram(STEPS[-1], "shadow").boxes}["kvm.direct_mmu"] \
        == "absent"
    svg = render(last, "t")
    assert svg.startswith("<svg") and svg.count('class="arrow"') == 5
    for s in STEPS:  # every step, every configuration: one arrow per pointer-table entry
        for key in L.CONFIGURATIONS:
            layout, v = configured_vcpu(s, key)
            assert len(step_diagram(s, key).arrows) == len(layout.pointer_table(v))
    with pytest.raises(ValueError, match="config_key"):
        step_diagram("legacy", "nope")


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


def test_bad_input():
    with pytest.raises(ValueError, match="n_vcpus"):
        W.generate(1, n_vcpus=5)
    with pytest.raises(TypeError, match="n_vcpus"):
        W.generate(1, n_vcpus=True)
    with pytest.raises(ValueError, match="vendor"):
        W.generate(1, vendor="arm")
    with pytest.raises(TypeError, match="tdp"):
        W.generate(1, tdp=1)
    with pytest.raises(ValueError, match="seed"):
        W.generate(-1)
    with pytest.raises(TypeError, match="workload"):
        W.run("legacy", "x")
    with pytest.raises(ValueError, match="unknown step"):
        W.run("nope", W.generate(0))
    with pytest.raises(ValueError, match="n must"):
        W.workloads(0)
    with pytest.raises(ValueError, match="max_mismatches"):
        W.differential("kind", 1, max_mismatches=0)
    with pytest.raises(TypeError, match="role"):
        W.cpu_state_from_role(0, 0)
    lay = get_step("legacy").layout()
    with pytest.raises(TypeError, match="host"):
        lay.create_vm("vmx")
    v = lay.create_vcpu(lay.create_vm(L.Host()))
    with pytest.raises(TypeError, match="regs"):
        lay.set_regs(v, 0)
    with pytest.raises(ValueError):
        lay.vmx_vmexit(v)  # not in L2
    assert isinstance(lay, Layout)
