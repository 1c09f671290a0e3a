"""Step 5: ``make_spte`` takes a kind, not a vCPU.

What the model's ``make_spte`` reads besides its arguments, the zero-bit
check, is now in the kind, so its first parameter becomes
``struct kvm_mmu_kind *``. Callers that have a
vCPU pass ``vcpu->arch.mmu->kind``; code that has only the VM can pass
``&kvm->arch.direct_mmu``, which step 6 uses. No structure changes.

Changed: the signature of ``make_spte`` and its caller ``tdp_mmu_map``.

KVM
---
``make_spte`` in ``arch/x86/kvm/mmu/spte.c`` took ``struct kvm_vcpu *`` in
2021, and used it for the memory type (``get_mt_mask``) and the unsync check
(``mmu_try_to_unsync_pages``) as well as the zero-bit check; the model has
only the last (Ben Gardon's RFC moved the other two out, patches 8 and 10).
The 2026 series tests SPTEs against ``struct kvm_page_format``
(216b1a47e80c).
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
