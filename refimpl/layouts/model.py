"""The layout-independent parts of the MMU layouts: host, registers, derived tables.

Every layout of :mod:`refimpl.layouts` (today's, each refactoring step, the
2021 sketch) runs on the same host configuration (:class:`Host`), loads the
same guest registers (:class:`GuestRegs`), and fills its guest-walk and
zero-bit tables with the same KVM functions, recorded as :class:`Derived`
values. The named configurations (:data:`CONFIGURATIONS`) and the nested
entry/exit bookkeeping are here too, so that every layout builds them the
same way.

Glossary
--------
derived table
    A table KVM computes from a few inputs (the permission bitmap, reserved
    bits, the SPTE zero-bit check), stored here as the C function and its
    inputs (:class:`Derived`): two records are equal exactly when KVM would
    compute the same table.

KVM
---
``arch/x86/kvm/mmu/mmu.c`` (``reset_guest_paging_metadata``,
``reset_tdp_shadow_zero_bits_mask``, ``reset_shadow_zero_bits_mask``,
``reset_ept_shadow_zero_bits_mask``); ``arch/x86/kvm/x86.c`` (the register
writes); ``arch/x86/kvm/vmx/nested.c`` and ``arch/x86/kvm/svm/nested.c``
(nested entry and exit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from refimpl.errors import UnknownName, check_bool, check_choice, check_fields, check_instance, check_int
from refimpl.host.kvm_mmu import INVALID_ROOT, RootInfo
from refimpl.host.roles import (
    CR0_PG, CR0_WP, CR4_PAE, EFER_LMA, EFER_LME, EFER_NX,
    PT64_ROOT_4LEVEL, PT64_ROOT_5LEVEL, CpuRole, PageRole, calc_cpu_role,
)

__all__ = [
    "KVM_MMU_NUM_PREV_ROOTS", "Derived", "INVALID_ROOT", "prev_roots", "Host",
    "GuestRegs", "WALK_HALF", "guest_paging_metadata", "ept_paging_metadata",
    "tdp_shadow_zero_check", "shadow_zero_check_x86", "ept_shadow_zero_check", "walker_name",
    "CR0_ROLE_BITS", "nested_entry", "nested_exit", "L1_REGS", "L2_REGS", "EPTP12", "NCR3",
    "CONFIGURATIONS", "run_configurations",
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
class Host:
    """Host and VM configuration the MMU depends on.

    Parameters
    ----------
    tdp_enabled : bool
        EPT/NPT in use (``tdp_enabled``); otherwise shadow paging.
    vendor : str
        ``"vmx"`` (Intel: TDP is EPT) or ``"svm"`` (AMD: TDP is NPT). The
        guest's CPUID vendor is taken to be the host's: it is what
        ``guest_cpuid_is_amd_compatible`` reads for the guest's reserved bits.
    tdp_level : int
        Levels of KVM's TDP tables, 4 or 5 (``kvm_mmu_get_tdp_level``).
    ad_enabled : bool
        Hardware A/D bits used in TDP tables (``kvm_ad_enabled``).
    host_maxphyaddr : int
        Host physical-address width (``reserved_hpa_bits``).
    guest_maxphyaddr : int
        Guest physical-address width (``reserved_gpa_bits``, from CPUID).
    gbpages : bool
        The host has 1 GiB pages and offers them to the guest: it stands for
        both ``boot_cpu_has(X86_FEATURE_GBPAGES)`` (the TDP zero checks) and
        the guest's CPUID bit (the guest's reserved bits and the shadow zero
        check); for EPT it also sets ``max_huge_page_level`` (1 GiB or 2 MiB).
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


def prev_roots() -> tuple[RootInfo, ...]:
    """A fresh ``prev_roots`` array: every entry ``KVM_MMU_ROOT_INFO_INVALID``."""
    return (INVALID_ROOT,) * KVM_MMU_NUM_PREV_ROOTS


#: The guest-walk half of a ``kvm_mmu``: what :func:`guest_paging_metadata`
#: reads and fills, in a ``kvm_mmu`` or a ``kvm_paging_context``.
WALK_HALF = ("cpu_role", "guest_rsvd_check", "permissions", "pkru_mask")


def _check_walk_half(mmu: object) -> None:
    missing = [a for a in WALK_HALF if not hasattr(mmu, a)]
    if missing:
        raise TypeError(f"mmu must be a kvm_mmu or kvm_paging_context, got "
                        f"{type(mmu).__name__} (no {', '.join(missing)})")


def guest_paging_metadata(mmu, host: Host) -> None:
    """Fill the guest-walk tables of ``mmu`` from its ``cpu_role``.

    Does nothing when paging is off, like KVM (the old tables stay).

    Parameters
    ----------
    mmu : refimpl.layouts.legacy.KvmMmu or refimpl.layouts.split.KvmPagingContext
        Any structure with the guest-walk half (:data:`refimpl.layouts.model.WALK_HALF`).
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


def ept_paging_metadata(mmu, host: Host, execonly: bool) -> None:
    """Fill the guest-walk tables of a context that walks L1's EPT tables.

    EPT entries have no U/S, WP, SMEP or SMAP and no protection keys, so the
    permission bitmap is the EPT one and the PKRU mask is 0; reserved bits
    follow the EPT rules for the guest's MAXPHYADDR and whether execute-only
    pages exist.

    Parameters
    ----------
    mmu : refimpl.layouts.legacy.KvmMmu or refimpl.layouts.split.KvmPagingContext
        Any structure with the guest-walk half (:data:`refimpl.layouts.model.WALK_HALF`).
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
            ("level", level), ("execonly", False),
            ("huge_page_level", 3 if host.gbpages else 2)))
    return Derived("reset_tdp_shadow_zero_bits_mask", (
        ("format", "x86"), ("maxphyaddr", host.host_maxphyaddr), ("level", level),
        ("nx", 1), ("gbpages", host.gbpages), ("pse", False)))


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
        ("execonly", bool(execonly)), ("huge_page_level", 3 if host.gbpages else 2)))


def walker_name(role: CpuRole) -> str:
    """The prefix of the walker KVM uses for ``role``: ``nonpaging``, ``paging32`` or ``paging64``."""
    check_instance("role", role, CpuRole)
    if not role.paging:
        return "nonpaging"
    return "paging32" if role.base.has_4_byte_gpte else "paging64"


# ---------------------------------------------------------------------------
# Transitions
# ---------------------------------------------------------------------------


#: CR0 bits that are inputs of the MMU roles (``KVM_MMU_CR0_ROLE_BITS``).
CR0_ROLE_BITS = CR0_PG | CR0_WP
_HOST_NAME = {"vmx": "a VMX", "svm": "an SVM"}


def _check_step_args(vcpu, vendor, name, **callbacks) -> None:
    # The struct kvm_vcpu_arch of any step (each step has its own class).
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
    """Build every configuration of :data:`refimpl.layouts.model.CONFIGURATIONS` with a layout's transitions.

    Every layout (:mod:`refimpl.layouts.legacy`, each step, :mod:`refimpl.layouts.split`)
    goes through the same transitions, so that configurations can be compared key by key: a
    fresh vCPU from ``create(host)``, L1's registers
    :data:`refimpl.layouts.model.L1_REGS`, then entry into L2 with
    :data:`refimpl.layouts.model.L2_REGS` (and, for ``after_exit``, the exit).

    Parameters
    ----------
    create : callable
        ``create(host)`` returns a fresh vCPU of the layout.
    set_regs, vmx_vmentry, svm_vmrun, vmx_vmexit : callable
        The layout's transitions, with the signatures of
        :func:`refimpl.layouts.legacy.set_regs`,
        :func:`refimpl.layouts.legacy.nested_vmx_vmentry`,
        :func:`refimpl.layouts.legacy.nested_svm_vmrun` and
        :func:`refimpl.layouts.legacy.nested_vmx_vmexit`.
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

