"""Role words worked out by hand from the bit positions in kvm_host.h.

Page role bits: level 3:0, has_4_byte_gpte 4, quadrant 6:5, direct 7,
access 10:8, invalid 11, efer_nx 12, cr0_wp 13, smep_andnot_wp 14,
smap_andnot_wp 15, ad_disabled 16, guest_mode 17, passthrough 18, smm 31:24.
Extended role bits: valid 0, execonly 1, cr4_pse 2, cr4_pke 3, cr4_smap 4,
cr4_smep 5, cr4_la57 6, efer_lma 7.
"""

import pytest

from refimpl.host.roles import (
    EXT_ROLE, PAGE_ROLE, CpuRole, ExtRole, PageRole,
    calc_cpu_role, calc_shadow_ept_role, calc_shadow_npt_role,
    calc_shadow_root_role, calc_tdp_root_role,
)

# Register values written out in hex, not through the module's constants.
PE, WP, PG = 0x1, 0x10000, 0x80000000
PSE, PAE, LA57, SMEP, SMAP, PKE = 0x10, 0x20, 0x1000, 0x100000, 0x200000, 0x400000
LME, LMA, NX = 0x100, 0x400, 0x800


def test_layout_positions_match_kvm_host_h():
    assert [(f.name, f.lo, f.hi) for f in PAGE_ROLE] == [
        ("level", 0, 3), ("has_4_byte_gpte", 4, 4), ("quadrant", 5, 6),
        ("direct", 7, 7), ("access", 8, 10), ("invalid", 11, 11),
        ("efer_nx", 12, 12), ("cr0_wp", 13, 13), ("smep_andnot_wp", 14, 14),
        ("smap_andnot_wp", 15, 15), ("ad_disabled", 16, 16), ("guest_mode", 17, 17),
        ("passthrough", 18, 18), ("smm", 24, 31)]
    assert [(f.name, f.lo) for f in EXT_ROLE] == [
        ("valid", 0), ("execonly", 1), ("cr4_pse", 2), ("cr4_pke", 3),
        ("cr4_smap", 4), ("cr4_smep", 5), ("cr4_la57", 6), ("efer_lma", 7)]
    assert PAGE_ROLE.used_mask == 0xFF07FFFF  # bits 23:19 unused


def test_four_level_wp_nx():
    r = calc_cpu_role(PG | WP | PE, PAE, LME | LMA | NX)
    # level 4 -> 0x4; access 7 << 8 -> 0x700; efer_nx 1 << 12 -> 0x1000;
    # cr0_wp 1 << 13 -> 0x2000; has_4_byte_gpte 0.  Sum 0x3704.
    assert r.base.word == 0x3704
    assert (r.base.level, r.base.cr0_wp, r.base.efer_nx, r.base.has_4_byte_gpte) == (4, 1, 1, 0)
    # ext: valid (0x1) | efer_lma (0x80) = 0x81
    assert r.ext.word == 0x81
    assert r.as_u64 == 0x00000081_00003704


def test_five_level_with_pke_and_smep_smap_wp0():
    r = calc_cpu_role(PG | PE, PAE | LA57 | PKE | SMEP | SMAP, LME | LMA)
    # level 5 (0x5) | access 0x700 | smep_andnot_wp 0x4000 | smap_andnot_wp 0x8000
    assert r.base.word == 0xC705
    # valid 0x1 | cr4_pke 0x8 | cr4_smap 0x10 | cr4_smep 0x20 | cr4_la57 0x40 | lma 0x80
    assert r.ext.word == 0xF9


def test_32bit_guest():
    r = calc_cpu_role(PG | WP | PE, PSE, 0)
    # level 2 -> 0x2; has_4_byte_gpte 0x10; access 0x700; cr0_wp 0x2000 -> 0x2712
    assert r.base.word == 0x2712
    # valid 0x1 | cr4_pse 0x4
    assert r.ext.word == 0x5


def test_pae_guest():
    r = calc_cpu_role(PG | WP | PE, PAE, NX)
    # level 3 | access 0x700 | efer_nx 0x1000 | cr0_wp 0x2000 -> 0x3703
    assert r.base.word == 0x3703
    assert r.ext.word == 0x1


def test_paging_off_is_direct():
    r = calc_cpu_role(PE | WP, PAE | SMEP, NX)  # PG=0: WP, PAE, NX all ignored
    # direct 0x80 | access 0x700 -> 0x780, level 0
    assert r.base.word == 0x780
    assert r.ext.word == 0x1
    assert not r.paging


def test_pke_la57_only_count_in_long_mode():
    r = calc_cpu_role(PG | PE, PAE | PKE | LA57, 0)  # PAE, not long mode
    assert r.base.level == 3
    assert r.ext.cr4_pke == 0 and r.ext.cr4_la57 == 0


def test_smm_and_guest_mode_bits():
    r = calc_cpu_role(PG | WP | PE, PAE, LME | LMA | NX, smm=True, guest_mode=True)
    # 0x3704 | guest_mode 0x20000 | smm 1 << 24
    assert r.base.word == 0x01023704


def test_shadow_root_role_of_32bit_guest():
    root = calc_shadow_root_role(calc_cpu_role(PG | WP | PE, 0, 0))
    # level raised 2 -> 3; efer_nx forced 1; has_4_byte_gpte kept:
    # 0x3 | 0x10 | 0x700 | 0x1000 | 0x2000 = 0x3713
    assert root.word == 0x3713
    assert (root.level, root.efer_nx) == (3, 1)


def test_shadow_root_role_of_paging_off_guest():
    root = calc_shadow_root_role(calc_cpu_role(PE, 0, 0))
    # 0x780 with level 3 and efer_nx: 0x3 | 0x780 | 0x1000 = 0x1783
    assert root.word == 0x1783


def test_shadow_root_keeps_64bit_level():
    root = calc_shadow_root_role(calc_cpu_role(PG | PE, PAE, LME | LMA))
    # level 4, access 0x700, efer_nx forced 0x1000, cr0_wp 0 -> 0x1704
    assert root.word == 0x1704


@pytest.mark.parametrize("cr0,cr4,efer", [
    (PG | WP | PE, PAE, LME | LMA | NX),
    (PG | PE, 0, 0),
    (PE, 0, 0),
    (PG | PE, PAE | SMEP | SMAP | PKE, NX),
])
def test_tdp_root_role_ignores_cr0_cr4_efer(cr0, cr4, efer):
    root = calc_tdp_root_role(calc_cpu_role(cr0, cr4, efer), tdp_level=4)
    # level 4 | direct 0x80 | access 0x700 | efer_nx 0x1000 | cr0_wp 0x2000
    assert root.word == 0x3784


def test_tdp_root_role_copies_smm_guest_mode_and_ad():
    r = calc_cpu_role(PG | PE, PAE, LMA | LME, smm=True, guest_mode=True)
    root = calc_tdp_root_role(r, tdp_level=5, ad_enabled=False)
    # 0x3785 | ad_disabled 0x10000 | guest_mode 0x20000 | smm 0x01000000
    assert root.word == 0x01033785


def test_shadow_ept_role():
    r = calc_shadow_ept_role(level=4, accessed_dirty=False, execonly=True)
    # level 4 | access 0x700 | ad_disabled 0x10000 | guest_mode 0x20000
    assert r.base.word == 0x30704
    assert r.ext.word == 0x3  # valid | execonly
    with pytest.raises(ValueError, match="smm"):
        calc_shadow_ept_role(smm=True)


def test_shadow_npt_role_passthrough():
    cpu, root = calc_shadow_npt_role(PAE | PKE, LME | LMA | NX, tdp_level=5)
    # CR0 = PG only, so cr0_wp = 0: level 4 | 0x700 | efer_nx 0x1000 | guest_mode 0x20000
    assert cpu.base.word == 0x21704
    assert cpu.ext.cr4_pke == 0  # PKE dropped
    # root: level 5 and passthrough 0x40000
    assert root.word == 0x61705


def test_round_trip_and_bad_words():
    r = calc_cpu_role(PG | WP | PE, PAE, LME | LMA | NX)
    assert CpuRole.from_u64(r.as_u64) == r
    with pytest.raises(ValueError, match="unused bits"):
        PageRole.from_word(1 << 20)
    with pytest.raises(ValueError, match="unused bits"):
        ExtRole.from_word(1 << 8)
    with pytest.raises(ValueError, match="level"):
        PageRole(level=16)


@pytest.mark.parametrize("kwargs,match", [
    (dict(cr0=1 << 6, cr4=0, efer=0), "cr0"),
    (dict(cr0=0, cr4=1 << 15, efer=0), "cr4"),
    (dict(cr0=0, cr4=0, efer=1 << 1), "efer"),
    (dict(cr0=PE, cr4=PAE, efer=LME | LMA), "LMA"),
    (dict(cr0=-1, cr4=0, efer=0), "cr0"),
])
def test_bad_registers(kwargs, match):
    with pytest.raises(ValueError, match=match):
        calc_cpu_role(**kwargs)


def test_bad_types():
    with pytest.raises(TypeError, match="cr0"):
        calc_cpu_role("0", 0, 0)
    with pytest.raises(TypeError, match="smm"):
        calc_cpu_role(0, 0, 0, smm=2)
    with pytest.raises(ValueError, match="tdp_level"):
        calc_tdp_root_role(calc_cpu_role(0, 0, 0), tdp_level=3)
    with pytest.raises(TypeError, match="cpu_role"):
        calc_shadow_root_role(0x3704)


# ---------------------------------------------------------------------------
# The register bits and ACC masks roles.py derives from refimpl.guest.formats:
# each is pinned here to its SDM position (CR0: WP 16, PG 31; CR4: PSE 4,
# PAE 5, LA57 12, SMEP 20, SMAP 21, PKE 22; EFER: LME 8, LMA 10, NXE 11) and
# to spte.h for ACC (EXEC 1, WRITE = PT_WRITABLE_MASK 1 << 1, USER =
# PT_USER_MASK 1 << 2), so a swap in either module is caught.
# ---------------------------------------------------------------------------

from refimpl.host import roles as _roles  # noqa: E402

SDM_BITS = {
    "CR0_PG": 31, "CR0_WP": 16,
    "CR4_PSE": 4, "CR4_PAE": 5, "CR4_LA57": 12, "CR4_SMEP": 20, "CR4_SMAP": 21, "CR4_PKE": 22,
    "EFER_LME": 8, "EFER_LMA": 10, "EFER_NX": 11,
}


def test_register_bits_are_the_sdm_positions():
    assert {name: getattr(_roles, name) for name in SDM_BITS} == {
        name: 1 << bit for name, bit in SDM_BITS.items()}


def test_acc_masks_are_spte_h():
    assert (_roles.ACC_EXEC_MASK, _roles.ACC_WRITE_MASK, _roles.ACC_USER_MASK,
            _roles.ACC_ALL) == (1, 2, 4, 7)


def _fields_set(role):
    """Names of the role fields that are non-zero, base and extended."""
    return ({f.name for f in PAGE_ROLE if getattr(role.base, f.name)}
            | {"ext." + f.name for f in EXT_ROLE if getattr(role.ext, f.name)})


def _single_bit_effects():
    """For each CR4/EFER/CR0 bit, the role fields it turns on by itself,
    on top of a long-mode guest with CR0.WP=0 (so SMEP/SMAP show in both the
    base and the extended role)."""
    base = (PG | PE, PAE, LME | LMA)
    before = _fields_set(calc_cpu_role(*base))
    extra = {"CR0.WP": (WP, 0, 0), "CR4.PSE": (0, PSE, 0), "CR4.LA57": (0, LA57, 0),
             "CR4.SMEP": (0, SMEP, 0), "CR4.SMAP": (0, SMAP, 0), "CR4.PKE": (0, PKE, 0),
             "EFER.NX": (0, 0, NX)}
    out = {}
    for name, (c0, c4, ef) in extra.items():
        role = calc_cpu_role(base[0] | c0, base[1] | c4, base[2] | ef)
        out[name] = _fields_set(role) ^ before
    return out


# Worked out from kvm_calc_cpu_role: which role bits each register bit sets.
EXPECTED_EFFECTS = {
    "CR0.WP": {"cr0_wp"},
    "CR4.PSE": {"ext.cr4_pse"},
    "CR4.LA57": {"ext.cr4_la57"},   # level 4 -> 5 changes "level" too, below
    "CR4.SMEP": {"smep_andnot_wp", "ext.cr4_smep"},
    "CR4.SMAP": {"smap_andnot_wp", "ext.cr4_smap"},
    "CR4.PKE": {"ext.cr4_pke"},
    "EFER.NX": {"efer_nx"},
}


def test_each_register_bit_sets_its_own_role_bits():
    assert _single_bit_effects() == EXPECTED_EFFECTS
    assert calc_cpu_role(PG | PE, PAE | LA57, LME | LMA).base.level == 5


def test_a_swap_of_two_register_bits_is_caught(monkeypatch):
    # Plant the mistake the derived constants prevent: SMEP and SMAP swapped.
    monkeypatch.setattr(_roles, "CR4_SMEP", _roles.CR4_SMAP)
    monkeypatch.setattr(_roles, "CR4_SMAP", SMEP)
    got = _single_bit_effects()
    assert got != EXPECTED_EFFECTS
    assert got["CR4.SMEP"] == {"smap_andnot_wp", "ext.cr4_smap"}
    assert {name: getattr(_roles, name) for name in SDM_BITS} != {
        name: 1 << bit for name, bit in SDM_BITS.items()}
