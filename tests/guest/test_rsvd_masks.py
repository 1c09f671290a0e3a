"""Every reserved-bit mask of :mod:`refimpl.guest.rsvd`, worked out by hand from KVM.

The expected masks are written below as unions of ``rsvd_bits(lo, hi)``,
this file's own copy of the helper in ``arch/x86/kvm/mmu.h`` (bits lo..hi,
0 when hi < lo). Each row of the tables restates one assignment of
``__reset_rsvds_bits_mask`` or ``__reset_rsvds_bits_mask_ept``
(``arch/x86/kvm/mmu/mmu.c``, read in kvm-x86/linux at 8cd6d6724eae and
torvalds/linux at 56ea38e436ea); nothing here is computed by the code under
test. A slot is ``[bit 7][level - 1]`` as in ``rsvd_bits_mask``.

Then property tests: a random entry with a bit of the expected mask set
makes :func:`refimpl.guest.walker.translate` fault with RSVD (error code bit
3), one without does not; and two planted mistakes (the pre-2020 AMD bit 8 of
PDPTEs, a 2 MiB mask off by one bit) are caught by the same comparison.
"""

from __future__ import annotations

import random

import pytest

from refimpl.guest import rsvd as R
from refimpl.guest.cpu import CpuState
from refimpl.guest.formats import CR0, CR4, EFER
from refimpl.guest.memory import GuestMemory
from refimpl.guest.walker import translate


def rsvd_bits(s: int, e: int) -> int:
    """mmu.h's rsvd_bits: bits s..e inclusive, 0 when e < s."""
    return 0 if e < s else ((2 << (e - s)) - 1) << s


B7, B8, B63 = rsvd_bits(7, 7), rsvd_bits(8, 8), rsvd_bits(63, 63)


def table(row0, row1):
    """Two rows of five slots, level 1 first, as ``rsvd_bits_mask`` stores them."""
    return (tuple(row0), tuple(row1))


# ---------------------------------------------------------------------------
# x86 formats: __reset_rsvds_bits_mask
# ---------------------------------------------------------------------------

def x86_expected(*, root_level, maxphyaddr, nx, gbpages, pse, amd, pse36=True):
    """The hand derivation, one source line per assignment.

    Kept deliberately literal: ``high`` is ``pa_bits_rsvd & rsvd_bits(0, 62)``
    for PAE and ``& rsvd_bits(0, 51)`` otherwise, i.e. ``rsvd_bits(M, 62)``
    or ``rsvd_bits(M, 51)``; ``!nx`` adds bit 63.
    """
    z = [0] * 5
    if root_level == 2:
        # case PT32_ROOT_LEVEL: [0][1] = [0][0] = [1][0] = 0;
        # [1][1] = 0 without pse, rsvd_bits(17, 21) with PSE-36, else (13, 21).
        big = 0 if not pse else (rsvd_bits(17, 21) if pse36 else rsvd_bits(13, 21))
        return table(z, [0, big, 0, 0, 0])
    high = rsvd_bits(maxphyaddr, 62 if root_level == 3 else 51) | (0 if nx else B63)
    gb = 0 if gbpages else B7
    bit8 = B8 if amd else 0
    if root_level == 3:
        # case PT32E_ROOT_LEVEL
        pdpte = B63 | high | rsvd_bits(5, 8) | rsvd_bits(1, 2)
        return table([high, high, pdpte, 0, 0], [high, high | rsvd_bits(13, 20), 0, 0, 0])
    l5 = high | bit8 | B7 if root_level == 5 else 0        # case PT64_ROOT_5LEVEL
    l4 = high | bit8 | B7                                   # case PT64_ROOT_4LEVEL
    return table([high, high, high | gb, l4, l5],
                 [high, high | rsvd_bits(13, 20), high | gb | rsvd_bits(13, 29), l4, l5])


# Configurations: (id, arguments). Every mode, vendor and option the brief
# names; two MAXPHYADDRs per mode (one that reserves bits, 52 that does not).
X86_CONFIGS = [
    ("32bit-nopse", dict(root_level=2, maxphyaddr=36, nx=True, gbpages=True, pse=False, amd=False)),
    ("32bit-pse36", dict(root_level=2, maxphyaddr=36, nx=True, gbpages=True, pse=True, amd=False)),
    ("32bit-pse36-M40-nonx", dict(root_level=2, maxphyaddr=40, nx=False, gbpages=False, pse=True, amd=True)),
    ("32bit-pse-no36", dict(root_level=2, maxphyaddr=36, nx=True, gbpages=True, pse=True, amd=False,
                            pse36=False)),
    ("pae-M36", dict(root_level=3, maxphyaddr=36, nx=True, gbpages=True, pse=False, amd=False)),
    ("pae-M36-nonx", dict(root_level=3, maxphyaddr=36, nx=False, gbpages=True, pse=False, amd=False)),
    ("pae-M52", dict(root_level=3, maxphyaddr=52, nx=True, gbpages=True, pse=False, amd=False)),
    ("pae-M40-amd-nogb", dict(root_level=3, maxphyaddr=40, nx=True, gbpages=False, pse=True, amd=True)),
    ("4lvl-M46", dict(root_level=4, maxphyaddr=46, nx=True, gbpages=True, pse=False, amd=False)),
    ("4lvl-M46-amd", dict(root_level=4, maxphyaddr=46, nx=True, gbpages=True, pse=False, amd=True)),
    ("4lvl-M46-nogb", dict(root_level=4, maxphyaddr=46, nx=True, gbpages=False, pse=False, amd=False)),
    ("4lvl-M46-nonx", dict(root_level=4, maxphyaddr=46, nx=False, gbpages=True, pse=False, amd=False)),
    ("4lvl-M52", dict(root_level=4, maxphyaddr=52, nx=True, gbpages=True, pse=True, amd=False)),
    ("4lvl-M32-amd-nonx-nogb", dict(root_level=4, maxphyaddr=32, nx=False, gbpages=False, pse=False,
                                    amd=True)),
    ("5lvl-M52", dict(root_level=5, maxphyaddr=52, nx=True, gbpages=True, pse=False, amd=False)),
    ("5lvl-M40-amd-nonx-nogb", dict(root_level=5, maxphyaddr=40, nx=False, gbpages=False, pse=False,
                                    amd=True)),
    ("5lvl-M46-amd", dict(root_level=5, maxphyaddr=46, nx=True, gbpages=True, pse=False, amd=True)),
]

# A few slots spelled out as literals, so the derivation above is itself checked
# against numbers read off the source by eye.
LITERALS = [
    ("32bit-pse36", 1, 2, 0x0000_0000_003E_0000),
    ("32bit-pse-no36", 1, 2, 0x0000_0000_003F_E000),
    ("pae-M36", 0, 3, 0xFFFF_FFF0_0000_01E6),
    ("pae-M36", 0, 1, 0x7FFF_FFF0_0000_0000),
    ("pae-M36-nonx", 0, 1, 0xFFFF_FFF0_0000_0000),
    ("pae-M52", 0, 3, 0xFFF0_0000_0000_01E6),
    ("4lvl-M46", 0, 4, 0x000F_C000_0000_0080),
    ("4lvl-M46-amd", 0, 4, 0x000F_C000_0000_0180),
    ("4lvl-M46-amd", 0, 3, 0x000F_C000_0000_0000),
    ("4lvl-M46", 1, 3, 0x000F_C000_3FFF_E000),
    ("4lvl-M46", 1, 2, 0x000F_C000_001F_E000),
    ("4lvl-M46-nogb", 0, 3, 0x000F_C000_0000_0080),
    ("4lvl-M46-nonx", 0, 1, 0x800F_C000_0000_0000),
    ("4lvl-M52", 0, 1, 0),
    ("5lvl-M46-amd", 1, 5, 0x000F_C000_0000_0180),
]

_BY_ID = dict(X86_CONFIGS)


def _slots():
    for name, kw in X86_CONFIGS:
        exp = x86_expected(**kw)
        for b in (0, 1):
            for level in range(1, 6):
                yield pytest.param(kw, b, level, exp[b][level - 1], id=f"{name}-[{b}][{level}]")


def mismatches(actual: R.RsvdBitsValidate, expected) -> list[str]:
    """Slots whose mask differs, as ``[bit7][level]: got/want`` strings."""
    return [f"[{b}][{lv + 1}]: got {actual.rsvd_bits_mask[b][lv]:#x}, want {expected[b][lv]:#x}"
            for b in (0, 1) for lv in range(5)
            if actual.rsvd_bits_mask[b][lv] != expected[b][lv]]


@pytest.mark.parametrize("kw, bit7, level, want", list(_slots()))
def test_x86_mask_slot(kw, bit7, level, want):
    got = R.reset_rsvds_bits_mask(**kw).rsvd_bits_mask[bit7][level - 1]
    assert got == want, f"[{bit7}][{level}]: got {got:#x}, want {want:#x}"


@pytest.mark.parametrize("name, bit7, level, literal", LITERALS,
                         ids=[f"{n}-[{b}][{lv}]" for n, b, lv, _ in LITERALS])
def test_hand_derivation_matches_literals(name, bit7, level, literal):
    assert x86_expected(**_BY_ID[name])[bit7][level - 1] == literal
    assert R.reset_rsvds_bits_mask(**_BY_ID[name]).rsvd_bits_mask[bit7][level - 1] == literal


def test_x86_masks_have_no_bad_mt_xwr():
    for _, kw in X86_CONFIGS:
        assert R.reset_rsvds_bits_mask(**kw).bad_mt_xwr == 0


def test_amd_bit8_is_reserved_in_pml4e_and_pml5e_but_not_in_pdpte():
    # 5ecad245de2a: AMD ignores bit 8 of PDPTEs; KVM reserved it before 2020.
    amd = R.reset_rsvds_bits_mask(root_level=5, maxphyaddr=52, nx=True, gbpages=True, pse=False,
                                  amd=True)
    assert amd.is_rsvd_bits_set(B8 | 1, 5) and amd.is_rsvd_bits_set(B8 | 1, 4)
    assert not amd.is_rsvd_bits_set(B8 | 1, 3)                 # PDPTE -> page directory
    assert not amd.is_rsvd_bits_set(B8 | B7 | 1, 3)            # 1 GiB page: G bit
    intel = R.reset_rsvds_bits_mask(root_level=5, maxphyaddr=52, nx=True, gbpages=True, pse=False)
    assert not intel.is_rsvd_bits_set(B8 | 1, 4)


def test_pdptes_checked_on_cr3_load_equal_the_pae_pdpte_slot():
    # load_pdptrs: reserved_gpa_bits | rsvd_bits(5, 8) | rsvd_bits(1, 2).
    for m in (32, 36, 40, 46, 52):
        want = rsvd_bits(m, 63) | rsvd_bits(5, 8) | rsvd_bits(1, 2)
        assert R.pdpte_rsvd_mask(m) == want
        for nx in (False, True):
            pae = R.reset_rsvds_bits_mask(root_level=3, maxphyaddr=m, nx=nx, gbpages=True, pse=False)
            assert pae.rsvd_bits_mask[0][2] == want


def test_pa_bits_rsvd_is_reserved_gpa_bits():
    assert R.pa_bits_rsvd(36) == rsvd_bits(36, 63) == 0xFFFF_FFF0_0000_0000
    assert R.pa_bits_rsvd(52) == 0xFFF0_0000_0000_0000


@pytest.mark.parametrize("kw, err", [
    (dict(root_level=1), ValueError), (dict(root_level=6), ValueError),
    (dict(maxphyaddr=31), ValueError), (dict(maxphyaddr=53, root_level=2), ValueError),
    (dict(nx="yes"), TypeError), (dict(amd=2), TypeError), (dict(pse36=None), TypeError),
])
def test_bad_input_is_named(kw, err):
    args = dict(root_level=4, maxphyaddr=46, nx=True, gbpages=True, pse=False)
    args.update(kw)
    with pytest.raises(err, match=next(iter(kw))):
        R.reset_rsvds_bits_mask(**args)


# ---------------------------------------------------------------------------
# EPT: __reset_rsvds_bits_mask_ept
# ---------------------------------------------------------------------------

def ept_expected(*, maxphyaddr, huge_page_level):
    high = rsvd_bits(maxphyaddr, 51)
    g1 = B7 if huge_page_level < 3 else 0      # large_1g_rsvd: huge_page_level < PG_LEVEL_1G
    m2 = B7 if huge_page_level < 2 else 0      # large_2m_rsvd: huge_page_level < PG_LEVEL_2M
    top = high | rsvd_bits(3, 7)               # [0][4], [0][3]; row 1 copies them
    return table([high, high | rsvd_bits(3, 6) | m2, high | rsvd_bits(3, 6) | g1, top, top],
                 [high, high | rsvd_bits(12, 20) | m2, high | rsvd_bits(12, 29) | g1, top, top])


# bad_mt_xwr, byte by byte: byte n covers memory type n; bit k of a byte is XWR = k.
# Bytes 2, 3, 7 are 0xFF; every other byte has bits 2 (-W-) and 6 (XW-), and bit 4
# (X--) unless execute-only is allowed: 0x54, or 0x44 with execonly.
BAD_MT_XWR = {False: 0xFF54_5454_FFFF_5454, True: 0xFF44_4444_FFFF_4444}

EPT_CONFIGS = [(m, h, x) for m in (36, 46, 52) for h in (1, 2, 3) for x in (False, True)]


@pytest.mark.parametrize("maxphyaddr, huge, execonly", EPT_CONFIGS,
                         ids=[f"M{m}-huge{h}-x{int(x)}" for m, h, x in EPT_CONFIGS])
def test_ept_masks(maxphyaddr, huge, execonly):
    got = R.reset_rsvds_bits_mask_ept(maxphyaddr=maxphyaddr, execonly=execonly,
                                      huge_page_level=huge)
    assert not mismatches(got, ept_expected(maxphyaddr=maxphyaddr, huge_page_level=huge))
    assert got.bad_mt_xwr == BAD_MT_XWR[execonly]


def test_ept_literals():
    m = R.reset_rsvds_bits_mask_ept(maxphyaddr=46, execonly=False).rsvd_bits_mask
    assert m[0][3] == 0x000F_C000_0000_00F8 and m[0][2] == 0x000F_C000_0000_0078
    assert m[1][2] == 0x000F_C000_3FFF_F000 and m[1][1] == 0x000F_C000_001F_F000
    no1g = R.reset_rsvds_bits_mask_ept(maxphyaddr=46, execonly=False, huge_page_level=2)
    assert no1g.rsvd_bits_mask[1][2] == 0x000F_C000_3FFF_F080


def ept_is_bad(entry: int, execonly: bool) -> bool:
    """bad_mt_xwr restated from the SDM's rules as KVM encodes them."""
    memtype, xwr = (entry >> 3) & 7, entry & 7
    return memtype in (2, 3, 7) or xwr in (0b010, 0b110) or (xwr == 0b100 and not execonly)


def test_ept_bad_mt_xwr_table_matches_the_rules():
    for execonly in (False, True):
        v = R.reset_rsvds_bits_mask_ept(maxphyaddr=52, execonly=execonly)
        for low6 in range(64):
            assert v.is_rsvd_bits_set(low6, 1) == ept_is_bad(low6, execonly), (low6, execonly)


def test_ept_huge_page_level_is_checked():
    with pytest.raises(ValueError, match="huge_page_level"):
        R.reset_rsvds_bits_mask_ept(maxphyaddr=46, execonly=False, huge_page_level=4)


# ---------------------------------------------------------------------------
# Property tests: random entries against the hand masks
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", [n for n, _ in X86_CONFIGS])
def test_is_rsvd_bits_set_agrees_with_the_hand_masks(name):
    kw = _BY_ID[name]
    v, exp = R.reset_rsvds_bits_mask(**kw), x86_expected(**kw)
    rng = random.Random(f"rsvd-{name}")
    width = 32 if kw["root_level"] == 2 else 64
    for _ in range(400):
        level = rng.randint(1, kw["root_level"])
        pte = rng.getrandbits(width)
        if rng.random() < 0.5:
            pte &= ~(exp[0][level - 1] | exp[1][level - 1])   # a clean entry
        want = bool(pte & exp[(pte >> 7) & 1][level - 1])
        assert v.is_rsvd_bits_set(pte, level) == want, (level, hex(pte))


def test_ept_entries_against_the_hand_masks():
    rng = random.Random("rsvd-ept")
    for maxphyaddr, huge, execonly in EPT_CONFIGS:
        v = R.reset_rsvds_bits_mask_ept(maxphyaddr=maxphyaddr, execonly=execonly,
                                        huge_page_level=huge)
        exp = ept_expected(maxphyaddr=maxphyaddr, huge_page_level=huge)
        for _ in range(100):
            level = rng.randint(1, 5)
            e = rng.getrandbits(64)
            if rng.random() < 0.5:
                e &= ~(exp[0][level - 1] | exp[1][level - 1])
            want = bool(e & exp[(e >> 7) & 1][level - 1]) or ept_is_bad(e, execonly)
            assert v.is_rsvd_bits_set(e, level) == want


# The walker: tables at 0x1000 (top) .. 0x4000 (PT), data page at 0x5000.
_T = 0b111          # P | W | U
_PS = 1 << 7
RSVD, P = 1 << 3, 1 << 0


def _cpu(root_level, maxphyaddr, nx, gbpages, pse):
    cr0 = CR0.PE.bit | CR0.PG.bit | CR0.WP.bit
    if root_level == 2:
        return CpuState(cr0=cr0, cr3=0x1000, cr4=CR4.PSE.bit if pse else 0, maxphyaddr=maxphyaddr)
    cr4 = CR4.PAE.bit | (CR4.PSE.bit if pse else 0) | (CR4.LA57.bit if root_level == 5 else 0)
    efer = (EFER.NXE.bit if nx else 0) | (EFER.LME.bit | EFER.LMA.bit if root_level >= 4 else 0)
    return CpuState(cr0=cr0, cr3=0x1000, cr4=cr4, efer=efer, maxphyaddr=maxphyaddr,
                    gbpages=gbpages)


def _walk(root_level, entry_level, entry, cpu):
    """Walk gva 0 with a valid chain whose level-``entry_level`` entry is ``entry``."""
    mem = GuestMemory(0x10000)
    width = 4 if root_level == 2 else 8
    write = mem.write32 if width == 4 else mem.write64
    chain = {}
    table_gpa = 0x1000
    for level in range(root_level, 0, -1):
        nxt = 0x5000 if level == 1 else table_gpa + 0x1000 if level > 1 else 0
        chain[level] = (table_gpa, nxt | _T)
        table_gpa += 0x1000
    if root_level == 3:
        chain[3] = (0x1000, 0x2000 | 1)          # a PDPTE has only P among the low bits
    for level, (gpa, value) in chain.items():
        write(gpa, entry if level == entry_level else value)
    return translate(mem, cpu, 0)


WALK_CONFIGS = ["32bit-pse36", "32bit-pse-no36", "pae-M36", "pae-M36-nonx", "4lvl-M46",
                "4lvl-M46-nogb", "4lvl-M46-nonx", "4lvl-M32-amd-nonx-nogb", "5lvl-M52"]


@pytest.mark.parametrize("name", WALK_CONFIGS)
def test_walker_faults_with_rsvd_exactly_on_the_hand_mask(name):
    kw = dict(_BY_ID[name])
    if kw.get("amd") or not kw.get("pse36", True):
        # The walker's guests are Intel-like and PSE-36 (as KVM): only the
        # vendor-neutral part of these configurations can be walked.
        kw["amd"], kw["pse36"] = False, True
    exp = x86_expected(**kw)
    cpu = _cpu(kw["root_level"], kw["maxphyaddr"], kw["nx"], kw["gbpages"], kw["pse"])
    rng = random.Random(f"walk-{name}")
    width = 32 if kw["root_level"] == 2 else 64
    seen = {True: 0, False: 0}
    for _ in range(300):
        level = rng.randint(1, kw["root_level"])
        if kw["root_level"] == 3 and level == 3:
            continue                            # PDPTEs: #GP on load, tested below
        entry = rng.getrandbits(width) | P
        if rng.random() < 0.5:
            entry &= ~(exp[0][level - 1] | exp[1][level - 1])
        else:                                   # make sure one reserved bit is set
            if not exp[(entry >> 7) & 1][level - 1]:
                entry ^= _PS                    # the other row (a 4 MiB PDE, say)
            mask = exp[(entry >> 7) & 1][level - 1]
            if mask:
                entry |= 1 << rng.choice([b for b in range(64) if mask >> b & 1])
        poisoned = bool(entry & exp[(entry >> 7) & 1][level - 1])
        r = _walk(kw["root_level"], level, entry, cpu)
        got = r.fault is not None and r.fault.vector == 14 and bool(r.fault.error_code & RSVD)
        assert got == poisoned, (level, hex(entry), r.fault)
        if poisoned:
            assert r.fault.error_code & P and r.fault.level == level
        seen[poisoned] += 1
    assert seen[True] > 30 and seen[False] > 100, seen


def test_pae_pdpte_with_any_reserved_bit_is_a_gp_on_load():
    cpu = _cpu(3, 36, True, True, False)
    want = rsvd_bits(36, 63) | rsvd_bits(5, 8) | rsvd_bits(1, 2)
    rng = random.Random("pdpte")
    for _ in range(200):
        entry = rng.getrandbits(64)
        if rng.random() < 0.5:
            entry &= ~want
        entry = (entry & ~rsvd_bits(12, 35)) | 0x2000 | P    # present, PD at 0x2000
        r = _walk(3, 3, entry, cpu)
        assert (r.fault is not None and r.fault.vector == 13) == bool(entry & want), hex(entry)


# ---------------------------------------------------------------------------
# Planted mistakes: the comparison catches them
# ---------------------------------------------------------------------------

def _planted(monkeypatch, mutate):
    real = R.reset_rsvds_bits_mask

    def wrong(**kw):
        v = real(**kw)
        rows = [list(v.rsvd_bits_mask[0]), list(v.rsvd_bits_mask[1])]
        mutate(kw, rows)
        return R.RsvdBitsValidate((tuple(rows[0]), tuple(rows[1])), v.bad_mt_xwr)

    monkeypatch.setattr(R, "reset_rsvds_bits_mask", wrong)


def test_planted_pre_2020_amd_pdpte_bit8_is_caught(monkeypatch):
    def old_kvm(kw, rows):                  # rsvd_bits_mask[0][2] |= nonleaf_bit8_rsvd
        if kw.get("amd") and kw["root_level"] >= 4:
            rows[0][2] |= B8
    _planted(monkeypatch, old_kvm)
    caught = [name for name, kw in X86_CONFIGS
              if mismatches(R.reset_rsvds_bits_mask(**kw), x86_expected(**kw))]
    assert caught == ["4lvl-M46-amd", "4lvl-M32-amd-nonx-nogb", "5lvl-M40-amd-nonx-nogb",
                      "5lvl-M46-amd"]


def test_planted_off_by_one_2mib_mask_is_caught(monkeypatch):
    def off_by_one(kw, rows):               # rsvd_bits(12, 20) instead of (13, 20)
        if kw["root_level"] >= 3:
            rows[1][1] |= rsvd_bits(12, 12)
    _planted(monkeypatch, off_by_one)
    kw = _BY_ID["4lvl-M46"]
    assert mismatches(R.reset_rsvds_bits_mask(**kw), x86_expected(**kw)) == [
        "[1][2]: got 0xfc000001ff000, want 0xfc000001fe000"]


# EPT walk: tables at 0x1000 .. 0x4000, page at 0x5000, EPTP WB with 4 levels.
_EPTP4 = 0x1000 | (3 << 3) | 6


@pytest.mark.parametrize("execonly", [False, True])
def test_ept_walk_misconfigures_exactly_on_the_hand_mask(execonly):
    from refimpl.guest.ept import EptFaultKind, ept_translate

    maxphyaddr = 46
    exp = ept_expected(maxphyaddr=maxphyaddr, huge_page_level=3)
    rng = random.Random(f"ept-walk-{execonly}")
    seen = {True: 0, False: 0}
    for _ in range(300):
        level = rng.randint(1, 4)
        entry = rng.getrandbits(64)
        if rng.random() < 0.5:
            entry &= ~(exp[0][level - 1] | exp[1][level - 1])
        mem = GuestMemory(0x10000)
        for lv in range(4, 0, -1):
            gpa = 0x1000 * (5 - lv)
            good = (0x5000 | 7 | 6 << 3) if lv == 1 else (gpa + 0x1000) | 7
            mem.write64(gpa, entry if lv == level else good)
        r = ept_translate(mem, _EPTP4, 0x123, maxphyaddr=maxphyaddr, execute_only=execonly)
        present = entry & 7 != 0                 # XWR = 000: not present, never misconfigured
        want = present and (bool(entry & exp[(entry >> 7) & 1][level - 1])
                            or ept_is_bad(entry, execonly))
        got = r.fault is not None and r.fault.kind == EptFaultKind.MISCONFIG
        assert got == want, (level, hex(entry), r.fault)
        seen[want] += 1
    assert seen[True] > 50 and seen[False] > 50, seen
