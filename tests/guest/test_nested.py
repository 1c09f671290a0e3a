"""Two-dimensional walks (refimpl.guest.nested): routing, exit information, counts, A/D,
and a differential test against a flattened table.

Layout used by the hand-worked cases (all numbers by hand):

L1 memory is 4 MiB. L1's EPT maps L2 page P to L1 page P + 0x100000 for P
in [0, 2 MiB), with 4 KiB pages:
    0x1000 PML4E -> 0x2000, 0x2000 PDPTE -> 0x3000, 0x3000 PDE -> 0x4000,
    0x4000 + 8*i PTE -> (0x100000 + i*0x1000) | WB | RWX.
EPTP = 0x1000 | 3 << 3 | WB(6) = 0x101E (A/D off), 0x105E (A/D on).

L2 (four-level, CR3 = L2 0x1000) maps gva 0x1234 (indexes 0, 0, 0, 1):
    L2 0x1000 -> 0x2000 -> 0x3000 -> 0x4000; PTE at L2 0x4008 -> L2 page 0x9000.
So gva 0x1234 -> L2 gpa 0x9234 -> L1 gpa 0x109234; the L2 PTE itself lives at
L1 0x104008.
"""

import random

import pytest

from refimpl import ACCESS_FETCH, ACCESS_USER, ACCESS_WRITE, CpuState, GuestMemory
from refimpl.guest.formats import CR0, CR4, EPT_EXIT_QUAL, PFERR
from refimpl.guest.nested import (
    PFERR_GUEST_FINAL,
    PFERR_GUEST_PAGE,
    nested_translate,
    reference_count,
)
from nested_oracle import flatten
from refimpl.guest.walker import translate

EFER_LME, EFER_LMA, EFER_NX = 1 << 8, 1 << 10, 1 << 11
PG_WP = CR0.PE.bit | CR0.PG.bit | CR0.WP.bit
RWX, WB = 7, 6 << 3
OFF = 0x100000
EPTP4 = 0x101E
EPTP4_AD = 0x105E
LONG4 = dict(cr0=PG_WP, cr4=CR4.PAE.bit, efer=EFER_LME | EFER_LMA | EFER_NX)
READ, WRITE, INSTR = (EPT_EXIT_QUAL.ACC_READ.bit, EPT_EXIT_QUAL.ACC_WRITE.bit,
                      EPT_EXIT_QUAL.ACC_INSTR.bit)
GVA_VALID, GVA_TRANSLATED = EPT_EXIT_QUAL.GVA_IS_VALID.bit, EPT_EXIT_QUAL.GVA_TRANSLATED.bit


def ept_mem(size=0x400000, pml5=False):
    """EPT mapping L2 [0, 2 MiB) to L1 [1 MiB, 3 MiB); 5-level adds a PML5 at 0x5000."""
    mem = GuestMemory(size)
    mem.write64(0x1000, 0x2000 | RWX)
    mem.write64(0x2000, 0x3000 | RWX)
    mem.write64(0x3000, 0x4000 | RWX)
    for i in range(512):
        mem.write64(0x4000 + 8 * i, (OFF + (i << 12)) | WB | RWX)
    if pml5:
        mem.write64(0x5000, 0x1000 | RWX)
    return mem


def set_ept_pte(mem, l2_page, value):
    mem.write64(0x4000 + 8 * (l2_page >> 12), value)


def l2_four_level(mem, pte=0x9007):
    w = lambda l2, v: mem.write64(OFF + l2, v)  # noqa: E731
    w(0x1000, 0x2007)
    w(0x2000, 0x3007)
    w(0x3000, 0x4007)
    w(0x4008, pte)
    return CpuState(cr3=0x1000, **LONG4)


def setup(pte=0x9007):
    mem = ept_mem()
    return mem, l2_four_level(mem, pte)


# ---------------------------------------------------------------------------
# Success, and the trace.
# ---------------------------------------------------------------------------


def test_success_and_trace_order():
    mem, cpu = setup()
    r = nested_translate(mem, cpu, 0x1234, eptp=EPTP4)
    assert (r.l1_gpa, r.l2_gpa, r.fault, r.level) == (0x109234, 0x9234, None, 1)
    assert len(r.trace) == 24
    dims = "".join("E" if t.dimension == "EPT" else "G" for t in r.trace)
    assert dims == "EEEEG" * 4 + "EEEE"
    guest = [(t.level, t.address, t.l2_gpa) for t in r.trace if t.dimension == "L2"]
    assert guest == [(4, 0x101000, 0x1000), (3, 0x102000, 0x2000),
                     (2, 0x103000, 0x3000), (1, 0x104008, 0x4008)]
    # The EPT walk of step k reads the EPT PTE for the L2 page it translates.
    last_ept = [t.address for t in r.trace if t.dimension == "EPT" and t.level == 1]
    assert last_ept == [0x4008, 0x4010, 0x4018, 0x4020, 0x4048]


# ---------------------------------------------------------------------------
# Routing (behaviour 20: nested_ept_inject_page_fault, nested_svm_inject_npf_exit).
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("eptp", [EPTP4, EPTP4_AD])
def test_behaviour_20_table_not_mapped_is_ept_violation_to_l1(eptp):
    mem, cpu = setup()
    set_ept_pte(mem, 0x3000, 0)  # L2's PD table (L2 page 0x3000) not mapped
    r = nested_translate(mem, cpu, 0x1234, eptp=eptp)
    f = r.fault
    assert (f.target, f.kind, f.address, f.final) == ("L1", "EPT violation", 0x3000, False)
    # The table read is done with W|U whatever the EPTP A/D bit, because L2's
    # (x86) format has A/D: WRITE, plus READ for a paging-structure access,
    # GVA_IS_VALID; RWX found = 0 (not present); no GVA_TRANSLATED.
    assert f.exit_qualification == READ | WRITE | GVA_VALID == 0x83
    assert f.vector is None and r.l1_gpa is None
    # The walk stopped before reading the PD entry: 3 EPT walks (4+4+4 refs)
    # and 2 L2 entries.
    assert len(r.trace) == 4 + 1 + 4 + 1 + 4


def test_l2_pte_not_present_is_pf_to_l2():
    mem, cpu = setup(pte=0)
    r = nested_translate(mem, cpu, 0x1234, eptp=EPTP4)
    assert (r.fault.target, r.fault.kind, r.fault.vector) == ("L2", "#PF", 14)
    assert (r.fault.error_code, r.fault.address) == (0, 0x1234)
    r = nested_translate(mem, cpu, 0x1234, ACCESS_USER | ACCESS_WRITE, eptp=EPTP4)
    assert r.fault.error_code == 0x6


def test_l2_permission_checked_before_final_ept_translation():
    # L2 leaf supervisor-only (0x9003); the final page is not mapped in the EPT.
    mem, cpu = setup(pte=0x9003)
    set_ept_pte(mem, 0x9000, 0)
    r = nested_translate(mem, cpu, 0x1234, ACCESS_USER, eptp=EPTP4)
    assert (r.fault.target, r.fault.error_code) == ("L2", 0x5)  # P|U
    r = nested_translate(mem, cpu, 0x1234, 0, eptp=EPTP4)  # supervisor read: L2 allows
    assert (r.fault.target, r.fault.final, r.fault.address) == ("L1", True, 0x9000)
    assert r.l2_gpa == 0x9234


def test_final_page_read_only_write_is_violation_with_gva_translated():
    mem, cpu = setup()
    set_ept_pte(mem, 0x9000, (OFF + 0x9000) | WB | 1)  # R only
    r = nested_translate(mem, cpu, 0x1234, ACCESS_WRITE, eptp=EPTP4)
    f = r.fault
    assert (f.kind, f.final, f.address, r.l2_gpa) == ("EPT violation", True, 0x9000, 0x9234)
    # Newest walker: one access bit (WRITE, not READ) | RWX = R (1 << 3) |
    # GVA_IS_VALID | GVA_TRANSLATED (the final access).
    assert f.exit_qualification == 0x2 | 0x8 | 0x80 | 0x100 == 0x18A
    # The EPT walker's own error code: P (rights) | W | U, never F.
    assert f.error_code == 0x7


def test_final_fetch_needs_read_in_ept():
    # KVM ORs U into every nested access, so an execute-only EPT page cannot
    # be fetched through the emulator: a violation whose qualification says
    # INSTR only (newest walker: one access bit), RWX = X.
    mem, cpu = setup()
    set_ept_pte(mem, 0x9000, (OFF + 0x9000) | WB | 4)
    f = nested_translate(mem, cpu, 0x1234, ACCESS_FETCH, eptp=EPTP4).fault
    assert f.exit_qualification == INSTR | (4 << 3) | GVA_VALID | GVA_TRANSLATED
    # ... and whose error code has P|U but no F (the EPT role has no NX/SMEP).
    assert f.error_code == 0x5


def test_table_page_read_only_in_ept_is_write_violation():
    mem, cpu = setup()
    set_ept_pte(mem, 0x2000, (OFF + 0x2000) | WB | 1)  # L2 PDPT page R only
    f = nested_translate(mem, cpu, 0x1234, eptp=EPTP4).fault
    assert (f.kind, f.address, f.final) == ("EPT violation", 0x2000, False)
    assert f.exit_qualification == READ | WRITE | (1 << 3) | GVA_VALID


def test_ept_misconfiguration():
    mem, cpu = setup()
    set_ept_pte(mem, 0x4000, (OFF + 0x4000) | WB | 2)  # W without R
    f = nested_translate(mem, cpu, 0x1234, eptp=EPTP4).fault
    assert (f.target, f.kind, f.address, f.exit_qualification) == (
        "L1", "EPT misconfiguration", 0x4000, None)
    assert f.error_code & (PFERR.RSVD | PFERR.P) == PFERR.RSVD | PFERR.P


def test_l1_address_outside_memory_is_pf_to_l2():
    # The EPT maps L2's PT page to an L1 page beyond L1 memory: KVM finds no
    # memslot for the L1 gpa and the L2 walk fails with P=0.
    mem, cpu = setup()
    set_ept_pte(mem, 0x4000, 0x800000 | WB | RWX)
    f = nested_translate(mem, cpu, 0x1234, eptp=EPTP4).fault
    assert (f.target, f.kind, f.error_code) == ("L2", "#PF", 0)


# ---------------------------------------------------------------------------
# NPT.
# ---------------------------------------------------------------------------


def npt_setup():
    """NPT (L1 four-level, nCR3 = 0x1000): the same shape as the EPT, x86 bits.

    Entries P|W|U = 7; the PT maps L2 page i to L1 page 0x100000 + i*0x1000.
    """
    mem = GuestMemory(0x400000)
    mem.write64(0x1000, 0x2007)
    mem.write64(0x2000, 0x3007)
    mem.write64(0x3000, 0x4007)
    for i in range(512):
        mem.write64(0x4000 + 8 * i, (OFF + (i << 12)) | 7)
    cpu = l2_four_level(mem)
    return mem, cpu


NPT = dict(ncr3=0x1000, l1_cr4=CR4.PAE.bit, l1_efer=EFER_LME | EFER_LMA | EFER_NX)


def test_npt_success_and_count():
    mem, cpu = npt_setup()
    r = nested_translate(mem, cpu, 0x1234, **NPT)
    assert (r.l1_gpa, len(r.trace)) == (0x109234, 24)
    assert {t.dimension for t in r.trace} == {"L2", "NPT"}


def test_npt_table_fault_guest_page_bit():
    mem, cpu = npt_setup()
    mem.write64(0x4000 + 8 * 3, 0)  # L2 page 0x3000 (PD) not present
    f = nested_translate(mem, cpu, 0x1234, **NPT).fault
    # W|U (table access) with P=0, plus GUEST_PAGE (bit 33).
    assert (f.kind, f.exit_info_1, f.exit_info_2) == ("#NPF", 0x6 | 1 << 33, 0x3000)
    assert PFERR_GUEST_PAGE == 1 << 33


def test_npt_final_fault_guest_final_bit():
    mem, cpu = npt_setup()
    mem.write64(0x4000 + 8 * 9, (OFF + 0x9000) | 5)  # P|U, read-only
    f = nested_translate(mem, cpu, 0x1234, ACCESS_WRITE, **NPT).fault
    # P|W|U, plus GUEST_FINAL (bit 32).
    assert (f.exit_info_1, f.exit_info_2, f.final) == (0x7 | 1 << 32, 0x9000, True)
    assert PFERR_GUEST_FINAL == 1 << 32
    # A supervisor-only NPT page still faults: NPT walks are user walks.
    mem.write64(0x4000 + 8 * 9, (OFF + 0x9000) | 3)
    f = nested_translate(mem, cpu, 0x1234, 0, **NPT).fault
    assert f.exit_info_1 == 0x5 | 1 << 32


# ---------------------------------------------------------------------------
# A/D.
# ---------------------------------------------------------------------------


def test_ad_on_success_only_and_ept_dirty_for_tables():
    mem, cpu = setup()
    r = nested_translate(mem, cpu, 0x1234, eptp=EPTP4_AD)
    assert r.fault is None
    A, D = 1 << 5, 1 << 6
    for a in (0x101000, 0x102000, 0x103000, 0x104008):
        assert mem.read64(a) & A, hex(a)
    assert not mem.read64(0x104008) & D  # a read
    EA, ED = 1 << 8, 1 << 9
    for page in (0x1000, 0x2000, 0x3000, 0x4000):  # L2 tables: read with W -> A and D
        assert mem.read64(0x4000 + 8 * (page >> 12)) & (EA | ED) == EA | ED
    assert mem.read64(0x4000 + 8 * 9) & (EA | ED) == EA  # final page, a read: A only

    # A faulting L2 walk sets no L2 A bit, though the EPT walks before it did.
    mem, cpu = setup(pte=0)
    nested_translate(mem, cpu, 0x1234, eptp=EPTP4_AD)
    for a in (0x101000, 0x102000, 0x103000):
        assert not mem.read64(a) & A
    assert mem.read64(0x4000 + 8 * 1) & ED

    # EPT A/D disabled: EPT entries unchanged.
    mem, cpu = setup()
    before = mem.read64(0x4008)
    nested_translate(mem, cpu, 0x1234, ACCESS_WRITE, eptp=EPTP4)
    assert mem.read64(0x4008) == before and mem.read64(0x104008) & D


# ---------------------------------------------------------------------------
# Reference counts per level combination.
# ---------------------------------------------------------------------------


def l2_tables(mem, mode):
    """L2 tables for one gva in each mode; tables at L2 0x10000, 0x11000, ..."""
    w64 = lambda l2, v: mem.write64(OFF + l2, v)  # noqa: E731
    w32 = lambda l2, v: mem.write32(OFF + l2, v)  # noqa: E731
    if mode == 2:  # 32-bit: PDE index 1, PTE index 2
        w32(0x10000 + 4 * 1, 0x11007)
        w32(0x11000 + 4 * 2, 0x50007)
        return CpuState(cr0=PG_WP, cr3=0x10000), (1 << 22) | (2 << 12) | 0x345
    if mode == 3:  # PAE: PDPT at 0x10000, PDPTE 1, PDE 2, PTE 3
        w64(0x10000 + 8 * 1, 0x11001)
        w64(0x11000 + 8 * 2, 0x12007)
        w64(0x12000 + 8 * 3, 0x50007)
        gva = (1 << 30) | (2 << 21) | (3 << 12) | 0x345
        return CpuState(cr0=PG_WP, cr3=0x10000, cr4=CR4.PAE.bit), gva
    tables = [0x10000 + 0x1000 * k for k in range(mode)]
    for k, t in enumerate(tables):
        nxt = tables[k + 1] if k + 1 < mode else 0x50000
        w64(t + 8, nxt | 7)
    gva = sum(1 << (12 + 9 * k) for k in range(mode)) | 0x345
    cr4 = CR4.PAE.bit | (CR4.LA57.bit if mode == 5 else 0)
    return CpuState(cr0=PG_WP, cr3=0x10000, cr4=cr4, efer=LONG4["efer"]), gva


# (L2 mode, EPT levels) -> (walk references, PDPTE-load references), by hand:
# n(m+1) + m with n = L2 levels read during the walk (PAE: 2), m = EPT levels.
COUNTS = {
    (2, 4): (14, 0), (3, 4): (14, 5), (4, 4): (24, 0), (5, 4): (29, 0),
    (2, 5): (17, 0), (3, 5): (17, 6), (4, 5): (29, 0), (5, 5): (35, 0),
}


@pytest.mark.parametrize("l2_mode, ept_levels", sorted(COUNTS))
def test_reference_count(l2_mode, ept_levels):
    mem = ept_mem(pml5=ept_levels == 5)
    cpu, gva = l2_tables(mem, l2_mode)
    eptp = (0x5000 | 4 << 3 | 6) if ept_levels == 5 else EPTP4
    r = nested_translate(mem, cpu, gva, eptp=eptp)
    assert r.fault is None and r.l1_gpa == OFF + 0x50345 and r.l2_gpa == 0x50345
    walk, pdptr = COUNTS[(l2_mode, ept_levels)]
    assert (r.references("walk"), r.references("pdptr")) == (walk, pdptr)
    n = 2 if l2_mode == 3 else l2_mode
    assert reference_count(n, ept_levels) == walk


def test_reference_count_formula_values():
    assert reference_count(4, 4) == 24
    assert reference_count(5, 5) == 35
    with pytest.raises(ValueError, match="l2_levels"):
        reference_count(0, 4)
    with pytest.raises(TypeError):
        reference_count(4.0, 4)


# ---------------------------------------------------------------------------
# Differential: composed walk vs the walk of the flattened table.
# ---------------------------------------------------------------------------

L2_TABLE_BASE = 0x20000   # L2 pages for L2's tables
L2_DATA_BASE = 0x80000    # L2 pages for L2's data
EPT_RIGHTS = (0, 1, 3, 5, 7, 4, 7, 7)  # none, R, RW, RX, RWX, X-only, ...


def random_world(seed):
    """Random L2 tables (indexes 0-2 at each level) over a random EPT.

    EPT tables live in L1 [0, 0x10000); L2 page P maps to L1 P + 1 MiB with
    random rights (L2's table pages are mostly RW). Regions never overlap, so
    A/D writes cannot change an entry of the other dimension.
    """
    rng = random.Random(seed)
    mem = ept_mem()
    second_dimension(mem, "ept", rng)
    tables = iter(range(L2_TABLE_BASE, L2_DATA_BASE, 0x1000))
    data = list(range(L2_DATA_BASE, 0x200000, 0x1000))

    def fill(table, level):
        for i in range(3):
            r = rng.random()
            if r < 0.15:
                continue  # not present
            bits = 1 | rng.choice((0, 2, 2)) | rng.choice((0, 4, 4)) | rng.choice((0, 1 << 5))
            if rng.random() < 0.2:
                bits |= 1 << 63
            if level == 1:
                mem.write64(OFF + table + 8 * i, rng.choice(data) | bits | rng.choice((0, 1 << 6)))
            elif level == 2 and rng.random() < 0.15:
                mem.write64(OFF + table + 8 * i, 0x0 | bits | 1 << 7)  # 2 MiB page at L2 0
            else:
                child = next(tables)
                mem.write64(OFF + table + 8 * i, child | bits)
                fill(child, level - 1)

    root = next(tables)
    set_ept_pte(mem, root, (OFF + root) | WB | 3)  # the root table: always reachable
    fill(root, 4)
    wp = rng.random() < 0.5
    cr4 = CR4.PAE.bit | (CR4.SMEP.bit if rng.random() < 0.3 else 0)
    cpu = CpuState(cr0=CR0.PE.bit | CR0.PG.bit | (CR0.WP.bit if wp else 0), cr3=root,
                   cr4=cr4, efer=LONG4["efer"])
    return mem, cpu


ACCESSES = (0, ACCESS_WRITE, ACCESS_FETCH, ACCESS_USER, ACCESS_USER | ACCESS_WRITE,
            ACCESS_USER | ACCESS_FETCH)


def flat_must_fault(cpu, access):
    """Whether the flat walk must fault where the composed one exits to L1.

    Always, but for a supervisor write with L2's CR0.WP=0: L2's WP=0 lets
    such a write ignore W, and in the flat table L1's W denial is folded
    into that same W bit, so the flat walk cannot refuse it.
    """
    return not (access & ACCESS_WRITE and not access & ACCESS_USER and not cpu.wp)


@pytest.mark.parametrize("seed", range(6))
def test_composed_walk_equals_flattened_table(seed):
    """What must agree, for every access that does not fault in L1's EPT:

    * success or fault (the flattened leaf's rights are L2's AND the EPT's,
      so every access type checks the AND);
    * on success, the L1 gpa;
    * on a fault, that the flat walk's is a #PF too (its error code can
      differ: a malformed L2 entry is simply absent from the flat table, so
      RSVD becomes P=0, and so does an L2 permission fault whose page the
      EPT does not map).
    Accesses whose composed walk faults in L1's EPT (vm exits to L1) have no
    flat counterpart; they are counted, and must occur, and the flat walk
    must fault for them too.
    """
    mem, cpu = random_world(seed)
    gvas = [(i4 << 39) | (i3 << 30) | (i2 << 21) | (i1 << 12) | 0x18
            for i4 in range(3) for i3 in range(3) for i2 in range(3) for i1 in range(3)]
    compared, to_l1, successes = compare_with_flat(mem, cpu, gvas, dict(eptp=EPTP4))
    assert compared > 100 and to_l1 > 10 and successes >= 5, (compared, to_l1, successes)


def compare_with_flat(mem, cpu, gvas, second):
    """Composed walk vs flat walk for every gva and access (see above).

    ``second`` is the nested_translate/flatten keyword for L1's tables.
    Returns (compared, exits to L1, successes).
    """
    flat, flat_cpu = flatten(mem, cpu, **second)
    compared = to_l1 = successes = 0
    for gva in gvas:
        for access in ACCESSES:
            c = nested_translate(mem.copy(), cpu, gva, access, **second)
            f = translate(flat.copy(), flat_cpu, gva, access)
            key = (hex(gva), access)
            if c.fault is not None and c.fault.target == "L1":
                # No flat counterpart, but the flat page must not be usable
                # either (see flat_must_fault).
                assert f.fault is not None or not flat_must_fault(cpu, access), key
                to_l1 += 1
                continue
            assert (c.fault is None) == (f.fault is None), key
            if c.fault is None:
                assert c.l1_gpa == f.gpa, key
                successes += 1
            else:
                # A PAE PDPT page L1 does not map gives #GP in L2; the flat
                # table maps nothing there (#PF).
                assert f.fault.vector == 14 and c.fault.kind in ("#PF", "#GP"), key
            compared += 1
    return compared, to_l1, successes


def second_dimension(mem, kind, rng):
    """Random rights for every L2 page in L1's EPT or (same shape) NPT.

    L2 page P maps to L1 P + 1 MiB; table pages are mostly RW, data pages
    anything. NPT has no execute-only: X-only becomes a readable page.
    """
    if kind == "npt":
        for a, nxt in ((0x1000, 0x2000), (0x2000, 0x3000), (0x3000, 0x4000)):
            mem.write64(a, nxt | 7)
    for i in range(512):
        page = i << 12
        if page >= L2_DATA_BASE:
            rights = rng.choice(EPT_RIGHTS)
        elif page >= L2_TABLE_BASE:
            rights = rng.choice((3, 3, 3, 3, 7, 1, 0))
        else:
            rights = 0
        set_second(mem, kind, page, rights)


def set_second(mem, kind, page, rights):
    """L2 page -> L1 page + 1 MiB with EPT rights R|W|X (NPT: P|U, W, NX unless X)."""
    if kind == "ept":
        value = ((OFF + page) | WB | rights) if rights else 0
    else:
        value = ((OFF + page) | 5 | (rights & 2) | (0 if rights & 4 else 1 << 63)
                 if rights else 0)
    mem.write64(0x4000 + 8 * (page >> 12), value)


def random_l2(mem, mode, rng, kind):
    """Random 32-bit (2) or PAE (3) L2 tables, indexes 0-2 at each level."""
    tables = iter(range(L2_TABLE_BASE, L2_DATA_BASE, 0x1000))
    data = list(range(L2_DATA_BASE, 0x200000, 0x1000))
    size = 4 if mode == 2 else 8
    store = mem.write32 if size == 4 else mem.write64

    def fill(table, level):
        for i in range(3):
            if rng.random() < 0.15:
                continue  # not present
            bits = 1 | rng.choice((0, 2, 2)) | rng.choice((0, 4, 4)) | rng.choice((0, 1 << 5))
            if size == 8 and rng.random() < 0.2:
                bits |= 1 << 63
            if level == 1:
                store(OFF + table + size * i, rng.choice(data) | bits | rng.choice((0, 1 << 6)))
            elif rng.random() < 0.15:
                store(OFF + table + size * i, 0x0 | bits | 1 << 7)  # a 4 MiB / 2 MiB page at 0
            else:
                child = next(tables)
                store(OFF + table + size * i, child | bits)
                fill(child, level - 1)

    root = next(tables)
    set_second(mem, kind, root, 3)  # the root table: always reachable
    wp = CR0.WP.bit if rng.random() < 0.5 else 0
    if mode == 2:
        fill(root, 2)
        pse = CR4.PSE.bit if rng.random() < 0.5 else 0   # without PSE, bit 7 is ignored
        return CpuState(cr0=CR0.PE.bit | CR0.PG.bit | wp, cr3=root, cr4=pse), (
            lambda a, b, c: (b << 22) | (c << 12))
    for i in range(3):  # PDPTEs: P only (their W/U bits are reserved)
        if rng.random() < 0.9:
            child = next(tables)
            mem.write64(OFF + root + 8 * i, child | 1)
            fill(child, 2)
    cpu = CpuState(cr0=CR0.PE.bit | CR0.PG.bit | wp, cr3=root, cr4=CR4.PAE.bit,
                   efer=EFER_NX)
    return cpu, lambda a, b, c: (a << 30) | (b << 21) | (c << 12)


@pytest.mark.parametrize("l2_mode, kind", [(2, "ept"), (3, "ept"), (2, "npt"), (3, "npt"),
                                           (4, "npt")])
@pytest.mark.parametrize("seed", range(2))
def test_composed_walk_equals_flattened_table_other_modes(l2_mode, kind, seed):
    """The differential test above, for 32-bit and PAE L2 and for NPT."""
    rng = random.Random(1000 + seed)
    if l2_mode == 4:
        mem, cpu = random_world(seed)          # EPT built, then NPT written over it
        second_dimension(mem, kind, rng)
        set_second(mem, kind, cpu.cr3, 3)
        gva_of = lambda a, b, c: (a << 30) | (b << 21) | (c << 12)  # noqa: E731
    else:
        mem = ept_mem()
        second_dimension(mem, kind, rng)
        cpu, gva_of = random_l2(mem, l2_mode, rng, kind)
    second = dict(eptp=EPTP4) if kind == "ept" else NPT
    gvas = [gva_of(a, b, c) | 0x18 for a in range(3) for b in range(3) for c in range(3)]
    compared, to_l1, successes = compare_with_flat(mem, cpu, gvas, second)
    assert compared > 20 and to_l1 > 3 and successes >= 3, (compared, to_l1, successes)


@pytest.mark.parametrize("pse, l1_gpa", [(0, OFF + 0x50345), (CR4.PSE.bit, OFF + 0x2345)])
def test_flatten_32bit_pde_bit7_is_a_4mib_page_only_with_pse(pse, l1_gpa):
    """32-bit L2, PDE 1 = L2 0x1000 | PS | P|W|U; PTE 2 there -> L2 0x50000.

    gva 0x402345 (PDE 1, PTE 2). CR4.PSE=0: bit 7 is ignored, the PDE is a
    table: L2 0x50345, L1 0x150345. CR4.PSE=1: a 4 MiB page at L2 0 (PDE
    bits 31:22 are 0; bit 12 is PAT and bits 16:13, PSE-36's address bits
    35:32, are 0): L2 0x2345, L1 0x102345.
    """
    mem = ept_mem()
    mem.write32(OFF + 0x10000 + 4 * 1, 0x1000 | 0x87)
    mem.write32(OFF + 0x1000 + 4 * 2, 0x50007)
    cpu = CpuState(cr0=PG_WP, cr3=0x10000, cr4=pse)
    gva = (1 << 22) | (2 << 12) | 0x345
    assert nested_translate(mem.copy(), cpu, gva, eptp=EPTP4).l1_gpa == l1_gpa
    flat, fcpu = flatten(mem, cpu, eptp=EPTP4)
    assert translate(flat, fcpu, gva).gpa == l1_gpa


def test_flatten_rights_are_the_and():
    # L2 leaf user+writable, EPT page R-X: flat leaf readable, not writable.
    mem, cpu = setup(pte=0x9007)
    set_ept_pte(mem, 0x9000, (OFF + 0x9000) | WB | 5)
    flat, fcpu = flatten(mem, cpu, eptp=EPTP4)
    assert translate(flat, fcpu, 0x1234, ACCESS_USER).gpa == 0x109234
    assert translate(flat, fcpu, 0x1234, ACCESS_WRITE).fault.error_code == 0x3
    set_ept_pte(mem, 0x9000, (OFF + 0x9000) | WB | 3)  # RW-: no fetch
    flat, fcpu = flatten(mem, cpu, eptp=EPTP4)
    assert translate(flat, fcpu, 0x1234, ACCESS_FETCH).fault.error_code == 0x11


# ---------------------------------------------------------------------------
# Misuse.
# ---------------------------------------------------------------------------


def test_bad_input():
    mem, cpu = setup()
    with pytest.raises(ValueError, match="eptp, ncr3"):
        nested_translate(mem, cpu, 0x1234)
    with pytest.raises(ValueError, match="eptp, ncr3"):
        nested_translate(mem, cpu, 0x1234, eptp=EPTP4, ncr3=0x1000)
    with pytest.raises(ValueError, match="l1_cr4"):
        nested_translate(mem, cpu, 0x1234, ncr3=0x1000)
    with pytest.raises(ValueError, match="eptp"):
        nested_translate(mem, cpu, 0x1234, eptp=0x1000 | 1 << 3 | 6)
    with pytest.raises(TypeError, match="l1_mem"):
        nested_translate(bytearray(16), cpu, 0x1234, eptp=EPTP4)
    with pytest.raises(TypeError, match="l2_cpu"):
        nested_translate(mem, None, 0x1234, eptp=EPTP4)
    with pytest.raises(ValueError, match="access"):
        nested_translate(mem, cpu, 0x1234, 1 << 9, eptp=EPTP4)
    with pytest.raises(ValueError, match="l2_cpu"):
        flatten(mem, CpuState(cr3=0x1000), eptp=EPTP4)       # L2 without paging
    with pytest.raises(ValueError, match="eptp, ncr3"):
        flatten(mem, cpu)
    with pytest.raises(ValueError, match="l1_efer"):
        flatten(mem, cpu, ncr3=0x1000, l1_cr4=CR4.PAE.bit, l1_efer=0)  # 32-bit NPT


def test_garbage_memory_never_raises():
    rng = random.Random(7)
    mem = GuestMemory(0x8000)
    mem.write(0, bytes(rng.getrandbits(8) for _ in range(0x8000)))
    cpu = CpuState(cr3=0x1000, **LONG4)
    for _ in range(200):
        gva = rng.getrandbits(47)
        r = nested_translate(mem, cpu, gva, rng.choice(ACCESSES), eptp=EPTP4_AD)
        assert (r.fault is None) == (r.l1_gpa is not None)
        r = nested_translate(mem, cpu, gva, 0, **NPT)
        assert (r.fault is None) == (r.l1_gpa is not None)
