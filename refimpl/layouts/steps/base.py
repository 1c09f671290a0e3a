"""The protocol every refactoring step implements, and what the driver reads.

A *step* is a class (a subclass of :class:`Layout`) that holds one layout of
KVM's MMU state and the transitions KVM runs on it. The workload driver
(:mod:`refimpl.layouts.workload`) only talks to a step through this
protocol, so it runs today's layout, every intermediate one and the 2021
sketch alike:

* structures: :meth:`Layout.create_vm`, :meth:`Layout.create_vcpu`;
* register writes: :meth:`Layout.set_regs` (a mode switch, which resets the
  MMU context), :meth:`Layout.set_cr0` (including CR0.WP toggles),
  :meth:`Layout.set_cr3`, :meth:`Layout.set_cr4`, :meth:`Layout.set_efer`,
  :meth:`Layout.set_smm`;
* nested virtualization: :meth:`Layout.vmx_vmentry` / :meth:`Layout.vmx_vmexit`
  (with or without EPT in L1) and :meth:`Layout.svm_vmrun` /
  :meth:`Layout.svm_vmexit` (with or without NPT in L1);
* what the layout *selects*, read by the driver to compute guest-visible
  outcomes: :meth:`Layout.emulation_walk` (the paging context the walk
  pointer designates, as a :class:`WalkView`), :meth:`Layout.nested_gpa_walk`
  (the context that translates the GPAs that walk produces: None for
  identity, else L1's EPT/NPT), :meth:`Layout.fault_inject` (which callback
  delivers an emulated fault) and :meth:`Layout.fault_mmu` (the MMU that
  handles a hardware fault, as an :class:`MmuView`);
* counters that are not guest-visible: ``Layout.stats`` (MMU resets,
  root loads, with CR0.WP writes singled out);
* the answer to "how do huge pages come back after dirty logging":
  :meth:`Layout.recover_huge_pages`.

A view is plain data read from the layout's structures: a wrong pointer in a
step gives a different view, and the driver turns that into a different
outcome by running the real walkers on it.

Glossary
--------
step
    One layout of the refactoring, with its number and short name
    (:data:`refimpl.layouts.steps.STEPS`).
view
    A snapshot of what a structure of the layout says, in layout-independent
    terms (:class:`WalkView`, :class:`MmuView`).

KVM
---
The protocol's transitions are KVM's: ``kvm_set_cr0``/``kvm_set_cr3``/
``kvm_set_cr4``/``set_efer`` and ``kvm_smm_changed`` (``arch/x86/kvm/x86.c``),
``nested_vmx_enter_non_root_mode``/``nested_vmx_vmexit``
(``arch/x86/kvm/vmx/nested.c``), ``enter_svm_guest_mode``/
``nested_svm_vmexit`` (``arch/x86/kvm/svm/nested.c``). The views name what
``kvm_mmu_gva_to_gpa_*`` (``vcpu->arch.walk_mmu``), ``kvm_translate_gpa``,
``kvm_inject_emulated_page_fault`` and ``kvm_mmu_page_fault``
(``vcpu->arch.mmu``) read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Optional

from refimpl.errors import check_choice
from refimpl.host.kvm_mmu import RootInfo
from refimpl.host.roles import CpuRole, PageRole
from refimpl.layouts.model import Derived, Host
from refimpl.layouts.structs import py_class

__all__ = ["WalkView", "MmuView", "Layout", "Vm", "STAT_NAMES", "pgd_source"]

STAT_NAMES = ("resets", "resets_cr0_wp", "root_loads", "root_loads_cr0_wp", "init_mmu_cr0_wp")
"""Counters of ``Layout.stats``: MMU resets (``kvm_mmu_reset_context``),
those caused by a CR0 write that changed only WP, root loads (a vCPU's
current root replaced by a new one), those caused by a CR0.WP-only write, and
``kvm_init_mmu`` calls made instead of a reset for such a write."""


@dataclass(frozen=True)
class WalkView:
    """What a paging context (or the walk half of a ``kvm_mmu``) says.

    Parameters
    ----------
    cpu_role : refimpl.host.roles.CpuRole
        Format of the tables this context walks.
    pgd : int
        The root it walks from, read through its ``get_guest_pgd``
        callback (CR3, EPTP12 or nCR3).
    gva_to_gpa : str or None
        The software walker (C function name).
    inject_page_fault : str or None
        The callback that delivers a fault found by this walk.
    permissions : refimpl.layouts.model.Derived or None
        The permission bitmap record (for measures; the driver uses
        ``cpu_role``, from which KVM computes the bitmap).
    """

    cpu_role: CpuRole
    pgd: int
    gva_to_gpa: Optional[str]
    inject_page_fault: Optional[str]
    permissions: Optional[Derived] = None


@dataclass(frozen=True)
class MmuView:
    """What the MMU that handles hardware faults says.

    Parameters
    ----------
    root_role : refimpl.host.roles.PageRole
        Format of the tables KVM builds (direct: TDP; else shadow).
    root : refimpl.host.kvm_mmu.RootInfo
        Current root.
    walk : WalkView
        The guest tables these roots shadow (for a direct role: unused by
        hardware, which walks the guest's own tables).
    direct_kind : bool
        The kind the MMU points to (or, before the kind is split out, the
        MMU itself) is for direct tables.
    shadow_zero_check : refimpl.layouts.model.Derived or None
        What ``make_spte`` checks new SPTEs against.
    """

    root_role: PageRole
    root: RootInfo
    walk: WalkView
    direct_kind: bool
    shadow_zero_check: Optional[Derived]


_NESTED_PGD = ("nested_ept_get_eptp", "nested_svm_get_tdp_cr3")


def pgd_source(vcpu, callback: Optional[str]) -> int:
    """The value a ``get_guest_pgd`` callback returns for ``vcpu``.

    ``get_guest_cr3`` reads the running guest's CR3; the nested EPT/NPT
    callbacks read EPTP12/nCR3 (``vcpu.nested_pgd`` in the models).

    Raises
    ------
    TypeError
        ``callback`` is neither a string nor None, or ``vcpu`` is not a
        vCPU structure of a step (it has no ``regs`` and ``nested_pgd``).
    ValueError
        The callback is NULL or unknown, or EPTP12/nCR3 is not set.
    """
    if callback is not None and not isinstance(callback, str):
        raise TypeError(f"callback must be a C function name or None, "
                        f"got {type(callback).__name__}")
    if not (hasattr(vcpu, "regs") and hasattr(vcpu, "nested_pgd")):
        raise TypeError(f"vcpu must be the vCPU structure of a step, got {type(vcpu).__name__}")
    if callback == "get_guest_cr3":
        return vcpu.regs.cr3
    if callback in _NESTED_PGD:
        if vcpu.nested_pgd is None:
            raise ValueError(f"{callback}: no EPTP12/nCR3 is loaded")
        return vcpu.nested_pgd
    raise ValueError(f"get_guest_pgd callback {callback!r} is not modelled")


Vm = py_class(0, "kvm_arch")
"""The VM of the steps before the direct kind moves to it (step 0's ``struct kvm_arch``)."""


class Layout:
    """Base class of every step: the protocol the workload driver uses.

    Subclasses implement the structures and transitions; one instance runs
    one workload (it owns ``stats``). See the module docstring for the
    list of methods.

    Attributes
    ----------
    number : int
        Position in :data:`refimpl.layouts.steps.STEPS`.
    name : str
        Short name (``"legacy"``, ``"walk12"``...).
    stats : collections.Counter
        The counters of :data:`STAT_NAMES`.
    """

    number: int = -1
    name: str = "abstract"

    def __init__(self) -> None:
        self.stats: Counter = Counter({k: 0 for k in STAT_NAMES})
        self._cause: Optional[str] = None

    def count(self, what: str) -> None:
        """Add one to a counter, and to its CR0.WP twin during a WP-only write.

        Raises
        ------
        TypeError, ValueError
            ``what`` is not one of :data:`refimpl.layouts.steps.base.STAT_NAMES`.
        """
        check_choice("what", what, STAT_NAMES)
        self.stats[what] += 1
        if self._cause == "cr0_wp" and what + "_cr0_wp" in self.stats:
            self.stats[what + "_cr0_wp"] += 1

    # The protocol; every concrete step defines these (step 0 for all).
    def create_vm(self, host: Host):  # pragma: no cover - abstract
        """The per-VM structure for ``host`` (it has ``host`` and ``vcpus``)."""
        raise NotImplementedError

    def create_vcpu(self, kvm):  # pragma: no cover - abstract
        """A new vCPU of the VM ``kvm`` (appended to ``kvm.vcpus``), ``mmu`` on ``root_mmu``."""
        raise NotImplementedError

    def set_regs(self, vcpu, regs) -> None:  # pragma: no cover - abstract
        """A mode switch: load every register, reset the MMU context, load a root."""
        raise NotImplementedError

    def set_cr0(self, vcpu, cr0: int) -> None:  # pragma: no cover - abstract
        """A CR0 write (the workloads toggle WP)."""
        raise NotImplementedError

    def set_cr3(self, vcpu, cr3: int) -> None:  # pragma: no cover - abstract
        """A CR3 write."""
        raise NotImplementedError

    def set_cr4(self, vcpu, cr4: int) -> None:  # pragma: no cover - abstract
        """A CR4 write."""
        raise NotImplementedError

    def set_efer(self, vcpu, efer: int) -> None:  # pragma: no cover - abstract
        """An EFER write."""
        raise NotImplementedError

    def set_smm(self, vcpu, smm: bool) -> None:  # pragma: no cover - abstract
        """Enter or leave System Management Mode."""
        raise NotImplementedError

    def vmx_vmentry(self, vcpu, l2_regs, *, ept: bool, eptp: int) -> None:  # pragma: no cover
        """VMLAUNCH/VMRESUME of L2, with or without EPT in L1."""
        raise NotImplementedError

    def vmx_vmexit(self, vcpu) -> None:  # pragma: no cover - abstract
        """Nested VM exit to L1."""
        raise NotImplementedError

    def svm_vmrun(self, vcpu, l2_regs, *, npt: bool, ncr3: int) -> None:  # pragma: no cover
        """VMRUN of L2, with or without NPT in L1."""
        raise NotImplementedError

    def svm_vmexit(self, vcpu) -> None:  # pragma: no cover - abstract
        """#VMEXIT to L1."""
        raise NotImplementedError

    def emulation_walk(self, vcpu) -> WalkView:  # pragma: no cover - abstract
        """The paging context the walk pointer designates."""
        raise NotImplementedError

    def nested_gpa_walk(self, vcpu) -> Optional[WalkView]:  # pragma: no cover - abstract
        """The context that turns the emulation walk's GPAs into L1 GPAs, or None."""
        raise NotImplementedError

    def fault_inject(self, vcpu, nested_page_fault: bool) -> Optional[str]:  # pragma: no cover
        """The ``inject_page_fault`` callback that delivers an emulated fault."""
        raise NotImplementedError

    def fault_mmu(self, vcpu) -> MmuView:  # pragma: no cover - abstract
        """The MMU ``vcpu->arch.mmu`` designates."""
        raise NotImplementedError

    def pointer_table(self, vcpu) -> dict:  # pragma: no cover - abstract
        """Where the vCPU's pointers go, by member name."""
        raise NotImplementedError

    def recover_huge_pages(self, vm):  # pragma: no cover - abstract
        """How huge pages come back after dirty logging
        (a :class:`refimpl.host.tdp_mmu.RecoveryStrategy`)."""
        raise NotImplementedError
