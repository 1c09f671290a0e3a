"""The nested-walk explorer's model (``refimpl.viz.nested``), tested without a browser.

Expected values are worked out by hand from the fixed layout: L2's
level-n table at L2 gpa ``n * 0x1000`` (index ``root_level - n + 1``), the
data page at L2 0x9000, L2 page ``P`` at L1 ``P + 0x100000``, and an
``m``-level EPT with its level-k table at L1 ``0x1000 * (m - k + 1)``, so
the EPT PTE of L2 page ``P`` is at ``0x1000 * m + 8 * (P >> 12)``.
An n-level L2 walk over an m-level EPT makes ``(n + 1)(m + 1) - 1``
references; PAE's PDPTE load adds ``m + 1``.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from refimpl.guest.formats import EPT_EXIT_QUAL as Q
from refimpl.viz.nested import (
    NestedSetup,
    decode_exit_qualification,
    entries,
    ept_pte_gpa,
    explain_nested,
    nested_html,
    targets,
)

READ, WRITE, INSTR = Q.ACC_READ.bit, Q.ACC_WRITE.bit, Q.ACC_INSTR.bit   # 0x1, 0x2, 0x4
R_FOUND, GVA_VALID, GVA_FINAL = 1 << 3, Q.GVA_IS_VALID.bit, Q.GVA_TRANSLATED.bit  # 0x8, 0x80, 0x100


def test_four_over_four_by_hand():
    r = explain_nested(NestedSetup())
    assert r.gva == 0x80_8060_4567 and r.steps == 24 == (4 + 1) * (4 + 1) - 1
    assert "".join("G" if x.dimension == "L2" else "E" for x in r.rows) == "EEEEG" * 4 + "EEEE"
    # L2 entries: PML4 (L2 0x4000) index 1, PDPT (0x3000) index 2, PD (0x2000) index 3,
    # PT (0x1000) index 4; each at its L2 address + 1 MiB in L1.
    assert [(x.name, x.address, x.value) for x in r.rows if x.dimension == "L2"] == [
        ("PML4E", 0x104008, 0x3007), ("PDPTE", 0x103010, 0x2007),
        ("PDE", 0x102018, 0x1007), ("PTE", 0x101020, 0x9007)]
    # The EPT PTE of each step's L2 page: 0x4000 + 8 * page number.
    assert [x.address for x in r.rows if x.name == "EPT PTE"] == [
        0x4020, 0x4018, 0x4010, 0x4008, 0x4048]
    assert [x.l2_gpa for x in r.rows if x.name == "EPT PTE"] == [
        0x4000, 0x3000, 0x2000, 0x1000, 0x9000]
    assert (r.result.l2_gpa, r.result.l1_gpa, r.target) == (0x9567, 0x109567, None)
    assert r.outcome == "L1 gpa 0x109567 (L2 gpa 0x9567)"
    # Grid: 5 rows (4 tables + data page), 4 EPT columns + the L2 entry.
    assert r.grid_columns == ("EPT L4", "EPT L3", "EPT L2", "EPT L1", "L2 entry")
    assert r.grid_rows[0] == "PML4 (L2 0x4000)" and r.grid_rows[-1] == "data page (L2 0x9000)"
    assert [x.cell for x in r.rows[:6]] == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 0)]
    assert r.rows[-1].cell == (4, 3)
    # A/D: L2 entries gain A (0x20); EPT entries untouched with A/D off.
    assert all(x.after ^ x.value == 0x20 for x in r.rows if x.dimension == "L2")
    assert all(x.after == x.value for x in r.rows if x.dimension == "EPT")


@pytest.mark.parametrize("mode, m, steps, pdptr", [
    ("32-bit", 4, 14, 0), ("32-bit", 5, 17, 0),
    ("PAE", 4, 14 + 5, 5), ("PAE", 5, 17 + 6, 6),
    ("4-level", 4, 24, 0), ("4-level", 5, 29, 0),
    ("5-level", 4, 29, 0), ("5-level", 5, 35, 0),
])
def test_reference_counts(mode, m, steps, pdptr):
    r = explain_nested(NestedSetup(mode=mode, ept_levels=m))
    assert r.steps == steps and r.result.references("pdptr") == pdptr
    assert r.result.l1_gpa == 0x109567
    # Every reference gets its own grid cell.
    assert len({x.cell for x in r.rows}) == steps


def test_eptp_by_hand():
    assert NestedSetup().eptp == 0x1000 | 3 << 3 | 6 == 0x101E
    assert NestedSetup(ept_levels=5, ept_ad=True).eptp == 0x1000 | 4 << 3 | 6 | 1 << 6 == 0x1066
    assert ept_pte_gpa(5, 0x9000) == 0x5048


def test_ept_ad_marks_table_pages_dirty():
    r = explain_nested(NestedSetup(ept_ad=True))
    # Table pages are translated with W|U: their EPT PTEs get A and D (0x300);
    # the data page of a read gets A only (0x100). The upper EPT entries get A
    # on the first walk; later walks read them with A already set.
    ptes = [x.after ^ x.value for x in r.rows if x.name == "EPT PTE"]
    assert ptes == [0x300] * 4 + [0x100]
    upper = [x.after ^ x.value for x in r.rows if x.dimension == "EPT" and x.level > 1]
    assert upper == [0x100] * 3 + [0] * 12


def test_pd_page_unmapped_is_an_ept_violation_to_l1():
    r = explain_nested(NestedSetup(ept_unmapped="PD"))
    # PML4 and PDPT: 5 refs each; the EPT walk for the PD (L2 0x2000) stops at the EPT PTE.
    assert r.steps == 14 and r.rows[-1].name == "EPT PTE" and r.rows[-1].address == 0x4010
    f = r.result.fault
    assert (r.target, f.kind, f.address, f.final) == ("L1", "EPT violation", 0x2000, False)
    # Table access W|U -> READ|WRITE; RWX found 0; GVA_IS_VALID; not GVA_TRANSLATED.
    assert f.exit_qualification == READ | WRITE | GVA_VALID == 0x83
    assert "exit qualification 0x83 (READ|WRITE|GVA_IS_VALID)" in r.outcome


def test_pte_not_present_is_a_pf_to_l2():
    r = explain_nested(NestedSetup(l2_not_present="PTE"))
    assert r.steps == 20 and r.rows[-1].name == "PTE"
    f = r.result.fault
    assert (r.target, f.kind, f.error_code, f.address) == ("L2", "#PF", 0, 0x80_8060_4567)
    assert r.outcome == "#PF to L2, error code 0x0 (none), CR2 0x8080604567"
    r = explain_nested(NestedSetup(l2_not_present="PTE", access="write", user=True))
    assert r.result.fault.error_code == 0x6          # W|U, no P


@pytest.mark.parametrize("setup, steps, address, final, qual", [
    # A read-only table page: the table access is a write -> violation, R found.
    (NestedSetup(ept_read_only="PD"), 14, 0x2000, False, READ | WRITE | R_FOUND | GVA_VALID),
    # A read-only data page: a read is fine ...
    (NestedSetup(ept_read_only="data page"), 24, None, None, None),
    # ... a write is not (final access: GVA_TRANSLATED too; one access bit,
    # WRITE): 0x2 | R 0x8 | 0x80 | 0x100 = 0x18A.
    (NestedSetup(ept_read_only="data page", access="write"), 24, 0x9000, True, 0x18A),
    # ... nor a fetch: INSTR | R | 0x80 | 0x100 = 0x18C.
    (NestedSetup(ept_read_only="data page", access="fetch"), 24, 0x9000, True, 0x18C),
    # The data page unmapped: READ | 0x80 | 0x100 = 0x181.
    (NestedSetup(ept_unmapped="data page"), 24, 0x9000, True, READ | GVA_VALID | GVA_FINAL),
    # Five-level EPT: the root table unmapped fails at the first EPT walk.
    (NestedSetup(ept_levels=5, ept_unmapped="PML4"), 5, 0x4000, False, 0x83),
])
def test_ept_breaks_route_to_l1(setup, steps, address, final, qual):
    r = explain_nested(setup)
    assert r.steps == steps
    if address is None:
        assert r.target is None and r.result.l1_gpa == 0x109567
        return
    f = r.result.fault
    assert (r.target, f.kind, f.address, f.final, f.exit_qualification) == (
        "L1", "EPT violation", address, final, qual)


def test_pae_pdpt_unmapped_is_gp_in_l2():
    # load_pdptrs gives the inner walk no exception: #GP in L2 after the 4 EPT
    # refs of the failed PDPT translation; L1 hears nothing.
    r = explain_nested(NestedSetup(mode="PAE", ept_unmapped="PDPT"))
    f = r.result.fault
    assert (r.steps, r.target, f.kind, f.vector, f.exit_qualification) == (
        4, "L2", "#GP", 13, None)


def test_both_breaks_the_earlier_one_wins():
    # L2's PTE not present, but the EPT does not map the PT page: L1 hears first.
    r = explain_nested(NestedSetup(l2_not_present="PTE", ept_unmapped="PT"))
    assert r.target == "L1" and r.result.fault.address == 0x1000 and r.steps == 19


def test_menus_follow_the_mode():
    assert targets("32-bit") == ("none", "PD", "PT", "data page")
    assert targets("5-level")[1] == "PML5" and entries("PAE") == ("none", "PDPTE", "PDE", "PTE")
    with pytest.raises(ValueError):
        NestedSetup(mode="32-bit", ept_unmapped="PML4")
    with pytest.raises(ValueError):
        NestedSetup(ept_levels=3)
    with pytest.raises(ValueError):
        NestedSetup(l2_not_present="PML5E")
    with pytest.raises(ValueError):
        NestedSetup(access="execute")


def test_decode_exit_qualification():
    assert decode_exit_qualification(0x18B) == "0x18b (READ|WRITE|RWX=R--|GVA_IS_VALID|GVA_TRANSLATED)"
    assert decode_exit_qualification(0) == "0x0 (none)"


def test_html_up_to_a_step():
    r = explain_nested(NestedSetup())
    html = nested_html(r, 7)
    assert html.count('class="nested-row"') == 7
    assert html.count('class="cell-current"') == 1 and 'class="cell-current" data-n="7"' in html
    assert html.count('class="cell-done"') == 6 and html.count('class="cell-future"') == 17
    assert "reference 7 of 24: EPT PDPTE at L1 0x2000, translating L2 gpa 0x3000 (the PDPT)" in html
    assert nested_html(r).count('class="nested-row"') == 24
    assert nested_html(r, 99) == nested_html(r, 24)
    ET.fromstring(html)   # well-formed


# ---------------------------------------------------------------------------
# The widget (ipywidgets works without a frontend)
# ---------------------------------------------------------------------------


def test_slider_range_is_the_trace_length():
    pytest.importorskip("ipywidgets")
    from refimpl.viz.widgets import NestedWalkExplorer

    w = NestedWalkExplorer()
    assert (w.step.min, w.step.max, w.step.value) == (1, 24, 24) == (1, w.report.steps, 24)
    w.step.value = 5
    assert 'class="cell-current" data-n="5"' in w.output.value and w.report.steps == 24
    for mode, m in (("32-bit", 4), ("PAE", 5), ("5-level", 5), ("4-level", 4)):
        w.mode.value, w.ept_levels.value = mode, m
        assert w.step.max == w.step.value == len(w.report.result.trace) == w.report.steps
    w.ept_unmapped.value = "PD"
    assert w.step.max == 14


def test_widget_toggles_change_the_routing():
    pytest.importorskip("ipywidgets")
    from refimpl.viz.widgets import NestedWalkExplorer

    w = NestedWalkExplorer()
    assert w.report.target is None
    w.l2_not_present.value = "PTE"
    assert w.report.target == "L2" and "#PF to L2, error code 0x0" in w.output.value
    w.ept_unmapped.value = "PD"                       # earlier in the walk: L1 now
    assert w.report.target == "L1" and w.report.result.fault.exit_qualification == 0x83
    w.ept_unmapped.value = "none"
    w.l2_not_present.value = "none"
    w.ept_read_only.value = "data page"
    assert w.report.target is None
    w.access.value = "write"
    assert w.report.result.fault.exit_qualification == 0x18A
    w.mode.value = "32-bit"                           # menus reset to "none"
    assert (w.ept_read_only.value, w.ept_unmapped.options) == ("none", targets("32-bit"))
    assert w.report.target is None and w.step.max == 14


def test_model_imports_without_ipywidgets():
    code = ("import sys; sys.modules['ipywidgets'] = None\n"
            "import refimpl.viz, refimpl.viz.nested\n"
            "print(refimpl.viz.explain_nested(refimpl.viz.NestedSetup()).steps)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "24"
