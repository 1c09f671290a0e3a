"""The walk figure (``refimpl.viz.walkfig``) against walks worked out by hand.

Each case builds the smallest page table for one gva and states, from the
SDM's index ranges (32-bit: 31:22, 21:12; PAE: 31:30, 29:21, 20:12;
4-level: 47:39, 38:30, 29:21, 20:12; 5-level adds 56:48) and the gva
written in binary by hand, which bits index each table, which entry is read
and where the page is. The expectations are checked in the SVG text itself,
box by box, not only in the data the SVG was drawn from.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from refimpl import CpuState, GuestMemory
from refimpl.guest.formats import CR0, CR4, EFER
from refimpl.viz.svg import render
from refimpl.viz.walkfig import walk_diagram, walk_figure, walk_svg

PE, PG = CR0.PE.bit, CR0.PG.bit
LONG = EFER.LME.bit | EFER.LMA.bit | EFER.NXE.bit
P, W, U, PS = 1, 2, 4, 0x80
NS = "{http://www.w3.org/2000/svg}"


def boxes(svg: str) -> dict[str, list[str]]:
    """Each box of the SVG by key: its title, then its lines."""
    root = ET.fromstring(svg)
    return {g.get("data-key"): [t.text for t in g.iter(f"{NS}text")]
            for g in root.iter(f"{NS}g") if g.get("data-key")}


def arrows(svg: str) -> set[tuple[str, str]]:
    root = ET.fromstring(svg)
    return {(g.get("data-src"), g.get("data-dst")) for g in root.iter(f"{NS}g")
            if g.get("class") == "arrow"}


def check(svg, levels, gpa, page_title, offset_bits):
    """``levels``: (level, "hi:lo", index, table gpa, entry gpa) top down, by hand."""
    b = boxes(svg)
    for level, bits, index, table, entry in levels:
        assert b[f"bits-{level}"] == [f"bits {bits}", f"index {index}"], level
        assert f"[{index}] at {entry:#x}" in b[f"table-{level}"], level
        assert b[f"table-{level}"][1] in (f"at {table:#x}", "loaded at MOV CR3"), level
    assert b["offset"][0] == f"bits {offset_bits}"
    assert b["page"][0] == page_title and f"gpa {gpa:#x}" in b["page"]
    chain = ["cr3"] + [f"table-{lv}" for lv, *_ in levels] + ["page"]
    assert set(zip(chain, chain[1:])) | {(f"bits-{lv}", f"table-{lv}") for lv, *_ in levels} \
        | {("offset", "page")} == arrows(svg)


# gva 0x00805123 = 0000 0000 10|00 0000 0101|0001 0010 0011: PDE 2, PTE 5, offset 0x123.
WALK32 = [(2, "31:22", 2, 0x1000, 0x1008), (1, "21:12", 5, 0x2000, 0x2014)]


def world32():
    mem = GuestMemory(0x10000)
    mem.write32(0x1008, 0x2000 | P | W | U)
    mem.write32(0x2014, 0x7000 | P | W | U)
    return mem, CpuState(cr0=PE | PG, cr3=0x1000, cr4=CR4.PSE.bit)


def test_32bit_4k():
    mem, cpu = world32()
    check(walk_svg(mem, cpu, 0x0080_5123), WALK32, 0x7123, "4 KiB page", "11:0")


def test_32bit_4m_pse36():
    # gva 0x00C12345: PDE 3 at 0x100C; PDE 0x01406087 = frame 5 << 22, PSE-36 field 3, PS.
    mem = GuestMemory(0x10000)
    mem.write32(0x100C, 0x0140_6087)
    cpu = CpuState(cr0=PE | PG, cr3=0x1000, cr4=CR4.PSE.bit)
    svg = walk_svg(mem, cpu, 0x00C1_2345)
    check(svg, [(2, "31:22", 3, 0x1000, 0x100C)], 0x3_0141_2345, "4 MiB page", "21:0")
    assert "at 0x301400000" in boxes(svg)["page"]


def test_pae():
    # gva 0x40201ABC = 01|00 0000 001|0 0000 0001|1010 1011 1100: PDPTE 1, PDE 1, PTE 1.
    mem = GuestMemory(0x10000)
    mem.write64(0x1028, 0x2000 | P)
    mem.write64(0x2008, 0x3000 | P | W)
    mem.write64(0x3008, 0x5000 | P | W)
    cpu = CpuState(cr0=PE | PG, cr3=0x1020, cr4=CR4.PAE.bit)
    svg = walk_svg(mem, cpu, 0x4020_1ABC)
    check(svg, [(3, "31:30", 1, 0x1020, 0x1028), (2, "29:21", 1, 0x2000, 0x2008),
                (1, "20:12", 1, 0x3000, 0x3008)], 0x5ABC, "4 KiB page", "11:0")
    assert boxes(svg)["table-3"][:2] == ["PDPTE registers", "loaded at MOV CR3"]


def test_four_level_1g():
    # gva 0x81_4012_3456: bits 47:39 = 1, bits 38:30 = 5, offset bits 29:0 = 0x123456.
    mem = GuestMemory(0x10000)
    mem.write64(0x1008, 0x2000 | P | W | U)
    mem.write64(0x2028, 0x4000_0000 | PS | P | W | U)
    cpu = CpuState(cr0=PE | PG, cr3=0x1000, cr4=CR4.PAE.bit, efer=LONG)
    svg = walk_svg(mem, cpu, 0x81_4012_3456)
    check(svg, [(4, "47:39", 1, 0x1000, 0x1008), (3, "38:30", 5, 0x2000, 0x2028)],
          0x4012_3456, "1 GiB page", "29:0")


def test_five_level():
    # gva 0x3_0000_0000_5ABC: bits 56:48 = 3, 47:21 = 0, 20:12 = 5.
    mem = GuestMemory(0x10000)
    for entry, target in [(0x1018, 0x2000), (0x2000, 0x3000), (0x3000, 0x4000),
                          (0x4000, 0x5000), (0x5028, 0x9000)]:
        mem.write64(entry, target | P | W | U)
    cpu = CpuState(cr0=PE | PG, cr3=0x1000, cr4=CR4.PAE.bit | CR4.LA57.bit, efer=LONG)
    svg = walk_svg(mem, cpu, 0x3_0000_0000_5ABC)
    check(svg, [(5, "56:48", 3, 0x1000, 0x1018), (4, "47:39", 0, 0x2000, 0x2000),
                (3, "38:30", 0, 0x3000, 0x3000), (2, "29:21", 0, 0x4000, 0x4000),
                (1, "20:12", 5, 0x5000, 0x5028)], 0x9ABC, "4 KiB page", "11:0")


def test_fault_box_and_no_side_effect():
    # PTE 5 missing: the walk reads the PDE, then faults not-present (error code 0) at level 1.
    mem = GuestMemory(0x10000)
    mem.write32(0x1008, 0x2000 | P | W | U)
    before = mem.copy()
    cpu = CpuState(cr0=PE | PG, cr3=0x1000)
    b = boxes(walk_svg(mem, cpu, 0x0080_5123))
    assert b["fault"] == ["fault", "vector 14", "error 0x0 (none)", "at level 1"]
    assert "page" not in b and "offset" not in b
    assert mem == before                     # the figure's walk ran on a copy: no A bit set


def test_a_planted_mistake_is_caught():
    """An index field off by one bit must not pass the hand-worked check."""
    fig = walk_figure(*world32(), 0x0080_5123)
    check(render(walk_diagram(fig), "ok"), WALK32, 0x7123, "4 KiB page", "11:0")
    wrong = replace(fig, steps=(replace(fig.steps[0], lo=21), fig.steps[1]))
    with pytest.raises(AssertionError):
        check(render(walk_diagram(wrong), "w"), WALK32, 0x7123, "4 KiB page", "11:0")


def test_bad_input():
    mem = GuestMemory(0x1000)
    with pytest.raises(ValueError, match="paging is off"):
        walk_figure(mem, CpuState(cr0=PE), 0x123)
    with pytest.raises(TypeError):
        walk_figure(b"", CpuState(cr0=PE | PG), 0x123)
    with pytest.raises(TypeError):
        walk_diagram("not a figure")
