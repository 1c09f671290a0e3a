"""The permission-bitmap explorer's model: KVM's 16 x 8 table and one lookup.

:func:`refimpl.guest.permissions.update_permission_bitmask` turns CR0.WP,
CR4.SMEP, CR4.SMAP and EFER.NXE into sixteen bytes. Row ``i`` is the access
whose error code is ``i << 1`` (W, U, the borrowed not-SMAP bit, F); bit
``acc`` of the row says whether that access faults on a page with ACC rights
``acc``. A :class:`BitmapSetup` names the control bits, one access and one
ACC value; :func:`explain_lookup` says which row and column that access uses
and what it finds there, exactly as
:func:`refimpl.guest.permissions.permission_fault` indexes the table.
:func:`bitmap_html` draws the whole table with that cell highlighted.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from refimpl.guest.formats import PFERR
from refimpl.guest.permissions import PFEC_INDEX_MASK, permission_fault, update_permission_bitmask
from refimpl.guest.walker import ACCESS_USER
from refimpl.viz.walk import ACCESSES, rights_str
from refimpl.errors import check_instance, check_int


def row_bits(index: int) -> dict[str, bool]:
    """What row ``index`` stands for: its W, U, not-SMAP and F bits."""
    index = check_int("index", index)
    pfec = index << 1
    return {"W": bool(pfec & PFERR.W), "U": bool(pfec & PFERR.U),
            "notSMAP": bool(pfec & PFERR.RSVD), "F": bool(pfec & PFERR.F)}


@dataclass(frozen=True)
class BitmapSetup:
    """The controls of the permission-bitmap explorer.

    Parameters
    ----------
    cr0_wp, cr4_smep, cr4_smap, efer_nx : bool
        The bits the table is built from.
    access : str
        ``"read"``, ``"write"`` or ``"fetch"``.
    user : bool
        The access is made at CPL 3.
    rflags_ac : bool
        RFLAGS.AC (sets the not-SMAP bit of the index for explicit accesses).
    acc : int
        The page's ACC rights, 0..7 (EXEC 1, WRITE 2, USER 4).
    """

    cr0_wp: bool = True
    cr4_smep: bool = False
    cr4_smap: bool = False
    efer_nx: bool = True
    access: str = "read"
    user: bool = False
    rflags_ac: bool = False
    acc: int = 7

    def __post_init__(self) -> None:
        if self.access not in ACCESSES:
            raise ValueError(f"access must be one of {list(ACCESSES)}, got {self.access!r}")
        if not 0 <= self.acc <= 7:
            raise ValueError(f"acc must be in 0..7, got {self.acc!r}")

    def table(self) -> tuple[int, ...]:
        """The sixteen bytes (:func:`refimpl.guest.permissions.update_permission_bitmask`)."""
        return update_permission_bitmask(cr0_wp=self.cr0_wp, cr4_smep=self.cr4_smep,
                                         cr4_smap=self.cr4_smap, efer_nx=self.efer_nx)

    @property
    def access_bits(self) -> int:
        """The access as error-code bits (W, U, F)."""
        return ACCESSES[self.access] | (ACCESS_USER if self.user else 0)


@dataclass(frozen=True)
class Lookup:
    """Which cell an access uses, and what it finds.

    Parameters
    ----------
    row : int
        The index into the table: ``(pfec | not-SMAP) >> 1``.
    column : int
        The page's ACC value.
    byte : int
        ``table[row]``.
    faults : bool
        Bit ``column`` of ``byte``.
    table : tuple of int
        The whole table.
    """

    row: int
    column: int
    byte: int
    faults: bool
    table: tuple[int, ...]


def explain_lookup(setup: BitmapSetup) -> Lookup:
    """The cell ``setup``'s access uses, found as ``permission_fault`` finds it.

    The result is cross-checked against
    :func:`refimpl.guest.permissions.permission_fault` itself.
    """
    check_instance("setup", setup, BitmapSetup)
    table = setup.table()
    pfec = setup.access_bits & PFEC_INDEX_MASK
    row = (pfec | (PFERR.RSVD if setup.rflags_ac else 0)) >> 1
    byte = table[row]
    faults = bool((byte >> setup.acc) & 1)
    check = permission_fault(table, 0, pte_access=setup.acc, pte_pkey=0,
                             access=setup.access_bits, rflags_ac=setup.rflags_ac, pkru=0)
    assert faults == bool(check), "explain_lookup disagrees with permission_fault"
    return Lookup(int(row), setup.acc, byte, faults, table)


_TD = "border:1px solid #ccc;padding:1px 5px;font-family:monospace;text-align:center"
_TH = "border:1px solid #ccc;padding:1px 5px;background:#eee;font-family:monospace"


def bitmap_html(setup: BitmapSetup) -> str:
    """The 16 x 8 table as HTML, the used row shaded and the used cell outlined.

    Each cell shows ``1`` when the access of that row faults on a page with
    that column's rights, ``.`` otherwise. The used cell has the class
    ``hit`` and ``data-row``/``data-col`` attributes.
    """
    check_instance("setup", setup, BitmapSetup)
    look = explain_lookup(setup)
    head = (f'<tr><th style="{_TH}">row</th><th style="{_TH}">W U &not;SMAP F</th>'
            f'<th style="{_TH}">byte</th>'
            + "".join(f'<th style="{_TH}" title="ACC {acc}">{acc}<br>{rights_str(acc)}</th>'
                      for acc in range(8)) + "</tr>")
    rows = []
    for i, byte in enumerate(look.table):
        bits = row_bits(i)
        label = " ".join("1" if bits[k] else "0" for k in ("W", "U", "notSMAP", "F"))
        shade = "background:#fff3c4;" if i == look.row else ""
        cells = []
        for acc in range(8):
            bit = (byte >> acc) & 1
            colour = "color:#a31515;font-weight:bold;" if bit else "color:#999;"
            if i == look.row and acc == look.column:
                cells.append(f'<td class="hit" data-row="{i}" data-col="{acc}" style="{_TD};{shade}'
                             f'{colour}outline:3px solid #1f5f99;outline-offset:-3px">{bit if bit else "."}</td>')
            else:
                cells.append(f'<td style="{_TD};{shade}{colour}">{bit if bit else "."}</td>')
        rows.append(f'<tr class="bitmap-row" data-row="{i}"><td style="{_TD};{shade}">{i}</td>'
                    f'<td style="{_TD};{shade}">{label}</td>'
                    f'<td style="{_TD};{shade}">{byte:#04x}</td>{"".join(cells)}</tr>')
    verdict = "faults" if look.faults else "is allowed"
    who = "user" if setup.user else "supervisor"
    summary = (f"A {who} {setup.access}{' with RFLAGS.AC=1' if setup.rflags_ac else ''} "
               f"uses row {look.row} (byte {look.byte:#04x}); on a page with ACC {look.column} "
               f"({rights_str(look.column)}) bit {look.column} is {int(look.faults)}: "
               f"the access {verdict}.")
    return (f'<div class="kvmbook-bitmap"><p class="bitmap-summary" style="margin:0 0 4px 0">'
            f"{escape(summary)}</p>"
            f'<table style="border-collapse:collapse;font-size:12px">{head}{"".join(rows)}</table></div>')
