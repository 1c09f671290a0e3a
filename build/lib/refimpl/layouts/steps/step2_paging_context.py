"""Step 2: the walk half of each ``kvm_mmu`` becomes a paging context.

The step the mail does not list but needs before a kind can be split out:
the guest-walk fields (the walk callbacks, ``cpu_role``, ``permissions``,
``pkru_mask``, ``guest_rsvd_check``, ``pdptrs``) leave ``struct kvm_mmu``
for ``struct kvm_paging_context``: ``root_mmu``'s go to ``root_walk`` and
``guest_mmu``'s to ``walk01`` (it walks L1's EPT12/NPT12). Each ``kvm_mmu``
gets a ``walk`` pointer to its context. ``guest_mmu`` is renamed
``tdp12_mmu`` (it always shadows L1's TDP tables), as in the sketch. The
``walk`` pointer now designates ``&root_walk`` or ``&walk12``.

Changed: the ``kvm_mmu`` and vCPU structs, and the accessors ``walk_of``,
``tdp12`` and ``root_walk`` (and the pointer table gains ``mmu->walk``).

KVM
---
The 2026 series has the same split: ``struct kvm_pagewalk`` with
``kvm_mmu.w`` pointing to it (``arch/x86/include/asm/kvm_host.h``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from refimpl.errors import check_instance
from refimpl.layouts.legacy import INVALID_ROOT, Derived, GuestRegs, Host, RootInfo, _prev_roots
from refimpl.layouts.split import KvmPagingContext
from refimpl.layouts.steps.step0_legacy import _STRUCTURES
from refimpl.layouts.steps.step1_walk12 import Walk12
from refimpl.host.roles import PT32E_ROOT_LEVEL, PageRole

__all__ = ["KvmMmu", "KvmVcpuArch", "PagingContext"]


@dataclass(eq=False)
class KvmMmu:
    """Step 2's ``struct kvm_mmu``: roots and table state, plus ``walk``.

    Attributes
    ----------
    walk : refimpl.layouts.split.KvmPagingContext or None
        Its paging context (``root_walk`` or ``walk01``).
    page_fault, sync_spte : str or None
        Callbacks.
    root, root_role, prev_roots, pae_root, pml4_root, pml5_root
        As in :class:`refimpl.layouts.legacy.KvmMmu`.
    shadow_zero_check : refimpl.layouts.legacy.Derived or None
        Still here; moves to the kind in step 3.
    """

    walk: Optional[KvmPagingContext] = None
    page_fault: Optional[str] = None
    sync_spte: Optional[str] = None
    root: RootInfo = INVALID_ROOT
    root_role: PageRole = PageRole()
    prev_roots: tuple = field(default_factory=_prev_roots)
    pae_root: bool = False
    pml4_root: bool = False
    pml5_root: bool = False
    shadow_zero_check: Optional[Derived] = None


@dataclass(eq=False)
class KvmVcpuArch:
    """Step 2's vCPU: two ``kvm_mmu``, three paging contexts, two pointers."""

    host: Host
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
        for name in ("root_mmu", "tdp12_mmu", "root_walk", "walk01", "walk12"):
            if getattr(self, name) is obj:
                return name
        raise ValueError(f"{obj!r} is not a structure of this vCPU")


class PagingContext(Walk12):
    """Step 2: ``root_walk`` and ``walk01`` split out; ``guest_mmu`` is ``tdp12_mmu``."""

    number = 2
    name = "paging_context"

    def create_vcpu(self, vm):
        """Each ``kvm_mmu`` points to its paging context."""
        check_instance("vm", vm, self._types()[0])
        host = vm.host
        v = KvmVcpuArch(host)
        v.root_mmu.walk, v.tdp12_mmu.walk = v.root_walk, v.walk01
        v.mmu, v.walk = v.root_mmu, v.root_walk
        needs_pae = not (host.tdp_enabled and host.tdp_level > PT32E_ROOT_LEVEL)
        v.root_mmu.pae_root = needs_pae
        v.tdp12_mmu.pae_root = needs_pae and host.tdp_enabled
        vm.vcpus.append(v)
        return v

    def walk_of(self, m):
        """``m->walk``."""
        check_instance("m", m, self._types()[2])
        return m.walk

    def tdp12(self, vcpu):
        """``&vcpu->arch.tdp12_mmu``."""
        self._vcpu(vcpu)
        return vcpu.tdp12_mmu

    def root_walk(self, vcpu):
        """``&vcpu->arch.root_walk``."""
        self._vcpu(vcpu)
        return vcpu.root_walk

    def pointer_table(self, vcpu) -> dict:
        """Where ``mmu``, ``walk`` and ``mmu->walk`` point."""
        self._vcpu(vcpu)
        return {"mmu": vcpu.name_of(vcpu.mmu), "walk": vcpu.name_of(vcpu.walk),
                "mmu->walk": vcpu.name_of(vcpu.mmu.walk)}


_STRUCTURES[PagingContext] = {"vcpu": KvmVcpuArch, "mmu": KvmMmu}  # for the argument checks
