"""Quadrants: how 64-bit shadow pages cover a 32-bit guest's tables, drawn as SVG.

A 32-bit guest table holds 1024 four-byte entries; a shadow page holds 512
eight-byte SPTEs. So one guest page directory (4 GiB) is shadowed by four
shadow PDs of 1 GiB each, reached through the four entries of the PAE root,
and one guest page table (4 MiB) by two shadow PTs of 2 MiB each.
``role.quadrant`` says which part of the guest table a shadow page covers.

:func:`quadrant_path` does not compute the quadrants itself: it builds a
32-bit guest that maps one gva, lets :class:`refimpl.host.shadow_mmu.ShadowMmu`
fault it in, and reads the roles of the shadow pages the model created
(``_load`` assigns the PD quadrants, :func:`refimpl.host.shadow_mmu.kvm_mmu_child_role`
the PT quadrant). :func:`quadrant_diagram` draws that path with
:mod:`refimpl.viz.svg`.

KVM
---
``mmu_alloc_shadow_roots`` (PD quadrant = index of the PAE root entry) and
``kvm_mmu_child_role`` (PT quadrant = parity of the shadow PDE index) in
``arch/x86/kvm/mmu/mmu.c``.
"""

from __future__ import annotations

from dataclasses import dataclass

from refimpl.errors import check_fields, check_range
from refimpl.guest.cpu import CpuState, PagingMode
from refimpl.guest.memory import GuestMemory
from refimpl.guest.tables import GuestPageTables
from refimpl.host.mmu_page import MmuPage
from refimpl.host.shadow_mmu import ShadowMmu
from refimpl.host.vm import HostMemory, Kvm
from refimpl.viz.svg import Arrow, Box, Diagram, render

_GUEST_TABLES_GFN = 0x100  # guest tables start here; data is mapped at gfn 0x200
_DATA_GPA = 0x200000
_P, _W, _A, _D = 1, 2, 0x20, 0x40


@dataclass(frozen=True)
class QuadrantPath:
    """Where one gva of a 32-bit guest lands in the guest's and KVM's tables.

    Parameters
    ----------
    gva : int
    guest_pde, guest_pte : int
        Index of the guest's PDE (gva bits 31:22) and PTE (bits 21:12), 0..1023.
    pd_quadrant : int
        ``role.quadrant`` of the shadow PD the walk goes through (0..3).
    shadow_pde : int
        Index of the SPTE in that shadow PD (0..511).
    pt_quadrant : int
        ``role.quadrant`` of the shadow PT (0 or 1).
    shadow_pte : int
        Index of the leaf SPTE in the shadow PT (0..511).
    pd_quadrants, pt_quadrants : tuple of int
        Quadrants of every level-2 and level-1 shadow page the model built
        (the four PDs exist as soon as the root is loaded; a PT only once
        an access reached it).
    """

    gva: int
    guest_pde: int
    guest_pte: int
    pd_quadrant: int
    shadow_pde: int
    pt_quadrant: int
    shadow_pte: int
    pd_quadrants: tuple[int, ...]
    pt_quadrants: tuple[int, ...]

    def __post_init__(self) -> None:
        check_fields(self, gva=int, guest_pde=int, guest_pte=int, pd_quadrant=int,
                     shadow_pde=int, pt_quadrant=int, shadow_pte=int,
                     pd_quadrants=tuple, pt_quadrants=tuple)
        check_range("QuadrantPath.gva", self.gva, 0, 1 << 32)
        for name, hi in (("guest_pde", 1024), ("guest_pte", 1024), ("pd_quadrant", 4),
                         ("shadow_pde", 512), ("pt_quadrant", 2), ("shadow_pte", 512)):
            check_range(f"QuadrantPath.{name}", getattr(self, name), 0, hi)


def _leaf_index(sp: MmuPage) -> int:
    present = [i for i, e in enumerate(sp.spt) if e & _P]
    if len(present) != 1:
        raise AssertionError(f"expected one present SPTE in {sp!r}, found {len(present)}")
    return present[0]


def quadrant_path(gva: int) -> QuadrantPath:
    """Fault in ``gva`` of a 32-bit guest and read the quadrants the model chose.

    Parameters
    ----------
    gva : int
        A 32-bit guest-virtual address (4 KiB pages, CR0.WP=1, no PSE).

    Returns
    -------
    QuadrantPath

    Raises
    ------
    TypeError
        ``gva`` is not an int.
    ValueError
        ``gva`` is outside 0..2**32-1.
    """
    gva = check_range("gva", gva, 0, 1 << 32)
    kvm = Kvm(HostMemory(0x1000, backed_frames=0x200))
    kvm.add_memslot(0, 0, 0x400)
    mem = GuestMemory(0x400 << 12)
    pt = GuestPageTables(mem, PagingMode.BITS32, _GUEST_TABLES_GFN)
    pt.map(gva & ~0xFFF, _DATA_GPA, leaf=_P | _W | _A | _D)
    mmu = ShadowMmu(kvm, mem)
    cpu = CpuState(cr0=0x80010001, cr3=pt.cr3, cr4=0x10, efer=0, maxphyaddr=46)
    vc = mmu.add_vcpu(cpu)
    result = mmu.access(vc, gva, 0)
    if not result.ok:
        raise AssertionError(f"the access to {gva:#x} did not complete: {result}")
    sps = mmu.shadow_pages()
    pds = [sp for sp in sps if sp.role.level == 2]
    (leaf_pt,) = [sp for sp in sps if sp.role.level == 1]
    # The shadow PD on the path is the one whose SPTE points to the PT.
    path_pd = [(sp, i) for sp in pds for i, e in enumerate(sp.spt)
               if e & _P and (e >> 12) & ((1 << 40) - 1) == leaf_pt.pfn]
    (pd, shadow_pde), = path_pd
    return QuadrantPath(
        gva=gva, guest_pde=gva >> 22, guest_pte=(gva >> 12) & 1023,
        pd_quadrant=pd.role.quadrant, shadow_pde=shadow_pde,
        pt_quadrant=leaf_pt.role.quadrant, shadow_pte=_leaf_index(leaf_pt),
        pd_quadrants=tuple(sorted(sp.role.quadrant for sp in pds)),
        pt_quadrants=(leaf_pt.role.quadrant,),
    )


def quadrant_diagram(gva: int) -> Diagram:
    """The guest's tables (left of each pair) and the shadow pages that cover them.

    Left, the guest page directory in four parts and the four shadow PDs
    (one per PAE root entry); right, the guest page table in two halves and
    the two shadow PTs. Boxes on the path of ``gva`` are blue, the other
    parts grey, and a shadow PT the model has not built is dashed. Arrows:
    guest part -> the shadow page that covers it, and the shadow PDE on the
    path -> the shadow PT it points to.
    """
    p = quadrant_path(gva)
    boxes: list[Box] = []
    arrows: list[Arrow] = []
    for q in range(4):
        y = 10 + 80 * q
        on = q == p.pd_quadrant
        boxes.append(Box(f"gpd{q}", 10, y, 175, f"guest PDEs {256 * q}-{256 * q + 255}",
                         (f"{q}-{q + 1} GiB",
                          f"PDE {p.guest_pde}" if on else "4-byte entries"),
                         style="used" if on else "idle"))
        boxes.append(Box(f"spd{q}", 225, y, 185, f"shadow PD, quadrant {q}",
                         (f"PAE root entry {q}, 1 GiB",
                          f"SPTE {p.shadow_pde}" if on else "8-byte entries"),
                         style="used" if on else "idle"))
        arrows.append(Arrow(f"gpd{q}", f"spd{q}", "covers", "r", "l", 20, False))
    for h in range(2):
        y = 60 + 120 * h
        on = h == p.pt_quadrant
        built = h in p.pt_quadrants
        lo = 512 * h
        boxes.append(Box(f"spt{h}", 480, y, 185, f"shadow PT, quadrant {h}",
                         ("512 SPTEs, 2 MiB",
                          f"SPTE {p.shadow_pte}" if on else "not built yet"),
                         style="used" if on else ("idle" if built else "absent")))
        boxes.append(Box(f"gpt{h}", 710, y, 180, f"guest PTEs {lo}-{lo + 511}",
                         (f"{2 * h}-{2 * h + 2} MiB of 4 MiB",
                          f"PTE {p.guest_pte}" if on else "4-byte entries"),
                         style="used" if on else "idle"))
        arrows.append(Arrow(f"gpt{h}", f"spt{h}", "covers", "l", "r", 20, False))
    arrows.append(Arrow(f"spd{p.pd_quadrant}", f"spt{p.pt_quadrant}",
                        f"SPTE {p.shadow_pde}: bit 21 = {p.pt_quadrant}", "r", "l", 40))
    return Diagram(900, 315, boxes, arrows,
                   caption=f"quadrants of gva {p.gva:#010x} in a 32-bit guest")


def quadrant_svg(gva: int) -> str:
    """:func:`quadrant_diagram` rendered as one ``<svg>`` element."""
    gva = check_range("gva", gva, 0, 1 << 32)
    return render(quadrant_diagram(gva), f"quadrants-{gva:08x}")
