"""Hand-built walks in every paging mode.

Each test writes its tables entry by entry and states the expected result,
worked out by hand, in comments. Bit values are written out here, not taken
from refimpl.
"""

import pytest

from refimpl import ACCESS_USER, ACCESS_WRITE, CpuState, GuestMemory, translate

P, W, U, A, D, PS = 0x1, 0x2, 0x4, 0x20, 0x40, 0x80
PG_PE_WP = 0x80010001
LONG = 0xD00  # LME | LMA | NXE
PAE, PSE, LA57 = 0x20, 0x10, 0x1000


# --- no paging ---------------------------------------------------------------
def test_no_paging_is_identity_and_touches_nothing():
    mem = GuestMemory(0x1000)
    mem.write64(0, 0x1234)
    r = translate(mem, CpuState(), 0xFFFF_FFFF, ACCESS_WRITE | ACCESS_USER)
    assert r.gpa == 0xFFFF_FFFF and r.fault is None and r.level is None
    assert mem.read64(0) == 0x1234 and mem.read(8, 8) == bytes(8)
    # PE=1 alone (protected mode without paging) is still no paging.
    assert translate(mem, CpuState(cr0=1), 0x42).gpa == 0x42


# --- 32-bit paging -----------------------------------------------------------
def test_32bit_4k_sets_a_and_d_in_4_byte_entries():
    # PD at 0x1000; gva 0x0040_3ABC: PDE index 0x403ABC >> 22 = 1 (0x1004),
    # PTE index (0x403ABC >> 12) & 0x3FF = 3 (0x2000 + 12 = 0x200C).
    mem = GuestMemory(0x4000)
    mem.write32(0x1004, 0x2007)
    mem.write32(0x200C, 0x0ABC_D007)
    mem.write32(0x2010, 0xFFFF_FFFF)  # the neighbour: must stay untouched
    cpu = CpuState(cr0=PG_PE_WP, cr3=0x1000)
    r = translate(mem, cpu, 0x0040_3ABC, ACCESS_WRITE)
    assert r.gpa == 0x0ABC_DABC and r.level == 1
    assert r.trace == ((2, 0x1004, 0x2007), (1, 0x200C, 0x0ABC_D007))
    assert mem.read32(0x1004) == 0x2027  # A
    assert mem.read32(0x200C) == 0x0ABC_D067  # A | D
    assert mem.read32(0x2010) == 0xFFFF_FFFF


@pytest.mark.parametrize("bit", [17, 18, 19, 20, 21])
def test_32bit_4m_reserved_bits_17_to_21(bit):
    mem = GuestMemory(0x2000)
    mem.write32(0x1000, 0x0040_0087 | (1 << bit))
    r = translate(mem, CpuState(cr0=PG_PE_WP, cr3=0x1000, cr4=PSE), 0x1234)
    assert r.fault.error_code == 0x9  # P | RSVD


def test_32bit_4m_pse36_all_four_bits_and_pat():
    # PDE bits 16:13 = 0xF (0x1E000) -> PA 35:32 = 0xF; bit 12 (PAT) is not
    # part of the address. 0xFFC0_0000 | 0x1F000 | 0x87.
    mem = GuestMemory(0x2000)
    mem.write32(0x1000, 0xFFC1_F087)
    r = translate(mem, CpuState(cr0=PG_PE_WP, cr3=0x1000, cr4=PSE), 0x003F_FFFF)
    assert r.gpa == 0xF_FFFF_FFFF and r.level == 2


def test_32bit_pse_off_bit7_means_table():
    # Same PDE 0x2087 (PS set): with CR4.PSE=0 it points to a table at 0x2000.
    mem = GuestMemory(0x3000)
    mem.write32(0x1000, 0x2087)
    mem.write32(0x2004, 0x9007)
    assert translate(mem, CpuState(cr0=PG_PE_WP, cr3=0x1000), 0x1234).gpa == 0x9234
    # With CR4.PSE=1 it is a 4 MiB page: bits 31:22 are 0, and bit 13 (the
    # 0x2000 of the table address) is now PSE-36's PA bit 32: 0x1_0000_1234.
    assert translate(mem, CpuState(cr0=PG_PE_WP, cr3=0x1000, cr4=PSE), 0x1234).gpa == 0x1_0000_1234


def test_32bit_cr3_high_bits_ignored():
    # CR3 bits 11:0 are flags, not address: 0x1018 still means PD at 0x1000.
    mem = GuestMemory(0x3000)
    mem.write32(0x1000, 0x2007)
    mem.write32(0x2004, 0x9007)
    assert translate(mem, CpuState(cr0=PG_PE_WP, cr3=0x1018), 0x1234).gpa == 0x9234


# --- PAE ---------------------------------------------------------------------
def pae_mem():
    # PDPT at 0x1020 (CR3 bits 31:5 -> 32-byte aligned, offset 0x20 in a page).
    # gva 0xC060_1234: PDPTE index 3 (0x1038); PDE index (>>21)&511 = 3
    # (0x2018); PTE index (>>12)&511 = 1 (0x3008).
    mem = GuestMemory(0x8000)
    mem.write64(0x1038, 0x2001)
    mem.write64(0x2018, 0x3007)
    mem.write64(0x3008, 0x7007)
    return mem


PAE_CPU = dict(cr0=PG_PE_WP, cr3=0x1020, cr4=PAE, efer=0x800)


def test_pae_4k_and_pdpte_gets_no_accessed_bit():
    mem = pae_mem()
    r = translate(mem, CpuState(**PAE_CPU), 0xC060_1234, ACCESS_WRITE)
    assert r.gpa == 0x7234 and r.level == 1
    assert r.trace[0] == (3, 0x1038, 0x2001)
    assert mem.read64(0x1038) == 0x2001  # PDPTE: no A bit exists
    assert mem.read64(0x2018) == 0x3027  # PDE: A
    assert mem.read64(0x3008) == 0x7067  # PTE: A | D


def test_pae_2m_page_and_bits_13_to_20():
    mem = pae_mem()
    mem.write64(0x2018, 0x0060_0087)  # 2 MiB page at 0x600000
    assert translate(mem, CpuState(**PAE_CPU), 0xC060_1234).gpa == 0x60_1234
    mem.write64(0x2018, 0x0070_0087)  # bit 20 set: reserved
    assert translate(mem, CpuState(**PAE_CPU), 0xC060_1234).fault.error_code == 0x9


def test_pae_pdpte_reserved_is_gp_and_not_present_is_pf():
    mem = pae_mem()
    mem.write64(0x1020, 0x4000 | P | (1 << 63))  # PDPTE0: bit 63 reserved
    r = translate(mem, CpuState(**PAE_CPU), 0xC060_1234)
    assert r.fault.vector == 13 and r.fault.error_code == 0 and r.gpa is None
    mem.write64(0x1020, 0)
    mem.write64(0x1038, 0x2000)  # PDPTE3 not present
    r = translate(mem, CpuState(**PAE_CPU), 0xC060_1234, ACCESS_USER)
    assert r.fault.vector == 14 and r.fault.error_code == 0x4


def test_pae_pdpt_outside_memory_is_gp():
    # The MOV to CR3 could not read the PDPT: #GP, as KVM's load_pdptrs fails.
    r = translate(GuestMemory(0x1000), CpuState(cr0=PG_PE_WP, cr3=0x1FF0, cr4=PAE), 0)
    assert r.fault.vector == 13


# --- four-level --------------------------------------------------------------
def four_level(pdpte=0x3007, pde=0x4007, pte=0x5007):
    # gva 0x0000_7F80_4020_1234: PML4 index (>>39)&511 = 0xFF (0x1000 + 0x7F8),
    # PDPT index (>>30)&511 = 1 (0x2008), PD index (>>21)&511 = 1 (0x3008),
    # PT index (>>12)&511 = 1 (0x4008).
    mem = GuestMemory(0x6000)
    mem.write64(0x17F8, 0x2007)
    mem.write64(0x2008, pdpte)
    mem.write64(0x3008, pde)
    mem.write64(0x4008, pte)
    return mem


GVA4 = 0x0000_7F80_4020_1234
CPU4 = dict(cr0=PG_PE_WP, cr3=0x1000, cr4=PAE, efer=LONG)


def test_4level_4k():
    mem = four_level()
    r = translate(mem, CpuState(**CPU4), GVA4)
    assert r.gpa == 0x5234 and r.level == 1
    assert [lvl for lvl, _, _ in r.trace] == [4, 3, 2, 1]


def test_4level_2m_and_1g():
    # 2 MiB: PDE = 0x4000_0000 | PS | 7 -> gpa 0x4000_0000 + (gva & 0x1FFFFF).
    r = translate(four_level(pde=0x4000_0087), CpuState(**CPU4), GVA4)
    assert r.gpa == 0x4000_1234 and r.level == 2
    # 1 GiB: PDPTE = 0x80_0000_0000 | PS | 7 -> + (gva & 0x3FFF_FFFF) = 0x20_1234.
    mem = four_level(pdpte=0x80_0000_0087)
    r = translate(mem, CpuState(**CPU4), GVA4)
    assert r.gpa == 0x80_0020_1234 and r.level == 3
    assert mem.read64(0x2008) == 0x80_0000_00A7  # the 1 GiB leaf got A
    r = translate(four_level(pdpte=0x80_0000_0087), CpuState(gbpages=False, **CPU4), GVA4)
    assert r.fault.error_code == 0x9 and r.level == 3


@pytest.mark.parametrize(
    "gva",
    [0x0000_8000_0000_0000, 0xFFFF_7FFF_FFFF_FFFF, 0x0001_0000_0000_0000, 1 << 63],
)
def test_4level_non_canonical_is_gp(gva):
    r = translate(four_level(), CpuState(**CPU4), gva)
    assert r.fault.vector == 13 and r.fault.error_code == 0


def test_4level_canonical_upper_half_walks():
    # 0xFFFF_8000_0000_1234: PML4 index 256 (0x1800): not present -> #PF 0.
    r = translate(four_level(), CpuState(**CPU4), 0xFFFF_8000_0000_1234)
    assert r.fault.vector == 14 and r.fault.error_code == 0x0 and r.level == 4


def test_4level_table_partly_outside_memory():
    # Memory ends at 0x400C: the PTE at 0x4008..0x400F is not all there.
    mem = GuestMemory(0x400C)
    mem.write64(0x17F8, 0x2007)
    mem.write64(0x2008, 0x3007)
    mem.write64(0x3008, 0x4007)
    r = translate(mem, CpuState(**CPU4), GVA4, ACCESS_WRITE)
    assert r.fault.vector == 14 and r.fault.error_code == 0x2 and r.level == 1


def test_4level_ad_only_on_success():
    mem = four_level(pte=0x5005)  # read-only leaf
    before = mem.read(0, mem.size)
    assert translate(mem, CpuState(**CPU4), GVA4, ACCESS_WRITE).fault.error_code == 0x3
    assert mem.read(0, mem.size) == before
    assert translate(mem, CpuState(**CPU4), GVA4).gpa == 0x5234
    assert [mem.read64(a) for a in (0x17F8, 0x2008, 0x3008, 0x4008)] == [
        0x2027, 0x3027, 0x4027, 0x5025]


def test_4level_self_referencing_table_sets_a_once_per_entry():
    # PML4[0] points back at the PML4 (0x1000). gva 0x1234: indexes 0,0,0,1:
    # PML4[0] is read as PML4E, PDPTE and PDE; PML4[1] (0x1008) as the PTE.
    mem = GuestMemory(0x3000)
    mem.write64(0x1000, 0x1007)
    mem.write64(0x1008, 0x2007)
    r = translate(mem, CpuState(**CPU4), 0x1234, ACCESS_WRITE)
    assert r.gpa == 0x2234
    assert mem.read64(0x1000) == 0x1027  # A
    assert mem.read64(0x1008) == 0x2067  # A | D


# --- five-level --------------------------------------------------------------
def test_5level_walk_and_canonical_width():
    # gva 0x00FF_0000_0000_1234: PML5 index (>>48)&511 = 0xFF (0x1000+0x7F8);
    # then indexes 0, 0, 0, 1.
    mem = GuestMemory(0x7000)
    mem.write64(0x17F8, 0x2007)
    mem.write64(0x2000, 0x3007)
    mem.write64(0x3000, 0x4007)
    mem.write64(0x4000, 0x5007)
    mem.write64(0x5008, 0x6007)
    cpu5 = CpuState(cr0=PG_PE_WP, cr3=0x1000, cr4=PAE | LA57, efer=LONG)
    r = translate(mem, cpu5, 0x00FF_0000_0000_1234)
    assert r.gpa == 0x6234 and r.level == 1
    assert [lvl for lvl, _, _ in r.trace] == [5, 4, 3, 2, 1]
    assert mem.read64(0x17F8) == 0x2027
    # Canonical in 5-level (bits 63:56 equal bit 56 = 0) but not in 4-level.
    assert translate(mem, CpuState(**CPU4), 0x00FF_0000_0000_1234).fault.vector == 13
    # Bit 56 set without 63:57: not canonical for 5-level.
    assert translate(mem, cpu5, 0x0100_0000_0000_0000).fault.vector == 13
    # The top of the upper half is canonical: PML5 index 511 is empty.
    assert translate(mem, cpu5, 0xFFFF_FFFF_FFFF_F000).fault.vector == 14


def test_5level_pml5e_page_size_reserved():
    mem = GuestMemory(0x2000)
    mem.write64(0x1000, 0x0087)
    cpu5 = CpuState(cr0=PG_PE_WP, cr3=0x1000, cr4=PAE | LA57, efer=LONG)
    r = translate(mem, cpu5, 0x1234)
    assert r.fault.error_code == 0x9 and r.level == 5


# --- the leaf test -------------------------------------------------------------
@pytest.mark.parametrize(
    "regs, levels_where_bit7_ends_walk",
    [
        (dict(cr0=PG_PE_WP), {1}),  # 32-bit, PSE=0: bit 7 ignored above level 1
        (dict(cr0=PG_PE_WP, cr4=PSE), {1, 2}),  # 32-bit with PSE: 4 MiB PDEs
        (dict(cr0=PG_PE_WP, cr4=PAE), {1, 2, 3}),  # PAE (level 3, the PDPTE, is never asked)
        (dict(cr0=PG_PE_WP, cr4=PAE, efer=LONG), {1, 2, 3, 4}),  # PML4E: reserved, ends
        (dict(cr0=PG_PE_WP, cr4=PAE | LA57, efer=LONG), {1, 2, 3, 4, 5}),
    ],
)
def test_is_last_gpte(regs, levels_where_bit7_ends_walk):
    from refimpl.guest.walker import walk_context

    ctx = walk_context(CpuState(**regs))
    for level in range(1, ctx.root_level + 1):
        # Without bit 7 only level 1 is a leaf; with it, the listed levels.
        assert ctx.is_last_gpte(level, 0x1) == (level == 1)
        assert ctx.is_last_gpte(level, 0x81) == (level in levels_where_bit7_ends_walk)
