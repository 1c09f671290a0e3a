"""Step 5: ``make_spte`` takes a kind, not a vCPU.

Everything ``make_spte`` reads besides its arguments is now in the kind
(the zero-bit check; for shadow tables the unsync decision's callback), so
its first parameter becomes ``struct kvm_mmu_kind *``. Callers that have a
vCPU pass ``vcpu->arch.mmu->kind``; code that has only the VM can pass
``&kvm->arch.direct_mmu``, which step 6 uses. No structure changes.

Changed: the signature of ``make_spte`` and its caller ``tdp_mmu_map``.

KVM
---
``make_spte`` in ``arch/x86/kvm/mmu/spte.c`` took ``struct kvm_vcpu *`` in
2021; the 2026 series passes the ``struct kvm_page_format`` instead.
"""

from __future__ import annotations

from refimpl.errors import check_instance, check_range
from refimpl.layouts.steps.step0_legacy import _GFN_LIMIT, SpteInputs
from refimpl.layouts.steps.step4_direct_kind_per_vm import DirectKindPerVm, KvmMmuKind

__all__ = ["SpteTakesKind"]


class SpteTakesKind(DirectKindPerVm):
    """Step 5: ``make_spte(kind, ...)``."""

    number = 5
    name = "spte_takes_kind"

    def make_spte(self, kind, gfn: int, pfn: int) -> SpteInputs:
        """What ``make_spte`` reads: the kind's zero-bit check."""
        check_instance("kind", kind, KvmMmuKind)
        check_range("gfn", gfn, 0, _GFN_LIMIT)
        check_range("pfn", pfn, 0, _GFN_LIMIT)
        return SpteInputs("kind", kind.shadow_zero_check)

    def tdp_mmu_map(self, vcpu, gfn: int) -> SpteInputs:
        """``kvm_tdp_mmu_map``: SPTEs made from the MMU's kind."""
        self._vcpu(vcpu)
        check_range("gfn", gfn, 0, _GFN_LIMIT)
        return self.make_spte(self.kind_of(vcpu.mmu), gfn, 0)
