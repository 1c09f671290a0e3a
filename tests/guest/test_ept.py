"""EPT walks (violations, misconfigurations, A/D, execute-only, 5 levels) and NPT.

Tables are written by hand; expectations are worked out in comments.

EPT layout for gpa 0x1234 (indexes 0, 0, 0, 1):
    0x1000 PML4E = 0x2000 | RWX          = 0x2007
    0x2000 PDPTE = 0x3000 | RWX          = 0x3007
    0x3000 PDE   = 0x4000 | RWX          = 0x4007
    0x4008 PTE   = 0x5000 | WB(6)<<3 | RWX = 0x5037   -> 0x5234
EPTP = 0x1000 | (4 levels - 1) << 3 | WB = 0x1000 | 0x18 | 6 = 0x101E;
with A/D (bit 6): 0x105E.
"""

import pytest

from refimpl import ACCESS_FETCH, ACCESS_USER, ACCESS_WRITE, GuestMemory, ept_translate
from refimpl.guest.ept import ept_violation_exit_qualification, npt_translate

EPTP4 = 0x101E
EPTP4_AD = 0x105E
ADDRS = (0x1000, 0x2000, 0x3000, 0x4008)


def ept(pml4e=0x2007, pdpte=0x3007, pde=0x4007, pte=0x5037, size=0x6000):
    mem = GuestMemory(size)
    for a, v in zip(ADDRS, (pml4e, pdpte, pde, pte)):
        mem.write64(a, v)
    return mem


def test_success_read_write_fetch():
    for access in (0, ACCESS_WRITE, ACCESS_FETCH):
        r = ept_translate(ept(), EPTP4, 0x1234, access)
        assert r.gpa == 0x5234 and r.fault is None and r.level == 1


@pytest.mark.parametrize(
    "pte, access",
    [
        (0x5035, ACCESS_WRITE),  # R-X: write denied
        (0x5033, ACCESS_FETCH),  # RW-: fetch denied
        (0x5034, 0),  # --X: read denied (execute-only allowed)
        (0x5000, 0),  # not present
    ],
)
def test_violations(pte, access):
    r = ept_translate(ept(pte=pte), EPTP4, 0x1234, access)
    assert r.gpa is None and r.fault.kind == "violation" and r.fault.level == 1


def test_rights_are_anded_over_levels():
    # PDPTE read-only (0x3001): a write is a violation even though the leaf is RWX.
    r = ept_translate(ept(pdpte=0x3001), EPTP4, 0x1234, ACCESS_WRITE)
    assert r.fault.kind == "violation"
    # ... and the exit qualification reports the ANDed rights R only (1 << 3)
    # plus "write" (bit 1): 0x8 | 0x2 = 0xA.
    assert ept_violation_exit_qualification(r.fault) == 0xA
    # PDE execute-only (0x4004): a fetch still works (X everywhere).
    assert ept_translate(ept(pde=0x4004), EPTP4, 0x1234, ACCESS_FETCH).gpa == 0x5234


@pytest.mark.parametrize(
    "where, value",
    [
        ("pml4e", 0x2007 | (1 << 3)),  # bits 7:3 of a level-4 entry
        ("pml4e", 0x2007 | (1 << 7)),
        ("pdpte", 0x3007 | (1 << 6)),  # bits 6:3 of a level-3 table entry
        ("pde", 0x4007 | (1 << 3)),  # bits 6:3 of a level-2 table entry
        ("pdpte", 0x4000_0000 | (1 << 12) | 0xB7),  # 1 GiB leaf, bit 12 of 29:12
        ("pdpte", 0x4000_0000 | (1 << 29) | 0xB7),  # 1 GiB leaf, bit 29
        ("pde", 0x20_0000 | (1 << 20) | 0xB7),  # 2 MiB leaf, bit 20 of 20:12
        ("pte", 0x5037 | (1 << 51)),  # address bit 51 >= MAXPHYADDR (40, below)
        ("pte", 0x5032),  # write without read
        ("pte", 0x5036),  # write+execute without read
        ("pte", 0x5017),  # memory type 2
        ("pte", 0x501F),  # memory type 3
        ("pte", 0x503F),  # memory type 7
    ],
)
def test_misconfigurations(where, value):
    mem = ept(**{where: value})
    r = ept_translate(mem, EPTP4, 0x1234, maxphyaddr=40)
    assert r.fault.kind == "misconfig" and r.gpa is None


def test_address_bits_below_maxphyaddr_are_fine():
    # Bit 39 with MAXPHYADDR 40 is an address bit: 0x80_0000_5234.
    r = ept_translate(ept(pte=(1 << 39) | 0x5037), EPTP4, 0x1234, maxphyaddr=40)
    assert r.gpa == 0x80_0000_5234


def test_large_pages():
    # 1 GiB: PDPTE = 0x4000_0000 | PS (0x80) | WB (0x30) | RWX = 0x4000_00B7.
    r = ept_translate(ept(pdpte=0x4000_00B7), EPTP4, 0x1234)
    assert r.gpa == 0x4000_1234 and r.level == 3
    # 2 MiB: PDE = 0x20_0000 | 0xB7.
    r = ept_translate(ept(pde=0x20_00B7), EPTP4, 0x1234)
    assert r.gpa == 0x20_1234 and r.level == 2


def test_misconfig_wins_over_an_upper_level_denial():
    # PML4E read-only (0x2001) would deny a write, but the leaf has memory
    # type 2 (0x5017): the misconfiguration is reported.
    r = ept_translate(ept(pml4e=0x2001, pte=0x5017), EPTP4, 0x1234, ACCESS_WRITE)
    assert r.fault.kind == "misconfig"


def test_walk_stops_at_not_present_before_lower_misconfig():
    # PDE not present (0x4000); the PTE below is misconfigured but never read.
    r = ept_translate(ept(pde=0x4000, pte=0x5032), EPTP4, 0x1234)
    assert r.fault.kind == "violation" and r.fault.level == 2


def test_execute_only_support():
    mem = ept(pte=0x5034)
    assert ept_translate(mem, EPTP4, 0x1234, ACCESS_FETCH).gpa == 0x5234
    r = ept_translate(mem, EPTP4, 0x1234, ACCESS_FETCH, execute_only=False)
    assert r.fault.kind == "misconfig"
    # Execute-only in an upper level too: PDE 0x4004 without support.
    r = ept_translate(ept(pde=0x4004), EPTP4, 0x1234, ACCESS_FETCH, execute_only=False)
    assert r.fault.kind == "misconfig" and r.fault.level == 2


def test_ad_bits_only_with_eptp_bit6_and_only_on_success():
    mem = ept()
    ept_translate(mem, EPTP4, 0x1234, ACCESS_WRITE)
    assert [mem.read64(a) for a in ADDRS] == [0x2007, 0x3007, 0x4007, 0x5037]
    # A/D on, but the write is denied (leaf R-X, 0x5035): nothing written.
    mem = ept(pte=0x5035)
    assert ept_translate(mem, EPTP4_AD, 0x1234, ACCESS_WRITE).fault.kind == "violation"
    assert [mem.read64(a) for a in ADDRS] == [0x2007, 0x3007, 0x4007, 0x5035]
    # A read with A/D on: A (0x100) everywhere, no D.
    assert ept_translate(mem, EPTP4_AD, 0x1234).gpa == 0x5234
    assert [mem.read64(a) for a in ADDRS] == [0x2107, 0x3107, 0x4107, 0x5135]


def test_table_outside_memory_is_violation():
    r = ept_translate(ept(pde=0x10_0007), EPTP4, 0x1234)
    assert r.fault.kind == "violation" and r.fault.level == 1
    # Root outside memory: nothing read, rights all ones -> RWX 7 in the
    # exit qualification, plus "read" (bit 0): 0x38 | 0x1 = 0x39.
    r = ept_translate(ept(), 0x10_001E, 0x1234)
    assert r.fault.kind == "violation"
    assert ept_violation_exit_qualification(r.fault) == 0x39


def test_five_level_ept():
    # EPTP walk length 4 (five levels): 0x1000 | 4 << 3 | 6 = 0x1026.
    # gpa 0x0001_0000_0000_1234: PML5 index (>>48)&511 = 1 (0x1008), then 0,0,0,1.
    mem = GuestMemory(0x7000)
    mem.write64(0x1008, 0x2007)
    mem.write64(0x2000, 0x3007)
    mem.write64(0x3000, 0x4007)
    mem.write64(0x4000, 0x5007)
    mem.write64(0x5008, 0x6037)
    r = ept_translate(mem, 0x1026, 0x0001_0000_0000_1234)
    assert r.gpa == 0x6234 and r.level == 1 and len(r.trace) == 5
    # A PML5E with bit 7 set is a misconfiguration.
    mem.write64(0x1008, 0x2087)
    assert ept_translate(mem, 0x1026, 0x0001_0000_0000_1234).fault.kind == "misconfig"


def test_exit_qualification_keeps_only_gva_bits_of_hardware_qual():
    # Not-present leaf, fetch: INSTR (bit 2) = 0x4, RWX of a zero entry = 0;
    # hardware qual 0x1FF keeps only bits 7 and 8 (0x180): 0x184.
    r = ept_translate(ept(pte=0), EPTP4, 0x1234, ACCESS_FETCH)
    assert ept_violation_exit_qualification(r.fault, hw_exit_qualification=0x1FF) == 0x184
    r = ept_translate(ept(pte=0x5032), EPTP4, 0x1234)
    with pytest.raises(ValueError, match="fault"):
        ept_violation_exit_qualification(r.fault)


@pytest.mark.parametrize("eptp", [0x1019, 0x101A, 0x101F, 0x1016, 0x102E, 0x1006])
def test_bad_eptp_raises(eptp):
    # Memory types 1, 2, 7 (with walk length 3); walk lengths 2 (0x16),
    # 5 (0x2E), 0 (0x06) with memory type 6.
    with pytest.raises(ValueError, match="eptp"):
        ept_translate(ept(), eptp, 0x1234)


@pytest.mark.parametrize("access", [ACCESS_USER, 1, 1 << 48, 0x8])
def test_bad_access_raises(access):
    with pytest.raises(ValueError, match="access"):
        ept_translate(ept(), EPTP4, 0x1234, access)


def test_bad_types_raise():
    with pytest.raises(TypeError, match="gpa"):
        ept_translate(ept(), EPTP4, 1.0)
    with pytest.raises(TypeError, match="eptp"):
        ept_translate(ept(), True, 0)
    with pytest.raises(ValueError, match="gpa"):
        ept_translate(ept(), EPTP4, -1)
    with pytest.raises(TypeError, match="execute_only"):
        ept_translate(ept(), EPTP4, 0, execute_only="yes")


# --- NPT ---------------------------------------------------------------------
# nCR3 = 0x1000 with the usual four-level layout (x86 entries).
def npt(pte=0x5007, pde=0x4007):
    mem = GuestMemory(0x6000)
    for a, v in zip(ADDRS, (0x2007, 0x3007, pde, pte)):
        mem.write64(a, v)
    return mem


NPT_REGS = dict(cr4=0x20, efer=0xD00)


def test_npt_walk_is_a_user_walk():
    r = npt_translate(npt(), 0x1000, 0x1234, ACCESS_WRITE, **NPT_REGS)
    assert r.gpa == 0x5234
    # A supervisor page (PDE U=0: 0x4003) is not reachable: P|U = 0x5.
    r = npt_translate(npt(pde=0x4003), 0x1000, 0x1234, **NPT_REGS)
    assert r.fault.vector == 14 and r.fault.error_code == 0x5
    # Write to a read-only page: P|W|U = 0x7.
    r = npt_translate(npt(pte=0x5005), 0x1000, 0x1234, ACCESS_WRITE, **NPT_REGS)
    assert r.fault.error_code == 0x7
    # Not present: U only = 0x4; A bits written only on success.
    mem = npt(pte=0)
    assert npt_translate(mem, 0x1000, 0x1234, **NPT_REGS).fault.error_code == 0x4
    assert mem.read64(0x1000) == 0x2007


def test_npt_ignores_pke_and_smap():
    # CR4.PKE | SMAP | PAE = 0x600020, leaf key 1: no PK, no SMAP (user walk).
    mem = npt(pte=(1 << 59) | 0x5007)
    assert npt_translate(mem, 0x1000, 0x1234, cr4=0x600020, efer=0xD00).gpa == 0x5234


def test_npt_pae_pdptes_read_without_checks():
    # PAE NPT (L1 not in long mode): PDPTE0 with reserved bit 5 (0x2021) is
    # used as is (KVM's nested PDPTE read does not check), reaching PD 0x2000.
    mem = GuestMemory(0x6000)
    mem.write64(0x1000, 0x2021)
    mem.write64(0x2000, 0x3007)
    mem.write64(0x3008, 0x5007)
    r = npt_translate(mem, 0x1000, 0x1234, cr4=0x20, efer=0x800)
    assert r.gpa == 0x5234


def test_npt_invalid_registers_raise():
    with pytest.raises(ValueError, match="efer"):
        npt_translate(npt(), 0x1000, 0x1234, cr4=0, efer=0x500)  # LMA without PAE


def test_fault_kinds_are_str_enums_equal_to_their_strings():
    """EPT and nested fault kinds are enum members that still equal the
    strings the API documents (so comparisons written with strings hold)."""
    from refimpl.guest.ept import EptFaultKind
    from refimpl.guest.nested import NestedFaultKind

    assert [k.value for k in EptFaultKind] == ["violation", "misconfig"]
    assert EptFaultKind.VIOLATION == "violation" and EptFaultKind.MISCONFIG == "misconfig"
    assert f"{EptFaultKind.MISCONFIG}" == "misconfig"
    assert [k.value for k in NestedFaultKind] == [
        "#PF", "#GP", "EPT violation", "EPT misconfiguration", "#NPF"]
    assert NestedFaultKind.NPF == "#NPF" and str(NestedFaultKind.EPT_VIOLATION) == "EPT violation"
    # A walk of an empty EPT: the root entry is not present, a violation.
    r = ept_translate(GuestMemory(0x2000), 0x101E, 0)
    assert r.fault.kind is EptFaultKind.VIOLATION and r.fault.kind == "violation"
