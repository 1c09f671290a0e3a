"""Today's ``struct kvm_mmu`` and the vCPU's five MMU pointers.

This module models the *layout* KVM has used since the 2022 role series and
the sync_spte rename (c3c6c9fc5d24) (``struct kvm_mmu``
in ``arch/x86/include/asm/kvm_host.h``, torvalds/linux at 004a0aa56ede): which ``struct kvm_mmu`` instances a vCPU owns,
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
* The structures are declared once, in :mod:`refimpl.layouts.structs`
  (step 0 of the refactoring), and the transitions are those of
  :class:`refimpl.layouts.steps.step0_legacy.Legacy`, with the CR0 rule KVM
  adopted in 2023 (the refactoring's last step, :meth:`Today.set_cr0`). The
  functions below are one-line views of those methods, so that chapters can
  call KVM's function names on a vCPU.
* Pointers are Python references: ``vcpu.mmu is vcpu.guest_mmu`` means "mmu
  points to guest_mmu". Structures are therefore mutable and compared by
  identity; transitions mutate the vCPU in place, as the C functions do.
* The derived tables (``permissions``, ``pkru_mask``, ``guest_rsvd_check``,
  ``shadow_zero_check``) are stored as :class:`Derived` records of the C
  function that fills them and its inputs, not as the computed masks (that is
  the job of the walker modules). Two records are equal exactly when KVM
  would compute the same table, which is what sharing questions need.
* Roots are pages of the VM, handed out on first use by key: TDP roots by
  role, shadow roots by role and guest gfn (:func:`root_page` names the key
  of a root), as KVM shares roots between vCPUs.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Optional

from refimpl.errors import check_bool, check_bugs, check_instance, check_int, check_items
from refimpl.host.kvm_mmu import INVALID_ROOT, RootInfo
from refimpl.host.roles import CR0_PG, CR0_WP, CpuRole
from refimpl.layouts.model import (
    CONFIGURATIONS, CR0_ROLE_BITS, EPTP12, KVM_MMU_NUM_PREV_ROOTS, L1_REGS, L2_REGS, NCR3,
    WALK_HALF, Derived, GuestRegs, Host, ept_paging_metadata, ept_shadow_zero_check,
    guest_paging_metadata, nested_entry, nested_exit, run_configurations,
    shadow_zero_check_x86, tdp_shadow_zero_check,
)
from refimpl.layouts.steps.step0_legacy import KvmMmu, KvmVcpuArch, Legacy, Vm
from refimpl.layouts.steps.step8_cr0wp_no_reset import Cr0WpNoReset
from refimpl.layouts.structs import struct_at

__all__ = [
    "KVM_MMU_NUM_PREV_ROOTS", "Derived", "INVALID_ROOT", "Host", "GuestRegs",
    "KvmMmu", "KvmVcpuArch", "Vm", "Today", "MMU_STRUCTS", "VCPU_MEMBERS", "members_markdown",
    "CALLBACKS", "PURPOSE", "fields_by_purpose", "guest_paging_metadata",
    "tdp_shadow_zero_check", "shadow_zero_check_x86", "ept_shadow_zero_check",
    "kvm_mmu_create", "kvm_init_mmu", "init_kvm_tdp_mmu", "init_kvm_softmmu",
    "init_kvm_nested_mmu", "kvm_init_shadow_ept_mmu", "kvm_init_shadow_npt_mmu",
    "kvm_mmu_load", "kvm_mmu_unload", "kvm_mmu_reset_context", "set_regs", "mmu_is_nested",
    "kvm_translate_gpa", "emulated_fault_target", "root_page", "run_configurations",
    "nested_entry", "nested_exit", "CR0_ROLE_BITS", "WALK_HALF", "ept_paging_metadata",
    "kvm_set_cr0", "BUGS", "vmx_guest_owned_cr0_wp_write", "kvm_mmu_refresh_passthrough_bits",
    "emulated_permission_check", "nested_ept_init_mmu_context", "nested_ept_uninit_mmu_context",
    "nested_svm_init_mmu_context", "nested_svm_uninit_mmu_context", "nested_vmx_vmentry",
    "nested_vmx_vmexit", "nested_svm_vmrun", "nested_svm_vmexit", "L1_REGS", "L2_REGS",
    "EPTP12", "NCR3", "CONFIGURATIONS", "configurations", "pointer_table",
    "pointer_table_markdown",
]


class Today(Legacy):
    """Today's layout: step 0's structures and transitions with the 2023 CR0 rule.

    KVM
    ---
    ``kvm_post_set_cr0`` in ``arch/x86/kvm/x86.c`` since commit 01b31714bd90
    (v6.4): a CR0 write that toggles only WP with TDP re-initialises the
    walk metadata and keeps the roots.
    """

    name = "today"
    set_cr0 = Cr0WpNoReset.set_cr0


_TODAY = Today()

#: The named configurations (key -> one-line description), shared by every
#: layout; defined in :mod:`refimpl.layouts.model`.
CONFIGURATIONS = CONFIGURATIONS
#: L1's registers in the configurations (:data:`refimpl.layouts.model.L1_REGS`).
L1_REGS = L1_REGS
#: L2's registers in the configurations (:data:`refimpl.layouts.model.L2_REGS`).
L2_REGS = L2_REGS

_STRUCT = struct_at(0, "kvm_mmu")
_VCPU = struct_at(0, "kvm_vcpu_arch")

CALLBACKS = tuple(f.name for f in _STRUCT.fields if "(*{})" in f.decl)
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


MMU_STRUCTS = tuple(f.name for f in _VCPU.fields if f.embeds == "kvm_mmu")
"""The ``struct kvm_mmu`` instances embedded in ``struct kvm_vcpu_arch``."""

VCPU_MEMBERS: tuple[tuple[str, str, str], ...] = tuple(
    (f.name, "pointer" if f.pointer else "structure", f.note) for f in _VCPU.fields)
"""The MMU members of ``struct kvm_vcpu_arch``: (name, structure or pointer, job)."""


# ---------------------------------------------------------------------------
# KVM's functions, on today's layout (each one is a method of the step)
# ---------------------------------------------------------------------------


def kvm_mmu_create(host: Host = Host()) -> KvmVcpuArch:
    """A fresh vCPU in its own VM: three empty ``kvm_mmu``, ``mmu = walk_mmu = &root_mmu``.

    KVM
    ---
    ``kvm_mmu_create`` and ``__kvm_mmu_create`` in ``arch/x86/kvm/mmu/mmu.c``.
    """
    return _TODAY.create_vcpu(_TODAY.create_vm(host))


def mmu_is_nested(vcpu: KvmVcpuArch) -> bool:
    """``walk_mmu == &nested_mmu`` (``mmu_is_nested`` in ``arch/x86/kvm/x86.h``)."""
    return _TODAY.mmu_is_nested(vcpu)


def kvm_init_mmu(vcpu: KvmVcpuArch) -> None:
    """(Re)configure the MMU from the current registers: the nested walk, else
    TDP, else shadow (``kvm_init_mmu`` in ``arch/x86/kvm/mmu/mmu.c``)."""
    _TODAY.kvm_init_mmu(vcpu)


def init_kvm_tdp_mmu(vcpu: KvmVcpuArch, cpu_role: CpuRole) -> None:
    """Configure ``root_mmu`` for TDP (``init_kvm_tdp_mmu``, ``mmu.c``)."""
    _TODAY.init_kvm_tdp_mmu(vcpu, cpu_role)


def init_kvm_softmmu(vcpu: KvmVcpuArch, cpu_role: CpuRole) -> None:
    """Configure ``root_mmu`` for shadow paging (``init_kvm_softmmu``, ``mmu.c``)."""
    _TODAY.init_kvm_softmmu(vcpu, cpu_role)


def init_kvm_nested_mmu(vcpu: KvmVcpuArch, cpu_role: CpuRole) -> None:
    """Configure ``nested_mmu`` to walk L2's tables (``init_kvm_nested_mmu``):
    only its walk half; ``page_fault``, the roots and ``root_role`` stay empty."""
    _TODAY.init_kvm_nested_mmu(vcpu, cpu_role)


def kvm_init_shadow_ept_mmu(vcpu: KvmVcpuArch, execonly: bool, accessed_dirty: bool,
                            eptp: int) -> None:
    """Configure ``guest_mmu`` to shadow L1's EPT (``kvm_init_shadow_ept_mmu``)."""
    _TODAY.kvm_init_shadow_ept_mmu(vcpu, execonly, accessed_dirty, eptp)


def kvm_init_shadow_npt_mmu(vcpu: KvmVcpuArch, cr4: int, efer: int, ncr3: int) -> None:
    """Configure ``guest_mmu`` to shadow L1's NPT (``kvm_init_shadow_npt_mmu``)."""
    _TODAY.kvm_init_shadow_npt_mmu(vcpu, cr4, efer, ncr3)


def nested_ept_init_mmu_context(vcpu: KvmVcpuArch, eptp: int, execonly: bool = True) -> None:
    """Point ``mmu`` at ``guest_mmu`` (shadow EPT12) and ``walk_mmu`` at ``nested_mmu``.

    Raises
    ------
    ValueError
        Already nested, not in guest mode, not a VMX host with EPT, or an
        EPTP whose bits 5:3 are neither 3 nor 4.

    KVM
    ---
    ``nested_ept_init_mmu_context`` in ``arch/x86/kvm/vmx/nested.c``.
    """
    _TODAY.nested_ept_init_mmu_context(vcpu, eptp, execonly)


def nested_ept_uninit_mmu_context(vcpu: KvmVcpuArch) -> None:
    """``mmu = walk_mmu = &root_mmu`` (``nested_ept_uninit_mmu_context``, VMX)."""
    _TODAY.nested_tdp_uninit_mmu_context(vcpu)


def nested_svm_init_mmu_context(vcpu: KvmVcpuArch, ncr3: int) -> None:
    """Point ``mmu`` at ``guest_mmu`` (shadow NPT12, in L1's CR4/EFER format)
    and ``walk_mmu`` at ``nested_mmu``.

    Raises
    ------
    ValueError
        Already nested, not in guest mode, or not an SVM host with NPT.

    KVM
    ---
    ``nested_svm_init_mmu_context`` in ``arch/x86/kvm/svm/nested.c``.
    """
    _TODAY.nested_svm_init_mmu_context(vcpu, ncr3)


def nested_svm_uninit_mmu_context(vcpu: KvmVcpuArch) -> None:
    """``mmu = walk_mmu = &root_mmu`` (``nested_svm_uninit_mmu_context``, SVM)."""
    _TODAY.nested_tdp_uninit_mmu_context(vcpu)


def kvm_mmu_load(vcpu: KvmVcpuArch) -> None:
    """Give ``vcpu.mmu`` a root, as before entering the guest.

    KVM
    ---
    ``kvm_mmu_load``, ``mmu_alloc_special_roots``, ``mmu_alloc_direct_roots``,
    ``mmu_alloc_shadow_roots`` in ``arch/x86/kvm/mmu/mmu.c``.
    """
    _TODAY.kvm_mmu_load(vcpu)


def kvm_mmu_unload(vcpu: KvmVcpuArch) -> None:
    """Free the roots of ``root_mmu`` and ``guest_mmu`` (``kvm_mmu_unload``)."""
    _TODAY.kvm_mmu_unload(vcpu)


def kvm_mmu_reset_context(vcpu: KvmVcpuArch) -> None:
    """Unload every root and re-init (``kvm_mmu_reset_context``, ``mmu.c``);
    counts in ``vcpu.resets``."""
    _TODAY.kvm_mmu_reset_context(vcpu)


def set_regs(vcpu: KvmVcpuArch, regs: GuestRegs) -> None:
    """Load new CR0/CR3/CR4/EFER/SMM, reset the MMU context and load a root.

    Stands for the register writes (``kvm_set_cr0`` & co., ``kvm_smm_changed``)
    that end in ``kvm_mmu_reset_context`` (``arch/x86/kvm/x86.c``).
    """
    _TODAY.set_regs(vcpu, regs)


def kvm_set_cr0(vcpu: KvmVcpuArch, cr0: int) -> None:
    """A guest write to CR0, and what it costs the MMU (the 2023 rule).

    When CR0.WP is the only bit that changed, paging is on and TDP is in use,
    the roots cannot depend on WP (a TDP root role has ``cr0_wp=1`` whatever
    the guest does), so KVM only recomputes the guest-walk metadata
    (``kvm_init_mmu``) and every root stays loaded. With shadow paging WP is
    part of the shadow pages' role, so the context is reset. Any change of a
    role bit other than WP resets it too.

    Raises
    ------
    ValueError
        If ``cr0`` with the current CR4/EFER is not a state a CPU can be in.

    KVM
    ---
    ``kvm_post_set_cr0`` in ``arch/x86/kvm/x86.c`` (commit 01b31714bd90,
    v6.4).
    """
    _TODAY.set_cr0(vcpu, cr0)


def kvm_translate_gpa(vcpu: KvmVcpuArch, mmu: KvmMmu) -> Optional[KvmMmu]:
    """Which context translates a GPA produced by a walk with ``mmu``: None when
    it is already an L1 GPA; for ``nested_mmu``, ``vcpu.mmu`` (its EPT12/NPT12
    walker).

    KVM
    ---
    ``kvm_translate_gpa`` in ``arch/x86/kvm/mmu.h`` and
    ``translate_nested_gpa`` in ``arch/x86/kvm/x86.c``.
    """
    return _TODAY.kvm_translate_gpa(vcpu, mmu)


def emulated_fault_target(vcpu: KvmVcpuArch, nested_page_fault: bool) -> KvmMmu:
    """Context whose ``inject_page_fault`` gets an emulated fault: ``mmu`` for
    a fault from the L1 EPT/NPT walk, else ``walk_mmu``
    (``kvm_inject_emulated_page_fault`` in ``arch/x86/kvm/x86.c``)."""
    return _TODAY.emulated_fault_target(vcpu, nested_page_fault)


def root_page(vcpu: KvmVcpuArch, root: RootInfo) -> tuple:
    """The key a root page of ``vcpu``'s VM was allocated for:
    ``(role word, None)`` for a TDP root, ``(role word, guest gfn)`` for a
    shadow root.

    Raises
    ------
    ValueError
        ``root`` is not a page of the VM (for instance ``INVALID_ROOT``).
    """
    check_instance("vcpu", vcpu, KvmVcpuArch)
    check_instance("root", root, RootInfo)
    for key, hpa in vcpu.kvm.root_pages.items():
        if hpa == root.hpa:
            return key
    raise ValueError(f"root {root} is not a root page of this VM")


def nested_vmx_vmentry(vcpu: KvmVcpuArch, l2_regs: GuestRegs, *, ept: bool,
                       eptp: int = 0x1E, execonly: bool = True) -> None:
    """VMLAUNCH/VMRESUME of L2 as far as the MMU sees it.

    KVM
    ---
    ``nested_vmx_enter_non_root_mode``, ``prepare_vmcs02``,
    ``nested_vmx_load_cr3`` in ``arch/x86/kvm/vmx/nested.c``.
    """
    _TODAY.vmx_vmentry(vcpu, l2_regs, ept=ept, eptp=eptp, execonly=execonly)


def nested_vmx_vmexit(vcpu: KvmVcpuArch) -> None:
    """Nested VM-exit to L1 (``nested_vmx_vmexit`` in ``arch/x86/kvm/vmx/nested.c``);
    ValueError when the vCPU is not running L2."""
    _TODAY.vmx_vmexit(vcpu)


def nested_svm_vmrun(vcpu: KvmVcpuArch, l2_regs: GuestRegs, *, npt: bool,
                     ncr3: int = 0x7000) -> None:
    """VMRUN of L2 as far as the MMU sees it.

    KVM
    ---
    ``enter_svm_guest_mode``, ``nested_svm_init_mmu_context``,
    ``nested_svm_load_cr3`` in ``arch/x86/kvm/svm/nested.c``.
    """
    _TODAY.svm_vmrun(vcpu, l2_regs, npt=npt, ncr3=ncr3)


def nested_svm_vmexit(vcpu: KvmVcpuArch) -> None:
    """#VMEXIT to L1 (``nested_svm_vmexit`` in ``arch/x86/kvm/svm/nested.c``);
    ValueError when the vCPU is not running L2."""
    _TODAY.svm_vmexit(vcpu)


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



def configurations() -> dict[str, KvmVcpuArch]:
    """Each configuration of :data:`refimpl.layouts.legacy.CONFIGURATIONS`, built by
    running the transitions.

    Every vCPU starts from :func:`kvm_mmu_create`, loads
    :data:`refimpl.layouts.legacy.L1_REGS` and then enters (and for
    ``after_exit`` leaves) L2 with :data:`refimpl.layouts.legacy.L2_REGS` (see
    :func:`refimpl.layouts.model.run_configurations`).
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
