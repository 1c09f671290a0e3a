"""Seeded workloads, a driver that runs them on any step, and the differential.

A :class:`Workload` is a VM (host vendor, TDP on or off, 1 to 4 vCPUs), the
contents of L1's physical memory (page tables for every paging mode, L2's
page tables, L1's EPT12 and NPT12 tables) and a sequence of :class:`Event`:
mode switches, CR0 writes (mostly CR0.WP toggles), CR3/CR4/EFER writes, SMM
entry and exit, nested VMX entry/exit with or without EPT, VMRUN/#VMEXIT with
or without NPT, hardware accesses, emulated accesses, memslot changes,
dirty logging on and off, and userspace reading the dirty log.

:func:`run` applies the events to a fresh instance of a step and records
every guest-visible outcome. The outcomes are *computed from what the layout
selects*:

* an emulated access walks with the paging context the layout's walk pointer
  designates (:meth:`~refimpl.layouts.steps.base.Layout.emulation_walk`): its CPU
  role becomes the :class:`refimpl.guest.cpu.CpuState` of the walker, its
  ``get_guest_pgd`` gives the root, and the context that translates its GPAs
  (:meth:`~refimpl.layouts.steps.base.Layout.nested_gpa_walk`: none, or L1's
  EPT12/NPT12 with the format of *its* CPU role) decides between
  :func:`refimpl.guest.walker.translate` and :func:`refimpl.guest.nested.nested_translate`;
  a fault goes to whoever the layout's ``inject_page_fault`` callback names;
* a hardware access is handled by the MMU the layout's ``mmu`` pointer
  designates (:meth:`~refimpl.layouts.steps.base.Layout.fault_mmu`), and it
  goes through the MMU KVM would use for that root:

  - a direct root role: the CPU walks the guest's tables with its own
    registers and the GPA goes through the VM's direct MMU (the direct
    kind: :class:`refimpl.host.tdp_mmu.TdpMmu` by default, or any factory
    given as ``direct_mmu``), in the address space the role's ``smm`` bit
    selects;
  - a shadow root role: the CPU walks the shadow pages of
    :class:`refimpl.host.shadow_mmu.ShadowMmu`, and on a fault KVM walks the
    guest's tables and fills them. The shadow MMU is given the roles *the
    layout* computed (:meth:`refimpl.host.shadow_mmu.ShadowMmu.load_root`)
    and keeps its roots exactly as long as the layout keeps its own: a
    layout that does not reset on a CR0 write keeps using the shadow pages
    built before it;
  - the shadow of L1's EPT12 or NPT12: the CPU walks L2's tables with L2's
    registers (each table through L1's EPT12/NPT12, as
    :func:`refimpl.guest.nested.nested_translate` computes it), and the page
    L2's walk reaches goes through EPT02
    (:class:`refimpl.host.tdp12.Tdp12Mmu`) or NPT02
    (:func:`refimpl.host.tdp12.npt_access`), built for the layout's roles;
  - a shadow MMU mapping a guest without paging (a direct role with a
    shadow kind): gva = gpa, looked up in the memslots (direct shadow pages
    of a non-paging guest are not modelled);

* a GPA that is reached is looked up in the VM's memslots
  (:class:`refimpl.host.vm.Kvm`): a host frame, or MMIO; writes are logged in the
  dirty bitmap, which userspace reads as an outcome.

Counters that are not guest-visible (resets, root loads) are returned
separately (``Run.stats``).

Glossary
--------
outcome
    A tuple recorded for one event: ``("ok", gpa, frame)``,
    ``("fault", recipient, kind, ...)``, ``("dirty", gfns)`` or
    ``("error", exception)``; every event gets one (``("-",)`` for
    transitions, whose effects show in later accesses).
recipient
    Who receives a fault: ``"L1"`` or ``"L2"`` (an exception injected into
    the running guest), ``"L1-exit"`` (a VM exit to L1: EPT violation,
    misconfiguration or #NPF).

Simplifications
---------------
* L1's physical memory holds only page tables (L1's for 32-bit, PAE and two
  4-level roots; L2's, placed where L1's EPT12/NPT12 map them; EPT12 and
  NPT12 themselves); data pages are never read by a walk, so they need no
  bytes. EPT12/NPT12 map L2 frames to *other* L1 frames, so that walking
  L2's tables as if they were L1's gives a different answer.
* A CR0 write in the workloads always toggles WP (the other CR0 bits change
  through mode switches, ``set_regs``).
* A fault KVM injects with ``kvm_inject_page_fault`` goes to the running
  guest; whether L1 intercepts L2's #PF (without nested TDP) is not modelled.
* Every write that reaches a memslot is logged while dirty logging is on,
  whoever maps it (the TDP MMU or a shadow MMU); a shadow MMU also logs
  the pages it maps writable, as KVM's ``make_spte`` does.
* The outcome of an access a real MMU completed names the host frame it
  reached and the gpa whose memslot holds that frame.
* L1's tables sit in a memslot of their own (KVM reads gptes through
  memslots); the seeded accesses never target them.

KVM
---
``kvm_mmu_gva_to_gpa_*`` and ``kvm_inject_emulated_page_fault``
(``arch/x86/kvm/x86.c``), ``kvm_mmu_page_fault`` (``arch/x86/kvm/mmu/mmu.c``),
``kvm_tdp_mmu_map`` (``arch/x86/kvm/mmu/tdp_mmu.c``), ``mark_page_dirty``
and ``KVM_GET_DIRTY_LOG`` (``virt/kvm/kvm_main.c``).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np

from refimpl.guest.cpu import CpuState, PagingMode
from refimpl.errors import check_bool, check_choice, check_fields, check_instance, check_int, check_range
from refimpl.guest.memory import GuestMemory
from refimpl.layouts.legacy import CR0_PG, CR0_WP, GuestRegs, Host
from refimpl.guest.nested import nested_translate
from refimpl.host.roles import (
    CR4_PAE, CR4_PSE, CR4_SMAP, CR4_SMEP, EFER_LMA, EFER_LME, EFER_NX, CpuRole,
)
from refimpl.guest.tables import GuestPageTables
from refimpl.host.shadow_mmu import ShadowMmu
from refimpl.host.tdp12 import Tdp12Mmu, npt_access
from refimpl.host.direct_mmu import make_direct_mmu
from refimpl.host.legacy_direct_mmu import LegacyDirectMmu
from refimpl.host.tdp_mmu import RecoveryStrategy, TdpMmu
from refimpl.host.vm import HostMemory, Kvm, MemslotFlags
from refimpl.fast.scalar import translate
from refimpl.guest.walker import ACCESS_FETCH, ACCESS_USER, ACCESS_WRITE, is_canonical

__all__ = [
    "EVENT_KINDS", "Event", "Workload", "Run", "Mismatch", "DifferentialReport",
    "generate", "workloads", "run", "differential", "first_difference",
    "cpu_state_from_role", "default_count", "wp_probe_workload",
    "DIRECT_MMUS", "legacy_direct_mmu",
]

EVENT_KINDS = (
    "set_regs", "cr0", "cr3", "cr4", "efer", "smm",
    "vmx_vmentry", "vmx_vmexit", "svm_vmrun", "svm_vmexit",
    "hw_access", "emul_access",
    "memslot_create", "memslot_delete", "memslot_move",
    "dirty_log_on", "dirty_log_off", "get_dirty_log",
)
"""Every kind of :class:`Event`."""

_VM_EVENTS = {"memslot_create", "memslot_delete", "memslot_move",
              "dirty_log_on", "dirty_log_off", "get_dirty_log"}

# L1 physical memory map (frames).
MEM_PAGES = 0xA0  # tables only: data frames are never read by a walk
_L1_TABLES = {"32": 0x10, "pae": 0x18, "long": 0x20, "long_b": 0x28}
_L2_TABLES_L2GFN = {"32": 0x20, "pae": 0x24, "long": 0x28}  # in L2-physical space
_L2_OFFSET = 0x40        # EPT12/NPT12 map L2 gfn g -> L1 gfn g + 0x40 (tables)
_L2_DATA = (0x80, 0xC0)  # L2 data gfns, mapped to L1 gfn + 0x80
_EPT_ROOT = 0x80
_NPT_FIRST = 0x90
_DATA = (0x100, 0x140)   # L1 data gfns
_SLOT2_BASES = (0x130, 0x138)
_TABLE_SLOT = 3          # memslot of L1's tables (gfns below MEM_PAGES)
_BACKED_FRAMES = 256     # host frames for the MMUs' own pages
_CR0_PE = 1

_GVAS = tuple(0x400000 + 0x1000 * k for k in range(10)) + \
    tuple(0x100000 + 0x1000 * k for k in range(0, 0x40, 9))
"""Addresses the workloads access: 10 mapped in every paging mode's tables
(some not present), and a few low ones that equal L1 data GPAs (meaningful
without paging)."""

_NONCANONICAL = 0x0000_8000_0000_1000
"""Accessed now and then in long mode: bits 63:47 not a sign extension (#GP)."""


@dataclass(frozen=True)
class Event:
    """One event of a workload.

    Parameters
    ----------
    vcpu : int
        Index of the vCPU (-1 for VM-wide events: memslots, dirty log).
    kind : str
        One of :data:`EVENT_KINDS`.
    args : tuple
        Event arguments (registers, addresses, access bits...).
    """

    vcpu: int
    kind: str
    args: tuple = ()

    def __post_init__(self) -> None:
        check_fields(self, vcpu=int, kind=str, args=tuple)
        check_range("Event.vcpu", self.vcpu, -1, 1 << 16)


@dataclass(frozen=True)
class Workload:
    """A seeded workload (build with :func:`generate`).

    Parameters
    ----------
    seed : int
    host : refimpl.layouts.legacy.Host
    n_vcpus : int
    events : tuple of Event
    memory : tuple of (numpy.ndarray, numpy.ndarray)
        Non-zero 64-bit words of L1's memory: indices and values.
    eptp : int
        EPTP12 for nested EPT entries.
    ncr3 : int
        nCR3 for nested NPT entries.
    """

    seed: int
    host: Host
    n_vcpus: int
    events: tuple
    memory: tuple = field(repr=False, compare=False)
    eptp: int = 0
    ncr3: int = 0

    def __post_init__(self) -> None:
        check_fields(self, seed=int, host=Host, n_vcpus=int, events=tuple, memory=tuple,
                     eptp=int, ncr3=int)
        check_range("Workload.n_vcpus", self.n_vcpus, 1, 1 << 16)
        check_range("Workload.eptp", self.eptp, 0, 1 << 64)
        check_range("Workload.ncr3", self.ncr3, 0, 1 << 64)

    def counts(self) -> dict[str, int]:
        """How many events of each kind."""
        out = {k: 0 for k in EVENT_KINDS}
        for e in self.events:
            out[e.kind] += 1
        return out


@dataclass
class Run:
    """What :func:`run` returns.

    Attributes
    ----------
    outcomes : list of tuple
        One guest-visible outcome per event, in order.
    internal : list of tuple
        Not guest-visible: for each hardware access that maps a page, what
        ``make_spte`` reads (``(event index, shadow_zero_check)``,
        from the step's ``tdp_mmu_map``). Every step must agree on it too:
        a wrong zero-bit check changes no guest outcome, only KVM's checks.
    stats : dict
        The step's counters (:data:`refimpl.layouts.steps.base.STAT_NAMES`).
    error : str or None
        The exception that stopped the run, if any (its outcome is the last).
    """

    outcomes: list
    internal: list
    stats: dict
    error: Optional[str] = None


# ---------------------------------------------------------------------------
# Building memory
# ---------------------------------------------------------------------------

_FLAGS_P, _FLAGS_W, _FLAGS_U = 1, 2, 4
_NX = 1 << 63


def _leaf(rng: random.Random, wide: bool) -> int:
    r = rng.random()
    if r < 0.12:
        return 0  # not present
    flags = _FLAGS_P
    if rng.random() < 0.65:
        flags |= _FLAGS_W
    if rng.random() < 0.6:
        flags |= _FLAGS_U
    if wide and rng.random() < 0.2:
        flags |= _NX
    return flags


def _map_all(mem: GuestMemory, rng: random.Random, mode: PagingMode, first_gfn: int,
             targets: Sequence[int], read_only: Optional[dict] = None) -> int:
    pt = GuestPageTables(mem, mode, first_gfn)
    wide = mode is not PagingMode.BITS32
    kernel_ro = []
    for gva in _GVAS:
        gfn = rng.choice(targets)
        flags = _leaf(rng, wide)
        if flags:
            pt.map(gva, gfn << 12, leaf=flags)
            if flags & (_FLAGS_W | _FLAGS_U) == 0:
                kernel_ro.append(gva)
        else:
            pt.map(gva, gfn << 12, leaf=_FLAGS_W)  # tables exist, leaf not present
    if read_only is not None:
        read_only[pt.cr3] = tuple(kernel_ro)
    return pt.cr3


def _ept_entry(l1_gfn: int, rights: int) -> int:
    return (l1_gfn << 12) | rights | (6 << 3 if rights else 0)


def _build_memory(rng: random.Random, eptp_ad: bool) -> tuple[GuestMemory, dict]:
    mem = GuestMemory(MEM_PAGES << 12)
    data = list(range(*_DATA))
    roots: dict = {"kernel_ro": {}}
    ro = roots["kernel_ro"]  # L1 CR3 -> present read-only supervisor pages
    roots["32"] = _map_all(mem, rng, PagingMode.BITS32, _L1_TABLES["32"], data, ro)
    roots["pae"] = _map_all(mem, rng, PagingMode.PAE, _L1_TABLES["pae"], data, ro)
    roots["long"] = _map_all(mem, rng, PagingMode.LEVEL4, _L1_TABLES["long"], data, ro)
    roots["long_b"] = _map_all(mem, rng, PagingMode.LEVEL4, _L1_TABLES["long_b"], data, ro)
    # L2's own tables, in L2-physical space, placed at L1 gfn + _L2_OFFSET.
    staging = GuestMemory(0x30 << 12)
    l2_data = list(range(*_L2_DATA))
    for key, mode in (("32", PagingMode.BITS32), ("pae", PagingMode.PAE),
                      ("long", PagingMode.LEVEL4)):
        roots["l2_" + key] = _map_all(staging, rng, mode, _L2_TABLES_L2GFN[key], l2_data)
    lo, hi = min(_L2_TABLES_L2GFN.values()), max(_L2_TABLES_L2GFN.values()) + 4
    mem.write((lo + _L2_OFFSET) << 12, staging.read(lo << 12, (hi - lo) << 12))
    # L2 gfn -> L1 gfn: tables at +_L2_OFFSET, data at +0x80.
    l2_map = {g: g + _L2_OFFSET for g in range(lo, hi)}
    l2_map.update({g: g + 0x80 for g in l2_data})
    # EPT12: 4-level, one table per level (all L2 gfns are below 2 MiB).
    pml4, pdpt, pd, pt = (_EPT_ROOT + i for i in range(4))
    mem.write64(pml4 << 12, _ept_entry(pdpt, 7) & ~(6 << 3))
    mem.write64(pdpt << 12, _ept_entry(pd, 7) & ~(6 << 3))
    mem.write64(pd << 12, _ept_entry(pt, 7) & ~(6 << 3))
    npt = GuestPageTables(mem, PagingMode.LEVEL4, _NPT_FIRST)
    for g, l1 in l2_map.items():
        table = lo <= g < hi
        if table:
            rights, nflags = 7, _FLAGS_P | _FLAGS_W | _FLAGS_U
        else:
            r = rng.random()
            rights = 0 if r < 0.1 else (1 if r < 0.3 else (5 if r < 0.4 else 7))
            r = rng.random()
            nflags = 0 if r < 0.1 else (_FLAGS_P | _FLAGS_U if r < 0.3 else
                                        _FLAGS_P | _FLAGS_W | _FLAGS_U)
        mem.write64((pt << 12) + 8 * g, _ept_entry(l1, rights))
        npt.map(g << 12, l1 << 12, leaf=nflags if nflags else _FLAGS_W)
    eptp = (_EPT_ROOT << 12) | (3 << 3) | (int(eptp_ad) << 6) | 6
    roots["eptp"], roots["ncr3"] = eptp, npt.cr3
    return mem, roots


def _memory_words(mem: GuestMemory) -> tuple:
    words = np.frombuffer(bytes(mem.buffer), dtype=np.uint64)
    idx = np.nonzero(words)[0]
    return (idx, words[idx].copy())


# ---------------------------------------------------------------------------
# Generating workloads
# ---------------------------------------------------------------------------

_ACCESSES = (0, ACCESS_WRITE, ACCESS_USER, ACCESS_USER | ACCESS_WRITE, ACCESS_FETCH,
             ACCESS_WRITE)


def _l1_regs(rng: random.Random, roots: dict, mode: str, smm: bool = False) -> GuestRegs:
    wp = CR0_WP if rng.random() < 0.6 else 0
    smep = CR4_SMEP if rng.random() < 0.3 else 0
    smap = CR4_SMAP if rng.random() < 0.3 else 0
    nx = EFER_NX if rng.random() < 0.7 else 0
    if mode == "nonpaging":
        return GuestRegs(cr0=_CR0_PE | wp, cr3=0, cr4=0, efer=nx, smm=smm)
    if mode == "32":
        pse = CR4_PSE if rng.random() < 0.5 else 0
        return GuestRegs(cr0=_CR0_PE | CR0_PG | wp, cr3=roots["32"], cr4=pse | smep | smap,
                         efer=nx, smm=smm)
    if mode == "pae":
        return GuestRegs(cr0=_CR0_PE | CR0_PG | wp, cr3=roots["pae"],
                         cr4=CR4_PAE | smep | smap, efer=nx, smm=smm)
    cr3 = roots["long"] if rng.random() < 0.6 else roots["long_b"]
    return GuestRegs(cr0=_CR0_PE | CR0_PG | wp, cr3=cr3, cr4=CR4_PAE | smep | smap,
                     efer=EFER_LME | EFER_LMA | nx, smm=smm)


def _l2_regs(rng: random.Random, roots: dict, nested_tdp: bool) -> GuestRegs:
    mode = rng.choice(("32", "pae", "long"))
    regs = _l1_regs(rng, roots, mode)
    cr3 = roots["l2_" + mode] if nested_tdp else roots[mode]
    return GuestRegs(cr0=regs.cr0, cr3=cr3, cr4=regs.cr4, efer=regs.efer)


def _mode_of(regs: GuestRegs) -> str:
    if not regs.cr0 & CR0_PG:
        return "nonpaging"
    if regs.efer & EFER_LMA:
        return "long"
    return "pae" if regs.cr4 & CR4_PAE else "32"


def _check_count(name: str, value: object, lo: int, hi: int) -> int:
    value = check_int(name, value)
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    return value


def generate(seed: int, *, n_vcpus: Optional[int] = None, n_events: Optional[int] = None,
             vendor: Optional[str] = None, tdp: Optional[bool] = None) -> Workload:
    """A seeded random workload.

    Parameters
    ----------
    seed : int
        Everything not given below is drawn from ``random.Random(seed)``.
    n_vcpus : int or None
        1 to 4 (default: drawn).
    n_events : int or None
        Events after the initial mode switches, 1 to 2000 (default: 20 to 40).
    vendor : str or None
        ``"vmx"`` or ``"svm"`` (default: drawn).
    tdp : bool or None
        TDP on the host (default: on 80% of the time).

    Raises
    ------
    TypeError, ValueError
        Arguments of the wrong type or out of range.
    """
    seed = _check_count("seed", seed, 0, 2**63 - 1)
    rng = random.Random(seed)
    n_vcpus = rng.randint(1, 4) if n_vcpus is None else _check_count("n_vcpus", n_vcpus, 1, 4)
    n_events = rng.randint(20, 40) if n_events is None else _check_count("n_events", n_events, 1, 2000)
    if vendor is None:
        vendor = rng.choice(("vmx", "svm"))
    else:
        check_choice("vendor", vendor, ("vmx", "svm"))
    if tdp is None:
        tdp = rng.random() < 0.8
    elif not isinstance(tdp, bool):
        raise TypeError(f"tdp must be a bool, got {tdp!r}")
    host = Host(tdp_enabled=tdp, vendor=vendor)
    mem, roots = _build_memory(rng, eptp_ad=rng.random() < 0.5)
    events: list[Event] = []
    # Per vCPU: current regs, L2 state (None, or "tdp"/"notdp").
    regs: list[GuestRegs] = []
    l2: list[Optional[str]] = []
    for i in range(n_vcpus):
        r = _l1_regs(rng, roots, rng.choice(("nonpaging", "32", "pae", "long", "long")))
        regs.append(r)
        l2.append(None)
        events.append(Event(i, "set_regs", (r,)))
    regs_l1: dict[int, GuestRegs] = {}
    slot2: Optional[tuple[int, bool]] = None  # (base, readonly)
    logging = False
    entry = "vmx_vmentry" if vendor == "vmx" else "svm_vmrun"
    exit_ = "vmx_vmexit" if vendor == "vmx" else "svm_vmexit"
    # A second generator, so that the bias leaves the main draws alone.
    bias = random.Random(seed ^ _BIAS_SALT)
    while len(events) < n_vcpus + n_events:
        if not tdp and len(events) + 3 <= n_vcpus + n_events and bias.random() < _WP_PROBE:
            i = bias.randrange(n_vcpus)
            probe = _wp_probe(bias, i, regs[i], roots["kernel_ro"])
            if probe:
                events.extend(probe)
                r = regs[i]
                regs[i] = GuestRegs(probe[1].args[0], r.cr3, r.cr4, r.efer, r.smm)
                continue
        i = rng.randrange(n_vcpus)
        r, in_l2 = regs[i], l2[i]
        x = rng.random()
        if x < 0.42:
            gva = rng.choice(_GVAS)
            if _mode_of(r) == "long" and rng.random() < 0.04:
                gva = _NONCANONICAL
            kind = "emul_access" if x < 0.22 else "hw_access"
            events.append(Event(i, kind, (gva, rng.choice(_ACCESSES))))
        elif x < 0.55:
            regs[i] = GuestRegs(r.cr0 ^ CR0_WP, r.cr3, r.cr4, r.efer, r.smm)
            events.append(Event(i, "cr0", (regs[i].cr0,)))
        elif x < 0.59:
            if in_l2 is None and _mode_of(r) == "long":
                cr3 = roots["long_b"] if r.cr3 == roots["long"] else roots["long"]
                regs[i] = GuestRegs(r.cr0, cr3, r.cr4, r.efer, r.smm)
                events.append(Event(i, "cr3", (cr3,)))
        elif x < 0.63:
            bit = rng.choice((CR4_SMEP, CR4_SMAP)) if _mode_of(r) != "32" else \
                rng.choice((CR4_SMEP, CR4_SMAP, CR4_PSE))
            regs[i] = GuestRegs(r.cr0, r.cr3, r.cr4 ^ bit, r.efer, r.smm)
            events.append(Event(i, "cr4", (regs[i].cr4,)))
        elif x < 0.66:
            regs[i] = GuestRegs(r.cr0, r.cr3, r.cr4, r.efer ^ EFER_NX, r.smm)
            events.append(Event(i, "efer", (regs[i].efer,)))
        elif x < 0.70:
            if in_l2 is None:
                regs[i] = _l1_regs(rng, roots, rng.choice(("nonpaging", "32", "pae", "long")),
                                   smm=r.smm)
                events.append(Event(i, "set_regs", (regs[i],)))
        elif x < 0.73:
            if in_l2 is None:
                regs[i] = GuestRegs(r.cr0, r.cr3, r.cr4, r.efer, not r.smm)
                events.append(Event(i, "smm", (not r.smm,)))
        elif x < 0.80:
            if in_l2 is None and not r.smm and _mode_of(r) == "long":
                nested_tdp = tdp and rng.random() < 0.7
                l2r = _l2_regs(rng, roots, nested_tdp)
                if vendor == "vmx":
                    events.append(Event(i, entry, (l2r, nested_tdp, roots["eptp"])))
                else:
                    events.append(Event(i, entry, (l2r, nested_tdp, roots["ncr3"])))
                l2[i] = "tdp" if nested_tdp else "notdp"
                regs[i], regs_l1[i] = l2r, r
        elif x < 0.86:
            if in_l2 is not None:
                events.append(Event(i, exit_))
                l2[i] = None
                regs[i] = regs_l1[i]
        elif x < 0.90:
            if slot2 is None:
                slot2 = (rng.choice(_SLOT2_BASES), rng.random() < 0.4)
                events.append(Event(-1, "memslot_create", slot2))
            elif rng.random() < 0.5:
                events.append(Event(-1, "memslot_delete"))
                slot2 = None
            else:
                base = _SLOT2_BASES[1] if slot2[0] == _SLOT2_BASES[0] else _SLOT2_BASES[0]
                slot2 = (base, slot2[1])
                events.append(Event(-1, "memslot_move", (base,)))
        elif x < 0.94:
            logging = not logging
            events.append(Event(-1, "dirty_log_on" if logging else "dirty_log_off"))
        else:
            if logging:
                events.append(Event(-1, "get_dirty_log"))
    return Workload(seed, host, n_vcpus, tuple(events), _memory_words(mem),
                    roots["eptp"], roots["ncr3"])


_BIAS_SALT = 0x5EED_C0DE
_WP_PROBE = 0.08
"""Per event, on a shadow-paging host: the chance of a WP probe (:func:`_wp_probe`)."""


def _wp_probe(bias: random.Random, i: int, r: GuestRegs, kernel_ro: dict) -> tuple:
    """With CR0.WP=0 and paging on: a supervisor write to a present,
    read-only supervisor page, CR0.WP back to 1, the same write again.

    The second write must fault (SDM: CR0.WP=1 forbids it); a shadow MMU
    that kept the SPTE the first write made writable lets it through. The
    seeded workloads would rarely line the three events up by chance.
    """
    gvas = kernel_ro.get(r.cr3, ())
    if r.cr0 & CR0_WP or not r.cr0 & CR0_PG or not gvas:
        return ()
    w = Event(i, "hw_access", (bias.choice(gvas), ACCESS_WRITE))
    return (w, Event(i, "cr0", (r.cr0 | CR0_WP,)), w)


def wp_probe_workload(seed: int = 0) -> Workload:
    """A directed workload: the CR0.WP sequence a shadow MMU must get right.

    On a shadow-paging VMX host, one vCPU in long mode with CR0.WP=0: a
    hardware supervisor write to a present, read-only supervisor page
    (allowed while WP=0) that reaches a memslot, a CR0 write that sets
    WP, and the same write again (a #PF with error code P|W by the SDM). The memory is that of
    ``generate(s)`` for the first ``s >= seed`` whose 4-level tables have
    such a page.

    Raises
    ------
    TypeError, ValueError
        ``seed`` not an int in range.
    """
    seed = _check_count("seed", seed, 0, 2**62)
    cr3 = _L1_TABLES["long"] << 12
    for s in range(seed, seed + 1000):
        base = generate(s, n_vcpus=1, vendor="vmx", tdp=False, n_events=1)
        mem = GuestMemory(MEM_PAGES << 12)
        idx, vals = base.memory
        np.frombuffer(mem.buffer, dtype=np.uint64)[idx] = vals
        regs = GuestRegs(cr0=_CR0_PE | CR0_PG, cr3=cr3, cr4=CR4_PAE,
                         efer=EFER_LME | EFER_LMA | EFER_NX)
        cpu = _regs_cpu(regs, base.host.guest_maxphyaddr)
        for gva in _GVAS[:10]:
            wp1 = _regs_cpu(GuestRegs(regs.cr0 | CR0_WP, cr3, regs.cr4, regs.efer),
                            base.host.guest_maxphyaddr)
            ok = translate(mem, cpu, gva, ACCESS_WRITE)
            if ok.fault is None and _DATA[0] <= ok.gpa >> 12 < _SLOT2_BASES[0] and \
                    translate(mem, cpu, gva, ACCESS_USER).fault is not None and \
                    translate(mem, wp1, gva, ACCESS_WRITE).fault is not None:
                write = Event(0, "hw_access", (gva, ACCESS_WRITE))
                events = (Event(0, "set_regs", (regs,)), write,
                          Event(0, "cr0", (regs.cr0 | CR0_WP,)), write)
                return Workload(s, base.host, 1, events, base.memory, base.eptp, base.ncr3)
    raise ValueError(f"no read-only supervisor page in the tables of seeds {seed}..{seed + 999}")


def default_count() -> int:
    """Workloads per step in the default differential (env ``REFACTOR_WORKLOADS``)."""
    v = os.environ.get("REFACTOR_WORKLOADS", "")
    return int(v) if v.isdigit() and int(v) > 0 else 1000


def workloads(n: int, first_seed: int = 0) -> list[Workload]:
    """``n`` workloads with seeds ``first_seed``, ``first_seed + 1``...

    Raises
    ------
    ValueError, TypeError
        ``n`` not in 1..1_000_000 or a bad seed.
    """
    n = _check_count("n", n, 1, 1_000_000)
    first_seed = _check_count("first_seed", first_seed, 0, 2**62)
    return [generate(first_seed + k) for k in range(n)]


# ---------------------------------------------------------------------------
# Running a workload on a step
# ---------------------------------------------------------------------------

_INJECT_EXIT = ("nested_ept_inject_page_fault", "nested_svm_inject_npf_exit")


def cpu_state_from_role(role: CpuRole, pgd: int, *, maxphyaddr: int = 46,
                        gbpages: bool = True) -> CpuState:
    """The registers a walker needs, rebuilt from a CPU role and a root.

    Only what the role records matters to a walk (paging level, WP, NX, PSE,
    SMEP, SMAP, PKE, LA57), which is why KVM can keep a role instead of the
    registers. The role, not the vCPU's registers, is used on purpose: a
    layout that keeps a stale role gives a different walk.

    Raises
    ------
    TypeError
        ``role`` is not a :class:`refimpl.host.roles.CpuRole`, or ``pgd``,
        ``maxphyaddr`` or ``gbpages`` of the wrong type.
    ValueError
        ``pgd`` or ``maxphyaddr`` out of range (as :class:`refimpl.guest.cpu.CpuState`
        checks them).
    """
    if not isinstance(role, CpuRole):
        raise TypeError(f"role must be a CpuRole, got {role!r}")
    pgd = check_int("pgd", pgd)
    maxphyaddr = check_int("maxphyaddr", maxphyaddr)
    gbpages = check_bool("gbpages", gbpages)
    return _cpu_state(role, pgd, maxphyaddr, gbpages)


@lru_cache(maxsize=8192)
def _cpu_state(role: CpuRole, pgd: int, maxphyaddr: int, gbpages: bool) -> CpuState:
    b, e = role.base, role.ext
    if not role.paging:
        return CpuState(cr0=_CR0_PE, cr3=0, maxphyaddr=maxphyaddr, gbpages=gbpages)
    cr0 = _CR0_PE | CR0_PG | (CR0_WP if b.cr0_wp else 0)
    cr4 = (0 if b.has_4_byte_gpte else CR4_PAE) | (CR4_PSE if e.cr4_pse else 0)
    cr4 |= (CR4_SMEP if e.cr4_smep else 0) | (CR4_SMAP if e.cr4_smap else 0)
    cr4 |= (1 << 22 if e.cr4_pke else 0) | (1 << 12 if e.cr4_la57 else 0)
    efer = (EFER_NX if b.efer_nx else 0) | (EFER_LME | EFER_LMA if e.efer_lma else 0)
    return CpuState(cr0=cr0, cr3=pgd, cr4=cr4, efer=efer, maxphyaddr=maxphyaddr,
                    gbpages=gbpages)


@lru_cache(maxsize=8192)
def _regs_cpu(regs: GuestRegs, maxphyaddr: int) -> CpuState:
    return CpuState(cr0=regs.cr0, cr3=regs.cr3, cr4=regs.cr4, efer=regs.efer,
                    maxphyaddr=maxphyaddr)


def _recipient(inject: Optional[str], role: CpuRole) -> str:
    if inject == "kvm_inject_page_fault":
        return "L2" if role.base.guest_mode else "L1"
    if inject in _INJECT_EXIT:
        return "L1-exit"
    return f"?{inject}"


def _nested_kwargs(nw) -> dict:
    r = nw.cpu_role
    if nw.gva_to_gpa == "ept_gva_to_gpa":
        eptp = (nw.pgd & ~0x7F) | 6 | ((r.base.level - 1) << 3) | ((not r.base.ad_disabled) << 6)
        return {"eptp": eptp, "execute_only": bool(r.ext.execonly)}
    cr4 = (0 if r.base.has_4_byte_gpte else CR4_PAE) | (CR4_PSE if r.ext.cr4_pse else 0)
    efer = (EFER_NX if r.base.efer_nx else 0) | (EFER_LME | EFER_LMA if r.ext.efer_lma else 0)
    return {"ncr3": nw.pgd, "l1_cr4": cr4, "l1_efer": efer}


class _World:
    """L1's memory, the VM's memslots and the MMUs KVM would use, for one run.

    One direct MMU for the VM (made by ``direct_mmu``), one x86 shadow MMU
    (L1's tables on a shadow-paging host, or L1's NPT12), one
    :class:`refimpl.host.tdp12.Tdp12Mmu` (L1's EPT12); each vCPU gets a
    shadow-MMU vCPU per MMU the first time one of its roots is used.
    """

    def __init__(self, wl: Workload, layout, direct_mmu) -> None:
        self.mem = GuestMemory(MEM_PAGES << 12)
        idx, vals = wl.memory
        np.frombuffer(self.mem.buffer, dtype=np.uint64)[idx] = vals
        self.maxphyaddr = wl.host.guest_maxphyaddr
        self.kvm = Kvm(HostMemory(1 << 14, backed_frames=_BACKED_FRAMES,
                                  maxphyaddr=wl.host.host_maxphyaddr))
        lo, hi = _DATA
        self.kvm.add_memslot(0, lo, 0x20)
        self.kvm.add_memslot(1, lo + 0x20, 0x10)
        self.kvm.add_memslot(0, lo, hi - lo, as_id=1)  # SMRAM view
        for as_id in (0, 1):  # the guest's tables: KVM reads gptes through memslots
            self.kvm.add_memslot(_TABLE_SLOT, 0, MEM_PAGES, as_id=as_id)
        self.tdp = None
        if wl.host.tdp_enabled:
            self.tdp = direct_mmu(self.kvm, host_max_level=1,
                                  recovery=layout.recover_huge_pages(None))
        self.vcpus = [self.kvm.create_vcpu() for _ in range(wl.n_vcpus)]
        self.shadow: Optional[ShadowMmu] = None
        self.ept12: Optional[Tdp12Mmu] = None
        #: (vCPU, which MMU) -> [shadow-MMU vCPU, the layout's root it stands for]
        self.mirrors: dict = {}
        #: (vCPU, which MMU, the layout's root) -> (cpu_role, root_role) when loaded
        self.root_roles: dict = {}
        self.internal: list = []
        self.event = 0

    def spte_inputs(self, inputs) -> None:
        """Record what ``make_spte`` would read for this fault (not guest-visible)."""
        self.internal.append((self.event, inputs.shadow_zero_check))

    def memory(self, gpa: int, access: int, as_id: int) -> tuple:
        gfn = gpa >> 12
        slot = self.kvm.gfn_to_memslot(gfn, as_id)
        write = bool(access & ACCESS_WRITE)
        if slot is None or (write and slot.readonly):
            return ("ok", gpa, "mmio")
        if write:
            self.kvm.mark_page_dirty(gfn, as_id)
        return ("ok", gpa, slot.gfn_to_hfn(gfn))

    def reached(self, hpa: Optional[int], gpa: Optional[int], access: int, as_id: int) -> tuple:
        """The outcome of an access a real MMU completed: the host frame it
        reached, and the gpa whose memslot holds that frame."""
        if hpa is None:
            return ("ok", gpa, "mmio")
        hfn = hpa >> 12
        gfn = next(s.base_gfn + hfn - s.host_pfn for s in self.kvm.memslots(as_id)
                   if s.host_pfn <= hfn < s.host_pfn + s.npages)
        if access & ACCESS_WRITE:
            self.kvm.mark_page_dirty(gfn, as_id)
        return ("ok", (gfn << 12) | (hpa & 0xFFF), hfn)

    def walk(self, cpu: CpuState, gva: int, access: int, nested: Optional[dict]):
        """(gpa, None) or (None, (recipient-side, kind, fields...))."""
        if nested is None:
            r = translate(self.mem, cpu, gva, access)
            if r.fault is not None:
                f = r.fault
                kind = "#PF" if f.vector == 14 else "#GP"
                return None, ("guest", kind, f.vector, f.error_code, gva, None, None)
            return r.gpa, None
        r = self.walk2d(cpu, gva, access, nested)
        if r.fault is not None:
            return None, _nested_fault(r.fault)
        return r.l1_gpa, None

    def walk2d(self, cpu: CpuState, gva: int, access: int, nested: dict):
        """L2's walk through L1's EPT12/NPT12, as the CPU or the emulator does it."""
        return nested_translate(self.mem, cpu, gva, access, maxphyaddr=self.maxphyaddr, **nested)

    # -- the shadow MMUs, kept as the layout keeps its roots -----------------

    def observe(self, layout, vcpu, i: int) -> None:
        """After a vCPU event: note the roles of a shadow root the layout just loaded."""
        mv = layout.fault_mmu(vcpu)
        if not mv.root_role.direct and mv.root.valid:
            key = (i, _which(mv), mv.root)
            if key not in self.root_roles:
                self.root_roles[key] = (mv.walk.cpu_role, mv.root_role)

    def mirror(self, i: int, mv):
        """The shadow-MMU vCPU that stands for the layout's root ``mv.root``.

        A root the layout loaded is loaded with the roles the layout had
        then; a context the layout re-initialised without unloading keeps
        its root and takes the new roles (as ``kvm_init_mmu`` alone does).
        """
        which = _which(mv)
        cpu_role, root_role = self.root_roles.get((i, which, mv.root),
                                                  (mv.walk.cpu_role, mv.root_role))
        m = self.mirrors.get((i, which))
        if which == "ept12":
            if self.ept12 is None:
                self.ept12 = Tdp12Mmu(self.kvm, self.mem, execute_only=True)
            mmu = self.ept12
            state = mv.walk.pgd
            now = mv.walk.pgd
            if m is None:
                m = self.mirrors[(i, which)] = [mmu.add_vcpu(state), None]
                m[1] = _same_roles(m[0], cpu_role, root_role, mv.root)
        else:
            if self.shadow is None:
                self.shadow = ShadowMmu(self.kvm, self.mem)
            mmu = self.shadow
            state = cpu_state_from_role(cpu_role, mv.walk.pgd, maxphyaddr=self.maxphyaddr)
            now = cpu_state_from_role(mv.walk.cpu_role, mv.walk.pgd, maxphyaddr=self.maxphyaddr)
            if m is None:
                m = self.mirrors[(i, which)] = [
                    mmu.add_vcpu(state, guest_mode=bool(root_role.guest_mode)), None]
                m[1] = _same_roles(m[0], cpu_role, root_role, mv.root)
        vc = m[0]
        if m[1] != mv.root:
            mmu.load_root(vc, state, cpu_role, root_role)
            m[1] = mv.root
        if (vc.cpu_role, vc.mmu.root_role) != (mv.walk.cpu_role, mv.root_role):
            mmu.load_root(vc, now, mv.walk.cpu_role, mv.root_role, keep_root=True)
        vc.vcpu.smm = bool(mv.root_role.smm)
        return mmu, vc


def _same_roles(vc, cpu_role: CpuRole, root_role, root):
    """``root`` if the shadow MMU's new vCPU already loaded a root for these
    roles (then it stands for the layout's root), else None."""
    if (vc.cpu_role, vc.mmu.root_role) == (cpu_role, root_role):
        return root
    return None


def _which(mv) -> str:
    """Which shadow MMU a shadow root belongs to: L1's EPT12, else x86 tables."""
    if mv.walk.gva_to_gpa == "ept_gva_to_gpa":
        return "ept12"
    return "npt12" if mv.walk.inject_page_fault in _INJECT_EXIT else "x86"


def _nested_fault(f) -> tuple:
    side = "l1" if f.target == "L1" else "guest"
    return (side, f.kind, f.vector, f.error_code, f.address, f.exit_qualification,
            f.exit_info_1)


def _emul(layout, vcpu, world: _World, gva: int, access: int) -> tuple:
    w = layout.emulation_walk(vcpu)
    nw = layout.nested_gpa_walk(vcpu)
    cpu = cpu_state_from_role(w.cpu_role, w.pgd, maxphyaddr=world.maxphyaddr)
    if cpu.mode is not PagingMode.LEVEL4 and gva >= 1 << 32:
        return ("fault", "n/a", "non-canonical")
    gpa, fault = world.walk(cpu, gva, access, None if nw is None else _nested_kwargs(nw))
    if fault is not None:
        inject = layout.fault_inject(vcpu, fault[0] == "l1")
        return ("fault", _recipient(inject, w.cpu_role)) + fault[1:]
    return world.memory(gpa, access, int(w.cpu_role.base.smm))


def _hw(layout, vcpu, world: _World, i: int, gva: int, access: int) -> tuple:
    mv = layout.fault_mmu(vcpu)
    role = mv.root_role
    running = "L2" if role.guest_mode else "L1"
    if role.direct:
        cpu = _regs_cpu(vcpu.regs, world.maxphyaddr)
        gpa, fault = world.walk(cpu, gva, access, None)
        if fault is not None:  # delivered by the CPU to the running guest
            return ("fault", running) + fault[1:]
        world.spte_inputs(layout.tdp_mmu_map(vcpu, gpa >> 12))
        if not mv.direct_kind:
            # a shadow MMU mapping a guest without paging: gva = gpa
            return world.memory(gpa, access, int(role.smm))
        if world.tdp is None:
            return ("fault", "n/a", "no TDP MMU")
        v = world.vcpus[i]
        v.smm = bool(role.smm)
        r = world.tdp.guest_access(v, gpa, access & (ACCESS_WRITE | ACCESS_FETCH))
        if r.hpa is None:
            return ("ok", gpa, "mmio")
        if access & ACCESS_WRITE:
            world.kvm.mark_page_dirty(gpa >> 12, v.as_id)
        return ("ok", gpa, r.hpa >> 12)
    w = mv.walk
    # The CPU checks the address before any table is walked.
    cpu = _regs_cpu(vcpu.regs, world.maxphyaddr)
    if cpu.mode is not PagingMode.LEVEL4 and gva >= 1 << 32:
        return ("fault", "n/a", "non-canonical")
    if cpu.mode is PagingMode.LEVEL4 and not is_canonical(gva, cpu.linear_address_bits):
        return ("fault", running) + world.walk(cpu, gva, access, None)[1][1:]
    mmu, vc = world.mirror(i, mv)
    as_id = int(role.smm)
    if w.inject_page_fault in _INJECT_EXIT:
        # mmu shadows L1's EPT12/NPT12: the CPU walks L2's tables with L2's
        # registers; the page L2's walk reaches goes through EPT02/NPT02.
        r2 = world.walk2d(cpu, gva, access, _nested_kwargs(w))
        if r2.l2_gpa is None:  # L2's own walk failed
            side, *rest = _nested_fault(r2.fault)
            return ("fault", _recipient(w.inject_page_fault, w.cpu_role) if side == "l1"
                    else running, *rest)
        wf = access & (ACCESS_WRITE | ACCESS_FETCH)
        if isinstance(mmu, Tdp12Mmu):
            a = mmu.access(vc, r2.l2_gpa, wf)
        else:
            a = npt_access(mmu, vc, r2.l2_gpa, wf)
        if a.exit is not None:
            return ("fault", _recipient(w.inject_page_fault, w.cpu_role)) + \
                _nested_fault(a.exit)[1:]
        out = world.reached(a.hpa, a.l1_gpa, access, as_id)
    else:
        # a shadow MMU: the CPU walks the shadow pages; on a fault KVM walks
        # the guest's tables with the MMU's context and fills them.
        r = mmu.access(vc, gva, access)
        if r.fault is not None:
            f = r.fault
            return ("fault", running, "#PF" if f.vector == 14 else "#GP", f.vector,
                    f.error_code, gva, None, None)
        out = world.reached(r.hpa, r.gpa, access, as_id)
    world.spte_inputs(layout.tdp_mmu_map(vcpu, out[1] >> 12))
    return out


def _vm_event(world: _World, e: Event) -> tuple:
    kvm = world.kvm
    if e.kind == "memslot_create":
        base, ro = e.args
        kvm.add_memslot(2, base, 8, flags=MemslotFlags.READONLY if ro else 0)
    elif e.kind == "memslot_delete":
        kvm.delete_memslot(2)
    elif e.kind == "memslot_move":
        kvm.move_memslot(2, e.args[0])
    elif e.kind == "dirty_log_on":
        kvm.enable_dirty_logging(1)
    elif e.kind == "dirty_log_off":
        kvm.disable_dirty_logging(1)
    elif e.kind == "get_dirty_log":
        return ("dirty", tuple(sorted(kvm.get_dirty_log(1))))
    return ("-",)


def run(step, workload: Workload, *, direct_mmu=None) -> Run:
    """Apply ``workload`` to a fresh instance of ``step``; record every outcome.

    Parameters
    ----------
    step : str, int, refimpl.layouts.steps.Step, or a Layout class/instance
        Which layout (see :func:`refimpl.layouts.steps.get_step`). An instance is
        used as given (it must be fresh).
    workload : Workload
    direct_mmu : callable, str or None
        Makes the VM's direct MMU, the implementation of the direct kind
        that serves direct roots: called as ``direct_mmu(kvm,
        host_max_level=1, recovery=strategy)`` with the
        :class:`refimpl.host.vm.Kvm` of the run, or a name in
        :data:`DIRECT_MMUS` (``"tdp_mmu"``, ``"legacy"``). Default
        :class:`refimpl.host.tdp_mmu.TdpMmu`.

    Returns
    -------
    Run

    Raises
    ------
    TypeError, ValueError
        Unknown step, not a :class:`Workload`, or ``direct_mmu`` not
        callable. Exceptions raised by the layout during the run are not
        raised: they end the run and are its last outcome
        (``("error", "ValueError: ...")``).
    """
    from refimpl.layouts.steps import Layout, get_step
    if not isinstance(workload, Workload):
        raise TypeError(f"workload must be a Workload, got {type(workload).__name__}")
    direct_mmu = _check_direct_mmu(direct_mmu)
    layout = step if isinstance(step, Layout) else get_step(step).layout()
    world = _World(workload, layout, direct_mmu)
    vm = layout.create_vm(workload.host)
    vcpus = [layout.create_vcpu(vm) for _ in range(workload.n_vcpus)]
    outcomes: list = []
    error = None
    for index, e in enumerate(workload.events):
        world.event = index
        try:
            if e.kind in _VM_EVENTS:
                outcomes.append(_vm_event(world, e))
                continue
            v = vcpus[e.vcpu]
            k, a = e.kind, e.args
            if k == "emul_access":
                outcomes.append(_emul(layout, v, world, *a))
            elif k == "hw_access":
                outcomes.append(_hw(layout, v, world, e.vcpu, *a))
            else:
                if k == "set_regs":
                    layout.set_regs(v, a[0])
                elif k in ("cr0", "cr3", "cr4", "efer", "smm"):
                    getattr(layout, "set_" + k)(v, a[0])
                elif k == "vmx_vmentry":
                    layout.vmx_vmentry(v, a[0], ept=a[1], eptp=a[2])
                elif k == "svm_vmrun":
                    layout.svm_vmrun(v, a[0], npt=a[1], ncr3=a[2])
                else:
                    getattr(layout, k)(v)
                world.observe(layout, v, e.vcpu)
                outcomes.append(("-",))
        except Exception as exc:  # noqa: BLE001 - a wrong layout may raise anything
            error = f"{type(exc).__name__}: {exc}"
            outcomes.append(("error", error))
            break
    return Run(outcomes, world.internal, dict(layout.stats), error)


def legacy_direct_mmu(kvm: Kvm, *, recovery: RecoveryStrategy = RecoveryStrategy.ZAP_BATCHED,
                      **kw) -> LegacyDirectMmu:
    """The legacy direct MMU (``tdp_mmu=0``) as the VM's direct kind.

    The layout's huge-page recovery describes the TDP MMU; the legacy MMU
    has no in-place recovery (disabling dirty logging zaps collapsible SPTEs
    through the rmaps, ``kvm_rmap_zap_collapsible_sptes``), so
    ``RecoveryStrategy.IN_PLACE`` becomes ``ZAP_BATCHED``. Other keywords go
    to :func:`refimpl.host.direct_mmu.make_direct_mmu`.
    """
    if recovery is RecoveryStrategy.IN_PLACE:
        recovery = RecoveryStrategy.ZAP_BATCHED
    return make_direct_mmu(kvm, tdp_mmu=False, recovery=recovery, **kw)


#: The implementations of the direct kind, by name (``direct_mmu=`` accepts a name).
DIRECT_MMUS = {"tdp_mmu": TdpMmu, "legacy": legacy_direct_mmu}


def _check_direct_mmu(direct_mmu):
    if direct_mmu is None:
        return TdpMmu
    if isinstance(direct_mmu, str):
        if direct_mmu not in DIRECT_MMUS:
            raise ValueError(f"direct_mmu: unknown name {direct_mmu!r}; "
                             f"expected one of {sorted(DIRECT_MMUS)}")
        return DIRECT_MMUS[direct_mmu]
    if not callable(direct_mmu):
        raise TypeError(f"direct_mmu must be a callable that makes a direct MMU from a Kvm, "
                        f"or a name in {sorted(DIRECT_MMUS)}, got {direct_mmu!r}")
    return direct_mmu


# ---------------------------------------------------------------------------
# The differential
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    """The first event where a step and the reference disagree.

    Parameters
    ----------
    seed : int
        The workload's seed.
    index : int
        Index of the event in the workload.
    event : Event
    expected, got : tuple
        The reference's and the step's outcome (``None`` if a run ended),
        or their ``make_spte`` inputs when ``what`` is ``"spte_inputs"``.
    what : str
        ``"outcome"`` (guest-visible) or ``"spte_inputs"`` (every outcome
        agreed, but ``make_spte`` would read something else).
    """

    seed: int
    index: int
    event: Event
    expected: Optional[tuple]
    got: Optional[tuple]
    what: str = "outcome"

    def _repr_markdown_(self) -> str:
        """A short table for notebooks: where, what happened, both outcomes."""
        def cell(v: object) -> str:
            return "`" + repr(v).replace("|", "\\|").replace("`", "'") + "`"
        rows = [("workload seed", cell(self.seed)), ("event index", cell(self.index)),
                ("event", f"vCPU {self.event.vcpu}: {cell(self.event.kind)} {cell(self.event.args)}"),
                ("compared", cell(self.what)), ("reference", cell(self.expected)),
                ("this layout", cell(self.got))]
        return "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def first_difference(workload: Workload, expected: Sequence[tuple],
                     got: Sequence[tuple]) -> Optional[Mismatch]:
    """The first index where two outcome lists differ, or None.

    Raises
    ------
    TypeError
        ``workload`` is not a :class:`Workload`, or ``expected``/``got``
        not a list or tuple of outcomes.
    ValueError
        ``expected`` or ``got`` has more outcomes than the workload has events.
    """
    check_instance("workload", workload, Workload)
    for name, outcomes in (("expected", expected), ("got", got)):
        check_instance(name, outcomes, (list, tuple))
        if len(outcomes) > len(workload.events):
            raise ValueError(f"{name} has {len(outcomes)} outcomes, more than the "
                             f"workload's {len(workload.events)} events")
    n = max(len(expected), len(got))
    for k in range(n):
        a = expected[k] if k < len(expected) else None
        b = got[k] if k < len(got) else None
        if a != b:
            return Mismatch(workload.seed, k, workload.events[k], a, b)
    return None


@dataclass
class DifferentialReport:
    """What :func:`differential` found.

    Attributes
    ----------
    step : str
        The step's name.
    workloads : int
        How many workloads were run.
    events : int
        Total events.
    mismatches : list of Mismatch
        One per disagreeing workload (up to ``max_mismatches``).
    stats : dict
        The step's counters summed over the workloads.
    """

    step: str
    workloads: int
    events: int
    mismatches: list
    stats: dict

    @property
    def ok(self) -> bool:
        """No workload disagreed."""
        return not self.mismatches


def _internal_difference(workload: Workload, expected: Sequence[tuple],
                         got: Sequence[tuple]) -> Optional[Mismatch]:
    for k in range(max(len(expected), len(got))):
        a = expected[k] if k < len(expected) else None
        b = got[k] if k < len(got) else None
        if a != b:
            index = (a or b)[0]
            return Mismatch(workload.seed, index, workload.events[index], a, b, "spte_inputs")
    return None


def _reference(first_seed: int, n: int, direct_mmu=TdpMmu) -> tuple:
    """The legacy layout's workloads, outcomes and ``make_spte`` inputs (cached)."""
    return _reference_cached(first_seed, n, direct_mmu)


@lru_cache(maxsize=8)
def _reference_cached(first_seed: int, n: int, direct_mmu) -> tuple:
    wls = workloads(n, first_seed)
    runs = [run("legacy", w, direct_mmu=direct_mmu) for w in wls]
    return tuple(wls), tuple(tuple(r.outcomes) for r in runs), tuple(tuple(r.internal) for r in runs)


def differential(step, n: Optional[int] = None, *, first_seed: int = 0,
                 reference="legacy", max_mismatches: int = 1,
                 direct_mmu=None) -> DifferentialReport:
    """Run ``n`` seeded workloads on ``step`` and on ``reference``; compare outcomes.

    The guest-visible outcomes are compared first; when they agree, the
    ``make_spte`` inputs of every mapped page (``Run.internal``) too.

    Parameters
    ----------
    step : str, int, Step or Layout class
    n : int or None
        Number of workloads (default :func:`default_count`).
    first_seed : int
    reference : str, int, Step or Layout class
        Default: the legacy layout (its outcomes are computed once per
        ``(first_seed, n)`` and cached).
    max_mismatches : int
        Stop after this many disagreeing workloads (>= 1).
    direct_mmu : callable, str or None
        The implementation of the direct kind both runs use (see
        :func:`run`; default the TDP MMU; ``"legacy"`` for the legacy
        direct MMU).

    Returns
    -------
    DifferentialReport

    Raises
    ------
    TypeError, ValueError
        Unknown step or reference, ``n``, ``first_seed`` or
        ``max_mismatches`` of the wrong type or out of range, ``direct_mmu``
        neither callable nor a name in :data:`DIRECT_MMUS`.
    """
    from refimpl.layouts.steps import get_step
    direct_mmu = _check_direct_mmu(direct_mmu)
    n = default_count() if n is None else _check_count("n", n, 1, 1_000_000)
    first_seed = _check_count("first_seed", first_seed, 0, 2**62)
    max_mismatches = _check_count("max_mismatches", max_mismatches, 1, 1_000_000)
    s = get_step(step)
    ref = get_step(reference)
    if ref.name == "legacy" and ref.cls.__name__ == "Legacy":
        wls, expected, internal = _reference(first_seed, n, direct_mmu)
    else:
        wls = workloads(n, first_seed)
        runs = [run(ref, w, direct_mmu=direct_mmu) for w in wls]
        expected = tuple(tuple(r.outcomes) for r in runs)
        internal = tuple(tuple(r.internal) for r in runs)
    mismatches: list = []
    stats: dict = {}
    events = 0
    for w, exp, exp_internal in zip(wls, expected, internal):
        r = run(s.cls, w, direct_mmu=direct_mmu)
        events += len(w.events)
        for k, v in r.stats.items():
            stats[k] = stats.get(k, 0) + v
        m = first_difference(w, exp, r.outcomes)
        if m is None:
            m = _internal_difference(w, exp_internal, r.internal)
        if m is not None:
            mismatches.append(m)
            if len(mismatches) >= max_mismatches:
                break
    return DifferentialReport(s.name, len(wls), events, mismatches, stats)
