"""Both implementations of the direct kind on the same seeded workloads.

The TDP MMU and the legacy direct MMU build different tables (shared TDP
roots and RCU-freed tables against direct shadow pages with rmaps and
orphans), but a guest must not be able to tell them apart: every access
ends the same way (who completed it, which memslot frame it reached) and
every dirty log read returns the same pages. The workloads lean on the
edges: slot sizes one page around 2 MiB, bases on and one page off huge
boundaries, read-only slots, the SMM address space, dirty logging toggled
under every recovery strategy the legacy MMU has, and writes to pages
touched just before logging was turned on.

The stateful machines of ``test_tdp_mmu.py`` also run on the legacy MMU,
through their factory hook, so its invariants are checked against an
independent model of the memslots, not only against the TDP MMU.
"""

from __future__ import annotations

import random

import pytest
from test_tdp_mmu import STATEFUL, TdpCoherence

from refimpl.guest.walker import ACCESS_FETCH, ACCESS_WRITE
from refimpl.host.direct_mmu import make_direct_mmu
from refimpl.host.kvm_mmu import tdp_kind
from refimpl.host.legacy_direct_mmu import LegacyDirectMmu
from refimpl.host.spte import ept_format, x86_format
from refimpl.host.tdp_mmu import RecoveryStrategy, TdpMmu
from refimpl.host.vm import HostMemory, Kvm

GUEST_FRAMES = 4096
SIZES = (1, 16, 511, 512, 513, 1023, 1024, 1536)


def workload(seed: int, steps: int) -> list[tuple]:
    """A seeded list of memslot, dirty-log and access operations."""
    rng = random.Random(seed)
    ops: list[tuple] = []
    recent: list[int] = []
    ranges: list[tuple[int, int]] = []
    for _ in range(steps):
        r = rng.random()
        slot_id = rng.randrange(3)
        if r < 0.08:
            base = rng.choice((rng.randrange(8) * 512, rng.randrange(8) * 512 + 1,
                               rng.randrange(8) * 512 - 1, rng.randrange(GUEST_FRAMES)))
            npages = rng.choice(SIZES)
            ops.append(("add", slot_id, max(base, 0), npages,
                        rng.random() < 0.2, int(rng.random() < 0.2)))
            ranges.append((max(base, 0), npages))
        elif r < 0.10:
            ops.append(("delete", slot_id, int(rng.random() < 0.2)))
        elif r < 0.12:
            ops.append(("move", slot_id, rng.randrange(8) * 512))
        elif r < 0.18:
            ops.append(("log", slot_id))
        elif r < 0.30:
            ops.append(("get_log", slot_id))
        else:
            if recent and rng.random() < 0.4:
                gfn = rng.choice(recent[-8:])
            elif ranges and rng.random() < 0.7:  # into (or just past) a slot
                base, npages = rng.choice(ranges[-4:])
                gfn = min(base + rng.randrange(npages + 1), GUEST_FRAMES - 1)
                recent.append(gfn)
            else:
                gfn = rng.randrange(GUEST_FRAMES)
                recent.append(gfn)
            kind = rng.choice((0, ACCESS_WRITE, ACCESS_WRITE, ACCESS_FETCH))
            ops.append(("access", rng.randrange(3), (gfn << 12) | rng.randrange(4096), kind))
    return ops


def run(factory, ops: list[tuple], exact_logs: bool = True) -> list[tuple]:
    """Apply ``ops`` to a fresh VM whose direct MMU ``factory(kvm)`` builds;
    the guest-visible events, one per operation.

    A dirty-log read gives ``("log", log, missed)``: ``missed`` are pages
    the guest wrote since logging started or the log was last read that
    the log lacks (always a bug). A log may also hold pages the guest did
    not write: KVM logs a page whenever it installs a writable SPTE for it,
    so how many such pages a log holds depends on how many faults the MMU
    takes, and that differs between the two by design (eager splitting,
    in-place recovery, and orphaned tables that keep their leaves all save
    faults). ``exact_logs=False`` leaves ``log`` out of the event, so two
    MMUs are compared on what the guest can rely on.
    """
    written: dict[int, set[int]] = {}
    kvm = Kvm(HostMemory(32768, backed_frames=4096, maxphyaddr=46))
    mmu = factory(kvm)
    vcpus = [kvm.create_vcpu(), kvm.create_vcpu(), kvm.create_vcpu(smm=True)]
    events: list[tuple] = []
    for op in ops:
        name = op[0]
        try:
            if name == "add":
                _, slot_id, base, npages, ro, as_id = op
                if base + npages > GUEST_FRAMES:
                    events.append(("skip",))
                    continue
                kvm.add_memslot(slot_id, base, npages, flags=2 if ro else 0, as_id=as_id)
                events.append(("ok",))
            elif name == "delete":
                kvm.delete_memslot(op[1], op[2])
                events.append(("ok",))
            elif name == "move":
                kvm.move_memslot(op[1], op[2])
                events.append(("ok",))
            elif name == "log":
                s = kvm.memslot(op[1])
                written.pop(op[1], None)
                (kvm.disable_dirty_logging if s.dirty_logging else kvm.enable_dirty_logging)(op[1])
                events.append(("ok",))
            elif name == "get_log":
                s = kvm.memslot(op[1])
                if not s.dirty_logging:
                    events.append(("off",))
                    continue
                log = kvm.get_dirty_log(op[1])
                missed = frozenset(written.pop(op[1], set()) - log)
                events.append(("log", log if exact_logs else None, missed))
            else:
                _, v, gpa, kind = op
                vcpu = vcpus[v]
                r = mmu.guest_access(vcpu, gpa, kind)
                where = None
                if r.hpa is not None:
                    slot = kvm.gfn_to_memslot(gpa >> 12, vcpu.as_id)
                    if kind == ACCESS_WRITE and slot.dirty_logging:
                        written.setdefault(slot.id, set()).add(gpa >> 12)
                    # Which slot, and where in it: host frames differ between
                    # the two VMs because their tables take different frames.
                    where = ((slot.as_id, slot.id), r.hpa - (slot.host_pfn << 12))
                events.append(("access", r.path, where))
        except ValueError as e:
            events.append(("error", type(e).__name__))
    return events


def first_difference(a: list[tuple], b: list[tuple], ops: list[tuple]):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i, ops[i], x, y
    return None


def tdp(**kw):
    return lambda kvm: make_direct_mmu(kvm, tdp_mmu=True, **kw)


def legacy(**kw):
    return lambda kvm: make_direct_mmu(kvm, tdp_mmu=False, **kw)


PAIRS = [
    # (TDP MMU, legacy MMU): the recovery strategies each can do.
    (tdp(host_max_level=2), legacy(host_max_level=2)),
    (tdp(host_max_level=2, recovery=RecoveryStrategy.ZAP_EACH, eager_split=True),
     legacy(host_max_level=2, recovery=RecoveryStrategy.ZAP_EACH)),
    (tdp(host_max_level=3, recovery=RecoveryStrategy.ZAP_BATCHED, zap_all_on_delete=False),
     legacy(host_max_level=3, zap_all_on_delete=False)),
]


@pytest.mark.parametrize("pair", range(len(PAIRS)))
@pytest.mark.parametrize("seed", range(3))
def test_both_direct_kinds_look_the_same_to_the_guest(pair, seed):
    ops = workload(seed, 300)
    a, b = (run(f, ops, exact_logs=False) for f in PAIRS[pair])
    assert first_difference(a, b, ops) is None
    assert not any(e[0] == "log" and e[2] for e in a)  # no written page missed
    # The workload did reach the interesting places: mapped accesses, and
    # logs read after the guest wrote to a logged slot.
    assert sum(e[0] == "access" and e[2] is not None for e in a) > 30
    assert any(op[0] == "access" and op[3] == ACCESS_WRITE for op in ops)
    assert sum(e[0] == "log" for e in a) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("pair", range(len(PAIRS)))
def test_both_direct_kinds_look_the_same_to_the_guest_long(pair):
    for seed in range(100, 130):
        ops = workload(seed, 1500)
        a, b = (run(f, ops, exact_logs=False) for f in PAIRS[pair])
        assert first_difference(a, b, ops) is None, seed
        assert not any(e[0] == "log" and e[2] for e in a), seed


def test_the_differential_catches_a_missing_flush_in_the_legacy_mmu():
    # A planted mistake: SPTEs write-protected for logging, TLBs not flushed.
    bad = legacy(host_max_level=2, bugs=["no_flush_on_wrprot"])
    for seed in range(40):
        ops = workload(seed, 300)
        good = tdp(host_max_level=2, recovery=RecoveryStrategy.ZAP_BATCHED)
        diff = first_difference(run(good, ops, False), run(bad, ops, False), ops)
        if diff is not None:
            break
    assert diff is not None, "the differential missed the planted mistake"
    i, op, good, wrong = diff
    # The first difference is a dirty log that misses a page written
    # through a stale writable TLB entry.
    assert op[0] == "get_log" and wrong[2] and not good[2]


def test_a_missing_flush_is_caught_on_a_directed_sequence():
    ops = [("add", 0, 0, 16, False, 0), ("access", 0, 0x3000, ACCESS_WRITE), ("log", 0),
           ("access", 0, 0x3000, ACCESS_WRITE), ("get_log", 0)]
    good = run(legacy(), ops)
    assert good[-1] == ("log", frozenset({3}), frozenset())
    assert run(legacy(bugs=["no_flush_on_wrprot"]), ops)[-1] == (
        "log", frozenset(), frozenset({3}))


# ---------------------------------------------------------------------------
# The TDP MMU's stateful machines, on the legacy MMU
# ---------------------------------------------------------------------------


def make_legacy_vm(fmt=None, *, pml=False, nframes=16384, backed=512, **kw):
    host = HostMemory(nframes, backed_frames=backed, maxphyaddr=46)
    kvm = Kvm(host)
    return kvm, LegacyDirectMmu(kvm, tdp_kind(fmt or ept_format(phys_bits=46), pml=pml), **kw)


class LegacyCoherence(TdpCoherence):
    MAKE_VM = staticmethod(make_legacy_vm)


class LegacyCoherenceEptPml(LegacyCoherence):
    PML = True
    KW = {"zap_all_on_delete": False}


class LegacyCoherenceNpt(LegacyCoherence):
    FMT = staticmethod(lambda: x86_format(phys_bits=46))
    KW = {"recovery": RecoveryStrategy.ZAP_EACH}


TestLegacyCoherence = LegacyCoherence.TestCase
TestLegacyCoherence.pytestmark = [pytest.mark.slow]
TestLegacyCoherence.settings = STATEFUL
TestLegacyCoherenceEptPml = LegacyCoherenceEptPml.TestCase
TestLegacyCoherenceEptPml.pytestmark = [pytest.mark.slow]
TestLegacyCoherenceEptPml.settings = STATEFUL
TestLegacyCoherenceNpt = LegacyCoherenceNpt.TestCase
TestLegacyCoherenceNpt.pytestmark = [pytest.mark.slow]
TestLegacyCoherenceNpt.settings = STATEFUL


def test_a_short_legacy_coherence_run():
    """A fast, unmarked run of the legacy machine (the long ones are slow)."""
    from hypothesis import settings
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(LegacyCoherenceNpt, settings=settings(
        STATEFUL, max_examples=8, stateful_step_count=30))


def test_either_implementation_can_be_plugged_in():
    for factory in (TdpMmu, LegacyDirectMmu):
        kvm = Kvm(HostMemory(4096, backed_frames=256, maxphyaddr=46))
        mmu = factory(kvm)
        v = kvm.create_vcpu()
        kvm.add_memslot(0, 0, 16)
        assert mmu.guest_access(v, 0x2000, ACCESS_WRITE).hpa == (kvm.memslot(0).host_pfn + 2) << 12
