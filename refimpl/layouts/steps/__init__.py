"""From today's ``struct kvm_mmu`` to the 2021 sketch, one checked step at a time.

Each step of the refactoring is a module of this package holding one class,
a subclass of the previous step's class that overrides only what the step
changes, plus the structs it introduces (so ``inspect.getsource`` of the
module shows the step whole):

====  ==============================  ==============================================
 #    module                          what changes
====  ==============================  ==============================================
 0    ``step0_legacy``                today's layout, CR0.WP writes reset (2021)
 1    ``step1_walk12``                ``nested_mmu``/``walk_mmu`` -> ``walk12``/``walk``
 2    ``step2_paging_context``        ``root_walk``, ``walk01``; ``guest_mmu`` -> ``tdp12_mmu``
 3    ``step3_kind``                  ``kvm_mmu_kind`` split out (per vCPU)
 4    ``step4_direct_kind_per_vm``    ``kvm->arch.direct_mmu``
 5    ``step5_spte_takes_kind``       ``make_spte(kind, ...)``
 6    ``step6_tdp_takes_vm``          TDP MMU leaf installs take the VM
 7    ``step7_zero_check_per_vm``     direct ``shadow_zero_check`` computed once
 8    ``step8_cr0wp_no_reset``        CR0.WP toggles under TDP keep the roots
====  ==============================  ==============================================

The protocol every step implements is documented in
:mod:`refimpl.layouts.steps.base`; the workload driver and the differential test
are in :mod:`refimpl.layouts.workload`; the measures per step in
:mod:`refimpl.layouts.measures`; deliberately wrong steps in
:mod:`refimpl.layouts.mistakes`; a diagram of any step in any configuration
in :mod:`refimpl.layouts.figures`.

Glossary
--------
ledger delta
    What a step does to the fields of the layout, as
    ``(action, from, to)`` triples: ``"moved"``, ``"renamed"``,
    ``"removed"``, ``"added"`` (see :class:`Step`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from refimpl.layouts.steps.base import Layout
from refimpl.layouts.steps.step0_legacy import Legacy
from refimpl.layouts.steps.step1_walk12 import Walk12
from refimpl.layouts.steps.step2_paging_context import PagingContext
from refimpl.layouts.steps.step3_kind import Kind
from refimpl.layouts.steps.step4_direct_kind_per_vm import DirectKindPerVm
from refimpl.layouts.steps.step5_spte_takes_kind import SpteTakesKind
from refimpl.layouts.steps.step6_tdp_takes_vm import TdpTakesVm
from refimpl.layouts.steps.step7_zero_check_per_vm import ZeroCheckPerVm
from refimpl.layouts.steps.step8_cr0wp_no_reset import Cr0WpNoReset

__all__ = ["Step", "STEPS", "get_step", "step_names", "ledger_delta_markdown"]

_WALK_FIELDS = ("get_guest_pgd", "get_pdptr", "inject_page_fault", "gva_to_gpa",
                "cpu_role", "permissions", "pkru_mask", "guest_rsvd_check", "pdptrs")


@dataclass(frozen=True)
class Step:
    """One step of the refactoring, as data.

    Parameters
    ----------
    number : int
        0 for the legacy layout, then 1, 2...
    name : str
        Short name, also the class's ``name`` (``"walk12"``).
    title : str
        One line.
    summary : str
        One paragraph: what changes and why it is safe.
    previous : str or None
        Name of the step it starts from.
    delta : tuple of (str, str, str)
        Ledger delta: ``(action, from, to)``. For ``"moved"``,
        ``"renamed"``, ``"removed"`` and ``"added"``, ``from`` and ``to`` are
        ``"struct.field"`` (``kvm_vcpu_arch``, ``kvm_arch``, ``kvm_mmu``,
        ``kvm_paging_context``, ``kvm_mmu_kind``) or ``"-"``, and a test
        checks them against the step's structures; ``"changed"`` entries
        are prose (a signature, a rule).
    cls : type
        The step's class (a :class:`refimpl.layouts.steps.base.Layout`).
    module : str
        Dotted name of the step's module.

    Raises
    ------
    TypeError
        A field of the wrong type (``cls`` must be a
        :class:`refimpl.layouts.steps.base.Layout` subclass).
    """

    number: int
    name: str
    title: str
    summary: str
    previous: Optional[str]
    delta: tuple[tuple[str, str, str], ...]
    cls: type

    def __post_init__(self) -> None:
        if isinstance(self.number, bool) or not isinstance(self.number, int):
            raise TypeError(f"number must be an int, got {type(self.number).__name__}")
        for name in ("name", "title", "summary"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a str, got {type(getattr(self, name)).__name__}")
        if self.previous is not None and not isinstance(self.previous, str):
            raise TypeError(f"previous must be a str or None, got {type(self.previous).__name__}")
        if not isinstance(self.delta, tuple) or not all(
                isinstance(d, tuple) and len(d) == 3 and all(isinstance(x, str) for x in d)
                for d in self.delta):
            raise TypeError("delta must be a tuple of (action, from, to) string triples")
        if not (isinstance(self.cls, type) and issubclass(self.cls, Layout)):
            raise TypeError(f"cls must be a Layout subclass, got {self.cls!r}")

    @property
    def module(self) -> str:
        """The module that holds the step."""
        return self.cls.__module__

    def layout(self) -> Layout:
        """A fresh instance of the step (one per workload run)."""
        return self.cls()


def _moves(fields: tuple[str, ...], src: str, dst: str) -> tuple[tuple[str, str, str], ...]:
    return tuple(("moved", f"{src}.{f}", f"{dst}.{f}") for f in fields)


STEPS: tuple[Step, ...] = (
    Step(0, "legacy", "Today's kvm_mmu, with the 2021 CR0.WP rule",
         "Three struct kvm_mmu per vCPU (root_mmu, guest_mmu, nested_mmu) and two "
         "pointers (mmu for faults, walk_mmu for emulation); every CR0 write that "
         "changes WP resets the MMU context and reloads the roots, as KVM did in 2021.",
         None, (), Legacy),
    Step(1, "walk12", "nested_mmu and walk_mmu become walk12 and walk",
         "nested_mmu only ever used its walk half, so it becomes a struct "
         "kvm_paging_context named walk12, and walk_mmu becomes walk, pointing to "
         "root_mmu or walk12. No transition changes: they reach both through accessors.",
         "legacy",
         (("renamed", "kvm_vcpu_arch.nested_mmu", "kvm_vcpu_arch.walk12"),
          ("renamed", "kvm_vcpu_arch.walk_mmu", "kvm_vcpu_arch.walk"),
          ("changed", "nested_mmu: struct kvm_mmu",
           "walk12: struct kvm_paging_context (no page_fault, sync_spte, roots, "
           "root_role, shadow_zero_check)")),
         Walk12),
    Step(2, "paging_context", "The walk half of kvm_mmu becomes a paging context",
         "The nine guest-walk fields of root_mmu move to a new root_walk and those of "
         "guest_mmu to walk01; each kvm_mmu points to its context through a new walk "
         "field; guest_mmu is renamed tdp12_mmu; the walk pointer now designates "
         "root_walk or walk12.",
         "walk12",
         _moves(_WALK_FIELDS, "kvm_mmu", "kvm_paging_context")
         + (("renamed", "kvm_vcpu_arch.guest_mmu", "kvm_vcpu_arch.tdp12_mmu"),
            ("added", "-", "kvm_mmu.walk"),
            ("added", "-", "kvm_vcpu_arch.root_walk"),
            ("added", "-", "kvm_vcpu_arch.walk01")),
         PagingContext),
    Step(3, "kind", "struct kvm_mmu_kind splits out of kvm_mmu",
         "sync_spte and shadow_zero_check, what operating on KVM's tables needs "
         "without a running vCPU, move to struct kvm_mmu_kind; each vCPU gets a "
         "direct and a shadow kind, and each kvm_mmu a kind pointer.",
         "paging_context",
         _moves(("sync_spte", "shadow_zero_check"), "kvm_mmu", "kvm_mmu_kind")
         + (("added", "-", "kvm_mmu.kind"),
          ("added", "-", "kvm_vcpu_arch.direct_mmu"),
          ("added", "-", "kvm_vcpu_arch.shadow_mmu")),
         Kind),
    Step(4, "direct_kind_per_vm", "The direct kind moves to the VM",
         "TDP tables depend only on the VM's memslots, so one direct kind, "
         "kvm->arch.direct_mmu, serves every vCPU; root_mmu.kind points to it with "
         "TDP. The kvm_mmu stays per vCPU because roots and root roles differ "
         "between vCPUs (SMM, L2 without TDP in L1).",
         "kind",
         (("moved", "kvm_vcpu_arch.direct_mmu", "kvm_arch.direct_mmu"),),
         DirectKindPerVm),
    Step(5, "spte_takes_kind", "make_spte takes a kind, not a vCPU",
         "Everything make_spte reads besides its arguments is in the kind, so it "
         "takes struct kvm_mmu_kind *; callers with a vCPU pass "
         "vcpu->arch.mmu->kind. No structure changes.",
         "direct_kind_per_vm",
         (("changed", "make_spte(vcpu, ...)", "make_spte(kind, ...)"),),
         SpteTakesKind),
    Step(6, "tdp_takes_vm", "TDP MMU table operations take the VM",
         "Installing a leaf SPTE needs only the VM (its direct kind) and a root, so "
         "tdp_mmu_set_leaf takes struct kvm *; huge pages can then be rebuilt in "
         "place when dirty logging stops, without a vCPU and without refaults.",
         "spte_takes_kind",
         (("changed", "-", "tdp_mmu_set_leaf(kvm, root, gfn)"),
          ("changed", "huge page recovery: zap", "huge page recovery: in place")),
         TdpTakesVm),
    Step(7, "zero_check_per_vm", "The direct kind's zero-bit check is computed once per VM",
         "The direct kind's sync_spte and shadow_zero_check depend only on the host "
         "and the TDP level; the VM fills them at creation and vCPUs stop rewriting "
         "them in init_kvm_tdp_mmu.",
         "tdp_takes_vm",
         (("changed", "init_kvm_tdp_mmu writes kvm->arch.direct_mmu",
           "kvm_arch_init_vm fills kvm->arch.direct_mmu"),),
         ZeroCheckPerVm),
    Step(8, "cr0wp_no_reset", "CR0.WP toggles under TDP keep the roots",
         "With TDP the roots do not depend on CR0.WP, so a write that changes only "
         "WP re-initialises the walk metadata (kvm_init_mmu) instead of resetting "
         "the MMU context; the layout is now the 2021 sketch (refimpl.layouts.split).",
         "zero_check_per_vm",
         (("changed", "set_cr0: kvm_mmu_reset_context on a CR0.WP-only write",
           "set_cr0: kvm_init_mmu on a CR0.WP-only write with TDP"),),
         Cr0WpNoReset),
)
"""Every step, in order; ``STEPS[0]`` is the legacy layout and ``STEPS[-1]`` the sketch."""

_BY_NAME = {s.name: s for s in STEPS}


def step_names() -> list[str]:
    """The steps' short names, in order."""
    return [s.name for s in STEPS]


def get_step(step: Union[str, int, Step, type, Layout]) -> Step:
    """Look a step up by name, number, :class:`Step`, class or instance.

    Classes and instances that are not registered steps (such as
    :mod:`refimpl.layouts.mistakes`) are wrapped in an ad-hoc
    :class:`Step` with their ``number`` and ``name``.

    Raises
    ------
    ValueError
        Unknown name or number.
    TypeError
        Anything else.
    """
    if isinstance(step, Step):
        return step
    if isinstance(step, bool):
        raise TypeError(f"step must be a name, number, Step or Layout class, got {step!r}")
    if isinstance(step, int):
        if not 0 <= step < len(STEPS):
            raise ValueError(f"step number must be in [0, {len(STEPS) - 1}], got {step}")
        return STEPS[step]
    if isinstance(step, str):
        try:
            return _BY_NAME[step]
        except KeyError:
            raise ValueError(f"unknown step {step!r}; known: {', '.join(_BY_NAME)}") from None
    if isinstance(step, Layout):
        step = type(step)
    if isinstance(step, type) and issubclass(step, Layout):
        for s in STEPS:
            if s.cls is step:
                return s
        return Step(step.number, step.name, step.name, step.__doc__ or "", None, (), step)
    raise TypeError(f"step must be a name, number, Step or Layout class, got {step!r}")


def ledger_delta_markdown(step: Union[str, int, Step]) -> str:
    """A step's ledger delta as a Markdown table."""
    s = get_step(step)
    rows = ["| change | from | to |", "|---|---|---|"]
    rows += [f"| {a} | `{f}` | `{t}` |" for a, f, t in s.delta]
    return "\n".join(rows)
