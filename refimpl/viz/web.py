"""The four explorers as plain HTML controls, for Python running in the reader's browser.

The published book is static HTML: no kernel answers the ipywidgets of
:mod:`refimpl.viz.widgets` there. Instead each explorer cell also emits the
HTML this module writes (a ``<form>`` of ordinary checkboxes, radio buttons,
menus and sliders, and the explorer's output), and the book's page script
(``_widgets/live/``) runs this same module in Pyodide, the CPython
interpreter compiled to WebAssembly, that the book's build copies into the
site. On every change the page sends the form's values to :func:`recompute`,
which rebuilds the setup with the same rules as the widgets and returns the
new form, whose output is written by the same functions the widgets call
(:func:`refimpl.viz.walk.walk_html`, :func:`refimpl.viz.bitmap.bitmap_html`,
:func:`refimpl.viz.layouts.layout_html`, :func:`refimpl.viz.nested.nested_html`).

The rules the widgets follow, and this module too:

* walk: changing the mode puts every entry back to the mode's defaults
  (:func:`refimpl.viz.walk.default_entries`); the NX boxes are disabled in
  32-bit paging, the protection-key controls outside 4/5-level paging;
* layouts: "EPT/NPT in L1" is disabled unless L2 runs;
* nested: changing L2's mode sets the three break menus to ``"none"`` (their
  choices are that mode's tables); any change but the step slider's moves
  the slider to the last reference.

It imports nothing outside ``refimpl`` and the standard library, and nothing
that imports NumPy, so that Pyodide runs it with its standard library alone.
"""

from __future__ import annotations

from html import escape

from refimpl.errors import check_choice, check_instance
from refimpl.guest.cpu import PagingMode
from refimpl.viz.bitmap import BitmapSetup, bitmap_html
from refimpl.viz.layouts import LayoutSetup, explain_layout, layout_html
from refimpl.viz.nested import EPT_LEVELS, NestedSetup, entries, explain_nested, nested_html, targets
from refimpl.viz.walk import (ACCESSES, MODES, EntryBits, WalkSetup, default_entries, entry_name,
                               explain_walk, levels, walk_html)

__all__ = ["EXPLORERS", "explorer_html", "recompute", "setup_from_state"]

#: The explorers, by the name the page uses (``data-explorer``).
EXPLORERS = ("walk", "permissions", "layouts", "nested")

_SETUPS = {"walk": WalkSetup, "permissions": BitmapSetup, "layouts": LayoutSetup,
           "nested": NestedSetup}
_OUTPUT_CLASS = {"walk": "e2e-walk-output", "permissions": "e2e-bitmap-output",
                 "layouts": "e2e-layout-output", "nested": "e2e-nested-output"}
_BITS = EntryBits.NAMES
_BIT_LABELS = {"p": "P", "w": "W", "u": "U", "a": "A", "d": "D", "ps": "PS", "nx": "NX"}
_STATUS = ("Saved outcome. Python is loading in your browser to recompute it "
           "when you change a control\u2026")

# ---------------------------------------------------------------------------
# Controls
# ---------------------------------------------------------------------------


def _attrs(name: str, disabled: bool) -> str:
    return f'name="{escape(name)}"' + (" disabled" if disabled else "")


def _check(name: str, label: str, value: bool, disabled: bool = False) -> str:
    checked = " checked" if value else ""
    return (f'<label class="kl-check e2e-{escape(name)}"><input type="checkbox" '
            f'{_attrs(name, disabled)}{checked}> {escape(label)}</label>')


def _radio(name: str, options, value) -> str:
    out = [f'<span class="kl-radio e2e-{escape(name)}" role="radiogroup">']
    for label, v in options:
        checked = " checked" if v == value else ""
        out.append(f'<label><input type="radio" {_attrs(name, False)} value="{escape(str(v))}"'
                   f"{checked}><span>{escape(label)}</span></label>")
    out.append("</span>")
    return "".join(out)


def _select(name: str, label: str, options, value) -> str:
    opts = "".join(f'<option value="{escape(str(v))}"{" selected" if v == value else ""}>'
                   f"{escape(text)}</option>" for text, v in options)
    return (f'<label class="kl-select e2e-{escape(name)}">{escape(label)} '
            f'<select {_attrs(name, False)}>{opts}</select></label>')


def _range(name: str, label: str, lo: int, hi: int, value: int, disabled: bool = False) -> str:
    return (f'<label class="kl-range e2e-{escape(name)}">{escape(label)} '
            f'<input type="range" {_attrs(name, disabled)} min="{lo}" max="{hi}" step="1" '
            f'value="{value}"><output>{value}</output></label>')


def _row(*parts: str, label: str = "") -> str:
    head = f'<span class="kl-label">{label}</span>' if label else ""
    return f'<div class="kl-row">{head}{"".join(parts)}</div>'


def _pairs(values) -> list[tuple[str, object]]:
    return [(str(v), v) for v in values]


# ---------------------------------------------------------------------------
# Forms: controls and output of one setup
# ---------------------------------------------------------------------------


def _walk_form(s: WalkSetup) -> str:
    mode = s.paging_mode
    regs = [_check(n, label, getattr(s, n)) for n, label in (
        ("cr0_wp", "CR0.WP"), ("cr4_pse", "CR4.PSE"), ("cr4_smep", "CR4.SMEP"),
        ("cr4_smap", "CR4.SMAP"), ("cr4_pke", "CR4.PKE"), ("efer_nxe", "EFER.NXE"),
        ("rflags_ac", "RFLAGS.AC"))]
    rows = [_row(_select("mode", "mode", _pairs(MODES), s.mode)), _row(*regs),
            _row(_radio("access", _pairs(ACCESSES), s.access),
                 _check("user", "user mode (CPL 3)", s.user), label="<b>access</b>")]
    for level in levels(mode):
        bits = s.entry(level)
        boxes = [_check(f"l{level}_{n}", _BIT_LABELS[n], getattr(bits, n),
                        disabled=(n == "nx" and mode is PagingMode.BITS32)) for n in _BITS]
        rows.append(_row(*boxes, label=f"<b>{escape(entry_name(mode, level))}</b> (L{level})"))
    off = not mode.long_mode
    rows.append(_row(_range("pkey", "leaf pkey", 0, 15, s.pkey, off),
                     _check("pkru_ad", "PKRU.AD", s.pkru_ad, off),
                     _check("pkru_wd", "PKRU.WD", s.pkru_wd, off)))
    return "".join(rows) + _output("walk", walk_html(explain_walk(s)))


def _bitmap_form(s: BitmapSetup) -> str:
    regs = [_check(n, label, getattr(s, n)) for n, label in (
        ("cr0_wp", "CR0.WP"), ("cr4_smep", "CR4.SMEP"), ("cr4_smap", "CR4.SMAP"),
        ("efer_nx", "EFER.NXE"))]
    return "".join([
        _row(*regs),
        _row(_radio("access", _pairs(ACCESSES), s.access),
             _check("user", "user mode (CPL 3)", s.user),
             _check("rflags_ac", "RFLAGS.AC", s.rflags_ac)),
        _row(_range("acc", "page ACC", 0, 7, s.acc)),
        _output("permissions", bitmap_html(s)),
    ])


def _layout_form(s: LayoutSetup) -> str:
    return "".join([
        _row(_radio("vendor", [("VMX", "vmx"), ("SVM", "svm")], s.vendor),
             _check("tdp", "TDP on the host (EPT/NPT)", s.tdp),
             _check("nested", "L2 running (nested)", s.nested),
             _check("l1_tdp", "EPT/NPT in L1", s.l1_tdp, disabled=not s.nested)),
        _output("layouts", layout_html(explain_layout(s))),
    ])


def _nested_form(s: NestedSetup, step: int | None) -> str:
    report = explain_nested(s)
    last = max(1, report.steps)
    step = last if step is None else min(max(1, step), last)
    return "".join([
        _row(_select("mode", "L2 mode", _pairs(MODES), s.mode),
             _radio("ept_levels", [(f"{n}-level EPT", n) for n in EPT_LEVELS], s.ept_levels),
             _check("ept_ad", "EPTP A/D (bit 6)", s.ept_ad)),
        _row(_radio("access", _pairs(ACCESSES), s.access),
             _check("user", "user mode (CPL 3)", s.user), label="<b>access</b>"),
        _row(_select("ept_unmapped", "EPT does not map", _pairs(targets(s.mode)), s.ept_unmapped),
             _select("ept_read_only", "EPT maps read-only", _pairs(targets(s.mode)),
                     s.ept_read_only),
             _select("l2_not_present", "L2 entry not present", _pairs(entries(s.mode)),
                     s.l2_not_present)),
        _row(_range("step", "step", 1, last, step)),
        _output("nested", nested_html(report, step)),
    ])


def _output(explorer: str, html: str) -> str:
    return f'<div class="kl-output {_OUTPUT_CLASS[explorer]}">{html}</div>'


def _form(setup, step: int | None) -> str:
    if isinstance(setup, WalkSetup):
        return _walk_form(setup)
    if isinstance(setup, BitmapSetup):
        return _bitmap_form(setup)
    if isinstance(setup, LayoutSetup):
        return _layout_form(setup)
    return _nested_form(setup, step)


def explorer_html(setup, step: int | None = None) -> str:
    """The whole explorer for ``setup``: a status line, the controls, the output.

    This is what the published page shows before its Python is ready (and
    for good, in a build without the Python runtime). The page script then
    enables the controls and replaces the form's contents with
    :func:`recompute` after every change.

    Parameters
    ----------
    setup : WalkSetup, BitmapSetup, LayoutSetup or NestedSetup
        Which explorer, and the state its controls show.
    step : int, optional
        The nested explorer's step (default: the last reference); ignored
        by the others.

    Raises
    ------
    TypeError
        ``setup`` is none of the four setups, or ``step`` is not an int.
    """
    check_instance("setup", setup, tuple(_SETUPS.values()))
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise TypeError(f"step must be an int or None, got {type(step).__name__}")
    explorer = next(k for k, cls in _SETUPS.items() if isinstance(setup, cls))
    return (f'<div class="kvmbook-live" data-explorer="{explorer}">'
            f'<p class="kvmbook-live-status" role="status">{escape(_STATUS)}</p>'
            f'<form class="kvmbook-live-form" autocomplete="off"><fieldset disabled>'
            f"{_form(setup, step)}</fieldset></form></div>")


# ---------------------------------------------------------------------------
# From the form's values back to a setup
# ---------------------------------------------------------------------------


def _flag(state: dict, name: str, default: bool) -> bool:
    v = state.get(name, default)
    if not isinstance(v, bool):
        raise TypeError(f"state[{name!r}] must be a bool, got {type(v).__name__}")
    return v


def _number(state: dict, name: str, default: int) -> int:
    v = state.get(name, default)
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"state[{name!r}] must be an int (or its decimal string), got {v!r}")
    return v


def _text(state: dict, name: str, default: str) -> str:
    v = state.get(name, default)
    if not isinstance(v, str):
        raise TypeError(f"state[{name!r}] must be a str, got {type(v).__name__}")
    return v


_KEYS = {
    "walk": {"mode", "cr0_wp", "cr4_pse", "cr4_smep", "cr4_smap", "cr4_pke", "efer_nxe",
             "rflags_ac", "access", "user", "pkey", "pkru_ad", "pkru_wd",
             *(f"l{lv}_{n}" for lv in range(1, 6) for n in _BITS)},
    "permissions": {"cr0_wp", "cr4_smep", "cr4_smap", "efer_nx", "access", "user",
                    "rflags_ac", "acc"},
    "layouts": {"vendor", "tdp", "nested", "l1_tdp"},
    "nested": {"mode", "ept_levels", "ept_ad", "access", "user", "ept_unmapped",
               "ept_read_only", "l2_not_present", "step"},
}


def _walk_setup(state: dict, changed: str | None) -> WalkSetup:
    d = WalkSetup()
    mode = _text(state, "mode", d.mode)
    check_choice("state['mode']", mode, MODES)
    pm = MODES[mode]
    if changed == "mode":
        ents = default_entries(pm)
    else:
        ents = {}
        for lv, bits in default_entries(pm).items():
            ents[lv] = EntryBits(**{n: _flag(state, f"l{lv}_{n}", getattr(bits, n)) for n in _BITS})
    flags = {n: _flag(state, n, getattr(d, n)) for n in (
        "cr0_wp", "cr4_pse", "cr4_smep", "cr4_smap", "cr4_pke", "efer_nxe", "rflags_ac", "user",
        "pkru_ad", "pkru_wd")}
    return WalkSetup(mode=mode, access=_text(state, "access", d.access), entries=ents,
                     pkey=_number(state, "pkey", d.pkey), **flags)


def _bitmap_setup(state: dict) -> BitmapSetup:
    d = BitmapSetup()
    acc = _number(state, "acc", d.acc)
    if not 0 <= acc <= 7:
        raise ValueError(f"state['acc'] must be in 0..7, got {acc}")
    flags = {n: _flag(state, n, getattr(d, n))
             for n in ("cr0_wp", "cr4_smep", "cr4_smap", "efer_nx", "user", "rflags_ac")}
    return BitmapSetup(access=_text(state, "access", d.access), acc=acc, **flags)


def _layout_setup(state: dict) -> LayoutSetup:
    d = LayoutSetup()
    return LayoutSetup(vendor=_text(state, "vendor", d.vendor),
                       **{n: _flag(state, n, getattr(d, n)) for n in ("tdp", "nested", "l1_tdp")})


def _nested_setup(state: dict, changed: str | None) -> NestedSetup:
    d = NestedSetup()
    menus = {n: _text(state, n, "none") for n in ("ept_unmapped", "ept_read_only",
                                                     "l2_not_present")}
    if changed == "mode":
        menus = dict.fromkeys(menus, "none")
    return NestedSetup(mode=_text(state, "mode", d.mode),
                       ept_levels=_number(state, "ept_levels", d.ept_levels),
                       ept_ad=_flag(state, "ept_ad", d.ept_ad),
                       access=_text(state, "access", d.access),
                       user=_flag(state, "user", d.user), **menus)


def setup_from_state(explorer: str, state: dict, changed: str | None = None):
    """The setup that the form's values describe, after the control ``changed`` moved.

    Parameters
    ----------
    explorer : str
        One of :data:`EXPLORERS`.
    state : dict
        The form's values by control name: bools for checkboxes, strings
        for menus and radio buttons, ints (or decimal strings) for sliders.
        A missing name takes the setup's default.
    changed : str, optional
        The control that changed (``"mode"`` resets what depends on it).

    Returns
    -------
    WalkSetup, BitmapSetup, LayoutSetup or NestedSetup

    Raises
    ------
    TypeError, ValueError
        Unknown explorer, a state that is not a dict, a name the explorer
        has no control for, or a value of the wrong type or out of range.
    """
    check_choice("explorer", explorer, EXPLORERS)
    check_instance("state", state, dict)
    if changed is not None:
        check_instance("changed", changed, str)
        check_choice("changed", changed, sorted(_KEYS[explorer]))
    unknown = sorted(str(k) for k in set(state) - _KEYS[explorer])
    if unknown:
        raise ValueError(f"the {explorer} explorer has no control named {unknown[0]!r}")
    if explorer == "walk":
        return _walk_setup(state, changed)
    if explorer == "permissions":
        return _bitmap_setup(state)
    if explorer == "layouts":
        return _layout_setup(state)
    return _nested_setup(state, changed)


def recompute(explorer: str, state: dict, changed: str | None = None) -> str:
    """The explorer's form after a change: the controls as they now stand, and the new output.

    The page replaces its form's contents with this. For the nested
    explorer, a change of ``step`` keeps the step; any other change shows
    the last reference.

    Parameters
    ----------
    explorer, state, changed
        As :func:`setup_from_state`.

    Raises
    ------
    TypeError, ValueError
        As :func:`setup_from_state`; a ``step`` that is not an int.
    """
    setup = setup_from_state(explorer, state, changed)
    step = None
    if explorer == "nested" and changed == "step":
        step = _number(state, "step", 1)
    return _form(setup, step)
