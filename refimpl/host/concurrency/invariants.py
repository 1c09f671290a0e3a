"""What must hold after every step of every interleaving.

Each invariant is a function of the shared :class:`~.model.Vm` alone and
returns ``""`` when it holds, else a sentence saying what broke. The checker
runs all of them after each step.

=================  ==========================================================
``stale_mapping``  no SPTE and no TLB entry maps a host frame that an
                   invalidation took away (the MMU-notifier contract)
``dirty_log``      with dirty logging on, every gfn the guest could write
                   through an SPTE or a TLB entry is in the dirty log
``freed_table``    no walk read or wrote a page-table page after it was freed
``tlb_coherent``   every TLB entry is backed by the SPTE it was filled from,
                   or, if that SPTE lost rights or went away (never if it now
                   maps something else), a flush is pending
``counters``       the page counters and the table count agree with the
                   tables linked under the root (or unlinked, awaiting RCU)
``writable``       a writable leaf is host-writable and MMU-writable
                   (``check_spte_writable_invariants``)
=================  ==========================================================
"""

from __future__ import annotations

from refimpl.errors import check_instance
from refimpl.host.concurrency import model as M
from refimpl.host.concurrency.model import GFNS, SPTE_HOST_WRITABLE, SPTE_MMU_WRITABLE, SPTE_W, Vm

__all__ = ["INVARIANTS", "violations"]


def _counted_tables(vm: Vm) -> list[int]:
    """Tables KVM accounts for: linked under the root, or unlinked and awaiting RCU."""
    out = [t for t, s in enumerate(vm.tstate) if s == "removed"]
    if M._is_table(vm.root):
        out.append(M._table_of(vm.root))
    return sorted(set(out))


def _leaves(vm: Vm):
    """Every present leaf KVM accounts for: ``(level, spte, gfns, first pfn)``."""
    if M._is_huge(vm.root):
        yield 2, vm.root, GFNS, M._pfn(vm.root)
    for tid in _counted_tables(vm):
        for gfn, s in enumerate(vm.tables[tid]):
            if M._present(s):
                yield 1, s, (gfn,), M._pfn(s)


def stale_mapping(vm: Vm) -> str:
    """No SPTE or TLB entry maps a dead host frame."""
    for level, s, gfns, pfn in _leaves(vm):
        for i in range(len(gfns)):
            if pfn + i in vm.dead:
                return f"an SPTE maps freed host page {pfn + i:#x}"
    for base, level, pfn, w in vm.tlb:
        for i in range(2 if level == 2 else 1):
            if pfn + i in vm.dead:
                return f"a TLB entry maps freed host page {pfn + i:#x}"
    return ""


def dirty_log(vm: Vm) -> str:
    """Every gfn writable through an SPTE or the TLB is in the dirty log."""
    if not vm.logging:
        return ""
    for gfn in GFNS:
        t = M._translation(vm, gfn)
        writable = t is not None and t[2]
        writable |= any(w and (level == 2 or base == gfn) for base, level, _, w in vm.tlb)
        if writable and gfn not in vm.dirty:
            return f"gfn {gfn} is writable but not in the dirty log"
    return ""


def freed_table(vm: Vm) -> str:
    """No thread touched a freed page-table page."""
    return vm.uaf


def tlb_coherent(vm: Vm) -> str:
    """Each TLB entry matches its SPTE, or only lost rights with a flush pending."""
    for base, level, pfn, w in vm.tlb:
        gfns = GFNS if level == 2 else (base,)
        for gfn in gfns:
            want = pfn + gfn if level == 2 else pfn
            t = M._translation(vm, gfn)
            if t is not None and (t[0] != level or t[1] != want):
                return (f"the TLB maps gfn {gfn} at level {level} to {want:#x}, the SPTE now "
                        f"maps level {t[0]} {t[1]:#x}")
            lost = t is None or not t[3] or (w and not t[2])
            if lost and not vm.owed:
                return f"the TLB still maps gfn {gfn} with rights its SPTE lost, no flush pending"
    return ""


def counters(vm: Vm) -> str:
    """``pages_4k``, ``pages_2m`` and ``nr_tables`` agree with the tables."""
    n4 = n2 = 0
    for level, *_ in _leaves(vm):
        if level == 1:
            n4 += 1
        else:
            n2 += 1
    nt = len(_counted_tables(vm))
    if (n4, n2, nt) != (vm.pages_4k, vm.pages_2m, vm.nr_tables):
        return (f"counters say {vm.pages_4k} 4K / {vm.pages_2m} huge SPTEs in {vm.nr_tables} "
                f"tables; the tables hold {n4} / {n2} in {nt}")
    return ""


def writable(vm: Vm) -> str:
    """A writable leaf SPTE is MMU-writable and host-writable."""
    for level, s, gfns, pfn in _leaves(vm):
        if s & SPTE_W and (s & (SPTE_MMU_WRITABLE | SPTE_HOST_WRITABLE)) != \
                (SPTE_MMU_WRITABLE | SPTE_HOST_WRITABLE):
            return f"the SPTE of gfn {gfns[0]} is writable but not MMU-writable"
    return ""


#: Every invariant, by name, in the order they are reported.
INVARIANTS = {
    "stale_mapping": stale_mapping,
    "dirty_log": dirty_log,
    "freed_table": freed_table,
    "tlb_coherent": tlb_coherent,
    "counters": counters,
    "writable": writable,
}


def violations(vm: Vm) -> dict[str, str]:
    """``{invariant name: what broke}`` for every invariant ``vm`` breaks.

    Raises
    ------
    TypeError
        ``vm`` is not a :class:`~refimpl.host.concurrency.model.Vm`.
    """
    check_instance("vm", vm, Vm)
    out = {}
    for name, f in INVARIANTS.items():
        msg = f(vm)
        if msg:
            out[name] = msg
    return out
