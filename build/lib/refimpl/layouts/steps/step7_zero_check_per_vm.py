"""Step 7: the direct kind's ``shadow_zero_check`` is computed once, per VM.

Since step 4 every vCPU's ``init_kvm_tdp_mmu`` rewrites the shared kind's
``sync_spte`` (NULL) and ``shadow_zero_check`` with the same values. Those
values depend only on the host (MAXPHYADDR, EPT or NPT format) and the TDP
level, never on a vCPU's registers, so the VM computes them once when it is
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

from refimpl.errors import check_instance
from refimpl.layouts.legacy import Host
from refimpl.layouts.split import KvmArch, kvm_arch_init_vm
from refimpl.layouts.steps.step0_legacy import _calc_tdp_root_role
from refimpl.layouts.steps.step6_tdp_takes_vm import TdpTakesVm
from refimpl.host.roles import CpuRole

__all__ = ["ZeroCheckPerVm"]


class ZeroCheckPerVm(TdpTakesVm):
    """Step 7: ``kvm->arch.direct_mmu`` filled at VM creation, never by a vCPU."""

    number = 7
    name = "zero_check_per_vm"

    def create_vm(self, host: Host) -> KvmArch:
        """:func:`refimpl.layouts.split.kvm_arch_init_vm`: the kind is complete."""
        kvm = kvm_arch_init_vm(host)
        kvm.vcpus = []
        return kvm

    def init_kvm_tdp_mmu(self, vcpu, cpu_role: CpuRole) -> None:
        """``root_mmu`` for TDP: its roots and its walk; the kind is the VM's."""
        self._vcpu(vcpu)
        check_instance("cpu_role", cpu_role, CpuRole)
        m, host = vcpu.root_mmu, vcpu.host
        w = self.walk_of(m)
        root_role = _calc_tdp_root_role(cpu_role, host.tdp_level, host.ad_enabled)
        if w.cpu_role == cpu_role and m.root_role == root_role:
            return
        m.root_role = root_role
        m.page_fault = "kvm_tdp_page_fault"
        self.init_walk(w, cpu_role, host)
