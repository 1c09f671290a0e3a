"""Legacy and split MMU layouts, the field ledger, and their agreement.

Expected pointer targets and callbacks are written out by hand from
``arch/x86/kvm/vmx/nested.c``, ``arch/x86/kvm/svm/nested.c`` and
``arch/x86/kvm/mmu/mmu.c`` (``nested_ept_init_mmu_context``,
``nested_svm_init_mmu_context``, ``init_kvm_*``), not computed.
"""

from dataclasses import fields

import pytest

from refimpl.story import ledger as G
from refimpl.layouts import legacy as L
from refimpl.layouts import split as S

# ---------------------------------------------------------------------------
# Hand-written expectations (vmx/nested.c, svm/nested.c, mmu.c)
# ---------------------------------------------------------------------------

EXPECTED_POINTERS = {
    "shadow": ("root_mmu", "root_mmu"),
    "tdp": ("root_mmu", "root_mmu"),
    "vmx_ept": ("guest_mmu", "nested_mmu"),
    "vmx_noept": ("root_mmu", "root_mmu"),
    "svm_npt": ("guest_mmu", "nested_mmu"),
    "svm_nonpt": ("root_mmu", "root_mmu"),
    "after_exit": ("root_mmu", "root_mmu"),
}

# Callbacks of the structure `mmu` points to, per configuration.
EXPECTED_MMU_CALLBACKS = {
    "shadow": dict(get_guest_pgd="get_guest_cr3", get_pdptr="kvm_pdptr_read",
                   page_fault="paging64_page_fault", inject_page_fault="kvm_inject_page_fault",
                   gva_to_gpa="paging64_gva_to_gpa", sync_spte="paging64_sync_spte"),
    "tdp": dict(get_guest_pgd="get_guest_cr3", get_pdptr="kvm_pdptr_read",
                page_fault="kvm_tdp_page_fault", inject_page_fault="kvm_inject_page_fault",
                gva_to_gpa="paging64_gva_to_gpa", sync_spte=None),
    "vmx_ept": dict(get_guest_pgd="nested_ept_get_eptp", get_pdptr="kvm_pdptr_read",
                    page_fault="ept_page_fault", inject_page_fault="nested_ept_inject_page_fault",
                    gva_to_gpa="ept_gva_to_gpa", sync_spte="ept_sync_spte"),
    "svm_npt": dict(get_guest_pgd="nested_svm_get_tdp_cr3", get_pdptr="nested_svm_get_tdp_pdptr",
                    page_fault="paging64_page_fault",
                    inject_page_fault="nested_svm_inject_npf_exit",
                    gva_to_gpa="paging64_gva_to_gpa", sync_spte="paging64_sync_spte"),
    # L2 is a PAE guest; root_mmu (TDP) walks with paging64 (PAE uses the 64-bit walker)
    "vmx_noept": dict(get_guest_pgd="get_guest_cr3", get_pdptr="kvm_pdptr_read",
                      page_fault="kvm_tdp_page_fault", inject_page_fault="kvm_inject_page_fault",
                      gva_to_gpa="paging64_gva_to_gpa", sync_spte=None),
}

# nested_mmu when L1 uses EPT/NPT: a walker only (init_kvm_nested_mmu).
EXPECTED_NESTED_MMU = dict(get_guest_pgd="get_guest_cr3", get_pdptr="kvm_pdptr_read",
                           page_fault=None, inject_page_fault="kvm_inject_page_fault",
                           gva_to_gpa="paging64_gva_to_gpa", sync_spte=None)


@pytest.fixture(scope="module")
def legacy():
    return L.configurations()


@pytest.fixture(scope="module")
def split():
    return S.configurations()


def test_configuration_names(legacy, split):
    assert list(legacy) == list(EXPECTED_POINTERS) == list(split)


@pytest.mark.parametrize("key", list(EXPECTED_POINTERS))
def test_pointer_targets(legacy, key):
    t = L.pointer_table(legacy[key])
    assert (t["mmu"], t["walk_mmu"]) == EXPECTED_POINTERS[key]


@pytest.mark.parametrize("key", list(EXPECTED_MMU_CALLBACKS))
def test_callbacks_of_mmu(legacy, key):
    t = L.pointer_table(legacy[key])
    assert t[t["mmu"]] == EXPECTED_MMU_CALLBACKS[key]


@pytest.mark.parametrize("key", ["vmx_ept", "svm_npt"])
def test_nested_mmu_is_a_walker_only(legacy, key):
    v = legacy[key]
    assert L.pointer_table(v)["nested_mmu"] == EXPECTED_NESTED_MMU
    # never handles faults: no root role, no zero check, no root
    assert v.nested_mmu.root_role.word == 0
    assert v.nested_mmu.shadow_zero_check is None
    assert v.nested_mmu.root.hpa is None
    # root_mmu keeps L1's TDP setup while L2 runs: level 4, guest_mode 0
    assert v.root_mmu.cpu_role.base.level == 4 and v.root_mmu.cpu_role.base.guest_mode == 0


def test_mmu_is_nested_exactly_with_nested_tdp(legacy):
    assert {k for k, v in legacy.items() if L.mmu_is_nested(v)} == {"vmx_ept", "svm_npt"}


def test_translate_gpa_and_fault_targets(legacy):
    v = legacy["vmx_ept"]
    assert L.kvm_translate_gpa(v, v.nested_mmu) is v.guest_mmu
    assert L.kvm_translate_gpa(v, v.root_mmu) is None
    assert L.emulated_fault_target(v, nested_page_fault=True) is v.guest_mmu
    assert L.emulated_fault_target(v, nested_page_fault=False) is v.nested_mmu
    t = legacy["tdp"]
    assert L.kvm_translate_gpa(t, t.root_mmu) is None
    with pytest.raises(ValueError, match="not nested"):
        L.kvm_translate_gpa(t, t.nested_mmu)


def test_roots_and_roles(legacy):
    def key(name, mmu):
        v = legacy[name]
        return L.root_page(v, getattr(v, mmu).root)
    # L1 TDP root: level 4 | direct 0x80 | access 0x700 | efer_nx 0x1000 | cr0_wp 0x2000
    assert key("tdp", "root_mmu") == (0x3784, None)
    # L2 without EPT in L1 runs on root_mmu with guest_mode (0x20000) set
    assert key("vmx_noept", "root_mmu") == (0x23784, None)
    assert legacy["vmx_noept"].root_mmu.cpu_role.base.level == 3  # L2 is PAE
    # shadow EPT12: level 4 | access 0x700 | guest_mode 0x20000; EPTP12 at 0x9000
    assert key("vmx_ept", "guest_mmu") == (0x20704, 0x9)
    assert legacy["vmx_ept"].guest_mmu.root.pgd == L.EPTP12
    # shadow NPT12: L1's 4-level format, cr0_wp 0, efer_nx 0x1000, guest_mode; nCR3 0xa000
    assert key("svm_npt", "guest_mmu") == (0x21704, 0xA)
    # shadow paging of a 64-bit L1: paging64 role with efer_nx forced
    assert key("shadow", "root_mmu") == (0x3704, 0x1)
    assert legacy["shadow"].root_mmu.pae_root and not legacy["tdp"].root_mmu.pae_root
    with pytest.raises(ValueError, match="not a root page"):
        L.root_page(legacy["tdp"], L.INVALID_ROOT)


def test_roots_are_shared_by_key():
    # KVM reuses a root with the same role (and guest root) instead of building
    # another: after the nested exit L1 gets its first root back.
    v = legacy_vcpu = L.configurations()["after_exit"]
    assert L.root_page(legacy_vcpu, v.root_mmu.root) == (0x3784, None)
    assert v.root_mmu.root.hpa == v.kvm.root_pages[(0x3784, None)] == 0x1000


def test_after_exit_matches_plain_tdp(legacy):
    a, t = L.pointer_table(legacy["after_exit"]), L.pointer_table(legacy["tdp"])
    assert a["mmu"] == t["mmu"] and a["walk_mmu"] == t["walk_mmu"]
    assert a["root_mmu"] == t["root_mmu"]
    assert legacy["after_exit"].root_mmu.root == legacy["tdp"].root_mmu.root


def test_bad_transitions():
    v = L.kvm_mmu_create(L.Host())
    with pytest.raises(ValueError, match="not in guest mode"):
        L.nested_vmx_vmexit(v)
    with pytest.raises(ValueError, match="not in guest mode"):
        L.nested_ept_init_mmu_context(v, L.EPTP12)
    with pytest.raises(ValueError, match="SVM host"):
        L.nested_svm_vmrun(v, L.L2_REGS, npt=True)
    L.set_regs(v, L.L1_REGS)
    with pytest.raises(ValueError, match="bits 5:3"):
        L.nested_vmx_vmentry(v, L.L2_REGS, ept=True, eptp=0x9000)  # walk length 1
    assert not v.guest_mode and v.mmu is v.root_mmu  # failed entry left no trace
    L.nested_vmx_vmentry(v, L.L2_REGS, ept=True, eptp=L.EPTP12)
    with pytest.raises(ValueError, match="already"):
        L.nested_vmx_vmentry(v, L.L2_REGS, ept=True, eptp=L.EPTP12)
    with pytest.raises(ValueError, match="already on the L2 walk"):
        L.nested_ept_init_mmu_context(v, L.EPTP12)
    shadow = L.kvm_mmu_create(L.Host(tdp_enabled=False))
    L.set_regs(shadow, L.L1_REGS)
    with pytest.raises(ValueError, match="VMX host with EPT enabled"):
        L.nested_vmx_vmentry(shadow, L.L2_REGS, ept=True, eptp=L.EPTP12)
    with pytest.raises(TypeError, match="regs"):
        L.set_regs(shadow, 0)
    with pytest.raises(ValueError, match="vendor"):
        L.Host(vendor="arm")


def test_purpose_groups_cover_every_field():
    names = [f.name for f in fields(L.KvmMmu)]
    assert sorted(L.PURPOSE) == sorted(names)
    grouped = L.fields_by_purpose()
    assert sum(len(v) for v in grouped.values()) == 18
    assert grouped["KVM's tables: roots"] == ["root", "prev_roots", "pae_root", "pml4_root", "pml5_root"]


def test_legacy_kvm_mmu_has_the_classic_fields():
    # kvm_host.h, classic tree, in declaration order
    assert [f.name for f in fields(L.KvmMmu)] == [
        "get_guest_pgd", "get_pdptr", "page_fault", "inject_page_fault", "gva_to_gpa",
        "sync_spte", "root", "cpu_role", "root_role", "pkru_mask", "prev_roots",
        "permissions", "pae_root", "pml4_root", "pml5_root", "shadow_zero_check",
        "guest_rsvd_check", "pdptrs"]


# ---------------------------------------------------------------------------
# Ledger
# ---------------------------------------------------------------------------


def test_ledger_covers_every_field_exactly_once():
    G.check_ledger(G.LEDGER)
    assert len(G.LEDGER) == 18 + 5


def test_ledger_checker_rejects_incomplete_duplicate_and_unknown():
    short = [r for r in G.LEDGER if r.legacy != "kvm_mmu.pdptrs"]
    with pytest.raises(ValueError, match=r"missing \['kvm_mmu.pdptrs'\]"):
        G.check_ledger(short)
    with pytest.raises(ValueError, match="more than once"):
        G.check_ledger(list(G.LEDGER) + [G.LEDGER[0]])
    bogus = G.LedgerRow("kvm_mmu.direct_map", "dropped", "gone in 2022", "redundant", "-")
    with pytest.raises(ValueError, match="not legacy fields"):
        G.check_ledger(list(G.LEDGER) + [bogus])


def test_ledger_homes_exist():
    assert all(G.sketch_home_is_valid(r.home) for r in G.LEDGER)
    assert not G.sketch_home_is_valid("kvm_mmu.gva_to_gpa")  # the walker is not run-time state
    assert not G.sketch_home_is_valid("kvm_mmu_state.root")  # no such struct in the model


def test_ledger_hand_checked_homes():
    home = {r.legacy: r.home for r in G.LEDGER}
    assert home["kvm_mmu.gva_to_gpa"] == "kvm_paging_context.gva_to_gpa"
    assert home["kvm_mmu.shadow_zero_check"] == "kvm_mmu_kind.shadow_zero_check"
    assert home["kvm_mmu.root"] == "kvm_mmu.root"
    assert home["kvm_mmu.pdptrs"] == "kvm_paging_context.pdptrs"
    assert home["kvm_vcpu_arch.walk_mmu"] == "kvm_vcpu_arch.walk"
    assert home["kvm_vcpu_arch.guest_mmu"] == "kvm_vcpu_arch.tdp12_mmu"
    md = G.ledger_markdown()
    assert md.count("\n") == 23 + 1  # header, rule, 23 rows


# ---------------------------------------------------------------------------
# Legacy vs split
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(EXPECTED_POINTERS))
def test_split_agrees_with_legacy(legacy, split, key):
    assert S.differences(legacy[key], split[key]) == []
    lv, sv = legacy[key], split[key]
    assert (lv.walk_mmu is lv.nested_mmu) == (sv.walk is sv.walk12)
    assert (lv.mmu is lv.guest_mmu) == (sv.mmu is sv.tdp12_mmu)


def test_differences_can_fail(legacy, split):
    fresh = L.configurations()["vmx_ept"]
    fresh.walk_mmu = fresh.root_mmu  # break the legacy vCPU
    assert any(d.startswith("pointer walk") for d in S.differences(fresh, split["vmx_ept"]))
    wrong = dict(S.SKETCH_HOME, page_fault=("kvm_paging_context", "gva_to_gpa"))
    diffs = S.differences(legacy["tdp"], split["tdp"], homes=wrong)
    assert diffs == ["root_mmu.page_fault: legacy 'kvm_tdp_page_fault' != split "
                     "kvm_paging_context.gva_to_gpa 'paging64_gva_to_gpa'"]


def test_split_pointer_table_hand_checked(split):
    assert S.pointer_table(split["vmx_ept"]) == {
        "mmu": "tdp12_mmu", "walk": "walk12", "mmu->walk": "walk01",
        "root_mmu.kind": "kvm.direct_mmu", "tdp12_mmu.kind": "shadow_mmu"}
    assert S.pointer_table(split["shadow"])["root_mmu.kind"] == "shadow_mmu"
    v = split["vmx_ept"]
    assert S.kvm_translate_gpa(v, v.walk12) is v.walk01
    assert S.emulated_fault_target(v, True) is v.walk01


def test_split_bad_transitions():
    v = S.kvm_mmu_create(S.kvm_arch_init_vm(L.Host()))
    with pytest.raises(ValueError, match="not in guest mode"):
        S.nested_vmx_vmexit(v)
    with pytest.raises(TypeError, match="KvmArch"):
        S.kvm_mmu_create(L.Host())
    with pytest.raises(ValueError, match="kvm_mmu_foo"):
        S.resolve_struct_name("kvm_mmu_foo")


def test_decision_a_kind_cannot_hold_roots():
    kvm = S.kvm_arch_init_vm(L.Host())
    a, b, c = (S.kvm_mmu_create(kvm) for _ in range(3))
    S.set_regs(a, L.L1_REGS)
    S.set_regs(b, L.GuestRegs(**{**L.L1_REGS.__dict__, "smm": True}))
    S.set_regs(c, L.L1_REGS)
    S.nested_vmx_vmentry(c, L.L2_REGS, ept=False)
    assert a.root_mmu.kind is b.root_mmu.kind is c.root_mmu.kind is kvm.direct_mmu
    # roles by hand: 0x3784; + smm 0x01000000; + guest_mode 0x20000
    assert [x.root_mmu.root_role.word for x in (a, b, c)] == [0x3784, 0x01003784, 0x23784]
    assert S.kind_conflicts([a, b, c]) == [("vcpu0", "vcpu1"), ("vcpu0", "vcpu2"), ("vcpu1", "vcpu2")]
    d = S.kvm_mmu_create(kvm)
    S.set_regs(d, L.L1_REGS)
    assert S.kind_conflicts([a, d]) == []  # same role: TDP root shared by role
    assert S.resolve_struct_name("kvm_mmu_state") is S.KvmMmu


def test_decision_b_walk01_pairs_with_tdp12(split):
    assert S.live_walks(split["vmx_ept"]) == {"walk01", "walk12"}
    assert S.live_walks(split["svm_npt"]) == {"walk01", "walk12"}
    # root_walk and walk12 are never live together
    assert all(not {"root_walk", "walk12"} <= S.live_walks(v) for v in split.values())
    # root_walk is not "L1's own" in general: with L1 lacking TDP it holds L2
    assert split["vmx_noept"].root_walk.cpu_role.base.guest_mode == 1
    assert split["vmx_ept"].walk01.gva_to_gpa == "ept_gva_to_gpa"
    assert split["vmx_ept"].root_walk.gva_to_gpa == "paging64_gva_to_gpa"


def test_decision_d_shadow_zero_check_ignores_guest_registers():
    kvm = S.kvm_arch_init_vm(L.Host(tdp_enabled=False))
    modes = [L.L1_REGS, L.L2_REGS,
             L.GuestRegs(cr0=0x80010001, cr3=0x3000),              # 32-bit, NX off
             L.GuestRegs(cr0=0x80000001, cr3=0x3000, cr4=0x20)]     # PAE, NX off, WP 0
    checks = []
    for regs in modes:
        v = S.kvm_mmu_create(kvm)
        S.set_regs(v, regs)
        checks.append(v.shadow_mmu.shadow_zero_check)
    assert {c.get("nx") for c in checks} == {1}
    assert {c.get("level") for c in checks} == {3, 4}
    assert len({c.without("level") for c in checks}) == 1


def test_member_and_struct_tables_name_real_members():
    from refimpl.layouts import legacy as L, split as S
    from dataclasses import fields
    legacy_members = {f.name for f in fields(L.KvmVcpuArch)}
    assert [n for n, _, _ in L.VCPU_MEMBERS] == ["mmu", "root_mmu", "guest_mmu", "nested_mmu", "walk_mmu"]  # kvm_host.h order
    assert {n for n, _, _ in L.VCPU_MEMBERS} <= legacy_members
    owners = {"kvm_arch": {f.name for f in fields(S.KvmArch)},
              "kvm_vcpu_arch": {f.name for f in fields(S.KvmVcpuArch)}}
    for struct, _, where in S.SKETCH_STRUCTS:
        assert struct in S.STRUCT_CLASSES
        for w in where:
            owner, member = w.split(".")
            assert member in owners[owner], w
    md = S.structs_markdown()
    assert "| `kvm_mmu_kind` |" in md and "`kvm->arch.direct_mmu`" in md and "`walk01`" in md


@pytest.mark.parametrize("layout", ["legacy", "split"])
def test_nested_entry_and_exit_misuse_leaves_the_vcpu_in_l1(layout):
    from refimpl.layouts import legacy as L, split as S
    new = ((lambda host: L.kvm_mmu_create(host)) if layout == "legacy"
           else (lambda host: S.kvm_mmu_create(S.kvm_arch_init_vm(host))))
    M = L if layout == "legacy" else S
    vmx = new(L.Host(vendor="vmx"))
    M.set_regs(vmx, L.L1_REGS)
    with pytest.raises(ValueError, match="nested_svm_vmrun needs an SVM host"):
        M.nested_svm_vmrun(vmx, L.L2_REGS, npt=False)
    with pytest.raises(ValueError, match="nested_svm_vmexit needs an SVM host"):
        M.nested_svm_vmexit(vmx)
    with pytest.raises(TypeError, match="l2_regs must be a GuestRegs"):
        M.nested_vmx_vmentry(vmx, "L2", ept=False)
    assert not vmx.guest_mode and vmx.l1_regs is None
    M.nested_vmx_vmentry(vmx, L.L2_REGS, ept=False)
    with pytest.raises(ValueError, match="already in guest mode"):
        M.nested_vmx_vmentry(vmx, L.L2_REGS, ept=False)
    M.nested_vmx_vmexit(vmx)
    assert not vmx.guest_mode and vmx.regs == L.L1_REGS
    smm = new(L.Host(vendor="vmx"))
    M.set_regs(smm, L.GuestRegs(cr0=L.L1_REGS.cr0, cr3=0x1000, cr4=L.L1_REGS.cr4,
                                efer=L.L1_REGS.efer, smm=True))
    with pytest.raises(ValueError, match="from SMM is not modelled"):
        M.nested_vmx_vmentry(smm, L.L2_REGS, ept=False)
    assert not smm.guest_mode


# ---------------------------------------------------------------------------
# The C declarations (refimpl.layouts.structs) against kvm_host.h
# ---------------------------------------------------------------------------

# struct kvm_mmu of arch/x86/include/asm/kvm_host.h (torvalds/linux at
# 004a0aa56ede), transcribed by hand, one member a line, comments left out.
KVM_MMU_BY_HAND = [
    "unsigned long (*get_guest_pgd)(struct kvm_vcpu *vcpu);",
    "u64 (*get_pdptr)(struct kvm_vcpu *vcpu, int index);",
    "int (*page_fault)(struct kvm_vcpu *vcpu, struct kvm_page_fault *fault);",
    "void (*inject_page_fault)(struct kvm_vcpu *vcpu, struct x86_exception *fault);",
    "gpa_t (*gva_to_gpa)(struct kvm_vcpu *vcpu, struct kvm_mmu *mmu, gpa_t gva_or_gpa, "
    "u64 access, struct x86_exception *exception);",
    "int (*sync_spte)(struct kvm_vcpu *vcpu, struct kvm_mmu_page *sp, int i);",
    "struct kvm_mmu_root_info root;",
    "union kvm_cpu_role cpu_role;",
    "union kvm_mmu_page_role root_role;",
    "u32 pkru_mask;",
    "struct kvm_mmu_root_info prev_roots[KVM_MMU_NUM_PREV_ROOTS];",
    "u8 permissions[16];",
    "u64 *pae_root;",
    "u64 *pml4_root;",
    "u64 *pml5_root;",
    "struct rsvd_bits_validate shadow_zero_check;",
    "struct rsvd_bits_validate guest_rsvd_check;",
    "u64 pdptrs[4];",
]

# The MMU members of struct kvm_vcpu_arch, same file, in declaration order.
VCPU_MMU_BY_HAND = [
    "struct kvm_mmu *mmu;",
    "struct kvm_mmu root_mmu;",
    "struct kvm_mmu guest_mmu;",
    "struct kvm_mmu nested_mmu;",
    "struct kvm_mmu *walk_mmu;",
]


def _members(step, name):
    from refimpl.layouts.structs import c_declaration
    lines = [x.strip() for x in c_declaration(step, name, notes=False).splitlines()]
    assert lines[0] == f"struct {name} {{" and lines[-1] == "};"
    return [x for x in lines[1:-1] if x != "..."]


def test_step0_c_declarations_match_kvm_host_h():
    assert _members(0, "kvm_mmu") == KVM_MMU_BY_HAND
    assert _members(0, "kvm_vcpu_arch") == VCPU_MMU_BY_HAND
    # and the Python class has the same members in the same order
    assert [f.name for f in fields(L.KvmMmu)] == [
        x.split("(*")[1].split(")")[0] if "(*" in x else x.rstrip(";").split()[-1].lstrip("*").split("[")[0]
        for x in KVM_MMU_BY_HAND]


def test_a_planted_rename_is_caught(monkeypatch):
    from refimpl.layouts import structs
    s0 = structs.struct_at(0, "kvm_mmu")
    old = s0.field("sync_spte")
    planted = s0.edit(rename={"sync_spte": structs.CField("sync_page", old.decl, old.note)})
    monkeypatch.setitem(structs.CHANGES, 0, (planted,) + structs.CHANGES[0][1:])
    structs._struct_at.cache_clear()
    try:
        assert _members(0, "kvm_mmu") != KVM_MMU_BY_HAND
        assert "int (*sync_page)(struct kvm_vcpu *vcpu, struct kvm_mmu_page *sp, int i);" in \
            _members(0, "kvm_mmu")
    finally:
        monkeypatch.undo()
        structs._struct_at.cache_clear()
    assert _members(0, "kvm_mmu") == KVM_MMU_BY_HAND


def test_c_diff_shows_what_each_step_moves():
    from refimpl.layouts.structs import c_diff, changed_structs
    d = c_diff(2, 3)
    assert "-\tint (*sync_spte)(struct kvm_vcpu *vcpu, struct kvm_mmu_page *sp, int i);" in d
    assert "+\tstruct kvm_mmu_kind *kind;" in d
    assert c_diff(4, 5) == "" and changed_structs(5) == ()
    assert changed_structs(4) == ("kvm_arch", "kvm_vcpu_arch")
    assert "+\tstruct kvm_mmu_kind direct_mmu;" in c_diff(3, 4)
