"""The quadrant figure: expectations worked out by hand from the address bits.

A 32-bit gva splits as PDE index 31:22 and PTE index 21:12. KVM's PAE
shadow splits it as PAE root entry 31:30 (= the shadow PD's quadrant), shadow
PDE 29:21 and shadow PTE 20:12; the shadow PT's quadrant is the parity of the
shadow PDE index, i.e. gva bit 21 (``kvm_mmu_child_role`` in mmu.c).
"""

from __future__ import annotations

import pytest

import refimpl.host.shadow_mmu as shadow_mmu
from refimpl.viz.quadrants import quadrant_diagram, quadrant_path, quadrant_svg

# gva: (guest PDE, guest PTE, PD quadrant, shadow PDE, PT quadrant, shadow PTE)
HAND = {
    0x0000_0000: (0, 0, 0, 0, 0, 0),
    0xC000_0000: (768, 0, 3, 0, 0, 0),          # 0b11 << 30: the kernel's 3 GiB split
    0xC025_8000: (768, 600, 3, 1, 1, 88),       # bit 21 set: second half, PTE 600 - 512
    0x7FE0_3000: (511, 515, 1, 511, 1, 3),      # last PDE of quadrant 1
    0x4020_0000: (256, 512, 1, 1, 1, 0),        # 1 GiB + 2 MiB
    0xFFFF_F000: (1023, 1023, 3, 511, 1, 511),
}


@pytest.mark.parametrize("gva", sorted(HAND), ids=hex)
def test_the_path_matches_the_address_bits_worked_by_hand(gva):
    p = quadrant_path(gva)
    got = (p.guest_pde, p.guest_pte, p.pd_quadrant, p.shadow_pde, p.pt_quadrant, p.shadow_pte)
    assert got == HAND[gva]
    assert p.pd_quadrants == (0, 1, 2, 3)      # all four PDs exist once the root is loaded
    assert p.pt_quadrants == (HAND[gva][4],)   # only the PT half that was touched


def test_the_figure_highlights_the_path_and_dashes_the_unbuilt_half():
    d = quadrant_diagram(0xC025_8000)
    styles = {b.key: b.style for b in d.boxes}
    assert [k for k, s in styles.items() if s == "used"] == ["gpd3", "spd3", "spt1", "gpt1"]
    assert styles["spt0"] == "absent"
    assert ("spd3", "SPTE 1: bit 21 = 1", "spt1") in d.edges()
    assert {("gpd%d" % q, "covers", "spd%d" % q) for q in range(4)} <= d.edges()
    svg = quadrant_svg(0xC025_8000)
    assert svg.startswith("<svg") and "shadow PD, quadrant 3" in svg and "SPTE 88" in svg


def test_a_planted_wrong_child_quadrant_is_caught(monkeypatch):
    """If the child quadrant came from the wrong PDE bit, the hand values catch it."""
    real = shadow_mmu.kvm_mmu_child_role

    def wrong(parent, index, direct, access):
        role = real(parent, index, direct, access)
        return role.replace(quadrant=(index >> 1) & 1) if role.has_4_byte_gpte else role

    monkeypatch.setattr(shadow_mmu, "kvm_mmu_child_role", wrong)
    # gva 0xC0258000: shadow PDE 1, so bit 1 of the index is 0, not bit 21 = 1.
    # The shadow PT then shadows the wrong half of the guest PT: the walk
    # no longer reaches a present leaf, or finds it in the wrong quadrant.
    try:
        p = quadrant_path(0xC025_8000)
    except AssertionError:
        return
    assert (p.pt_quadrant, p.shadow_pte) != HAND[0xC025_8000][4:]


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), (1 << 32, ValueError),
                                      ("0x1000", TypeError), (True, TypeError)])
def test_bad_gva_is_refused(bad, exc):
    with pytest.raises(exc, match="gva"):
        quadrant_path(bad)


def test_a_path_record_refuses_out_of_range_fields():
    good = quadrant_path(0xC025_8000)
    fields = {f: getattr(good, f) for f in good.__dataclass_fields__}
    with pytest.raises(ValueError, match="pt_quadrant"):
        type(good)(**{**fields, "pt_quadrant": 2})
    with pytest.raises(TypeError, match="shadow_pte"):
        type(good)(**{**fields, "shadow_pte": "88"})


@pytest.mark.parametrize("gva", [0, 0xFFFF_F000], ids=hex)
def test_every_box_fits_on_the_canvas(gva):
    d = quadrant_diagram(gva)
    assert all(0 <= b.x and b.x + b.w <= d.width and 0 <= b.y and b.y + b.h <= d.height
               for b in d.boxes)
