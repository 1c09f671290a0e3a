"""KVM's guest-walker behaviours that a single walk can show, one test each.

The behaviours are numbered 1-19 in the test names. Each is read from the
kernel source: the walk itself from ``FNAME(walk_addr_generic)`` in
``arch/x86/kvm/mmu/paging_tmpl.h`` (present, reserved-bit, leaf and A/D
steps, and the error code built at its ``error:`` label), the rights from
``update_permission_bitmask`` and ``update_pkru_bitmask`` in
``arch/x86/kvm/mmu/mmu.c`` with ``permission_fault`` in
``arch/x86/kvm/mmu.h``, the reserved bits from ``__reset_rsvds_bits_mask``
and ``__reset_rsvds_bits_mask_ept`` (``mmu.c``), and the PAE PDPTE check
from ``load_pdptrs`` in ``arch/x86/kvm/x86.c``.

Every page table here is written by hand, entry by entry, and every expected
error code, address and A/D bit is worked out by hand in a comment: nothing
below asks refimpl what the answer should be.

Behaviours 16 (CR0.WP toggle with TDP), 17 (shadow paging, WP=0 then SMEP),
18 (shared child table with different parent rights) and 20 (nested L2 walk
faulting in L1's EPT) need the shadow MMU or the nested composition, and are
tested with those models (``tests/host/test_shadow_mmu.py``, ``tests/guest/test_nested.py``).

Default set-up ("the usual CPU"): four-level paging, EFER.NXE=1, CR0.WP=1,
SMEP/SMAP/PKE off, MAXPHYADDR 52.

    cr0  = PE | WP | PG           = 0x0000_0001 | 0x1_0000 | 0x8000_0000 = 0x80010001
    cr4  = PAE                    = 0x20
    efer = LME | LMA | NXE        = 0x100 | 0x400 | 0x800 = 0xD00

Default tables ("the usual tables"), 64 KiB of memory, gva 0x1234:
    index PML4 = (0x1234 >> 39) & 511 = 0, PDPT = (>> 30) = 0,
    PD = (>> 21) = 0, PT = (0x1234 >> 12) & 511 = 1, offset 0x234.
    0x1000 PML4[0] = 0x2000 | P W U  = 0x2007
    0x2000 PDPT[0] = 0x3000 | P W U  = 0x3007
    0x3000 PD[0]   = 0x4000 | P W U  = 0x4007
    0x4008 PT[1]   = 0x5000 | P W U  = 0x5007      -> gpa 0x5234
"""

import pytest

from refimpl import ACCESS_FETCH, ACCESS_IMPLICIT, ACCESS_USER, ACCESS_WRITE, CpuState, GuestMemory, ept_translate, translate

# Entry bits, written out by hand (not taken from refimpl).
P, W, U, A, D, PS = 0x1, 0x2, 0x4, 0x20, 0x40, 0x80
NX = 1 << 63

CR0_PE, CR0_WP, CR0_PG = 1, 1 << 16, 1 << 31
CR4_PSE, CR4_PAE, CR4_SMEP, CR4_SMAP, CR4_PKE = 1 << 4, 1 << 5, 1 << 20, 1 << 21, 1 << 22
EFER_LME, EFER_LMA, EFER_NXE = 1 << 8, 1 << 10, 1 << 11
RFLAGS_AC = 1 << 18

GVA = 0x1234
PML4E, PDPTE, PDE, PTE = 0x1000, 0x2000, 0x3000, 0x4008  # entry addresses


def usual_cpu(**changes):
    regs = dict(cr0=0x80010001, cr3=0x1000, cr4=0x20, efer=0xD00)
    regs.update(changes)
    return CpuState(**regs)


def usual_tables(pml4e=0x2007, pdpte=0x3007, pde=0x4007, pte=0x5007):
    mem = GuestMemory(0x10000)
    mem.write64(PML4E, pml4e)
    mem.write64(PDPTE, pdpte)
    mem.write64(PDE, pde)
    mem.write64(PTE, pte)
    return mem


def entries(mem):
    return [mem.read64(a) for a in (PML4E, PDPTE, PDE, PTE)]


# 1 -------------------------------------------------------------------------
def test_1_wp0_lets_supervisor_write_read_only_page():
    # Leaf W=0, U=1: 0x5000 | P | U = 0x5005. CR0.WP=0: cr0 = 0x80000001.
    mem = usual_tables(pte=0x5005)
    r = translate(mem, usual_cpu(cr0=0x80000001), GVA, ACCESS_WRITE)
    assert r.fault is None and r.gpa == 0x5234 and r.level == 1
    # A (0x20) in all four entries, D (0x40) in the leaf.
    assert entries(mem) == [0x2027, 0x3027, 0x4027, 0x5065]


def test_1_wp1_faults_supervisor_write_read_only_page():
    mem = usual_tables(pte=0x5005)
    r = translate(mem, usual_cpu(), GVA, ACCESS_WRITE)
    # Rights fault: P (0x1) | W (0x2) = 0x3. No A/D written.
    assert r.gpa is None and r.fault.vector == 14 and r.fault.error_code == 0x3
    assert entries(mem) == [0x2007, 0x3007, 0x4007, 0x5005]


# 2 -------------------------------------------------------------------------
@pytest.mark.parametrize("level", range(4))
def test_2_user_write_read_only_faults_even_with_wp0(level):
    # Clear W (0x2) in one entry: 0x..07 -> 0x..05.
    values = [0x2007, 0x3007, 0x4007, 0x5007]
    values[level] &= ~W
    mem = usual_tables(*values)
    r = translate(mem, usual_cpu(cr0=0x80000001), GVA, ACCESS_WRITE | ACCESS_USER)
    # P | W | U = 0x7.
    assert r.fault.vector == 14 and r.fault.error_code == 0x7


# 3 -------------------------------------------------------------------------
@pytest.mark.parametrize("level", range(4))
def test_3_user_read_needs_user_at_every_level(level):
    values = [0x2007, 0x3007, 0x4007, 0x5007]
    values[level] &= ~U  # 0x..07 -> 0x..03
    mem = usual_tables(*values)
    r = translate(mem, usual_cpu(), GVA, ACCESS_USER)
    # P | U = 0x5.
    assert r.fault.error_code == 0x5


def test_3_rights_are_anded_read_only_upper_level_still_readable():
    # PML4E W=0 (0x2005): a user read needs only U, so it succeeds;
    # a user write fails because W is ANDed down: P|W|U = 0x7.
    mem = usual_tables(pml4e=0x2005)
    assert translate(mem, usual_cpu(), GVA, ACCESS_USER).gpa == 0x5234
    assert translate(mem, usual_cpu(), GVA, ACCESS_USER | ACCESS_WRITE).fault.error_code == 0x7


# 4 -------------------------------------------------------------------------
def test_4_smep_blocks_supervisor_fetch_from_user_page():
    # cr4 = PAE | SMEP = 0x20 | 0x100000 = 0x100020.
    mem = usual_tables()
    r = translate(mem, usual_cpu(cr4=0x100020), GVA, ACCESS_FETCH)
    # P | F = 0x11 (F reported: EFER.NXE=1).
    assert r.fault.error_code == 0x11


def test_4_smep_allows_fetch_when_any_level_is_supervisor():
    # PDE U=0: 0x4007 -> 0x4003, so the page is a supervisor page.
    mem = usual_tables(pde=0x4003)
    r = translate(mem, usual_cpu(cr4=0x100020), GVA, ACCESS_FETCH)
    assert r.fault is None and r.gpa == 0x5234


# 5 -------------------------------------------------------------------------
def test_5_nx_leaf_supervisor_and_user_fetch():
    nx_pte = NX | 0x5007  # 0x8000000000005007
    r = translate(usual_tables(pte=nx_pte), usual_cpu(), GVA, ACCESS_FETCH)
    assert r.fault.error_code == 0x11  # P | F
    r = translate(usual_tables(pte=nx_pte), usual_cpu(), GVA, ACCESS_FETCH | ACCESS_USER)
    assert r.fault.error_code == 0x15  # P | U | F


def test_5_nx_bit_reserved_without_efer_nxe():
    # efer = LME | LMA = 0x500. Bit 63 is now reserved: P | RSVD = 0x9,
    # and F is not reported because neither NXE nor SMEP is set.
    r = translate(usual_tables(pte=NX | 0x5007), usual_cpu(efer=0x500), GVA, ACCESS_FETCH)
    assert r.fault.error_code == 0x9


# 6 -------------------------------------------------------------------------
def test_6_not_present_leaf():
    # PTE = 0: not present, so no P bit.
    assert translate(usual_tables(pte=0), usual_cpu(), GVA).fault.error_code == 0x0
    r = translate(usual_tables(pte=0), usual_cpu(), GVA, ACCESS_USER | ACCESS_WRITE)
    assert r.fault.error_code == 0x6  # W | U


# 7 -------------------------------------------------------------------------
def test_7_walk_stops_at_first_not_present_entry():
    # PDPTE not present (0x3006: W|U, P=0) and a PDE full of reserved bits
    # (bit 51 with MAXPHYADDR 40, bit 7 with bits 13..20 -> 2 MiB reserved):
    # the PDE is never read, so the fault is not-present: U = 0x4.
    mem = usual_tables(pdpte=0x3006, pde=(1 << 51) | 0x1FE087)
    r = translate(mem, usual_cpu(maxphyaddr=40), GVA, ACCESS_USER)
    assert r.fault.error_code == 0x4
    assert r.level == 3


def test_7_reserved_bits_checked_before_rights():
    # PDE U=0 (0x4003) would deny a user read (0x5), but the PTE has bit 51
    # set with MAXPHYADDR 40: the walk ends there with P|RSVD|U = 0xD.
    mem = usual_tables(pde=0x4003, pte=(1 << 51) | 0x5007)
    r = translate(mem, usual_cpu(maxphyaddr=40), GVA, ACCESS_USER)
    assert r.fault.error_code == 0xD


# 8 -------------------------------------------------------------------------
def test_8_2m_page_and_its_reserved_bit_13():
    # 2 MiB PDE: 0x200000 | PS | P W U = 0x200087 -> gpa 0x200000 + 0x1234.
    mem = usual_tables(pde=0x200087)
    r = translate(mem, usual_cpu(), GVA)
    assert r.gpa == 0x201234 and r.level == 2
    # Bit 13 (0x2000) set: 0x202087 -> P | RSVD = 0x9.
    r = translate(usual_tables(pde=0x202087), usual_cpu(), GVA)
    assert r.fault.error_code == 0x9


def test_8_pml4e_page_size_bit_is_reserved():
    # 0x2007 | PS = 0x2087.
    r = translate(usual_tables(pml4e=0x2087), usual_cpu(), GVA)
    assert r.fault.error_code == 0x9 and r.level == 4


def test_8_1g_page_needs_gbpages():
    # 1 GiB PDPTE: 0x40000000 | PS | P W U = 0x40000087.
    r = translate(usual_tables(pdpte=0x40000087), usual_cpu(), GVA)
    assert r.gpa == 0x40001234 and r.level == 3
    r = translate(usual_tables(pdpte=0x40000087), usual_cpu(gbpages=False), GVA)
    assert r.fault.error_code == 0x9


# 9 -------------------------------------------------------------------------
def test_9_address_bits_at_or_above_maxphyaddr_are_reserved():
    # MAXPHYADDR 36: bit 36 (0x10_0000_0000) in the PTE is reserved.
    mem = usual_tables(pte=(1 << 36) | 0x5007)
    assert translate(mem, usual_cpu(maxphyaddr=36), GVA).fault.error_code == 0x9
    # ... but not with MAXPHYADDR 37: the page is at 0x10_0000_5000.
    r = translate(usual_tables(pte=(1 << 36) | 0x5007), usual_cpu(maxphyaddr=37), GVA)
    assert r.gpa == 0x10_0000_5234


def test_9_bits_52_to_62_ignored_in_4_level_but_reserved_in_pae():
    high = 0x7FF0_0000_0000_0000  # bits 62:52
    r = translate(usual_tables(pte=high | 0x5007), usual_cpu(), GVA)
    assert r.gpa == 0x5234
    # PAE: cr3 = 0x1000 holds the PDPT; PDPTE0 = 0x2000 | P = 0x2001;
    # PD at 0x2000: PDE0 = 0x3007; PT at 0x3000: PTE1 (0x3008) = high | 0x5007.
    mem = GuestMemory(0x10000)
    mem.write64(0x1000, 0x2001)
    mem.write64(0x2000, 0x3007)
    mem.write64(0x3008, high | 0x5007)
    pae = CpuState(cr0=0x80010001, cr3=0x1000, cr4=0x20, efer=0x800)
    assert translate(mem, pae, GVA).fault.error_code == 0x9


# 10 ------------------------------------------------------------------------
def two_level(pde, pte=None):
    """32-bit paging: PD at 0x1000 (PDE0 at 0x1000), PT at 0x2000 (PTE1 at 0x2004)."""
    mem = GuestMemory(0x10000)
    mem.write32(0x1000, pde)
    if pte is not None:
        mem.write32(0x2004, pte)
    return mem


def test_10_32bit_no_nx_and_no_reserved_bits_in_4k_entries():
    # PDE 0x2FFF: every flag bit 0..11 set, including bit 7, which CR4.PSE=0
    # makes "ignored": the PDE still points to the table at 0x2000.
    # PTE 0xFFFFFFFF: all bits set, none reserved -> page 0xFFFFF000.
    mem = two_level(0x2FFF, 0xFFFF_FFFF)
    cpu = CpuState(cr0=0x80010001, cr3=0x1000)
    r = translate(mem, cpu, GVA, ACCESS_FETCH)
    assert r.gpa == 0xFFFF_F234 and r.level == 1


def test_10_32bit_4m_page_pse36_and_reserved_bits():
    cpu = CpuState(cr0=0x80010001, cr3=0x1000, cr4=0x10)  # CR4.PSE
    # 4 MiB PDE: 0x400000 | PS | P W U = 0x400087 -> gpa 0x400000 + 0x1234.
    r = translate(two_level(0x0040_0087), cpu, GVA)
    assert r.gpa == 0x40_1234 and r.level == 2
    # PSE-36: bits 16:13 = 0b0101 (0xA000) give PA bits 35:32 = 5.
    r = translate(two_level(0x0040_A087), cpu, GVA)
    assert r.gpa == 0x5_0040_1234
    # Bit 21 (0x200000) lies in the reserved bits 21:17: P | RSVD = 0x9.
    r = translate(two_level(0x0060_0087), cpu, GVA)
    assert r.fault.error_code == 0x9


def test_10_32bit_fetch_fault_reports_f_with_efer_nx_as_kvm_does():
    # Not-present PTE (0), 32-bit paging with EFER.NXE=1 (efer = 0x800).
    # KVM sets F whenever NXE or SMEP is set: error code F = 0x10.
    # (The SDM would report 0x0 here: NX does not exist in 32-bit paging.)
    mem = two_level(0x2007, 0)
    cpu = CpuState(cr0=0x80010001, cr3=0x1000, efer=0x800)
    assert translate(mem, cpu, GVA, ACCESS_FETCH).fault.error_code == 0x10
    cpu = CpuState(cr0=0x80010001, cr3=0x1000)
    assert translate(mem, cpu, GVA, ACCESS_FETCH).fault.error_code == 0x0


# 11 ------------------------------------------------------------------------
def pae_tables(pdptes):
    """PAE: PDPT at 0x1000 (four PDPTEs), PD at 0x2000, PT at 0x3000, page 0x5000."""
    mem = GuestMemory(0x10000)
    for i, v in enumerate(pdptes):
        mem.write64(0x1000 + 8 * i, v)
    mem.write64(0x2000, 0x3007)
    mem.write64(0x3008, 0x5007)
    return mem


PAE_CPU = dict(cr0=0x80010001, cr3=0x1000, cr4=0x20, efer=0x800)


@pytest.mark.parametrize(
    "bad",
    [
        0x2003,  # bit 1
        0x2005,  # bit 2
        0x2021,  # bit 5
        0x2101,  # bit 8
        (1 << 40) | 0x2001,  # PA bit 40 >= MAXPHYADDR 36
    ],
)
def test_11_pae_reserved_pdpte_is_gp(bad):
    # Any present PDPTE with a reserved bit: the CR3 load fails -> #GP (13), 0.
    mem = pae_tables([0x2001, 0, 0, bad])  # even PDPTE 3, unused by gva 0x1234
    r = translate(mem, CpuState(maxphyaddr=36, **PAE_CPU), GVA)
    assert r.fault.vector == 13 and r.fault.error_code == 0


def test_11_pae_not_present_pdpte_faults_on_use():
    # PDPTE0 = 0x2006: not present (reserved bits of a non-present PDPTE are
    # not checked). The CR3 load is fine; the access is a #PF with P=0.
    mem = pae_tables([0x2006, 0, 0, 0])
    cpu = CpuState(**PAE_CPU)
    assert translate(mem, cpu, GVA).fault.error_code == 0x0
    assert translate(mem, cpu, GVA, ACCESS_USER | ACCESS_WRITE).fault.error_code == 0x6
    # And with the PDPTE present the same address translates: 0x5234.
    assert translate(pae_tables([0x2001, 0, 0, 0]), cpu, GVA).gpa == 0x5234


# 12 ------------------------------------------------------------------------
PKEY1 = 1 << 59  # leaf protection key 1 in bits 62:59
PKE_CR4 = 0x400020  # PAE | PKE


def test_12_pkru_access_disable():
    # PKRU.AD1 = bit 2 -> pkru = 0x4.
    cpu = usual_cpu(cr4=PKE_CR4, pkru=0x4)
    mem = usual_tables(pte=PKEY1 | 0x5007)
    assert translate(mem, cpu, GVA, ACCESS_USER).fault.error_code == 0x25  # P|U|PK
    assert translate(mem, cpu, GVA).fault.error_code == 0x21  # P|PK
    # Fetches ignore protection keys.
    assert translate(mem, cpu, GVA, ACCESS_FETCH | ACCESS_USER).gpa == 0x5234


def test_12_pkru_write_disable():
    # PKRU.WD1 = bit 3 -> pkru = 0x8.
    mem = usual_tables(pte=PKEY1 | 0x5007)
    cpu = usual_cpu(cr4=PKE_CR4, pkru=0x8)
    assert translate(mem, cpu, GVA, ACCESS_USER | ACCESS_WRITE).fault.error_code == 0x27
    assert translate(mem, cpu, GVA, ACCESS_WRITE).fault.error_code == 0x23  # WP=1
    assert translate(mem, cpu, GVA, ACCESS_USER).gpa == 0x5234  # reads are fine
    # Supervisor write with CR0.WP=0 (cr0 = 0x80000001): WD does not apply.
    cpu0 = usual_cpu(cr0=0x80000001, cr4=PKE_CR4, pkru=0x8)
    assert translate(mem, cpu0, GVA, ACCESS_WRITE).gpa == 0x5234


def test_12_pkru_ignores_supervisor_pages_and_non_leaf_keys():
    # Supervisor page (PDE U=0 -> 0x4003) with key 1 and AD1: no PK fault.
    cpu = usual_cpu(cr4=PKE_CR4, pkru=0x4)
    assert translate(usual_tables(pde=0x4003, pte=PKEY1 | 0x5007), cpu, GVA).gpa == 0x5234
    # PDE carries key 2 (1 << 60) and PKRU.AD2 = bit 4 (0x10); the leaf has
    # key 0, whose bits are clear: no fault.
    cpu = usual_cpu(cr4=PKE_CR4, pkru=0x10)
    mem = usual_tables(pde=(1 << 60) | 0x4007)
    assert translate(mem, cpu, GVA, ACCESS_USER).gpa == 0x5234


def test_12_pke_without_long_mode_is_ignored():
    # PAE paging (no LMA) with CR4.PKE: PAE entries have no key; bits 62:59
    # are reserved there, so use key 0 and AD0 (pkru = 0x1): no PK fault.
    mem = pae_tables([0x2001, 0, 0, 0])
    cpu = CpuState(cr0=0x80010001, cr3=0x1000, cr4=PKE_CR4, efer=0x800, pkru=0x1)
    assert translate(mem, cpu, GVA, ACCESS_USER).gpa == 0x5234


# 13 ------------------------------------------------------------------------
def test_13_smap():
    mem = usual_tables()  # a user page
    cpu = usual_cpu(cr4=0x200020)  # PAE | SMAP
    assert translate(mem, cpu, GVA).fault.error_code == 0x1  # P
    assert translate(mem, cpu, GVA, ACCESS_WRITE).fault.error_code == 0x3  # P|W
    ac = usual_cpu(cr4=0x200020, rflags=RFLAGS_AC)
    assert translate(mem, ac, GVA).gpa == 0x5234  # explicit access, AC=1
    # Implicit supervisor access: AC does not help. Error code P = 0x1
    # (the IMPLICIT bit never appears in an error code).
    assert translate(mem, ac, GVA, ACCESS_IMPLICIT).fault.error_code == 0x1
    # User-mode accesses are not affected by SMAP.
    assert translate(mem, cpu, GVA, ACCESS_USER).gpa == 0x5234


# 14 ------------------------------------------------------------------------
def test_14_faulting_walk_sets_no_accessed_bits():
    # User read, PTE U=0 (0x5003): fault 0x5 and every entry unchanged.
    mem = usual_tables(pte=0x5003)
    assert translate(mem, usual_cpu(), GVA, ACCESS_USER).fault.error_code == 0x5
    assert entries(mem) == [0x2007, 0x3007, 0x4007, 0x5003]


def test_14_read_sets_a_only_and_write_later_sets_d():
    mem = usual_tables()
    r = translate(mem, usual_cpu(), GVA)
    assert entries(mem) == [0x2027, 0x3027, 0x4027, 0x5027]  # A, no D
    # The read of a clean page gives no write right (ACC: EXEC 1 | USER 4 = 5).
    assert r.access_rights == 0x5
    r = translate(mem, usual_cpu(), GVA, ACCESS_WRITE)
    assert r.gpa == 0x5234
    assert entries(mem) == [0x2027, 0x3027, 0x4027, 0x5067]  # now D too
    assert translate(mem, usual_cpu(), GVA).access_rights == 0x7  # dirty: W kept


# 15 ------------------------------------------------------------------------
# EPT: EPTP = root 0x1000 | walk length 3 (4 levels) << 3 | WB (6) = 0x101E;
# with A/D enabled, | 0x40 = 0x105E. Tables as the usual ones, non-leaf
# entries RWX = 0x7, leaf 0x5000 | memtype WB (6 << 3 = 0x30) | RWX = 0x5037.
def ept_tables(pte):
    mem = GuestMemory(0x10000)
    mem.write64(0x1000, 0x2007)
    mem.write64(0x2000, 0x3007)
    mem.write64(0x3000, 0x4007)
    mem.write64(0x4008, pte)
    return mem


@pytest.mark.parametrize(
    "pte",
    [0x5032, 0x5036, 0x5017, 0x501F, 0x503F],  # XWR 010, 110; memtype 2, 3, 7
)
def test_15_ept_misconfigurations(pte):
    r = ept_translate(ept_tables(pte), 0x101E, GVA)
    assert r.fault.kind == "misconfig" and r.gpa is None


def test_15_ept_execute_only():
    mem = ept_tables(0x5034)  # XWR = 100
    assert ept_translate(mem, 0x101E, GVA).fault.kind == "violation"  # a read
    assert ept_translate(mem, 0x101E, GVA, ACCESS_FETCH).gpa == 0x5234
    r = ept_translate(mem, 0x101E, GVA, ACCESS_FETCH, execute_only=False)
    assert r.fault.kind == "misconfig"


def test_15_ept_not_present_is_a_violation_and_ad_needs_eptp_bit6():
    # XWR = 000 with memtype bits set (0x5030): not present.
    assert ept_translate(ept_tables(0x5030), 0x101E, GVA).fault.kind == "violation"
    mem = ept_tables(0x5037)
    assert ept_translate(mem, 0x101E, GVA, ACCESS_WRITE).gpa == 0x5234
    assert [mem.read64(a) for a in (0x1000, 0x2000, 0x3000, 0x4008)] == [
        0x2007, 0x3007, 0x4007, 0x5037]  # EPTP bit 6 clear: untouched
    assert ept_translate(mem, 0x105E, GVA, ACCESS_WRITE).gpa == 0x5234
    # A = bit 8 (0x100) everywhere, D = bit 9 (0x200) in the leaf.
    assert [mem.read64(a) for a in (0x1000, 0x2000, 0x3000, 0x4008)] == [
        0x2107, 0x3107, 0x4107, 0x5337]


# 19 ------------------------------------------------------------------------
def test_19_table_outside_memory_is_not_present_fault():
    # CR3 = 0x100000, beyond the 64 KiB of memory: #PF with P=0.
    mem = usual_tables()
    assert translate(mem, usual_cpu(cr3=0x100000), GVA).fault.error_code == 0x0
    r = translate(mem, usual_cpu(cr3=0x100000), GVA, ACCESS_USER | ACCESS_WRITE)
    assert r.fault.vector == 14 and r.fault.error_code == 0x6
    # A PDE pointing beyond memory (0x20_0000 | P W U): same, at level 1.
    mem = usual_tables(pde=0x200007)
    r = translate(mem, usual_cpu(), GVA)
    assert r.fault.error_code == 0x0 and r.level == 1
    assert entries(mem)[:3] == [0x2007, 0x3007, 0x200007]  # no A bits
