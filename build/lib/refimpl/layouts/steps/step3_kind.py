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
The 2021 mail; the 2026 series has ``struct kvm_page_format`` in this role
(``kvm_mmu.fmt``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from refimpl.errors import check_instance
from refimpl.layouts.legacy import GuestRegs, Host
from refimpl.layouts.split import KvmMmu, KvmMmuKind, KvmPagingContext
from refimpl.layouts.steps.step0_legacy import _STRUCTURES
from refimpl.layouts.steps.step2_paging_context import PagingContext
from refimpl.host.roles import PT32E_ROOT_LEVEL

__all__ = ["KvmVcpuArch", "Kind"]


@dataclass(eq=False)
class KvmVcpuArch:
    """Step 3's vCPU: two kinds, two ``kvm_mmu``, three paging contexts."""

    host: Host
    direct_mmu: KvmMmuKind = field(default_factory=lambda: KvmMmuKind(direct=True))
    shadow_mmu: KvmMmuKind = field(default_factory=KvmMmuKind)
    root_mmu: KvmMmu = field(default_factory=KvmMmu)
    tdp12_mmu: KvmMmu = field(default_factory=KvmMmu)
    mmu: Optional[KvmMmu] = None
    root_walk: KvmPagingContext = field(default_factory=KvmPagingContext)
    walk01: KvmPagingContext = field(default_factory=KvmPagingContext)
    walk12: KvmPagingContext = field(default_factory=KvmPagingContext)
    walk: Optional[KvmPagingContext] = None
    regs: GuestRegs = GuestRegs()
    guest_mode: bool = False
    l1_regs: Optional[GuestRegs] = None
    nested_pgd: Optional[int] = None

    def name_of(self, obj: object) -> str:
        """Which member ``obj`` is."""
        for name in ("direct_mmu", "shadow_mmu", "root_mmu", "tdp12_mmu",
                     "root_walk", "walk01", "walk12"):
            if getattr(self, name) is obj:
                return name
        raise ValueError(f"{obj!r} is not a structure of this vCPU")


class Kind(PagingContext):
    """Step 3: every ``kvm_mmu`` points to a kind (per vCPU for now)."""

    number = 3
    name = "kind"

    def create_vcpu(self, vm):
        """``root_mmu.kind`` is the direct kind with TDP, else the shadow kind."""
        check_instance("vm", vm, self._types()[0])
        host = vm.host
        v = KvmVcpuArch(host)
        v.root_mmu.kind = v.direct_mmu if host.tdp_enabled else v.shadow_mmu
        v.tdp12_mmu.kind = v.shadow_mmu
        v.root_mmu.walk, v.tdp12_mmu.walk = v.root_walk, v.walk01
        v.mmu, v.walk = v.root_mmu, v.root_walk
        needs_pae = not (host.tdp_enabled and host.tdp_level > PT32E_ROOT_LEVEL)
        v.root_mmu.pae_root = needs_pae
        v.tdp12_mmu.pae_root = needs_pae and host.tdp_enabled
        vm.vcpus.append(v)
        return v

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


_STRUCTURES[Kind] = {"vcpu": KvmVcpuArch, "mmu": KvmMmu}  # for the argument checks
