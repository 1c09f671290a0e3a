"""The explorers' models (``refimpl.viz``), tested without a browser.

Expected values are worked out by hand from the tables' fixed layout
(``refimpl.viz.walk``: the level-n table at ``n * 0x1000``, index
``root_level - n + 1`` at level n, every leaf mapping ``0x40000000``), from
KVM's permission masks (``0x33`` writes, ``0x0F`` user, ``0x55`` fetch,
``0xF0`` user pages), and from the pointer tables of ``refimpl.layouts.legacy``
and ``refimpl.layouts.split``.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import replace
from html import escape
from pathlib import Path

import pytest

from refimpl.layouts import legacy as L
from refimpl.layouts import split as S
from refimpl.guest.faults import WalkError
from refimpl.guest.formats import PFERR
from refimpl.guest.permissions import (
    direct_permission_rule,
    permission_fault,
    update_permission_bitmask,
    update_pkru_bitmask,
)
from refimpl.viz import svg
from refimpl.viz.bitmap import BitmapSetup, bitmap_html, explain_lookup
from refimpl.viz.layouts import LayoutSetup, explain_layout, layout_html, run_transitions
from refimpl.viz.walk import (
    MODES,
    WalkSetup,
    broken_rules,
    check_explanation,
    decode_error_code,
    explain_walk,
    explorer_gva,
    levels,
    walk_html,
)

P, W, U, RSVD, F, PK = (int(PFERR.P), int(PFERR.W), int(PFERR.U), int(PFERR.RSVD),
                        int(PFERR.F), int(PFERR.PK))

# ---------------------------------------------------------------------------
# The page-walk explorer
# ---------------------------------------------------------------------------


def test_default_walk_four_level_by_hand():
    r = explain_walk(WalkSetup())
    assert r.gva == 0x80_8060_4567
    # PML4 at 0x4000 index 1, PDPT at 0x3000 index 2, PD at 0x2000 index 3, PT at 0x1000 index 4.
    assert [(lv, gpa, value) for lv, gpa, value in r.result.trace] == [
        (4, 0x4008, 0x3000 | 0x27),   # P W U A = 0x27, next table 0x3000
        (3, 0x3010, 0x2000 | 0x27),
        (2, 0x2018, 0x1000 | 0x27),
        (1, 0x1020, 0x4000_0000 | 0x27),
    ]
    assert r.result.gpa == 0x4000_0567 and r.reason is None and r.error_code is None
    assert r.outcome == "gpa 0x40000567 (4 KiB page)"
    assert [row.note for row in r.rows] == ["", "", "", "leaf"]


@pytest.mark.parametrize("mode, gva", [
    ("32-bit", (1 << 22) | (2 << 12) | 0x567),
    ("PAE", (1 << 30) | (2 << 21) | (3 << 12) | 0x567),
    ("4-level", (1 << 39) | (2 << 30) | (3 << 21) | (4 << 12) | 0x567),
    ("5-level", (1 << 48) | (2 << 39) | (3 << 30) | (4 << 21) | (5 << 12) | 0x567),
])
def test_every_mode_maps_the_page(mode, gva):
    assert explorer_gva(MODES[mode]) == gva
    r = explain_walk(WalkSetup(mode=mode))
    assert r.result.gpa == 0x4000_0567 and r.result.level == 1
    assert len(r.result.trace) == MODES[mode].root_level


# (setup, expected error code or None, expected reason, expected level), by hand.
CASES = [
    # user write, PTE read-only: P|W|U
    (WalkSetup(access="write", user=True).with_entry(1, w=False), 0x7, WalkError.PERMISSION, 1),
    # supervisor write, PTE read-only, CR0.WP=1: P|W
    (WalkSetup(access="write").with_entry(1, w=False), 0x3, WalkError.PERMISSION, 1),
    # ... CR0.WP=0: allowed
    (WalkSetup(access="write", cr0_wp=False).with_entry(1, w=False), None, None, 1),
    # user read, PDE not present: U only
    (WalkSetup(user=True).with_entry(2, p=False), 0x4, WalkError.NOT_PRESENT, 2),
    # PS in a PML4E is reserved: P|RSVD
    (WalkSetup().with_entry(4, ps=True), 0x9, WalkError.RSVD, 4),
    # user read of a supervisor page (U=0 in the PDPTE only): P|U
    (WalkSetup(user=True).with_entry(3, u=False), 0x5, WalkError.PERMISSION, 1),
    # supervisor fetch, NX in the PML4E, NXE=1: P|F
    (WalkSetup(access="fetch").with_entry(4, nx=True), 0x11, WalkError.PERMISSION, 1),
    # NX with NXE=0 is reserved; F only if NXE or SMEP: P|RSVD, then P|RSVD|F
    (WalkSetup(access="fetch", efer_nxe=False).with_entry(2, nx=True), 0x9, WalkError.RSVD, 2),
    (WalkSetup(access="fetch", efer_nxe=False, cr4_smep=True).with_entry(2, nx=True),
     0x19, WalkError.RSVD, 2),
    # SMEP: supervisor fetch from a user page: P|F
    (WalkSetup(access="fetch", cr4_smep=True), 0x11, WalkError.PERMISSION, 1),
    # SMAP: supervisor read of a user page: P; with AC: allowed
    (WalkSetup(cr4_smap=True), 0x1, WalkError.PERMISSION, 1),
    (WalkSetup(cr4_smap=True, rflags_ac=True), None, None, 1),
    # PKU: user write, key 5, WD: P|W|U|PK
    (WalkSetup(access="write", user=True, cr4_pke=True, pkey=5, pkru_wd=True).with_entry(1, d=True),
     0x27, WalkError.PERMISSION, 1),
    # PKE in PAE mode does nothing (keys need long mode)
    (WalkSetup(mode="PAE", access="write", user=True, cr4_pke=True, pkru_wd=True), None, None, 1),
    # 1 GiB page at the PDPTE, 2 MiB page at the PDE
    (WalkSetup().with_entry(3, ps=True), None, None, 3),
    (WalkSetup().with_entry(2, ps=True), None, None, 2),
    # five-level: PML5E not present, supervisor read: 0
    (WalkSetup(mode="5-level").with_entry(5, p=False), 0x0, WalkError.NOT_PRESENT, 5),
    # PAE: PDPTE with W (reserved) is a #GP at CR3 load
    (WalkSetup(mode="PAE").with_entry(3, w=True), 0x0, WalkError.BAD_PDPTE, None),
    # 32-bit paging: PS in the PDE without PSE is ignored; with PSE a 4 MiB page
    (WalkSetup(mode="32-bit").with_entry(2, ps=True), None, None, 1),
    (WalkSetup(mode="32-bit", cr4_pse=True).with_entry(2, ps=True), None, None, 2),
]


@pytest.mark.parametrize("setup, code, reason, level", CASES)
def test_walk_cases_by_hand(setup, code, reason, level):
    r = explain_walk(setup)
    assert r.error_code == code, r.outcome
    assert r.reason is reason
    assert r.result.level == level
    check_explanation(r)
    assert escape(r.outcome) in walk_html(r)


def test_page_sizes_and_addresses_by_hand():
    assert explain_walk(WalkSetup().with_entry(3, ps=True)).result.gpa == 0x4000_0000 | 0x60_4567
    assert explain_walk(WalkSetup().with_entry(2, ps=True)).result.gpa == 0x4000_0000 | 0x4567
    r = explain_walk(WalkSetup(mode="32-bit", cr4_pse=True).with_entry(2, ps=True))
    assert r.result.gpa == 0x4000_0000 | 0x2567 and "(4 MiB page)" in r.outcome


def test_rule_names_the_broken_rule():
    r = explain_walk(WalkSetup(access="write", user=True).with_entry(1, w=False))
    assert [x.name for x in r.rules] == ["R/W"]
    assert "permissions[3] = 0x3f has bit 5 set" in r.rule   # user write row 3, page U-X = 5
    r = explain_walk(WalkSetup(access="fetch", cr4_smep=True).with_entry(2, nx=True))
    assert [x.name for x in r.rules] == ["NX", "SMEP"]
    r = explain_walk(WalkSetup().with_entry(4, ps=True))
    assert "PS reserved in the PML4E (level 4)" in r.rule and not r.rules
    r = explain_walk(WalkSetup(user=True).with_entry(2, p=False))
    assert "P=0 in the PDE (level 2)" in r.rule


def test_accessed_and_dirty_written_back_only_on_success():
    clean = {lv: dict(a=False) for lv in (4, 3, 2, 1)}
    setup = WalkSetup(access="write")
    for lv, bits in clean.items():
        setup = setup.with_entry(lv, **bits)
    r = explain_walk(setup)
    assert [row.after ^ row.value for row in r.rows] == [0x20, 0x20, 0x20, 0x20 | 0x40]
    assert "(+A D)" in walk_html(r)
    # A failing walk writes nothing.
    r = explain_walk(replace(setup, user=True).with_entry(1, w=False))
    assert r.result.fault is not None
    assert all(row.after == row.value for row in r.rows)


def test_rights_accumulate_level_by_level():
    s = WalkSetup().with_entry(3, w=False).with_entry(2, u=False).with_entry(1, nx=True)
    r = explain_walk(s)
    assert [row.rights for row in r.rows] == ["UWX", "U-X", "--X", "---"]


def test_decode_error_code():
    assert decode_error_code(0x7) == "0x7 (P|W|U)"
    assert decode_error_code(0x19) == "0x19 (P|RSVD|F)"
    assert decode_error_code(0x25) == "0x25 (P|U|PK)"
    assert decode_error_code(0) == "0x0 (none)"


ACCESS_KINDS = [(False, False), (True, False), (False, True)]   # (write, fetch)


def test_broken_rules_agree_with_permission_fault_everywhere():
    checked = 0
    for (write, fetch), user, acc, wp, smep, smap, nx, ac, pke, ad, wd in itertools.product(
            ACCESS_KINDS, (False, True), range(8), *[(False, True)] * 8):
        access = (W if write else 0) | (U if user else 0) | (F if fetch else 0)
        got = permission_fault(
            update_permission_bitmask(cr0_wp=wp, cr4_smep=smep, cr4_smap=smap, efer_nx=nx),
            update_pkru_bitmask(cr4_pke=pke, cr0_wp=wp),
            pte_access=acc, pte_pkey=0, access=access, rflags_ac=ac, pkru=int(ad) | int(wd) << 1,
        )
        rules = broken_rules(write=write, user=user, fetch=fetch, acc=acc, wp=wp, smep=smep,
                             smap=smap, nx=nx, ac=ac, pke=pke, pkru_ad=ad, pkru_wd=wd)
        assert bool(rules) == bool(got)
        assert any(r.name == "PK" for r in rules) == bool(got & PK)
        assert got == direct_permission_rule(
            write=write, user=user, fetch=fetch, implicit=False, page_user=bool(acc & 4),
            page_writable=bool(acc & 2), page_executable=bool(acc & 1), cr0_wp=wp,
            cr4_smep=smep, cr4_smap=smap, efer_nx=nx, rflags_ac=ac, cr4_pke=pke,
            pkru_ad=ad, pkru_wd=wd)
        checked += 1
    assert checked == 3 * 2 * 8 * 256


def test_every_single_bit_flip_is_explained_consistently():
    """Flip each entry bit of each level, for each access, in each mode."""
    n = 0
    for mode, access, user in itertools.product(MODES, ("read", "write", "fetch"), (False, True)):
        base = WalkSetup(mode=mode, access=access, user=user, cr4_smep=True, cr4_smap=True)
        for level in levels(MODES[mode]):
            for bit in ("p", "w", "u", "a", "d", "ps", "nx"):
                setup = base.with_entry(level, **{bit: not getattr(base.entry(level), bit)})
                r = explain_walk(setup)
                check_explanation(r)
                assert (r.result.fault is None) == (r.reason is None)
                assert r.outcome.startswith("gpa" if r.result.fault is None else "#")
                n += 1
    assert n == 2 * 3 * 2 * 7 + 3 * 3 * 2 * 7 + 4 * 3 * 2 * 7 + 5 * 3 * 2 * 7


def test_walk_setup_refuses_bad_values():
    with pytest.raises(ValueError):
        WalkSetup(mode="6-level")
    with pytest.raises(ValueError):
        WalkSetup(access="execute")
    with pytest.raises(ValueError):
        WalkSetup(pkey=16)


# ---------------------------------------------------------------------------
# The permission-bitmap explorer
# ---------------------------------------------------------------------------


def test_bitmap_all_bits_off_by_hand():
    t = BitmapSetup(cr0_wp=False, efer_nx=False).table()
    # Only user accesses are restricted: user pages (0x0F) and, for writes, W (0x33).
    assert t == (0x00, 0x00, 0x0F, 0x3F, 0x00, 0x00, 0x0F, 0x3F,
                 0x00, 0x00, 0x0F, 0x3F, 0x00, 0x00, 0x0F, 0x3F)


@pytest.mark.parametrize("setup, row, byte, faults", [
    (BitmapSetup(), 0, 0x00, False),                                       # supervisor read
    (BitmapSetup(access="write", acc=5), 1, 0x33, True),                   # WP=1, read-only page
    (BitmapSetup(access="write", acc=5, cr0_wp=False), 1, 0x00, False),    # WP=0
    (BitmapSetup(access="write", user=True, acc=5), 3, 0x3F, True),        # user write, RO page
    (BitmapSetup(cr4_smap=True, acc=4), 0, 0xF0, True),                    # SMAP
    (BitmapSetup(cr4_smap=True, acc=4, rflags_ac=True), 4, 0x00, False),   # SMAP, AC=1
    (BitmapSetup(access="fetch", cr4_smep=True, acc=5), 8, 0xF5, True),    # SMEP
    (BitmapSetup(access="fetch", cr4_smep=True, acc=1), 8, 0xF5, False),   # supervisor X page
    (BitmapSetup(access="fetch", user=True, acc=6), 10, 0x5F, True),       # NX: no EXEC
    (BitmapSetup(access="fetch", user=True, rflags_ac=True, acc=7), 14, 0x5F, False),
])
def test_bitmap_lookup_by_hand(setup, row, byte, faults):
    look = explain_lookup(setup)
    assert (look.row, look.column, look.byte, look.faults) == (row, setup.acc, byte, faults)
    html = bitmap_html(setup)
    assert html.count('class="hit"') == 1
    assert f'class="hit" data-row="{row}" data-col="{setup.acc}"' in html
    assert html.count("background:#fff3c4") == 3 + 8   # the shaded row: 3 label cells + 8 bits


# ---------------------------------------------------------------------------
# The layout explorer
# ---------------------------------------------------------------------------

SWITCHES = [LayoutSetup(tdp=t, nested=n, vendor=v, l1_tdp=e)
            for t, n, v, e in itertools.product((False, True), (False, True), ("vmx", "svm"),
                                                (False, True))]


@pytest.mark.parametrize("setup", SWITCHES, ids=lambda s: s.describe())
def test_layout_pointers_by_hand(setup):
    r = explain_layout(setup)
    if setup.nested and setup.l1_tdp and not setup.tdp:
        assert r.impossible is not None and r.legacy is None
        assert "Not a configuration KVM allows" in layout_html(r)
        return
    assert r.impossible is None
    nested_tdp = setup.nested and setup.l1_tdp
    assert (r.legacy["mmu"], r.legacy["walk_mmu"]) == (
        ("guest_mmu", "nested_mmu") if nested_tdp else ("root_mmu", "root_mmu"))
    assert r.split == {
        "mmu": "tdp12_mmu" if nested_tdp else "root_mmu",
        "walk": "walk12" if nested_tdp else "root_walk",
        "mmu->walk": "walk01" if nested_tdp else "root_walk",
        "root_mmu.kind": "kvm.direct_mmu" if setup.tdp else "shadow_mmu",
        "tdp12_mmu.kind": "shadow_mmu",
    }
    assert r.legacy["root_mmu"]["page_fault"] == (
        "kvm_tdp_page_fault" if setup.tdp else "paging64_page_fault")
    if nested_tdp:
        assert r.legacy["guest_mmu"]["page_fault"] == (
            "ept_page_fault" if setup.vendor == "vmx" else "paging64_page_fault")
    # The split layout's own rule for mapping legacy pointers agrees.
    legacy_vcpu = run_transitions(L, L.kvm_mmu_create, setup)
    assert r.split == S.expected_pointer_table(legacy_vcpu)
    # The diagrams draw exactly these pointers.
    assert {("mmu", "mmu", r.legacy["mmu"]), ("walk_mmu", "walk_mmu", r.legacy["walk_mmu"])} \
        == r.legacy_diagram().edges()
    assert r.split_diagram().edges() == {
        ("mmu", "mmu", r.split["mmu"]), ("walk", "walk", r.split["walk"]),
        ("root_mmu", ".kind", r.split["root_mmu.kind"]),
        ("tdp12_mmu", ".kind", r.split["tdp12_mmu.kind"]),
        ("root_mmu", ".walk", "root_walk"), ("tdp12_mmu", ".walk", "walk01"),
    }
    used = {b.key for b in r.split_diagram().boxes if b.style == "used"}
    assert r.split["mmu"] in used and r.split["walk"] in used


def test_layout_matches_named_configurations():
    legacy, split = L.configurations(), S.configurations()
    named = {
        "shadow": LayoutSetup(tdp=False), "tdp": LayoutSetup(),
        "vmx_ept": LayoutSetup(nested=True), "vmx_noept": LayoutSetup(nested=True, l1_tdp=False),
        "svm_npt": LayoutSetup(nested=True, vendor="svm"),
        "svm_nonpt": LayoutSetup(nested=True, vendor="svm", l1_tdp=False),
    }
    for key, setup in named.items():
        r = explain_layout(setup)
        assert r.legacy == L.pointer_table(legacy[key]), key
        assert r.split == S.pointer_table(split[key]), key


def test_svg_is_well_formed_and_deterministic():
    r = explain_layout(LayoutSetup(nested=True))
    a = svg.render(r.split_diagram(), "x")
    assert a == svg.render(explain_layout(LayoutSetup(nested=True)).split_diagram(), "x")
    root = ET.fromstring(a)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    assert len(root.findall(f"{ns}g[@class='arrow']")) == 6
    assert root.find(f"{ns}defs/{ns}marker").get("id") == "x-arrow"
    ET.fromstring(svg.render(r.legacy_diagram(), "y"))
    with pytest.raises(KeyError):
        svg.Diagram(10, 10).box("missing")


# ---------------------------------------------------------------------------
# Widgets (ipywidgets works without a frontend) and the import rule
# ---------------------------------------------------------------------------


def test_walk_widget_controls_drive_the_model():
    pytest.importorskip("ipywidgets")
    from refimpl.viz.widgets import WalkExplorer

    w = WalkExplorer()
    w.entry[2]["p"].value = False
    w.user.value = True
    assert w.report.error_code == U and "#PF, error code 0x4 (U)" in w.output.value
    w.mode.value = "32-bit"       # resets the entries: the walk succeeds again
    assert w.report.result.fault is None and len(w.report.result.trace) == 2
    assert w._entry_rows[3].layout.display == "none" and w.entry[1]["nx"].disabled
    assert w.pkey.disabled
    w.mode.value = "5-level"
    assert not w.pkey.disabled and len(w.report.result.trace) == 5


def test_bitmap_and_layout_widgets():
    pytest.importorskip("ipywidgets")
    from refimpl.viz.widgets import BitmapExplorer, LayoutExplorer

    b = BitmapExplorer()
    b.access.value, b.user.value, b.acc.value = "write", True, 5
    assert (b.report.row, b.report.byte, b.report.faults) == (3, 0x3F, True)
    assert 'data-row="3" data-col="5"' in b.output.value
    lay = LayoutExplorer()
    assert lay.l1_tdp.disabled
    lay.nested.value = True
    assert not lay.l1_tdp.disabled and lay.report.legacy["mmu"] == "guest_mmu"


def test_only_viz_widgets_imports_ipywidgets():
    root = Path(__file__).resolve().parents[2] / "refimpl"
    imports = re.compile(r"^\s*(import|from)\s+ipywidgets\b", re.M)
    importers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                       if imports.search(p.read_text()))
    assert importers == ["viz/concurrency.py", "viz/widgets.py"]  # concurrency: lazily
    # The models import without ipywidgets; the widgets module does not.
    code = ("import sys; sys.modules['ipywidgets'] = None\n"
            "import refimpl.viz, refimpl.viz.walk, refimpl.viz.bitmap, refimpl.viz.layouts\n"
            "try:\n    import refimpl.viz.widgets\nexcept ImportError:\n    print('no widgets')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "no widgets"
