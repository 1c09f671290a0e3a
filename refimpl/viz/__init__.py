"""Interactive explorers for the book: models, HTML/SVG rendering, and widgets.

Each explorer has a pure model (a frozen setup dataclass and a function that
explains it) and a rendering to HTML, in modules that import nothing from
Jupyter, so pytest checks them without a kernel or a browser:

* :mod:`refimpl.viz.walk`: the page-walk explorer (``explain_walk``);
* :mod:`refimpl.viz.bitmap`: the permission-bitmap explorer (``explain_lookup``);
* :mod:`refimpl.viz.layouts`: the layout explorer (``explain_layout``), drawn
  with :mod:`refimpl.viz.svg` (no Graphviz);
* :mod:`refimpl.viz.nested`: the nested (two-dimensional) walk explorer
  (``explain_nested``), built on :func:`refimpl.guest.nested.nested_translate`.

The widgets themselves (``WalkExplorer``, ``BitmapExplorer``,
``LayoutExplorer``, ``NestedWalkExplorer``) live in
:mod:`refimpl.viz.widgets`, the only module of ``refimpl`` that imports
ipywidgets; it is imported on first use of those names, so ``import refimpl.viz`` works without ipywidgets installed.

The published book has no kernel: there each explorer is plain HTML controls
written by ``refimpl.viz.web``, which the page's own Python (Pyodide, loaded
from the site's files) calls on every change. It imports only ``refimpl`` and
the standard library, and nothing that imports NumPy.
"""

from __future__ import annotations

from refimpl.viz.bitmap import BitmapSetup, bitmap_html, explain_lookup
from refimpl.viz.layouts import LayoutSetup, explain_layout, layout_html
from refimpl.viz.nested import NestedSetup, explain_nested, nested_html
from refimpl.viz.walk import EntryBits, WalkSetup, explain_walk, walk_html

_WIDGETS = ("WalkExplorer", "BitmapExplorer", "LayoutExplorer", "NestedWalkExplorer")

__all__ = [
    "EntryBits",
    "WalkSetup",
    "explain_walk",
    "walk_html",
    "BitmapSetup",
    "explain_lookup",
    "bitmap_html",
    "LayoutSetup",
    "explain_layout",
    "layout_html",
    "NestedSetup",
    "explain_nested",
    "nested_html",
    *_WIDGETS,
]


def __getattr__(name: str):
    if name in _WIDGETS:
        from refimpl.viz import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module 'refimpl.viz' has no attribute {name!r}")
