"""tdp12_mmu / guest_mmu (refimpl.host.tdp12): L0's shadow of L1's EPT (and NPT) for L2.

Hand-worked layout used by the directed tests (numbers by hand):

L1 memory is 4 MiB (1024 frames). Memslot 0 maps L1 gfns [0, 0x200), memslot 1
[0x200, 0x300); L1 gfn 0x320 is in no memslot (MMIO for L0).
EPT12 "A" (EPTP 0x101E: WB, four levels, A/D off):
    PML4 0x1000 [0] -> PDPT 0x2000 [0] -> PD 0x3000 [0] -> PT 0x4000,
    PT entry i -> L1 gfn 0x100 + i, RWX, memory type WB (i < 16).
EPT12 "B" (EPTP 0x501E): PML4 0x5000 -> PDPT 0x6000 -> PD 0x7000 -> PT 0x8000,
    PT entry i -> L1 gfn 0x120 + i.
So L2 gpa 0x3123 under A is L1 gpa 0x103123, host frame = memslot 0's frame for
gfn 0x103.

The stateful machine (NestedEptMachine) checks, after every step, every host
frame L2 can reach through EPT02 against its own model of EPT12 (a walker
written here, not refimpl's), with a set of translations L1's tables gave since
the last INVEPT that names them (leaf edits may stay visible until then).
A soak run with more steps, from the repository root::

    from hypothesis import settings
    from hypothesis.stateful import run_state_machine_as_test
    from tests.host.test_tdp12 import NestedEptMachine
    run_state_machine_as_test(NestedEptMachine, settings=settings(
        max_examples=2000, stateful_step_count=100, deadline=None))
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test,
)

from refimpl import GuestMemory
from refimpl.guest.formats import EPT_EXIT_QUAL, PFERR
from refimpl.guest.nested import PFERR_GUEST_FINAL
from refimpl.host.shadow_mmu import ShadowMmu
from refimpl.host.tdp12 import (
    INVEPT_GLOBAL, INVEPT_SINGLE_CONTEXT, TDP12_BUGS, Tdp12Mmu, npt_access, shadow_npt_vcpu,
)
from refimpl.host.tdp_mmu import TdpMmu
from refimpl.host.vm import HostMemory, Kvm
from refimpl.guest.walker import ACCESS_FETCH, ACCESS_WRITE

R, W, X = 1, 2, 4
RWX = 7
WB = 6 << 3
PS = 1 << 7
EPTP_A, EPTP_B = 0x101E, 0x501E
AD = 1 << 6
READ_Q, WRITE_Q, INSTR_Q = (EPT_EXIT_QUAL.ACC_READ.bit, EPT_EXIT_QUAL.ACC_WRITE.bit,
                            EPT_EXIT_QUAL.ACC_INSTR.bit)
GVA_Q = EPT_EXIT_QUAL.GVA_IS_VALID.bit | EPT_EXIT_QUAL.GVA_TRANSLATED.bit  # 0x180
NO_SLOT_GFN = 0x320


def world(*, bugs=()):
    """Host, L1's VM with its two memslots, L1 memory with EPT12 A and B."""
    host = HostMemory(0x1000)
    kvm = Kvm(host, guest_maxphyaddr=36)
    kvm.add_memslot(0, 0, 0x200)
    kvm.add_memslot(1, 0x200, 0x100)
    mem = GuestMemory(1024 << 12)
    for root, pdpt, pd, pt, data in ((0x1000, 0x2000, 0x3000, 0x4000, 0x100),
                                     (0x5000, 0x6000, 0x7000, 0x8000, 0x120)):
        mem.write64(root, pdpt | RWX)
        mem.write64(pdpt, pd | RWX)
        mem.write64(pd, pt | RWX)
        for i in range(16):
            mem.write64(pt + 8 * i, ((data + i) << 12) | WB | RWX)
    mmu = Tdp12Mmu(kvm, mem, bugs=bugs)
    return kvm, mem, mmu


def hfn(kvm, l1_gfn):
    return kvm.gfn_to_hfn(l1_gfn)


def store(mmu, vc, gpa, value):
    """L1 stores one EPT12 entry (8 bytes): trapped or direct."""
    return mmu.guest_write(vc, gpa, value.to_bytes(8, "little"))


# ---------------------------------------------------------------------------
# Directed, hand-worked cases
# ---------------------------------------------------------------------------


def test_fault_in_builds_ept02_from_ept12_and_memslot():
    kvm, mem, mmu = world()
    vc = mmu.add_vcpu(EPTP_A)
    r = mmu.access(vc, 0x3123, ACCESS_WRITE)
    assert r.path == "hardware" and r.exits == 1          # one EPT violation of EPT02
    assert r.hpa == (hfn(kvm, 0x103) << 12) | 0x123
    # One shadow page per EPT12 table on the path, guest_mode in every role;
    # the three upper tables are write-tracked, the PT page only write-protected.
    sps = mmu.shadow_pages()
    assert [(sp.gfn, sp.role.level, sp.role.guest_mode) for sp in sps] == [
        (1, 4, 1), (2, 3, 1), (3, 2, 1), (4, 1, 1)]
    assert sorted(mmu.write_track) == [1, 2, 3]
    # The second access needs no exit.
    again = mmu.access(vc, 0x3456, ACCESS_WRITE)
    assert (again.path, again.exits, again.hpa) == ("hardware", 0, (hfn(kvm, 0x103) << 12) | 0x456)


def test_memory_type_comes_from_l0_not_from_l1s_entry():
    kvm, mem, mmu = world()
    mem.write64(0x4000 + 8 * 5, (0x105 << 12) | (0 << 3) | RWX)   # L1 says UC (type 0)
    vc = mmu.add_vcpu(EPTP_A)
    assert mmu.access(vc, 0x5000).path == "hardware"
    [(sp, i, spte)] = [t for t in mmu.leaf_sptes() if t[1] == 5]
    assert (spte >> 3) & 7 == 6 and spte & (1 << 6)             # WB | IPAT, L0's choice
    assert spte & 7 == RWX


def test_rights_are_anded_and_a_denied_write_is_reflected_with_exit_qualification():
    kvm, mem, mmu = world()
    mem.write64(0x3000, 0x4000 | R | X)          # the PD entry allows R-X only
    vc = mmu.add_vcpu(EPTP_A)
    assert mmu.access(vc, 0x2000).path == "hardware"
    r = mmu.access(vc, 0x2000, ACCESS_WRITE)
    assert r.path == "exit" and r.exit.kind == "EPT violation" and r.exit.target == "L1"
    assert r.exit.address == 0x2000
    # WRITE (bit 1) | RWX found = R|X = 5 in bits 5:3 | GVA valid and translated.
    assert r.exit.exit_qualification == WRITE_Q | (5 << 3) | GVA_Q == 0x1AA


def test_execute_only_leaf_allows_fetch_not_read():
    kvm, mem, mmu = world()
    mem.write64(0x4000 + 8 * 7, (0x107 << 12) | WB | X)
    vc = mmu.add_vcpu(EPTP_A)
    assert mmu.access(vc, 0x7000, ACCESS_FETCH).hpa == hfn(kvm, 0x107) << 12
    r = mmu.access(vc, 0x7000)
    assert r.exit.kind == "EPT violation"
    assert r.exit.exit_qualification == READ_Q | (X << 3) | GVA_Q == 0x1A1


def test_misconfigured_leaf_is_an_ept_misconfiguration_exit():
    kvm, mem, mmu = world()
    mem.write64(0x4000 + 8 * 2, (0x102 << 12) | WB | W)   # write without read
    vc = mmu.add_vcpu(EPTP_A)
    r = mmu.access(vc, 0x2000)
    assert r.exit.kind == "EPT misconfiguration" and r.exit.exit_qualification is None
    assert r.exit.error_code & int(PFERR.RSVD)


def test_l1_gpa_outside_memslots_is_mmio_for_l0_not_an_exit_to_l1():
    kvm, mem, mmu = world()
    mem.write64(0x4000 + 8 * 9, (NO_SLOT_GFN << 12) | WB | RWX)
    vc = mmu.add_vcpu(EPTP_A)
    r = mmu.access(vc, 0x9000)
    assert r.path == "mmio" and r.l1_gpa == NO_SLOT_GFN << 12 and r.exit is None


def test_upper_level_edit_is_visible_at_once():
    """Write tracking: L1's store to its PD is emulated and zaps EPT02's link."""
    kvm, mem, mmu = world()
    vc = mmu.add_vcpu(EPTP_A)
    assert mmu.access(vc, 0x3000).hpa == hfn(kvm, 0x103) << 12
    assert store(mmu, vc, 0x3000, 0) == "emulated"      # PD entry 0: not present
    r = mmu.access(vc, 0x3000)
    assert r.path == "exit" and r.exit.level == 2       # no INVEPT needed
    # Pointing it at B's PT (another table) is seen at once as well.
    store(mmu, vc, 0x3000, 0x8000 | RWX)
    assert mmu.access(vc, 0x3000).hpa == hfn(kvm, 0x123) << 12


def test_leaf_edit_is_stale_until_invept_then_correct():
    kvm, mem, mmu = world()
    vc = mmu.add_vcpu(EPTP_A)
    old, new = hfn(kvm, 0x103) << 12, hfn(kvm, 0x200) << 12
    assert mmu.access(vc, 0x3000).hpa == old
    # L1 retargets L2 page 3 to L1 gfn 0x200: the PT page is not write-tracked,
    # the store goes straight to memory and the shadow page goes unsync.
    assert store(mmu, vc, 0x4000 + 8 * 3, (0x200 << 12) | WB | RWX) == "direct"
    assert [sp.unsync for sp in mmu.shadow_pages() if sp.role.level == 1] == [True]
    assert mmu.access(vc, 0x3000).hpa == old            # stale, as hardware may be
    assert mmu.invept(vc, INVEPT_SINGLE_CONTEXT, EPTP_A) == 1
    assert mmu.access(vc, 0x3000).hpa == new            # reload synced it
    # An unmap is stale the same way, and gone after a global INVEPT.
    store(mmu, vc, 0x4000 + 8 * 3, 0)
    assert mmu.access(vc, 0x3000).hpa == new
    mmu.invept(vc, INVEPT_GLOBAL)
    assert mmu.access(vc, 0x3000).exit.kind == "EPT violation"


def test_invept_single_context_leaves_other_eptps_alone():
    kvm, mem, mmu = world()
    vc = mmu.add_vcpu(EPTP_A)
    mmu.access(vc, 0x1000)
    root_a = vc.mmu.root
    mmu.set_eptp(vc, EPTP_B)                     # A moves to prev_roots[0]
    mmu.access(vc, 0x1000)
    root_b = vc.mmu.root
    assert vc.mmu.prev_roots[0] == root_a
    store(mmu, vc, 0x8000 + 8 * 1, (0x1F0 << 12) | WB | RWX)   # leaf edit under B
    assert mmu.invept(vc, INVEPT_SINGLE_CONTEXT, EPTP_A) == 1    # only A's root
    assert not vc.mmu.prev_roots[0].valid and vc.mmu.root == root_b
    assert mmu.access(vc, 0x1000).hpa == hfn(kvm, 0x121) << 12   # B still stale
    # The descriptor's EPTP is matched on its address: other low bits do not matter.
    assert mmu.invept(vc, INVEPT_SINGLE_CONTEXT, EPTP_B | AD) == 1
    assert mmu.access(vc, 0x1000).hpa == hfn(kvm, 0x1F0) << 12


def test_switching_back_to_a_cached_eptp_reuses_its_root_without_sync():
    kvm, mem, mmu = world()
    vc = mmu.add_vcpu(EPTP_A)
    mmu.access(vc, 0x1000)
    root_a = vc.mmu.root
    store(mmu, vc, 0x4000 + 8 * 1, (0x1F1 << 12) | WB | RWX)
    mmu.set_eptp(vc, EPTP_B)
    mmu.set_eptp(vc, EPTP_A)
    assert vc.mmu.root == root_a                          # fast switch
    assert mmu.access(vc, 0x1000).hpa == hfn(kvm, 0x101) << 12   # no INVEPT: stale


def test_memslot_deletion_zaps_ept02():
    kvm, mem, mmu = world()
    mem.write64(0x4000 + 8 * 4, (0x204 << 12) | WB | RWX)   # in memslot 1
    vc = mmu.add_vcpu(EPTP_A)
    assert mmu.access(vc, 0x4000).hpa == hfn(kvm, 0x204) << 12
    kvm.delete_memslot(1)
    r = mmu.access(vc, 0x4000)
    assert r.path == "mmio" and r.hpa is None


def test_large_ept12_page_is_shadowed_by_a_direct_page():
    kvm, mem, mmu = world()
    mem.write64(0x3000 + 8 * 1, (0x200 << 12) | WB | PS | R | W)   # 2 MiB at L1 gfn 0x200
    vc = mmu.add_vcpu(EPTP_A)
    r = mmu.access(vc, 0x200000 + 0x5000, ACCESS_WRITE)   # L2 gfn 0x205 -> L1 gfn 0x205
    assert r.hpa == hfn(kvm, 0x205) << 12
    direct = [sp for sp in mmu.shadow_pages() if sp.role.direct]
    assert [(sp.gfn, sp.role.level) for sp in direct] == [(0x200, 1)]
    r = mmu.access(vc, 0x205000, ACCESS_FETCH)                      # no X
    assert r.exit.kind == "EPT violation"
    assert r.exit.exit_qualification == INSTR_Q | ((R | W) << 3) | GVA_Q == 0x19C


def test_npt_is_the_ordinary_shadow_mmu_with_guest_mode():
    """64-bit NPT12: P|W|U tables; NPT12 maps L2 page i to L1 gfn 0x100 + i."""
    host = HostMemory(0x1000)
    kvm = Kvm(host, guest_maxphyaddr=36)
    kvm.add_memslot(0, 0, 0x200)
    mem = GuestMemory(0x200 << 12)
    P, W_, U = 1, 2, 4
    mem.write64(0x1000, 0x2000 | P | W_ | U)
    mem.write64(0x2000, 0x3000 | P | W_ | U)
    mem.write64(0x3000, 0x4000 | P | W_ | U)
    for i in range(8):
        mem.write64(0x4000 + 8 * i, (0x100 + i) << 12 | P | U | (W_ if i != 2 else 0))
    smmu = ShadowMmu(kvm, mem)
    cr4_pae, efer = 1 << 5, (1 << 8) | (1 << 10) | (1 << 11)
    vc = shadow_npt_vcpu(smmu, 0x1000, cr4_pae, efer)
    assert vc.mmu.root_role.guest_mode == 1
    assert npt_access(smmu, vc, 0x1234, ACCESS_WRITE).hpa == (hfn(kvm, 0x101) << 12) | 0x234
    assert all(sp.role.guest_mode for sp in smmu.shadow_pages())
    r = npt_access(smmu, vc, 0x2000, ACCESS_WRITE)        # NPT12 leaf read-only
    assert r.exit.kind == "#NPF" and r.exit.exit_info_2 == 0x2000
    # P|W|U (NPT walks are user walks) and GUEST_FINAL.
    assert r.exit.exit_info_1 == 0x7 | PFERR_GUEST_FINAL
    r = npt_access(smmu, vc, 0x9000)                      # not present
    assert r.exit.exit_info_1 == 0x4 | PFERR_GUEST_FINAL
    # The same coherence rules, from the same code: a leaf edit goes to
    # memory directly (L2 keeps the old frame), an upper-level edit is
    # trapped and seen at once.
    leaf = ((0x1F0 << 12) | P | W_ | U).to_bytes(8, "little")
    assert smmu.guest_write(vc, 0x4008, leaf) == "direct"
    assert npt_access(smmu, vc, 0x1000).hpa == hfn(kvm, 0x101) << 12
    assert smmu.guest_write(vc, 0x3000, bytes(8)) == "emulated"
    assert npt_access(smmu, vc, 0x1000).exit.exit_info_1 == 0x4 | PFERR_GUEST_FINAL


def test_bad_input():
    kvm, mem, mmu = world()
    vc = mmu.add_vcpu(EPTP_A)
    with pytest.raises(ValueError, match="extent"):
        mmu.invept(vc, 3)
    with pytest.raises(ValueError, match="eptp"):
        mmu.invept(vc, INVEPT_SINGLE_CONTEXT, 0x1000 | 1)        # memory type 1
    with pytest.raises(ValueError, match="eptp"):
        mmu.set_eptp(vc, 0x1006)                                  # walk length 1
    with pytest.raises(TypeError):
        mmu.write_cr3(vc, 0x1000)
    with pytest.raises(ValueError, match="gva"):
        mmu.access(vc, 1 << 52)
    with pytest.raises(ValueError, match="access"):
        mmu.access(vc, 0, 1 << 2)                                  # U is not an EPT access
    with pytest.raises(ValueError, match="bugs"):
        Tdp12Mmu(kvm, mem, bugs=["single_pt_access"])              # an x86-only switch
    with pytest.raises(ValueError, match="fmt"):
        from refimpl.host.spte import x86_format
        Tdp12Mmu(kvm, mem, fmt=x86_format(tdp=False, phys_bits=46))
    with pytest.raises(ValueError, match="l1_efer"):
        shadow_npt_vcpu(ShadowMmu(kvm, mem), 0x1000, 1 << 5, 0)


@pytest.mark.parametrize("bug", sorted(TDP12_BUGS))
def test_each_naive_switch_breaks_a_directed_case(bug):
    kvm, mem, mmu = world(bugs=[bug])
    vc = mmu.add_vcpu(EPTP_A)
    mmu.access(vc, 0x3000)
    if bug == "no_write_tracking":
        store(mmu, vc, 0x3000, 0)
        assert mmu.access(vc, 0x3000).path == "hardware"      # the old mapping survives
    else:
        store(mmu, vc, 0x4000 + 8 * 3, (0x200 << 12) | WB | RWX)
        mmu.invept(vc, INVEPT_GLOBAL)
        assert mmu.access(vc, 0x3000).hpa == hfn(kvm, 0x103) << 12   # still the old one


# ---------------------------------------------------------------------------
# The stateful test
# ---------------------------------------------------------------------------

ROOTS = {"A": 0x1, "B": 0x5}                    # PML4 frames
PDPTS, PDS, PTS = (0x2, 0x6), (0x3, 0x7, 0xB), (0x4, 0x8, 0x9, 0xA)
#: L2 gfns probed: PD indexes 0 and 1, PT indexes 0..3.
PROBES = tuple(pd * 512 + j for pd in (0, 1) for j in range(4))
DATA_GFNS = (0x100, 0x101, 0x102, 0x180, 0x205, 0x206, NO_SLOT_GFN)
LEAF_RIGHTS = (0, R, R | W, R | X, RWX, X, W)     # W alone: a misconfiguration
UPPER_RIGHTS = (0, R, R | W, R | X, RWX)
ACCESSES = (0, ACCESS_WRITE, ACCESS_FETCH)
NEED = {0: R, ACCESS_WRITE: W, ACCESS_FETCH: X}
ADDR = ((1 << 52) - 1) & ~0xFFF


def model_walk(mem, root_gfn, l2_gfn):
    """EPT12 walk written for the test: ("ok", l1 gfn, rights, path) or (kind, path)."""
    table, rights, path = root_gfn << 12, RWX, []
    for level in (4, 3, 2, 1):
        a = table + 8 * ((l2_gfn >> (9 * (level - 1))) & 511)
        e = mem.read64(a)
        path.append(a)
        if not e & 7:
            return ("violation", path)
        if e & 7 in (W, W | X):
            return ("misconfig", path)
        rights &= e & 7
        if level == 2 and e & PS:
            return ("ok", ((e & ADDR) >> 12) + (l2_gfn & 511), rights, path)
        if level == 1:
            return ("ok", (e & ADDR) >> 12, rights, path)
        table = e & ADDR
    raise AssertionError("unreachable")


class NestedEptMachine(RuleBasedStateMachine):
    """L1 and L2 running on one vCPU: entries, exits, EPT12 edits, INVEPT, memslots.

    Subclass and set ``bugs`` to run it against a naive switch; raise
    ``settings`` (max_examples, stateful_step_count) for a soak run.
    """

    bugs: tuple[str, ...] = ()

    @initialize(seed_leaves=st.lists(st.tuples(st.sampled_from(DATA_GFNS),
                                               st.sampled_from(LEAF_RIGHTS[1:5])),
                                     min_size=16, max_size=16))
    def setup(self, seed_leaves):
        self.host = HostMemory(0x1000)
        self.kvm = Kvm(self.host, guest_maxphyaddr=36)
        self.kvm.add_memslot(0, 0, 0x200)
        self.kvm.add_memslot(1, 0x200, 0x100)
        self.mem = mem = GuestMemory(1024 << 12)
        for name, pdpt, pd, pt, pt2 in (("A", 2, 3, 4, 9), ("B", 6, 7, 8, 0xA)):
            mem.write64(ROOTS[name] << 12, (pdpt << 12) | RWX)
            mem.write64(pdpt << 12, (pd << 12) | RWX)
            mem.write64(pd << 12, (pt << 12) | RWX)
            mem.write64((pd << 12) + 8, (pt2 << 12) | RWX)
        k = 0
        for pt in PTS:
            for j in range(4):
                gfn, rights = seed_leaves[k % 16]
                mem.write64((pt << 12) + 8 * j, (gfn << 12) | WB | rights)
                k += 1
        self.tdp12 = Tdp12Mmu(self.kvm, mem, bugs=self.bugs)
        self.l1_mmu = TdpMmu(self.kvm)                    # L1's root_mmu
        self.vcpu = self.kvm.create_vcpu()
        self.l1_mmu.init_vcpu(self.vcpu)
        self.root_mmu = self.vcpu.mmu
        self.vc = self.tdp12.add_vcpu(EPTP_A, vcpu=self.vcpu)
        # One TLB per vCPU, shared by root_mmu and guest_mmu (vcpu_tlb), so
        # L0's flushes reach L1's entries while L2 runs.
        assert self.vc.mmu.tlb is self.root_mmu.tlb
        self.eptp = EPTP_A
        self.in_l2 = False
        self.allowed = {r: {g: set() for g in PROBES} for r in ROOTS.values()}
        self.exact = {r: True for r in ROOTS.values()}
        self._reset_all()

    # -- the model ------------------------------------------------------------

    def _current(self, root, gfn):
        t = model_walk(self.mem, root, gfn)
        if t[0] != "ok":
            return t[0], None, 0
        h = self.kvm.gfn_to_hfn(t[1])
        return "ok", h, t[2]

    def _note_current(self):
        for root in ROOTS.values():
            for g in PROBES:
                kind, h, rights = self._current(root, g)
                if kind == "ok":
                    self.allowed[root][g].add((h, rights))

    def _reset(self, root, gfns=PROBES):
        for g in gfns:
            self.allowed[root][g] = set()
        self._note_current()

    def _reset_all(self):
        for root in ROOTS.values():
            self._reset(root)
            self.exact[root] = True

    def _store(self, gpa, value, upper):
        """L1 stores an EPT12 entry; the model says what L2 may still see."""
        hit = {root: [g for g in PROBES if gpa in model_walk(self.mem, root, g)[-1]]
               for root in ROOTS.values()}
        self.tdp12.guest_write(self.vc, gpa, value.to_bytes(8, "little"))
        if upper:
            # Trapped: what was under the entry is re-walked from now on.
            for root, gfns in hit.items():
                self._reset(root, gfns)
        else:
            for root, gfns in hit.items():
                if gfns:
                    self.exact[root] = False
            self._note_current()

    # -- rules ----------------------------------------------------------------
    # L1's actions run in L1 and L2's in L2: a rule first makes the nested
    # exit or entry it needs, so every sequence interleaves both levels.

    def _to_l1(self):
        if self.in_l2:
            self.vcpu.mmu = self.root_mmu           # nested exit: mmu = &root_mmu
            self.in_l2 = False

    def _to_l2(self, eptp):
        self._to_l1()
        self.tdp12.set_eptp(self.vc, eptp)         # nested entry with EPTP12
        self.vcpu.mmu = self.vc.mmu                 # mmu = &guest_mmu
        self.eptp, self.in_l2 = eptp, True

    @rule(eptp=st.sampled_from([EPTP_A, EPTP_B, EPTP_A | AD]))
    def vmentry(self, eptp):
        self._to_l2(eptp)

    @rule(accesses=st.lists(st.tuples(st.sampled_from(PROBES), st.sampled_from(ACCESSES)),
                            min_size=1, max_size=4))
    def l2_accesses(self, accesses):
        if not self.in_l2:
            self._to_l2(self.eptp)
        for gfn, access in accesses:
            self.l2_access(gfn, access)

    def l2_access(self, gfn, access):
        root = (self.eptp & ADDR) >> 12
        r = self.tdp12.access(self.vc, gfn << 12, access)
        kind, h, rights = self._current(root, gfn)
        need = NEED[access]
        if r.path == "exit":
            # Reflected only when L1's current tables deny the access.
            assert kind != "ok" or not rights & need, (gfn, access, r, kind, rights)
            if kind == "misconfig":
                assert r.exit.kind == "EPT misconfiguration"
            else:
                assert r.exit.kind == "EPT violation"
            assert r.exit.address == gfn << 12
        elif r.path == "mmio":
            assert kind == "ok" and h is None and rights & need
        else:
            assert r.hpa is not None
            self._check_reach(root, gfn, r.hpa >> 12, need)

    @rule(gfn=st.sampled_from((0x4, 0x100, 0x205, NO_SLOT_GFN)),
          access=st.sampled_from((0, ACCESS_WRITE)))
    def l1_access(self, gfn, access):
        self._to_l1()
        r = self.l1_mmu.guest_access(self.vcpu, gfn << 12, access)
        h = self.kvm.gfn_to_hfn(gfn)
        if h is None:
            assert r.hpa is None
        else:
            assert r.hpa == h << 12

    @rule(pt=st.sampled_from(PTS), j=st.integers(0, 3), gfn=st.sampled_from(DATA_GFNS),
          rights=st.sampled_from(LEAF_RIGHTS))
    def edit_leaf(self, pt, j, gfn, rights):
        self._to_l1()
        self._store((pt << 12) + 8 * j, (gfn << 12) | WB | rights if rights else 0, False)

    @rule(data=st.data())
    def edit_upper(self, data):
        self._to_l1()
        level = data.draw(st.sampled_from((4, 3, 2, 2)))
        rights = data.draw(st.sampled_from(UPPER_RIGHTS))
        if level == 4:
            table, index = data.draw(st.sampled_from(list(ROOTS.values()))), 0
            target = data.draw(st.sampled_from(PDPTS)) << 12
        elif level == 3:
            table, index = data.draw(st.sampled_from(PDPTS)), 0
            target = data.draw(st.sampled_from(PDS)) << 12
        else:
            table, index = data.draw(st.sampled_from(PDS)), data.draw(st.integers(0, 1))
            if data.draw(st.integers(0, 4)) == 0:
                target = (0x200 << 12) | WB | PS           # a 2 MiB leaf at L1 gfn 0x200
            else:
                target = data.draw(st.sampled_from(PTS)) << 12
        self._store((table << 12) + 8 * index, target | rights if rights else 0, True)

    @rule(name=st.sampled_from(sorted(ROOTS)), ad=st.booleans())
    def invept_single(self, name, ad):
        self._to_l1()
        root = ROOTS[name]
        self.tdp12.invept(self.vc, INVEPT_SINGLE_CONTEXT, (root << 12) | 0x1E | (AD if ad else 0))
        self._reset(root)
        self.exact[root] = True

    @rule(n=st.integers(0, 3))
    def invept_global(self, n):
        if n:
            return          # kept rarer than the single-context form
        self._to_l1()
        self.tdp12.invept(self.vc, INVEPT_GLOBAL)
        self._reset_all()

    @rule(how=st.sampled_from(["replace", "move"]), n=st.integers(0, 5))
    def memslot_change(self, how, n):
        """L0's userspace changes memslot 1 (at any time): KVM zaps everything."""
        if n:
            return          # rare: it resets all of EPT02
        slot = self.kvm.memslot(1)
        if how == "replace":
            self.kvm.delete_memslot(1)
            self.kvm.add_memslot(1, 0x200, 0x100)
        else:
            self.kvm.move_memslot(1, 0x300 if slot.base_gfn == 0x200 else 0x200)
        self._reset_all()

    # -- the invariant --------------------------------------------------------

    def _check_reach(self, root, gfn, h, need):
        slots = [s for s in self.kvm.memslots() if s.host_pfn <= h < s.host_pfn + s.npages]
        assert slots, f"L2 gfn {gfn:#x} reaches host frame {h:#x}, in no memslot of L1"
        ok = [t for t in self.allowed[root][gfn] if t[0] == h and t[1] & need]
        assert ok, (f"L2 gfn {gfn:#x} reaches host frame {h:#x} with access {need}; "
                    f"L1 allowed {self.allowed[root][gfn]}, now {self._current(root, gfn)}")
        if self.exact[root]:
            kind, ch, rights = self._current(root, gfn)
            assert kind == "ok" and ch == h and rights & need, (gfn, h, kind, ch, rights)

    @invariant()
    def ept02_maps_only_what_l1_mapped(self):
        if not getattr(self, "in_l2", False):
            return
        root = (self.eptp & ADDR) >> 12
        for gfn in PROBES:
            for access in ACCESSES:
                hw = self.tdp12.hw_walk(self.vc, gfn << 12, access)
                if hw.fault is None:
                    self._check_reach(root, gfn, hw.hpa >> 12, NEED[access])


NestedEptMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestNestedEptMachine = NestedEptMachine.TestCase
TestNestedEptMachine.pytestmark = [pytest.mark.slow]


@pytest.mark.slow
@pytest.mark.parametrize("bug", sorted(TDP12_BUGS))
def test_the_machine_catches_each_naive_switch(bug):
    broken = type(f"Broken_{bug}", (NestedEptMachine,), {"bugs": (bug,)})
    with pytest.raises(AssertionError):
        run_state_machine_as_test(broken, settings=settings(
            max_examples=150, stateful_step_count=30, deadline=None, derandomize=True,
            phases=[Phase.generate], database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))


def test_a_flush_while_l2_runs_reaches_l1_translations():
    # One TLB per vCPU (refimpl.host.tlb.vcpu_tlb), tagged by root like VPID/EPTP:
    # L1's translations stay cached while L2 runs with vcpu->arch.mmu =
    # &guest_mmu, and L0's flush on a memslot change must drop them too.
    # With a TLB per Mmu object the flush reached only guest_mmu's, and L1
    # used a deleted slot's frame when it ran again (found by a soak of
    # NestedEptMachine).
    kvm, _mem, t12 = world()
    l1 = TdpMmu(kvm)
    v = kvm.create_vcpu()
    root_mmu = l1.init_vcpu(v)
    assert l1.guest_access(v, 0x201000).hpa is not None  # L1 gfn 0x201, memslot 1
    assert (l1.load(v).hpa, 0x201) in v.tlb.entries
    vc = t12.add_vcpu(EPTP_A, vcpu=v)
    v.mmu = vc.mmu  # nested entry: mmu = &guest_mmu
    assert vc.mmu.tlb is root_mmu.tlb is v.tlb
    kvm.delete_memslot(1)
    assert v.tlb.entries == {}
    v.mmu = root_mmu  # nested exit: L1's access now faults and finds no slot
    assert l1.guest_access(v, 0x201000).exit == "mmio"
