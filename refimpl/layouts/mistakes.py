"""Deliberately wrong steps, which the differential test must catch.

Each is one small, plausible slip in a refactoring step, written as a
subclass of the step it corrupts:

``walk_left_on_root_walk`` (:class:`WalkLeftOnRootWalk`)
    Step 1, but nested EPT/NPT entry forgets to point ``walk`` at
    ``walk12``: emulated L2 accesses walk L2's tables as if they were L1's,
    with no translation through L1's EPT/NPT.
``wp_no_bitmap_update`` (:class:`WpNoBitmapUpdate`)
    Step 8, but a CR0.WP toggle under TDP neither resets nor re-initialises
    the MMU: the permission bitmap keeps the old WP, so an emulated
    supervisor write to a read-only page gets the old answer.
``wp_keeps_shadow_roots`` (:class:`WpKeepsShadowRoots`)
    Step 8, but the 2023 rule is applied to shadow paging too: a CR0 write
    that changes only WP re-initialises the MMU and keeps the shadow roots,
    whose pages were built for the old WP. A supervisor write to a
    read-only page, let through by a writable SPTE made while WP was 0,
    still succeeds after WP returns to 1; the differential sees it because
    its hardware accesses go through the shadow MMU.
``role_in_kind`` (:class:`RoleInKind`)
    Step 4, but the root role lives in the kind (as if ``vcpu->arch.mmu``
    pointed to ``kvm->arch.direct_mmu``, a misreading of the mail's
    comment): a vCPU entering SMM, or L2 without TDP in L1, switches every
    vCPU of the VM to its roots.
``zero_check_per_vcpu`` (:class:`ZeroCheckPerVcpu`)
    Step 4, but each vCPU's ``init_kvm_tdp_mmu`` computes the shared kind's
    zero-bit check from its *guest's* paging level instead of the TDP
    level: no guest outcome changes (a zero-bit check only guards KVM's own
    SPTEs), but ``make_spte`` checks against the wrong bits, which the
    differential's second comparison (``Run.internal``) sees.

KVM
---
Not KVM code: counter-examples for the proof that each real step keeps
every guest-visible outcome (:mod:`refimpl.layouts.workload`).
"""

from __future__ import annotations

from refimpl.errors import check_range
from refimpl.host.roles import CR0_PG, CR0_WP
from refimpl.layouts.model import tdp_shadow_zero_check
from refimpl.layouts.steps.step0_legacy import _with
from refimpl.layouts.structs import py_class
from refimpl.layouts.steps.step1_walk12 import Walk12
from refimpl.layouts.steps.step4_direct_kind_per_vm import DirectKindPerVm
from refimpl.layouts.steps.step8_cr0wp_no_reset import Cr0WpNoReset

__all__ = ["WalkLeftOnRootWalk", "WpNoBitmapUpdate", "WpKeepsShadowRoots", "RoleInKind",
           "ZeroCheckPerVcpu", "MISTAKES"]


class WalkLeftOnRootWalk(Walk12):
    """Step 1 with the walk pointer left on the root walk after nested entry."""

    number = 1
    name = "walk_left_on_root_walk"

    def set_walk(self, vcpu, w) -> None:
        """Forgets ``walk = &walk12``; other assignments go through."""
        self._vcpu(vcpu)
        self._member(vcpu, "w", w)
        if w is not self.walk12(vcpu):
            vcpu.walk = w


class WpNoBitmapUpdate(Cr0WpNoReset):
    """Step 8 where a CR0.WP toggle under TDP skips ``kvm_init_mmu``."""

    number = 8
    name = "wp_no_bitmap_update"

    def set_cr0(self, vcpu, cr0: int) -> None:
        """Loads CR0; for a WP-only change with TDP, nothing else."""
        self._vcpu(vcpu)
        cr0 = check_range("cr0", cr0, 0, 1 << 64)
        if vcpu.regs.cr0 ^ cr0 == CR0_WP and vcpu.host.tdp_enabled:
            vcpu.regs = _with(vcpu.regs, "cr0", cr0)
            return
        super().set_cr0(vcpu, cr0)


class WpKeepsShadowRoots(Cr0WpNoReset):
    """Step 8 where a CR0.WP toggle keeps the roots with shadow paging too."""

    number = 8
    name = "wp_keeps_shadow_roots"

    def set_cr0(self, vcpu, cr0: int) -> None:
        """A WP-only change with paging on: ``kvm_init_mmu``, whatever the host."""
        self._vcpu(vcpu)
        cr0 = check_range("cr0", cr0, 0, 1 << 64)
        if vcpu.regs.cr0 ^ cr0 == CR0_WP and cr0 & CR0_PG:
            vcpu.regs = _with(vcpu.regs, "cr0", cr0)
            self.count("init_mmu_cr0_wp")
            self.kvm_init_mmu(vcpu)
            return
        super().set_cr0(vcpu, cr0)


class _MmuRoleInKind(py_class(4, "kvm_mmu")):
    """A ``kvm_mmu`` whose ``root_role`` is stored in its direct kind."""

    @property
    def root_role(self):
        kind = self.__dict__.get("kind")
        if kind is not None and kind.direct:
            return kind.__dict__["root_role"]
        return self.__dict__["_root_role"]

    @root_role.setter
    def root_role(self, value) -> None:
        kind = self.__dict__.get("kind")
        if kind is not None and kind.direct:
            kind.__dict__["root_role"] = value
        else:
            self.__dict__["_root_role"] = value


class RoleInKind(DirectKindPerVm):
    """Step 4 with the root role in the shared direct kind."""

    number = 4
    name = "role_in_kind"

    def create_vcpu(self, kvm):
        """As step 4, but ``root_mmu`` keeps its role in its kind."""
        v = super().create_vcpu(kvm)
        old = v.root_mmu
        new = _MmuRoleInKind(kind=old.kind, walk=old.walk, pae_root=old.pae_root)
        if old.kind is not None and old.kind.direct and "root_role" not in old.kind.__dict__:
            old.kind.__dict__["root_role"] = old.root_role
        v.root_mmu = new
        v.mmu = new
        return v


class ZeroCheckPerVcpu(DirectKindPerVm):
    """Step 4 with the shared zero-bit check computed from the guest's level."""

    number = 4
    name = "zero_check_per_vcpu"

    def init_kvm_tdp_mmu(self, vcpu, cpu_role) -> None:
        """As step 4, then overwrites the VM's kind with a per-vCPU value."""
        super().init_kvm_tdp_mmu(vcpu, cpu_role)
        level = cpu_role.base.level if cpu_role.paging else vcpu.host.tdp_level
        vcpu.root_mmu.kind.shadow_zero_check = tdp_shadow_zero_check(vcpu.host, level)


MISTAKES = {c.name: c for c in (WalkLeftOnRootWalk, WpNoBitmapUpdate, WpKeepsShadowRoots,
                                RoleInKind, ZeroCheckPerVcpu)}
"""The wrong steps by name."""
