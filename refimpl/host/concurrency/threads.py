"""The thread programs: each a sequence of atomic steps over a shared :class:`~.model.Vm`.

A thread is a small frozen description (which gfn, read or write) and a
program: its ``step`` method takes the shared state, the thread's index and
its registers, and returns the one step it can take now, as
``(label, new vm, new registers)``, or ``None`` when it is blocked (waiting
for ``mmu_lock``, for a frozen SPTE to thaw, for a grace period) or done.
Programs are deterministic, so all the nondeterminism the checker explores
is the choice of which thread moves next.

The programs, and the KVM functions they restate:

============================  ==================================================
``Fault(gfn, write)``         ``kvm_tdp_mmu_map`` under ``mmu_lock`` for read:
                              snapshot ``mmu_invalidate_seq``, look the host
                              page up, lock, ``mmu_invalidate_retry_gfn``, walk,
                              and install with ``tdp_mmu_set_spte_atomic``
``Fault(..., mmu="shadow")``  the legacy/shadow MMU: the same steps under
                              ``mmu_lock`` for write, with plain stores
``Fault(..., split=True)``    a fault that must replace a huge leaf by a table
                              (``tdp_mmu_zap_spte_atomic``: freeze, flush,
                              clear)
``FastFault(gfn, write)``     ``fast_page_fault``: no lock, one
                              compare-and-exchange (``fast_pf_fix_direct_spte``)
``Notifier(gfn)``             ``kvm_mmu_notifier_invalidate_range_start`` and
                              ``_end`` around the host changing the page
``Aging(gfn)``                ``kvm_mmu_notifier_clear_flush_young``
``ZapTable()``                unlinking a page table under the read lock and
                              freeing it after an RCU grace period
                              (``handle_removed_pt``, ``call_rcu``)
``Guest(gfn, write)``         the vCPU itself: a TLB hit, or a hardware walk
                              that fills the TLB
============================  ==================================================

:data:`BUGS` holds the switches that bring back a race KVM closed; pass a
set of their names as ``bugs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

from refimpl.errors import check_bool, check_choice
from refimpl.host.concurrency import model as M
from refimpl.host.concurrency.model import FROZEN_SPTE, SPTE_D, SPTE_MMU_WRITABLE, SPTE_W, Vm

__all__ = ["BUGS"]

#: The replayable races: switch -> what the program does wrong with it on.
BUGS: dict[str, str] = {
    "fault_skips_invalidate_retry":
        "the fault installs its SPTE without mmu_invalidate_retry (no check of "
        "mmu_invalidate_seq or mmu_invalidate_in_progress)",
    "retry_ignores_in_progress":
        "mmu_invalidate_retry compares the sequence count only, not "
        "mmu_invalidate_in_progress",
    "seq_snapshot_after_gup":
        "the fault reads mmu_invalidate_seq after looking up the host page, not before",
    "fast_pf_plain_store":
        "fast_page_fault writes the fixed SPTE with a plain store, not a compare-and-exchange",
    "fast_pf_ignores_mmu_writable":
        "fast_page_fault makes an SPTE writable that is not MMU-writable",
    "fast_pf_huge_while_logging":
        "fast_page_fault makes a huge SPTE writable while dirty logging is on",
    "tdp_map_plain_store":
        "the TDP MMU fault links its new table with a plain store, not tdp_mmu_set_spte_atomic",
    "zap_without_freeze":
        "the TDP MMU fault zaps a huge SPTE to 0 and flushes afterwards, instead of "
        "freezing it until the flush is done",
    "removed_children_not_frozen":
        "handle_removed_pt clears the entries of an unlinked table to 0 instead of FROZEN_SPTE",
    "free_without_rcu":
        "an unlinked page table is freed at once, not after an RCU grace period",
    "shadow_fault_read_lock":
        "the shadow MMU fault takes mmu_lock for read, though it writes SPTEs with plain stores",
}


class Regs(NamedTuple):
    """A thread's program counter and registers (part of the explored state)."""

    pc: str
    seq: int = 0
    pfn: int = 0
    tid: int = -1
    old: int = 0
    sect: int = 0


_DONE = "done"


@dataclass(frozen=True)
class _Thread:
    """A thread program (base class)."""

    def start(self, bugs: frozenset = frozenset()) -> Regs:
        """The registers before the thread's first step."""
        return Regs(self._first(bugs))

    def _first(self, bugs) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def step(self, vm: Vm, me: int, r: Regs, bugs: frozenset) -> Optional[tuple[str, Vm, Regs]]:
        if r.pc == _DONE:
            return None
        return getattr(self, "_" + r.pc)(vm, me, r, bugs)

    @property
    def name(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError


def _read_lock(vm: Vm, me: int) -> Optional[Vm]:
    if vm.writer != -1:
        return None
    vm = vm._replace(readers=vm.readers + 1)
    return vm


def _write_lock(vm: Vm, me: int) -> Optional[Vm]:
    if vm.writer != -1 or vm.readers:
        return None
    return vm._replace(writer=me)


# ---------------------------------------------------------------------------
# Page faults (TDP MMU under the read lock; legacy/shadow MMU under the write lock)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault(_Thread):
    """A vCPU's page fault on ``gfn`` (``kvm_tdp_mmu_map`` or the shadow MMU's).

    ``split`` makes it a fault that must map 4 KiB where a huge leaf is (for
    example, a write with dirty logging on): it zaps the huge leaf first.
    """

    gfn: int = 0
    write: bool = False
    mmu: str = "tdp"
    split: bool = False

    def __post_init__(self):
        check_choice("gfn", self.gfn, M.GFNS)
        check_bool("write", self.write)
        check_choice("mmu", self.mmu, ("tdp", "shadow"))
        check_bool("split", self.split)

    @property
    def name(self) -> str:
        kind = "shadow fault" if self.mmu == "shadow" else "fault"
        return f"{kind} gfn {self.gfn}" + (" (write)" if self.write else "") + \
            (" (split)" if self.split else "")

    def _shared(self, bugs) -> bool:
        return self.mmu == "tdp" or "shadow_fault_read_lock" in bugs

    def _atomic(self, bugs) -> bool:
        return self.mmu == "tdp" and "tdp_map_plain_store" not in bugs

    def _first(self, bugs):
        return "gup" if "seq_snapshot_after_gup" in bugs else "snap"

    def _snap(self, vm, me, r, bugs):
        nxt = "lock" if "seq_snapshot_after_gup" in bugs else "gup"
        return f"snapshot mmu_invalidate_seq = {vm.seq}", vm, r._replace(pc=nxt, seq=vm.seq)

    def _gup(self, vm, me, r, bugs):
        pfn = vm.host[self.gfn]
        nxt = "snap" if "seq_snapshot_after_gup" in bugs else "lock"
        return f"host page lookup: pfn {pfn:#x}", vm, r._replace(pc=nxt, pfn=pfn)

    def _lock(self, vm, me, r, bugs):
        if self._shared(bugs):
            vm2 = _read_lock(vm, me)
            what = "read_lock(mmu_lock)"
        else:
            vm2 = _write_lock(vm, me)
            what = "write_lock(mmu_lock)"
        if vm2 is None:
            return None
        vm2, sect = M._rcu_enter(vm2, me)
        return what, vm2, r._replace(pc="check", sect=sect)

    def _check(self, vm, me, r, bugs):
        if "fault_skips_invalidate_retry" in bugs:
            return "(no mmu_invalidate_retry)", vm, r._replace(pc="root")
        busy = vm.in_progress > 0 and "retry_ignores_in_progress" not in bugs
        if busy or vm.seq != r.seq:
            why = "invalidation in progress" if busy else f"seq {r.seq} -> {vm.seq}"
            return f"mmu_invalidate_retry: {why}: RETRY", vm, r._replace(pc="unlock")
        return "mmu_invalidate_retry: ok", vm, r._replace(pc="root")

    def _root(self, vm, me, r, bugs):
        s = vm.root
        if s == FROZEN_SPTE:
            return None                      # another thread owns it: wait
        if M._is_huge(s):
            if self.split:
                return "read root: huge leaf", vm, r._replace(pc="freeze", old=s)
            return "read root: huge leaf maps it: done", vm, r._replace(pc="unlock")
        if M._is_table(s):
            tid = M._table_of(s)
            return f"read root: table {tid}", vm, r._replace(pc="leaf", tid=tid)
        return "read root: empty", vm, r._replace(pc="link", old=s)

    def _link(self, vm, me, r, bugs):
        own = me + 1
        new = M._table_pointer(own)
        if self._atomic(bugs) and vm.root != r.old:
            return (f"cmpxchg root {M._spte_text(r.old, 2)} -> table {own}: failed",
                    vm, r._replace(pc="root"))
        lost = M._table_of(vm.root) if M._is_table(vm.root) else None
        vm = vm._replace(root=new, nr_tables=vm.nr_tables + 1)
        vm = M._set_tstate(vm, own, "live")
        verb = "cmpxchg" if self._atomic(bugs) else "store"
        label = f"{verb} root -> table {own}"
        if lost is not None:
            label += f" (table {lost} lost)"
        return label, vm, r._replace(pc="leaf", tid=own)

    def _freeze(self, vm, me, r, bugs):
        new = 0 if "zap_without_freeze" in bugs else FROZEN_SPTE
        if vm.root != r.old:
            return "cmpxchg root: failed", vm, r._replace(pc="root")
        vm = M._count_leaf(vm._replace(root=new), r.old, new, 2)
        vm = vm._replace(owed=vm.owed | {me})
        return f"cmpxchg root huge -> {M._spte_text(new, 2)}", vm, r._replace(pc="flush")

    def _flush(self, vm, me, r, bugs):
        nxt = "root" if "zap_without_freeze" in bugs else "clear"
        return "flush remote TLBs", M._flush(vm), r._replace(pc=nxt)

    def _clear(self, vm, me, r, bugs):
        return "root FROZEN -> 0", vm._replace(root=0), r._replace(pc="root")

    def _leaf(self, vm, me, r, bugs):
        vm = M._touch(vm, r.tid, self.name)
        s = M._entry(vm, r.tid, self.gfn)
        if s == FROZEN_SPTE:
            return f"read table {r.tid}[{self.gfn}]: FROZEN, walk again", vm, r._replace(pc="root")
        if M._present(s):
            return f"read table {r.tid}[{self.gfn}]: already mapped", vm, r._replace(pc="unlock")
        return f"read table {r.tid}[{self.gfn}]: 0", vm, r._replace(pc="set", old=s)

    def _set(self, vm, me, r, bugs):
        vm = M._touch(vm, r.tid, self.name)
        cur = M._entry(vm, r.tid, self.gfn)
        new = M._leaf(r.pfn, writable=self.write, dirty=self.write)
        verb = "cmpxchg" if self._atomic(bugs) else "store"
        if self._atomic(bugs) and cur != r.old:
            return f"cmpxchg table {r.tid}[{self.gfn}]: failed", vm, r._replace(pc="leaf")
        vm = M._count_leaf(M._set_entry(vm, r.tid, self.gfn, new), cur, new, 1)
        if self.write and vm.logging:
            vm = vm._replace(dirty=vm.dirty | {self.gfn})
        return f"{verb} table {r.tid}[{self.gfn}] = {M._spte_text(new)}", vm, r._replace(pc="unlock")

    def _unlock(self, vm, me, r, bugs):
        if vm.writer == me:
            vm, what = vm._replace(writer=-1), "write_unlock"
        else:
            vm, what = vm._replace(readers=vm.readers - 1), "read_unlock"
        return what, M._rcu_exit(vm, me), r._replace(pc=_DONE, sect=0)



# ---------------------------------------------------------------------------
# The fast page fault (no mmu_lock)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FastFault(_Thread):
    """``fast_page_fault`` on ``gfn``: a lockless walk and one compare-and-exchange."""

    gfn: int = 0
    write: bool = True

    def __post_init__(self):
        check_choice("gfn", self.gfn, M.GFNS)
        check_bool("write", self.write)

    @property
    def name(self) -> str:
        return f"fast fault gfn {self.gfn}" + (" (write)" if self.write else "")

    def _first(self, bugs):
        return "begin"

    def _begin(self, vm, me, r, bugs):
        vm, sect = M._rcu_enter(vm, me)
        s = vm.root
        if M._is_table(s):
            return f"lockless walk: root -> table {M._table_of(s)}", vm, \
                r._replace(pc="leaf", tid=M._table_of(s), sect=sect)
        if M._is_huge(s):
            return "lockless walk: root is a huge leaf", vm, r._replace(pc="fix", old=s, tid=-1, sect=sect)
        return "lockless walk: nothing mapped, slow path", vm, r._replace(pc="end", sect=sect)

    def _leaf(self, vm, me, r, bugs):
        vm = M._touch(vm, r.tid, self.name)
        s = M._entry(vm, r.tid, self.gfn)
        if not M._present(s):
            return f"read table {r.tid}[{self.gfn}]: not present, slow path", vm, r._replace(pc="end")
        return f"read table {r.tid}[{self.gfn}]: {M._spte_text(s)}", vm, r._replace(pc="fix", old=s)

    def _fixed(self, vm, old, bugs) -> tuple[Optional[int], str]:
        """The new SPTE, or None and why the fast path gives up."""
        huge = bool(old & M.SPTE_PS)
        new = old
        if M._access_tracked(old):
            new = M._restore_access_track(new)
        if self.write:
            if old & SPTE_W:
                return None, "already writable"
            if not old & SPTE_MMU_WRITABLE and "fast_pf_ignores_mmu_writable" not in bugs:
                return None, "not MMU-writable: slow path"
            if huge and vm.logging and "fast_pf_huge_while_logging" not in bugs:
                return None, "huge page while dirty logging: slow path"
            new |= SPTE_W | SPTE_D
        if new == old:
            return None, "nothing to fix: slow path"
        return new, ""

    def _fix(self, vm, me, r, bugs):
        new, why = self._fixed(vm, r.old, bugs)
        if new is None:
            return why, vm, r._replace(pc="end")
        plain = "fast_pf_plain_store" in bugs
        if r.tid >= 0:
            vm = M._touch(vm, r.tid, self.name)
            cur = M._entry(vm, r.tid, self.gfn)
        else:
            cur = vm.root
        where = f"table {r.tid}[{self.gfn}]" if r.tid >= 0 else "root"
        level = 1 if r.tid >= 0 else 2
        if not plain and cur != r.old:
            return f"cmpxchg {where}: changed under us, give up", vm, r._replace(pc="end")
        if r.tid >= 0:
            vm = M._set_entry(vm, r.tid, self.gfn, new)
            vm = M._count_leaf(vm, cur, new, 1)
        else:
            vm = M._count_leaf(vm._replace(root=new), cur, new, 2)
        if new & SPTE_W and not r.old & SPTE_W and vm.logging:
            vm = vm._replace(dirty=vm.dirty | {self.gfn})
        verb = "store" if plain else "cmpxchg"
        mark = ", mark_page_dirty" if new & SPTE_W and vm.logging else ""
        return f"{verb} {where} = {M._spte_text(new, level)}{mark}", vm, r._replace(pc="end")

    def _end(self, vm, me, r, bugs):
        return "end lockless walk", M._rcu_exit(vm, me), r._replace(pc=_DONE, sect=0)


# ---------------------------------------------------------------------------
# MMU notifiers
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Notifier(_Thread):
    """The host unmapping (migrating, swapping) the page behind ``gfn``.

    ``invalidate_range_start`` (lock for write, ``in_progress`` + 1, zap, flush,
    unlock), the host changing its own page table (the old frame dies), then
    ``invalidate_range_end`` (``seq`` + 1, ``in_progress`` - 1).
    """

    gfn: int = 0

    def __post_init__(self):
        check_choice("gfn", self.gfn, M.GFNS)

    @property
    def name(self) -> str:
        return f"invalidate gfn {self.gfn}"

    def _first(self, bugs):
        return "begin"

    def _begin(self, vm, me, r, bugs):
        vm2 = _write_lock(vm, me)
        if vm2 is None:
            return None
        vm2 = vm2._replace(in_progress=vm2.in_progress + 1)
        return "range_start: write_lock, in_progress += 1", vm2, r._replace(pc="zap")

    def _zap(self, vm, me, r, bugs):
        what = "nothing mapped"
        s = vm.root
        if M._is_huge(s):
            vm = M._count_leaf(vm._replace(root=0), s, 0, 2)
            what = "zap huge root"
        elif M._is_table(s):
            tid = M._table_of(s)
            old = M._entry(vm, tid, self.gfn)
            if M._present(old):
                vm = M._count_leaf(M._set_entry(vm, tid, self.gfn, 0), old, 0, 1)
                what = f"zap table {tid}[{self.gfn}]"
        vm = M._flush(vm)._replace(writer=-1)
        return f"{what}, flush, write_unlock", vm, r._replace(pc="mm")

    def _mm(self, vm, me, r, bugs):
        old = vm.host[self.gfn]
        host = list(vm.host)
        host[self.gfn] = 0x20 + self.gfn
        vm = vm._replace(host=tuple(host), dead=vm.dead | {old})
        return f"host frees pfn {old:#x}, maps {0x20 + self.gfn:#x}", vm, r._replace(pc="end")

    def _end(self, vm, me, r, bugs):
        vm2 = _write_lock(vm, me)
        if vm2 is None:
            return None
        vm2 = vm2._replace(seq=vm2.seq + 1, in_progress=vm2.in_progress - 1, writer=-1)
        return "range_end: seq += 1, in_progress -= 1", vm2, r._replace(pc=_DONE)


@dataclass(frozen=True)
class Aging(_Thread):
    """``clear_flush_young`` on ``gfn``: access-track the SPTE (no A/D bits), flush."""

    gfn: int = 0

    def __post_init__(self):
        check_choice("gfn", self.gfn, M.GFNS)

    @property
    def name(self) -> str:
        return f"clear_flush_young gfn {self.gfn}"

    def _first(self, bugs):
        return "lock"

    def _lock(self, vm, me, r, bugs):
        vm2 = _write_lock(vm, me)
        return None if vm2 is None else ("write_lock(mmu_lock)", vm2, r._replace(pc="age"))

    def _age(self, vm, me, r, bugs):
        s = vm.root
        what = "nothing mapped"
        if M._is_table(s):
            tid = M._table_of(s)
            old = M._entry(vm, tid, self.gfn)
            if M._present(old) and not M._access_tracked(old):
                new = M._mark_access_track(old) & ~SPTE_W
                vm = M._set_entry(vm, tid, self.gfn, new)
                what = f"table {tid}[{self.gfn}] = {M._spte_text(new)}"
        vm = M._flush(vm)._replace(writer=-1)
        return f"{what}, flush, write_unlock", vm, r._replace(pc=_DONE)


# ---------------------------------------------------------------------------
# Zapping a page table under the read lock, freeing it after RCU
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ZapTable(_Thread):
    """Unlink the page table under the root, under ``mmu_lock`` for read.

    Freeze the root entry, freeze each child entry (``handle_removed_pt``),
    flush, clear the root entry, and hand the table to ``call_rcu``; it is
    freed when every RCU reader that could see it has left.
    """

    def __post_init__(self):
        pass

    @property
    def name(self) -> str:
        return "zap table"

    def _first(self, bugs):
        return "lock"

    def _lock(self, vm, me, r, bugs):
        vm2 = _read_lock(vm, me)
        if vm2 is None:
            return None
        vm2, sect = M._rcu_enter(vm2, me)
        return "read_lock(mmu_lock)", vm2, r._replace(pc="root", sect=sect)

    def _root(self, vm, me, r, bugs):
        s = vm.root
        if s == FROZEN_SPTE:
            return None
        if not M._is_table(s):
            return "read root: no table", vm, r._replace(pc="unlock")
        return f"read root: table {M._table_of(s)}", vm, \
            r._replace(pc="freeze", tid=M._table_of(s), old=s)

    def _freeze(self, vm, me, r, bugs):
        if vm.root != r.old:
            return "cmpxchg root: failed", vm, r._replace(pc="root")
        vm = M._set_tstate(vm._replace(root=FROZEN_SPTE), r.tid, "removed")
        return f"cmpxchg root table {r.tid} -> FROZEN", vm, r._replace(pc="child0")

    def _child(self, vm, me, r, i, bugs):
        val = 0 if "removed_children_not_frozen" in bugs else FROZEN_SPTE
        old = M._entry(vm, r.tid, i)
        vm = M._count_leaf(M._set_entry(vm, r.tid, i, val), old, val, 1)
        if M._present(old):
            vm = vm._replace(owed=vm.owed | {me})
        nxt = "child1" if i == 0 else "flush"
        return f"xchg table {r.tid}[{i}] {M._spte_text(old)} -> {M._spte_text(val)}", vm, r._replace(pc=nxt)

    def _child0(self, vm, me, r, bugs):
        return self._child(vm, me, r, 0, bugs)

    def _child1(self, vm, me, r, bugs):
        return self._child(vm, me, r, 1, bugs)

    def _flush(self, vm, me, r, bugs):
        return "flush remote TLBs", M._flush(vm), r._replace(pc="clear")

    def _clear(self, vm, me, r, bugs):
        return "root FROZEN -> 0", vm._replace(root=0), r._replace(pc="retire")

    def _retire(self, vm, me, r, bugs):
        if "free_without_rcu" in bugs:
            return f"free table {r.tid} now", self._free(vm, r.tid), r._replace(pc="unlock")
        waits = M._readers_snapshot(vm, me)
        vm = vm._replace(pending_free=vm.pending_free + ((r.tid, waits),))
        return f"call_rcu(free table {r.tid})", vm, r._replace(pc="unlock")

    @staticmethod
    def _free(vm, tid):
        vm = M._set_tstate(vm, tid, "freed")
        return vm._replace(nr_tables=vm.nr_tables - 1)

    def _unlock(self, vm, me, r, bugs):
        vm = M._rcu_exit(vm._replace(readers=vm.readers - 1), me)
        nxt = "rcu" if vm.pending_free else _DONE
        return "read_unlock", vm, r._replace(pc=nxt, sect=0)

    def _rcu(self, vm, me, r, bugs):
        tid, waits = vm.pending_free[0]
        if not M._grace_period_over(vm, waits):
            return None
        vm = self._free(vm._replace(pending_free=vm.pending_free[1:]), tid)
        return f"grace period over: free table {tid}", vm, r._replace(pc=_DONE)


# ---------------------------------------------------------------------------
# The guest
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Guest(_Thread):
    """The vCPU running guest code: one access to ``gfn`` through the TLB or a walk."""

    gfn: int = 0
    write: bool = False

    def __post_init__(self):
        check_choice("gfn", self.gfn, M.GFNS)
        check_bool("write", self.write)

    @property
    def name(self) -> str:
        return f"guest {'writes' if self.write else 'reads'} gfn {self.gfn}"

    def _first(self, bugs):
        return "access"

    def _access(self, vm, me, r, bugs):
        for base, level, pfn, w in vm.tlb:
            if (base == self.gfn or level == 2) and (w or not self.write):
                return "TLB hit", vm, r._replace(pc=_DONE)
        t = M._translation(vm, self.gfn)
        if t is None or not t[3] or (self.write and not t[2]):
            return "EPT violation: exit to KVM", vm, r._replace(pc=_DONE)
        level, pfn, w, _ = t
        base = 0 if level == 2 else self.gfn
        entry = (base, level, pfn - self.gfn if level == 2 else pfn, w)
        vm = vm._replace(tlb=vm.tlb | {entry})
        return f"walk, fill TLB ({pfn:#x}{' W' if w else ''})", vm, r._replace(pc=_DONE)


#: Every thread class, by the name scenarios use.
THREADS = {"Fault": Fault, "FastFault": FastFault, "Notifier": Notifier, "Aging": Aging,
           "ZapTable": ZapTable, "Guest": Guest}
