"""The nested-walk explorer's model: one L2 address, through L2's tables and L1's EPT.

A :class:`NestedSetup` names everything a reader can change: L2's paging
mode, the EPT's number of levels and its A/D enable (EPTP bit 6), the
access, and three ways to break the walk (an L2 page the EPT does not map,
an L2 page the EPT maps read-only, an L2 entry with P=0).
:func:`explain_nested` builds L1's memory for that setup, runs
:func:`refimpl.guest.nested.nested_translate` on it, and returns a
:class:`NestedReport`: every memory reference in order, where each one sits
in the two-dimensional grid, and the outcome with its routing (a #PF for L2
or a VM exit to L1). :func:`nested_html` renders a report, up to a chosen
reference, as the HTML the widget shows.

Nothing here imports ipywidgets: the widget (``refimpl.viz.widgets``) only
turns controls into a :class:`NestedSetup` and shows :func:`nested_html`.

The fixed layout
----------------
* L2's tables are where the page-walk explorer puts them
  (:data:`refimpl.viz.walk.TABLE_GPA`: the level-``n`` table at L2 gpa
  ``n * 0x1000``), the gva is :func:`refimpl.viz.walk.explorer_gva`, and
  L2's leaf maps L2 page :data:`DATA_GPA`.
* L1's EPT tables are at L1 ``0x1000`` (the root) and up, one page per
  level; the EPT maps every L2 page ``P`` below 2 MiB to L1 page
  ``P + L1_OFFSET``, so the EPT PTE of L2 page ``P`` is at
  ``0x1000 * m + 8 * (P >> 12)`` for an ``m``-level EPT.

Glossary
--------
step
    As in :class:`refimpl.guest.nested.NestedRef`: which L2-physical address an
    EPT walk translates (0 for L2's root table, the last one for the data
    page).
target
    What a "break" control applies to: ``"none"``, one of L2's tables by
    name (``"PML5"`` ... ``"PT"``) or ``"data page"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from refimpl.guest.cpu import CpuState, PagingMode
from refimpl.guest.formats import EPT_EXIT_QUAL, EPTP
from refimpl.guest.memory import GuestMemory
from refimpl.guest.nested import NestedResult, nested_translate
from refimpl.guest.walker import ACCESS_USER
from refimpl.viz.walk import (
    ACCESSES,
    MODES,
    TABLE_GPA,
    WalkSetup,
    decode_error_code,
    entry_name,
    explorer_gva,
    index_at,
    levels,
)
from refimpl.errors import check_choice, check_instance, check_range

#: Where L1 puts each L2 page: L2 page ``P`` is at L1 ``P + L1_OFFSET``.
L1_OFFSET = 0x100000

#: The L2-physical page that L2's leaf maps.
DATA_GPA = 0x9000

#: L1 memory size: EPT tables, then L2's pages at ``L1_OFFSET``.
L1_MEMORY_SIZE = L1_OFFSET + 0x10000

#: EPT levels the explorer offers.
EPT_LEVELS = (4, 5)

#: The data page's name as a break target.
DATA = "data page"

#: Every break target's name, and the L2 page it stands for (tables by level).
TABLE_NAMES = {5: "PML5", 4: "PML4", 3: "PDPT", 2: "PD", 1: "PT"}

_RWX, _R, _WB = 0b111, 0b001, 6 << 3
_L2_FLAGS = 0x7  # P, W, U (A and D clear, so the walk's A/D writes show)
_EPT_A, _EPT_D = 1 << 8, 1 << 9


def ept_table_gpa(ept_levels: int, level: int) -> int:
    """L1 address of the EPT table of ``level`` (the root at 0x1000).

    Raises
    ------
    TypeError, ValueError
        ``ept_levels`` not 4 or 5, ``level`` not in ``[1, ept_levels]``.
    """
    ept_levels = check_choice("ept_levels", ept_levels, (4, 5))
    level = check_range("level", level, 1, ept_levels + 1)
    return 0x1000 * (ept_levels - level + 1)


def ept_pte_gpa(ept_levels: int, l2_page: int) -> int:
    """L1 address of the EPT PTE that maps L2 page ``l2_page`` (below 2 MiB).

    Raises
    ------
    TypeError, ValueError
        ``ept_levels`` not 4 or 5, ``l2_page`` not in ``[0, 2 MiB)``.
    """
    l2_page = check_range("l2_page", l2_page, 0, 1 << 21)
    return ept_table_gpa(ept_levels, 1) + 8 * (l2_page >> 12)


def targets(mode: str) -> tuple[str, ...]:
    """The break targets offered in ``mode``: none, L2's tables top down, the data page.

    Raises
    ------
    TypeError, ValueError
        ``mode`` not one of the mode names.
    """
    check_choice("mode", mode, MODES)
    return ("none", *(TABLE_NAMES[lv] for lv in levels(MODES[mode])), DATA)


def entries(mode: str) -> tuple[str, ...]:
    """The L2 entries that can be made not present in ``mode``: none, then top down.

    Raises
    ------
    TypeError, ValueError
        ``mode`` not one of the mode names.
    """
    check_choice("mode", mode, MODES)
    pm = MODES[mode]
    return ("none", *(entry_name(pm, lv) for lv in levels(pm)))


def target_gpa(name: str) -> int:
    """The L2 page a break target names.

    Raises
    ------
    TypeError, ValueError
        ``name`` not a break target.
    """
    check_choice("name", name, (DATA, *TABLE_NAMES.values()))
    if name == DATA:
        return DATA_GPA
    level = {v: k for k, v in TABLE_NAMES.items()}[name]
    return TABLE_GPA[level]


@dataclass(frozen=True)
class NestedSetup:
    """Everything the nested-walk explorer lets a reader choose.

    Parameters
    ----------
    mode : str
        L2's paging mode, a key of :data:`refimpl.viz.walk.MODES`.
    ept_levels : int
        4 or 5.
    ept_ad : bool
        EPTP bit 6: the EPT walk sets A/D in L1's EPT entries.
    access : str
        ``"read"``, ``"write"`` or ``"fetch"``.
    user : bool
        L2 makes the access at CPL 3.
    ept_unmapped : str
        A target (:func:`targets`) whose EPT PTE is zero.
    ept_read_only : str
        A target whose EPT PTE is readable only (R, no W, no X).
    l2_not_present : str
        An L2 entry name (:func:`entries`) written with P=0, or ``"none"``.
    """

    mode: str = "4-level"
    ept_levels: int = 4
    ept_ad: bool = False
    access: str = "read"
    user: bool = False
    ept_unmapped: str = "none"
    ept_read_only: str = "none"
    l2_not_present: str = "none"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {self.mode!r}")
        if self.ept_levels not in EPT_LEVELS:
            raise ValueError(f"ept_levels must be 4 or 5, got {self.ept_levels!r}")
        if self.access not in ACCESSES:
            raise ValueError(f"access must be one of {list(ACCESSES)}, got {self.access!r}")
        for name in ("ept_unmapped", "ept_read_only"):
            if getattr(self, name) not in targets(self.mode):
                raise ValueError(f"{name} must be one of {list(targets(self.mode))}, "
                                 f"got {getattr(self, name)!r}")
        if self.l2_not_present not in entries(self.mode):
            raise ValueError(f"l2_not_present must be one of {list(entries(self.mode))}, "
                             f"got {self.l2_not_present!r}")

    @property
    def paging_mode(self) -> PagingMode:
        """L2's :class:`refimpl.guest.cpu.PagingMode`."""
        return MODES[self.mode]

    @property
    def access_bits(self) -> int:
        """The access as :func:`refimpl.guest.nested.nested_translate` takes it."""
        return ACCESSES[self.access] | (ACCESS_USER if self.user else 0)

    @property
    def eptp(self) -> int:
        """L1's EPT pointer: root at 0x1000, write-back, walk length, A/D."""
        return (ept_table_gpa(self.ept_levels, self.ept_levels) | (self.ept_levels - 1) << 3
                | 6 | (EPTP.AD.bit if self.ept_ad else 0))

    def cpu(self) -> CpuState:
        """L2's registers (as the page-walk explorer's defaults: WP, NXE)."""
        return WalkSetup(mode=self.mode, access=self.access, user=self.user).cpu()


def build_memory(setup: NestedSetup) -> GuestMemory:
    """L1's memory: the EPT tables, and L2's tables at their L1 addresses."""
    check_instance("setup", setup, NestedSetup)
    m = setup.ept_levels
    mem = GuestMemory(L1_MEMORY_SIZE)
    for level in range(m, 1, -1):
        mem.write64(ept_table_gpa(m, level), ept_table_gpa(m, level - 1) | _RWX)
    broken = {}
    if setup.ept_read_only != "none":
        broken[target_gpa(setup.ept_read_only)] = _R
    if setup.ept_unmapped != "none":
        broken[target_gpa(setup.ept_unmapped)] = 0
    for i in range(512):
        rights = broken.get(i << 12, _RWX)
        mem.write64(ept_pte_gpa(m, i << 12), ((L1_OFFSET + (i << 12)) | _WB | rights)
                    if rights else 0)
    mode = setup.paging_mode
    wide = mode is not PagingMode.BITS32
    for level in levels(mode):
        value = _L2_FLAGS | (TABLE_GPA[level - 1] if level > 1 else DATA_GPA)
        if mode is PagingMode.PAE and level == 3:
            value = 1 | TABLE_GPA[2]  # a PDPTE has P only
        if entry_name(mode, level) == setup.l2_not_present:
            value &= ~1
        gpa = L1_OFFSET + TABLE_GPA[level] + index_at(mode, level) * (8 if wide else 4)
        if wide:
            mem.write64(gpa, value)
        else:
            mem.write32(gpa, value)
    return mem


@dataclass(frozen=True)
class NestedRow:
    """One memory reference, as the explorer's table shows it.

    Parameters
    ----------
    number : int
        Its position, from 1.
    dimension : str
        ``"EPT"`` or ``"L2"``.
    phase : str
        ``"walk"``, or ``"pdptr"`` for PAE's PDPTE load.
    step : int
        As ``step`` of :class:`refimpl.guest.nested.NestedRef`.
    level : int
    name : str
        ``"EPT PML4E"`` ... ``"EPT PTE"`` or L2's entry name.
    address : int
        The L1 address read.
    value : int
        The entry as read.
    after : int
        The entry after the translation (A/D written).
    l2_gpa : int
        For an EPT reference, the L2 page being translated; for an L2
        reference, the entry's own L2 address.
    purpose : str
        In words: ``"translating L2 gpa 0x2000 (the PD)"`` or
        ``"L2 PDE at L2 gpa 0x2018"``.
    cell : tuple of (int, int)
        Row and column of the grid (``grid_rows`` and ``grid_columns`` of
        :class:`NestedReport`).
    """

    number: int
    dimension: str
    phase: str
    step: int
    level: int
    name: str
    address: int
    value: int
    after: int
    l2_gpa: int
    purpose: str
    cell: tuple[int, int]


@dataclass(frozen=True)
class NestedReport:
    """What the explorer shows for one :class:`NestedSetup`.

    Parameters
    ----------
    setup : NestedSetup
    gva : int
    result : refimpl.guest.nested.NestedResult
    rows : tuple of NestedRow
        Every reference, in order.
    grid_rows : tuple of str
        Row labels: the L2 page each EPT walk translates (PAE's PDPTE load
        first), ending with the data page.
    grid_columns : tuple of str
        ``"EPT L4"`` ... ``"EPT L1"``, then ``"L2 entry"``.
    outcome : str
        ``"L1 gpa 0x109567 (L2 gpa 0x9567)"``, ``"#PF to L2, ..."`` or
        ``"EPT violation to L1, ..."``.
    target : str or None
        ``None`` on success, else ``"L2"`` or ``"L1"``.
    """

    setup: NestedSetup
    gva: int
    result: NestedResult
    rows: tuple[NestedRow, ...]
    grid_rows: tuple[str, ...]
    grid_columns: tuple[str, ...]
    outcome: str
    target: str | None

    @property
    def steps(self) -> int:
        """How many references (the step slider's maximum)."""
        return len(self.rows)


_EPT_NAMES = {5: "EPT PML5E", 4: "EPT PML4E", 3: "EPT PDPTE", 2: "EPT PDE", 1: "EPT PTE"}


def _grid(setup: NestedSetup) -> tuple[list[tuple[str, int, str]], tuple[str, ...]]:
    """Grid rows as (phase, step, label), and column labels."""
    mode = setup.paging_mode
    walked = [lv for lv in levels(mode) if not (mode is PagingMode.PAE and lv == 3)]
    rows = []
    if mode is PagingMode.PAE:
        rows.append(("pdptr", 0, f"PDPT (L2 {TABLE_GPA[3]:#x}), loaded with CR3"))
    for k, lv in enumerate(walked):
        rows.append(("walk", k, f"{TABLE_NAMES[lv]} (L2 {TABLE_GPA[lv]:#x})"))
    rows.append(("walk", len(walked), f"data page (L2 {DATA_GPA:#x})"))
    cols = (*(f"EPT L{lv}" for lv in range(setup.ept_levels, 0, -1)), "L2 entry")
    return rows, cols


def _page_name(setup: NestedSetup, l2_page: int) -> str:
    if l2_page == DATA_GPA:
        return "the data page"
    for lv, gpa in TABLE_GPA.items():
        if gpa == l2_page and lv in levels(setup.paging_mode):
            return f"the {TABLE_NAMES[lv]}"
    return "?"


def decode_exit_qualification(q: int) -> str:
    """``0x83 (READ|WRITE|GVA_IS_VALID)``: an EPT-violation exit qualification, decoded."""
    names = []
    for f in EPT_EXIT_QUAL:
        v = f.get(q)
        if not v:
            continue
        if f.name == "RWX":
            names.append("RWX=" + "".join(c if v >> i & 1 else "-" for i, c in enumerate("RWX")))
        else:
            names.append(f.name.removeprefix("ACC_"))
    return f"{q:#x} ({'|'.join(names) if names else 'none'})"


def explain_nested(setup: NestedSetup) -> NestedReport:
    """Run the nested walk :func:`build_memory` sets up, and explain it.

    Returns
    -------
    NestedReport
    """
    check_instance("setup", setup, NestedSetup)
    mode = setup.paging_mode
    wide = mode is not PagingMode.BITS32
    mem = build_memory(setup)
    gva = explorer_gva(mode)
    result = nested_translate(mem, setup.cpu(), gva, setup.access_bits, eptp=setup.eptp)
    grid, cols = _grid(setup)
    index = {(phase, step): i for i, (phase, step, _l) in enumerate(grid)}
    m = setup.ept_levels
    rows = []
    for n, t in enumerate(result.trace, 1):
        if t.dimension == "L2":
            name = entry_name(mode, t.level)
            after = mem.read64(t.address) if wide else mem.read32(t.address)
            purpose = f"L2 {name} at L2 gpa {t.l2_gpa:#x}"
            row = index[("pdptr", 0)] if t.phase == "pdptr" else index[("walk", t.step - 1)]
            cell = (row, m)
        else:
            name = _EPT_NAMES[t.level]
            after = mem.read64(t.address)
            purpose = f"translating L2 gpa {t.l2_gpa:#x} ({_page_name(setup, t.l2_gpa)})"
            cell = (index[(t.phase, t.step)], m - t.level)
        rows.append(NestedRow(n, t.dimension, t.phase, t.step, t.level, name, t.address,
                              t.value, after, t.l2_gpa, purpose, cell))
    f = result.fault
    if f is None:
        outcome, target = f"L1 gpa {result.l1_gpa:#x} (L2 gpa {result.l2_gpa:#x})", None
    elif f.target == "L2":
        target = "L2"
        outcome = (f"#PF to L2, error code {decode_error_code(f.error_code)}, CR2 {f.address:#x}"
                   if f.kind == "#PF" else
                   f"{f.kind} to L2 (the CR3 load fails: its PDPT page or a PDPTE is bad)")
    else:
        target = "L1"
        outcome = (f"{f.kind} to L1 (VM exit) at L2 gpa {f.address:#x} "
                   f"({_page_name(setup, f.address)}, "
                   f"{'final access' if f.final else 'paging-structure access'})")
        if f.exit_qualification is not None:
            outcome += f", exit qualification {decode_exit_qualification(f.exit_qualification)}"
    return NestedReport(setup, gva, result, tuple(rows), tuple(label for *_x, label in grid),
                        cols, outcome, target)


# ---------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------

_TD = 'style="border:1px solid #ccc;padding:2px 6px;font-family:monospace;text-align:left"'
_TH = 'style="border:1px solid #ccc;padding:2px 6px;background:#eee;text-align:left"'
_CELL = "border:1px solid #ccc;width:44px;height:22px;text-align:center;font-family:monospace"
_COLOURS = {"EPT": "#cfe3f3", "L2": "#fde0c2", "current": "#ffd84d", "future": "#f4f4f4"}


def _changed(row: NestedRow) -> str:
    diff = row.after ^ row.value
    if not diff:
        return "unchanged"
    if row.dimension == "EPT":
        names = [n for n, b in (("A", _EPT_A), ("D", _EPT_D)) if diff & b]
    else:
        names = [n for n, b in (("A", 1 << 5), ("D", 1 << 6)) if diff & b]
    return f"{row.after:#x} (+{' '.join(names)})"


def nested_html(report: NestedReport, step: int | None = None) -> str:
    """The report as HTML, up to reference ``step`` (default: all).

    The table lists references ``1..step``; the grid numbers every cell the
    translation reads, highlights reference ``step`` and greys the later
    ones; the outcome is the whole translation's.
    """
    check_instance("report", report, NestedReport)
    setup = report.setup
    total = report.steps
    step = total if step is None else max(0, min(step, total))
    head = "<tr>" + "".join(f"<th {_TH}>{h}</th>" for h in (
        "#", "dimension", "entry", "L1 address", "value read", "for", "after")) + "</tr>"
    body = []
    for r in report.rows[:step]:
        style = ' style="background:#ffd84d"' if r.number == step else ""
        body.append(
            f'<tr class="nested-row" data-n="{r.number}"{style}>'
            f"<td {_TD}>{r.number}</td><td {_TD}>{r.dimension}"
            f"{' (PDPTE load)' if r.phase == 'pdptr' else ''}</td><td {_TD}>{r.name}</td>"
            f"<td {_TD}>{r.address:#x}</td><td {_TD}>{r.value:#x}</td>"
            f"<td {_TD}>{escape(r.purpose)}</td><td {_TD}>{_changed(r)}</td></tr>")
    cells = {r.cell: r for r in report.rows}
    grid = ["<tr><th></th>" + "".join(f"<th {_TH}>{c}</th>" for c in report.grid_columns)
            + "</tr>"]
    for i, label in enumerate(report.grid_rows):
        tds = []
        for j in range(len(report.grid_columns)):
            r = cells.get((i, j))
            if r is None:
                tds.append(f'<td style="{_CELL}"></td>')
                continue
            state = "current" if r.number == step else ("future" if r.number > step else "done")
            colour = _COLOURS[r.dimension] if state == "done" else _COLOURS[state]
            tds.append(f'<td class="cell-{state}" data-n="{r.number}" '
                       f'style="{_CELL};background:{colour}">{r.number}</td>')
        grid.append(f"<tr><th {_TH}>{escape(label)}</th>{''.join(tds)}</tr>")
    now = report.rows[step - 1] if step else None
    who = "" if now is None or now.dimension == "EPT" else "L2 "
    current = (f"reference {step} of {total}: {who}{now.name} at L1 "
               f"{now.address:#x}, {escape(now.purpose)}" if now else f"0 of {total} references")
    ok = report.target is None
    colour = "#1b6e1b" if ok else "#a31515"
    access = f"{'user' if setup.user else 'supervisor'} {setup.access}"
    return (
        '<div class="kvmbook-nested">'
        f'<p style="margin:0 0 4px 0"><b>{setup.mode}</b> L2 paging over '
        f"<b>{setup.ept_levels}-level</b> EPT (A/D {'on' if setup.ept_ad else 'off'}), "
        f"{access} of L2 gva <code>{report.gva:#x}</code></p>"
        f'<p class="nested-current" style="margin:0 0 4px 0"><b>Step:</b> {current}</p>'
        f'<table class="nested-grid" style="border-collapse:collapse;font-size:12px;'
        f'margin-bottom:6px">{"".join(grid)}</table>'
        f'<table class="nested-trace" style="border-collapse:collapse;font-size:12px">'
        f'{head}{"".join(body)}</table>'
        f'<p class="nested-outcome" style="margin:6px 0 0 0;color:{colour}"><b>Outcome:</b> '
        f"{escape(report.outcome)}</p></div>"
    )
