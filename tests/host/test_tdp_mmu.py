"""The TDP MMU: directed cases and a stateful coherence test.

The stateful machine keeps its own, independent model of the memslots (a
dict of slot id -> (base gfn, npages, first host frame, read-only, dirty
logging)) and of the pages written while logging is on. After every step
it checks the tables KVM built against that model, through the CPU's walk
(``hw_translate``), the vCPUs' TLBs and the raw leaf SPTEs.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from refimpl.guest.walker import ACCESS_FETCH, ACCESS_WRITE
from refimpl.host.kvm_mmu import tdp_kind
from refimpl.host.spte import (
    MMIO_SPTE_GEN_MASK,
    ept_format,
    get_mmio_spte_gfn,
    get_mmio_spte_generation,
    is_mmio_spte,
    is_shadow_present_pte,
    is_writable_pte,
    spte_to_pfn,
    x86_format,
)
from refimpl.host.tdp_mmu import RecoveryStrategy, TdpMmu
from refimpl.host.vm import HostMemory, Kvm

GUEST_FRAMES = 4096  # 16 MiB of guest-physical space: slots collide often


def make_vm(fmt=None, *, pml=False, nframes=16384, backed=512, **kw):
    # Page-table pages come from the 512 backed frames at the bottom; guest
    # RAM from the top, without contents (the model never reads it).
    host = HostMemory(nframes, backed_frames=backed, maxphyaddr=46)
    kvm = Kvm(host)
    fmt = fmt or ept_format(phys_bits=46)
    mmu = TdpMmu(kvm, tdp_kind(fmt, pml=pml), **kw)
    return kvm, mmu


# ---------------------------------------------------------------------------
# Directed cases
# ---------------------------------------------------------------------------


def test_fault_maps_the_memslot_frame_with_a_2m_page():
    kvm, mmu = make_vm()
    v = kvm.create_vcpu()
    slot = kvm.add_memslot(0, 0, 1024)  # 4 MiB at gpa 0
    r = mmu.guest_access(v, 0x201234, ACCESS_WRITE)
    # gfn 0x201 is page 0x201 of the slot: host frame host_pfn + 0x201.
    assert r.hpa == ((slot.host_pfn + 0x201) << 12) | 0x234
    assert r.faults == 1
    leaves = list(mmu.leaf_sptes())
    assert [(l.level, l.gfn) for l in leaves] == [(2, 0x200)]
    # A second access to the same 2 MiB page needs no fault.
    assert mmu.guest_access(v, 0x3FF000).faults == 0


def test_misaligned_host_frames_forbid_huge_pages():
    kvm, mmu = make_vm()
    v = kvm.create_vcpu()
    base = kvm.host.alloc_range(1024 + 512, 512)
    kvm.add_memslot(0, 0, 1024, host_pfn=base + 1)  # gfn 0 -> frame ...001
    mmu.guest_access(v, 0x1000)
    assert [l.level for l in mmu.leaf_sptes()] == [1]


def test_slot_edge_forbids_huge_page():
    kvm, mmu = make_vm()
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0x200, 511)  # ends one page short of 4 MiB
    mmu.guest_access(v, 0x200000)
    assert [l.level for l in mmu.leaf_sptes()] == [1]


def test_readonly_slot_read_maps_readonly_and_write_exits():
    kvm, mmu = make_vm()
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 16, flags=2)
    assert mmu.guest_access(v, 0x1000).hpa is not None
    (leaf,) = mmu.leaf_sptes()
    assert not is_writable_pte(leaf.spte)
    r = mmu.guest_access(v, 0x1000, ACCESS_WRITE)
    assert r.exit == "mmio" and r.hpa is None


def test_no_memslot_installs_mmio_spte_with_generation():
    kvm, mmu = make_vm()
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 16)
    r = mmu.guest_access(v, 0x5000_0000)
    assert r.exit == "mmio"
    spte = mmu.walk(mmu.load(v), 0x50000)[-1][2]
    assert is_mmio_spte(mmu.fmt, spte)
    assert get_mmio_spte_gfn(mmu.fmt, spte) == 0x50000
    assert get_mmio_spte_generation(spte) == 1  # one memslot change so far
    # Second access: the CPU faults with a misconfiguration, the generation
    # matches, KVM emulates without a memslot lookup: still one fault.
    r2 = mmu.guest_access(v, 0x5000_0000)
    assert r2.exit == "mmio" and r2.faults == 1
    # A memslot created over it makes the MMIO SPTE stale: next access maps RAM.
    slot = kvm.add_memslot(1, 0x50000, 1)
    r3 = mmu.guest_access(v, 0x5000_0008)
    assert r3.hpa == (slot.host_pfn << 12) | 8


def test_roots_are_shared_by_role():
    kvm, mmu = make_vm()
    a, b = kvm.create_vcpu(), kvm.create_vcpu()
    c = kvm.create_vcpu(smm=True)
    kvm.add_memslot(0, 0, 16)
    for v in (a, b, c):
        mmu.guest_access(v, 0)
    assert a.mmu.root.hpa == b.mmu.root.hpa != c.mmu.root.hpa
    assert len(mmu.kind.roots) == 2
    # Roots of a and b: one reference each plus the list's.
    shared = mmu.load(a)
    assert shared.root_count == 3
    # c is in SMM: address space 1 has no memslot, so its access is MMIO.
    assert mmu.guest_access(c, 0).exit == "mmio"


def test_delete_zaps_and_flushes():
    kvm, mmu = make_vm()
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 16)
    mmu.guest_access(v, 0x1000, ACCESS_WRITE)
    flushes = mmu.stats.tlb_flushes
    kvm.delete_memslot(0)
    assert mmu.stats.tlb_flushes == flushes + 1
    assert v.mmu.tlb.entries == {}
    assert list(mmu.leaf_sptes()) == []
    assert mmu.guest_access(v, 0x1000, ACCESS_WRITE).exit == "mmio"


@pytest.mark.parametrize("zap_all", [True, False])
def test_move_maps_new_range(zap_all):
    kvm, mmu = make_vm(zap_all_on_delete=zap_all)
    v = kvm.create_vcpu()
    slot = kvm.add_memslot(0, 0, 16)
    mmu.guest_access(v, 0x2000)
    kvm.move_memslot(0, 0x100)
    assert mmu.guest_access(v, 0x2000).exit == "mmio"
    assert mmu.guest_access(v, 0x102000).hpa == (slot.host_pfn + 2) << 12


def test_dirty_logging_write_protect_and_log():
    kvm, mmu = make_vm()
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 1024)
    mmu.guest_access(v, 0, ACCESS_WRITE)  # one 2 MiB page
    kvm.enable_dirty_logging(0)
    (leaf,) = mmu.leaf_sptes()
    assert leaf.level == 2 and not is_writable_pte(leaf.spte)
    mmu.guest_access(v, 0x5000, ACCESS_WRITE)
    mmu.guest_access(v, 0x7000)  # a read: mapped 4 KiB...
    assert kvm.get_dirty_log(0) >= {5}
    # After the log is read, gfn 5 is write-protected again.
    mmu.guest_access(v, 0x5000, ACCESS_WRITE)
    assert 5 in kvm.peek_dirty_log(0)


def test_pml_dirty_logging_logs_hardware_writes():
    kvm, mmu = make_vm(pml=True)
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 16)
    kvm.enable_dirty_logging(0)
    mmu.guest_access(v, 0x3000)  # read fault: maps 4 KiB writable, logs gfn 3
    assert kvm.get_dirty_log(0) == {3}  # clears D on gfn 3
    r = mmu.guest_access(v, 0x3000, ACCESS_WRITE)
    assert r.faults == 0  # no fault: the CPU set D and logged the GPA
    assert v.pml_buffer == [0x3000]
    assert kvm.peek_dirty_log(0) == {3}


def test_pml_logs_a_write_walk_that_bypasses_the_tlb():
    # Found by the soak (benchmarks/soak.py, tdp-ept-pml, seed 1): a write
    # walk of the tables sets the leaf's D bit, so it must log the page in
    # PML, whoever walks; otherwise a later TLB fill sees D=1 and the guest's
    # writes through it are never logged.
    kvm, mmu = make_vm(pml=True)
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 1)
    mmu.guest_access(v, 0x0)  # read fault: writable 4 KiB SPTE with D set
    kvm.enable_dirty_logging(0)  # PML: D cleared on the 4 KiB leaf, TLBs flushed
    assert kvm.peek_dirty_log(0) == frozenset()
    r = mmu.hw_translate(v, 0x0, ACCESS_WRITE)
    assert r.fault is None and r.dirty
    assert kvm.peek_dirty_log(0) == {0}
    mmu.guest_access(v, 0x0)  # TLB now caches a dirty, writable entry ...
    assert v.mmu.tlb.entries[(mmu.load(v).hpa, 0)].dirty
    assert kvm.peek_dirty_log(0) == {0}  # ... for a page already in the log


def _dirty_then_disable(strategy):
    kvm, mmu = make_vm(eager_split=True, recovery=strategy)
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 1024)  # 4 MiB: two 2 MiB pages
    mmu.guest_access(v, 0)
    mmu.guest_access(v, 0x200000)
    kvm.enable_dirty_logging(0)  # eager split: 1024 4 KiB SPTEs
    assert sorted(l.level for l in mmu.leaf_sptes()) == [1] * 1024
    before = mmu.stats.snapshot()
    kvm.disable_dirty_logging(0)
    mmu.guest_access(v, 0)
    mmu.guest_access(v, 0x200000)
    return mmu, mmu.stats.since(before)


def test_recovery_zap_each_counts():
    mmu, d = _dirty_then_disable(RecoveryStrategy.ZAP_EACH)
    # 1024 zaps, each flushed; then 2 refaults each replacing a (now
    # empty) table by a huge SPTE: 1 write + 1 flush each.
    assert (d.spte_writes, d.tlb_flushes, d.page_faults) == (1026, 1026, 2)
    assert sorted(l.level for l in mmu.leaf_sptes()) == [2, 2]


def test_recovery_zap_batched_counts():
    _, d = _dirty_then_disable(RecoveryStrategy.ZAP_BATCHED)
    assert (d.spte_writes, d.tlb_flushes, d.page_faults) == (1026, 3, 2)


def test_recovery_in_place_counts():
    mmu, d = _dirty_then_disable(RecoveryStrategy.IN_PLACE)
    # Two table pointers replaced by huge SPTEs, one flush, no refault.
    assert (d.spte_writes, d.tlb_flushes, d.page_faults) == (2, 1, 0)
    assert sorted(l.level for l in mmu.leaf_sptes()) == [2, 2]


def test_nx_huge_pages_exec_fault_maps_4k():
    kvm, mmu = make_vm(ept_format(phys_bits=46, nx_huge_pages=True))
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 1024)
    mmu.guest_access(v, 0x1000, ACCESS_FETCH)
    assert [l.level for l in mmu.leaf_sptes()] == [1]
    mmu.guest_access(v, 0x201000)  # a read: huge, not executable
    lv = sorted((l.level, l.spte & 4) for l in mmu.leaf_sptes())
    assert lv == [(1, 4), (2, 0)]


def test_bad_gpa_is_misuse():
    kvm, mmu = make_vm()
    v = kvm.create_vcpu()
    with pytest.raises(ValueError, match="gpa"):
        mmu.page_fault(v, 1 << 46, 0)


# ---------------------------------------------------------------------------
# Stateful coherence
# ---------------------------------------------------------------------------

SLOT_IDS = st.integers(0, 3)
GFNS = st.integers(0, GUEST_FRAMES - 1)
# Sizes and bases lean to the edges where huge pages are decided: slots
# that end one page short of (or one past) a 2 MiB boundary, and bases one
# page either side of one (kvm_alloc_memslot_metadata's disallow_lpage).
SIZES = st.sampled_from([1, 3, 16, 200, 511, 512, 513, 1023, 1024, 1025, 1536])
BASES = st.one_of(st.integers(0, 15).map(lambda i: i * 256),
                  st.integers(1, 7).map(lambda i: i * 512 - 1),
                  st.integers(0, 7).map(lambda i: i * 512 + 1),
                  st.integers(0, GUEST_FRAMES - 1))
# Where an access lands in a slot: anywhere, its first or last page, or the
# pages either side of a 2 MiB boundary inside it.
EDGES = st.sampled_from(["any", "any", "first", "last", "below_2m", "at_2m"])


class TdpCoherence(RuleBasedStateMachine):
    """Random memslot changes, dirty logging and accesses from three vCPUs."""

    FMT = staticmethod(lambda: ept_format(phys_bits=46))
    PML = False
    checked_steps = 0  # invariant checks run, over all machines (for reports)
    KW: dict = {}
    MAKE_VM = staticmethod(make_vm)  # the direct MMU under test (a factory)

    def __init__(self):
        super().__init__()
        self.kvm, self.mmu = self.MAKE_VM(self.FMT(), pml=self.PML, **self.KW)
        self.vcpus = [self.kvm.create_vcpu(), self.kvm.create_vcpu(),
                      self.kvm.create_vcpu(smm=True)]
        # The independent model: (as_id, id) -> [base, npages, host_pfn, ro, log]
        self.slots: dict[tuple[int, int], list] = {}
        self.written: dict[tuple[int, int], set[int]] = {}
        self.touched: list[tuple[int, int]] = []
        self.steps = 0

    def model_lookup(self, as_id, gfn):
        for (a, i), (base, n, pfn, ro, log) in self.slots.items():
            if a == as_id and base <= gfn < base + n:
                return (a, i), base, pfn, ro, log
        return None

    # -- memslots ----------------------------------------------------------

    @rule(slot_id=SLOT_IDS, base=BASES, npages=SIZES, ro=st.booleans(),
          smm=st.sampled_from([0, 0, 0, 1]))
    def add_slot(self, slot_id, base, npages, ro, smm):
        key = (smm, slot_id)
        end = base + npages
        bad = key in self.slots or end > GUEST_FRAMES or any(
            a == smm and base < b + n and b < end for (a, _), (b, n, *_r) in self.slots.items())
        if end > GUEST_FRAMES:
            return
        snap = self.kvm.snapshot()
        if bad:
            with pytest.raises(ValueError):
                self.kvm.add_memslot(slot_id, base, npages, flags=2 if ro else 0, as_id=smm)
            assert self.kvm.snapshot() == snap
            return
        s = self.kvm.add_memslot(slot_id, base, npages, flags=2 if ro else 0, as_id=smm)
        self.slots[key] = [base, npages, s.host_pfn, ro, False]
        self.written[key] = set()

    @rule(slot_id=SLOT_IDS, smm=st.sampled_from([0, 0, 1]))
    def delete_slot(self, slot_id, smm):
        key = (smm, slot_id)
        if key not in self.slots:
            snap = self.kvm.snapshot()
            with pytest.raises(ValueError, match="slot_id"):
                self.kvm.delete_memslot(slot_id, smm)
            assert self.kvm.snapshot() == snap
            return
        self.kvm.delete_memslot(slot_id, smm)
        del self.slots[key]
        del self.written[key]

    @rule(slot_id=SLOT_IDS, base=BASES)
    def move_slot(self, slot_id, base):
        key = (0, slot_id)
        if key not in self.slots:
            return
        b, n, pfn, ro, log = self.slots[key]
        end = base + n
        if end > GUEST_FRAMES:
            return
        bad = log or any(
            a == 0 and k != key and base < bb + nn and bb < end
            for k, (bb, nn, *_r) in self.slots.items() for a in [k[0]])
        snap = self.kvm.snapshot()
        if bad:
            with pytest.raises(ValueError):
                self.kvm.move_memslot(slot_id, base)
            assert self.kvm.snapshot() == snap
            return
        self.kvm.move_memslot(slot_id, base)
        self.slots[key][0] = base

    @rule(slot_id=SLOT_IDS)
    def toggle_dirty_logging(self, slot_id):
        key = (0, slot_id)
        if key not in self.slots:
            return
        if self.slots[key][4]:
            self.kvm.disable_dirty_logging(slot_id)
            self.slots[key][4] = False
        else:
            self.kvm.enable_dirty_logging(slot_id)
            self.slots[key][4] = True
        self.written[key] = set()

    @rule(slot_id=SLOT_IDS)
    def read_dirty_log(self, slot_id):
        key = (0, slot_id)
        if key not in self.slots or not self.slots[key][4]:
            return
        log = self.kvm.get_dirty_log(slot_id)
        assert self.written[key] <= log
        self.written[key] = set()

    # -- accesses ------------------------------------------------------------

    @rule(v=st.integers(0, 2), gfn=GFNS, off=st.integers(0, 4095),
          kind=st.sampled_from([0, ACCESS_WRITE, ACCESS_FETCH]), near=st.booleans(),
          edge=EDGES)
    def access(self, v, gfn, off, kind, near, edge):
        vcpu = self.vcpus[v]
        if near and self.slots:  # bias towards mapped memory, and its edges
            (a, _), (base, n, *_r) = sorted(self.slots.items())[gfn % len(self.slots)]
            if a == vcpu.as_id:
                boundary = (base + n - 1) & ~511  # the last 2 MiB boundary in reach
                gfn = {"first": base, "last": base + n - 1,
                       "below_2m": max(base, boundary - 1),
                       "at_2m": boundary if boundary >= base else base}.get(edge, base + gfn % n)
        r = self.mmu.guest_access(vcpu, (gfn << 12) | off, kind)
        hit = self.model_lookup(vcpu.as_id, gfn)
        if hit is None or (kind == ACCESS_WRITE and hit[3]):
            assert r.exit == "mmio" and r.hpa is None
            return
        key, base, pfn, ro, log = hit
        assert r.hpa == ((pfn + gfn - base) << 12) | off
        if kind == ACCESS_WRITE and log:
            self.written[key].add(gfn)
        self.touched.append((v, gfn))

    # -- invariants -----------------------------------------------------------

    @invariant()
    def sptes_map_only_memslot_frames(self):
        gen = self.kvm.generation & MMIO_SPTE_GEN_MASK
        fmt = self.mmu.fmt
        for root in self.mmu.all_roots():
            for level, sptep, e, g in self.mmu._iter_leaves(root.pfn, root.role.level, 0, 0, 1 << 62):
                span = 1 << (9 * (level - 1))
                hit = self.model_lookup(root.role.smm, g)
                assert hit is not None, f"SPTE for gfn {g:#x} outside every memslot"
                _, base, pfn, ro, log = hit
                assert g + span <= base + self.slots[hit[0]][1], "huge page crosses slot end"
                assert spte_to_pfn(e) == pfn + g - base
                assert not (ro and is_writable_pte(e)), "writable SPTE in a read-only slot"
                # Huge pages may stay while logging, but never writable: the
                # first write must fault and be logged at 4 KiB.
                assert not (log and level > 1 and is_writable_pte(e)), "writable huge page while logging"
                if log and is_writable_pte(e) and not self.mmu.kind.pml:
                    assert g in self.kvm.peek_dirty_log(hit[0][1], hit[0][0])
            # Non-present MMIO SPTEs: current ones must name a gfn with no slot.
            for lvl, sptep, e in self._mmio(root):
                if get_mmio_spte_generation(e) == gen:
                    assert self.model_lookup(root.role.smm, get_mmio_spte_gfn(fmt, e)) is None

    def _mmio(self, root):
        out = []
        fmt = self.mmu.fmt

        def rec(pfn, level):
            for i in range(512):
                e = self.kvm.host.read64(pfn * 4096 + i * 8)
                if is_shadow_present_pte(e):
                    if level > 1 and not e & 0x80:
                        rec(spte_to_pfn(e), level - 1)
                elif e and is_mmio_spte(fmt, e):
                    out.append((level, pfn * 4096 + i * 8, e))
        rec(root.pfn, root.role.level)
        return out

    @invariant()
    def cpu_view_matches_memslots(self):
        # The TLBs, and the CPU's walk for the pages touched recently.
        for vcpu in self.vcpus:
            if vcpu.mmu is None:
                continue
            root = self.mmu.load(vcpu)
            for (rhpa, page), e in vcpu.mmu.tlb.entries.items():
                if rhpa != root.hpa:
                    continue
                hit = self.model_lookup(vcpu.as_id, page)
                assert hit is not None, "TLB maps a gfn with no memslot (missing flush)"
                key, base, pfn, ro, log = hit
                assert e.hpa == (pfn + page - base) << 12
                assert not (ro and e.writable)
                if log and e.writable and e.dirty:
                    # A write through this entry would not be seen by KVM.
                    assert page in self.kvm.peek_dirty_log(key[1], key[0])
        for v, gfn in self.touched[-4:]:
            vcpu = self.vcpus[v]
            for kind in (0, ACCESS_WRITE):
                r = self.mmu.hw_translate(vcpu, gfn << 12, kind)
                hit = self.model_lookup(vcpu.as_id, gfn)
                if r.hpa is not None:
                    assert hit is not None
                    assert r.hpa == (hit[2] + gfn - hit[1]) << 12
                    if kind == ACCESS_WRITE:
                        assert not hit[3]
        self.touched = self.touched[-4:]

    @invariant()
    def written_pages_are_logged(self):
        for key, gfns in self.written.items():
            if self.slots[key][4]:
                assert gfns <= self.kvm.peek_dirty_log(key[1], key[0])

    @invariant()
    def roots_shared_by_role(self):
        TdpCoherence.checked_steps += 1
        valid = [r for r in self.mmu.kind.roots if not r.invalid]
        words = [r.role.word for r in valid]
        assert len(words) == len(set(words))
        by_role = {}
        for v in self.vcpus:
            if v.mmu is not None and v.mmu.root.valid:
                root = self.mmu.pages[v.mmu.root.hpa >> 12]
                if not root.invalid:
                    by_role.setdefault(root.role.word, set()).add(root.hpa)
        assert all(len(h) == 1 for h in by_role.values())
        # Page-table pages are allocated host frames and never guest frames.
        for pfn in self.mmu.pages:
            assert self.kvm.host.is_allocated(pfn)
            for (a, i), (base, n, hpfn, *_r) in self.slots.items():
                assert not hpfn <= pfn < hpfn + n


STATEFUL = settings(max_examples=50, stateful_step_count=50, deadline=None,
                    derandomize=True, suppress_health_check=list(HealthCheck),
                    # Shrinking a long failing run takes minutes; the
                    # unshrunk steps are printed anyway.
                    phases=[Phase.explicit, Phase.reuse, Phase.generate])


class TdpCoherenceEptPml(TdpCoherence):
    PML = True
    KW = {"zap_all_on_delete": False, "recovery": RecoveryStrategy.ZAP_BATCHED}


class TdpCoherenceNpt(TdpCoherence):
    FMT = staticmethod(lambda: x86_format(phys_bits=46))
    KW = {"eager_split": True, "recovery": RecoveryStrategy.ZAP_EACH}


TestTdpCoherenceEpt = TdpCoherence.TestCase
TestTdpCoherenceEpt.pytestmark = [pytest.mark.slow]
TestTdpCoherenceEpt.settings = STATEFUL
TestTdpCoherenceEptPml = TdpCoherenceEptPml.TestCase
TestTdpCoherenceEptPml.pytestmark = [pytest.mark.slow]
TestTdpCoherenceEptPml.settings = STATEFUL
TestTdpCoherenceNpt = TdpCoherenceNpt.TestCase
TestTdpCoherenceNpt.pytestmark = [pytest.mark.slow]
TestTdpCoherenceNpt.settings = STATEFUL


# ---------------------------------------------------------------------------
# One struct kvm_mmu_page, one access record, outcomes as values
# ---------------------------------------------------------------------------


def test_tdp_pages_are_the_one_mmu_page_class():
    from refimpl.host.mmu_page import MmuPage
    kvm, mmu = make_vm()
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 1024)
    mmu.guest_access(v, 0x1000)
    pages = list(mmu.pages.values())
    # Root (level 4), then levels 3 and 2: the fault maps a 2 MiB page.
    assert sorted(p.role.level for p in pages) == [2, 3, 4]
    assert all(type(p) is MmuPage and p.tdp_mmu_page for p in pages)
    # The shadow arm of the union is unused on a TDP page.
    assert all(p.spt is None and p.parent_ptes is None for p in pages)
    # The shadow MMU's pages are the same class, with the flag clear, and
    # neither MMU module keeps a class of its own.
    from refimpl.host import shadow_mmu, tdp_mmu
    assert not hasattr(shadow_mmu, "ShadowPage") and not hasattr(tdp_mmu, "TdpMmuPage")


def test_invalidated_root_is_role_invalid():
    kvm, mmu = make_vm()
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 512)
    root = mmu.load(v)
    mmu.invalidate_all_roots()
    # KVM marks an obsolete root through role.invalid, as for shadow pages.
    assert root.role.invalid == 1 and root.invalid


def test_outcomes_are_enum_values_equal_to_their_old_strings():
    from refimpl.host.outcomes import AccessPath, AccessResult, RetPf
    from refimpl.host.shadow_mmu import AccessResult as ShadowAccessResult
    kvm, mmu = make_vm()
    v = kvm.create_vcpu()
    kvm.add_memslot(0, 0, 512)
    fr = mmu.page_fault(v, 0x1000, 0)
    assert fr.outcome is RetPf.FIXED and fr.outcome == "fixed"
    # No memslot at 1 GiB: an MMIO SPTE is installed and the access emulated.
    assert mmu.page_fault(v, 0x4000_0000, 0).outcome is RetPf.EMULATE == "emulate"
    r = mmu.guest_access(v, 0x4000_0000)       # no memslot: MMIO
    assert type(r) is AccessResult is ShadowAccessResult
    assert r.path is AccessPath.MMIO and r.exit == "mmio" and r.faults == r.exits == 1
    r = mmu.guest_access(v, 0x1000)
    assert r.path == "hardware" and r.exit is None
