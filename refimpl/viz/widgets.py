"""The four explorers as ipywidgets: controls, ``observe``, one HTML output.

This is the only module of ``refimpl`` that imports ipywidgets. Each widget
class owns its controls (public attributes, so a chapter can set
``w.access.value = "write"`` and read ``w.output.value``), observes every one
of them, and on any change rebuilds its setup (a frozen dataclass from
:mod:`refimpl.viz.walk`, :mod:`refimpl.viz.bitmap` or
:mod:`refimpl.viz.layouts` or :mod:`refimpl.viz.nested`) and re-renders the HTML. No ``interact``: its
output capture sometimes stalls nbclient (see the toolchain notes).

Each class has ``report`` (the last model result) and ``ui`` (the box to
display). Displaying the object itself gives both ``ui``'s widget view (what
Jupyter and Voila draw) and, as ``text/html``, the same explorer written by
``refimpl.viz.web.explorer_html`` (what the published book shows, and
recomputes with the Python it runs in the browser).
"""

from __future__ import annotations

import ipywidgets as W

from refimpl.viz.bitmap import BitmapSetup, bitmap_html, explain_lookup
from refimpl.viz.layouts import LayoutSetup, explain_layout, layout_html
from refimpl.viz.nested import EPT_LEVELS, NestedSetup, entries, explain_nested, nested_html, targets
from refimpl.viz.web import explorer_html
from refimpl.viz.walk import (
    ACCESSES,
    MODES,
    EntryBits,
    WalkSetup,
    default_entries,
    entry_name,
    explain_walk,
    levels,
    walk_html,
)

_SHORT = W.Layout(width="auto")
_ENTRY_LABELS = {"p": "P", "w": "W", "u": "U", "a": "A", "d": "D", "ps": "PS", "nx": "NX"}


def _check(description: str, value: bool, e2e: str) -> W.Checkbox:
    box = W.Checkbox(value=value, description=description, indent=False, layout=_SHORT)
    box.add_class(f"e2e-{e2e}")
    return box


class _Explorer:
    """Shared plumbing: observe controls, recompute, display ``ui``."""

    output: W.HTML
    ui: W.Box

    def _observe(self, controls) -> None:
        for c in controls:
            c.observe(self._changed, names="value")

    def _changed(self, _change=None) -> None:
        self.update()

    def update(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        # Jupyter and Voila draw the widget view; the published page, which
        # has no kernel, shows the same explorer as plain HTML controls that
        # its in-browser Python recomputes (refimpl.viz.web).
        bundle = dict(self.ui._repr_mimebundle_(include=include, exclude=exclude))
        bundle["text/html"] = explorer_html(self.setup(), self._step())
        return bundle

    def _step(self) -> int | None:
        return None


class WalkExplorer(_Explorer):
    """The page-walk explorer (model: :func:`refimpl.viz.walk.explain_walk`).

    Attributes
    ----------
    mode : Dropdown
        Paging mode; changing it resets the entries to the mode's defaults.
    cr0_wp, cr4_pse, cr4_smep, cr4_smap, cr4_pke, efer_nxe, rflags_ac : Checkbox
    access : ToggleButtons
        read / write / fetch.
    user : Checkbox
        CPL 3.
    entry : dict of int to dict of str to Checkbox
        ``entry[level]["w"]`` is the W bit of that level's entry.
    pkey : IntSlider
        The leaf's protection key (4/5-level paging).
    pkru_ad, pkru_wd : Checkbox
        PKRU bits of that key.
    output : HTML
        The walk table, outcome and rule.
    report : WalkReport
        The last result.
    """

    def __init__(self, setup: WalkSetup | None = None) -> None:
        s = setup or WalkSetup()
        self._quiet = True
        self.mode = W.Dropdown(options=list(MODES), value=s.mode, description="mode",
                               layout=W.Layout(width="180px"))
        self.mode.add_class("e2e-mode")
        self.cr0_wp = _check("CR0.WP", s.cr0_wp, "cr0-wp")
        self.cr4_pse = _check("CR4.PSE", s.cr4_pse, "cr4-pse")
        self.cr4_smep = _check("CR4.SMEP", s.cr4_smep, "cr4-smep")
        self.cr4_smap = _check("CR4.SMAP", s.cr4_smap, "cr4-smap")
        self.cr4_pke = _check("CR4.PKE", s.cr4_pke, "cr4-pke")
        self.efer_nxe = _check("EFER.NXE", s.efer_nxe, "efer-nxe")
        self.rflags_ac = _check("RFLAGS.AC", s.rflags_ac, "rflags-ac")
        self.access = W.ToggleButtons(options=list(ACCESSES), value=s.access,
                                      style={"button_width": "60px"})
        self.access.add_class("e2e-access")
        self.user = _check("user mode (CPL 3)", s.user, "user")
        self.entry: dict[int, dict[str, W.Checkbox]] = {}
        self._entry_rows: dict[int, W.HBox] = {}
        self._entry_labels: dict[int, W.HTML] = {}
        for level in range(5, 0, -1):
            bits = s.entry(level) if level in levels(s.paging_mode) else EntryBits()
            self.entry[level] = {n: _check(_ENTRY_LABELS[n], getattr(bits, n), f"l{level}-{n}")
                                 for n in EntryBits.NAMES}
            self._entry_labels[level] = W.HTML(layout=W.Layout(width="110px"))
            self._entry_rows[level] = W.HBox([self._entry_labels[level],
                                              *self.entry[level].values()])
        self.pkey = W.IntSlider(value=s.pkey, min=0, max=15, description="leaf pkey",
                                continuous_update=False)
        self.pkey.add_class("e2e-pkey")
        self.pkru_ad = _check("PKRU.AD", s.pkru_ad, "pkru-ad")
        self.pkru_wd = _check("PKRU.WD", s.pkru_wd, "pkru-wd")
        self.output = W.HTML()
        self.output.add_class("e2e-walk-output")

        regs = W.HBox([self.cr0_wp, self.cr4_pse, self.cr4_smep, self.cr4_smap,
                       self.cr4_pke, self.efer_nxe, self.rflags_ac],
                      layout=W.Layout(flex_flow="row wrap", grid_gap="0 12px"))
        acc = W.HBox([W.HTML("<b>access</b>", layout=W.Layout(width="110px")),
                      self.access, self.user])
        keys = W.HBox([self.pkey, self.pkru_ad, self.pkru_wd],
                      layout=W.Layout(grid_gap="0 12px"))
        self.ui = W.VBox([self.mode, regs, acc,
                          *[self._entry_rows[lv] for lv in range(5, 0, -1)],
                          keys, self.output])
        self.ui.add_class("kvmbook-explorer")

        self.mode.observe(self._mode_changed, names="value")
        self._observe([self.cr0_wp, self.cr4_pse, self.cr4_smep, self.cr4_smap, self.cr4_pke,
                       self.efer_nxe, self.rflags_ac, self.access, self.user, self.pkey,
                       self.pkru_ad, self.pkru_wd,
                       *[c for row in self.entry.values() for c in row.values()]])
        self._quiet = False
        self._relabel()
        self.update()

    def _mode_changed(self, _change=None) -> None:
        # New mode: every entry back to the mode's defaults, then one update.
        self._quiet = True
        for level, bits in default_entries(MODES[self.mode.value]).items():
            for n, box in self.entry[level].items():
                box.value = getattr(bits, n)
        self._quiet = False
        self._relabel()
        self.update()

    def _changed(self, _change=None) -> None:
        if not self._quiet:
            self.update()

    def _relabel(self) -> None:
        mode = MODES[self.mode.value]
        shown = levels(mode)
        for level, row in self._entry_rows.items():
            row.layout.display = "flex" if level in shown else "none"
            if level in shown:
                self._entry_labels[level].value = f"<b>{entry_name(mode, level)}</b> (L{level})"
            self.entry[level]["nx"].disabled = mode.value == 2  # 32-bit entries have no bit 63
        long_mode = mode.long_mode
        for c in (self.pkey, self.pkru_ad, self.pkru_wd):
            c.disabled = not long_mode

    def setup(self) -> WalkSetup:
        """The :class:`refimpl.viz.walk.WalkSetup` the controls describe."""
        mode = MODES[self.mode.value]
        entries = {lv: EntryBits(**{n: bool(c.value) for n, c in self.entry[lv].items()})
                   for lv in levels(mode)}
        return WalkSetup(
            mode=self.mode.value, cr0_wp=self.cr0_wp.value, cr4_pse=self.cr4_pse.value,
            cr4_smep=self.cr4_smep.value, cr4_smap=self.cr4_smap.value,
            cr4_pke=self.cr4_pke.value, efer_nxe=self.efer_nxe.value,
            rflags_ac=self.rflags_ac.value, access=self.access.value, user=self.user.value,
            entries=entries, pkey=self.pkey.value, pkru_ad=self.pkru_ad.value,
            pkru_wd=self.pkru_wd.value)

    def update(self) -> None:
        """Recompute the walk and redraw the output."""
        self.report = explain_walk(self.setup())
        self.output.value = walk_html(self.report)


class BitmapExplorer(_Explorer):
    """The permission-bitmap explorer (model: :func:`refimpl.viz.bitmap.explain_lookup`).

    Attributes
    ----------
    cr0_wp, cr4_smep, cr4_smap, efer_nx : Checkbox
    access : ToggleButtons
    user, rflags_ac : Checkbox
    acc : IntSlider
        The page's ACC rights, 0..7.
    output : HTML
    report : Lookup
    """

    def __init__(self, setup: BitmapSetup | None = None) -> None:
        s = setup or BitmapSetup()
        self.cr0_wp = _check("CR0.WP", s.cr0_wp, "cr0-wp")
        self.cr4_smep = _check("CR4.SMEP", s.cr4_smep, "cr4-smep")
        self.cr4_smap = _check("CR4.SMAP", s.cr4_smap, "cr4-smap")
        self.efer_nx = _check("EFER.NXE", s.efer_nx, "efer-nxe")
        self.access = W.ToggleButtons(options=list(ACCESSES), value=s.access,
                                      style={"button_width": "60px"})
        self.access.add_class("e2e-access")
        self.user = _check("user mode (CPL 3)", s.user, "user")
        self.rflags_ac = _check("RFLAGS.AC", s.rflags_ac, "rflags-ac")
        self.acc = W.IntSlider(value=s.acc, min=0, max=7, description="page ACC",
                               continuous_update=False)
        self.acc.add_class("e2e-acc")
        self.output = W.HTML()
        self.output.add_class("e2e-bitmap-output")
        self.ui = W.VBox([
            W.HBox([self.cr0_wp, self.cr4_smep, self.cr4_smap, self.efer_nx],
                   layout=W.Layout(grid_gap="0 12px")),
            W.HBox([self.access, self.user, self.rflags_ac], layout=W.Layout(grid_gap="0 12px")),
            self.acc, self.output])
        self.ui.add_class("kvmbook-explorer")
        self._observe([self.cr0_wp, self.cr4_smep, self.cr4_smap, self.efer_nx, self.access,
                       self.user, self.rflags_ac, self.acc])
        self.update()

    def setup(self) -> BitmapSetup:
        """The :class:`refimpl.viz.bitmap.BitmapSetup` the controls describe."""
        return BitmapSetup(cr0_wp=self.cr0_wp.value, cr4_smep=self.cr4_smep.value,
                           cr4_smap=self.cr4_smap.value, efer_nx=self.efer_nx.value,
                           access=self.access.value, user=self.user.value,
                           rflags_ac=self.rflags_ac.value, acc=self.acc.value)

    def update(self) -> None:
        """Rebuild the table and redraw."""
        setup = self.setup()
        self.report = explain_lookup(setup)
        self.output.value = bitmap_html(setup)


class LayoutExplorer(_Explorer):
    """The layout explorer (model: :func:`refimpl.viz.layouts.explain_layout`).

    Attributes
    ----------
    tdp : Checkbox
        KVM uses EPT/NPT.
    nested : Checkbox
        L2 running.
    vendor : ToggleButtons
        vmx / svm.
    l1_tdp : Checkbox
        EPT/NPT in L1 (disabled unless ``nested``).
    output : HTML
    report : LayoutReport
    """

    def __init__(self, setup: LayoutSetup | None = None) -> None:
        s = setup or LayoutSetup()
        self.tdp = _check("TDP on the host (EPT/NPT)", s.tdp, "tdp")
        self.nested = _check("L2 running (nested)", s.nested, "nested")
        self.vendor = W.ToggleButtons(options=[("VMX", "vmx"), ("SVM", "svm")], value=s.vendor,
                                      style={"button_width": "60px"})
        self.vendor.add_class("e2e-vendor")
        self.l1_tdp = _check("EPT/NPT in L1", s.l1_tdp, "l1-tdp")
        self.output = W.HTML()
        self.output.add_class("e2e-layout-output")
        self.ui = W.VBox([W.HBox([self.vendor, self.tdp, self.nested, self.l1_tdp],
                                 layout=W.Layout(grid_gap="0 12px", flex_flow="row wrap")),
                          self.output])
        self.ui.add_class("kvmbook-explorer")
        self._observe([self.tdp, self.nested, self.vendor, self.l1_tdp])
        self.update()

    def setup(self) -> LayoutSetup:
        """The :class:`refimpl.viz.layouts.LayoutSetup` the controls describe."""
        return LayoutSetup(tdp=self.tdp.value, nested=self.nested.value,
                           vendor=self.vendor.value, l1_tdp=self.l1_tdp.value)

    def update(self) -> None:
        """Rebuild both vCPUs and redraw."""
        self.l1_tdp.disabled = not self.nested.value
        self.report = explain_layout(self.setup())
        self.output.value = layout_html(self.report)


class NestedWalkExplorer(_Explorer):
    """The nested-walk explorer (model: :func:`refimpl.viz.nested.explain_nested`).

    Attributes
    ----------
    mode : Dropdown
        L2's paging mode; changing it resets the three "break" menus.
    ept_levels : ToggleButtons
        4 or 5.
    ept_ad : Checkbox
        EPTP bit 6.
    access : ToggleButtons
        read / write / fetch.
    user : Checkbox
        CPL 3 in L2.
    ept_unmapped, ept_read_only : Dropdown
        An L2 page (one of L2's tables, or the data page) whose EPT PTE is
        zero, or readable only.
    l2_not_present : Dropdown
        An L2 entry written with P=0.
    step : IntSlider
        The reference shown, 1 to the number of references; any other
        change sets it to the last one.
    output : HTML
        The grid, the references up to ``step``, and the outcome.
    report : NestedReport
        The last result.
    """

    def __init__(self, setup: NestedSetup | None = None) -> None:
        s = setup or NestedSetup()
        self._quiet = True
        self.mode = W.Dropdown(options=list(MODES), value=s.mode, description="L2 mode",
                               layout=W.Layout(width="180px"))
        self.mode.add_class("e2e-mode")
        self.ept_levels = W.ToggleButtons(options=[(f"{n}-level EPT", n) for n in EPT_LEVELS],
                                          value=s.ept_levels, style={"button_width": "90px"})
        self.ept_levels.add_class("e2e-ept-levels")
        self.ept_ad = _check("EPTP A/D (bit 6)", s.ept_ad, "ept-ad")
        self.access = W.ToggleButtons(options=list(ACCESSES), value=s.access,
                                      style={"button_width": "60px"})
        self.access.add_class("e2e-access")
        self.user = _check("user mode (CPL 3)", s.user, "user")
        wide = W.Layout(width="330px")
        style = {"description_width": "170px"}
        self.ept_unmapped = W.Dropdown(options=targets(s.mode), value=s.ept_unmapped,
                                       description="EPT does not map", layout=wide, style=style)
        self.ept_unmapped.add_class("e2e-ept-unmapped")
        self.ept_read_only = W.Dropdown(options=targets(s.mode), value=s.ept_read_only,
                                        description="EPT maps read-only", layout=wide,
                                        style=style)
        self.ept_read_only.add_class("e2e-ept-read-only")
        self.l2_not_present = W.Dropdown(options=entries(s.mode), value=s.l2_not_present,
                                         description="L2 entry not present", layout=wide,
                                         style=style)
        self.l2_not_present.add_class("e2e-l2-not-present")
        self.step = W.IntSlider(value=1, min=1, max=1, description="step",
                                continuous_update=True, layout=W.Layout(width="420px"))
        self.step.add_class("e2e-step")
        self.output = W.HTML()
        self.output.add_class("e2e-nested-output")
        self.ui = W.VBox([
            W.HBox([self.mode, self.ept_levels, self.ept_ad],
                   layout=W.Layout(grid_gap="0 12px", flex_flow="row wrap")),
            W.HBox([W.HTML("<b>access</b>", layout=W.Layout(width="110px")), self.access,
                    self.user]),
            W.HBox([self.ept_unmapped, self.ept_read_only, self.l2_not_present],
                   layout=W.Layout(grid_gap="0 12px", flex_flow="row wrap")),
            self.step, self.output])
        self.ui.add_class("kvmbook-explorer")
        self.mode.observe(self._mode_changed, names="value")
        self._observe([self.ept_levels, self.ept_ad, self.access, self.user,
                       self.ept_unmapped, self.ept_read_only, self.l2_not_present])
        self.step.observe(self._step_changed, names="value")
        self._quiet = False
        self.update()

    def _mode_changed(self, _change=None) -> None:
        # New mode: the break menus list that mode's tables; all back to "none".
        self._quiet = True
        for menu, options in ((self.ept_unmapped, targets(self.mode.value)),
                              (self.ept_read_only, targets(self.mode.value)),
                              (self.l2_not_present, entries(self.mode.value))):
            menu.value = "none"
            menu.options = options
            menu.value = "none"
        self._quiet = False
        self.update()

    def _changed(self, _change=None) -> None:
        if not self._quiet:
            self.update()

    def _step(self) -> int | None:
        return self.step.value

    def _step_changed(self, _change=None) -> None:
        if not self._quiet:
            self.output.value = nested_html(self.report, self.step.value)

    def setup(self) -> NestedSetup:
        """The :class:`refimpl.viz.nested.NestedSetup` the controls describe."""
        return NestedSetup(
            mode=self.mode.value, ept_levels=self.ept_levels.value, ept_ad=self.ept_ad.value,
            access=self.access.value, user=self.user.value,
            ept_unmapped=self.ept_unmapped.value, ept_read_only=self.ept_read_only.value,
            l2_not_present=self.l2_not_present.value)

    def update(self) -> None:
        """Recompute the translation, set the slider's range to it, show the last step."""
        self.report = explain_nested(self.setup())
        n = max(1, self.report.steps)
        self._quiet = True
        # Widen before narrowing, so value stays within [min, max] at every point.
        self.step.max = max(n, self.step.max)
        self.step.value = n
        self.step.max = n
        self._quiet = False
        self.output.value = nested_html(self.report, self.step.value)
