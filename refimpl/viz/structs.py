"""One layout's pointer diagrams, configuration by configuration.

:func:`refimpl.viz.layouts.layout_html` draws today's layout and the sketch
side by side for one configuration. The chapters that introduce each layout
need the other cut: one layout, several configurations in a row, so that the
reader sees the pointers move. This module only arranges the diagrams that
:meth:`refimpl.viz.layouts.LayoutReport.legacy_diagram` and
:meth:`~refimpl.viz.layouts.LayoutReport.split_diagram` draw.

Glossary
--------
layout
    ``"today"`` (``refimpl.layouts.legacy``) or ``"sketch"``
    (``refimpl.layouts.split``).
"""

from __future__ import annotations

from html import escape
from typing import Sequence

from refimpl.errors import check_choice, check_items
from refimpl.layouts import legacy as L
from refimpl.viz.layouts import configuration_reports
from refimpl.viz.svg import render

__all__ = ["LAYOUTS", "pointer_figures"]

#: The two layouts a figure can show.
LAYOUTS = ("today", "sketch")


def pointer_figures(layout: str, keys: Sequence[str]) -> str:
    """The pointer diagrams of one layout for the named configurations.

    Parameters
    ----------
    layout : str
        ``"today"`` or ``"sketch"``.
    keys : sequence of str
        Names from :data:`refimpl.layouts.legacy.CONFIGURATIONS`, drawn in
        this order, each under its one-line description.

    Returns
    -------
    str
        One HTML ``<div>`` holding the SVG diagrams, wrapping to the page width.

    Raises
    ------
    ValueError
        An unknown layout or configuration name.
    TypeError
        ``keys`` not a sequence of str.
    """
    check_choice("layout", layout, LAYOUTS)
    keys = check_items("keys", keys, str)
    for k in keys:
        check_choice("keys", k, tuple(L.CONFIGURATIONS))
    reports = configuration_reports()
    cells = []
    for k in keys:
        r = reports[k]
        diagram = r.legacy_diagram() if layout == "today" else r.split_diagram()
        cells.append(
            '<figure style="margin:0">'
            f'<figcaption style="font-size:90%;margin:0 0 2px 0"><code>{escape(k)}</code>: '
            f"{escape(L.CONFIGURATIONS[k])}</figcaption>"
            f"{render(diagram, f'kvmbook-{layout}-{k}')}</figure>")
    return ('<div class="kvmbook-pointers" style="display:flex;flex-wrap:wrap;gap:12px;'
            'align-items:flex-start">' + "".join(cells) + "</div>")
