"""Step 7: the direct kind's ``shadow_zero_check`` is computed once, per VM.

Since step 4 every vCPU's ``init_kvm_tdp_mmu`` rewrites the shared kind's
``sync_spte`` (NULL) and ``shadow_zero_check`` with the same values. Those
values depend only on the host (MAXPHYADDR, EPT or NPT format) and the TDP
level, which the model keeps per VM (in KVM ``kvm_mmu_get_tdp_level``
reads the vCPU's CPUID MAXPHYADDR; the book's sketch chapter argues when a
per-VM check is sound), so the VM computes them once when it is
created (:func:`refimpl.layouts.split.kvm_arch_init_vm`) and vCPUs stop writing
the kind. Shadow kinds keep theirs per vCPU: their zero-bit check depends on
the shadow root level, which follows the guest's paging mode.

Changed: VM creation and ``init_kvm_tdp_mmu``.

KVM
---
``reset_tdp_shadow_zero_bits_mask`` in ``arch/x86/kvm/mmu/mmu.c`` (called
from ``init_kvm_tdp_mmu`` per vCPU in 2021).
"""

from __future__ import annotations

from refimpl.layouts.model import Host
from refimpl.layouts.steps.step0_legacy import Legacy
from refimpl.layouts.steps.step6_tdp_takes_vm import TdpTakesVm

__all__ = ["ZeroCheckPerVm"]


class ZeroCheckPerVm(TdpTakesVm):
    """Step 7: ``kvm->arch.direct_mmu`` filled at VM creation, never by a vCPU."""

    number = 7
    name = "zero_check_per_vm"

    def create_vm(self, host: Host):
        """The VM's direct kind is complete at creation: its zero-bit check
        depends only on the host and the TDP level."""
        kvm = super().create_vm(host)
        if kvm.direct_mmu is not None:
            Legacy.init_tdp_kind(self, kvm.direct_mmu, host, host.tdp_level)
        return kvm

    def init_tdp_kind(self, k, host: Host, level: int) -> None:
        """Nothing: the VM's direct kind was filled when the VM was created."""
        self._kind_args(k, host, level)
