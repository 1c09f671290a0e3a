"""Step 6: the TDP MMU's table operations take the VM, not a vCPU.

The TDP MMU's kind is always ``&kvm->arch.direct_mmu``, so once
``make_spte`` takes a kind (step 5), the code that installs a leaf SPTE
needs only the VM and a root: ``tdp_mmu_set_leaf(kvm, root, gfn)``. The
fault handler still takes the vCPU, to find its root. The gain is the one
Ben Gardon's 2021 RFC wanted: when dirty logging is turned off, huge SPTEs
can be rebuilt in place from the VM alone (no zap, no refaults):
:meth:`TdpTakesVm.recover_huge_pages` answers ``IN_PLACE``.

Changed: ``tdp_mmu_map`` delegates to the new ``tdp_mmu_set_leaf``;
``recover_huge_pages``.

KVM
---
``kvm_tdp_mmu_map`` in ``arch/x86/kvm/mmu/tdp_mmu.c``; KVM later rebuilt
huge pages in place from the VM (``kvm_tdp_mmu_recover_huge_pages``, same
file).
"""

from __future__ import annotations

from refimpl.errors import check_instance, check_range
from refimpl.host.kvm_mmu import RootInfo
from refimpl.layouts.steps.step0_legacy import _GFN_LIMIT, SpteInputs
from refimpl.layouts.steps.step5_spte_takes_kind import SpteTakesKind
from refimpl.host.tdp_mmu import RecoveryStrategy
from refimpl.layouts.structs import py_class

__all__ = ["TdpTakesVm"]

KvmArch = py_class(6, "kvm_arch")


class TdpTakesVm(SpteTakesKind):
    """Step 6: ``tdp_mmu_set_leaf(kvm, root, gfn)``; in-place huge-page recovery."""

    number = 6
    name = "tdp_takes_vm"

    def tdp_mmu_set_leaf(self, kvm, root: RootInfo, gfn: int) -> SpteInputs:
        """Install a leaf SPTE on ``root`` from the VM's direct kind."""
        check_instance("kvm", kvm, KvmArch)
        check_instance("root", root, RootInfo)
        check_range("gfn", gfn, 0, _GFN_LIMIT)
        if kvm.direct_mmu is None:
            raise ValueError("kvm has no direct kind: TDP is off on its host")
        return self.make_spte(kvm.direct_mmu, gfn, 0)

    def tdp_mmu_map(self, vcpu, gfn: int) -> SpteInputs:
        """``kvm_tdp_mmu_map``: the vCPU gives the root, the VM the rest."""
        self._vcpu(vcpu)
        check_range("gfn", gfn, 0, _GFN_LIMIT)
        if not self.kind_of(vcpu.mmu).direct:
            return self.make_spte(self.kind_of(vcpu.mmu), gfn, 0)
        return self.tdp_mmu_set_leaf(vcpu.kvm, vcpu.mmu.root, gfn)

    def recover_huge_pages(self, vm) -> RecoveryStrategy:
        """Huge SPTEs rebuilt in place with ``make_spte(&kvm->arch.direct_mmu)``."""
        if vm is not None:
            check_instance("vm", vm, self._types()[0])
        return RecoveryStrategy.IN_PLACE
