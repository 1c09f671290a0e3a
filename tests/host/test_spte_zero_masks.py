"""The SPTE zero checks of :mod:`refimpl.host.spte`, worked out by hand from KVM.

``reset_tdp_shadow_zero_bits_mask``, ``reset_shadow_zero_bits_mask`` and
``reset_ept_shadow_zero_bits_mask`` (``arch/x86/kvm/mmu/mmu.c``, read in
kvm-x86/linux at 8cd6d6724eae and torvalds/linux at 56ea38e436ea) feed
``__reset_rsvds_bits_mask(_ept)`` with the *host* MAXPHYADDR
(``reserved_hpa_bits()`` is ``rsvd_bits(shadow_phys_bits, 63)``) and fixed
flags, then adjust for memory encryption. The expected masks below are
written from those lines with this file's own ``rsvd_bits``; none is
computed by the code under test.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from refimpl.guest.rsvd import RsvdBitsValidate
from refimpl.host import spte as S


def rsvd_bits(s: int, e: int) -> int:
    """mmu.h's rsvd_bits: bits s..e inclusive, 0 when e < s."""
    return 0 if e < s else ((2 << (e - s)) - 1) << s


B7, B8, B63 = rsvd_bits(7, 7), rsvd_bits(8, 8), rsvd_bits(63, 63)
BAD_MT_XWR = {False: 0xFF54_5454_FFFF_5454, True: 0xFF44_4444_FFFF_4444}


def rows(r0, r1):
    return (tuple(r0), tuple(r1))


def npt_expected(phys, root_level, gbpages=True, nx=True):
    """__reset_rsvds_bits_mask(hpa bits, level, nx, gbpages, pse=false, amd=true)."""
    if root_level == 3:
        high = rsvd_bits(phys, 62) | (0 if nx else B63)
        pdpte = B63 | high | rsvd_bits(5, 8) | rsvd_bits(1, 2)
        return rows([high, high, pdpte, 0, 0], [high, high | rsvd_bits(13, 20), 0, 0, 0])
    high = rsvd_bits(phys, 51) | (0 if nx else B63)
    gb = 0 if gbpages else B7
    top = high | B8 | B7                  # amd=true: bit 8 of PML4Es/PML5Es
    l5 = top if root_level == 5 else 0
    return rows([high, high, high | gb, top, l5],
                [high, high | rsvd_bits(13, 20), high | gb | rsvd_bits(13, 29), top, l5])


def ept_expected(phys, huge_page_level=3):
    """__reset_rsvds_bits_mask_ept(hpa bits, execonly, huge_page_level)."""
    high = rsvd_bits(phys, 51)
    g1 = B7 if huge_page_level < 3 else 0
    m2 = B7 if huge_page_level < 2 else 0
    top = high | rsvd_bits(3, 7)
    return rows([high, high | rsvd_bits(3, 6) | m2, high | rsvd_bits(3, 6) | g1, top, top],
                [high, high | rsvd_bits(12, 20) | m2, high | rsvd_bits(12, 29) | g1, top, top])


def assert_masks(got: RsvdBitsValidate, want):
    bad = [f"[{b}][{lv + 1}] got {got.rsvd_bits_mask[b][lv]:#x} want {want[b][lv]:#x}"
           for b in (0, 1) for lv in range(5) if got.rsvd_bits_mask[b][lv] != want[b][lv]]
    assert not bad, bad


# --- reset_tdp_shadow_zero_bits_mask ---------------------------------------------------

TDP_CASES = [
    # (id, format, kwargs, expected rows, bad_mt_xwr)
    ("ept-46", S.ept_format(phys_bits=46), dict(root_level=4), ept_expected(46), BAD_MT_XWR[False]),
    ("ept-52-5lvl", S.ept_format(phys_bits=52), dict(root_level=5), ept_expected(52), BAD_MT_XWR[False]),
    ("ept-46-no1g", S.ept_format(phys_bits=46), dict(root_level=4, huge_page_level=2),
     ept_expected(46, 2), BAD_MT_XWR[False]),
    # execute-only support of the host does not matter: the TDP check passes false.
    ("ept-39-noexeconly", S.ept_format(phys_bits=39, has_exec_only=False), dict(root_level=4),
     ept_expected(39), BAD_MT_XWR[False]),
    ("npt-48", S.x86_format(phys_bits=48), dict(root_level=4), npt_expected(48, 4), 0),
    ("npt-52-5lvl", S.x86_format(phys_bits=52), dict(root_level=5), npt_expected(52, 5), 0),
    ("npt-43-nogb", S.x86_format(phys_bits=43), dict(root_level=4, gbpages=False),
     npt_expected(43, 4, gbpages=False), 0),
    ("npt-40-pae", S.x86_format(phys_bits=40), dict(root_level=3), npt_expected(40, 3), 0),
]


@pytest.mark.parametrize("fmt, kw, want, bad_mt", [c[1:] for c in TDP_CASES],
                         ids=[c[0] for c in TDP_CASES])
def test_tdp_zero_check(fmt, kw, want, bad_mt):
    got = S.tdp_shadow_zero_check(fmt, **kw)
    assert_masks(got, want)
    assert got.bad_mt_xwr == bad_mt


def test_tdp_literals():
    npt = S.tdp_shadow_zero_check(S.x86_format(phys_bits=48), 4).rsvd_bits_mask
    assert npt[0][3] == 0x000F_0000_0000_0180          # bits 51:48, 8, 7
    assert npt[0][2] == 0x000F_0000_0000_0000          # no bit 8 in a PDPTE (5ecad245de2a)
    assert npt[1][2] == 0x000F_0000_3FFF_E000
    ept = S.tdp_shadow_zero_check(S.ept_format(phys_bits=46)).rsvd_bits_mask
    assert ept[0][3] == 0x000F_C000_0000_00F8 and ept[1][1] == 0x000F_C000_001F_F000


def test_npt_sptes_may_use_nx():
    # nx=true: KVM sets NX in NPT SPTEs (NX huge pages), so bit 63 is not reserved.
    z = S.tdp_shadow_zero_check(S.x86_format(phys_bits=48), 4)
    for level in (1, 2, 3, 4):
        assert not z.is_rsvd_bits_set(B63 | 1, level)


# --- reset_shadow_zero_bits_mask --------------------------------------------------------

SHADOW = S.x86_format(phys_bits=46, tdp=False)
SHADOW_CASES = [
    ("pae", dict(root_level=3), npt_expected(46, 3)),
    ("4lvl", dict(root_level=4), npt_expected(46, 4)),
    ("5lvl", dict(root_level=5), npt_expected(46, 5)),
    ("4lvl-guest-nogb", dict(root_level=4, gbpages=False), npt_expected(46, 4, gbpages=False)),
    # The shadow of L1's NPT with L1's EFER.NX=0 (kvm_init_shadow_npt_mmu).
    ("4lvl-npt-nonx", dict(root_level=4, nx=False), npt_expected(46, 4, nx=False)),
    ("pae-npt-nonx", dict(root_level=3, nx=False), npt_expected(46, 3, nx=False)),
]


@pytest.mark.parametrize("kw, want", [c[1:] for c in SHADOW_CASES], ids=[c[0] for c in SHADOW_CASES])
def test_shadow_zero_check(kw, want):
    got = S.shadow_zero_check_for(SHADOW, **kw)
    assert_masks(got, want)
    assert got.bad_mt_xwr == 0


def test_shadow_zero_check_literals():
    pae = S.shadow_zero_check_for(SHADOW, 3).rsvd_bits_mask
    assert pae[0][2] == 0xFFFF_C000_0000_01E6 and pae[0][0] == 0x7FFF_C000_0000_0000
    nonx = S.shadow_zero_check_for(SHADOW, 4, nx=False).rsvd_bits_mask
    assert nonx[0][0] == 0x800F_C000_0000_0000


def test_shadow_zero_check_refuses_two_level_roots_and_ept():
    with pytest.raises(ValueError, match="root_level"):
        S.shadow_zero_check_for(SHADOW, 2)
    with pytest.raises(ValueError, match="x86"):
        S.shadow_zero_check_for(S.ept_format(), 4)


# --- memory encryption (shadow_me_mask / shadow_me_value) ---------------------------------

def test_shadow_me_mask_reserved_unless_in_me_value():
    # SME: value == mask, so the C-bit is allowed; a key-ID mask with value 0 is reserved
    # at every level of the root and left alone above it.
    c_bit = 1 << 44
    fmt = dataclasses.replace(SHADOW, me_mask=c_bit)
    sme = S.shadow_zero_check_for(fmt, 4)
    assert_masks(sme, npt_expected(46, 4))
    keyid = S.shadow_zero_check_for(fmt, 4, me_value=0)
    base = npt_expected(46, 4)
    assert_masks(keyid, rows([m | c_bit if i < 4 else m for i, m in enumerate(base[0])],
                             [m | c_bit if i < 4 else m for i, m in enumerate(base[1])]))
    with pytest.raises(ValueError, match="me_value"):
        S.shadow_zero_check_for(fmt, 4, me_value=1 << 45)


def test_tdp_me_mask_is_freed_below_the_root_only():
    me = 1 << 47                                        # a reserved host-address bit
    fmt = dataclasses.replace(S.ept_format(phys_bits=46), me_mask=me)
    got = S.tdp_shadow_zero_check(fmt, 4)
    base = ept_expected(46)
    assert_masks(got, rows([m & ~me if i < 4 else m for i, m in enumerate(base[0])],
                           [m & ~me if i < 4 else m for i, m in enumerate(base[1])]))
    assert got.rsvd_bits_mask[0][4] & me                # level 5: not a level of this root


# --- reset_ept_shadow_zero_bits_mask ------------------------------------------------------

@pytest.mark.parametrize("execonly", [False, True])
@pytest.mark.parametrize("huge", [2, 3])
def test_ept_shadow_zero_check(execonly, huge):
    got = S.ept_shadow_zero_check(S.ept_format(phys_bits=46), execonly=execonly,
                                  huge_page_level=huge)
    assert_masks(got, ept_expected(46, huge))
    assert got.bad_mt_xwr == BAD_MT_XWR[execonly]
    with pytest.raises(ValueError, match="EPT"):
        S.ept_shadow_zero_check(SHADOW, execonly=execonly)


# --- is_rsvd_spte ---------------------------------------------------------------------

def _ept_bad(e, execonly):
    mt, xwr = (e >> 3) & 7, e & 7
    return mt in (2, 3, 7) or xwr in (2, 6) or (xwr == 4 and not execonly)


@pytest.mark.parametrize("case", [c[0] for c in TDP_CASES])
def test_is_rsvd_spte_is_the_or_of_the_mask_and_bad_mt_xwr(case):
    _, fmt, kw, want, bad_mt = next(c for c in TDP_CASES if c[0] == case)
    z = S.tdp_shadow_zero_check(fmt, **kw)
    rng = random.Random(f"zero-{case}")
    hits = 0
    for _ in range(300):
        level = rng.randint(1, kw["root_level"])
        spte = rng.getrandbits(64)
        if rng.random() < 0.5:
            spte &= ~(want[0][level - 1] | want[1][level - 1])
        expect = bool(spte & want[(spte >> 7) & 1][level - 1]) or (
            bool(bad_mt) and _ept_bad(spte, False))
        assert S.is_rsvd_spte(z, spte, level) == expect, (level, hex(spte))
        hits += expect
    assert 30 < hits < 270


def test_sptes_that_make_spte_builds_pass_the_zero_check():
    # make_spte flags rsvd_violation (KVM WARNs); a correct mask never flags a correct SPTE.
    rng = random.Random("make-spte")
    for fmt in (S.ept_format(phys_bits=46), S.x86_format(phys_bits=46),
                S.x86_format(phys_bits=46, tdp=False)):
        zero = (S.tdp_shadow_zero_check(fmt, 4) if fmt.tdp
                else S.shadow_zero_check_for(fmt, 4))
        for _ in range(200):
            level = rng.randint(1, 3)
            pfn = rng.getrandbits(46 - 12) & ~((1 << 9 * (level - 1)) - 1)
            access = 7 if fmt.tdp else rng.randint(0, 7)        # TDP maps with ACC_ALL
            r = S.make_spte(fmt, pte_access=access, level=level, gfn=pfn, pfn=pfn,
                            shadow_zero_check=zero)
            assert not r.rsvd_violation, (fmt.name, level, hex(r.spte))
