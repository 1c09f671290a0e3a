"""One directed test per rule of the two-dimensional walk, worked out from KVM's source.

Each test names the function and line its expectation comes from; the rules
and the copies read are in ``refimpl/story/facts/nested.py`` (keys
``nested.*``). Numbers are worked by hand, never computed by the model.

Layout (all tests): L1 memory is 4 MiB. L1's second dimension maps L2 page
``P`` to L1 page ``P + 1 MiB`` for ``P`` in [0, 2 MiB) with 4 KiB pages:
a four-level table at L1 0x1000 -> 0x2000 -> 0x3000 -> 0x4000, whose last
level holds the entry for L2 page ``P`` at ``0x4000 + 8 * (P >> 12)``. For
EPT the entries are ``RWX`` with memory type WB in leaves (EPTP 0x101E, or
0x105E with A/D); for NPT they are ``P|W|U`` (nCR3 0x1000, L1 in long mode
with EFER.NX).

L2 four-level (CR3 = L2 0x1000): gva 0x1234 -> L2 tables at L2 0x1000,
0x2000, 0x3000, 0x4000 (PTE at L2 0x4008) -> L2 page 0x9000 -> L1 0x109234.
"""

from __future__ import annotations

import random

import pytest

import refimpl
from refimpl import ACCESS_FETCH, ACCESS_USER, ACCESS_WRITE, CpuState, GuestMemory
from refimpl.guest import nested
from refimpl.guest.formats import CR0, CR4, EPT_EXIT_QUAL, PFERR
from refimpl.guest.nested import (
    PFERR_GUEST_FINAL,
    PFERR_GUEST_PAGE,
    NestedFault,
    NestedFaultKind,
    emulated_ept_exit_qualification,
    nested_translate,
)
from refimpl.guest.faults import WalkError

OFF = 0x100000
EPTP, EPTP_AD = 0x101E, 0x105E
EFER_LME, EFER_LMA, EFER_NX = 1 << 8, 1 << 10, 1 << 11
NPT = dict(ncr3=0x1000, l1_cr4=CR4.PAE.bit, l1_efer=EFER_LME | EFER_LMA | EFER_NX)
PAGING = CR0.PE.bit | CR0.PG.bit | CR0.WP.bit
LONG4 = dict(cr0=PAGING, cr4=CR4.PAE.bit, efer=EFER_LME | EFER_LMA | EFER_NX)
Q = EPT_EXIT_QUAL
READ, WRITE, INSTR = Q.ACC_READ.bit, Q.ACC_WRITE.bit, Q.ACC_INSTR.bit      # 0x1, 0x2, 0x4
VALID, TRANSLATED = Q.GVA_IS_VALID.bit, Q.GVA_TRANSLATED.bit              # 0x80, 0x100
P, W, U, RSVD, F = 0x1, 0x2, 0x4, 0x8, 0x10
EPT_A, EPT_D = 1 << 8, 1 << 9
WB = 6 << 3


def world(kind: str) -> tuple[GuestMemory, dict]:
    """L1 memory with the second dimension above, and its nested_translate keywords."""
    mem = GuestMemory(0x400000)
    for table, nxt in ((0x1000, 0x2000), (0x2000, 0x3000), (0x3000, 0x4000)):
        mem.write64(table, nxt | 7)  # EPT: R|W|X; NPT: P|W|U
    for i in range(512):
        second(mem, kind, i << 12, "rwx")
    return mem, (dict(eptp=EPTP) if kind == "ept" else dict(NPT))


def second(mem: GuestMemory, kind: str, l2_page: int, rights: str, target: int | None = None):
    """Map L2 page ``l2_page`` with ``rights`` (a subset of "rwx"; "" = not present)."""
    target = OFF + l2_page if target is None else target
    if not rights:
        value = 0
    elif kind == "ept":
        value = target | WB | ("r" in rights) | ("w" in rights) << 1 | ("x" in rights) << 2
    else:  # NPT: readable = P|U; W; NX unless x
        value = target | P | U | ("w" in rights) << 1 | (0 if "x" in rights else 1 << 63)
    mem.write64(0x4000 + 8 * (l2_page >> 12), value)


def l2_four_level(mem: GuestMemory, pte: int = 0x9007) -> CpuState:
    for l2, value in ((0x1000, 0x2007), (0x2000, 0x3007), (0x3000, 0x4007), (0x4008, pte)):
        mem.write64(OFF + l2, value)
    return CpuState(cr3=0x1000, **LONG4)


def l2_pae(mem: GuestMemory) -> CpuState:
    """PAE L2: CR3 = L2 0x10020 (PDPT 32 bytes into page 0x10000); gva 0x345 ->
    PDPTE 0 -> PD L2 0x11000 -> PT L2 0x12000 -> page L2 0x13000."""
    mem.write64(OFF + 0x10020, 0x11000 | P)
    mem.write64(OFF + 0x11000, 0x12000 | 7)
    mem.write64(OFF + 0x12000, 0x13000 | 7)
    return CpuState(cr0=PAGING, cr3=0x10020, cr4=CR4.PAE.bit, efer=EFER_NX)


# ---------------------------------------------------------------------------
# The stable API: importable from refimpl, with its result fields.
# ---------------------------------------------------------------------------


def test_nested_translate_is_the_top_level_api_with_gpa():
    # /work-level API document: `from refimpl import nested_translate`; the
    # result has `gpa` (the L1 address), `level`, `trace`, `fault`.
    assert refimpl.nested_translate is nested.nested_translate
    assert "nested_translate" in refimpl.__all__
    mem, kw = world("ept")
    r = refimpl.nested_translate(mem, l2_four_level(mem), 0x1234, **kw)
    assert (r.gpa, r.l1_gpa, r.level, r.fault) == (0x109234, 0x109234, 1, None)
    assert len(r.trace) == 24


# ---------------------------------------------------------------------------
# Behaviour 1: load_pdptrs passes no exception pointer (nested.load_pdptrs-no-exception).
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ept", "npt"])
def test_pae_l2_succeeds_when_l1_maps_the_pdpt(kind):
    mem, kw = world(kind)
    r = nested_translate(mem, l2_pae(mem), 0x345, **kw)
    assert (r.fault, r.gpa, r.l2_gpa) == (None, 0x113345, 0x13345)


@pytest.mark.parametrize("kind, rights", [("ept", ""), ("ept", "r"), ("ept", "rx"),
                                          ("npt", ""), ("npt", "r")])
def test_pae_pdpt_page_l1_does_not_map_rw_is_gp_in_l2(kind, rights):
    """x86.c load_pdptrs: real_gpa = kvm_translate_gpa(vcpu, mmu, gfn_to_gpa(pdpt_gfn),
    PFERR_USER_MASK | PFERR_WRITE_MASK, NULL); INVALID_GPA -> return 0. The NULL
    exception means the inner fault is dropped; kvm_set_cr3 returns 1 -> #GP(0)
    in L2. Not mapped, or mapped without W (W|U is needed), both fail."""
    mem, kw = world(kind)
    cpu = l2_pae(mem)
    second(mem, kind, 0x10000, rights)
    f = nested_translate(mem, cpu, 0x345, **kw).fault
    assert (f.target, f.kind, f.vector, f.error_code, f.address) == ("L2", "#GP", 13, 0, 0)
    assert (f.exit_qualification, f.exit_info_1, f.exit_info_2, f.final) == (
        None, None, None, False)
    assert f.reason is WalkError.BAD_PDPTE


def test_pae_pdpt_load_sets_ept_a_and_d_only_when_it_succeeds():
    """The load_pdptrs translation is an ordinary inner walk with W|U: with EPT A/D
    on, success sets A on every EPT entry and D on the PDPT page's leaf; the
    failed walk (page R-only) sets nothing."""
    mem, _ = world("ept")
    cpu = l2_pae(mem)
    nested_translate(mem, cpu, 0x345, eptp=EPTP_AD)
    assert mem.read64(0x4000 + 8 * 0x10) & (EPT_A | EPT_D) == EPT_A | EPT_D
    mem, _ = world("ept")
    cpu = l2_pae(mem)
    second(mem, "ept", 0x10000, "r")
    nested_translate(mem, cpu, 0x345, eptp=EPTP_AD)
    assert mem.read64(0x4000 + 8 * 0x10) & (EPT_A | EPT_D) == 0
    assert mem.read64(0x1000) & EPT_A == 0


def _delivered_to_l2_as_gp(f: NestedFault) -> bool:
    return f.target == "L2" and f.kind == NestedFaultKind.GP and f.exit_qualification is None


def test_planted_mistake_pdpt_failure_routed_to_l1_is_caught():
    # What the model did before: the failed PDPT translation exited to L1 as an
    # EPT violation on the PDPT page (a table access, not final).
    planted = NestedFault("L1", NestedFaultKind.EPT_VIOLATION, 0x10000, U | W,
                          WalkError.NOT_PRESENT, 1, False,
                          exit_qualification=WRITE | READ | VALID)
    assert not _delivered_to_l2_as_gp(planted)
    mem, kw = world("ept")
    cpu = l2_pae(mem)
    second(mem, "ept", 0x10000, "")
    assert _delivered_to_l2_as_gp(nested_translate(mem, cpu, 0x345, **kw).fault)


# ---------------------------------------------------------------------------
# Behaviour 2: nonpaging_gva_to_gpa passes the whole address (nested.nonpaging-whole-address).
# ---------------------------------------------------------------------------

NONPAGING = CpuState(cr0=CR0.PE.bit, cr3=0)


@pytest.mark.parametrize("gva", [0x9234, 0x9FFF, 0x9000])
def test_nonpaging_l2_ept_violation_reports_the_whole_address(gva):
    """mmu.c nonpaging_gva_to_gpa: kvm_translate_gpa(vcpu, mmu, vaddr, access, ...):
    the EPT walk's addr is vaddr, and its error path sets fault.address = addr;
    nested_ept_inject_page_fault copies it to guest_physical_address. A read:
    ACC_READ | GVA_IS_VALID | GVA_TRANSLATED (not a paging-structure access);
    RWX 0 (the PTE is not present). Error code: U only."""
    mem, kw = world("ept")
    second(mem, "ept", 0x9000, "")
    f = nested_translate(mem, NONPAGING, gva, **kw).fault
    assert (f.target, f.kind, f.address, f.final) == ("L1", "EPT violation", gva, True)
    assert f.exit_qualification == READ | VALID | TRANSLATED == 0x181
    assert f.error_code == U


def test_nonpaging_l2_npf_reports_the_whole_address():
    """Same path through the NPT walker: exit_info_2 = fault->address = 0x9234;
    exit_info_1 = W|U (a write, not present) | GUEST_FINAL."""
    mem, kw = world("npt")
    second(mem, "npt", 0x9000, "")
    f = nested_translate(mem, NONPAGING, 0x9234, ACCESS_WRITE, **kw).fault
    assert (f.kind, f.exit_info_2, f.address) == ("#NPF", 0x9234, 0x9234)
    assert f.exit_info_1 == W | U | PFERR_GUEST_FINAL


def test_nonpaging_l2_success_keeps_the_offset():
    # FNAME(gva_to_gpa): gpa = gfn_to_gpa(walker.gfn) | (addr & ~PAGE_MASK).
    mem, kw = world("ept")
    r = nested_translate(mem, NONPAGING, 0x9234, **kw)
    assert (r.gpa, r.l2_gpa, r.fault) == (0x109234, 0x9234, None)


def test_planted_mistake_page_aligned_nonpaging_address_is_caught(monkeypatch):
    # The old reading: translate the page, not the address.
    original = nested._Inner.translate
    monkeypatch.setattr(nested._Inner, "translate",
                        lambda self, a, acc: original(self, a & ~0xFFF, acc))
    mem, kw = world("ept")
    second(mem, "ept", 0x9000, "")
    f = nested_translate(mem, NONPAGING, 0x9234, **kw).fault
    assert f.address == 0x9000 != 0x9234  # the directed test above would fail


def test_paging_l2_reports_page_addresses():
    """walk_addr_generic translates gfn_to_gpa(table_gfn) and gfn_to_gpa(gfn): pages.
    So with paging on, the final page L2 0x9000 is reported, not 0x9234."""
    mem, kw = world("ept")
    cpu = l2_four_level(mem)
    second(mem, "ept", 0x9000, "")
    f = nested_translate(mem, cpu, 0x1234, **kw).fault
    assert (f.address, f.final) == (0x9000, True)


# ---------------------------------------------------------------------------
# Inner access bits (nested.inner-access-*).
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("eptp", [EPTP, EPTP_AD])
def test_table_translation_is_write_user_whatever_the_eptp_ad_bit(eptp):
    """paging_tmpl.h: nested_access = (have_ad ? W : 0) | U, have_ad of L2's own
    (64-bit) format: always W|U. L2's PD page (L2 0x3000) mapped R-only: the W
    fails -> EPT violation on 0x3000, not final. Error code P (rights) | W | U = 7.
    Qualification (newest): WRITE (one access bit), READ (paging structure),
    GVA_IS_VALID, RWX = 7 & 7 & 7 & 1 = R -> 1 << 3: 0x8B."""
    mem, _ = world("ept")
    cpu = l2_four_level(mem)
    second(mem, "ept", 0x3000, "r")
    f = nested_translate(mem, cpu, 0x1234, eptp=eptp).fault
    assert (f.kind, f.address, f.final, f.error_code) == ("EPT violation", 0x3000, False, 7)
    assert f.exit_qualification == WRITE | READ | VALID | 1 << 3 == 0x8B


@pytest.mark.parametrize("access, qual_bit, errcode", [
    (0, READ, U),                                 # read: U only
    (ACCESS_USER, READ, U),                       # U was there already
    (ACCESS_WRITE, WRITE, W | U),
    (ACCESS_FETCH, INSTR, U),                     # no F: the EPT role has no NX/SMEP
    (ACCESS_FETCH | ACCESS_USER, INSTR, U),
])
def test_final_translation_access_bits(access, qual_bit, errcode):
    """Final page not present in the EPT (RWX 0). The final translation uses the
    access itself, plus U (translate_nested_gpa). Error code: W|U from the access,
    F never (error: F only if is_efer_nx || is_cr4_smep of the EPT role, both 0).
    Qualification: exactly one of WRITE / INSTR / READ, GVA_IS_VALID, and
    GVA_TRANSLATED for the final access."""
    mem, kw = world("ept")
    cpu = l2_four_level(mem, pte=0x9007)
    second(mem, "ept", 0x9000, "")
    f = nested_translate(mem, cpu, 0x1234, access, **kw).fault
    assert (f.kind, f.final, f.error_code) == ("EPT violation", True, errcode)
    assert f.exit_qualification == qual_bit | VALID | TRANSLATED


def test_ept_error_code_never_has_fetch_property():
    """For every EPT right on the final page and every access, the EPT walker's
    error code lacks F, and has W exactly when the access writes, U always."""
    rng = random.Random(16)
    for _ in range(60):
        rights = "".join(c for c in "rwx" if rng.random() < 0.5)
        if rights in ("w", "wx"):
            continue  # W without R is a misconfiguration (RSVD), tested below
        access = rng.choice([0, ACCESS_WRITE, ACCESS_FETCH, ACCESS_USER | ACCESS_FETCH,
                             ACCESS_USER | ACCESS_WRITE])
        mem, kw = world("ept")
        cpu = l2_four_level(mem)
        second(mem, "ept", 0x9000, rights)
        f = nested_translate(mem, cpu, 0x1234, access, **kw).fault
        if f is None or f.target == "L2":
            continue
        assert not f.error_code & F, (rights, access)
        assert bool(f.error_code & W) == bool(access & ACCESS_WRITE) and f.error_code & U


def test_ept_misconfiguration_error_code_and_no_qualification():
    """error: errcode = RSVD|P, then |= W|U of a table access: 0xF; RSVD in the
    error code -> EXIT_REASON_EPT_MISCONFIG, no exit qualification."""
    mem, kw = world("ept")
    cpu = l2_four_level(mem)
    second(mem, "ept", 0x4000, "w")  # W without R
    f = nested_translate(mem, cpu, 0x1234, **kw).fault
    assert (f.kind, f.address, f.error_code, f.exit_qualification) == (
        "EPT misconfiguration", 0x4000, RSVD | P | W | U, None)


def test_ept_rwx_is_the_and_down_to_the_failing_entry():
    """pte_access = pt_access & pte before the checks. EPT PDE (L1 0x3000) R|X,
    every leaf RWX: the first table translation (L2 0x1000, W|U) fails at the
    leaf on rights with RWX = 7 & 7 & 5 & 7 = 5: WRITE|READ|VALID|5 << 3 = 0xAB."""
    mem, kw = world("ept")
    cpu = l2_four_level(mem)
    mem.write64(0x3000, 0x4000 | 5)
    f = nested_translate(mem, cpu, 0x1234, **kw).fault
    assert (f.address, f.final, f.error_code) == (0x1000, False, P | W | U)
    assert f.exit_qualification == 0xAB


def test_emulated_exit_qualification_table():
    # The newest walker's error: path, worked case by case.
    assert emulated_ept_exit_qualification(0, 0, paging_structure=False) == 0x181
    assert emulated_ept_exit_qualification(ACCESS_WRITE, 1, paging_structure=False) == 0x18A
    assert emulated_ept_exit_qualification(ACCESS_FETCH, 4, paging_structure=False) == 0x1A4
    assert emulated_ept_exit_qualification(ACCESS_WRITE, 0, paging_structure=True) == 0x83
    assert emulated_ept_exit_qualification(ACCESS_WRITE | ACCESS_FETCH, 0,
                                           paging_structure=False) == 0x182  # W wins
    with pytest.raises(TypeError, match="paging_structure"):
        emulated_ept_exit_qualification(0, 0, paging_structure="yes")


def test_planted_mistake_classic_read_bit_is_caught(monkeypatch):
    # The classic walker ORs READ for every access (U forced); on a final write
    # that gives 0x18B, which the directed expectation (0x18A) rejects.
    def classic(access, ept_rwx, *, paging_structure):
        q = READ | (WRITE if access & ACCESS_WRITE else 0) | (INSTR if access & ACCESS_FETCH else 0)
        return q | VALID | (0 if paging_structure else TRANSLATED) | (ept_rwx & 7) << 3
    monkeypatch.setattr(nested, "emulated_ept_exit_qualification", classic)
    mem, kw = world("ept")
    cpu = l2_four_level(mem)
    second(mem, "ept", 0x9000, "r")
    f = nested_translate(mem, cpu, 0x1234, ACCESS_WRITE, **kw).fault
    assert f.exit_qualification == 0x18B != 0x18A


# ---------------------------------------------------------------------------
# NPT: exit_info_1/2 (nested.npf-exit-info, nested.npt-errcode-fetch).
# ---------------------------------------------------------------------------


def test_npf_table_and_final_stage_bits():
    """Table: error code W|U (not present) | GUEST_PAGE; final read of a page the
    NPT does not map: U | GUEST_FINAL; exit_info_2 the (page) L2 gpa."""
    mem, kw = world("npt")
    cpu = l2_four_level(mem)
    second(mem, "npt", 0x2000, "")
    f = nested_translate(mem, cpu, 0x1234, **kw).fault
    assert (f.exit_info_1, f.exit_info_2, f.final) == (W | U | PFERR_GUEST_PAGE, 0x2000, False)
    mem, kw = world("npt")
    cpu = l2_four_level(mem)
    second(mem, "npt", 0x9000, "")
    f = nested_translate(mem, cpu, 0x1234, **kw).fault
    assert (f.exit_info_1, f.exit_info_2, f.final) == (U | PFERR_GUEST_FINAL, 0x9000, True)
    assert f.error_code == f.exit_info_1


def test_npf_fetch_has_f_when_l1_has_nx():
    """The NPT walker is the 64-bit copy with L1's EFER.NX: a fetch from an NX page
    is a rights fault P | U | F (F because is_efer_nx), plus GUEST_FINAL."""
    mem, kw = world("npt")
    cpu = l2_four_level(mem)
    second(mem, "npt", 0x9000, "rw")  # NX
    f = nested_translate(mem, cpu, 0x1234, ACCESS_FETCH, **kw).fault
    assert f.exit_info_1 == P | U | F | PFERR_GUEST_FINAL


# ---------------------------------------------------------------------------
# A/D in both dimensions, and who receives what.
# ---------------------------------------------------------------------------


def test_l2_ad_set_only_after_the_final_translation():
    """update_accessed_dirty_bits runs after kvm_translate_gpa of the final gfn.
    Final page not mapped: L2's entries stay without A, while the EPT entries of
    L2's four table pages (translated with W|U, A/D on) have A and D."""
    mem, _ = world("ept")
    cpu = l2_four_level(mem)
    second(mem, "ept", 0x9000, "")
    assert nested_translate(mem, cpu, 0x1234, eptp=EPTP_AD).fault.target == "L1"
    A = 1 << 5
    for l1 in (OFF + 0x1000, OFF + 0x2000, OFF + 0x3000, OFF + 0x4008):
        assert not mem.read64(l1) & A, hex(l1)
    for page in (0x1000, 0x2000, 0x3000, 0x4000):
        assert mem.read64(0x4000 + 8 * (page >> 12)) & (EPT_A | EPT_D) == EPT_A | EPT_D
    # Now map it: a write sets A on all four L2 entries and D on the leaf, and
    # the final page's EPT leaf gets A and D (the write went through it).
    second(mem, "ept", 0x9000, "rwx")
    assert nested_translate(mem, cpu, 0x1234, ACCESS_WRITE, eptp=EPTP_AD).fault is None
    assert mem.read64(OFF + 0x4008) & 0x60 == 0x60
    assert mem.read64(0x4000 + 8 * 9) & (EPT_A | EPT_D) == EPT_A | EPT_D


def test_l1_gpa_without_memory_is_a_pf_for_l2():
    """The EPT maps L2's PT page to L1 8 MiB, beyond memory: no memslot -> error:
    with errcode 0 | W | U for a user write: #PF(6) for L2 at the gva."""
    mem, kw = world("ept")
    cpu = l2_four_level(mem)
    second(mem, "ept", 0x4000, "rwx", target=0x800000)
    f = nested_translate(mem, cpu, 0x1234, ACCESS_USER | ACCESS_WRITE, **kw).fault
    assert (f.target, f.kind, f.error_code, f.address) == ("L2", "#PF", W | U, 0x1234)


def test_routing_l2_table_fault_is_pf_l1_table_fault_is_exit():
    mem, kw = world("ept")
    cpu = l2_four_level(mem, pte=0)                      # L2 PTE not present
    f = nested_translate(mem, cpu, 0x1234, **kw).fault
    assert (f.target, f.kind, f.vector, f.error_code) == ("L2", "#PF", 14, 0)
    mem, kw = world("ept")
    cpu = l2_four_level(mem)
    second(mem, "ept", 0x4000, "")                       # L2's PT page not in the EPT
    f = nested_translate(mem, cpu, 0x1234, **kw).fault
    assert (f.target, f.kind, f.vector) == ("L1", "EPT violation", None)
    assert PFERR.U == U


# ---------------------------------------------------------------------------
# A legacy NPT ignores L2 gpa bits 63:32 (nested.npt-legacy-index-bits).
# ---------------------------------------------------------------------------


def legacy_npt_world() -> tuple[GuestMemory, CpuState, dict]:
    """L1 with a 32-bit NPT (CR4 = EFER = 0; nCR3 0x1000: PD, PDE 0 -> PT 0x2000,
    PTE i -> L1 OFF + i * 4 KiB), and a PAE L2 whose PD sits at L2 gpa
    0x1_0000_3000, above 4 GiB. gva 0x345: PDPTE 0 -> PD -> PDE 0 -> PT L2 0x4000
    -> PTE 0 -> page L2 0x13000."""
    mem = GuestMemory(0x400000)
    mem.write32(0x1000, 0x2000 | 7)
    for i in range(512):
        mem.write32(0x2000 + 4 * i, (OFF + (i << 12)) | 7)
    mem.write64(OFF + 0x10020, 0x1_0000_3000 | P)
    mem.write64(OFF + 0x3000, 0x4000 | 7)        # where bits 31:0 of the PD's gpa lead
    mem.write64(OFF + 0x4000, 0x13000 | 7)
    cpu = CpuState(cr0=PAGING, cr3=0x10020, cr4=CR4.PAE.bit)
    return mem, cpu, dict(ncr3=0x1000, l1_cr4=0, l1_efer=0)


def test_legacy_npt_translates_an_l2_gpa_above_4gib_by_its_low_32_bits():
    """The 32-bit walker indexes with PT32_INDEX (bits 31:22, 21:12) and adds back
    addr & ~PAGE_MASK: L2 gpa 0x1_0000_3000 is walked as 0x3000 -> L1 0x103000.
    So the walk succeeds: gva 0x345 -> L2 0x13345 -> L1 0x113345."""
    mem, cpu, kw = legacy_npt_world()
    r = nested_translate(mem, cpu, 0x345, **kw)
    assert (r.fault, r.gpa) == (None, 0x113345)
    pd = [t for t in r.trace if t.dimension == "L2" and t.level == 2]
    assert [(t.address, t.l2_gpa) for t in pd] == [(OFF + 0x3000, 0x1_0000_3000)]


def test_legacy_npt_fault_reports_the_address_as_given():
    """The same, with the NPT PTE of page 3 not present: the table walk (W|U)
    fails -> exit_info_1 = W|U | GUEST_PAGE, exit_info_2 = fault->address = the
    address the walker was given, 0x1_0000_3000, high bits and all."""
    mem, cpu, kw = legacy_npt_world()
    mem.write32(0x2000 + 4 * 3, 0)
    f = nested_translate(mem, cpu, 0x345, **kw).fault
    assert (f.kind, f.exit_info_1, f.exit_info_2) == (
        "#NPF", W | U | PFERR_GUEST_PAGE, 0x1_0000_3000)
