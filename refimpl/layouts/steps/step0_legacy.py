"""Step 0: today's layout, with the 2021 CR0.WP rule.

The structures are those of :mod:`refimpl.layouts.legacy` (``root_mmu``,
``guest_mmu``, ``nested_mmu`` and the ``mmu``/``walk_mmu`` pointers); the
transitions are the same C functions, written as methods so that each later
step can replace exactly the ones it changes. They reach the parts of a
``kvm_mmu`` through five one-line accessors, each standing for one C
expression:

========================  ===================  =============================
accessor                  here (step 0)        meaning
========================  ===================  =============================
``walk_of(m)``            ``m``                the walk half of MMU ``m``
``kind_of(m)``            ``m``                the table half of MMU ``m``
``tdp12(vcpu)``           ``&guest_mmu``       MMU shadowing L1's EPT/NPT
``walk12(vcpu)``          ``&nested_mmu``      context walking L2's tables
``root_walk(vcpu)``       ``&root_mmu``        context walking root_mmu's guest
``get_walk/set_walk``     ``walk_mmu``         the emulation pointer
========================  ===================  =============================

One thing differs from :mod:`refimpl.layouts.legacy`, on purpose: a CR0 write
that changes only WP resets the MMU context, as KVM did in 2021 when the
sketch was written (:meth:`Legacy.set_cr0`); the 2023 rule is the last step
(:mod:`refimpl.layouts.steps.step8_cr0wp_no_reset`).

KVM
---
``arch/x86/kvm/mmu/mmu.c`` (``kvm_init_mmu``, ``init_kvm_tdp_mmu``,
``init_kvm_softmmu``, ``init_kvm_nested_mmu``, ``kvm_init_shadow_ept_mmu``,
``kvm_init_shadow_npt_mmu``, ``kvm_mmu_load``, ``kvm_mmu_reset_context``);
``arch/x86/kvm/x86.c`` (``kvm_post_set_cr0`` before commit 01b31714bd90,
``kvm_post_set_cr4``, ``set_efer``, ``kvm_smm_changed``,
``translate_nested_gpa``); ``arch/x86/kvm/vmx/nested.c`` and
``arch/x86/kvm/svm/nested.c`` (nested MMU contexts).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Optional

from refimpl.errors import check_bool, check_instance, check_range
from refimpl.host.kvm_mmu import INVALID_ROOT, RootInfo
from refimpl.host.roles import (
    CR0_WP, PT32E_ROOT_LEVEL, PT64_ROOT_4LEVEL, PT64_ROOT_5LEVEL,
    CR4_PAE, CR4_PKE, CR4_PSE, CR4_SMAP, CR4_SMEP, EFER_LME, EFER_NX,
    CpuRole, PageRole, calc_cpu_role, calc_shadow_ept_role, calc_shadow_npt_role,
    calc_shadow_root_role, calc_tdp_root_role,
)
from refimpl.host.tdp_mmu import RecoveryStrategy
from refimpl.layouts.model import (
    CR0_ROLE_BITS, EPTP12, NCR3, WALK_HALF, Derived, GuestRegs, Host, ept_paging_metadata,
    ept_shadow_zero_check, guest_paging_metadata, nested_entry, nested_exit, prev_roots,
    shadow_zero_check_x86, tdp_shadow_zero_check, walker_name,
)
from refimpl.layouts.steps.base import Layout, MmuView, WalkView, pgd_source
from refimpl.layouts.structs import py_class

__all__ = ["Legacy", "SpteInputs", "CR4_ROLE_BITS", "EFER_ROLE_BITS"]

KvmMmu = py_class(0, "kvm_mmu")
KvmVcpuArch = py_class(0, "kvm_vcpu_arch")
Vm = py_class(0, "kvm_arch")

#: CR4 bits that are MMU role inputs (``KVM_MMU_CR4_ROLE_BITS``, less PGE/LA57
#: which the workloads never write).
CR4_ROLE_BITS = CR4_PSE | CR4_PAE | CR4_SMEP | CR4_SMAP | CR4_PKE
#: EFER bits that are MMU role inputs (``KVM_MMU_EFER_ROLE_BITS``).
EFER_ROLE_BITS = EFER_LME | EFER_NX

_GFN_LIMIT = 1 << 40  # MAXPHYADDR is at most 52: frame numbers have 40 bits
_U64 = 1 << 64


@lru_cache(maxsize=4096)
def _calc_cpu_role(cr0: int, cr4: int, efer: int, smm: bool, guest_mode: bool) -> CpuRole:
    # calc_cpu_role is pure; the workloads repeat a few register sets.
    return calc_cpu_role(cr0, cr4, efer, smm=smm, guest_mode=guest_mode)


@lru_cache(maxsize=4096)
def _calc_tdp_root_role(cpu_role: CpuRole, level: int, ad: bool):
    return calc_tdp_root_role(cpu_role, level, ad)


@lru_cache(maxsize=4096)
def _role_word(role) -> int:
    return role.word


@lru_cache(maxsize=16384)
def _with(regs: GuestRegs, name: str, value) -> GuestRegs:
    # dataclasses.replace validates the new register state (a CPU could be in it).
    return replace(regs, **{name: value})


_NEEDS_TDP = {"vmx": "nested EPT needs a VMX host with EPT enabled",
              "svm": "nested NPT needs an SVM host with NPT enabled"}


@lru_cache(maxsize=None)
def _structures(step: int) -> tuple[type, type, type]:
    return py_class(step, "kvm_arch"), py_class(step, "kvm_vcpu_arch"), py_class(step, "kvm_mmu")


@dataclass(frozen=True)
class SpteInputs:
    """What ``make_spte`` reads besides its arguments.

    Parameters
    ----------
    source : str
        Where it read them from, as a C expression
        (``"vcpu->arch.mmu"``, ``"kind"``, ``"kvm->arch.direct_mmu"``).
    shadow_zero_check : refimpl.layouts.legacy.Derived or None
        The bits that must be zero in the new SPTE.
    """

    source: str
    shadow_zero_check: Optional[Derived]


class Legacy(Layout):
    """Step 0: ``struct kvm_mmu`` as today, three per vCPU; CR0.WP resets.

    Raises
    ------
    TypeError
        From every method, before anything changes: a ``vcpu`` that is not
        this step's vCPU structure (each step names its own, from
        ``KvmVcpuArch`` of :mod:`refimpl.layouts.legacy` to that of
        :mod:`refimpl.layouts.split`), a ``vm``/``kvm`` or ``m`` of another
        step, a register that is not an int, a flag that is not a bool, a
        role or register set of the wrong class.
    ValueError
        A register outside ``[0, 2**64)`` or that no CPU can hold, a
        ``gfn``/``pfn`` outside ``[0, 2**40)``, a walk context ``w`` that is
        not one of the vCPU's own structures, and transitions the vCPU's
        state does not allow (a nested exit outside guest mode...). A
        nested entry that fails leaves the vCPU in L1, as it was.

    KVM
    ---
    See the module docstring.
    """

    number = 0
    name = "legacy"

    def _types(self) -> tuple[type, type, type]:
        # This step's (struct kvm_arch, struct kvm_vcpu_arch, struct kvm_mmu) classes.
        return _structures(self.number)

    def _vcpu(self, vcpu):
        # A vCPU of this step's struct kvm_vcpu_arch.
        return check_instance("vcpu", vcpu, self._types()[1])

    def _kind_args(self, k, host: Host, level: int) -> None:
        # A table half (kvm_mmu before step 3, kvm_mmu_kind after), a host, a level.
        check_instance("k", k, (KvmMmu, py_class(2, "kvm_mmu"), py_class(3, "kvm_mmu_kind")))
        check_instance("host", host, Host)
        check_range("level", level, PT64_ROOT_4LEVEL, PT64_ROOT_5LEVEL + 1)

    def _member(self, vcpu, name: str, obj):
        # One of vcpu's own structures (or its VM's direct kind).
        try:
            vcpu.name_of(obj)
        except ValueError:
            raise ValueError(f"{name} must be a structure of this vCPU, "
                             f"got {type(obj).__name__}") from None
        return obj

    # -- structures ---------------------------------------------------------

    def create_vm(self, host: Host):
        """A VM (``kvm_arch_init_vm``): no MMU state lives in ``struct kvm_arch`` yet."""
        if not isinstance(host, Host):
            raise TypeError(f"host must be a Host, got {host!r}")
        return self._types()[0](host)

    def create_vcpu(self, kvm):
        """``kvm_mmu_create``: the vCPU's structures, ``mmu`` on ``root_mmu`` and
        the walk pointer on the root walk.

        ``pae_root`` is allocated for ``root_mmu`` and the MMU that shadows
        L1's EPT/NPT unless the host uses TDP with more than 3 levels (and
        never for the latter without TDP).
        """
        check_instance("kvm", kvm, self._types()[0])
        v = self._types()[1](kvm)
        self.connect(v)
        host = kvm.host
        needs_pae = not (host.tdp_enabled and host.tdp_level > PT32E_ROOT_LEVEL)
        v.root_mmu.pae_root = needs_pae
        self.tdp12(v).pae_root = needs_pae and host.tdp_enabled
        v.mmu = v.root_mmu
        self.set_walk(v, self.root_walk(v))
        kvm.vcpus.append(v)
        return v

    def connect(self, vcpu) -> None:
        """Point the new vCPU's structures at each other: none to point yet."""
        self._vcpu(vcpu)

    # -- accessors: one C expression each -----------------------------------

    def walk_of(self, m):
        """The walk half of MMU ``m``: ``m`` itself."""
        check_instance("m", m, self._types()[2])
        return m

    def kind_of(self, m):
        """The table half of MMU ``m``: ``m`` itself."""
        check_instance("m", m, self._types()[2])
        return m

    def tdp12(self, vcpu):
        """The MMU that shadows L1's EPT/NPT: ``&guest_mmu``."""
        self._vcpu(vcpu)
        return vcpu.guest_mmu

    def walk12(self, vcpu):
        """The context that walks L2's own tables: ``&nested_mmu``."""
        self._vcpu(vcpu)
        return vcpu.nested_mmu

    def root_walk(self, vcpu):
        """The context that walks the tables of the guest on ``root_mmu``."""
        self._vcpu(vcpu)
        return vcpu.root_mmu

    def get_walk(self, vcpu):
        """``vcpu->arch.walk_mmu``."""
        self._vcpu(vcpu)
        return vcpu.walk_mmu

    def set_walk(self, vcpu, w) -> None:
        """``vcpu->arch.walk_mmu = w``."""
        self._vcpu(vcpu)
        self._member(vcpu, "w", w)
        vcpu.walk_mmu = w

    # -- initialisation -----------------------------------------------------

    def mmu_is_nested(self, vcpu) -> bool:
        """The walk pointer designates the L2 walk (``mmu_is_nested``)."""
        self._vcpu(vcpu)
        return self.get_walk(vcpu) is self.walk12(vcpu)

    def cpu_role(self, vcpu) -> CpuRole:
        """``kvm_calc_cpu_role`` of the running guest's registers."""
        self._vcpu(vcpu)
        r = vcpu.regs
        return _calc_cpu_role(r.cr0, r.cr4, r.efer, r.smm, vcpu.guest_mode)

    def init_walk(self, w, cpu_role: CpuRole, host: Host) -> None:
        """Walk callbacks and derived tables for the guest's own page tables."""
        check_instance("w", w, (KvmMmu, py_class(1, "kvm_paging_context")))
        check_instance("cpu_role", cpu_role, CpuRole)
        check_instance("host", host, Host)
        w.cpu_role = cpu_role
        w.get_guest_pgd = "get_guest_cr3"
        w.get_pdptr = "kvm_pdptr_read"
        w.inject_page_fault = "kvm_inject_page_fault"
        w.gva_to_gpa = walker_name(cpu_role) + "_gva_to_gpa"
        guest_paging_metadata(w, host)

    def kvm_init_mmu(self, vcpu) -> None:
        """Nested walk, else TDP, else shadow (``kvm_init_mmu``)."""
        self._vcpu(vcpu)
        cpu_role = self.cpu_role(vcpu)
        if self.mmu_is_nested(vcpu):
            self.init_kvm_nested_mmu(vcpu, cpu_role)
        elif vcpu.host.tdp_enabled:
            self.init_kvm_tdp_mmu(vcpu, cpu_role)
        else:
            self.init_kvm_softmmu(vcpu, cpu_role)

    def init_kvm_tdp_mmu(self, vcpu, cpu_role: CpuRole) -> None:
        """``root_mmu`` for TDP: its roots, its walk half, its table half."""
        self._vcpu(vcpu)
        check_instance("cpu_role", cpu_role, CpuRole)
        m, host = vcpu.root_mmu, vcpu.host
        w, k = self.walk_of(m), self.kind_of(m)
        root_role = _calc_tdp_root_role(cpu_role, host.tdp_level, host.ad_enabled)
        if w.cpu_role == cpu_role and m.root_role == root_role:
            return
        m.root_role = root_role
        m.page_fault = "kvm_tdp_page_fault"
        self.init_walk(w, cpu_role, host)
        self.init_tdp_kind(k, host, root_role.level)

    def init_tdp_kind(self, k, host: Host, level: int) -> None:
        """The table half of a TDP MMU: no unsync callback, and the zero-bit
        check of TDP tables (``reset_tdp_shadow_zero_bits_mask``)."""
        self._kind_args(k, host, level)
        k.sync_spte = None
        k.shadow_zero_check = tdp_shadow_zero_check(host, level)

    def shadow_mmu_init_context(self, vcpu, m, cpu_role: CpuRole, root_role) -> None:
        """A shadow MMU for ``cpu_role`` (``shadow_mmu_init_context``)."""
        self._vcpu(vcpu)
        self._member(vcpu, "m", check_instance("m", m, self._types()[2]))
        check_instance("cpu_role", cpu_role, CpuRole)
        check_instance("root_role", root_role, PageRole)
        w, k = self.walk_of(m), self.kind_of(m)
        if w.cpu_role == cpu_role and m.root_role == root_role:
            return
        w.cpu_role, m.root_role = cpu_role, root_role
        wk = walker_name(cpu_role)
        m.page_fault = wk + "_page_fault"
        w.gva_to_gpa = wk + "_gva_to_gpa"
        k.sync_spte = None if wk == "nonpaging" else wk + "_sync_spte"
        guest_paging_metadata(w, vcpu.host)
        k.shadow_zero_check = shadow_zero_check_x86(vcpu.host, root_role)

    def init_kvm_softmmu(self, vcpu, cpu_role: CpuRole) -> None:
        """``root_mmu`` shadowing the guest's tables (``init_kvm_softmmu``)."""
        self._vcpu(vcpu)
        check_instance("cpu_role", cpu_role, CpuRole)
        m = vcpu.root_mmu
        self.shadow_mmu_init_context(vcpu, m, cpu_role, calc_shadow_root_role(cpu_role))
        w = self.walk_of(m)
        w.get_guest_pgd, w.get_pdptr = "get_guest_cr3", "kvm_pdptr_read"
        w.inject_page_fault = "kvm_inject_page_fault"

    def init_kvm_nested_mmu(self, vcpu, cpu_role: CpuRole) -> None:
        """The L2 walk context (``init_kvm_nested_mmu``); it has no roots."""
        self._vcpu(vcpu)
        check_instance("cpu_role", cpu_role, CpuRole)
        w = self.walk12(vcpu)
        if w.cpu_role == cpu_role:
            return
        self.init_walk(w, cpu_role, vcpu.host)

    def kvm_init_shadow_ept_mmu(self, vcpu, execonly: bool, accessed_dirty: bool,
                                eptp: int) -> None:
        """The MMU shadowing EPT12 (``kvm_init_shadow_ept_mmu``)."""
        self._vcpu(vcpu)
        execonly = check_bool("execonly", execonly)
        accessed_dirty = check_bool("accessed_dirty", accessed_dirty)
        eptp = check_range("eptp", eptp, 0, _U64)
        m = self.tdp12(vcpu)
        w, k = self.walk_of(m), self.kind_of(m)
        role = calc_shadow_ept_role(((eptp >> 3) & 7) + 1, accessed_dirty, execonly,
                                    smm=vcpu.regs.smm)
        if w.cpu_role == role:
            return
        w.cpu_role, m.root_role = role, role.base
        m.page_fault = "ept_page_fault"
        w.gva_to_gpa = "ept_gva_to_gpa"
        k.sync_spte = "ept_sync_spte"
        ept_paging_metadata(w, vcpu.host, execonly)
        k.shadow_zero_check = ept_shadow_zero_check(vcpu.host, execonly)

    def kvm_init_shadow_npt_mmu(self, vcpu, cr4: int, efer: int, ncr3: int) -> None:
        """The MMU shadowing NPT12 (``kvm_init_shadow_npt_mmu``)."""
        self._vcpu(vcpu)
        cr4 = check_range("cr4", cr4, 0, _U64)
        efer = check_range("efer", efer, 0, _U64)
        ncr3 = check_range("ncr3", ncr3, 0, _U64)
        cpu_role, root_role = calc_shadow_npt_role(cr4, efer, vcpu.host.tdp_level,
                                                   smm=vcpu.regs.smm)
        self.shadow_mmu_init_context(vcpu, self.tdp12(vcpu), cpu_role, root_role)

    # -- nested contexts ----------------------------------------------------

    def _check_nested_init(self, vcpu, vendor: str, name: str) -> None:
        if self.mmu_is_nested(vcpu):
            raise ValueError(f"{name}: the walk pointer is already on the L2 walk")
        if not vcpu.guest_mode or vcpu.l1_regs is None:
            raise ValueError(f"{name}: the vCPU is not in guest mode")
        if vcpu.host.vendor != vendor or not vcpu.host.tdp_enabled:
            raise ValueError(_NEEDS_TDP[vendor])

    def nested_ept_init_mmu_context(self, vcpu, eptp: int, execonly: bool = True) -> None:
        """``mmu`` to the EPT12 shadow, the walk pointer to the L2 walk."""
        self._vcpu(vcpu)
        eptp = check_range("eptp", eptp, 0, _U64)
        execonly = check_bool("execonly", execonly)
        self._check_nested_init(vcpu, "vmx", "nested_ept_init_mmu_context")
        if isinstance(eptp, bool) or not isinstance(eptp, int) or ((eptp >> 3) & 7) not in (3, 4):
            raise ValueError(f"eptp {eptp!r}: bits 5:3 must be 3 (4-level) or 4 (5-level)")
        m = self.tdp12(vcpu)
        vcpu.mmu = m
        vcpu.nested_pgd = eptp
        self.kvm_init_shadow_ept_mmu(vcpu, execonly, bool(eptp & (1 << 6)), eptp)
        w = self.walk_of(m)
        w.get_guest_pgd = "nested_ept_get_eptp"
        w.inject_page_fault = "nested_ept_inject_page_fault"
        w.get_pdptr = "kvm_pdptr_read"
        self.set_walk(vcpu, self.walk12(vcpu))

    def nested_svm_init_mmu_context(self, vcpu, ncr3: int) -> None:
        """``mmu`` to the NPT12 shadow, the walk pointer to the L2 walk."""
        self._vcpu(vcpu)
        ncr3 = check_range("ncr3", ncr3, 0, _U64)
        self._check_nested_init(vcpu, "svm", "nested_svm_init_mmu_context")
        if isinstance(ncr3, bool) or not isinstance(ncr3, int) or ncr3 < 0:
            raise ValueError(f"ncr3 must be a non-negative int, got {ncr3!r}")
        m = self.tdp12(vcpu)
        vcpu.mmu = m
        vcpu.nested_pgd = ncr3
        self.kvm_init_shadow_npt_mmu(vcpu, vcpu.l1_regs.cr4, vcpu.l1_regs.efer, ncr3)
        w = self.walk_of(m)
        w.get_guest_pgd = "nested_svm_get_tdp_cr3"
        w.get_pdptr = "nested_svm_get_tdp_pdptr"
        w.inject_page_fault = "nested_svm_inject_npf_exit"
        self.set_walk(vcpu, self.walk12(vcpu))

    def nested_tdp_uninit_mmu_context(self, vcpu) -> None:
        """``mmu = &root_mmu`` and the walk pointer back to the root walk."""
        self._vcpu(vcpu)
        vcpu.mmu = vcpu.root_mmu
        self.set_walk(vcpu, self.root_walk(vcpu))
        vcpu.nested_pgd = None

    # -- roots --------------------------------------------------------------

    def kvm_mmu_load(self, vcpu) -> None:
        """Give ``vcpu->arch.mmu`` a root: the VM's page for its role (and, for
        a shadow root, the guest root's gfn), allocated on first use.

        The PML4 (and PML5) special roots are needed when a 64-bit host
        shadows 32-bit or PAE tables (``mmu_alloc_special_roots``).
        """
        self._vcpu(vcpu)
        m = vcpu.mmu
        w = self.walk_of(m)
        role = m.root_role
        pgd = pgd_source(vcpu, w.get_guest_pgd)
        if role.direct:
            key = (_role_word(role), None)
        else:
            key = (_role_word(role), pgd >> 12)
            if w.cpu_role.base.level < PT64_ROOT_4LEVEL <= role.level:
                m.pml4_root = True
                m.pml5_root = role.level == PT64_ROOT_5LEVEL
        new = RootInfo(vcpu.kvm.root_hpa(key), pgd)
        if m.root != new:
            self.count("root_loads")
        m.root = new

    def kvm_mmu_unload(self, vcpu) -> None:
        """Free the roots of both root-holding MMUs (``kvm_mmu_unload``)."""
        self._vcpu(vcpu)
        for m in (vcpu.root_mmu, self.tdp12(vcpu)):
            m.root = INVALID_ROOT
            m.prev_roots = prev_roots()

    def kvm_mmu_reset_context(self, vcpu) -> None:
        """Unload every root and re-initialise (``kvm_mmu_reset_context``)."""
        self._vcpu(vcpu)
        self.count("resets")
        vcpu.resets += 1
        self.kvm_mmu_unload(vcpu)
        self.kvm_init_mmu(vcpu)

    # -- register writes ----------------------------------------------------

    def set_regs(self, vcpu, regs: GuestRegs) -> None:
        """A mode switch: new CR0/CR3/CR4/EFER/SMM, reset, load a root."""
        self._vcpu(vcpu)
        if not isinstance(regs, GuestRegs):
            raise TypeError(f"regs must be GuestRegs, got {regs!r}")
        vcpu.regs = regs
        self.kvm_mmu_reset_context(vcpu)
        self.kvm_mmu_load(vcpu)

    def set_cr0(self, vcpu, cr0: int) -> None:
        """A CR0 write, 2021 rule: any change of PG or WP resets the MMU."""
        self._vcpu(vcpu)
        cr0 = check_range("cr0", cr0, 0, _U64)
        old = vcpu.regs.cr0
        vcpu.regs = _with(vcpu.regs, "cr0", cr0)  # validates
        changed = old ^ cr0
        if changed & CR0_ROLE_BITS:
            self._cause = "cr0_wp" if changed == CR0_WP else None
            try:
                self.kvm_mmu_reset_context(vcpu)
                self.kvm_mmu_load(vcpu)
            finally:
                self._cause = None

    def set_cr3(self, vcpu, cr3: int) -> None:
        """A CR3 write: a new shadow root if ``mmu`` shadows this CR3
        (``kvm_mmu_new_pgd``); TDP roots do not depend on CR3."""
        self._vcpu(vcpu)
        cr3 = check_range("cr3", cr3, 0, _U64)
        vcpu.regs = _with(vcpu.regs, "cr3", cr3)
        if self.walk_of(vcpu.mmu).get_guest_pgd == "get_guest_cr3" and \
                not vcpu.mmu.root_role.direct:
            self.kvm_mmu_load(vcpu)

    def set_cr4(self, vcpu, cr4: int) -> None:
        """A CR4 write: a change of a role bit resets (``kvm_post_set_cr4``)."""
        self._vcpu(vcpu)
        cr4 = check_range("cr4", cr4, 0, _U64)
        old = vcpu.regs.cr4
        vcpu.regs = _with(vcpu.regs, "cr4", cr4)
        if (old ^ cr4) & CR4_ROLE_BITS:
            self.kvm_mmu_reset_context(vcpu)
            self.kvm_mmu_load(vcpu)

    def set_efer(self, vcpu, efer: int) -> None:
        """An EFER write: a change of LME or NX resets (``set_efer``)."""
        self._vcpu(vcpu)
        efer = check_range("efer", efer, 0, _U64)
        old = vcpu.regs.efer
        vcpu.regs = _with(vcpu.regs, "efer", efer)
        if (old ^ efer) & EFER_ROLE_BITS:
            self.kvm_mmu_reset_context(vcpu)
            self.kvm_mmu_load(vcpu)

    def set_smm(self, vcpu, smm: bool) -> None:
        """Enter or leave SMM: the role changes, reset (``kvm_smm_changed``)."""
        self._vcpu(vcpu)
        smm = check_bool("smm", smm)
        if vcpu.guest_mode:
            raise ValueError("set_smm: SMM transitions of L2 are not modelled")
        vcpu.regs = _with(vcpu.regs, "smm", bool(smm))
        self.kvm_mmu_reset_context(vcpu)
        self.kvm_mmu_load(vcpu)

    # -- nested entry and exit ----------------------------------------------

    def _finish(self, vcpu, regs: GuestRegs) -> None:
        vcpu.regs = regs
        self.kvm_init_mmu(vcpu)
        self.kvm_mmu_load(vcpu)

    def vmx_vmentry(self, vcpu, l2_regs: GuestRegs, *, ept: bool, eptp: int = EPTP12,
                    execonly: bool = True) -> None:
        """VMLAUNCH/VMRESUME (``nested_vmx_enter_non_root_mode``)."""
        self._vcpu(vcpu)
        check_instance("l2_regs", l2_regs, GuestRegs)
        ept = check_bool("ept", ept)
        eptp = check_range("eptp", eptp, 0, _U64)
        execonly = check_bool("execonly", execonly)
        init = (lambda: self.nested_ept_init_mmu_context(vcpu, eptp, execonly)) if ept else None
        nested_entry(vcpu, l2_regs, vendor="vmx", name="nested_vmx_vmentry", init=init,
                     finish=self._finish)

    def vmx_vmexit(self, vcpu) -> None:
        """Nested VM-exit (``nested_vmx_vmexit``)."""
        self._vcpu(vcpu)
        nested_exit(vcpu, vendor="vmx", name="nested_vmx_vmexit",
                    uninit=self.nested_tdp_uninit_mmu_context, finish=self._finish)

    def svm_vmrun(self, vcpu, l2_regs: GuestRegs, *, npt: bool, ncr3: int = NCR3) -> None:
        """VMRUN (``enter_svm_guest_mode``)."""
        self._vcpu(vcpu)
        check_instance("l2_regs", l2_regs, GuestRegs)
        npt = check_bool("npt", npt)
        ncr3 = check_range("ncr3", ncr3, 0, _U64)
        init = (lambda: self.nested_svm_init_mmu_context(vcpu, ncr3)) if npt else None
        nested_entry(vcpu, l2_regs, vendor="svm", name="nested_svm_vmrun", init=init,
                     finish=self._finish)

    def svm_vmexit(self, vcpu) -> None:
        """#VMEXIT (``nested_svm_vmexit``)."""
        self._vcpu(vcpu)
        nested_exit(vcpu, vendor="svm", name="nested_svm_vmexit",
                    uninit=self.nested_tdp_uninit_mmu_context, finish=self._finish)

    # -- emulation ----------------------------------------------------------

    def kvm_translate_gpa(self, vcpu, w):
        """The context that turns GPAs of walk ``w`` into L1 GPAs, or None."""
        self._vcpu(vcpu)
        self._member(vcpu, "w", w)
        if w is not self.walk12(vcpu):
            return None
        if not self.mmu_is_nested(vcpu):
            raise ValueError("translate_nested_gpa: the vCPU is not nested")
        return self.walk_of(vcpu.mmu)

    def emulated_fault_target(self, vcpu, nested_page_fault: bool):
        """Whose ``inject_page_fault`` delivers an emulated fault."""
        self._vcpu(vcpu)
        nested_page_fault = check_bool("nested_page_fault", nested_page_fault)
        return self.walk_of(vcpu.mmu) if nested_page_fault else self.get_walk(vcpu)

    # -- operations on KVM's own tables (for the vCPU measure) -------------

    def make_spte(self, vcpu, gfn: int, pfn: int) -> SpteInputs:
        """What ``make_spte`` reads: ``vcpu->arch.mmu``'s zero-bit check."""
        self._vcpu(vcpu)
        check_range("gfn", gfn, 0, _GFN_LIMIT)
        check_range("pfn", pfn, 0, _GFN_LIMIT)
        return SpteInputs("vcpu->arch.mmu", self.kind_of(vcpu.mmu).shadow_zero_check)

    def sync_spte(self, vcpu) -> Optional[str]:
        """The unsync callback of the fault MMU (``mmu->sync_spte``)."""
        self._vcpu(vcpu)
        return self.kind_of(vcpu.mmu).sync_spte

    def tdp_mmu_map(self, vcpu, gfn: int) -> SpteInputs:
        """``kvm_tdp_mmu_map``: install SPTEs on the vCPU's root."""
        self._vcpu(vcpu)
        check_range("gfn", gfn, 0, _GFN_LIMIT)
        return self.make_spte(vcpu, gfn, 0)

    def recover_huge_pages(self, vm) -> RecoveryStrategy:
        """After dirty logging: zap and refault, as ``make_spte`` needs a vCPU
        (``kvm_mmu_zap_collapsible_sptes``). ``vm`` may be None: the answer
        depends on the step only."""
        if vm is not None:
            check_instance("vm", vm, self._types()[0])
        return RecoveryStrategy.ZAP_BATCHED

    # -- the views the driver reads -----------------------------------------

    def view(self, vcpu, w) -> WalkView:
        """A :class:`~refimpl.layouts.steps.base.WalkView` of context ``w``."""
        self._vcpu(vcpu)
        self._member(vcpu, "w", w)
        return WalkView(w.cpu_role, pgd_source(vcpu, w.get_guest_pgd), w.gva_to_gpa,
                        w.inject_page_fault, w.permissions)

    def emulation_walk(self, vcpu) -> WalkView:
        """The context the walk pointer designates."""
        self._vcpu(vcpu)
        return self.view(vcpu, self.get_walk(vcpu))

    def nested_gpa_walk(self, vcpu) -> Optional[WalkView]:
        """The context that translates the emulation walk's GPAs, or None."""
        self._vcpu(vcpu)
        w = self.kvm_translate_gpa(vcpu, self.get_walk(vcpu))
        return None if w is None else self.view(vcpu, w)

    def fault_inject(self, vcpu, nested_page_fault: bool) -> Optional[str]:
        """The ``inject_page_fault`` callback of :meth:`Legacy.emulated_fault_target`."""
        self._vcpu(vcpu)
        nested_page_fault = check_bool("nested_page_fault", nested_page_fault)
        return self.emulated_fault_target(vcpu, nested_page_fault).inject_page_fault

    def fault_mmu(self, vcpu) -> MmuView:
        """The MMU ``vcpu->arch.mmu`` designates."""
        self._vcpu(vcpu)
        m = vcpu.mmu
        k = self.kind_of(m)
        # Before the kind exists, "TDP tables" is told by the fault handler
        # (a shadow MMU of a guest without paging also has a direct role).
        direct = m.page_fault == "kvm_tdp_page_fault" if k is m else bool(k.direct)
        return MmuView(m.root_role, m.root, self.view(vcpu, self.walk_of(m)), direct,
                       k.shadow_zero_check)

    def pointer_table(self, vcpu) -> dict:
        """Where ``mmu`` and ``walk_mmu`` point."""
        self._vcpu(vcpu)
        return {"mmu": vcpu.name_of(vcpu.mmu), "walk_mmu": vcpu.name_of(vcpu.walk_mmu)}
