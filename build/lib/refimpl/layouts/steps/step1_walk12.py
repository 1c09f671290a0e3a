"""Step 1: ``nested_mmu`` becomes ``walk12``, ``walk_mmu`` becomes ``walk``.

The first part of the refactoring the 2021 mail asks for. ``nested_mmu``
was a whole ``struct kvm_mmu`` of which only the walk half was ever used
(its ``page_fault``, roots and root role stay empty; see
:mod:`refimpl.layouts.legacy`): it becomes a ``struct kvm_paging_context``
named ``walk12`` (walks L2's own tables). ``walk_mmu`` becomes ``walk``,
pointing to ``&root_mmu`` (still a whole ``kvm_mmu``, used through its walk
half) or ``&walk12``. Nothing else moves.

Changed: the vCPU struct, and four accessors of :class:`Walk12`. Every
transition is inherited unchanged from step 0.

KVM
---
Realised by the 2026 "apply chainsaw to struct kvm_mmu" series, which
deletes ``nested_mmu`` and ``walk_mmu`` (``arch/x86/include/asm/kvm_host.h``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from refimpl.errors import check_instance
from refimpl.layouts.legacy import GuestRegs, Host, KvmMmu
from refimpl.layouts.split import KvmPagingContext
from refimpl.layouts.steps.step0_legacy import _STRUCTURES, Legacy
from refimpl.host.roles import PT32E_ROOT_LEVEL

__all__ = ["KvmVcpuArch", "Walk12"]


@dataclass(eq=False)
class KvmVcpuArch:
    """Step 1's ``struct kvm_vcpu_arch`` (MMU part).

    Attributes
    ----------
    root_mmu, guest_mmu : refimpl.layouts.legacy.KvmMmu
        Unchanged.
    walk12 : refimpl.layouts.split.KvmPagingContext
        Was ``nested_mmu``.
    mmu : refimpl.layouts.legacy.KvmMmu
        Unchanged pointer.
    walk : refimpl.layouts.legacy.KvmMmu or refimpl.layouts.split.KvmPagingContext
        Was ``walk_mmu``: ``&root_mmu`` or ``&walk12``.
    host, regs, guest_mode, l1_regs, nested_pgd
        Model only, as in :class:`refimpl.layouts.legacy.KvmVcpuArch`.
    """

    host: Host
    root_mmu: KvmMmu = field(default_factory=KvmMmu)
    guest_mmu: KvmMmu = field(default_factory=KvmMmu)
    walk12: KvmPagingContext = field(default_factory=KvmPagingContext)
    mmu: Optional[KvmMmu] = None
    walk: Optional[object] = None
    regs: GuestRegs = GuestRegs()
    guest_mode: bool = False
    l1_regs: Optional[GuestRegs] = None
    nested_pgd: Optional[int] = None

    def name_of(self, obj: object) -> str:
        """Which member ``obj`` is."""
        for name in ("root_mmu", "guest_mmu", "walk12"):
            if getattr(self, name) is obj:
                return name
        raise ValueError(f"{obj!r} is not a structure of this vCPU")


class Walk12(Legacy):
    """Step 1: ``walk12`` and ``walk`` replace ``nested_mmu`` and ``walk_mmu``."""

    number = 1
    name = "walk12"

    def create_vcpu(self, vm):
        """As step 0, with ``walk = &root_mmu``; ``walk12`` needs no roots."""
        check_instance("vm", vm, self._types()[0])
        host = vm.host
        v = KvmVcpuArch(host)
        v.mmu = v.root_mmu
        v.walk = v.root_mmu
        needs_pae = not (host.tdp_enabled and host.tdp_level > PT32E_ROOT_LEVEL)
        v.root_mmu.pae_root = needs_pae
        v.guest_mmu.pae_root = needs_pae and host.tdp_enabled
        vm.vcpus.append(v)
        return v

    def walk12(self, vcpu):
        """``&vcpu->arch.walk12``."""
        self._vcpu(vcpu)
        return vcpu.walk12

    def get_walk(self, vcpu):
        """``vcpu->arch.walk``."""
        self._vcpu(vcpu)
        return vcpu.walk

    def set_walk(self, vcpu, w) -> None:
        """``vcpu->arch.walk = w``."""
        self._vcpu(vcpu)
        self._member(vcpu, "w", w)
        vcpu.walk = w

    def pointer_table(self, vcpu) -> dict:
        """Where ``mmu`` and ``walk`` point."""
        self._vcpu(vcpu)
        return {"mmu": vcpu.name_of(vcpu.mmu), "walk": vcpu.name_of(vcpu.walk)}


_STRUCTURES[Walk12] = {"vcpu": KvmVcpuArch}  # for the argument checks
