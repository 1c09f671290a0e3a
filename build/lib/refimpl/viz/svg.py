"""A tiny box-and-arrow diagram, written out as SVG text.

The book's diagrams must render on a reader's machine that has only Python
(no Graphviz), inside a static HTML page and inside an ipywidgets ``HTML``
output. So a diagram here is plain data, :class:`Box` and :class:`Arrow`
placed by hand on a grid, and :func:`render` turns it into one ``<svg>``
element: deterministic text, no randomness, no external fonts or files.

Glossary
--------
box
    A rectangle with a title line and optional smaller lines below it.
arrow
    A cubic Bezier curve from one side of a box to a side of another, with an
    arrowhead and an optional label near its middle.
style
    ``"pointer"`` (a vCPU pointer), ``"used"`` (a structure some pointer
    designates), ``"idle"`` (allocated but designated by no pointer) or
    ``"absent"`` (does not exist in this configuration: dashed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from refimpl.errors import UnknownName, check_fields, check_instance, check_range

#: Fill and stroke of each box style.
STYLES: dict[str, tuple[str, str, str]] = {
    # style: (fill, stroke, stroke-dasharray)
    "pointer": ("#fff3c4", "#8a6d00", ""),
    "used": ("#d6ecff", "#1f5f99", ""),
    "idle": ("#f2f2f2", "#9a9a9a", ""),
    "absent": ("#ffffff", "#b0b0b0", "4 3"),
}

#: Height of a title line and of each detail line, in pixels.
TITLE_H = 18
LINE_H = 14
PAD = 6


@dataclass(frozen=True)
class Box:
    """A labelled rectangle.

    Parameters
    ----------
    key : str
        Identifier used by arrows (and written as ``data-key``).
    x, y, w : int
        Top-left corner and width; the height follows from the lines.
    title : str
        First line, in bold.
    lines : tuple of str
        Smaller lines under the title.
    style : str
        One of :data:`STYLES`.
    """

    key: str
    x: int
    y: int
    w: int
    title: str
    lines: tuple[str, ...] = ()
    style: str = "used"

    def __post_init__(self) -> None:
        check_fields(self, key=str, x=int, y=int, w=int, title=str, lines=tuple, style=str)
        check_range("Box.w", self.w, 1, 1 << 16)

    @property
    def h(self) -> int:
        """Height: title, detail lines and padding."""
        return PAD + TITLE_H + LINE_H * len(self.lines) + PAD // 2

    def anchor(self, side: str) -> tuple[float, float]:
        """Middle of side ``"l"``, ``"r"``, ``"t"`` or ``"b"``."""
        if side == "l":
            return (self.x, self.y + self.h / 2)
        if side == "r":
            return (self.x + self.w, self.y + self.h / 2)
        if side == "t":
            return (self.x + self.w / 2, self.y)
        if side == "b":
            return (self.x + self.w / 2, self.y + self.h)
        raise ValueError(f"side must be l, r, t or b, got {side!r}")


@dataclass(frozen=True)
class Arrow:
    """A curve from side ``src_side`` of box ``src`` to side ``dst_side`` of ``dst``."""

    src: str
    dst: str
    label: str = ""
    src_side: str = "r"
    dst_side: str = "l"
    bend: int = 40
    show_label: bool = True

    def __post_init__(self) -> None:
        check_fields(self, src=str, dst=str, label=str, src_side=str, dst_side=str,
                     bend=int, show_label=bool)


_OUT = {"l": (-1, 0), "r": (1, 0), "t": (0, -1), "b": (0, 1)}


@dataclass
class Diagram:
    """Boxes and arrows, and the size of the canvas."""

    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)
    arrows: list[Arrow] = field(default_factory=list)
    caption: str = ""

    def __post_init__(self) -> None:
        check_fields(self, width=int, height=int, boxes=list, arrows=list, caption=str)
        check_range("Diagram.width", self.width, 1, 1 << 16)
        check_range("Diagram.height", self.height, 1, 1 << 16)

    def box(self, key: str) -> Box:
        """The box named ``key``."""
        for b in self.boxes:
            if b.key == key:
                return b
        raise UnknownName(f"key: no box {key!r}")

    def edges(self) -> set[tuple[str, str, str]]:
        """Every arrow as ``(src, label, dst)``: what the diagram claims."""
        return {(a.src, a.label, a.dst) for a in self.arrows}


def _fmt(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def render(d: Diagram, ident: str) -> str:
    """The diagram as one ``<svg>`` element.

    ``ident`` prefixes the arrowhead marker id, so that several diagrams can
    share a page.

    Raises
    ------
    TypeError
        ``d`` not a :class:`Diagram`, ``ident`` not a str.
    """
    check_instance("d", d, Diagram)
    check_instance("ident", ident, str)
    marker = f"{ident}-arrow"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="kvmbook-diagram" id="{escape(ident)}" '
        f'width="{d.width}" height="{d.height}" viewBox="0 0 {d.width} {d.height}" '
        'style="max-width:100%;height:auto" '
        f'font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" role="img">',
        f"<title>{escape(d.caption)}</title>" if d.caption else "",
        "<defs>"
        f'<marker id="{marker}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#333"/></marker></defs>',
    ]
    for b in d.boxes:
        fill, stroke, dash = STYLES[b.style]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<g class="box box-{b.style}" data-key="{escape(b.key)}">'
            f'<rect x="{b.x}" y="{b.y}" width="{b.w}" height="{b.h}" rx="5" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="1.5"{dash_attr}/>'
            f'<text x="{b.x + PAD}" y="{b.y + PAD + 12}" font-size="13" font-weight="bold" '
            f'fill="#111">{escape(b.title)}</text>'
        )
        for i, line in enumerate(b.lines):
            y = b.y + PAD + TITLE_H + LINE_H * i + 10
            out.append(
                f'<text x="{b.x + PAD}" y="{y}" font-size="10.5" fill="#333">{escape(line)}</text>'
            )
        out.append("</g>")
    for a in d.arrows:
        s, t = d.box(a.src), d.box(a.dst)
        (x0, y0), (x1, y1) = s.anchor(a.src_side), t.anchor(a.dst_side)
        (dx0, dy0), (dx1, dy1) = _OUT[a.src_side], _OUT[a.dst_side]
        c0 = (x0 + dx0 * a.bend, y0 + dy0 * a.bend)
        c1 = (x1 + dx1 * a.bend, y1 + dy1 * a.bend)
        path = (
            f"M{_fmt(x0)},{_fmt(y0)} C{_fmt(c0[0])},{_fmt(c0[1])} "
            f"{_fmt(c1[0])},{_fmt(c1[1])} {_fmt(x1)},{_fmt(y1)}"
        )
        out.append(
            f'<g class="arrow" data-src="{escape(a.src)}" data-dst="{escape(a.dst)}">'
            f'<path d="{path}" fill="none" stroke="#333" stroke-width="1.4" '
            f'marker-end="url(#{marker})"/>'
        )
        if a.label and a.show_label:
            # The curve's midpoint (t = 1/2 of the cubic).
            mx = (x0 + 3 * c0[0] + 3 * c1[0] + x1) / 8
            my = (y0 + 3 * c0[1] + 3 * c1[1] + y1) / 8
            out.append(
                f'<text x="{_fmt(mx)}" y="{_fmt(my - 4)}" font-size="10.5" text-anchor="middle" '
                f'fill="#8a3b00" paint-order="stroke" stroke="#fff" stroke-width="3">'
                f"{escape(a.label)}</text>"
            )
        out.append("</g>")
    out.append("</svg>")
    return "".join(part for part in out if part)
