"""The sketch-versus-KVM comparison (refimpl.story.history).

The comparison is data written by hand from the 2026 ``kvm_host.h`` and the
commits; these tests hold it against descriptions written independently:
the model of the sketch (refimpl.layouts.split), the classic struct
(refimpl.layouts.legacy), the thread's fates (refimpl.story.thread) and the field ledger
(refimpl.story.ledger), plus expectations worked out by hand from the 2026
``arch/x86/include/asm/kvm_host.h`` of the chainsaw series (kvm.git, merge
a204badd8432) and the commits it lists. Each check is also shown to fail on
a broken table.
"""

import dataclasses

import pytest

from refimpl.story import ledger, thread
from refimpl.layouts import legacy as mmu_legacy, split as mmu_split
from refimpl.story import history as H
from refimpl.host.roles import CR0_WP

V = H.Verdict


def element(cover: str) -> H.Element:
    (e,) = [e for e in H.ELEMENTS if cover in e.covers]
    return e


def test_the_data_passes_its_checks():
    H.check_history()


# --- the checks can fail -----------------------------------------------------

def test_a_missing_row_is_caught():
    rows = tuple(e for e in H.ELEMENTS if "kvm_vcpu_arch.walk01" not in e.covers)
    with pytest.raises(ValueError, match="kvm_vcpu_arch.walk01' has no row"):
        H.check_history(rows)


def test_a_row_about_something_the_sketch_lacks_is_caught():
    bad = dataclasses.replace(H.ELEMENTS[0], covers=("kvm_mmu_kind.no_such_field",))
    with pytest.raises(ValueError, match="unknown id 'kvm_mmu_kind.no_such_field'"):
        H.check_history((bad,) + H.ELEMENTS[1:])


def test_an_unknown_change_or_2026_name_is_caught():
    bad = dataclasses.replace(H.ELEMENTS[0], change="chainsaw-2025", kvm=("kvm_mmu.fmtt",))
    with pytest.raises(ValueError) as e:
        H.check_history((bad,) + H.ELEMENTS[1:])
    assert "unknown change 'chainsaw-2025'" in str(e.value)
    assert "no member 'fmtt'" in str(e.value)


def test_a_classic_field_without_a_2026_home_is_caught():
    partial = {k: v for k, v in H.CLASSIC_TO_2026.items() if k != "pdptrs"}
    with pytest.raises(ValueError, match=r"missing \['pdptrs'\]"):
        H.check_history(to_2026=partial)


def test_a_home_the_ledger_contradicts_is_caught():
    # Plausible but wrong: pdptrs in the walker, as the sketch had it.
    wrong = dict(H.CLASSIC_TO_2026, pdptrs=("kvm_pagewalk.cpu_role",))
    with pytest.raises(ValueError, match="kvm_mmu.pdptrs: home kvm_pagewalk.cpu_role "
                                         "disagrees with the ledger"):
        H.check_history(to_2026=wrong)


def test_a_vcpu_member_wrongly_kept_is_caught():
    wrong = dict(H.VCPU_TO_2026, nested_mmu=("kvm_vcpu_arch.gva_walk",))
    with pytest.raises(ValueError, match="nested_mmu: home kvm_vcpu_arch.gva_walk "
                                         "disagrees"):
        H.check_history(vcpu_to_2026=wrong)


def test_an_unexplained_2026_member_is_caught():
    with pytest.raises(ValueError) as e:
        H.check_history(new_in_2026={"kvm_mmu.w": "walker"})
    assert "kvm_mmu.mirror_root_hpa holds no classic field" in str(e.value)
    assert "kvm_mmu.w " not in str(e.value)


def test_bad_input_is_rejected():
    with pytest.raises(TypeError, match="elements must be Element"):
        H.check_history(("kvm_mmu",))
    with pytest.raises(ValueError, match="sketch_struct must be one of"):
        H.field_verdict("kvm_pagewalk", ("kvm_pagewalk.cpu_role",))
    for path in ("", 7, "kvm_mmu.nope", "kvm_mmu.root.pgd", "kvm_paging_context"):
        with pytest.raises(ValueError):
            H.resolve_2026(path)


# --- against independent descriptions -------------------------------------------

def test_newest_structs_match_the_2026_kvm_host_h():
    # Transcribed separately from the 2026 arch/x86/include/asm/kvm_host.h.
    assert set(H.NEWEST_STRUCTS["kvm_page_format"]) == {
        "rsvd_bits_mask", "bad_mt_xwr", "pkru_mask", "permissions"}
    assert set(H.NEWEST_STRUCTS["kvm_pagewalk"]) == {
        "get_guest_pgd", "get_pdptr", "inject_page_fault", "gva_to_gpa", "cpu_role", "fmt"}
    assert set(H.NEWEST_STRUCTS["kvm_mmu"]) == {
        "page_fault", "sync_spte", "w", "root", "mirror_root_hpa", "root_role",
        "prev_roots", "pae_root", "pml4_root", "pml5_root", "fmt"}
    assert set(H.NEWEST_STRUCTS["kvm_vcpu_arch"]) == {
        "mmu", "root_mmu", "guest_mmu", "ngpa_walk", "gva_walk", "pdptrs"}


def test_resolution_by_hand():
    assert H.resolve_2026("kvm_mmu.fmt.rsvd_bits_mask") == ("kvm_mmu", "kvm_page_format")
    assert H.resolve_2026("kvm_pagewalk.fmt") == ("kvm_pagewalk", "kvm_page_format")
    assert H.resolve_2026("kvm_vcpu_arch.gva_walk") == ("kvm_vcpu_arch", "kvm_pagewalk")
    assert H.resolve_2026("kvm_mmu.root") == ("kvm_mmu",)


def test_classic_fields_are_what_the_2021_fates_yield():
    # thread.FATES walks Sean's 2021 list forward; history starts from today's.
    assert set(H.CLASSIC_TO_2026) == thread.fields_after()
    assert set(H.CLASSIC_TO_2026) == {f.name for f in dataclasses.fields(mmu_legacy.KvmMmu)}


def test_what_sean_said_is_never_per_vm_stayed_in_the_per_vcpu_kvm_mmu():
    never = {thread.SeanGroup.NEVER_PER_VM, thread.SeanGroup.PREV_ROOTS}
    fate = {f.field: f.now for f in thread.FATES}
    for old, group in thread.SEAN_FIELDS:
        if group in never:
            for now in fate[old]:
                assert all(h.startswith("kvm_mmu.") for h in H.CLASSIC_TO_2026[now]), now


def test_only_sync_spte_and_pdptrs_left_the_struct_the_sketch_chose():
    # By hand from the 2026 kvm_host.h: sync_spte is a kvm_mmu member (the sketch put
    # it in the kind); pdptrs is a vCPU member (the sketch: paging context).
    # Everything else sits in kvm_pagewalk (+ its fmt), kvm_mmu, or a
    # kvm_page_format (the kind's surviving half).
    rows = {name: v for name, _, _, v in H.field_rows()}
    assert set(rows) == set(mmu_split.SKETCH_HOME)
    assert {n for n, v in rows.items() if v is V.CHANGED} == {"sync_spte", "pdptrs"}
    assert {n for n, v in rows.items() if v is V.DROPPED} == set()


def test_the_field_rule_on_hand_cases():
    assert H.field_verdict("kvm_mmu_kind", ("kvm_mmu.fmt.bad_mt_xwr",)) is V.FOLLOWED
    assert H.field_verdict("kvm_mmu_kind", ("kvm_mmu.sync_spte",)) is V.CHANGED
    assert H.field_verdict("kvm_paging_context", ()) is V.DROPPED


def test_every_sketch_instance_has_exactly_one_row():
    for struct, _, where in mmu_split.SKETCH_STRUCTS:
        for inst in (struct, *where):
            assert sum(inst in e.covers for e in H.ELEMENTS) == 1, inst


def test_decision_b_is_what_kvm_did():
    # root_walk and walk12 became one struct; walk01 another.
    gva = ("kvm_vcpu_arch.gva_walk",)
    assert element("kvm_vcpu_arch.root_walk").kvm == gva
    assert element("kvm_vcpu_arch.walk12").kvm == gva
    assert element("kvm_vcpu_arch.walk01").kvm == ("kvm_vcpu_arch.ngpa_walk",)
    assert H.resolve_2026("kvm_vcpu_arch.ngpa_walk")[-1] == "kvm_pagewalk"


def test_decision_d_disagreement_matches_the_row():
    agrees = {label: ok for label, _, _, ok in H.DECISIONS}
    assert agrees == {"(a)": True, "(b)": True, "(c)": True, "(d)": False}
    assert element("kvm_mmu_kind.shadow_zero_check").verdict is not V.FOLLOWED
    assert element("kvm_vcpu_arch.mmu").verdict is V.FOLLOWED


def test_the_deleted_members_rows_agree_with_the_ledger():
    later = {r.legacy: r.home_2026 for r in ledger.LEDGER}
    assert later["kvm_vcpu_arch.nested_mmu"].startswith("deleted")
    assert later["kvm_vcpu_arch.walk_mmu"].startswith("deleted")
    assert element("mail:step1").verdict is V.FOLLOWED
    assert element("kvm_vcpu_arch.walk").verdict is V.CHANGED   # no pointer left


def test_per_vm_kind_rows_are_dropped_and_name_nothing_per_vm():
    assert element("kvm_arch.direct_mmu").verdict is V.DROPPED
    assert element("kvm_arch.direct_mmu").kvm == ()
    # Nothing in the 2026 structs lives in struct kvm_arch.
    assert all(s != "kvm_arch" for s in H.NEWEST_STRUCTS)


def test_an_element_with_no_2026_name_is_not_called_followed():
    for e in H.ELEMENTS:
        if not e.kvm:
            assert e.verdict in (V.DROPPED, V.NOT_YET), e.sketch


def test_every_change_is_used_and_dated():
    used = {e.change for e in H.ELEMENTS}
    assert {c.key for c in H.CHANGES} <= used
    assert [c.year for c in H.CHANGES] == sorted(c.year for c in H.CHANGES)
    assert "01b31714bd90" in {c.key: c.where for c in H.CHANGES}["cr0wp-2023"]


def test_cr0_wp_row_agrees_with_the_legacy_model():
    # The row says: with TDP a WP toggle keeps the roots; shadow paging resets.
    assert element("mail:no-reset-on-cr0wp").verdict is V.FOLLOWED
    for tdp, extra in ((True, 0), (False, 1)):
        v = mmu_legacy.kvm_mmu_create(mmu_legacy.Host(tdp_enabled=tdp))
        mmu_legacy.set_regs(v, mmu_legacy.L1_REGS)
        before = v.resets
        mmu_legacy.kvm_set_cr0(v, v.regs.cr0 & ~CR0_WP)
        assert v.resets - before == extra, tdp


def test_markdown_tables():
    md = H.comparison_markdown()
    lines = md.splitlines()
    assert len(lines) == len(H.ELEMENTS) + 2
    assert all(line.count(" | ") == 4 for line in lines[2:])   # no stray pipes
    assert H.fields_markdown().count("\n") == len(mmu_split.SKETCH_HOME) + 1
    assert "2026" in H.changes_markdown() and "(d)" in H.decisions_markdown()
    counts = H.verdict_counts()
    assert sum(counts.values()) == len(H.ELEMENTS)
