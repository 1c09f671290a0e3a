"""KVM's permission bitmap and PKRU mask equal the SDM's rule, for every input.

The exhaustive loops cover every access (W, U, F, implicit), every ACC value,
and every setting of CR0.WP, CR4.SMEP, CR4.SMAP, EFER.NXE, RFLAGS.AC, and for
protection keys CR4.PKE and the AD/WD bits. Hypothesis then checks the same
rule end to end through ``translate`` on random four-level tables.
"""

import itertools

import pytest
from hypothesis import given, settings, strategies as st

from refimpl import ACCESS_FETCH, ACCESS_IMPLICIT, ACCESS_USER, ACCESS_WRITE, CpuState, GuestMemory, translate
from refimpl.guest.permissions import (
    direct_permission_rule,
    permission_fault,
    update_permission_bitmask,
    update_pkru_bitmask,
)

BOOLS = (False, True)
ACC_EXEC, ACC_WRITE, ACC_USER = 1, 2, 4


def test_table_for_wp_nx_only_worked_by_hand():
    # Index bits: 0 W, 1 U, 2 not-SMAP, 3 F. Bit n of an entry = ACC n faults.
    # sup write: ACC without W = {0,1,4,5} -> 0x33; user read: without U =
    # {0,1,2,3} -> 0x0F; fetch: without X = {0,2,4,6} -> 0x55; combine by OR.
    expected = (0, 0x33, 0x0F, 0x3F) * 2 + (0x55, 0x77, 0x5F, 0x7F) * 2
    got = update_permission_bitmask(cr0_wp=True, cr4_smep=False, cr4_smap=False, efer_nx=True)
    assert got == expected


def test_table_smap_and_smep_worked_by_hand():
    # SMAP adds "user page" (ACC with U: {4..7} = 0xF0) to supervisor data
    # accesses without not-SMAP: index 0 (read) -> 0xF0, index 1 (write) ->
    # 0x33 | 0xF0 = 0xF3; with not-SMAP (index 4, 5) nothing is added.
    # SMEP adds 0xF0 to supervisor fetches: index 8 -> 0x55 | 0xF0 = 0xF5.
    t = update_permission_bitmask(cr0_wp=True, cr4_smep=True, cr4_smap=True, efer_nx=True)
    assert (t[0], t[1], t[4], t[5], t[8], t[12]) == (0xF0, 0xF3, 0, 0x33, 0xF5, 0xF5)


def test_ept_table_worked_by_hand():
    # EPT: read (U) needs R (=ACC_USER) -> 0x0F at index 2; write needs W ->
    # 0x33 at index 1; fetch needs X -> 0x55 at index 8; no SMEP/SMAP/WP.
    t = update_permission_bitmask(
        cr0_wp=False, cr4_smep=True, cr4_smap=True, efer_nx=False, ept=True
    )
    assert (t[0], t[1], t[2], t[8]) == (0, 0x33, 0x0F, 0x55)


def test_bitmap_equals_direct_rule_exhaustively():
    checked = 0
    for wp, smep, smap, nx in itertools.product(BOOLS, repeat=4):
        table = update_permission_bitmask(cr0_wp=wp, cr4_smep=smep, cr4_smap=smap, efer_nx=nx)
        for write, user, fetch, implicit, ac in itertools.product(BOOLS, repeat=5):
            access = (
                (ACCESS_WRITE if write else 0)
                | (ACCESS_USER if user else 0)
                | (ACCESS_FETCH if fetch else 0)
                | (ACCESS_IMPLICIT if implicit else 0)
            )
            for acc in range(8):
                kvm = permission_fault(
                    table, 0, pte_access=acc, pte_pkey=0, access=access, rflags_ac=ac, pkru=0
                )
                sdm = direct_permission_rule(
                    write=write, user=user, fetch=fetch, implicit=implicit,
                    page_user=bool(acc & ACC_USER), page_writable=bool(acc & ACC_WRITE),
                    page_executable=bool(acc & ACC_EXEC),
                    cr0_wp=wp, cr4_smep=smep, cr4_smap=smap, efer_nx=nx, rflags_ac=ac,
                )
                assert kvm == sdm, (wp, smep, smap, nx, access, ac, acc)
                checked += 1
    assert checked == 16 * 32 * 8


def test_pkru_mask_equals_direct_rule_exhaustively():
    for wp, pke, smap, ac in itertools.product(BOOLS, repeat=4):
        table = update_permission_bitmask(cr0_wp=wp, cr4_smep=False, cr4_smap=smap, efer_nx=True)
        pkru_mask = update_pkru_bitmask(cr4_pke=pke, cr0_wp=wp)
        for write, user, fetch in itertools.product(BOOLS, repeat=3):
            access = (ACCESS_WRITE * write) | (ACCESS_USER * user) | (ACCESS_FETCH * fetch)
            for acc, pkey, ad, wd in itertools.product(range(8), range(16), BOOLS, BOOLS):
                # Put AD/WD at key pkey, and the opposite bits at every other key,
                # so that reading the wrong key would be noticed.
                pkru = 0
                for k in range(16):
                    a, w = (ad, wd) if k == pkey else (not ad, not wd)
                    pkru |= (a << (2 * k)) | (w << (2 * k + 1))
                kvm = permission_fault(
                    table, pkru_mask, pte_access=acc, pte_pkey=pkey, access=access,
                    rflags_ac=ac, pkru=pkru,
                )
                sdm = direct_permission_rule(
                    write=write, user=user, fetch=fetch, implicit=False,
                    page_user=bool(acc & ACC_USER), page_writable=bool(acc & ACC_WRITE),
                    page_executable=bool(acc & ACC_EXEC),
                    cr0_wp=wp, cr4_smep=False, cr4_smap=smap, efer_nx=True, rflags_ac=ac,
                    cr4_pke=pke, pkru_ad=ad, pkru_wd=wd,
                )
                assert kvm == sdm, (wp, pke, access, acc, pkey, ad, wd)


def test_pkru_mask_worked_by_hand():
    # WP=1: offset 8 (supervisor read, user page) -> AD only (bit 8);
    # offset 10 (supervisor write, user page) -> AD and WD (bits 10, 11);
    # offset 12 (user read) -> bit 12; offset 14 (user write) -> bits 14, 15;
    # nothing at offsets < 8 (supervisor pages) or >= 16 (fetches).
    assert update_pkru_bitmask(cr4_pke=True, cr0_wp=True) == (
        (1 << 8) | (3 << 10) | (1 << 12) | (3 << 14)
    )
    # WP=0 drops WD for the supervisor write (bit 11).
    assert update_pkru_bitmask(cr4_pke=True, cr0_wp=False) == (
        (1 << 8) | (1 << 10) | (1 << 12) | (3 << 14)
    )
    assert update_pkru_bitmask(cr4_pke=False, cr0_wp=True) == 0


# --- end to end through the walker -------------------------------------------
def build_tables(flags):
    """Four-level tables at 0x1000..0x4000 for gva 0x1234 with per-level flags."""
    mem = GuestMemory(0x6000)
    for (addr, nxt), f in zip(
        ((0x1000, 0x2000), (0x2000, 0x3000), (0x3000, 0x4000), (0x4008, 0x5000)), flags
    ):
        mem.write64(addr, nxt | f)
    return mem


level_flags = st.tuples(st.booleans(), st.booleans(), st.booleans()).map(
    lambda t: 0x1 | (0x2 if t[0] else 0) | (0x4 if t[1] else 0) | ((1 << 63) if t[2] else 0)
)


@settings(max_examples=400, derandomize=True, deadline=None)
@given(
    flags=st.tuples(level_flags, level_flags, level_flags, level_flags),
    write=st.booleans(), user=st.booleans(), fetch=st.booleans(), implicit=st.booleans(),
    wp=st.booleans(), smep=st.booleans(), smap=st.booleans(), ac=st.booleans(),
    pke=st.booleans(), pkey=st.integers(0, 15), pkru=st.integers(0, 2**32 - 1),
)
def test_translate_agrees_with_sdm_rule(
    flags, write, user, fetch, implicit, wp, smep, smap, ac, pke, pkey, pkru
):
    flags = list(flags)
    flags[3] |= pkey << 59
    mem = build_tables(flags)
    cpu = CpuState(
        cr0=0x80000001 | (wp << 16), cr3=0x1000,
        cr4=0x20 | (smep << 20) | (smap << 21) | (pke << 22),
        efer=0xD00, rflags=ac << 18, pkru=pkru,
    )
    access = (ACCESS_WRITE * write) | (ACCESS_USER * user) | (ACCESS_FETCH * fetch)
    access |= ACCESS_IMPLICIT * implicit
    page_user = all(f & 0x4 for f in flags)
    page_writable = all(f & 0x2 for f in flags)
    page_exec = not any(f >> 63 for f in flags)
    sdm = direct_permission_rule(
        write=write, user=user, fetch=fetch, implicit=implicit,
        page_user=page_user, page_writable=page_writable, page_executable=page_exec,
        cr0_wp=wp, cr4_smep=smep, cr4_smap=smap, efer_nx=True, rflags_ac=ac,
        cr4_pke=pke, pkru_ad=bool((pkru >> 2 * pkey) & 1),
        pkru_wd=bool((pkru >> (2 * pkey + 1)) & 1),
    )
    r = translate(mem, cpu, 0x1234, access)
    if sdm == 0:
        assert r.fault is None and r.gpa == 0x5234
    else:
        # Error code: the rule's P/PK, plus W/U of the access, plus F (NXE=1).
        expected = sdm | (access & 0x6) | (access & 0x10)
        assert r.fault.vector == 14 and r.fault.error_code == expected


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    wp=st.booleans(), smep=st.booleans(), smap=st.booleans(), nx=st.booleans(),
    index=st.integers(0, 15),
)
def test_bitmap_rows_are_monotone_in_rights(wp, smep, smap, nx, index):
    # Adding W or X to a page never creates a fault; a fault set for a page
    # with more rights is contained in the fault set for fewer rights
    # (except U, which SMEP/SMAP make a liability).
    row = update_permission_bitmask(cr0_wp=wp, cr4_smep=smep, cr4_smap=smap, efer_nx=nx)[index]
    for acc in range(8):
        for extra in (ACC_WRITE, ACC_EXEC):
            if (row >> (acc | extra)) & 1:
                assert (row >> acc) & 1


@pytest.mark.parametrize("ept", [False, True])
def test_tables_are_bytes(ept):
    t = update_permission_bitmask(cr0_wp=True, cr4_smep=True, cr4_smap=True, efer_nx=True, ept=ept)
    assert len(t) == 16 and all(0 <= b <= 0xFF for b in t)
