"""Step 2: the walk half of each ``kvm_mmu`` becomes a paging context.

The step the mail does not list but needs before a kind can be split out:
the guest-walk fields (the walk callbacks, ``cpu_role``, ``permissions``,
``pkru_mask``, ``guest_rsvd_check``, ``pdptrs``) leave ``struct kvm_mmu``
for ``struct kvm_paging_context``: ``root_mmu``'s go to ``root_walk`` and
``guest_mmu``'s to ``walk01`` (it walks L1's EPT12/NPT12). Each ``kvm_mmu``
gets a ``walk`` pointer to its context. ``guest_mmu`` is renamed
``tdp12_mmu`` (it always shadows L1's TDP tables), as in the sketch. The
``walk`` pointer now designates ``&root_walk`` or ``&walk12``.

Changed: the ``kvm_mmu`` and vCPU structs, and the accessors ``walk_of``,
``tdp12`` and ``root_walk`` (and the pointer table gains ``mmu->walk``).

KVM
---
The 2026 series makes the same split: it pulls ``struct kvm_pagewalk`` out of
``struct kvm_mmu`` (0a59a8b8a248), with ``kvm_mmu.w`` pointing to it
(``arch/x86/include/asm/kvm_host.h``).
"""

from __future__ import annotations

from refimpl.errors import check_instance
from refimpl.layouts.steps.step1_walk12 import Walk12
from refimpl.layouts.structs import py_class

__all__ = ["KvmMmu", "KvmVcpuArch", "PagingContext"]


KvmMmu = py_class(2, "kvm_mmu", __name__)
KvmVcpuArch = py_class(2, "kvm_vcpu_arch", __name__)


class PagingContext(Walk12):
    """Step 2: ``root_walk`` and ``walk01`` split out; ``guest_mmu`` is ``tdp12_mmu``."""

    number = 2
    name = "paging_context"

    def connect(self, vcpu) -> None:
        """Each ``kvm_mmu`` points to its paging context."""
        super().connect(vcpu)
        vcpu.root_mmu.walk, vcpu.tdp12_mmu.walk = vcpu.root_walk, vcpu.walk01

    def walk_of(self, m):
        """``m->walk``."""
        check_instance("m", m, self._types()[2])
        return m.walk

    def tdp12(self, vcpu):
        """``&vcpu->arch.tdp12_mmu``."""
        self._vcpu(vcpu)
        return vcpu.tdp12_mmu

    def root_walk(self, vcpu):
        """``&vcpu->arch.root_walk``."""
        self._vcpu(vcpu)
        return vcpu.root_walk

    def pointer_table(self, vcpu) -> dict:
        """Where ``mmu``, ``walk`` and ``mmu->walk`` point."""
        self._vcpu(vcpu)
        return {"mmu": vcpu.name_of(vcpu.mmu), "walk": vcpu.name_of(vcpu.walk),
                "mmu->walk": vcpu.name_of(vcpu.mmu.walk)}

