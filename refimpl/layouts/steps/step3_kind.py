"""Step 3: ``struct kvm_mmu_kind`` splits out of ``struct kvm_mmu``.

What is needed to *operate on* KVM's tables, without a running vCPU,
leaves ``struct kvm_mmu`` for ``struct kvm_mmu_kind``: ``sync_spte`` and
``shadow_zero_check`` (plus ``direct``, which says which kind it is). Each
vCPU has two kinds for now, ``direct_mmu`` (TDP tables) and ``shadow_mmu``
(shadow tables), and each ``kvm_mmu`` gets a ``kind`` pointer:
``root_mmu.kind`` is ``&direct_mmu`` with TDP and ``&shadow_mmu`` without,
``tdp12_mmu.kind`` is always ``&shadow_mmu``. The ``kvm_mmu`` struct is now
the sketch's (:class:`refimpl.layouts.split.KvmMmu`).

Changed: the vCPU struct and the accessor ``kind_of``. The direct kind is
still per vCPU; step 4 moves it to the VM.

KVM
---
The 2021 mail; the 2026 series pulls the page format into a new struct
(72f734a435b2), ``struct kvm_page_format`` (``kvm_mmu.fmt``), which takes
the zero-bit check but not ``sync_spte``.
"""

from __future__ import annotations

from refimpl.errors import check_instance
from refimpl.layouts.steps.step2_paging_context import PagingContext
from refimpl.layouts.structs import py_class

__all__ = ["KvmVcpuArch", "Kind"]

KvmVcpuArch = py_class(3, "kvm_vcpu_arch", __name__)


class Kind(PagingContext):
    """Step 3: every ``kvm_mmu`` points to a kind (per vCPU for now)."""

    number = 3
    name = "kind"

    def connect(self, vcpu) -> None:
        """``root_mmu.kind`` is the direct kind with TDP, else the shadow kind."""
        super().connect(vcpu)
        vcpu.root_mmu.kind = (self.direct_kind(vcpu) if vcpu.host.tdp_enabled
                              else vcpu.shadow_mmu)
        vcpu.tdp12_mmu.kind = vcpu.shadow_mmu

    def direct_kind(self, vcpu):
        """The kind of TDP tables: ``&vcpu->arch.direct_mmu``."""
        self._vcpu(vcpu)
        return vcpu.direct_mmu

    def kind_of(self, m):
        """``m->kind``."""
        check_instance("m", m, self._types()[2])
        return m.kind

    def pointer_table(self, vcpu) -> dict:
        """As step 2, plus where each ``kvm_mmu``'s kind pointer goes."""
        self._vcpu(vcpu)
        return {**super().pointer_table(vcpu),
                "root_mmu.kind": vcpu.name_of(vcpu.root_mmu.kind),
                "tdp12_mmu.kind": vcpu.name_of(vcpu.tdp12_mmu.kind)}

