"""The direct kind: one interface, two implementations, chosen as KVM chooses.

The 2021 sketch gives the VM one ``struct kvm_mmu_kind direct_mmu`` that
serves "either legacy EPT/NPT or the new MMU". Both implementations here
present the same interface, :class:`DirectMmu`:
:class:`refimpl.host.tdp_mmu.TdpMmu` (the TDP MMU, ``tdp_mmu=1``) and
:class:`refimpl.host.legacy_direct_mmu.LegacyDirectMmu` (direct shadow
pages, ``tdp_mmu=0``). Code that drives a direct MMU takes a factory,
``Callable[[Kvm], DirectMmu]``, so either can be plugged in.

KVM
---
``tdp_mmu_enabled`` (``arch/x86/kvm/mmu/mmu.c``) is the module parameter
``tdp_mmu``, default true and defined only on 64-bit hosts;
``kvm_mmu_x86_module_init`` snapshots it into ``tdp_mmu_allowed``, and
``kvm_configure_mmu`` sets ``tdp_mmu_enabled = tdp_mmu_allowed &&
tdp_enabled`` when the vendor module loads. Every direct-MMU entry point
then branches on it (``kvm_tdp_page_fault``, ``mmu_alloc_direct_roots``,
``kvm_mmu_zap_all_fast``...). The default became true in v5.15
("KVM: x86: enable TDP MMU by default", 71ba3f3189c7).
"""

from __future__ import annotations

from typing import Any, Iterator, Protocol, Union, runtime_checkable

from refimpl.host.kvm_mmu import Mmu, MmuStats
from refimpl.host.legacy_direct_mmu import LegacyDirectMmu
from refimpl.host.mmu import HwResult
from refimpl.host.mmu_page import MmuPage
from refimpl.host.outcomes import AccessResult
from refimpl.host.tdp_mmu import FaultResult, LeafSpte, TdpMmu
from refimpl.host.vm import Kvm, Memslot, MemslotChange, Vcpu

# DirectMmu is a typing.Protocol, an interface rather than code: the API
# reference documents it, but __all__ (what the API fuzz calls) leaves it out.
__all__ = ["make_direct_mmu"]


@runtime_checkable
class DirectMmu(Protocol):
    """What both implementations of the direct kind offer.

    The vCPU side (``init_vcpu``, ``load``, ``unload``, ``page_fault``,
    ``hw_translate``, ``guest_access``), the VM side (``zap_gfn_range``,
    ``invalidate_all_roots``, the memslot listener's three methods), and
    inspection (``leaf_sptes``, ``stats``).
    """

    kvm: Kvm

    def init_vcpu(self, vcpu: Vcpu) -> Mmu: ...
    def load(self, vcpu: Vcpu) -> MmuPage: ...
    def unload(self, vcpu: Vcpu) -> None: ...
    def page_fault(self, vcpu: Vcpu, gpa: int, error_code: int) -> FaultResult: ...
    def hw_translate(self, vcpu: Vcpu, gpa: int, access: int = 0) -> HwResult: ...
    def guest_access(self, vcpu: Vcpu, gpa: int, access: int = 0) -> AccessResult: ...
    def zap_gfn_range(self, start: int, end: int, as_id: int = 0, *,
                      flush: bool = True) -> bool: ...
    def invalidate_all_roots(self) -> None: ...
    def memslot_changed(self, kvm: Kvm, change: MemslotChange) -> None: ...
    def sync_dirty_log(self, kvm: Kvm, slot: Memslot) -> None: ...
    def dirty_log_cleared(self, kvm: Kvm, slot: Memslot, gfns: frozenset[int]) -> None: ...
    def leaf_sptes(self) -> Iterator[LeafSpte]: ...

    @property
    def stats(self) -> MmuStats: ...


def make_direct_mmu(kvm: Kvm, *, tdp_mmu: bool = True,
                    **kw: Any) -> Union[TdpMmu, LegacyDirectMmu]:
    """The VM's direct MMU, chosen as KVM chooses it.

    Parameters
    ----------
    kvm : refimpl.host.vm.Kvm
    tdp_mmu : bool
        The module parameter ``tdp_mmu`` (default true). The model's hosts
        are 64-bit and its direct kind always has TDP, so the parameter
        alone decides.
    **kw
        Passed to the constructor (``kind``, ``fmt``, ``host_max_level``,
        ``zap_all_on_delete``, ``eager_split``, ``recovery``, ``bugs``).

    Returns
    -------
    refimpl.host.tdp_mmu.TdpMmu or refimpl.host.legacy_direct_mmu.LegacyDirectMmu

    Raises
    ------
    TypeError
        ``tdp_mmu`` is not a bool; whatever the constructor raises.
    """
    if not isinstance(tdp_mmu, bool):
        raise TypeError(f"tdp_mmu must be a bool, got {type(tdp_mmu).__name__}")
    return TdpMmu(kvm, **kw) if tdp_mmu else LegacyDirectMmu(kvm, **kw)
