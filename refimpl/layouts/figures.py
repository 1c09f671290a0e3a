"""A before/after diagram of any step, in any configuration.

:func:`step_diagram` builds a vCPU of a step in one of the configurations of
:data:`refimpl.layouts.legacy.CONFIGURATIONS` (the transitions of
:func:`refimpl.layouts.legacy.run_configurations`) and draws it with
:mod:`refimpl.viz.svg`: one box per MMU member of the vCPU (and
``kvm.direct_mmu`` from step 4 on), one arrow per entry of the step's
``pointer_table``. A box is ``"pointer"`` for ``mmu`` and the walk
pointer, ``"used"`` if the pointers reach it, ``"idle"`` otherwise, and
``"absent"`` for a VM-wide kind the VM does not have (no TDP).
:meth:`refimpl.viz.svg.Diagram.edges` gives the arrows as data, so a chapter
can assert what changed between two steps.

KVM
---
Not KVM code: a drawing of ``struct kvm_vcpu_arch`` (``arch/x86/include/asm/
kvm_host.h``) as each step leaves it.
"""

from __future__ import annotations

import dataclasses

from refimpl.errors import check_choice
from refimpl.layouts.legacy import CONFIGURATIONS, run_configurations
from refimpl.layouts.steps import get_step
from refimpl.viz.svg import Arrow, Box, Diagram

__all__ = ["configured_vcpu", "step_diagram"]

_POINTERS = ("mmu", "walk_mmu", "walk")
_KINDS = ("direct_mmu", "shadow_mmu")
_CTYPE = {"KvmMmu": "struct kvm_mmu", "KvmPagingContext": "struct kvm_paging_context",
          "KvmMmuKind": "struct kvm_mmu_kind"}


def configured_vcpu(step, config_key: str):
    """A fresh instance of ``step`` and its vCPU in configuration ``config_key``.

    Raises
    ------
    ValueError
        Unknown step or configuration key.
    TypeError
        A step or key of the wrong type.
    """
    check_choice("config_key", config_key, CONFIGURATIONS)
    s = get_step(step)
    made = {}

    def create(host):
        layout = s.layout()
        v = layout.create_vcpu(layout.create_vm(host))
        made[id(v)] = layout
        return v

    def via(name):
        return lambda v, *a, **k: getattr(made[id(v)], name)(v, *a, **k)

    vcpus = run_configurations(create, via("set_regs"), via("vmx_vmentry"), via("svm_vmrun"),
                               via("vmx_vmexit"))
    v = vcpus[config_key]
    return made[id(v)], v


def _detail(obj) -> str:
    for cb in ("page_fault", "gva_to_gpa", "sync_spte"):
        if hasattr(obj, cb) and not (cb == "sync_spte" and hasattr(obj, "page_fault")):
            return f"{cb}: {getattr(obj, cb) or 'NULL'}"
    return ""


def step_diagram(step, config_key: str = "vmx_ept") -> Diagram:
    """The step's vCPU in ``config_key``: its MMU members and where the pointers go.

    Returns
    -------
    refimpl.viz.svg.Diagram
        Boxes keyed by member name (``"root_mmu"``, ``"walk12"``,
        ``"kvm.direct_mmu"``, and ``"mmu"`` / ``"walk"`` / ``"walk_mmu"``
        for the pointers); arrows ``(src, label, dst)`` with the label a key
        of the step's pointer table (``"mmu"``, ``"walk"``, ``"mmu->walk"``,
        ``"root_mmu.kind"``...).

    Raises
    ------
    TypeError, ValueError
        As :func:`configured_vcpu`.
    """
    s = get_step(step)
    layout, v = configured_vcpu(s, config_key)
    table = layout.pointer_table(v)
    members = [f.name for f in dataclasses.fields(v)
               if f.name in _POINTERS or type(getattr(v, f.name)).__name__ in _CTYPE]
    structs = [m for m in members if m not in _POINTERS and m not in _KINDS]
    kinds = [m for m in members if m in _KINDS]
    kvm = v.kvm
    if hasattr(kvm, "direct_mmu"):  # the VM holds a kind from step 4 on
        kinds = ["kvm.direct_mmu"] + kinds
    arrows = []
    for key, dst in table.items():
        if key in _POINTERS:
            src = key
        elif key == "mmu->walk":
            src = table["mmu"]
        else:
            src = key.split(".")[0]
        arrows.append((src, key, dst))
    reached = {p for p in members if p in _POINTERS}
    changed = True
    while changed:
        changed = False
        for src, _, dst in arrows:
            if src in reached and dst not in reached:
                reached.add(dst)
                changed = True
    d = Diagram(680, max(70 * max(len(structs), len(kinds) + 1) + 20, 170),
                caption=f"step {s.number} ({s.name}), {CONFIGURATIONS[config_key]}")
    for i, name in enumerate(m for m in members if m in _POINTERS):
        d.boxes.append(Box(name, 10, 30 + 110 * i, 150, f"vcpu->arch.{name}", ("pointer",),
                           "pointer"))
    for i, name in enumerate(structs):
        obj = getattr(v, name)
        d.boxes.append(Box(name, 230, 10 + 70 * i, 230, name,
                           (_CTYPE[type(obj).__name__], _detail(obj)),
                           "used" if name in reached else "idle"))
    for i, name in enumerate(kinds):
        obj = kvm.direct_mmu if name == "kvm.direct_mmu" else getattr(v, name)
        where = "one per VM" if name.startswith("kvm.") else "one per vCPU"
        style = "absent" if obj is None else ("used" if name in reached else "idle")
        d.boxes.append(Box(name, 510, 10 + 70 * i, 160, name, (f"kind, {where}",), style))
    for src, key, dst in arrows:
        if src in _POINTERS:
            d.arrows.append(Arrow(src, dst, key))
        elif dst in kinds:
            d.arrows.append(Arrow(src, dst, key))
        else:
            d.arrows.append(Arrow(src, dst, key, "l", "l", 60))
    return d
