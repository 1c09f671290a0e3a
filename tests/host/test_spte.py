"""SPTE values worked out by hand from the layouts, MMIO SPTEs, shadow_zero_check."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.host.kvm_mmu import tdp_kind
from refimpl.host.roles import ACC_ALL, ACC_EXEC_MASK, ACC_USER_MASK, ACC_WRITE_MASK
from refimpl.host.spte import (
    SPTE_EPT,
    SPTE_X86,
    ept_format,
    get_mmio_spte_access,
    get_mmio_spte_generation,
    get_mmio_spte_gfn,
    is_last_spte,
    is_mmio_spte,
    is_shadow_present_pte,
    make_mmio_spte,
    make_nonleaf_spte,
    make_spte,
    spte_ad_enabled,
    x86_format,
)

X86 = x86_format(phys_bits=46)
EPT = ept_format(phys_bits=46)


def test_x86_writable_4k():
    # MMU-present 0x800 | P 0x1 | W 0x2 | U 0x4 | A 0x20 | D 0x40
    # | host-writable 0x200 | MMU-writable 0x400 | pfn 0x1234 << 12; no NX
    # (ACC_ALL has exec): 0x1234000 + 0xe67.
    r = make_spte(tdp_kind(X86), pte_access=ACC_ALL, level=1, gfn=5, pfn=0x1234)
    assert r.spte == 0x1234E67
    assert not r.wrprot and not r.rsvd_violation


def test_ept_writable_2m():
    # MMU-present 0x800 | R 0x1 | W 0x2 | X 0x4 | MT=6,IPAT 0x70 | PS 0x80
    # | A 0x100 | D 0x200 | pfn 0x200 << 12 | host-writable bit 57
    # | MMU-writable bit 58. No hardware present mask (exec-only CPU).
    r = make_spte(tdp_kind(EPT), pte_access=ACC_ALL, level=2, gfn=0, pfn=0x200)
    assert r.spte == 0x0600_0000_0020_0BF7


def test_x86_readonly_host_no_exec():
    # ACC_USER only, host not writable: MMU-present | P | U | A | NX.
    r = make_spte(X86, pte_access=ACC_USER_MASK | ACC_WRITE_MASK, level=1, gfn=0, pfn=1,
                  host_writable=False)
    assert r.spte == (1 << 63) | 0x1000 | 0x800 | 0x20 | 0x4 | 0x1


def test_ept_prefetch_ad_disabled_is_access_tracked():
    # A/D disabled (type 1 at bit 52); prefetch clears R/W/X and saves R, X
    # in bits 54 and 56; host/MMU-writable (57, 58) stay.
    r = make_spte(EPT, pte_access=ACC_ALL, level=1, gfn=0, pfn=1, prefetch=True,
                  ad_disabled=True)
    assert r.spte == 0x0750_0000_0000_1870
    assert not spte_ad_enabled(r.spte)


def test_wrprot_when_gfn_is_write_tracked():
    seen = []

    def try_unsync(gfn, can_unsync):
        seen.append((gfn, can_unsync))
        return True

    r = make_spte(X86, pte_access=ACC_ALL, level=1, gfn=7, pfn=1, try_unsync=try_unsync)
    assert r.wrprot and seen == [(7, True)]
    assert r.spte == 0x1000 | 0x800 | 0x200 | 0x20 | 0x4 | 0x1  # no W, MMU-W, D
    # Already writable: KVM skips the unsync check.
    r2 = make_spte(X86, pte_access=ACC_ALL, level=1, gfn=7, pfn=1, old_spte=0x2,
                   try_unsync=try_unsync)
    assert not r2.wrprot and len(seen) == 1


def test_nx_huge_pages_strip_exec_only_on_huge():
    fmt = ept_format(phys_bits=46, nx_huge_pages=True)
    assert not make_spte(fmt, pte_access=ACC_ALL, level=2, gfn=0, pfn=0).spte & SPTE_EPT.X.bit
    assert make_spte(fmt, pte_access=ACC_ALL, level=1, gfn=0, pfn=0).spte & SPTE_EPT.X.bit


def test_shadow_zero_check_flags_pfn_above_host_maxphyaddr():
    for fmt in (X86, EPT):
        kind = tdp_kind(fmt)
        ok = make_spte(kind, pte_access=ACC_ALL, level=1, gfn=0, pfn=(1 << 34) - 1)
        bad = make_spte(kind, pte_access=ACC_ALL, level=1, gfn=0, pfn=1 << 34)  # bit 46
        assert not ok.rsvd_violation and bad.rsvd_violation


def test_shadow_zero_check_flags_bad_ept_memtype():
    kind = tdp_kind(EPT)
    spte = make_spte(kind, pte_access=ACC_ALL, level=1, gfn=0, pfn=1).spte
    bad = (spte & ~0x38) | (2 << 3)  # memory type 2 is reserved
    assert kind.shadow_zero_check.is_rsvd_bits_set(bad, 1)
    assert not kind.shadow_zero_check.is_rsvd_bits_set(spte, 1)


def test_x86_mmio_spte_by_hand():
    # P 1 | ACC W|U 0x6 | gen[7:0]=0xff << 3 = 0x7f8 | gpa 0x1234000
    # | bit 51 | gen[18:8]=0x7ff << 52.
    spte = make_mmio_spte(X86, 0x1234, ACC_ALL, 0x7FFFF)
    assert spte == 0x7FF8_0000_0123_47FF
    assert not is_shadow_present_pte(spte)


def test_ept_mmio_spte_has_no_access_bits():
    spte = make_mmio_spte(EPT, 0x10, ACC_ALL, 0)
    assert spte == 0x10_000 | 0b110
    assert get_mmio_spte_access(EPT, spte) == 0


def test_mmio_caching_off_with_52_bit_host():
    fmt = x86_format(phys_bits=52)
    assert not fmt.mmio_caching
    with pytest.raises(ValueError, match="MMIO caching"):
        make_mmio_spte(fmt, 1, ACC_ALL, 0)


@settings(max_examples=300, derandomize=True)
@given(gfn=st.integers(0, (1 << 34) - 1), gen=st.integers(0, (1 << 19) - 1),
       ept=st.booleans(), acc=st.integers(0, 7))
def test_mmio_round_trip(gfn, gen, ept, acc):
    fmt = EPT if ept else X86
    spte = make_mmio_spte(fmt, gfn, acc, gen)
    assert is_mmio_spte(fmt, spte) and not is_shadow_present_pte(spte)
    assert get_mmio_spte_gfn(fmt, spte) == gfn
    assert get_mmio_spte_generation(spte) == gen
    assert get_mmio_spte_access(fmt, spte) == (0 if ept else acc & (ACC_WRITE_MASK | ACC_USER_MASK))


def test_generation_keeps_19_bits():
    assert get_mmio_spte_generation(make_mmio_spte(X86, 1, 0, (1 << 19) + 5)) == 5


@settings(max_examples=200, derandomize=True)
@given(pfn=st.integers(0, (1 << 34) - 1), level=st.integers(1, 3),
       acc=st.integers(0, 7), hw=st.booleans())
def test_made_sptes_are_present_and_not_mmio(pfn, level, acc, hw):
    pfn &= ~((1 << (9 * (level - 1))) - 1)  # huge pages start on their own alignment
    for fmt in (X86, EPT):
        r = make_spte(tdp_kind(fmt), pte_access=acc, level=level, gfn=0, pfn=pfn,
                      host_writable=hw)
        s = r.spte
        assert is_shadow_present_pte(s)
        # EPT without R but with W or X (XWR 010, 110, 100): write without
        # read is a misconfiguration (110 even looks like an MMIO SPTE), and
        # the TDP shadow_zero_check is built without execute-only, so KVM
        # would WARN on all three. TDP only ever asks for ACC_ALL.
        w_eff = hw and acc & ACC_WRITE_MASK
        w_no_r = fmt is EPT and not acc & ACC_USER_MASK and bool(w_eff or acc & ACC_EXEC_MASK)
        assert r.rsvd_violation == bool(w_no_r)
        if not w_no_r:
            assert not is_mmio_spte(fmt, s)
        assert is_last_spte(s, level)
        assert bool(s & 2) == bool(hw and acc & ACC_WRITE_MASK)
        assert (s >> 12) & ((1 << 40) - 1) == pfn


def test_nonleaf_spte():
    assert make_nonleaf_spte(X86, 5) == 0x5000 | 0x800 | 0x20 | 0x4 | 0x2 | 0x1
    assert make_nonleaf_spte(EPT, 5, ad_disabled=True) == 0x5000 | 0x800 | 0x7 | (1 << 52)


def test_software_bits_where_spte_h_puts_them():
    assert (SPTE_X86.HOST_WRITABLE.lo, SPTE_X86.MMU_WRITABLE.lo) == (9, 10)
    assert (SPTE_EPT.HOST_WRITABLE.lo, SPTE_EPT.MMU_WRITABLE.lo) == (57, 58)
    assert SPTE_X86.MMU_PRESENT.lo == SPTE_EPT.MMU_PRESENT.lo == 11


def test_misuse():
    with pytest.raises(ValueError, match="level"):
        make_spte(X86, pte_access=ACC_ALL, level=4, gfn=0, pfn=0)
    with pytest.raises(ValueError, match="pte_access"):
        make_spte(X86, pte_access=8, level=1, gfn=0, pfn=0)
    with pytest.raises(TypeError, match="kind"):
        make_spte(object(), pte_access=ACC_EXEC_MASK, level=1, gfn=0, pfn=0)
