"""The explorers as HTML controls (refimpl.viz.web) agree with the ipywidgets, and load without NumPy.

The published book's page runs ``refimpl.viz.web.recompute`` in the
browser; Jupyter runs the widgets of ``refimpl.viz.widgets``. The same
sequence of changes must give the same output in both, including the rules
that tie controls together (a new mode resets the entries, the nested step
follows the walk). The browser tests (``tests/browser/test_live_explorers.py``)
check the page itself.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from refimpl.viz import web
from refimpl.viz.bitmap import BitmapSetup
from refimpl.viz.layouts import LayoutSetup
from refimpl.viz.nested import NestedSetup
from refimpl.viz.walk import WalkSetup

ROOT = Path(__file__).resolve().parents[2]


def _output(form_html: str) -> str:
    """The explorer's output, as the widget's ``output.value`` would hold it."""
    m = re.search(r'<div class="kl-output [^"]+">(.*)</div>$', form_html, re.S)
    assert m, form_html[-200:]
    return m.group(1)


class _Form(HTMLParser):
    """The values a form's controls hold, read as the page script reads them."""

    def __init__(self, html: str):
        super().__init__()
        self.state: dict = {}
        self._select = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("type") == "checkbox":
            self.state[a["name"]] = "checked" in a
        elif tag == "input" and a.get("type") == "radio" and "checked" in a:
            self.state[a["name"]] = a["value"]
        elif tag == "input" and a.get("type") == "range":
            self.state[a["name"]] = a["value"]
        elif tag == "select":
            self._select = a["name"]
        elif tag == "option" and "selected" in a:
            self.state[self._select] = a["value"]


def test_walk_agrees_with_the_widget():
    from refimpl.viz.widgets import WalkExplorer

    w = WalkExplorer()
    state: dict = {}
    steps = [("l1_w", False), ("access", "write"), ("user", True), ("cr0_wp", False),
             ("mode", "5-level"), ("l5_u", False), ("mode", "32-bit"), ("l2_ps", True),
             ("cr4_pse", True), ("mode", "PAE"), ("l3_w", True)]
    for name, value in steps:
        if name.startswith("l") and name[1].isdigit():
            w.entry[int(name[1])][name[3:]].value = value
        else:
            getattr(w, name).value = value
        state[name] = value   # the other entries as the form still shows them
        form = web.recompute("walk", state, name)
        assert _output(form) == w.output.value, name
        state = _Form(form).state
        for lv in (1, 2, 3, 4, 5):               # the form shows the widget's entries
            for bit, box in w.entry[lv].items():
                if f"l{lv}_{bit}" in state:
                    assert state[f"l{lv}_{bit}"] == box.value, (name, lv, bit)


def test_permissions_and_layouts_agree_with_the_widgets():
    from refimpl.viz.widgets import BitmapExplorer, LayoutExplorer

    b = BitmapExplorer()
    state: dict = {}
    for name, value in [("cr4_smep", True), ("cr4_smap", True), ("acc", 4), ("rflags_ac", True),
                        ("access", "fetch"), ("acc", 0), ("user", True)]:
        getattr(b, name).value = value
        state[name] = str(value) if name == "acc" else value   # a slider sends a string
        form = web.recompute("permissions", state, name)
        assert _output(form) == b.output.value, name
        state = _Form(form).state
    x = LayoutExplorer()
    state = {}
    for name, value in [("nested", True), ("vendor", "svm"), ("l1_tdp", False), ("tdp", False),
                        ("l1_tdp", True)]:
        getattr(x, name).value = value
        state[name] = value
        form = web.recompute("layouts", state, name)
        assert _output(form) == x.output.value, name
        disabled = re.search(r'name="l1_tdp"[^>]*>', form).group(0)
        assert (" disabled" in disabled) == x.l1_tdp.disabled
        state = _Form(form).state


def test_nested_agrees_with_the_widget_and_keeps_its_step():
    from refimpl.viz.widgets import NestedWalkExplorer

    n = NestedWalkExplorer()
    state: dict = {}
    for name, value in [("step", 7), ("ept_levels", 5), ("ept_unmapped", "PD"), ("mode", "PAE"),
                        ("ept_read_only", "data page"), ("access", "write"), ("step", 3)]:
        getattr(n, name).value = value
        state[name] = value   # the menus as the form still shows them
        form = web.recompute("nested", state, name)
        assert _output(form) == n.output.value, name
        slider = re.search(r'name="step"[^>]*max="(\d+)"[^>]*value="(\d+)"', form)
        assert (int(slider[1]), int(slider[2])) == (n.step.max, n.step.value), name
        state = _Form(form).state


def test_the_widgets_carry_the_html_explorer_for_the_static_page():
    from refimpl.viz.widgets import NestedWalkExplorer

    n = NestedWalkExplorer()
    n.step.value = 7
    bundle = n._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    html = bundle["text/html"]
    assert html.startswith('<div class="kvmbook-live" data-explorer="nested">')
    assert "<fieldset disabled>" in html        # until the page's Python is ready
    assert n.output.value in html


@pytest.mark.parametrize("call, error", [
    (lambda: web.recompute("walks", {}), ValueError),
    (lambda: web.recompute("walk", [("mode", "PAE")]), TypeError),
    (lambda: web.recompute("walk", {"mode": "6-level"}), ValueError),
    (lambda: web.recompute("walk", {"cr0_wp": "on"}), TypeError),
    (lambda: web.recompute("walk", {"pkey": "16"}), ValueError),
    (lambda: web.recompute("walk", {"nothing": True}), ValueError),
    (lambda: web.recompute("permissions", {"acc": 8}), ValueError),
    (lambda: web.recompute("layouts", {}, "mode"), ValueError),
    (lambda: web.recompute("nested", {"ept_unmapped": "PML5"}), ValueError),
    (lambda: web.explorer_html(object()), TypeError),
    (lambda: web.explorer_html(NestedSetup(), True), TypeError),
])
def test_bad_input_names_the_problem(call, error):
    with pytest.raises(error):
        call()


def test_every_explorer_renders_its_default():
    for setup in (WalkSetup(), BitmapSetup(), LayoutSetup(), NestedSetup()):
        html = web.explorer_html(setup)
        assert html.count("<form") == 1 and 'class="kvmbook-live-status"' in html


def test_the_page_bootstrap_imports_the_explorers_without_numpy():
    """What the page's Python does (see _widgets/live/worker.js), with NumPy absent."""
    code = textwrap.dedent("""
        import sys, types
        sys.modules["numpy"] = None          # import numpy now fails, as in the page
        try:
            import refimpl.viz.web as web
        except ImportError:
            for n in [n for n in sys.modules if n == "refimpl" or n.startswith("refimpl.")]:
                del sys.modules[n]
            stub = types.ModuleType("refimpl.fast.batch")
            stub.translate_batch = None
            sys.modules["refimpl.fast.batch"] = stub
            import refimpl.viz.web as web
        for name in web.EXPLORERS:
            assert "kl-output" in web.recompute(name, {})
        assert "ipywidgets" not in sys.modules and "IPython" not in sys.modules
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
    assert "_load_web" in (ROOT / "_widgets" / "live" / "worker.js").read_text()


def test_the_build_without_npm_logs_info_and_stays_static(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "_ext"))
    try:
        import kvmbook_live
    finally:
        sys.path.remove(str(ROOT / "_ext"))
    messages = []
    monkeypatch.setattr(kvmbook_live.shutil, "which", lambda name: None)
    monkeypatch.setattr(kvmbook_live.logger, "info", messages.append)
    monkeypatch.setattr(kvmbook_live.logger, "warning", lambda *a, **k: pytest.fail("warned"))
    assert kvmbook_live._fetch(tmp_path) is None
    assert messages and "npm is not installed" in messages[0]
    # A tarball that is not the pinned one is refused (and removed), never used.
    bad = tmp_path / f"pyodide-{kvmbook_live.PYODIDE_VERSION}.tgz"
    bad.write_bytes(b"not pyodide")
    with pytest.raises(Exception, match="expected sha512-"):
        kvmbook_live._fetch(tmp_path)
    assert not bad.exists()


def test_the_refimpl_zip_is_stable_and_pure_python():
    sys.path.insert(0, str(ROOT / "_ext"))
    try:
        import kvmbook_live
    finally:
        sys.path.remove(str(ROOT / "_ext"))
    import io
    import zipfile

    data = kvmbook_live.refimpl_zip(ROOT / "refimpl")
    assert data == kvmbook_live.refimpl_zip(ROOT / "refimpl")
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "refimpl/viz/web.py" in names and all(n.endswith(".py") for n in names)
