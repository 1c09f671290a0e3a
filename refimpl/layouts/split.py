"""Paolo Bonzini's 2021 sketch: ``struct kvm_mmu`` split in three.

The sketch (kvm@vger, 11 Nov 2021, reply to Sean Christopherson in the thread
of Ben Gardon's "Optimize disabling dirty logging" RFC) proposes:

Glossary
--------
kind (``struct kvm_mmu_kind``)
    What is needed to operate on KVM's page tables without a running vCPU:
    the SPTE zero-bit check and the unsync callback. One per VM for direct
    (TDP) tables, ``kvm->arch.direct_mmu``; one per vCPU for shadow tables,
    ``vcpu->arch.shadow_mmu``. See :class:`KvmMmuKind`.
MMU (``struct kvm_mmu``)
    What a vCPU needs while it runs on a set of roots: the fault handler,
    the roots, the root role, and a pointer to its kind. Two per vCPU:
    ``root_mmu`` (TDP or shadow) and ``tdp12_mmu`` (shadows L1's EPT/NPT;
    it runs in :class:`refimpl.host.tdp12.Tdp12Mmu`). See :class:`KvmMmu`.
paging context (``struct kvm_paging_context``)
    What the emulator needs to walk guest page tables: the guest-walk
    callbacks, the CPU role and the tables derived from it. ``root_walk``,
    ``walk01``, ``walk12``, and the pointer ``walk``. See
    :class:`KvmPagingContext`.

Decisions on the open points of the mail (argued in the book chapter
"The 2021 sketch"):

(a) ``vcpu->arch.mmu`` points to a :class:`KvmMmu` (``root_mmu`` or
    ``tdp12_mmu``), as its C type says; each :class:`KvmMmu` points to its
    kind (``kvm->direct_mmu`` or ``vcpu->shadow_mmu``), which is what the
    comment "either &kvm->direct_mmu or &vcpu->shadow_mmu" describes one
    hop further. A kind cannot be the target because roots and root roles
    differ between vCPUs sharing one kind (SMM, L2 without TDP in L1).
(b) ``root_walk`` and ``walk01`` stay separate. ``walk01`` is the paging
    context paired with ``tdp12_mmu`` (walks L1's EPT12/NPT12: L2 GPA to L1
    GPA) and is live together with ``walk12``. ``root_walk`` walks the page
    tables of whatever guest runs on ``root_mmu`` (L1, or L2 when L1 has no
    TDP); its natural twin is ``walk12`` (KVM's 2026 ``gva_walk``).
    ``KvmMmu.walk`` records the pairing (the 2026 ``kvm_mmu.w``).
(c) ``kvm_mmu_state``, never defined in the mail, is read as the sketch's
    ``struct kvm_mmu`` (the run-time part): a naming slip.
(d) ``shadow_zero_check`` depends on host MAXPHYADDR, the table format and
    the root level, not on guest registers, because shadow roots force
    ``efer_nx=1``; so it can live in a kind.
"""

from __future__ import annotations

from typing import Optional

from refimpl.errors import check_instance, check_items
from refimpl.layouts.legacy import KvmMmu as LegacyKvmMmu
from refimpl.layouts.legacy import KvmVcpuArch as LegacyKvmVcpuArch
from refimpl.layouts.model import GuestRegs, Host, run_configurations
from refimpl.layouts.steps.step8_cr0wp_no_reset import Cr0WpNoReset
from refimpl.layouts.structs import py_class

__all__ = [
    "SKETCH_STRUCTS",
    "structs_markdown",
    "KvmMmuKind",
    "KvmMmu",
    "KvmPagingContext",
    "KvmArch",
    "KvmVcpuArch",
    "SKETCH_HOME",
    "STRUCT_CLASSES",
    "LEGACY_POINTER_COUNTERPART",
    "kvm_arch_init_vm",
    "kvm_mmu_create",
    "kvm_init_mmu",
    "kvm_mmu_load",
    "set_regs",
    "mmu_is_nested",
    "kvm_translate_gpa",
    "emulated_fault_target",
    "nested_ept_init_mmu_context",
    "nested_ept_uninit_mmu_context",
    "nested_svm_init_mmu_context",
    "nested_svm_uninit_mmu_context",
    "nested_vmx_vmentry",
    "nested_vmx_vmexit",
    "nested_svm_vmrun",
    "nested_svm_vmexit",
    "configurations",
    "pointer_table",
    "expected_pointer_table",
    "counterparts",
    "differences",
    "live_walks",
    "kind_conflicts",
    "resolve_struct_name",
]

KvmMmuKind = py_class(8, "kvm_mmu_kind")
KvmMmu = py_class(8, "kvm_mmu")
KvmPagingContext = py_class(8, "kvm_paging_context")
KvmArch = py_class(8, "kvm_arch")
KvmVcpuArch = py_class(8, "kvm_vcpu_arch")

_SKETCH = Cr0WpNoReset()

STRUCT_CLASSES = {
    "kvm_mmu_kind": KvmMmuKind,
    "kvm_mmu": KvmMmu,
    "kvm_paging_context": KvmPagingContext,
}
"""The three structs of the sketch, by C name."""

SKETCH_STRUCTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("kvm_mmu_kind", "what is needed to operate on KVM's page tables",
     ("kvm_arch.direct_mmu", "kvm_vcpu_arch.shadow_mmu")),
    ("kvm_mmu", "what is needed while the vCPU runs, including the role",
     ("kvm_vcpu_arch.root_mmu", "kvm_vcpu_arch.tdp12_mmu")),
    ("kvm_paging_context", "what emulation needs to walk guest tables",
     ("kvm_vcpu_arch.root_walk", "kvm_vcpu_arch.walk01", "kvm_vcpu_arch.walk12")),
)
"""The sketch's structs: (C name, what it holds, its instances as ``owner.member``)."""


def structs_markdown() -> str:
    """:data:`SKETCH_STRUCTS` as a Markdown table (per VM / per vCPU instances)."""
    rows = ["| struct | holds | per VM | per vCPU |", "|---|---|---|---|"]
    for name, holds, where in SKETCH_STRUCTS:
        vm = ", ".join(f"`kvm->arch.{w.split('.')[1]}`" for w in where if w.startswith("kvm_arch."))
        vcpu = ", ".join(f"`{w.split('.')[1]}`" for w in where if w.startswith("kvm_vcpu_arch."))
        rows.append(f"| `{name}` | {holds} | {vm or '-'} | {vcpu or '-'} |")
    return "\n".join(rows)

SKETCH_HOME: dict[str, tuple[str, str]] = {
    "get_guest_pgd": ("kvm_paging_context", "get_guest_pgd"),
    "get_pdptr": ("kvm_paging_context", "get_pdptr"),
    "page_fault": ("kvm_mmu", "page_fault"),
    "inject_page_fault": ("kvm_paging_context", "inject_page_fault"),
    "gva_to_gpa": ("kvm_paging_context", "gva_to_gpa"),
    "sync_spte": ("kvm_mmu_kind", "sync_spte"),
    "root": ("kvm_mmu", "root"),
    "cpu_role": ("kvm_paging_context", "cpu_role"),
    "root_role": ("kvm_mmu", "root_role"),
    "pkru_mask": ("kvm_paging_context", "pkru_mask"),
    "prev_roots": ("kvm_mmu", "prev_roots"),
    "permissions": ("kvm_paging_context", "permissions"),
    "pae_root": ("kvm_mmu", "pae_root"),
    "pml4_root": ("kvm_mmu", "pml4_root"),
    "pml5_root": ("kvm_mmu", "pml5_root"),
    "shadow_zero_check": ("kvm_mmu_kind", "shadow_zero_check"),
    "guest_rsvd_check": ("kvm_paging_context", "guest_rsvd_check"),
    "pdptrs": ("kvm_paging_context", "pdptrs"),
}
"""Where each field of the legacy ``struct kvm_mmu`` lives in the sketch."""

LEGACY_POINTER_COUNTERPART: dict[tuple[str, str], str] = {
    ("mmu", "root_mmu"): "root_mmu",
    ("mmu", "guest_mmu"): "tdp12_mmu",
    ("walk_mmu", "root_mmu"): "root_walk",
    ("walk_mmu", "nested_mmu"): "walk12",
}
"""(legacy pointer, legacy target) -> target of the split pointer (``mmu``/``walk``)."""


def resolve_struct_name(name: str) -> type:
    """The class a struct name of the mail refers to.

    ``kvm_mmu_state`` appears once in the mail and is defined nowhere; it is
    read as the sketch's ``struct kvm_mmu`` (decision (c)).
    """
    if name == "kvm_mmu_state":
        return KvmMmu
    try:
        return STRUCT_CLASSES[name]
    except KeyError:
        raise ValueError(f"the sketch has no struct {name!r}") from None


# ---------------------------------------------------------------------------
# KVM's functions on the sketch's layout (each one is a method of the last step)
# ---------------------------------------------------------------------------


def kvm_arch_init_vm(host: Host = Host()) -> KvmArch:
    """A VM: with TDP, one ``direct_mmu`` kind shared by all its vCPUs, whose
    zero-bit check depends only on the host and the TDP level."""
    return _SKETCH.create_vm(host)


def kvm_mmu_create(kvm: KvmArch) -> KvmVcpuArch:
    """A fresh vCPU of ``kvm``: ``mmu = &root_mmu``, ``walk = &root_walk``."""
    return _SKETCH.create_vcpu(kvm)


def mmu_is_nested(vcpu: KvmVcpuArch) -> bool:
    """``walk == &walk12``."""
    return _SKETCH.mmu_is_nested(vcpu)


def kvm_init_mmu(vcpu: KvmVcpuArch) -> None:
    """(Re)configure from the current registers: ``walk12``, or ``root_mmu`` + ``root_walk``."""
    _SKETCH.kvm_init_mmu(vcpu)


def kvm_mmu_load(vcpu: KvmVcpuArch) -> None:
    """Give ``vcpu.mmu`` a root (as :func:`refimpl.layouts.legacy.kvm_mmu_load`)."""
    _SKETCH.kvm_mmu_load(vcpu)


def set_regs(vcpu: KvmVcpuArch, regs: GuestRegs) -> None:
    """Load registers, unload roots, re-init and load (``kvm_mmu_reset_context``)."""
    _SKETCH.set_regs(vcpu, regs)


def nested_ept_init_mmu_context(vcpu: KvmVcpuArch, eptp: int, execonly: bool = True) -> None:
    """``mmu = &tdp12_mmu`` (shadowing EPT12 via ``walk01``), ``walk = &walk12``.

    Raises
    ------
    ValueError
        As :func:`refimpl.layouts.legacy.nested_ept_init_mmu_context`.
    """
    _SKETCH.nested_ept_init_mmu_context(vcpu, eptp, execonly)


def nested_ept_uninit_mmu_context(vcpu: KvmVcpuArch) -> None:
    """``mmu = &root_mmu``, ``walk = &root_walk``."""
    _SKETCH.nested_tdp_uninit_mmu_context(vcpu)


def nested_svm_init_mmu_context(vcpu: KvmVcpuArch, ncr3: int) -> None:
    """``mmu = &tdp12_mmu`` (shadowing NPT12 via ``walk01``), ``walk = &walk12``.

    Raises
    ------
    ValueError
        As :func:`refimpl.layouts.legacy.nested_svm_init_mmu_context`.
    """
    _SKETCH.nested_svm_init_mmu_context(vcpu, ncr3)


def nested_svm_uninit_mmu_context(vcpu: KvmVcpuArch) -> None:
    """``mmu = &root_mmu``, ``walk = &root_walk``."""
    _SKETCH.nested_tdp_uninit_mmu_context(vcpu)


def kvm_translate_gpa(vcpu: KvmVcpuArch, w: KvmPagingContext) -> Optional[KvmPagingContext]:
    """Which paging context translates a GPA found by a walk with ``w``: None
    (identity) unless ``w`` is ``walk12``; then ``vcpu.mmu.walk``, i.e.
    ``walk01`` (L1's EPT12/NPT12)."""
    return _SKETCH.kvm_translate_gpa(vcpu, w)


def emulated_fault_target(vcpu: KvmVcpuArch, nested_page_fault: bool) -> KvmPagingContext:
    """Paging context whose ``inject_page_fault`` gets an emulated fault."""
    return _SKETCH.emulated_fault_target(vcpu, nested_page_fault)


def nested_vmx_vmentry(vcpu: KvmVcpuArch, l2_regs: GuestRegs, *, ept: bool,
                       eptp: int = 0x1E, execonly: bool = True) -> None:
    """As :func:`refimpl.layouts.legacy.nested_vmx_vmentry`, on the split layout."""
    _SKETCH.vmx_vmentry(vcpu, l2_regs, ept=ept, eptp=eptp, execonly=execonly)


def nested_vmx_vmexit(vcpu: KvmVcpuArch) -> None:
    """As :func:`refimpl.layouts.legacy.nested_vmx_vmexit`; ValueError when not in L2."""
    _SKETCH.vmx_vmexit(vcpu)


def nested_svm_vmrun(vcpu: KvmVcpuArch, l2_regs: GuestRegs, *, npt: bool,
                     ncr3: int = 0x7000) -> None:
    """As :func:`refimpl.layouts.legacy.nested_svm_vmrun`, on the split layout."""
    _SKETCH.svm_vmrun(vcpu, l2_regs, npt=npt, ncr3=ncr3)


def nested_svm_vmexit(vcpu: KvmVcpuArch) -> None:
    """As :func:`refimpl.layouts.legacy.nested_svm_vmexit`; ValueError when not in L2."""
    _SKETCH.svm_vmexit(vcpu)


def configurations() -> dict[str, KvmVcpuArch]:
    """The configurations of :data:`refimpl.layouts.legacy.CONFIGURATIONS`, split layout.

    Built by the same steps as :func:`refimpl.layouts.legacy.configurations`
    (:func:`refimpl.layouts.legacy.run_configurations`), each vCPU in its own VM.
    """
    return run_configurations(lambda host: kvm_mmu_create(kvm_arch_init_vm(host)), set_regs,
                              nested_vmx_vmentry, nested_svm_vmrun, nested_vmx_vmexit)


# ---------------------------------------------------------------------------
# Comparison with the legacy layout
# ---------------------------------------------------------------------------


def pointer_table(vcpu: KvmVcpuArch) -> dict[str, str]:
    """Where the split pointers go: ``mmu``, ``walk``, and each MMU's kind and walk."""
    check_instance("vcpu", vcpu, KvmVcpuArch)
    assert vcpu.mmu is not None
    return {
        "mmu": vcpu.name_of(vcpu.mmu),
        "walk": vcpu.name_of(vcpu.walk),
        "mmu->walk": vcpu.name_of(vcpu.mmu.walk),
        "root_mmu.kind": vcpu.name_of(vcpu.root_mmu.kind),
        "tdp12_mmu.kind": vcpu.name_of(vcpu.tdp12_mmu.kind),
    }


def expected_pointer_table(legacy: LegacyKvmVcpuArch) -> dict[str, str]:
    """The split :func:`pointer_table` implied by a legacy vCPU's pointers.

    ``mmu`` and ``walk_mmu`` map through :data:`LEGACY_POINTER_COUNTERPART`;
    the MMU's paging context is ``root_walk`` or ``walk01``; ``root_mmu``'s
    kind is the VM's ``direct_mmu`` with TDP and ``shadow_mmu`` without.
    """
    check_instance("legacy", legacy, LegacyKvmVcpuArch)
    mmu = LEGACY_POINTER_COUNTERPART[("mmu", legacy.name_of(legacy.mmu))]
    return {
        "mmu": mmu,
        "walk": LEGACY_POINTER_COUNTERPART[("walk_mmu", legacy.name_of(legacy.walk_mmu))],
        "mmu->walk": "root_walk" if mmu == "root_mmu" else "walk01",
        "root_mmu.kind": "kvm.direct_mmu" if legacy.host.tdp_enabled else "shadow_mmu",
        "tdp12_mmu.kind": "shadow_mmu",
    }


def counterparts(vcpu: KvmVcpuArch, legacy_struct: str) -> dict[str, object]:
    """The split objects that together hold what legacy ``legacy_struct`` held.

    Returns
    -------
    dict
        ``{"kvm_mmu": ..., "kvm_mmu_kind": ..., "kvm_paging_context": ...}``;
        for ``nested_mmu`` only the paging context (``walk12``) exists.
    """
    if legacy_struct == "root_mmu":
        return {"kvm_mmu": vcpu.root_mmu, "kvm_mmu_kind": vcpu.root_mmu.kind,
                "kvm_paging_context": vcpu.root_walk}
    if legacy_struct == "guest_mmu":
        return {"kvm_mmu": vcpu.tdp12_mmu, "kvm_mmu_kind": vcpu.tdp12_mmu.kind,
                "kvm_paging_context": vcpu.walk01}
    if legacy_struct == "nested_mmu":
        return {"kvm_paging_context": vcpu.walk12}
    raise ValueError(f"no legacy kvm_mmu named {legacy_struct!r}")


def differences(legacy: LegacyKvmVcpuArch, split: KvmVcpuArch,
                homes: Optional[dict[str, tuple[str, str]]] = None) -> list[str]:
    """Every disagreement between a legacy vCPU and a split vCPU.

    Compares the pointer tables, then every field of every legacy structure
    in use (``root_mmu`` always, ``guest_mmu`` when ``mmu`` points to it,
    ``nested_mmu`` when ``walk_mmu`` does) with its home in ``homes``
    (default :data:`SKETCH_HOME`). For ``nested_mmu`` the fields without a
    paging-context home must be empty (it never handles faults).

    Returns
    -------
    list of str
        One line per disagreement; empty when the layouts agree.
    """
    check_instance("legacy", legacy, LegacyKvmVcpuArch)
    check_instance("split", split, KvmVcpuArch)
    homes = SKETCH_HOME if homes is None else homes
    out: list[str] = []
    got, want = pointer_table(split), expected_pointer_table(legacy)
    for k in want:
        if got[k] != want[k]:
            out.append(f"pointer {k}: split {got[k]}, legacy implies {want[k]}")
    in_use = ["root_mmu"]
    if legacy.mmu is legacy.guest_mmu:
        in_use.append("guest_mmu")
    if legacy.walk_mmu is legacy.nested_mmu:
        in_use.append("nested_mmu")
    empty = LegacyKvmMmu()
    for name in in_use:
        lm: LegacyKvmMmu = getattr(legacy, name)
        parts = counterparts(split, name)
        for fname, (struct, sfield) in homes.items():
            lv = getattr(lm, fname)
            if struct not in parts:
                if lv != getattr(empty, fname):
                    out.append(f"{name}.{fname} = {lv!r} but has no home in a paging context")
                continue
            sv = getattr(parts[struct], sfield)
            if lv != sv:
                out.append(f"{name}.{fname}: legacy {lv!r} != split {struct}.{sfield} {sv!r}")
    return out


def live_walks(vcpu: KvmVcpuArch) -> set[str]:
    """Paging contexts the vCPU may use right now.

    ``walk`` for guest-virtual walks, plus the context of ``mmu`` when ``mmu``
    shadows L1's EPT/NPT (it handles L2's faults and translates L2 GPAs).
    """
    check_instance("vcpu", vcpu, KvmVcpuArch)
    assert vcpu.mmu is not None
    live = {vcpu.name_of(vcpu.walk)}
    if vcpu.mmu is vcpu.tdp12_mmu:
        live.add(vcpu.name_of(vcpu.tdp12_mmu.walk))
    return live


def kind_conflicts(vcpus: list[KvmVcpuArch]) -> list[tuple[str, str]]:
    """Pairs of vCPUs whose ``mmu`` share a kind but differ in run-time state.

    If ``vcpu->arch.mmu`` pointed to a kind, ``root`` and ``root_role`` would
    have to live in the kind; every pair returned shows a kind that would
    need two different values at once.

    Returns
    -------
    list of (str, str)
        ``("vcpu<i>", "vcpu<j>")`` pairs.

    Raises
    ------
    TypeError
        ``vcpus`` not an iterable of :class:`KvmVcpuArch`.
    """
    vcpus = list(check_items("vcpus", vcpus, KvmVcpuArch))
    out = []
    for i, a in enumerate(vcpus):
        for j in range(i + 1, len(vcpus)):
            b = vcpus[j]
            assert a.mmu is not None and b.mmu is not None
            if a.mmu.kind is b.mmu.kind and (
                    a.mmu.root_role != b.mmu.root_role or a.mmu.root != b.mmu.root):
                out.append((f"vcpu{i}", f"vcpu{j}"))
    return out
