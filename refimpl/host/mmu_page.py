"""``struct kvm_mmu_page``: one page of KVM's tables, for both MMUs.

KVM has one structure for a page-table page it built, whichever MMU built
it: a ``tdp_mmu_page`` flag says which, and unions hold the fields only
one of them uses. :class:`refimpl.host.mmu_page.MmuPage` is that structure. The TDP MMU
(:mod:`refimpl.host.tdp_mmu`) makes pages with :meth:`refimpl.host.mmu_page.MmuPage.tdp`, the
shadow MMU (:mod:`refimpl.host.shadow_mmu`) with :meth:`refimpl.host.mmu_page.MmuPage.shadow`;
the shadow-only fields are None on a TDP page, as the other arm of a union
is meaningless there.

Glossary
--------
role
    A :class:`refimpl.host.roles.PageRole`: its level, and every bit that
    changes the page's contents; ``role.invalid`` once it is obsolete.
spt
    The 512 SPTEs, in the host frame ``pfn``. The shadow MMU also mirrors
    them in a list (``spt``) for its bookkeeping; the TDP MMU reads host
    memory only.
root_count
    References held by vCPU roots (and, for a TDP root, by the VM's list of
    roots while it is valid).

KVM
---
``struct kvm_mmu_page`` in ``arch/x86/kvm/mmu/mmu_internal.h``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from refimpl.host.roles import ACC_EXEC_MASK, ACC_USER_MASK, ACC_WRITE_MASK, PageRole

__all__ = ["SPTE_ENT_PER_PAGE", "MmuPage"]

#: SPTEs per page-table page (``SPTE_ENT_PER_PAGE``).
SPTE_ENT_PER_PAGE = 512


def _acc_str(acc: int) -> str:
    return ("u" if acc & ACC_USER_MASK else "-") + ("w" if acc & ACC_WRITE_MASK else "-") + (
        "x" if acc & ACC_EXEC_MASK else "-")


@dataclass(eq=False)
class MmuPage:
    """One page of KVM's tables (``struct kvm_mmu_page``).

    Attributes
    ----------
    role : refimpl.host.roles.PageRole
        Its role; ``role.invalid`` is set once it is zapped or its root
        invalidated.
    gfn : int
        First gfn it maps (a shadow page: the guest table it shadows).
    pfn : int
        The host frame holding its 512 SPTEs (``sp->spt``).
    tdp_mmu_page : bool
        Built by the TDP MMU (``sp->tdp_mmu_page``).
    root_count : int
        References held by roots (``root_count`` in the shadow arm,
        ``tdp_mmu_root_count`` in the TDP arm of KVM's union).
    spt : list of int or None
        Shadow pages: the SPTEs, mirrored in host memory (the CPU walks
        those).
    shadowed_translation : dict of int to (int, int), or None
        Shadow pages: per leaf SPTE index, ``(gfn, ACC)`` of the guest
        translation it shadows (``sp->shadowed_translation``).
    parent_ptes : set of (MmuPage, int), or None
        Shadow pages: the SPTEs that point to this page (``sp->parent_ptes``,
        the rmap of non-leaf SPTEs).
    unsync : bool
        Shadow pages, level 1 only: the guest table may differ from the SPTEs.
    unsync_child_bitmap : set of int, or None
        Shadow pages: indices of SPTEs below which an unsync page may be
        (``unsync_child_bitmap``); cleared lazily.
    write_flooding_count : int
        Shadow pages: emulated writes since a fault last used it (zapped at 3).

    KVM
    ---
    ``struct kvm_mmu_page`` in ``arch/x86/kvm/mmu/mmu_internal.h``: the TDP
    MMU's pages have ``tdp_mmu_page`` set and use ``tdp_mmu_root_count``;
    the shadow MMU's use ``root_count``, ``parent_ptes``, ``unsync`` and the
    rest. The model keeps one ``root_count`` for both arms.
    """

    role: PageRole
    gfn: int
    pfn: int
    tdp_mmu_page: bool = False
    root_count: int = 0
    spt: Optional[list[int]] = None
    shadowed_translation: Optional[dict[int, tuple[int, int]]] = None
    parent_ptes: Optional[set[tuple["MmuPage", int]]] = None
    unsync: bool = False
    unsync_child_bitmap: Optional[set[int]] = None
    write_flooding_count: int = 0

    @classmethod
    def tdp(cls, role: PageRole, gfn: int, pfn: int) -> "MmuPage":
        """A page of the TDP MMU (``tdp_mmu_alloc_sp`` + ``tdp_mmu_init_sp``)."""
        return cls(role, gfn, pfn, True)

    @classmethod
    def shadow(cls, role: PageRole, gfn: int, pfn: int) -> "MmuPage":
        """A page of the shadow MMU, its bookkeeping empty
        (``kvm_mmu_alloc_shadow_page``)."""
        return cls(role, gfn, pfn, False, 0, [0] * SPTE_ENT_PER_PAGE, {}, set(), False, set())

    @property
    def hpa(self) -> int:
        """Host-physical address of the table."""
        return self.pfn << 12

    @property
    def invalid(self) -> bool:
        """``role.invalid``: obsolete, to be freed when unreferenced."""
        return bool(self.role.invalid)

    @property
    def unsync_children(self) -> int:
        """``sp->unsync_children``: bits set in the unsync-child bitmap."""
        return len(self.unsync_child_bitmap) if self.unsync_child_bitmap else 0

    @property
    def has_gptes(self) -> bool:
        """It shadows guest entries (``sp_has_gptes``: not direct, not passthrough)."""
        return not self.role.direct and not self.role.passthrough

    def __repr__(self) -> str:
        r = self.role
        kind = "tdp" if self.tdp_mmu_page else "direct" if r.direct else "shadow"
        return (f"MmuPage({kind} gfn={self.gfn:#x} level={r.level} q={r.quadrant} "
                f"access={_acc_str(r.access)} role={r.word:#x}"
                f"{' unsync' if self.unsync else ''}{' invalid' if r.invalid else ''})")
