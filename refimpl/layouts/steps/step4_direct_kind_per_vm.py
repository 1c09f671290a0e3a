"""Step 4: the direct kind moves to the VM, ``kvm->arch.direct_mmu``.

TDP tables depend only on the memslots, which are per VM, so one direct kind
serves every vCPU: ``root_mmu.kind`` of every vCPU points to
``kvm->arch.direct_mmu``. The vCPU keeps its own ``shadow_mmu``. The
structures are now exactly the sketch's (:class:`refimpl.layouts.split.KvmArch`,
:class:`refimpl.layouts.split.KvmVcpuArch`).

The direct kind is created empty with the VM, and ``init_kvm_tdp_mmu``
still fills its ``sync_spte`` and ``shadow_zero_check`` each time a vCPU's
context is (re)initialised, as it did when the kind was per vCPU: every vCPU
writes the same values. Step 7 stops that.

Changed: the VM and vCPU creation. The ``kvm_mmu`` a vCPU's ``mmu`` points
to stays per vCPU: roots and root roles differ between vCPUs of a VM (SMM,
L2 without TDP in L1), which :mod:`refimpl.layouts.mistakes` shows
(``role_in_kind``).

KVM
---
The 2021 mail (``struct kvm_mmu_kind direct_mmu`` in ``struct kvm_arch``);
KVM's TDP MMU already keeps its roots per VM (``kvm->arch.tdp_mmu_roots``,
``arch/x86/kvm/mmu/tdp_mmu.c``).
"""

from __future__ import annotations

from refimpl.layouts.model import Host
from refimpl.layouts.steps.step3_kind import Kind
from refimpl.layouts.structs import py_class

__all__ = ["DirectKindPerVm"]

KvmMmuKind = py_class(4, "kvm_mmu_kind")


class DirectKindPerVm(Kind):
    """Step 4: ``kvm->arch.direct_mmu``; vCPUs keep ``shadow_mmu``."""

    number = 4
    name = "direct_kind_per_vm"

    def create_vm(self, host: Host):
        """The VM, with an (empty) direct kind when TDP is on."""
        kvm = super().create_vm(host)
        if host.tdp_enabled:
            kvm.direct_mmu = KvmMmuKind(direct=True)
        return kvm

    def direct_kind(self, vcpu):
        """The kind of TDP tables: ``&vcpu->kvm->arch.direct_mmu``."""
        self._vcpu(vcpu)
        return vcpu.kvm.direct_mmu

