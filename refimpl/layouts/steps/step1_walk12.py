"""Step 1: ``nested_mmu`` becomes ``walk12``, ``walk_mmu`` becomes ``walk``.

The first part of the refactoring the 2021 mail asks for. ``nested_mmu``
was a whole ``struct kvm_mmu`` of which only the walk half was ever used
(its ``page_fault``, roots and root role stay empty; see
:mod:`refimpl.layouts.legacy`): it becomes a ``struct kvm_paging_context``
named ``walk12`` (walks L2's own tables). ``walk_mmu`` becomes ``walk``,
pointing to ``&root_mmu`` (still a whole ``kvm_mmu``, used through its walk
half) or ``&walk12``. Nothing else moves.

Changed: the vCPU struct (:data:`refimpl.layouts.structs.CHANGES`), and three
accessors of :class:`Walk12`. Every transition is inherited unchanged from
step 0.

KVM
---
The 2026 "apply chainsaw to struct kvm_mmu" series makes ``walk_mmu`` a
``struct kvm_pagewalk`` pointer (d42e93ee58d3) and ``nested_mmu``'s walk the
``ngva_walk`` (b99416dd992b), in ``arch/x86/include/asm/kvm_host.h``.
"""

from __future__ import annotations

from refimpl.layouts.steps.step0_legacy import Legacy
from refimpl.layouts.structs import py_class

__all__ = ["KvmVcpuArch", "Walk12"]


KvmVcpuArch = py_class(1, "kvm_vcpu_arch", __name__)


class Walk12(Legacy):
    """Step 1: ``walk12`` and ``walk`` replace ``nested_mmu`` and ``walk_mmu``."""

    number = 1
    name = "walk12"

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

