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

from refimpl.errors import check_instance
from refimpl.layouts.legacy import Host
from refimpl.layouts.split import KvmArch, KvmMmuKind, KvmVcpuArch
from refimpl.layouts.steps.step0_legacy import _STRUCTURES
from refimpl.layouts.steps.step3_kind import Kind
from refimpl.host.roles import PT32E_ROOT_LEVEL

__all__ = ["DirectKindPerVm"]


class DirectKindPerVm(Kind):
    """Step 4: ``kvm->arch.direct_mmu``; vCPUs keep ``shadow_mmu``."""

    number = 4
    name = "direct_kind_per_vm"

    def create_vm(self, host: Host) -> KvmArch:
        """The VM, with an (empty) direct kind when TDP is on."""
        if not isinstance(host, Host):
            raise TypeError(f"host must be a Host, got {host!r}")
        kvm = KvmArch(host)
        if host.tdp_enabled:
            kvm.direct_mmu = KvmMmuKind(direct=True)
        kvm.vcpus = []
        return kvm

    def create_vcpu(self, kvm):
        """``root_mmu.kind = &kvm->arch.direct_mmu`` with TDP."""
        check_instance("kvm", kvm, KvmArch)
        host = kvm.host
        v = KvmVcpuArch(kvm)
        v.root_mmu.kind = kvm.direct_mmu if host.tdp_enabled else v.shadow_mmu
        v.tdp12_mmu.kind = v.shadow_mmu
        v.root_mmu.walk, v.tdp12_mmu.walk = v.root_walk, v.walk01
        v.mmu, v.walk = v.root_mmu, v.root_walk
        needs_pae = not (host.tdp_enabled and host.tdp_level > PT32E_ROOT_LEVEL)
        v.root_mmu.pae_root = needs_pae
        v.tdp12_mmu.pae_root = needs_pae and host.tdp_enabled
        kvm.vcpus.append(v)
        return v


_STRUCTURES[DirectKindPerVm] = {"vm": KvmArch, "vcpu": KvmVcpuArch}  # for the argument checks
