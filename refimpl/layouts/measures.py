"""Measures per step: bytes of MMU state, resets and root loads, vCPU needs.

Three questions the chapters plot, answered from the steps' own code:

(a) **How many bytes of MMU state** a VM and each of its vCPUs hold, from a
    C-size model of every field (:data:`FIELD_SIZES`, with where each size
    comes from), laid out with C alignment rules (:func:`struct_bytes`);
    the total for ``n`` vCPUs is ``per VM + n * per vCPU``
    (:func:`state_bytes`, :func:`bytes_table`). Pages that pointers lead to
    (``pae_root``, the roots) are not counted: they are the same in every
    step.
(b) **How many MMU resets and root loads** a workload costs, with the ones
    caused by CR0 writes that toggle only WP singled out
    (:func:`counters`): a mean over seeded workloads of
    :mod:`refimpl.layouts.workload`.
(c) **Which functions still need a vCPU** (:func:`function_parameters`,
    :func:`needs_vcpu`): read from the signatures of each step's methods with
    ``inspect``, so a step that changes a signature changes the answer.

The 2021 layout is modelled: ``permissions`` is ``u8[16]``, as in 2021 (the
2026 tree's ``struct kvm_page_format`` has ``u16 permissions[16]``).

KVM
---
Sizes from ``arch/x86/include/asm/kvm_host.h`` (``struct kvm_mmu``,
``struct kvm_mmu_root_info``, ``struct rsvd_bits_validate``,
``union kvm_mmu_page_role``, ``union kvm_cpu_role``, ``PT64_ROOT_MAX_LEVEL``
= 5, ``KVM_MMU_NUM_PREV_ROOTS`` = 3); x86-64 ABI: pointers 8 bytes.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Iterable, Optional, Sequence

from refimpl.errors import check_instance, check_items
from refimpl.layouts.model import CONFIGURATIONS, Host, run_configurations
from refimpl.layouts.structs import MODEL_ONLY as _MODEL_ONLY, py_class
from refimpl.layouts.steps import STEPS, Layout, get_step
from refimpl.layouts.workload import run, workloads

__all__ = [
    "FIELD_SIZES", "POINTER_FIELDS", "MODEL_ONLY", "struct_bytes", "state_bytes",
    "bytes_table", "counters", "function_parameters", "needs_vcpu", "vcpu_table",
    "pointer_tables", "members", "VCPU_COUNTS",
]

FIELD_SIZES: dict[str, tuple[int, int, str]] = {
    "get_guest_pgd": (8, 8, "function pointer"),
    "get_pdptr": (8, 8, "function pointer"),
    "page_fault": (8, 8, "function pointer"),
    "inject_page_fault": (8, 8, "function pointer"),
    "gva_to_gpa": (8, 8, "function pointer"),
    "sync_spte": (8, 8, "function pointer"),
    "root": (16, 8, "struct kvm_mmu_root_info: gpa_t pgd + hpa_t hpa"),
    "cpu_role": (8, 8, "union kvm_cpu_role: u64"),
    "root_role": (4, 4, "union kvm_mmu_page_role: u32"),
    "pkru_mask": (4, 4, "u32"),
    "prev_roots": (48, 8, "3 x struct kvm_mmu_root_info (KVM_MMU_NUM_PREV_ROOTS)"),
    "permissions": (16, 1, "u8[16] (2021; u16[16] in the 2026 kvm_page_format)"),
    "pae_root": (8, 8, "u64 * (the page it points to is not counted)"),
    "pml4_root": (8, 8, "u64 *"),
    "pml5_root": (8, 8, "u64 *"),
    "shadow_zero_check": (88, 8, "struct rsvd_bits_validate: u64 [2][5] + u64 bad_mt_xwr"),
    "guest_rsvd_check": (88, 8, "struct rsvd_bits_validate: u64 [2][5] + u64 bad_mt_xwr"),
    "pdptrs": (32, 8, "u64[4]"),
    "direct": (1, 1, "bool"),
}
"""C size, alignment and source of every MMU field: ``name -> (bytes, align, why)``."""

POINTER_FIELDS = frozenset({"mmu", "walk_mmu", "walk", "kind"})
"""Members that are pointers (8 bytes) rather than embedded structs."""

MODEL_ONLY = _MODEL_ONLY
"""Model-only attributes: not MMU state (registers, back pointers, counters,
root pages), from :mod:`refimpl.layouts.structs`."""

VCPU_COUNTS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
"""The vCPU counts of :func:`bytes_table`."""


def _align(off: int, a: int) -> int:
    return (off + a - 1) // a * a


def _layout(obj) -> tuple[int, int]:
    """(size, alignment) of a modelled struct instance, C rules."""
    off, align = 0, 1
    for f in dataclasses.fields(obj):
        if f.name in MODEL_ONLY:
            continue
        if f.name in POINTER_FIELDS:
            size, a = 8, 8
        elif f.name in FIELD_SIZES:
            size, a = FIELD_SIZES[f.name][:2]
        else:
            value = getattr(obj, f.name)
            if value is None or not dataclasses.is_dataclass(value):
                raise ValueError(f"{type(obj).__name__}.{f.name}: no C size is modelled")
            size, a = _layout(value)
        off = _align(off, a) + size
        align = max(align, a)
    return _align(off, align), align


def _instances(step, host: Host):
    layout = get_step(step).layout()
    vm = layout.create_vm(host)
    vcpu = layout.create_vcpu(vm)
    return layout, vm, vcpu


def members(step, host: Optional[Host] = None) -> dict[str, dict[str, str]]:
    """The MMU members of the VM and vCPU structs of a step.

    Returns
    -------
    dict
        ``{"vm": {member: type}, "vcpu": {member: type}}`` where type is the
        C struct name of an embedded member or ``"pointer"``.
    """
    if host is not None:
        check_instance("host", host, Host)
    get_step(step)
    _, vm, vcpu = _instances(step, host or Host())
    out = {}
    for key, obj in (("vm", vm), ("vcpu", vcpu)):
        d = {}
        for f in dataclasses.fields(obj):
            if f.name in MODEL_ONLY:
                continue
            if f.name in POINTER_FIELDS:
                d[f.name] = "pointer"
            else:
                d[f.name] = _C_NAMES.get(type(getattr(obj, f.name)).__name__, "?")
        out[key] = d
    return out


_C_NAMES = {"KvmMmu": "kvm_mmu", "KvmPagingContext": "kvm_paging_context",
            "KvmMmuKind": "kvm_mmu_kind", "NoneType": "kvm_mmu_kind"}


def struct_bytes(step, host: Optional[Host] = None) -> dict[str, int]:
    """Bytes of each MMU member of the step's VM and vCPU structs.

    Parameters
    ----------
    step : str, int, Step or Layout class
    host : refimpl.layouts.legacy.Host or None
        Default: TDP on, VMX.

    Returns
    -------
    dict
        ``{"vm.<member>": bytes, "vcpu.<member>": bytes}``; an embedded
        kind that is None in the model (``direct_mmu`` without TDP) is
        counted at its C size, as the struct is embedded in ``kvm_arch``.
    """
    host = Host() if host is None else host
    if not isinstance(host, Host):
        raise TypeError(f"host must be a Host, got {host!r}")
    _, vm, vcpu = _instances(step, host)
    out = {}
    for key, obj in (("vm", vm), ("vcpu", vcpu)):
        for f in dataclasses.fields(obj):
            if f.name in MODEL_ONLY:
                continue
            if f.name in POINTER_FIELDS:
                out[f"{key}.{f.name}"] = 8
                continue
            value = getattr(obj, f.name)
            if value is None:  # kvm->arch.direct_mmu without TDP
                value = py_class(8, "kvm_mmu_kind")()
            out[f"{key}.{f.name}"] = _layout(value)[0]
    return out


def state_bytes(step, n_vcpus: int, host: Optional[Host] = None) -> dict[str, int]:
    """Bytes of MMU state of a VM with ``n_vcpus`` vCPUs.

    Returns
    -------
    dict
        ``{"per_vm": ..., "per_vcpu": ..., "total": per_vm + n * per_vcpu}``.

    Raises
    ------
    ValueError, TypeError
        ``n_vcpus`` not an int in 1..4096.
    """
    if isinstance(n_vcpus, bool) or not isinstance(n_vcpus, int):
        raise TypeError(f"n_vcpus must be an int, got {n_vcpus!r}")
    if not 1 <= n_vcpus <= 4096:
        raise ValueError(f"n_vcpus must be in [1, 4096], got {n_vcpus}")
    sizes = struct_bytes(step, host)
    per_vm = sum(v for k, v in sizes.items() if k.startswith("vm."))
    per_vcpu = sum(v for k, v in sizes.items() if k.startswith("vcpu."))
    return {"per_vm": per_vm, "per_vcpu": per_vcpu, "total": per_vm + n_vcpus * per_vcpu}


def bytes_table(ns: Sequence[int] = VCPU_COUNTS, host: Optional[Host] = None) -> list[dict]:
    """One row per step: per-VM and per-vCPU bytes and the total for each ``n``.

    Returns
    -------
    list of dict
        ``{"step", "number", "per_vm", "per_vcpu", "totals": {n: bytes}}``.
    """
    ns = check_items("ns", ns, int)
    ns = list(ns)
    if not ns:
        raise ValueError("ns must not be empty")
    rows = []
    for s in STEPS:
        base = state_bytes(s, 1, host)
        rows.append({"step": s.name, "number": s.number, "per_vm": base["per_vm"],
                     "per_vcpu": base["per_vcpu"],
                     "totals": {n: state_bytes(s, n, host)["total"] for n in ns}})
    return rows


def counters(step, n: int = 200, *, first_seed: int = 0) -> dict[str, float]:
    """Mean MMU resets and root loads per workload (CR0.WP singled out).

    Returns
    -------
    dict
        The mean of every counter of :data:`refimpl.layouts.steps.base.STAT_NAMES`
        over ``n`` seeded workloads, plus ``"cr0_writes"`` (mean CR0 writes
        per workload, each a WP toggle) and ``"workloads"``.
    """
    get_step(step)  # a bad step fails before any workload is generated
    wls = workloads(n, first_seed)
    total: dict[str, float] = {}
    for w in wls:
        r = run(step, w)
        for k, v in r.stats.items():
            total[k] = total.get(k, 0) + v
        total["cr0_writes"] = total.get("cr0_writes", 0) + w.counts()["cr0"]
    out = {k: v / len(wls) for k, v in total.items()}
    out["workloads"] = len(wls)
    return out


_PROTOCOL = {"create_vm", "create_vcpu", "count", "view", "emulation_walk", "nested_gpa_walk",
             "fault_inject", "fault_mmu", "pointer_table", "walk_of", "kind_of", "tdp12",
             "walk12", "root_walk", "get_walk", "set_walk", "cpu_role", "init_walk",
             "direct_kind", "connect", "init_tdp_kind"}


def function_parameters(step) -> dict[str, str]:
    """The first parameter of every KVM function a step implements.

    The functions are the step class's public methods other than the
    driver protocol, the views and the one-line accessors; the first
    parameter after ``self`` is read with ``inspect.signature``.

    Returns
    -------
    dict
        ``{function: first parameter name}`` (``"vcpu"``, ``"kind"``,
        ``"kvm"``, ``"vm"``...), sorted by name.
    """
    cls = get_step(step).cls
    out = {}
    for name, fn in inspect.getmembers(cls, inspect.isfunction):
        if name.startswith("_") or name in _PROTOCOL:
            continue
        params = list(inspect.signature(fn).parameters)[1:]
        out[name] = params[0] if params else "-"
    return dict(sorted(out.items()))


def needs_vcpu(step, functions: Optional[Iterable[str]] = None) -> list[str]:
    """The functions whose first parameter is a vCPU.

    Parameters
    ----------
    functions : iterable of str or None
        Restrict to these names (e.g. the table operations
        ``("make_spte", "tdp_mmu_map", "tdp_mmu_set_leaf", "sync_spte",
        "recover_huge_pages")``); default all.
    """
    if functions is not None:
        functions = check_items("functions", functions, str)
    params = function_parameters(step)
    wanted = None if functions is None else set(functions)
    return [f for f, p in params.items() if p == "vcpu" and (wanted is None or f in wanted)]


def vcpu_table(functions: Sequence[str] = ("make_spte", "tdp_mmu_map", "tdp_mmu_set_leaf",
                                           "sync_spte", "recover_huge_pages")) -> list[dict]:
    """Per step, the first parameter of each of ``functions`` (``None`` if absent)."""
    functions = check_items("functions", functions, str)
    rows = []
    for s in STEPS:
        p = function_parameters(s)
        rows.append({"step": s.name, "number": s.number,
                     **{f: p.get(f) for f in functions}})
    return rows


def pointer_tables(step) -> dict[str, dict]:
    """The step's ``pointer_table`` in every configuration of
    :data:`refimpl.layouts.legacy.CONFIGURATIONS` (each built by
    :func:`refimpl.layouts.legacy.run_configurations` on a fresh instance)."""
    s = get_step(step)
    layouts: dict[str, Layout] = {}
    made = []

    def create(host):
        layout = s.layout()
        v = layout.create_vcpu(layout.create_vm(host))
        made.append((layout, v))
        return v

    def via(method):
        def call(vcpu, *a, **k):
            layout = next(lay for lay, v in made if v is vcpu)
            return getattr(layout, method)(vcpu, *a, **k)
        return call

    vcpus = run_configurations(create, via("set_regs"), via("vmx_vmentry"), via("svm_vmrun"),
                               via("vmx_vmexit"))
    out = {}
    for key, v in vcpus.items():
        layout = next(lay for lay, w in made if w is v)
        layouts[key] = layout
        out[key] = layout.pointer_table(v)
    assert set(out) == set(CONFIGURATIONS)
    return out
