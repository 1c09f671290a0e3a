"""The guest page walk as a figure: address bits, tables, entries, page.

:func:`walk_figure` runs one real walk (:func:`refimpl.guest.walker.translate`)
and keeps, level by level, what a reader wants to see: which bits of the gva
index the level's table, where that table is, which entry was read and what
it holds. :func:`walk_diagram` lays that out as a :class:`refimpl.viz.svg.Diagram`
(the gva's fields in a left column; CR3, the tables and the page or the
fault in a right column; one row per level), and :func:`walk_svg` renders it. Nothing is typed by hand:
the table addresses, entries and gpa come from the walk's trace, the bit
ranges from the entry format of the mode.

Glossary
--------
step
    One level of the walk: the index field of the gva, the table it indexes,
    and the entry read there (:class:`WalkStep`).
PDPTE registers
    In PAE paging the top "table" is the four PDPTEs loaded at CR3 time; the
    figure names it so, and the entry's address is where it was loaded from.
"""

from __future__ import annotations

from dataclasses import dataclass

from refimpl.errors import check_fields, check_instance, check_int
from refimpl.guest.cpu import CpuState, PagingMode
from refimpl.guest.memory import GuestMemory
from refimpl.guest.walker import TranslateResult, translate, walk_context
from refimpl.viz.svg import Arrow, Box, Diagram, render
from refimpl.viz.walk import _flag_str, decode_error_code

#: The SDM's name of the table at each level (level 2 is a page directory in every mode).
TABLE_NAMES = {5: "PML5 table", 4: "PML4 table", 3: "PDPT", 2: "page directory", 1: "page table"}

# The figure's geometry in pixels. The address fields go in a left column,
# CR3, the tables and the page in a right column, one row per level, so the
# walk reads top down.
FIELD_W, TABLE_W, GAP, MARGIN, ROW_H = 128, 190, 44, 10, 100

@dataclass(frozen=True)
class WalkStep:
    """One level of a walk, as the figure draws it.

    Parameters
    ----------
    level : int
        1 (page table) to 5 (PML5).
    hi, lo : int
        The gva bits that index this level's table (inclusive).
    index : int
        Their value.
    table_gpa : int
        Where the table starts (for PAE's top level, the 32-byte PDPT).
    entry_gpa : int
        Where the entry was read.
    entry : int
        The entry as read (before any A/D update).
    """

    level: int
    hi: int
    lo: int
    index: int
    table_gpa: int
    entry_gpa: int
    entry: int

    def __post_init__(self) -> None:
        check_fields(self, level=int, hi=int, lo=int, index=int, table_gpa=int,
                     entry_gpa=int, entry=int)


@dataclass(frozen=True)
class WalkFigure:
    """A walk reduced to what the figure shows.

    Parameters
    ----------
    mode : PagingMode
    gva, cr3 : int
    steps : tuple of WalkStep
        Top level first, one per entry read.
    result : TranslateResult
        The walk itself: ``gpa`` and ``level`` on success, ``fault`` otherwise.
    offset_hi : int or None
        The gva bits ``offset_hi:0`` that pass through to the page (None if
        the walk faulted).
    """

    mode: PagingMode
    gva: int
    cr3: int
    steps: tuple[WalkStep, ...]
    result: TranslateResult
    offset_hi: int | None

    def __post_init__(self) -> None:
        check_fields(self, mode=PagingMode, gva=int, cr3=int, steps=tuple,
                     result=TranslateResult, offset_hi=(int, None))
        for s in self.steps:
            check_instance("WalkFigure.steps[]", s, WalkStep)

    @property
    def page_gpa(self) -> int | None:
        """Base of the page the walk reached (None if it faulted)."""
        if self.offset_hi is None:
            return None
        return self.result.gpa & ~((1 << (self.offset_hi + 1)) - 1)


def walk_figure(mem: GuestMemory, cpu: CpuState, gva: int, access: int = 0) -> WalkFigure:
    """Walk ``gva`` on a copy of ``mem`` and keep what the figure draws.

    The walk runs on a copy, so drawing a figure never sets A/D bits.

    Raises
    ------
    TypeError
        ``mem`` or ``cpu`` of the wrong type.
    ValueError
        Paging is off (there is nothing to draw), or ``gva``/``access`` are
        refused by :func:`refimpl.guest.walker.translate`.
    """
    check_instance("mem", mem, GuestMemory)
    check_instance("cpu", cpu, CpuState)
    gva = check_int("gva", gva)
    if cpu.mode is PagingMode.NONE:
        raise ValueError("cpu: paging is off (CR0.PG=0), so there is no walk to draw")
    result = translate(mem.copy(), cpu, gva, access)
    fmt, top = walk_context(cpu).fmt, cpu.linear_address_bits - 1
    steps = []
    for level, entry_gpa, entry in result.trace:
        lo = fmt.level_shift(level)
        hi = min(lo + fmt.level_bits - 1, top)
        index = (gva >> lo) & ((1 << (hi - lo + 1)) - 1)
        steps.append(WalkStep(level, hi, lo, index, entry_gpa - index * fmt.entry_bytes,
                              entry_gpa, entry))
    offset_hi = None if result.fault else fmt.level_shift(result.level) - 1
    return WalkFigure(cpu.mode, gva, cpu.cr3, tuple(steps), result, offset_hi)


def _size(nbytes: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            return f"{nbytes >> shift} {unit}"
    return f"{nbytes} B"


def walk_diagram(fig: WalkFigure) -> Diagram:
    """The figure's boxes and arrows.

    Box keys: ``gva``, ``cr3``, ``bits-L`` and ``table-L`` for each level
    ``L`` walked, ``offset`` and ``page`` on success, ``fault`` otherwise.
    """
    check_instance("fig", fig, WalkFigure)
    wide = fig.mode is not PagingMode.BITS32
    left, right = MARGIN, MARGIN + FIELD_W + GAP
    y = lambda row: MARGIN + row * ROW_H  # noqa: E731
    boxes = [Box("gva", left, y(0), FIELD_W, "gva", (f"{fig.gva:#x}",), "pointer"),
             Box("cr3", right, y(0), TABLE_W, "CR3", (f"{fig.cr3:#x}",), "pointer")]
    arrows = []
    prev = "cr3"
    for row, s in enumerate(fig.steps, 1):
        pae_top = fig.mode is PagingMode.PAE and s.level == 3
        title = "PDPTE registers" if pae_top else f"{TABLE_NAMES[s.level]}"
        where = "loaded at MOV CR3" if pae_top else f"at {s.table_gpa:#x}"
        boxes.append(Box(f"bits-{s.level}", left, y(row) + 20, FIELD_W, f"bits {s.hi}:{s.lo}",
                         (f"index {s.index}",), "idle"))
        boxes.append(Box(f"table-{s.level}", right, y(row), TABLE_W, title,
                         (where, f"[{s.index}] at {s.entry_gpa:#x}", f"= {s.entry:#x}",
                          _flag_str(s.entry, wide))))
        arrows.append(Arrow(f"bits-{s.level}", f"table-{s.level}", "index", bend=15,
                            show_label=False))
        arrows.append(Arrow(prev, f"table-{s.level}", "root" if prev == "cr3" else "next table",
                            src_side="b", dst_side="t", bend=6, show_label=False))
        prev = f"table-{s.level}"
    row = len(fig.steps) + 1
    r = fig.result
    if r.fault is None:
        size = 1 << (fig.offset_hi + 1)
        boxes.append(Box("offset", left, y(row) + 8, FIELD_W, f"bits {fig.offset_hi}:0",
                         (f"offset {fig.gva & (size - 1):#x}",), "idle"))
        boxes.append(Box("page", right, y(row), TABLE_W, f"{_size(size)} page",
                         (f"at {fig.page_gpa:#x}", f"gpa {r.gpa:#x}", f"leaf level {r.level}")))
        arrows.append(Arrow("offset", "page", "offset", bend=15, show_label=False))
        arrows.append(Arrow(prev, "page", "page", src_side="b", dst_side="t", bend=6,
                            show_label=False))
        what = f"gpa {r.gpa:#x}"
    else:
        lines = (f"vector {r.fault.vector}",)
        if r.fault.vector == 14:
            lines += (f"error {decode_error_code(r.fault.error_code)}", f"at level {r.level}")
        boxes.append(Box("fault", right, y(row), TABLE_W, "fault", lines, "absent"))
        arrows.append(Arrow(prev, "fault", "fault", src_side="b", dst_side="t", bend=6,
                            show_label=False))
        what = f"fault (vector {r.fault.vector})"
    height = max(b.y + b.h for b in boxes) + MARGIN
    caption = f"{fig.mode.name} walk of gva {fig.gva:#x}: {what}"
    return Diagram(right + TABLE_W + MARGIN, height, boxes, arrows, caption)


def walk_svg(mem: GuestMemory, cpu: CpuState, gva: int, access: int = 0, *,
             ident: str = "walkfig") -> str:
    """One ``<svg>`` of the walk of ``gva``: :func:`walk_diagram` of :func:`walk_figure`.

    ``ident`` names the figure in the page (several figures can share one).
    """
    return render(walk_diagram(walk_figure(mem, cpu, gva, access)), ident)
