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

from dataclasses import dataclass, field
from typing import Optional

from refimpl.layouts.legacy import (
    INVALID_ROOT,
    Derived, GuestRegs, Host, RootInfo, _prev_roots, _walker,
    ept_paging_metadata, ept_shadow_zero_check, guest_paging_metadata, nested_entry, nested_exit, run_configurations, shadow_zero_check_x86, tdp_shadow_zero_check,
)
from refimpl.layouts.legacy import KvmMmu as LegacyKvmMmu
from refimpl.layouts.legacy import KvmVcpuArch as LegacyKvmVcpuArch
from refimpl.host.roles import (
    PT32E_ROOT_LEVEL, PT64_ROOT_4LEVEL, PT64_ROOT_5LEVEL,
    CpuRole, PageRole, calc_cpu_role, calc_shadow_ept_role, calc_shadow_npt_role,
    calc_shadow_root_role, calc_tdp_root_role,
)
from refimpl.errors import check_instance, check_items, check_int

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


@dataclass(eq=False)
class KvmMmuKind:
    """``struct kvm_mmu_kind``: what operating on KVM's tables needs, no vCPU.

    Attributes
    ----------
    direct : bool
        The tables map GPAs linearly (TDP); ``kvm->arch.direct_mmu``.
    sync_spte : str or None
        Re-sync of one SPTE of an unsync shadow page (NULL for direct tables).
    shadow_zero_check : Derived or None
        Bits that must be zero in the SPTEs (what ``make_spte`` checks).

    KVM
    ---
    Proposed in the 2021 mail; never merged under this name. The 2026
    "chainsaw" series put the SPTE-judging part in ``struct kvm_page_format``
    (``kvm_mmu.fmt``).
    """

    direct: bool = False
    sync_spte: Optional[str] = None
    shadow_zero_check: Optional[Derived] = None


@dataclass(eq=False)
class KvmPagingContext:
    """``struct kvm_paging_context``: one guest page-table format, for emulation.

    Attributes
    ----------
    get_guest_pgd, get_pdptr, inject_page_fault, gva_to_gpa : str or None
        The guest-walk callbacks (names of C functions, or None).
    cpu_role : CpuRole
        The format of the tables walked.
    permissions, guest_rsvd_check : Derived or None
        Permission bitmap and guest reserved bits.
    pkru_mask : Derived or int
        PKU lookup mask.
    pdptrs : tuple of int
        Cached PAE PDPTEs.

    KVM
    ---
    Proposed in the 2021 mail; the 2026 series merged it as
    ``struct kvm_pagewalk`` (``gva_walk``, ``ngpa_walk``).
    """

    get_guest_pgd: Optional[str] = None
    get_pdptr: Optional[str] = None
    inject_page_fault: Optional[str] = None
    gva_to_gpa: Optional[str] = None
    cpu_role: CpuRole = CpuRole()
    permissions: Optional[Derived] = None
    pkru_mask: object = 0
    guest_rsvd_check: Optional[Derived] = None
    pdptrs: tuple[int, int, int, int] = (0, 0, 0, 0)


@dataclass(eq=False)
class KvmMmu:
    """The sketch's ``struct kvm_mmu``: run-time state of one set of roots.

    Attributes
    ----------
    kind : KvmMmuKind or None
        Pointer to the kind (``&kvm->direct_mmu`` or ``&vcpu->shadow_mmu``).
    walk : KvmPagingContext or None
        Pointer to the paging context whose tables these roots shadow
        (``root_walk`` for ``root_mmu``, ``walk01`` for ``tdp12_mmu``). Not
        spelled out in the mail; the 2026 series has it as ``kvm_mmu.w``.
    page_fault : str or None
        Fault handler.
    root : refimpl.layouts.legacy.RootInfo
        Current root.
    root_role : PageRole
        Format of the tables KVM builds.
    prev_roots : tuple of refimpl.layouts.legacy.RootInfo
        Cached earlier roots.
    pae_root, pml4_root, pml5_root : bool
        Special root pages allocated.

    KVM
    ---
    2021 mail. The 2026 ``struct kvm_mmu`` has the same run-time fields plus
    ``sync_spte`` and ``fmt``.
    """

    kind: Optional[KvmMmuKind] = None
    walk: Optional[KvmPagingContext] = None
    page_fault: Optional[str] = None
    root: RootInfo = INVALID_ROOT
    root_role: PageRole = PageRole()
    prev_roots: tuple[RootInfo, ...] = field(default_factory=_prev_roots)
    pae_root: bool = False
    pml4_root: bool = False
    pml5_root: bool = False


@dataclass(eq=False)
class KvmArch:
    """The per-VM part: ``struct kvm_arch`` with ``direct_mmu``.

    Attributes
    ----------
    host : Host
        Host/VM configuration.
    direct_mmu : KvmMmuKind or None
        The one kind for every vCPU's TDP roots; None without TDP.
    """

    host: Host
    direct_mmu: Optional[KvmMmuKind] = None


@dataclass(eq=False)
class KvmVcpuArch:
    """The per-vCPU part of the sketch (``struct kvm_vcpu_arch``).

    Attributes
    ----------
    kvm : KvmArch
        The VM (``vcpu->kvm``).
    shadow_mmu : KvmMmuKind
        This vCPU's kind for shadow tables.
    root_mmu : KvmMmu
        Either TDP or shadow.
    tdp12_mmu : KvmMmu
        Always shadow: KVM's shadow of L1's EPT12/NPT12.
    mmu : KvmMmu
        Pointer: ``&root_mmu`` or ``&tdp12_mmu``.
    root_walk, walk01, walk12 : KvmPagingContext
        Paging contexts: the guest on ``root_mmu``; L1's EPT12/NPT12; L2's
        own page tables.
    walk : KvmPagingContext
        Pointer: ``&root_walk`` or ``&walk12``.
    regs, guest_mode, l1_regs, nested_pgd
        Model only, as in :class:`refimpl.layouts.legacy.KvmVcpuArch`.
    """

    kvm: KvmArch
    shadow_mmu: KvmMmuKind = field(default_factory=KvmMmuKind)
    root_mmu: KvmMmu = field(default_factory=KvmMmu)
    tdp12_mmu: KvmMmu = field(default_factory=KvmMmu)
    mmu: Optional[KvmMmu] = None
    root_walk: KvmPagingContext = field(default_factory=KvmPagingContext)
    walk01: KvmPagingContext = field(default_factory=KvmPagingContext)
    walk12: KvmPagingContext = field(default_factory=KvmPagingContext)
    walk: Optional[KvmPagingContext] = None
    regs: GuestRegs = GuestRegs()
    guest_mode: bool = False
    l1_regs: Optional[GuestRegs] = None
    nested_pgd: Optional[int] = None

    @property
    def host(self) -> Host:
        """The VM's host configuration."""
        return self.kvm.host

    def name_of(self, obj: object) -> str:
        """Name of an embedded structure or of ``kvm->direct_mmu``."""
        if obj is not None and obj is self.kvm.direct_mmu:
            return "kvm.direct_mmu"
        for name in ("shadow_mmu", "root_mmu", "tdp12_mmu", "root_walk", "walk01", "walk12"):
            if getattr(self, name) is obj:
                return name
        raise ValueError(f"{obj!r} is not a structure of this vCPU or its VM")


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
# Transitions (same steps as refimpl.layouts.legacy, on the split layout)
# ---------------------------------------------------------------------------


def kvm_arch_init_vm(host: Host = Host()) -> KvmArch:
    """A VM: with TDP, one ``direct_mmu`` kind shared by all its vCPUs.

    The kind's zero-bit check depends only on the host and the TDP level.
    """
    if not isinstance(host, Host):
        raise TypeError(f"host must be a Host, got {host!r}")
    kvm = KvmArch(host)
    if host.tdp_enabled:
        kvm.direct_mmu = KvmMmuKind(direct=True, sync_spte=None,
                                    shadow_zero_check=tdp_shadow_zero_check(host, host.tdp_level))
    return kvm


def kvm_mmu_create(kvm: KvmArch) -> KvmVcpuArch:
    """A fresh vCPU of ``kvm``: ``mmu = &root_mmu``, ``walk = &root_walk``."""
    if not isinstance(kvm, KvmArch):
        raise TypeError(f"kvm must be a KvmArch, got {kvm!r}")
    v = KvmVcpuArch(kvm)
    host = kvm.host
    v.root_mmu.kind = kvm.direct_mmu if host.tdp_enabled else v.shadow_mmu
    v.root_mmu.walk = v.root_walk
    v.tdp12_mmu.kind = v.shadow_mmu
    v.tdp12_mmu.walk = v.walk01
    v.mmu, v.walk = v.root_mmu, v.root_walk
    needs_pae = not (host.tdp_enabled and host.tdp_level > PT32E_ROOT_LEVEL)
    v.root_mmu.pae_root = needs_pae
    v.tdp12_mmu.pae_root = needs_pae and host.tdp_enabled
    return v


def mmu_is_nested(vcpu: KvmVcpuArch) -> bool:
    """``walk == &walk12``."""
    check_instance("vcpu", vcpu, KvmVcpuArch)
    return vcpu.walk is vcpu.walk12


def _init_walk(w: KvmPagingContext, cpu_role: CpuRole, host: Host) -> None:
    w.cpu_role = cpu_role
    w.get_guest_pgd = "get_guest_cr3"
    w.get_pdptr = "kvm_pdptr_read"
    w.inject_page_fault = "kvm_inject_page_fault"
    w.gva_to_gpa = _walker(cpu_role) + "_gva_to_gpa"
    guest_paging_metadata(w, host)


def _shadow_init(vcpu: KvmVcpuArch, m: KvmMmu, cpu_role: CpuRole, root_role: PageRole) -> None:
    w, kind = m.walk, m.kind
    assert w is not None and kind is not None and kind is vcpu.shadow_mmu
    if w.cpu_role == cpu_role and m.root_role == root_role:
        return
    w.cpu_role, m.root_role = cpu_role, root_role
    wk = _walker(cpu_role)
    m.page_fault = wk + "_page_fault"
    w.gva_to_gpa = wk + "_gva_to_gpa"
    kind.sync_spte = None if wk == "nonpaging" else wk + "_sync_spte"
    guest_paging_metadata(w, vcpu.host)
    kind.shadow_zero_check = shadow_zero_check_x86(vcpu.host, root_role)


def kvm_init_mmu(vcpu: KvmVcpuArch) -> None:
    """(Re)configure from the current registers: ``walk12``, or ``root_mmu`` + ``root_walk``."""
    check_instance("vcpu", vcpu, KvmVcpuArch)
    r = vcpu.regs
    cpu_role = calc_cpu_role(r.cr0, r.cr4, r.efer, smm=r.smm, guest_mode=vcpu.guest_mode)
    host = vcpu.host
    if mmu_is_nested(vcpu):
        if vcpu.walk12.cpu_role != cpu_role:
            _init_walk(vcpu.walk12, cpu_role, host)
    elif host.tdp_enabled:
        m, w = vcpu.root_mmu, vcpu.root_walk
        root_role = calc_tdp_root_role(cpu_role, host.tdp_level, host.ad_enabled)
        if w.cpu_role == cpu_role and m.root_role == root_role:
            return
        m.root_role = root_role
        m.page_fault = "kvm_tdp_page_fault"
        _init_walk(w, cpu_role, host)
        # m.kind is kvm->direct_mmu: nothing per vCPU to set.
    else:
        m = vcpu.root_mmu
        _shadow_init(vcpu, m, cpu_role, calc_shadow_root_role(cpu_role))
        w = vcpu.root_walk
        w.get_guest_pgd, w.get_pdptr = "get_guest_cr3", "kvm_pdptr_read"
        w.inject_page_fault = "kvm_inject_page_fault"


def nested_ept_init_mmu_context(vcpu: KvmVcpuArch, eptp: int, execonly: bool = True) -> None:
    """``mmu = &tdp12_mmu`` (shadowing EPT12 via ``walk01``), ``walk = &walk12``.

    Raises
    ------
    ValueError
        As :func:`refimpl.layouts.legacy.nested_ept_init_mmu_context`.
    """
    eptp = check_int("eptp", eptp)
    check_instance("vcpu", vcpu, KvmVcpuArch)
    if mmu_is_nested(vcpu):
        raise ValueError("nested_ept_init_mmu_context: walk is already walk12")
    if not vcpu.guest_mode:
        raise ValueError("nested_ept_init_mmu_context: the vCPU is not in guest mode")
    if vcpu.host.vendor != "vmx" or not vcpu.host.tdp_enabled:
        raise ValueError("nested EPT needs a VMX host with EPT enabled")
    if not isinstance(eptp, int) or ((eptp >> 3) & 7) not in (3, 4):
        raise ValueError(f"eptp {eptp!r}: bits 5:3 must be 3 (4-level) or 4 (5-level)")
    m, w, kind = vcpu.tdp12_mmu, vcpu.walk01, vcpu.shadow_mmu
    vcpu.mmu = m
    vcpu.nested_pgd = eptp
    role = calc_shadow_ept_role(((eptp >> 3) & 7) + 1, bool(eptp & (1 << 6)), execonly,
                                smm=vcpu.regs.smm)
    if w.cpu_role != role:
        w.cpu_role, m.root_role = role, role.base
        m.page_fault = "ept_page_fault"
        w.gva_to_gpa = "ept_gva_to_gpa"
        kind.sync_spte = "ept_sync_spte"
        ept_paging_metadata(w, vcpu.host, execonly)
        kind.shadow_zero_check = ept_shadow_zero_check(vcpu.host, execonly)
    w.get_guest_pgd = "nested_ept_get_eptp"
    w.inject_page_fault = "nested_ept_inject_page_fault"
    w.get_pdptr = "kvm_pdptr_read"
    vcpu.walk = vcpu.walk12


def nested_ept_uninit_mmu_context(vcpu: KvmVcpuArch) -> None:
    """``mmu = &root_mmu``, ``walk = &root_walk``."""
    check_instance("vcpu", vcpu, KvmVcpuArch)
    vcpu.mmu, vcpu.walk = vcpu.root_mmu, vcpu.root_walk
    vcpu.nested_pgd = None


def nested_svm_init_mmu_context(vcpu: KvmVcpuArch, ncr3: int) -> None:
    """``mmu = &tdp12_mmu`` (shadowing NPT12 via ``walk01``), ``walk = &walk12``.

    Raises
    ------
    ValueError
        As :func:`refimpl.layouts.legacy.nested_svm_init_mmu_context`.
    """
    ncr3 = check_int("ncr3", ncr3)
    check_instance("vcpu", vcpu, KvmVcpuArch)
    if mmu_is_nested(vcpu):
        raise ValueError("nested_svm_init_mmu_context: walk is already walk12")
    if not vcpu.guest_mode or vcpu.l1_regs is None:
        raise ValueError("nested_svm_init_mmu_context: the vCPU is not in guest mode")
    if vcpu.host.vendor != "svm" or not vcpu.host.tdp_enabled:
        raise ValueError("nested NPT needs an SVM host with NPT enabled")
    if isinstance(ncr3, bool) or not isinstance(ncr3, int) or ncr3 < 0:
        raise ValueError(f"ncr3 must be a non-negative int, got {ncr3!r}")
    m, w = vcpu.tdp12_mmu, vcpu.walk01
    vcpu.mmu = m
    vcpu.nested_pgd = ncr3
    cpu_role, root_role = calc_shadow_npt_role(vcpu.l1_regs.cr4, vcpu.l1_regs.efer,
                                               vcpu.host.tdp_level, smm=vcpu.regs.smm)
    _shadow_init(vcpu, m, cpu_role, root_role)
    w.get_guest_pgd = "nested_svm_get_tdp_cr3"
    w.get_pdptr = "nested_svm_get_tdp_pdptr"
    w.inject_page_fault = "nested_svm_inject_npf_exit"
    vcpu.walk = vcpu.walk12


def nested_svm_uninit_mmu_context(vcpu: KvmVcpuArch) -> None:
    """``mmu = &root_mmu``, ``walk = &root_walk``."""
    check_instance("vcpu", vcpu, KvmVcpuArch)
    vcpu.mmu, vcpu.walk = vcpu.root_mmu, vcpu.root_walk
    vcpu.nested_pgd = None


def kvm_mmu_load(vcpu: KvmVcpuArch) -> None:
    """Give ``vcpu.mmu`` a root (same naming as :func:`refimpl.layouts.legacy.kvm_mmu_load`)."""
    check_instance("vcpu", vcpu, KvmVcpuArch)
    m = vcpu.mmu
    assert m is not None and m.walk is not None
    w = m.walk
    pgd = vcpu.nested_pgd if w.get_guest_pgd in (
        "nested_ept_get_eptp", "nested_svm_get_tdp_cr3") else vcpu.regs.cr3
    assert pgd is not None
    role = m.root_role
    if role.direct:
        hpa = f"direct_root(role={role.word:#x})"
    else:
        hpa = f"shadow_root(role={role.word:#x}, gfn={pgd >> 12:#x})"
        if w.cpu_role.base.level < PT64_ROOT_4LEVEL <= role.level:
            m.pml4_root = True
            m.pml5_root = role.level == PT64_ROOT_5LEVEL
    m.root = RootInfo(pgd, hpa)


def set_regs(vcpu: KvmVcpuArch, regs: GuestRegs) -> None:
    """Load registers, unload roots, re-init and load (``kvm_mmu_reset_context``)."""
    if not isinstance(regs, GuestRegs):
        raise TypeError(f"regs must be GuestRegs, got {regs!r}")
    vcpu.regs = regs
    for m in (vcpu.root_mmu, vcpu.tdp12_mmu):
        m.root, m.prev_roots = INVALID_ROOT, _prev_roots()
    kvm_init_mmu(vcpu)
    kvm_mmu_load(vcpu)


def kvm_translate_gpa(vcpu: KvmVcpuArch, w: KvmPagingContext) -> Optional[KvmPagingContext]:
    """Which paging context translates a GPA found by a walk with ``w``.

    ``None`` (identity) unless ``w`` is ``walk12``; then the L2 GPA goes
    through ``vcpu.mmu.walk``, i.e. ``walk01`` (L1's EPT12/NPT12).
    """
    check_instance("vcpu", vcpu, KvmVcpuArch)
    check_instance("w", w, KvmPagingContext)
    if w is not vcpu.walk12:
        return None
    if not mmu_is_nested(vcpu):
        raise ValueError("translate_nested_gpa: the vCPU is not nested")
    assert vcpu.mmu is not None
    return vcpu.mmu.walk


def emulated_fault_target(vcpu: KvmVcpuArch, nested_page_fault: bool) -> KvmPagingContext:
    """Paging context whose ``inject_page_fault`` gets an emulated fault."""
    check_instance("vcpu", vcpu, KvmVcpuArch)
    assert vcpu.mmu is not None and vcpu.mmu.walk is not None and vcpu.walk is not None
    return vcpu.mmu.walk if nested_page_fault else vcpu.walk


def _finish(vcpu: KvmVcpuArch, regs: GuestRegs) -> None:
    vcpu.regs = regs
    kvm_init_mmu(vcpu)
    kvm_mmu_load(vcpu)


def nested_vmx_vmentry(vcpu: KvmVcpuArch, l2_regs: GuestRegs, *, ept: bool,
                       eptp: int = 0x1E, execonly: bool = True) -> None:
    """As :func:`refimpl.layouts.legacy.nested_vmx_vmentry`, on the split layout."""
    eptp = check_int("eptp", eptp)
    check_instance("vcpu", vcpu, KvmVcpuArch)
    init = (lambda: nested_ept_init_mmu_context(vcpu, eptp, execonly)) if ept else None
    nested_entry(vcpu, l2_regs, vendor="vmx", name="nested_vmx_vmentry", init=init,
                 finish=_finish)


def nested_vmx_vmexit(vcpu: KvmVcpuArch) -> None:
    """As :func:`refimpl.layouts.legacy.nested_vmx_vmexit`; ValueError when not in L2."""
    check_instance("vcpu", vcpu, KvmVcpuArch)
    nested_exit(vcpu, vendor="vmx", name="nested_vmx_vmexit", uninit=nested_ept_uninit_mmu_context, finish=_finish)


def nested_svm_vmrun(vcpu: KvmVcpuArch, l2_regs: GuestRegs, *, npt: bool,
                     ncr3: int = 0x7000) -> None:
    """As :func:`refimpl.layouts.legacy.nested_svm_vmrun`, on the split layout."""
    ncr3 = check_int("ncr3", ncr3)
    check_instance("vcpu", vcpu, KvmVcpuArch)
    init = (lambda: nested_svm_init_mmu_context(vcpu, ncr3)) if npt else None
    nested_entry(vcpu, l2_regs, vendor="svm", name="nested_svm_vmrun", init=init,
                 finish=_finish)


def nested_svm_vmexit(vcpu: KvmVcpuArch) -> None:
    """As :func:`refimpl.layouts.legacy.nested_svm_vmexit`; ValueError when not in L2."""
    check_instance("vcpu", vcpu, KvmVcpuArch)
    nested_exit(vcpu, vendor="svm", name="nested_svm_vmexit", uninit=nested_svm_uninit_mmu_context, finish=_finish)


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
