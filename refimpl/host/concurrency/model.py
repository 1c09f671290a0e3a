"""The shared state of the concurrency model and its atomic primitives.

The model's VM has the smallest paging structure that still shows every
race of the book: one root entry (level 2) covering guest frames 0 and 1,
which is either empty, a 2 MiB-style *huge* leaf mapping both frames, or a
pointer to a level-1 table of two entries. Page-table pages come from
per-thread caches (KVM's ``kvm_mmu_memory_cache``, filled before
``mmu_lock`` is taken), so table ``i + 1`` is thread ``i``'s spare page and
table 0 the one a scenario starts with.

SPTEs are integers with the bits of :data:`refimpl.host.spte.SPTE_EPT`
(R, W, X, A, D, PS, MMU-present, PFN, host-writable, MMU-writable, and the
access-tracking saved bits). Host memory is one host frame per guest frame
(``Vm.host``); an invalidation gives the frame a new one and the old frame is
*dead*: nothing may map it once the invalidation has completed.

KVM
---
``struct kvm`` fields: ``mmu_lock`` (an rwlock on x86),
``mmu_invalidate_seq`` and ``mmu_invalidate_in_progress``
(``include/linux/kvm_host.h``; ``mmu_notifier_seq`` and
``mmu_notifier_count`` before 2022), the per-size page counters
(``kvm->stat.pages``), and ``FROZEN_SPTE`` in ``arch/x86/kvm/mmu/spte.h``.
"""

from __future__ import annotations

from typing import NamedTuple

from refimpl.host.spte import SPTE_EPT

__all__ = [
    "Vm", "GFNS", "ROOT_LEVEL", "FROZEN_SPTE", "TABLE_PFN_BASE",
    "SPTE_R", "SPTE_W", "SPTE_X", "SPTE_A", "SPTE_D", "SPTE_PS", "SPTE_PRESENT",
    "SPTE_HOST_WRITABLE", "SPTE_MMU_WRITABLE", "SPTE_SAVED_R", "SPTE_SAVED_X",
]

#: Guest frames the model maps: the two 4 KiB halves of one huge page.
GFNS = (0, 1)
#: The level of the root entry (1 is the 4 KiB leaf).
ROOT_LEVEL = 2

SPTE_R = SPTE_EPT.R.bit
SPTE_W = SPTE_EPT.W.bit
SPTE_X = SPTE_EPT.X.bit
SPTE_A = SPTE_EPT.A.bit
SPTE_D = SPTE_EPT.D.bit
SPTE_PS = SPTE_EPT.PS.bit
SPTE_PRESENT = SPTE_EPT.MMU_PRESENT.bit
SPTE_HOST_WRITABLE = SPTE_EPT.HOST_WRITABLE.bit
SPTE_MMU_WRITABLE = SPTE_EPT.MMU_WRITABLE.bit
SPTE_SAVED_R = SPTE_EPT.SAVED_R.bit
SPTE_SAVED_X = SPTE_EPT.SAVED_X.bit
_PFN = SPTE_EPT.PFN

#: KVM's frozen value (``spte.h``, with ``SHADOW_NONPRESENT_VALUE`` = 0): no
#: R/W/X and no MMU-present bit, so every reader sees it as not present.
FROZEN_SPTE = 0x5A0
if FROZEN_SPTE & (SPTE_PRESENT | SPTE_R | SPTE_W | SPTE_X):
    raise AssertionError("model.py: a frozen SPTE must not look present")

#: Host frame of table ``i`` (so a table pointer is an SPTE like any other).
TABLE_PFN_BASE = 0x100


# ---------------------------------------------------------------------------
# SPTE encoding
# ---------------------------------------------------------------------------


def _leaf(pfn: int, *, writable: bool, huge: bool = False, mmu_writable: bool = True,
          host_writable: bool = True, dirty: bool = False) -> int:
    """A present leaf SPTE (readable, executable, accessed)."""
    s = SPTE_PRESENT | SPTE_R | SPTE_X | SPTE_A | (pfn << _PFN.lo)
    if writable:
        s |= SPTE_W
    if dirty:
        s |= SPTE_D
    if huge:
        s |= SPTE_PS
    if mmu_writable:
        s |= SPTE_MMU_WRITABLE
    if host_writable:
        s |= SPTE_HOST_WRITABLE
    return s


def _table_pointer(tid: int) -> int:
    """A non-leaf SPTE pointing at table ``tid``."""
    return SPTE_PRESENT | SPTE_R | SPTE_W | SPTE_X | ((TABLE_PFN_BASE + tid) << _PFN.lo)


def _present(s: int) -> bool:
    return bool(s & SPTE_PRESENT)


def _is_table(s: int) -> bool:
    """A present root entry that points at a table (not a huge leaf)."""
    return _present(s) and not s & SPTE_PS


def _is_huge(s: int) -> bool:
    return _present(s) and bool(s & SPTE_PS)


def _pfn(s: int) -> int:
    return (s & _PFN.mask) >> _PFN.lo


def _table_of(s: int) -> int:
    return _pfn(s) - TABLE_PFN_BASE


def _access_tracked(s: int) -> bool:
    """Present but R/X moved to the saved bits (aging without A/D bits)."""
    return _present(s) and not s & (SPTE_R | SPTE_X) and bool(s & (SPTE_SAVED_R | SPTE_SAVED_X))


def _mark_access_track(s: int) -> int:
    saved = (SPTE_SAVED_R if s & SPTE_R else 0) | (SPTE_SAVED_X if s & SPTE_X else 0)
    return (s & ~(SPTE_R | SPTE_X | SPTE_A)) | saved


def _restore_access_track(s: int) -> int:
    restored = (SPTE_R if s & SPTE_SAVED_R else 0) | (SPTE_X if s & SPTE_SAVED_X else 0)
    return (s & ~(SPTE_SAVED_R | SPTE_SAVED_X)) | restored | SPTE_A


def _spte_text(s: int, level: int = 1) -> str:
    """A short human reading of an SPTE at ``level`` for the step tables."""
    if s == 0:
        return "0"
    if s == FROZEN_SPTE:
        return "FROZEN"
    if level == ROOT_LEVEL and _is_table(s):
        return f"table {_table_of(s)}"
    kind = "huge " if s & SPTE_PS else ""
    rights = ("R" if s & SPTE_R else "-") + ("W" if s & SPTE_W else "-")
    extra = ""
    if _access_tracked(s):
        extra = " tracked"
    elif not s & SPTE_MMU_WRITABLE:
        extra = " !mmu-w"
    return f"{kind}{_pfn(s):#x} {rights}{extra}"


# ---------------------------------------------------------------------------
# The shared state
# ---------------------------------------------------------------------------


class Vm(NamedTuple):
    """The VM-wide state threads share (a small ``struct kvm`` plus hardware)."""

    #: The root entry (level 2): 0, a huge leaf, a table pointer or frozen.
    root: int
    #: The two entries of each page-table page, by table id.
    tables: tuple
    #: Each table's life: ``"cache"`` (a thread's spare page), ``"live"``
    #: (linked), ``"removed"`` (unlinked, waiting for its grace period), ``"freed"``.
    tstate: tuple
    #: Host frame behind each guest frame (the host's own page table).
    host: tuple
    #: Host frames an invalidation took away.
    dead: frozenset
    #: ``mmu_invalidate_seq``.
    seq: int
    #: ``mmu_invalidate_in_progress``.
    in_progress: int
    #: ``mmu_lock``: the number of readers.
    readers: int
    #: ``mmu_lock``: the writing thread, or -1.
    writer: int
    #: Cached translations ``(base gfn, level, pfn, writable)``.
    tlb: frozenset
    #: Threads that removed rights from an SPTE and have not flushed yet.
    owed: frozenset
    #: Dirty logging is on for the memslot.
    logging: bool
    #: The dirty log.
    dirty: frozenset
    #: KVM's count of 4 KiB leaf SPTEs.
    pages_4k: int
    #: KVM's count of huge leaf SPTEs.
    pages_2m: int
    #: The count of linked table pages.
    nr_tables: int
    #: Per thread, 0 outside an RCU read-side section, else its number.
    rcu: tuple
    #: Tables handed to ``call_rcu`` and the sections they wait for.
    pending_free: tuple
    #: Empty, or what read or wrote a freed table.
    uaf: str


def _initial_vm(nthreads: int, *, root: str = "empty", leaf0: int = 0, logging: bool = False,
                tlb: frozenset = frozenset()) -> Vm:
    """A VM before any thread runs.

    ``root`` is ``"empty"``, ``"huge"`` (a read-only huge leaf over host
    frames 0x10-0x11, write-protected for dirty logging) or ``"table"``
    (table 0 linked, with ``leaf0`` as the entry of gfn 0).
    """
    tables = [(0, 0)] + [(0, 0)] * nthreads
    tstate = ["cache"] * (nthreads + 1)
    r, p4, p2, nt = 0, 0, 0, 0
    if root == "huge":
        r, p2 = _leaf(0x10, writable=False, huge=True), 1
    elif root == "table":
        r, nt = _table_pointer(0), 1
        tables[0], tstate[0] = (leaf0, 0), "live"
        p4 = 1 if _present(leaf0) else 0
    return Vm(root=r, tables=tuple(tables), tstate=tuple(tstate), host=(0x10, 0x11),
              dead=frozenset(), seq=0, in_progress=0, readers=0, writer=-1, tlb=tlb,
              owed=frozenset(), logging=logging, dirty=frozenset(), pages_4k=p4,
              pages_2m=p2, nr_tables=nt, rcu=(0,) * nthreads, pending_free=(), uaf="")


# ---------------------------------------------------------------------------
# Atomic primitives (each returns a new Vm)
# ---------------------------------------------------------------------------


def _entry(vm: Vm, tid: int, gfn: int) -> int:
    return vm.tables[tid][gfn]


def _set_entry(vm: Vm, tid: int, gfn: int, value: int) -> Vm:
    row = list(vm.tables[tid])
    row[gfn] = value
    tables = list(vm.tables)
    tables[tid] = tuple(row)
    return vm._replace(tables=tuple(tables))


def _set_tstate(vm: Vm, tid: int, state: str) -> Vm:
    ts = list(vm.tstate)
    ts[tid] = state
    return vm._replace(tstate=tuple(ts))


def _touch(vm: Vm, tid: int, who: str) -> Vm:
    """Record a use-after-free if ``tid`` has been freed."""
    if vm.tstate[tid] == "freed" and not vm.uaf:
        return vm._replace(uaf=f"{who} used freed table {tid}")
    return vm


def _count_leaf(vm: Vm, old: int, new: int, level: int) -> Vm:
    """Update the page counters for an SPTE change at ``level``."""
    def leaf(s):
        return _present(s) and (level == 1 or bool(s & SPTE_PS))
    d = int(leaf(new)) - int(leaf(old))
    if not d:
        return vm
    if level == 1:
        return vm._replace(pages_4k=vm.pages_4k + d)
    return vm._replace(pages_2m=vm.pages_2m + d)


def _flush(vm: Vm) -> Vm:
    """``kvm_flush_remote_tlbs``: every vCPU's TLB emptied."""
    return vm._replace(tlb=frozenset(), owed=frozenset())


def _rcu_enter(vm: Vm, me: int) -> tuple[Vm, int]:
    sect = max(vm.rcu) + 1
    rcu = list(vm.rcu)
    rcu[me] = sect
    return vm._replace(rcu=tuple(rcu)), sect


def _rcu_exit(vm: Vm, me: int) -> Vm:
    rcu = list(vm.rcu)
    rcu[me] = 0
    return vm._replace(rcu=tuple(rcu))


def _readers_snapshot(vm: Vm, me: int) -> frozenset:
    return frozenset((t, s) for t, s in enumerate(vm.rcu) if s and t != me)


def _grace_period_over(vm: Vm, waits: frozenset) -> bool:
    return all(vm.rcu[t] != s for t, s in waits)


def _translation(vm: Vm, gfn: int):
    """What a hardware walk finds for ``gfn``: ``(level, pfn, writable)`` or None."""
    r = vm.root
    if _is_huge(r):
        return (2, _pfn(r) + gfn, bool(r & SPTE_W), bool(r & SPTE_R))
    if _is_table(r):
        tid = _table_of(r)
        s = _entry(vm, tid, gfn)
        if _present(s):
            return (1, _pfn(s), bool(s & SPTE_W), bool(s & SPTE_R))
    return None
