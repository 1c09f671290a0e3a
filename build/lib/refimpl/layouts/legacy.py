"""Today's ``struct kvm_mmu`` and the vCPU's five MMU pointers.

This module models the *layout* KVM has used since 2022 (classic tree,
kvm-x86/linux at 04f2bbf1): which ``struct kvm_mmu`` instances a vCPU owns,
which one each pointer designates, and which callbacks each instance has, in
every configuration (shadow paging, TDP, nested VMX/SVM with or without
EPT/NPT in L1). It does not walk page tables.

Glossary
--------
root_mmu
    The ``kvm_mmu`` for L1 (or for L2 when L1 does not use EPT/NPT): KVM's TDP
    tables or its shadow of the guest's page tables.
guest_mmu
    The ``kvm_mmu`` that shadows L1's EPT/NPT tables while L2 runs.
nested_mmu
    A ``kvm_mmu`` used only to walk L2's own page tables; it never handles a
    fault, so its fault-side fields stay empty.
mmu
    Pointer: the context that handles page faults.
walk_mmu
    Pointer: the context used for gva-to-gpa translation (emulation).
callback
    A function-pointer field. Here it holds the *name* of the C function it
    points to (``"kvm_tdp_page_fault"``), or ``None`` for NULL.

Modelling choices
-----------------
* Pointers are Python references: ``vcpu.mmu is vcpu.guest_mmu`` means "mmu
  points to guest_mmu". Structures are therefore mutable and compared by
  identity; transitions mutate the vCPU in place, as the C functions do.
* The derived tables (``permissions``, ``pkru_mask``, ``guest_rsvd_check``,
  ``shadow_zero_check``) are stored as :class:`Derived` records of the C
  function that fills them and its inputs, not as the computed masks (that is
  the job of the walker modules). Two records are equal exactly when KVM
  would compute the same table, which is what sharing questions need.
* Roots are symbolic: ``root.hpa`` names the root page (TDP-MMU roots by their
  role, shadow roots by role and guest gfn) instead of a host address.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Callable, Optional

from refimpl.host.roles import (
    CR0_PG, CR0_WP, CR4_PAE, EFER_LMA, EFER_LME, EFER_NX,
    PT32E_ROOT_LEVEL, PT64_ROOT_4LEVEL, PT64_ROOT_5LEVEL,
    CpuRole, PageRole,
    calc_cpu_role, calc_shadow_ept_role, calc_shadow_npt_role,
    calc_shadow_root_role, calc_tdp_root_role,
)
from refimpl.errors import (UnknownName, check_bool, check_bugs, check_choice, check_fields, check_instance,
                     check_int, check_items, check_range)

__all__ = [
    "KVM_MMU_NUM_PREV_ROOTS",
    "Derived",
    "RootInfo",
    "INVALID_ROOT",
    "Host",
    "GuestRegs",
    "KvmMmu",
    "KvmVcpuArch",
    "MMU_STRUCTS",
    "VCPU_MEMBERS",
    "members_markdown",
    "CALLBACKS",
    "PURPOSE",
    "fields_by_purpose",
    "guest_paging_metadata",
    "tdp_shadow_zero_check",
    "shadow_zero_check_x86",
    "ept_shadow_zero_check",
    "kvm_mmu_create",
    "kvm_init_mmu",
    "init_kvm_tdp_mmu",
    "init_kvm_softmmu",
    "init_kvm_nested_mmu",
    "kvm_init_shadow_ept_mmu",
    "kvm_init_shadow_npt_mmu",
    "kvm_mmu_load",
    "kvm_mmu_unload",
    "kvm_mmu_reset_context",
    "set_regs",
    "mmu_is_nested",
    "kvm_translate_gpa",
    "emulated_fault_target",
    "run_configurations",
    "nested_entry",
    "nested_exit",
    "CR0_ROLE_BITS",
    "WALK_HALF",
    "ept_paging_metadata",
    "kvm_set_cr0",
    "BUGS",
    "vmx_guest_owned_cr0_wp_write",
    "kvm_mmu_refresh_passthrough_bits",
    "emulated_permission_check",
    "nested_ept_init_mmu_context",
    "nested_ept_uninit_mmu_context",
    "nested_svm_init_mmu_context",
    "nested_svm_uninit_mmu_context",
    "nested_vmx_vmentry",
    "nested_vmx_vmexit",
    "nested_svm_vmrun",
    "nested_svm_vmexit",
    "L1_REGS",
    "L2_REGS",
    "EPTP12",
    "NCR3",
    "CONFIGURATIONS",
    "configurations",
    "pointer_table",
    "pointer_table_markdown",
]

KVM_MMU_NUM_PREV_ROOTS = 3
"""Size of ``kvm_mmu.prev_roots`` (``KVM_MMU_NUM_PREV_ROOTS``)."""


@dataclass(frozen=True)
class Derived:
    """A table computed by a named KVM function from named inputs.

    Parameters
    ----------
    fn : str
        The C function that fills the table (``"update_permission_bitmask"``).
    inputs : tuple of (str, object)
        Every input the function reads, as ``(name, value)`` pairs.
    """

    fn: str
    inputs: tuple[tuple[str, object], ...]

    def __post_init__(self) -> None:
        check_fields(self, fn=str, inputs=tuple)
        for i, pair in enumerate(self.inputs):
            if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
                raise TypeError(f"Derived.inputs[{i}] must be a (name, value) pair, got {pair!r}")

    def get(self, name: str) -> object:
        """The value of one input."""
        for k, v in self.inputs:
            if k == name:
                return v
        raise UnknownName(f"name: {self.fn} has no input {name!r}")

    def without(self, *names: str) -> "Derived":
        """The same record with some inputs left out (to compare the rest)."""
        return Derived(self.fn, tuple((k, v) for k, v in self.inputs if k not in names))


@dataclass(frozen=True)
class RootInfo:
    """``struct kvm_mmu_root_info``: a guest root and the host root shadowing it.

    Parameters
    ----------
    pgd : int
        The guest root (CR3, EPTP12 or nCR3) the host root was built for.
    hpa : str or None
        The host root page, named symbolically; ``None`` is ``INVALID_PAGE``.
    """

    pgd: int = 0
    hpa: Optional[str] = None

    def __post_init__(self) -> None:
        check_fields(self, pgd=int, hpa=(str, None))
        check_range("RootInfo.pgd", self.pgd, 0, 1 << 64)


INVALID_ROOT = RootInfo()
"""``KVM_MMU_ROOT_INFO_INVALID`` (pgd 0 here, hpa invalid)."""


@dataclass(frozen=True)
class Host:
    """Host and VM configuration the MMU depends on.

    Parameters
    ----------
    tdp_enabled : bool
        EPT/NPT in use (``tdp_enabled``); otherwise shadow paging.
    vendor : str
        ``"vmx"`` (Intel: TDP is EPT) or ``"svm"`` (AMD: TDP is NPT).
    tdp_level : int
        Levels of KVM's TDP tables, 4 or 5 (``kvm_mmu_get_tdp_level``).
    ad_enabled : bool
        Hardware A/D bits used in TDP tables (``kvm_ad_enabled``).
    host_maxphyaddr : int
        Host physical-address width (``reserved_hpa_bits``).
    guest_maxphyaddr : int
        Guest physical-address width (``reserved_gpa_bits``, from CPUID).
    gbpages : bool
        1 GiB pages are offered to the guest.
    """

    tdp_enabled: bool = True
    vendor: str = "vmx"
    tdp_level: int = PT64_ROOT_4LEVEL
    ad_enabled: bool = True
    host_maxphyaddr: int = 46
    guest_maxphyaddr: int = 46
    gbpages: bool = True

    def __post_init__(self) -> None:
        if self.vendor not in ("vmx", "svm"):
            raise ValueError(f"vendor must be 'vmx' or 'svm', got {self.vendor!r}")
        if self.tdp_level not in (PT64_ROOT_4LEVEL, PT64_ROOT_5LEVEL):
            raise ValueError(f"tdp_level must be 4 or 5, got {self.tdp_level!r}")
        for name in ("host_maxphyaddr", "guest_maxphyaddr"):
            v = getattr(self, name)
            if not isinstance(v, int) or not 32 <= v <= 52:
                raise ValueError(f"{name} must be an int in 32..52, got {v!r}")


@dataclass(frozen=True)
class GuestRegs:
    """The registers of the guest that is running (L1, or L2 in guest mode).

    Parameters
    ----------
    cr0, cr3, cr4, efer : int
        Architectural values; they are checked by :func:`~refimpl.host.roles.calc_cpu_role`.
    smm : bool
        In System Management Mode.
    """

    cr0: int = 0
    cr3: int = 0
    cr4: int = 0
    efer: int = 0
    smm: bool = False

    def __post_init__(self) -> None:
        for name in ("cr0", "cr3", "cr4", "efer"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << 64:
                raise ValueError(f"GuestRegs.{name} must be a 64-bit int, got {v!r}")
        if self.cr0 & CR0_PG and not self.cr0 & 1:
            raise ValueError("GuestRegs.cr0: CR0.PG=1 needs CR0.PE=1")
        calc_cpu_role(self.cr0, self.cr4, self.efer, smm=self.smm)  # validates


def _prev_roots() -> tuple[RootInfo, ...]:
    return (INVALID_ROOT,) * KVM_MMU_NUM_PREV_ROOTS


@dataclass(eq=False)
class KvmMmu:
    """``struct kvm_mmu`` as of the classic tree, field for field.

    Callback fields hold the name of the C function they point to, or
    ``None`` (NULL). Compared by identity: two instances are the same
    structure only if they are the same object.

    Attributes
    ----------
    get_guest_pgd : str or None
        Reads the guest root: CR3, or EPTP12 / nCR3 for ``guest_mmu``.
    get_pdptr : str or None
        Reads PAE PDPTE *i*.
    page_fault : str or None
        Handles a fault on this context's roots.
    inject_page_fault : str or None
        Delivers a fault found by a software walk.
    gva_to_gpa : str or None
        The software walker for this context's guest tables.
    sync_spte : str or None
        Re-syncs one SPTE of an unsync shadow page.
    root : RootInfo
        Current root.
    cpu_role : CpuRole
        Guest paging mode of the tables this context walks.
    root_role : PageRole
        Format of the tables KVM builds for this context.
    pkru_mask : Derived or int
        PKU lookup mask (0 when PKE is off).
    prev_roots : tuple of RootInfo
        Cache of ``KVM_MMU_NUM_PREV_ROOTS`` earlier roots.
    permissions : Derived or None
        The 16-byte permission-fault bitmap.
    pae_root, pml4_root, pml5_root : bool
        Whether the special root page is allocated (non-NULL).
    shadow_zero_check : Derived or None
        Bits that must be zero in SPTEs KVM builds.
    guest_rsvd_check : Derived or None
        Reserved bits of guest PTEs.
    pdptrs : tuple of int
        Cached PAE PDPTE registers.

    KVM
    ---
    ``struct kvm_mmu`` in ``arch/x86/include/asm/kvm_host.h``. Checked against
    kvm-x86/linux 04f2bbf1 and torvalds/linux at a 2024 commit: the same 18
    fields in both (the later TDX ``mirror_root_hpa`` is not there yet).
    """

    get_guest_pgd: Optional[str] = None
    get_pdptr: Optional[str] = None
    page_fault: Optional[str] = None
    inject_page_fault: Optional[str] = None
    gva_to_gpa: Optional[str] = None
    sync_spte: Optional[str] = None
    root: RootInfo = INVALID_ROOT
    cpu_role: CpuRole = CpuRole()
    root_role: PageRole = PageRole()
    pkru_mask: object = 0
    prev_roots: tuple[RootInfo, ...] = field(default_factory=_prev_roots)
    permissions: Optional[Derived] = None
    pae_root: bool = False
    pml4_root: bool = False
    pml5_root: bool = False
    shadow_zero_check: Optional[Derived] = None
    guest_rsvd_check: Optional[Derived] = None
    pdptrs: tuple[int, int, int, int] = (0, 0, 0, 0)


CALLBACKS = ("get_guest_pgd", "get_pdptr", "page_fault", "inject_page_fault",
             "gva_to_gpa", "sync_spte")
"""The function-pointer fields of ``struct kvm_mmu``."""

PURPOSE: dict[str, str] = {
    "get_guest_pgd": "guest walk: callbacks",
    "get_pdptr": "guest walk: callbacks",
    "inject_page_fault": "guest walk: callbacks",
    "gva_to_gpa": "guest walk: callbacks",
    "cpu_role": "guest walk: paging mode and derived tables",
    "permissions": "guest walk: paging mode and derived tables",
    "pkru_mask": "guest walk: paging mode and derived tables",
    "guest_rsvd_check": "guest walk: paging mode and derived tables",
    "pdptrs": "guest walk: paging mode and derived tables",
    "page_fault": "KVM's tables: building and syncing SPTEs",
    "sync_spte": "KVM's tables: building and syncing SPTEs",
    "root_role": "KVM's tables: building and syncing SPTEs",
    "shadow_zero_check": "KVM's tables: building and syncing SPTEs",
    "root": "KVM's tables: roots",
    "prev_roots": "KVM's tables: roots",
    "pae_root": "KVM's tables: roots",
    "pml4_root": "KVM's tables: roots",
    "pml5_root": "KVM's tables: roots",
}
"""Purpose group of every field of :class:`KvmMmu`."""


def members_markdown() -> str:
    """:data:`VCPU_MEMBERS` as a Markdown table."""
    rows = ["| member | kind | job |", "|---|---|---|"]
    rows += [f"| `{n}` | {k} | {j} |" for n, k, j in VCPU_MEMBERS]
    return "\n".join(rows)


def fields_by_purpose() -> dict[str, list[str]]:
    """:data:`PURPOSE` inverted: group -> field names in struct order."""
    out: dict[str, list[str]] = {}
    for f in fields(KvmMmu):
        out.setdefault(PURPOSE[f.name], []).append(f.name)
    return out


MMU_STRUCTS = ("root_mmu", "guest_mmu", "nested_mmu")
"""The ``struct kvm_mmu`` instances embedded in ``struct kvm_vcpu_arch``."""

VCPU_MEMBERS: tuple[tuple[str, str, str], ...] = (
    ("root_mmu", "structure", "L1's MMU; also L2's MMU when L1 does not use EPT/NPT"),
    ("guest_mmu", "structure", "shadows L1's EPT/NPT tables while L2 runs"),
    ("nested_mmu", "structure", "walks L2's own page tables; never handles a fault"),
    ("mmu", "pointer", "the context that handles page faults"),
    ("walk_mmu", "pointer", "the context used for gva->gpa walks (emulation)"),
)
"""The MMU members of ``struct kvm_vcpu_arch``: (name, structure or pointer, job)."""


@dataclass(eq=False)
class KvmVcpuArch:
    """The MMU part of ``struct kvm_vcpu_arch``, plus the state it reads.

    Attributes
    ----------
    root_mmu, guest_mmu, nested_mmu : KvmMmu
        The three embedded structures.
    mmu, walk_mmu : KvmMmu
        Pointers: each is one of the three objects above.
    host : Host
        Model only: host/VM configuration (module parameters, CPUID).
    regs : GuestRegs
        Model only: registers of the running guest (L2's in guest mode).
    guest_mode : bool
        Model only: ``is_guest_mode`` (``HF_GUEST_MASK``).
    l1_regs : GuestRegs or None
        Model only: L1's registers saved in vmcs12/vmcb01 while L2 runs.
    nested_pgd : int or None
        Model only: EPTP12 or nCR3 while L2 runs with nested TDP.
    resets : int
        Model only: how many times ``kvm_mmu_reset_context`` ran (each one
        unloads every root).

    KVM
    ---
    ``struct kvm_vcpu_arch`` in ``arch/x86/include/asm/kvm_host.h``.
    """

    host: Host
    root_mmu: KvmMmu = field(default_factory=KvmMmu)
    guest_mmu: KvmMmu = field(default_factory=KvmMmu)
    nested_mmu: KvmMmu = field(default_factory=KvmMmu)
    mmu: Optional[KvmMmu] = None
    walk_mmu: Optional[KvmMmu] = None
    regs: GuestRegs = GuestRegs()
    guest_mode: bool = False
    l1_regs: Optional[GuestRegs] = None
    nested_pgd: Optional[int] = None
    resets: int = 0

    def name_of(self, mmu: Optional[KvmMmu]) -> str:
        """Which embedded structure ``mmu`` is (``"root_mmu"``...)."""
        for name in MMU_STRUCTS:
            if getattr(self, name) is mmu:
                return name
        raise ValueError(f"{mmu!r} is not one of this vCPU's kvm_mmu structures")


# ---------------------------------------------------------------------------
# Derived tables: which KVM function fills them, from which inputs
# ---------------------------------------------------------------------------


#: The guest-walk half of a ``kvm_mmu``: what :func:`guest_paging_metadata`
#: reads and fills, in a :class:`KvmMmu` or a ``kvm_paging_context``.
WALK_HALF = ("cpu_role", "guest_rsvd_check", "permissions", "pkru_mask")


def _check_walk_half(mmu: object) -> None:
    missing = [a for a in WALK_HALF if not hasattr(mmu, a)]
    if missing:
        raise TypeError(f"mmu must be a kvm_mmu or kvm_paging_context, got "
                        f"{type(mmu).__name__} (no {', '.join(missing)})")


def guest_paging_metadata(mmu: KvmMmu, host: Host) -> None:
    """Fill the guest-walk tables of ``mmu`` from its ``cpu_role``.

    Does nothing when paging is off, like KVM (the old tables stay).

    Parameters
    ----------
    mmu : KvmMmu or refimpl.layouts.split.KvmPagingContext
        Any structure with the guest-walk half (:data:`WALK_HALF`).
    host : Host

    Raises
    ------
    TypeError
        If ``mmu`` lacks a member of the walk half, or ``host`` is not a Host.

    KVM
    ---
    ``reset_guest_paging_metadata`` (``reset_guest_rsvds_bits_mask``,
    ``update_permission_bitmask``, ``update_pkru_bitmask``) in
    ``arch/x86/kvm/mmu/mmu.c``.
    """
    _check_walk_half(mmu)
    check_instance("host", host, Host)
    r = mmu.cpu_role
    if not r.paging:
        return
    mmu.guest_rsvd_check = Derived("reset_guest_rsvds_bits_mask", (
        ("maxphyaddr", host.guest_maxphyaddr), ("level", r.base.level),
        ("nx", r.base.efer_nx), ("gbpages", host.gbpages), ("pse", r.ext.cr4_pse),
        ("amd", host.vendor == "svm")))
    mmu.permissions = Derived("update_permission_bitmask", (
        ("ept", False), ("cr0_wp", r.base.cr0_wp), ("cr4_smep", r.ext.cr4_smep),
        ("cr4_smap", r.ext.cr4_smap), ("efer_nx", r.base.efer_nx)))
    mmu.pkru_mask = (Derived("update_pkru_bitmask", (("cr0_wp", r.base.cr0_wp),))
                     if r.ext.cr4_pke else 0)


def ept_paging_metadata(mmu: KvmMmu, host: Host, execonly: bool) -> None:
    """Fill the guest-walk tables of a context that walks L1's EPT tables.

    EPT entries have no U/S, WP, SMEP or SMAP and no protection keys, so the
    permission bitmap is the EPT one and the PKRU mask is 0; reserved bits
    follow the EPT rules for the guest's MAXPHYADDR and whether execute-only
    pages exist.

    Parameters
    ----------
    mmu : KvmMmu or refimpl.layouts.split.KvmPagingContext
        Any structure with the guest-walk half (:data:`WALK_HALF`).
    host : Host
    execonly : bool

    KVM
    ---
    ``kvm_init_shadow_ept_mmu`` (``update_permission_bitmask(ept=true)``,
    ``reset_rsvds_bits_mask_ept``) in ``arch/x86/kvm/mmu/mmu.c``.
    """
    _check_walk_half(mmu)
    check_instance("host", host, Host)
    execonly = check_bool("execonly", execonly)
    mmu.permissions = Derived("update_permission_bitmask", (
        ("ept", True), ("cr0_wp", 0), ("cr4_smep", 0), ("cr4_smap", 0), ("efer_nx", 0)))
    mmu.pkru_mask = 0
    mmu.guest_rsvd_check = Derived("reset_rsvds_bits_mask_ept", (
        ("maxphyaddr", host.guest_maxphyaddr), ("execonly", execonly),
        ("huge_page_level", 3 if host.gbpages else 2)))


def tdp_shadow_zero_check(host: Host, level: int) -> Derived:
    """``shadow_zero_check`` of KVM's TDP tables (``reset_tdp_shadow_zero_bits_mask``).

    Only host properties and the TDP level are inputs: EPT format on Intel,
    the x86 format with NX on AMD.
    """
    level = check_int("level", level)
    check_instance("host", host, Host)
    if host.vendor == "vmx":
        return Derived("reset_tdp_shadow_zero_bits_mask", (
            ("format", "ept"), ("maxphyaddr", host.host_maxphyaddr),
            ("level", level), ("execonly", False)))
    return Derived("reset_tdp_shadow_zero_bits_mask", (
        ("format", "x86"), ("maxphyaddr", host.host_maxphyaddr), ("level", level),
        ("nx", 1), ("gbpages", True), ("pse", False)))


def shadow_zero_check_x86(host: Host, root_role: PageRole) -> Derived:
    """``shadow_zero_check`` of shadow tables in x86 format (``reset_shadow_zero_bits_mask``).

    Inputs: host MAXPHYADDR, the root level and ``root_role.efer_nx`` (which
    :func:`~refimpl.host.roles.calc_shadow_root_role` forces to 1).
    """
    check_instance("host", host, Host)
    check_instance("root_role", root_role, PageRole)
    return Derived("reset_shadow_zero_bits_mask", (
        ("format", "x86"), ("maxphyaddr", host.host_maxphyaddr),
        ("level", root_role.level), ("nx", root_role.efer_nx),
        ("gbpages", host.gbpages), ("pse", False)))


def ept_shadow_zero_check(host: Host, execonly: bool) -> Derived:
    """``shadow_zero_check`` of shadow EPT tables (``reset_ept_shadow_zero_bits_mask``)."""
    check_instance("host", host, Host)
    return Derived("reset_ept_shadow_zero_bits_mask", (
        ("format", "ept"), ("maxphyaddr", host.host_maxphyaddr),
        ("execonly", bool(execonly))))


def _walker(role: CpuRole) -> str:
    if not role.paging:
        return "nonpaging"
    return "paging32" if role.base.has_4_byte_gpte else "paging64"


# ---------------------------------------------------------------------------
# Transitions
# ---------------------------------------------------------------------------


def kvm_mmu_create(host: Host = Host()) -> KvmVcpuArch:
    """A fresh vCPU: three empty contexts, ``mmu = walk_mmu = &root_mmu``.

    ``pae_root`` is allocated for ``root_mmu`` and ``guest_mmu`` unless the
    host uses TDP with more than 3 levels (and never for ``guest_mmu``
    without TDP). ``nested_mmu`` gets no roots at all.

    KVM
    ---
    ``kvm_mmu_create`` and ``__kvm_mmu_create`` in ``arch/x86/kvm/mmu/mmu.c``.
    """
    if not isinstance(host, Host):
        raise TypeError(f"host must be a Host, got {host!r}")
    vcpu = KvmVcpuArch(host=host)
    vcpu.mmu = vcpu.root_mmu
    vcpu.walk_mmu = vcpu.root_mmu
    needs_pae = not (host.tdp_enabled and host.tdp_level > PT32E_ROOT_LEVEL)
    vcpu.root_mmu.pae_root = needs_pae
    vcpu.guest_mmu.pae_root = needs_pae and host.tdp_enabled
    return vcpu


def mmu_is_nested(vcpu: KvmVcpuArch) -> bool:
    """``walk_mmu == &nested_mmu`` (``mmu_is_nested`` in ``arch/x86/kvm/x86.h``)."""
    check_instance("vcpu", vcpu, KvmVcpuArch)
    return vcpu.walk_mmu is vcpu.nested_mmu


def _cpu_role(vcpu: KvmVcpuArch) -> CpuRole:
    r = vcpu.regs
    return calc_cpu_role(r.cr0, r.cr4, r.efer, smm=r.smm, guest_mode=vcpu.guest_mode)


def init_kvm_tdp_mmu(vcpu: KvmVcpuArch, cpu_role: CpuRole) -> None:
    """Configure ``root_mmu`` for TDP (``init_kvm_tdp_mmu``, ``mmu.c``)."""
    check_instance("vcpu", vcpu, KvmVcpuArch)
    check_instance("cpu_role", cpu_role, CpuRole)
    ctx = vcpu.root_mmu
    root_role = calc_tdp_root_role(cpu_role, vcpu.host.tdp_level, vcpu.host.ad_enabled)
    if ctx.cpu_role == cpu_role and ctx.root_role == root_role:
        return
    ctx.cpu_role, ctx.root_role = cpu_role, root_role
    ctx.page_fault = "kvm_tdp_page_fault"
    ctx.sync_spte = None
    ctx.get_guest_pgd = "get_guest_cr3"
    ctx.get_pdptr = "kvm_pdptr_read"
    ctx.inject_page_fault = "kvm_inject_page_fault"
    ctx.gva_to_gpa = _walker(cpu_role) + "_gva_to_gpa"
    guest_paging_metadata(ctx, vcpu.host)
    ctx.shadow_zero_check = tdp_shadow_zero_check(vcpu.host, root_role.level)


def _shadow_mmu_init_context(vcpu: KvmVcpuArch, ctx: KvmMmu, cpu_role: CpuRole,
                             root_role: PageRole) -> None:
    # shadow_mmu_init_context + nonpaging/paging32/paging64_init_context
    if ctx.cpu_role == cpu_role and ctx.root_role == root_role:
        return
    ctx.cpu_role, ctx.root_role = cpu_role, root_role
    w = _walker(cpu_role)
    ctx.page_fault = w + "_page_fault"
    ctx.gva_to_gpa = w + "_gva_to_gpa"
    ctx.sync_spte = None if w == "nonpaging" else w + "_sync_spte"
    guest_paging_metadata(ctx, vcpu.host)
    ctx.shadow_zero_check = shadow_zero_check_x86(vcpu.host, root_role)


def init_kvm_softmmu(vcpu: KvmVcpuArch, cpu_role: CpuRole) -> None:
    """Configure ``root_mmu`` for shadow paging (``init_kvm_softmmu``, ``mmu.c``)."""
    check_instance("vcpu", vcpu, KvmVcpuArch)
    check_instance("cpu_role", cpu_role, CpuRole)
    ctx = vcpu.root_mmu
    _shadow_mmu_init_context(vcpu, ctx, cpu_role, calc_shadow_root_role(cpu_role))
    ctx.get_guest_pgd = "get_guest_cr3"
    ctx.get_pdptr = "kvm_pdptr_read"
    ctx.inject_page_fault = "kvm_inject_page_fault"


def init_kvm_nested_mmu(vcpu: KvmVcpuArch, cpu_role: CpuRole) -> None:
    """Configure ``nested_mmu`` to walk L2's page tables (``init_kvm_nested_mmu``).

    Only the walk half is set: ``page_fault`` and ``root_role`` are never
    written, ``sync_spte`` is NULL (L2's tables are never shadowed here).
    """
    check_instance("vcpu", vcpu, KvmVcpuArch)
    check_instance("cpu_role", cpu_role, CpuRole)
    ctx = vcpu.nested_mmu
    if ctx.cpu_role == cpu_role:
        return
    ctx.cpu_role = cpu_role
    ctx.get_guest_pgd = "get_guest_cr3"
    ctx.get_pdptr = "kvm_pdptr_read"
    ctx.inject_page_fault = "kvm_inject_page_fault"
    ctx.sync_spte = None
    ctx.gva_to_gpa = _walker(cpu_role) + "_gva_to_gpa"
    guest_paging_metadata(ctx, vcpu.host)


def kvm_init_mmu(vcpu: KvmVcpuArch) -> None:
    """(Re)configure the MMU from the current registers.

    Nested walk -> :func:`init_kvm_nested_mmu`; otherwise TDP ->
    :func:`init_kvm_tdp_mmu`, else :func:`init_kvm_softmmu`.

    KVM
    ---
    ``kvm_init_mmu`` in ``arch/x86/kvm/mmu/mmu.c``.
    """
    check_instance("vcpu", vcpu, KvmVcpuArch)
    cpu_role = _cpu_role(vcpu)
    if mmu_is_nested(vcpu):
        init_kvm_nested_mmu(vcpu, cpu_role)
    elif vcpu.host.tdp_enabled:
        init_kvm_tdp_mmu(vcpu, cpu_role)
    else:
        init_kvm_softmmu(vcpu, cpu_role)


def kvm_init_shadow_ept_mmu(vcpu: KvmVcpuArch, execonly: bool, accessed_dirty: bool,
                            eptp: int) -> None:
    """Configure ``guest_mmu`` to shadow L1's EPT (``kvm_init_shadow_ept_mmu``)."""
    eptp = check_int("eptp", eptp)
    check_instance("vcpu", vcpu, KvmVcpuArch)
    ctx = vcpu.guest_mmu
    level = ((eptp >> 3) & 7) + 1
    role = calc_shadow_ept_role(level, accessed_dirty, execonly, smm=vcpu.regs.smm)
    if ctx.cpu_role != role:
        ctx.cpu_role, ctx.root_role = role, role.base
        ctx.page_fault = "ept_page_fault"
        ctx.gva_to_gpa = "ept_gva_to_gpa"
        ctx.sync_spte = "ept_sync_spte"
        ept_paging_metadata(ctx, vcpu.host, execonly)
        ctx.shadow_zero_check = ept_shadow_zero_check(vcpu.host, execonly)


def kvm_init_shadow_npt_mmu(vcpu: KvmVcpuArch, cr4: int, efer: int, ncr3: int) -> None:
    """Configure ``guest_mmu`` to shadow L1's NPT (``kvm_init_shadow_npt_mmu``)."""
    cr4 = check_int("cr4", cr4)
    efer = check_int("efer", efer)
    ncr3 = check_int("ncr3", ncr3)
    check_instance("vcpu", vcpu, KvmVcpuArch)
    ctx = vcpu.guest_mmu
    cpu_role, root_role = calc_shadow_npt_role(cr4, efer, vcpu.host.tdp_level,
                                               smm=vcpu.regs.smm)
    _shadow_mmu_init_context(vcpu, ctx, cpu_role, root_role)


def nested_ept_init_mmu_context(vcpu: KvmVcpuArch, eptp: int, execonly: bool = True) -> None:
    """Point ``mmu`` at ``guest_mmu`` (shadow EPT12) and ``walk_mmu`` at ``nested_mmu``.

    Parameters
    ----------
    eptp : int
        EPTP12: bits 5:3 walk length minus one (3 or 4), bit 6 A/D enable.
    execonly : bool
        Execute-only EPT is offered to L1.

    Raises
    ------
    ValueError
        Already nested, not in guest mode, not a VMX host with EPT, or a bad EPTP.

    KVM
    ---
    ``nested_ept_init_mmu_context`` and ``nested_ept_new_eptp`` in
    ``arch/x86/kvm/vmx/nested.c``.
    """
    eptp = check_int("eptp", eptp)
    check_instance("vcpu", vcpu, KvmVcpuArch)
    if mmu_is_nested(vcpu):
        raise ValueError("nested_ept_init_mmu_context: walk_mmu is already nested_mmu")
    if not vcpu.guest_mode:
        raise ValueError("nested_ept_init_mmu_context: the vCPU is not in guest mode")
    if vcpu.host.vendor != "vmx" or not vcpu.host.tdp_enabled:
        raise ValueError("nested EPT needs a VMX host with EPT enabled")
    if not isinstance(eptp, int) or ((eptp >> 3) & 7) not in (3, 4):
        raise ValueError(f"eptp {eptp!r}: bits 5:3 must be 3 (4-level) or 4 (5-level)")
    vcpu.mmu = vcpu.guest_mmu
    vcpu.nested_pgd = eptp
    kvm_init_shadow_ept_mmu(vcpu, execonly, bool(eptp & (1 << 6)), eptp)
    vcpu.mmu.get_guest_pgd = "nested_ept_get_eptp"
    vcpu.mmu.inject_page_fault = "nested_ept_inject_page_fault"
    vcpu.mmu.get_pdptr = "kvm_pdptr_read"
    vcpu.walk_mmu = vcpu.nested_mmu


def nested_ept_uninit_mmu_context(vcpu: KvmVcpuArch) -> None:
    """``mmu = walk_mmu = &root_mmu`` (``nested_ept_uninit_mmu_context``, VMX)."""
    check_instance("vcpu", vcpu, KvmVcpuArch)
    vcpu.mmu = vcpu.root_mmu
    vcpu.walk_mmu = vcpu.root_mmu
    vcpu.nested_pgd = None


def nested_svm_init_mmu_context(vcpu: KvmVcpuArch, ncr3: int) -> None:
    """Point ``mmu`` at ``guest_mmu`` (shadow NPT12) and ``walk_mmu`` at ``nested_mmu``.

    The NPT format is taken from L1's CR4 and EFER (vmcb01), with CR0 = PG.

    Raises
    ------
    ValueError
        Already nested, not in guest mode, or not an SVM host with NPT.

    KVM
    ---
    ``nested_svm_init_mmu_context`` in ``arch/x86/kvm/svm/nested.c``.
    """
    ncr3 = check_int("ncr3", ncr3)
    check_instance("vcpu", vcpu, KvmVcpuArch)
    if mmu_is_nested(vcpu):
        raise ValueError("nested_svm_init_mmu_context: walk_mmu is already nested_mmu")
    if not vcpu.guest_mode or vcpu.l1_regs is None:
        raise ValueError("nested_svm_init_mmu_context: the vCPU is not in guest mode")
    if vcpu.host.vendor != "svm" or not vcpu.host.tdp_enabled:
        raise ValueError("nested NPT needs an SVM host with NPT enabled")
    if isinstance(ncr3, bool) or not isinstance(ncr3, int) or ncr3 < 0:
        raise ValueError(f"ncr3 must be a non-negative int, got {ncr3!r}")
    vcpu.mmu = vcpu.guest_mmu
    vcpu.nested_pgd = ncr3
    kvm_init_shadow_npt_mmu(vcpu, vcpu.l1_regs.cr4, vcpu.l1_regs.efer, ncr3)
    vcpu.mmu.get_guest_pgd = "nested_svm_get_tdp_cr3"
    vcpu.mmu.get_pdptr = "nested_svm_get_tdp_pdptr"
    vcpu.mmu.inject_page_fault = "nested_svm_inject_npf_exit"
    vcpu.walk_mmu = vcpu.nested_mmu


def nested_svm_uninit_mmu_context(vcpu: KvmVcpuArch) -> None:
    """``mmu = walk_mmu = &root_mmu`` (``nested_svm_uninit_mmu_context``, SVM)."""
    check_instance("vcpu", vcpu, KvmVcpuArch)
    vcpu.mmu = vcpu.root_mmu
    vcpu.walk_mmu = vcpu.root_mmu
    vcpu.nested_pgd = None


def _guest_pgd(vcpu: KvmVcpuArch, mmu: KvmMmu) -> int:
    if mmu.get_guest_pgd in ("nested_ept_get_eptp", "nested_svm_get_tdp_cr3"):
        assert vcpu.nested_pgd is not None
        return vcpu.nested_pgd
    return vcpu.regs.cr3


def kvm_mmu_load(vcpu: KvmVcpuArch) -> None:
    """Give ``vcpu.mmu`` a root (symbolic), as before entering the guest.

    Direct roots are named by role (TDP-MMU roots are shared by every vCPU
    with the same role); shadow roots by role and guest root gfn. The PML4
    (and PML5) special roots are needed when a 64-bit host shadows a 32-bit
    or PAE NPT.

    KVM
    ---
    ``kvm_mmu_load``, ``mmu_alloc_special_roots``, ``mmu_alloc_direct_roots``,
    ``mmu_alloc_shadow_roots`` in ``arch/x86/kvm/mmu/mmu.c``.
    """
    check_instance("vcpu", vcpu, KvmVcpuArch)
    mmu = vcpu.mmu
    assert mmu is not None
    role = mmu.root_role
    pgd = _guest_pgd(vcpu, mmu)
    if role.direct:
        hpa = f"direct_root(role={role.word:#x})"
    else:
        hpa = f"shadow_root(role={role.word:#x}, gfn={pgd >> 12:#x})"
        if mmu.cpu_role.base.level < PT64_ROOT_4LEVEL <= role.level:
            mmu.pml4_root = True
            mmu.pml5_root = role.level == PT64_ROOT_5LEVEL
    mmu.root = RootInfo(pgd, hpa)


def kvm_mmu_unload(vcpu: KvmVcpuArch) -> None:
    """Free the roots of ``root_mmu`` and ``guest_mmu`` (``kvm_mmu_unload``)."""
    check_instance("vcpu", vcpu, KvmVcpuArch)
    for m in (vcpu.root_mmu, vcpu.guest_mmu):
        m.root = INVALID_ROOT
        m.prev_roots = _prev_roots()


def kvm_mmu_reset_context(vcpu: KvmVcpuArch) -> None:
    """Unload and re-init (``kvm_mmu_reset_context``, ``mmu.c``)."""
    check_instance("vcpu", vcpu, KvmVcpuArch)
    vcpu.resets += 1
    kvm_mmu_unload(vcpu)
    kvm_init_mmu(vcpu)


#: CR0 bits that are inputs of the MMU roles (``KVM_MMU_CR0_ROLE_BITS``).
CR0_ROLE_BITS = CR0_PG | CR0_WP


def kvm_set_cr0(vcpu: KvmVcpuArch, cr0: int) -> None:
    """A guest write to CR0, and what it costs the MMU (the 2023 rule).

    When CR0.WP is the only bit that changed, paging is on and TDP is in use,
    the roots cannot depend on WP (a TDP root role has ``cr0_wp=1`` whatever
    the guest does), so KVM only recomputes the guest-walk metadata
    (``kvm_init_mmu``): the permission bitmap and PKRU mask now follow the new
    WP, and every root stays loaded. With shadow paging WP is part of the
    shadow pages' role, so the context is reset. Any change of a role bit
    other than WP resets it too; a change of no role bit changes nothing.

    Raises
    ------
    ValueError
        If ``cr0`` with the current CR4/EFER is not a state a CPU can be in.

    KVM
    ---
    ``kvm_post_set_cr0`` in ``arch/x86/kvm/x86.c`` (commit 01b31714bd90,
    2023: "Do not unload MMU roots when only toggling CR0.WP with TDP
    enabled").
    """
    cr0 = check_int("cr0", cr0)
    check_instance("vcpu", vcpu, KvmVcpuArch)
    old = vcpu.regs.cr0
    vcpu.regs = replace(vcpu.regs, cr0=cr0)  # validates the new state
    changed = old ^ cr0
    if changed == CR0_WP:
        if not cr0 & CR0_PG:
            return
        if vcpu.host.tdp_enabled:
            kvm_init_mmu(vcpu)
            return
    if changed & CR0_ROLE_BITS:
        kvm_mmu_reset_context(vcpu)
        kvm_mmu_load(vcpu)


#: Replayed bugs (:mod:`refimpl.bugs`) of this module; none is on by default.
BUGS: dict[str, str] = {
    "stale_cr0_wp": (
        "check_toggle_cr0_wp: with CR0.WP guest-owned (EPT), an emulated access is "
        "checked against the permission bitmap built for the CR0.WP of the last "
        "MMU reset, not the guest's current CR0.WP (fixed 2023 by cf9f4c0eb169, "
        "'Refresh CR0.WP prior to checking for emulated permission faults')"),
}


def vmx_guest_owned_cr0_wp_write(vcpu: KvmVcpuArch, wp: bool) -> None:
    """L1 flips CR0.WP while KVM lets it own the bit: no VM exit, no KVM code.

    With EPT on Intel, KVM leaves CR0.WP out of the CR0 guest/host mask, so a
    MOV to CR0 that changes only WP completes in hardware. The architectural
    CR0 (``vcpu.regs``) changes; the MMU's ``cpu_role`` and permission
    bitmap, computed at the last reset, do not.

    Raises
    ------
    ValueError
        No EPT on a VMX host (then WP is intercepted and the write goes
        through :func:`kvm_set_cr0`), or the vCPU is running L2, or paging is
        off.

    KVM
    ---
    ``KVM_POSSIBLE_CR0_GUEST_BITS`` in ``arch/x86/kvm/kvm_cache_regs.h`` and
    the CR0 guest/host mask set in ``arch/x86/kvm/vmx/vmx.c`` (commit
    fb509f76acc8, "KVM: VMX: Make CR0.WP a guest owned bit", 2023).
    """
    check_instance("vcpu", vcpu, KvmVcpuArch)
    wp = check_bool("wp", wp)
    if not (vcpu.host.tdp_enabled and vcpu.host.vendor == "vmx"):
        raise ValueError("vmx_guest_owned_cr0_wp_write: CR0.WP is guest-owned only with EPT on VMX")
    if vcpu.guest_mode:
        raise ValueError("vmx_guest_owned_cr0_wp_write: models L1 only, the vCPU runs L2")
    if not vcpu.regs.cr0 & CR0_PG:
        raise ValueError("vmx_guest_owned_cr0_wp_write: paging is off")
    cr0 = (vcpu.regs.cr0 | CR0_WP) if wp else (vcpu.regs.cr0 & ~CR0_WP)
    vcpu.regs = replace(vcpu.regs, cr0=cr0)


def kvm_mmu_refresh_passthrough_bits(vcpu: KvmVcpuArch, mmu: KvmMmu) -> None:
    """Bring ``mmu``'s snapshot of CR0.WP up to date before a permission check.

    Only with TDP (shadow paging intercepts WP, which is in the page role)
    and never for ``guest_mmu`` (EPT12/NPT12 ignore CR0.WP). When the
    guest's WP differs from ``mmu.cpu_role``, the role's ``cr0_wp`` is set
    and the guest-walk tables are rebuilt.

    KVM
    ---
    ``kvm_mmu_refresh_passthrough_bits`` in ``arch/x86/kvm/mmu.h`` and
    ``__kvm_mmu_refresh_passthrough_bits`` in ``arch/x86/kvm/mmu/mmu.c``
    (commit cf9f4c0eb169, 2023).
    """
    check_instance("vcpu", vcpu, KvmVcpuArch)
    vcpu.name_of(check_instance("mmu", mmu, KvmMmu))  # one of this vCPU's three
    if not vcpu.host.tdp_enabled or mmu is vcpu.guest_mmu:
        return
    wp = int(bool(vcpu.regs.cr0 & CR0_WP))
    if mmu.cpu_role.base.cr0_wp == wp:
        return
    mmu.cpu_role = replace(mmu.cpu_role, base=mmu.cpu_role.base.replace(cr0_wp=wp))
    guest_paging_metadata(mmu, vcpu.host)


def emulated_permission_check(vcpu: KvmVcpuArch, mmu: Optional[KvmMmu] = None, *,
                              bugs: object = ()) -> Derived:
    """The permission bitmap an emulated guest access is checked against.

    KVM refreshes the pass-through bits (:func:`kvm_mmu_refresh_passthrough_bits`)
    first, then indexes ``mmu->permissions``. ``bugs={"stale_cr0_wp"}``
    (:data:`BUGS`) skips the refresh, as KVM did between fb509f76acc8 and
    cf9f4c0eb169.

    Parameters
    ----------
    vcpu : KvmVcpuArch
    mmu : KvmMmu or None
        The walking context (default ``vcpu.walk_mmu``).
    bugs : iterable of str

    Returns
    -------
    Derived
        ``mmu.permissions``: its inputs name the CR0.WP it was built for.

    KVM
    ---
    ``permission_fault`` in ``arch/x86/kvm/mmu.h``.
    """
    bugs = check_bugs("bugs", bugs, BUGS)
    check_instance("vcpu", vcpu, KvmVcpuArch)
    mmu = vcpu.walk_mmu if mmu is None else mmu
    if mmu is not None:
        vcpu.name_of(check_instance("mmu", mmu, KvmMmu))
    if mmu is None:
        raise ValueError("emulated_permission_check: the vCPU has no walk_mmu")
    if "stale_cr0_wp" not in bugs:
        kvm_mmu_refresh_passthrough_bits(vcpu, mmu)
    if mmu.permissions is None:
        raise ValueError("emulated_permission_check: paging has never been on")
    return mmu.permissions


def set_regs(vcpu: KvmVcpuArch, regs: GuestRegs) -> None:
    """Load new CR0/CR3/CR4/EFER/SMM, reset the MMU context and load a root.

    Stands for the register writes (``kvm_set_cr0`` & co., ``kvm_smm_changed``)
    that end in ``kvm_mmu_reset_context`` (``arch/x86/kvm/x86.c``).
    """
    if not isinstance(regs, GuestRegs):
        raise TypeError(f"regs must be GuestRegs, got {regs!r}")
    vcpu.regs = regs
    kvm_mmu_reset_context(vcpu)
    kvm_mmu_load(vcpu)


def kvm_translate_gpa(vcpu: KvmVcpuArch, mmu: KvmMmu) -> Optional[KvmMmu]:
    """Which context translates a GPA produced by a walk with ``mmu``.

    Returns
    -------
    KvmMmu or None
        ``None`` when the GPA is already an L1 GPA (identity); when ``mmu``
        is ``nested_mmu`` the L2 GPA goes through ``vcpu.mmu``'s
        ``gva_to_gpa`` (the EPT12/NPT12 walker of ``guest_mmu``).

    KVM
    ---
    ``kvm_translate_gpa`` in ``arch/x86/kvm/mmu.h`` and
    ``translate_nested_gpa`` in ``arch/x86/kvm/x86.c``.
    """
    check_instance("vcpu", vcpu, KvmVcpuArch)
    check_instance("mmu", mmu, KvmMmu)
    if mmu is not vcpu.nested_mmu:
        return None
    if not mmu_is_nested(vcpu):
        raise ValueError("translate_nested_gpa: the vCPU is not nested")
    return vcpu.mmu


def emulated_fault_target(vcpu: KvmVcpuArch, nested_page_fault: bool) -> KvmMmu:
    """Context whose ``inject_page_fault`` gets an emulated fault.

    ``mmu`` for a fault from the L1 EPT/NPT walk, else ``walk_mmu``
    (``kvm_inject_emulated_page_fault`` in ``arch/x86/kvm/x86.c``).
    """
    check_instance("vcpu", vcpu, KvmVcpuArch)
    target = vcpu.mmu if nested_page_fault else vcpu.walk_mmu
    assert target is not None
    return target


# ---------------------------------------------------------------------------
# Composite nested transitions
# ---------------------------------------------------------------------------


_HOST_NAME = {"vmx": "a VMX", "svm": "an SVM"}


def _check_step_args(vcpu, vendor, name, **callbacks) -> None:
    # Either layout's struct kvm_vcpu_arch (mmu_split imports this module).
    if type(vcpu).__name__ != "KvmVcpuArch" or not type(vcpu).__module__.startswith("refimpl."):
        raise TypeError(f"vcpu must be a KvmVcpuArch, got {type(vcpu).__name__}")
    check_choice("vendor", vendor, tuple(_HOST_NAME))
    check_instance("name", name, str)
    for k, f in callbacks.items():
        if not callable(f) and not (k == "init" and f is None):
            raise TypeError(f"{k} must be callable, got {type(f).__name__}")


def nested_entry(vcpu, l2_regs: GuestRegs, *, vendor: str, name: str,
                 init: Optional[Callable[[], None]], finish: Callable) -> None:
    """The layout-independent steps of a nested VM entry, for either layout.

    Checks the host vendor and the vCPU's state, saves L1's registers and
    enters guest mode, runs ``init`` (the nested EPT/NPT context setup, or
    nothing without nested TDP) and undoes the entry if it raises, then
    ``finish(vcpu, l2_regs)`` loads L2's registers into the layout's MMU.

    Raises
    ------
    ValueError
        Wrong vendor, already in guest mode, entry from SMM, or ``init``
        rejected its arguments (the vCPU is then left in L1).
    TypeError
        ``l2_regs`` is not a :class:`GuestRegs`; ``vcpu`` is not a
        ``KvmVcpuArch`` of either layout; ``init``/``finish`` not callable.
        Exceptions other than ``ValueError`` from the callbacks propagate.
    """
    _check_step_args(vcpu, vendor, name, finish=finish, init=init)
    if vcpu.host.vendor != vendor:
        raise ValueError(f"{name} needs {_HOST_NAME[vendor]} host")
    if vcpu.guest_mode:
        raise ValueError("nested entry: the vCPU is already in guest mode")
    if not isinstance(l2_regs, GuestRegs):
        raise TypeError(f"l2_regs must be GuestRegs, got {l2_regs!r}")
    if vcpu.regs.smm:
        raise ValueError("nested entry from SMM is not modelled")
    vcpu.l1_regs, vcpu.guest_mode = vcpu.regs, True  # enter_guest_mode()
    if init is not None:
        try:
            init()
        except ValueError:
            vcpu.guest_mode, vcpu.l1_regs = False, None
            raise
    finish(vcpu, l2_regs)


def nested_exit(vcpu, *, vendor: str, name: str, uninit: Callable, finish: Callable) -> None:
    """The layout-independent steps of a nested VM exit, for either layout.

    Leaves guest mode, runs ``uninit(vcpu)`` (the layout's nested EPT/NPT
    teardown) and ``finish(vcpu, l1_regs)`` with L1's saved registers.

    Raises
    ------
    ValueError
        Wrong vendor, or the vCPU is not running L2.
    TypeError
        As :func:`nested_entry`.
    """
    _check_step_args(vcpu, vendor, name, finish=finish, uninit=uninit)
    if vcpu.host.vendor != vendor:
        raise ValueError(f"{name} needs {_HOST_NAME[vendor]} host")
    if not vcpu.guest_mode or vcpu.l1_regs is None:
        raise ValueError(f"{name}: the vCPU is not in guest mode")
    vcpu.guest_mode = False  # leave_guest_mode()
    uninit(vcpu)
    l1, vcpu.l1_regs = vcpu.l1_regs, None
    finish(vcpu, l1)


def _finish(vcpu: KvmVcpuArch, regs: GuestRegs) -> None:
    vcpu.regs = regs
    kvm_init_mmu(vcpu)  # via nested_vmx_load_cr3 / nested_svm_load_cr3
    kvm_mmu_load(vcpu)


def nested_vmx_vmentry(vcpu: KvmVcpuArch, l2_regs: GuestRegs, *, ept: bool,
                       eptp: int = 0x1E, execonly: bool = True) -> None:
    """VMLAUNCH/VMRESUME of L2 as far as the MMU sees it.

    Enter guest mode; with EPT in vmcs12 call
    :func:`nested_ept_init_mmu_context`; load L2's registers; ``kvm_init_mmu``.

    KVM
    ---
    ``nested_vmx_enter_non_root_mode``, ``prepare_vmcs02``,
    ``nested_vmx_load_cr3`` in ``arch/x86/kvm/vmx/nested.c``.
    """
    eptp = check_int("eptp", eptp)
    check_instance("vcpu", vcpu, KvmVcpuArch)
    init = (lambda: nested_ept_init_mmu_context(vcpu, eptp, execonly)) if ept else None
    nested_entry(vcpu, l2_regs, vendor="vmx", name="nested_vmx_vmentry", init=init,
                 finish=_finish)


def nested_vmx_vmexit(vcpu: KvmVcpuArch) -> None:
    """Nested VM-exit to L1: uninit nested EPT, reload L1's registers.

    Raises
    ------
    ValueError
        The vCPU is not running L2.

    KVM
    ---
    ``nested_vmx_vmexit`` and ``load_vmcs12_host_state`` in
    ``arch/x86/kvm/vmx/nested.c``.
    """
    check_instance("vcpu", vcpu, KvmVcpuArch)
    nested_exit(vcpu, vendor="vmx", name="nested_vmx_vmexit", uninit=nested_ept_uninit_mmu_context, finish=_finish)


def nested_svm_vmrun(vcpu: KvmVcpuArch, l2_regs: GuestRegs, *, npt: bool,
                     ncr3: int = 0x7000) -> None:
    """VMRUN of L2 as far as the MMU sees it.

    KVM
    ---
    ``enter_svm_guest_mode``, ``nested_svm_init_mmu_context``,
    ``nested_svm_load_cr3`` in ``arch/x86/kvm/svm/nested.c``.
    """
    ncr3 = check_int("ncr3", ncr3)
    check_instance("vcpu", vcpu, KvmVcpuArch)
    init = (lambda: nested_svm_init_mmu_context(vcpu, ncr3)) if npt else None
    nested_entry(vcpu, l2_regs, vendor="svm", name="nested_svm_vmrun", init=init,
                 finish=_finish)


def nested_svm_vmexit(vcpu: KvmVcpuArch) -> None:
    """#VMEXIT to L1: uninit nested NPT, reload L1's registers.

    Raises
    ------
    ValueError
        The vCPU is not running L2.

    KVM
    ---
    ``nested_svm_vmexit`` in ``arch/x86/kvm/svm/nested.c``.
    """
    check_instance("vcpu", vcpu, KvmVcpuArch)
    nested_exit(vcpu, vendor="svm", name="nested_svm_vmexit", uninit=nested_svm_uninit_mmu_context, finish=_finish)


# ---------------------------------------------------------------------------
# Named configurations
# ---------------------------------------------------------------------------

L1_REGS = GuestRegs(cr0=CR0_PG | CR0_WP | 1, cr3=0x1000, cr4=CR4_PAE,
                    efer=EFER_LME | EFER_LMA | EFER_NX)
"""L1 in the configurations: 4-level paging, CR0.WP=1, EFER.NX=1."""

L2_REGS = GuestRegs(cr0=CR0_PG | CR0_WP | 1, cr3=0x5000, cr4=CR4_PAE, efer=EFER_NX)
"""L2 in the configurations: 32-bit PAE paging (so its role differs from L1's)."""

EPTP12 = 0x9000 | (3 << 3) | (1 << 6) | 6
"""EPTP12 of the nested-EPT configuration: 4-level, A/D on, write-back."""

NCR3 = 0xA000
"""nCR3 of the nested-NPT configuration."""

CONFIGURATIONS: dict[str, str] = {
    "shadow": "shadow paging (no TDP on the host), L1 running",
    "tdp": "TDP on the host, L1 running",
    "vmx_ept": "nested VMX, L1 uses EPT, L2 running",
    "vmx_noept": "nested VMX, L1 without EPT, L2 running",
    "svm_npt": "nested SVM, L1 uses NPT, L2 running",
    "svm_nonpt": "nested SVM, L1 without NPT, L2 running",
    "after_exit": "nested VMX with EPT, back in L1 after the nested VM-exit",
}
"""Key and one-line description of each named configuration."""


def run_configurations(create, set_regs, vmx_vmentry, svm_vmrun, vmx_vmexit) -> dict:
    """Build every configuration of :data:`CONFIGURATIONS` with a layout's transitions.

    Both layouts (this module and :mod:`refimpl.layouts.split`) go through the
    same steps, so that their configurations can be compared key by key: a
    fresh vCPU from ``create(host)``, L1's registers :data:`L1_REGS`, then
    entry into L2 with :data:`L2_REGS` (and, for ``after_exit``, the exit).

    Parameters
    ----------
    create : callable
        ``create(host)`` returns a fresh vCPU of the layout.
    set_regs, vmx_vmentry, svm_vmrun, vmx_vmexit : callable
        The layout's transitions, with the signatures of this module's
        :func:`set_regs`, :func:`nested_vmx_vmentry`, :func:`nested_svm_vmrun`
        and :func:`nested_vmx_vmexit`.
    """
    out = {}
    for key in CONFIGURATIONS:
        vendor = "svm" if key.startswith("svm") else "vmx"
        vcpu = create(Host(tdp_enabled=key != "shadow", vendor=vendor))
        set_regs(vcpu, L1_REGS)
        if key in ("vmx_ept", "after_exit"):
            vmx_vmentry(vcpu, L2_REGS, ept=True, eptp=EPTP12)
        elif key == "vmx_noept":
            vmx_vmentry(vcpu, L2_REGS, ept=False)
        elif key == "svm_npt":
            svm_vmrun(vcpu, L2_REGS, npt=True, ncr3=NCR3)
        elif key == "svm_nonpt":
            svm_vmrun(vcpu, L2_REGS, npt=False)
        if key == "after_exit":
            vmx_vmexit(vcpu)
        out[key] = vcpu
    return out


def configurations() -> dict[str, KvmVcpuArch]:
    """Each configuration of :data:`CONFIGURATIONS`, built by running the transitions.

    Every vCPU starts from :func:`kvm_mmu_create`, loads :data:`L1_REGS`
    and then enters (and for ``after_exit`` leaves) L2 with :data:`L2_REGS`
    (see :func:`run_configurations`).
    """
    return run_configurations(kvm_mmu_create, set_regs, nested_vmx_vmentry,
                              nested_svm_vmrun, nested_vmx_vmexit)


def pointer_table(vcpu: KvmVcpuArch) -> dict[str, object]:
    """Which structure each pointer designates and which callbacks are set.

    Returns
    -------
    dict
        ``{"mmu": name, "walk_mmu": name, "root_mmu": {...},
        "guest_mmu": {...}, "nested_mmu": {...}}`` where each structure maps
        every callback of :data:`CALLBACKS` to a C function name or ``None``.
    """
    check_instance("vcpu", vcpu, KvmVcpuArch)
    out: dict[str, object] = {
        "mmu": vcpu.name_of(vcpu.mmu),
        "walk_mmu": vcpu.name_of(vcpu.walk_mmu),
    }
    for name in MMU_STRUCTS:
        m = getattr(vcpu, name)
        out[name] = {cb: getattr(m, cb) for cb in CALLBACKS}
    return out


def pointer_table_markdown(configs: dict[str, KvmVcpuArch]) -> str:
    """One row per configuration: targets of ``mmu``/``walk_mmu`` and the fault handlers.

    Raises
    ------
    TypeError
        ``configs`` not a dict of :class:`KvmVcpuArch`.
    """
    check_instance("configs", configs, dict)
    check_items("configs values", configs.values(), KvmVcpuArch)
    lines = ["| configuration | `mmu` | `walk_mmu` | `root_mmu.page_fault` | "
             "`guest_mmu.page_fault` | `nested_mmu.gva_to_gpa` |",
             "|---|---|---|---|---|---|"]
    for key, vcpu in configs.items():
        t = pointer_table(vcpu)
        cell = lambda s: f"`{s}`" if s else "NULL"  # noqa: E731
        lines.append(
            f"| {CONFIGURATIONS.get(key, key)} | `{t['mmu']}` | `{t['walk_mmu']}` | "
            f"{cell(t['root_mmu']['page_fault'])} | {cell(t['guest_mmu']['page_fault'])} | "
            f"{cell(t['nested_mmu']['gva_to_gpa'])} |")
    return "\n".join(lines)
