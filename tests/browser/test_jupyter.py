"""Each widget chapter opened in JupyterLab as a notebook, run, and driven in headless Chromium.

This is what the README tells a reader to do: start ``jupyter lab book/``,
right-click a chapter, *Open With -> Notebook* (jupytext's contents manager
reads the MyST Markdown as a notebook), then *Run -> Run All Cells*. For each
of the four explorer chapters the test checks that every code cell ran (the
queue was not stopped by an exception) and that no output is a traceback,
then moves a control of the chapter's first explorer and waits for the Python
callback to redraw its output with a text worked out by hand from the chapter.
A last test runs a small notebook with a failing cell to show that the same
checks catch it.

One JupyterLab server (127.0.0.1, a random free port, a random token) serves
a copy of ``book/`` from a temporary folder, so running cells and JupyterLab's
autosave never touch the repository. Its configuration, data, runtime and
IPython folders are temporary too, so the reader's own Jupyter settings are
neither used nor changed. Two settings are seeded there: the news prompt is
answered "no" (JupyterLab would otherwise ask), and the notebook is drawn
without windowing, so that every cell is in the DOM for the checks (a display
option only). The server is told not to check PyPI for updates or news and to
use the read-only extension manager, so it makes no request of its own to
another host; every request the browser makes that leaves 127.0.0.1 is
aborted and recorded, and the test fails if there is one.

Screenshots of each explorer after the change go to
``_build/screenshots/jupyter_<chapter>.png``. These tests take about a
minute, so unlike the other browser tests they run only with
``BOOK_BROWSER_TESTS=1`` (as in CI), not in a plain ``pytest`` run.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from browser_support import REQUIRED, ROOT, free_port, need, screenshot, stop, wait_for_port, watch

# About a minute of wall time and four kernels: only when asked for (CI's browser step).
pytestmark = pytest.mark.skipif(not REQUIRED, reason="JupyterLab tests run with BOOK_BROWSER_TESTS=1")

BOOK = ROOT / "book"
CHAPTERS = ["explore_walk", "explore_permissions", "explore_layouts", "explore_nested"]

#: A notebook whose second cell raises: the checks must report it.
FAILING = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A failing cell

```{code-cell} ipython3
x = 1
```

```{code-cell} ipython3
x / 0
```

```{code-cell} ipython3
print("never reached")
```
"""

#: JupyterLab user settings seeded into the temporary config folder.
SETTINGS = {
    # Answer JupyterLab's "get notified about official Jupyter news?" with no.
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    # Keep every cell in the DOM (the default windowing detaches cells out of view).
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


@dataclass
class Lab:
    url: str
    token: str
    folder: Path
    log: Path

    def api(self, method: str, path: str):
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shut_down_kernels(self) -> None:
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """``jupyter lab`` on a copy of ``book/``, on 127.0.0.1 with a token."""
    try:
        import jupytext  # noqa: F401
        import jupyterlab  # noqa: F401
    except ImportError as e:
        need(False, f"{e.name} is not installed (pip install -r requirements.txt)")
    base = tmp_path_factory.mktemp("jupyter")
    folder = base / "book"
    shutil.copytree(BOOK, folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (folder / "failing_cell.md").write_text(FAILING)
    for name, values in SETTINGS.items():
        path = base / "config" / "lab" / "user-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(base / "config"),
               JUPYTER_DATA_DIR=str(base / "data"), JUPYTER_RUNTIME_DIR=str(base / "runtime"),
               IPYTHONDIR=str(base / "ipython"))
    port, token = free_port(), secrets.token_hex(24)
    log_path = base / "jupyter.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", str(folder), "--no-browser",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
         f"--IdentityProvider.token={token}",
         "--ServerApp.allow_root=True",        # CI runs as root
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.news_url=None", "--LabApp.extension_manager=readonly"],
        cwd=base, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc, timeout=60)
        yield Lab(f"http://127.0.0.1:{port}", token, folder, log_path)
    finally:
        stop(proc)
        log.close()


def menu_item(page, label: str):
    """A visible item of an open JupyterLab (Lumino) menu, by its exact label."""
    return page.locator("li.lm-Menu-item:visible").filter(
        has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(label)}$")))


def open_as_notebook(page, lab: Lab, name: str):
    """Load JupyterLab in a workspace of its own and open ``name`` with Open With -> Notebook."""
    page.goto(f"{lab.url}/lab/workspaces/{name.replace('.', '-')}?token={lab.token}",
              wait_until="domcontentloaded", timeout=60_000)
    item = page.locator(".jp-DirListing-item").filter(
        has=page.locator(".jp-DirListing-itemText", has_text=re.compile(f"^{re.escape(name)}$")))
    item.click(button="right", timeout=60_000)
    menu_item(page, "Open With").hover()
    menu_item(page, "Notebook").click()
    panel = page.locator(".jp-NotebookPanel:visible").first
    panel.wait_for(timeout=30_000)
    return panel


def run_all(page, panel, code_cells: int) -> None:
    """Run -> Run All Cells, once the notebook is loaded and its kernel idle; wait until done."""
    from playwright.sync_api import expect

    expect(panel.locator(".jp-CodeCell")).to_have_count(code_cells, timeout=30_000)
    expect(panel.locator(".jp-KernelName")).to_have_text("Python 3 (ipykernel)", timeout=30_000)
    idle = panel.locator(".jp-Notebook-ExecutionIndicator[data-status=idle]")
    expect(idle).to_have_count(1, timeout=60_000)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
    menu_item(page, "Run All Cells").click()
    # Done: every cell has its number, or the kernel is idle with nothing queued
    # (an exception empties the queue and leaves the later cells unnumbered).
    page.wait_for_function(
        """(panel) => {
            const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                .map(e => e.textContent.trim());
            if (prompts.length && prompts.every(t => /^\\[\\d+\\]:$/.test(t))) return true;
            const status = panel.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status;
            return status === 'idle' && prompts.some(t => /^\\[\\d+\\]:$/.test(t))
                && !prompts.includes('[*]:');
        }""", arg=panel.element_handle(), timeout=120_000)


def problems(panel) -> list[str]:
    """Cells that did not run, and outputs that are tracebacks."""
    found = []
    prompts = [t.strip() for t in panel.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()]
    unrun = [i + 1 for i, t in enumerate(prompts) if not re.fullmatch(r"\[\d+\]:", t)]
    if unrun:
        found.append(f"code cells {unrun} of {len(prompts)} did not run")
    # JupyterLab draws errors and stderr with the same renderer; a traceback
    # always names its exception class.
    for text in panel.locator(
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    ).all_inner_texts():
        if "Traceback" in text or re.search(r"^\w+(Error|Exception)\b", text, re.M):
            found.append(text.strip()[-800:])
    return found


def assert_local(log) -> None:
    assert not log.off_host, f"requests left 127.0.0.1: {log.off_host}"
    assert not log.failed, f"requests failed: {log.failed}"
    assert not log.bad_status, f"error responses: {log.bad_status}"
    assert not log.page_errors, f"JavaScript errors: {log.page_errors}"


def code_cell_count(path: Path) -> int:
    import jupytext

    return sum(c.cell_type == "code" for c in jupytext.read(path).cells)


# What each chapter's first explorer shows after Run All (its defaults), the
# controls a reader moves, and what the Python callback must then draw. The
# texts are the chapters' own hand-worked cases; see each function.

def drive_walk(page, explorer, expect):
    out = explorer.locator(".e2e-walk-output").first
    expect(out).to_contain_text("Outcome: gpa 0x40000567 (4 KiB page)")
    # A user-mode write to a page whose PTE has W=0: #PF with P|W|U = 0x7.
    explorer.locator(".e2e-access button", has_text="write").first.click()
    explorer.locator(".e2e-user input[type=checkbox]").first.check()
    explorer.locator(".e2e-l1-w input[type=checkbox]").first.uncheck()
    expect(out).to_contain_text("#PF, error code 0x7 (P|W|U)")


def drive_permissions(page, explorer, expect):
    summary = explorer.locator(".e2e-bitmap-output .bitmap-summary").first
    expect(summary).to_contain_text("A supervisor read uses row 0 (byte 0x00)")
    explorer.locator(".e2e-access button", has_text="write").first.click()
    expect(summary).to_have_text(
        "A supervisor write uses row 1 (byte 0x33); on a page with ACC 7 (UWX) bit 7 is 0: "
        "the access is allowed.")
    # The slider, three steps left: ACC 4 is U only. Row 1 (supervisor write,
    # CR0.WP=1) faults on every page without W: 0x33 has bit 4 set.
    explorer.locator(".e2e-acc .noUi-handle").first.focus()
    for _ in range(3):
        page.keyboard.press("ArrowLeft")
    expect(explorer.locator(".e2e-acc .widget-readout").first).to_have_text("4")
    expect(summary).to_have_text(
        "A supervisor write uses row 1 (byte 0x33); on a page with ACC 4 (U--) bit 4 is 1: "
        "the access faults.")
    hit = explorer.locator(".e2e-bitmap-output td.hit").first
    assert (hit.get_attribute("data-row"), hit.get_attribute("data-col")) == ("1", "4")


def drive_layouts(page, explorer, expect):
    out = explorer.locator(".e2e-layout-output").first
    expect(out).to_contain_text("today: mmu \u2192 root_mmu, walk_mmu \u2192 root_mmu")
    # L2 running with EPT in L1: mmu -> guest_mmu, walk_mmu -> nested_mmu.
    explorer.locator(".e2e-nested input[type=checkbox]").first.check()
    expect(out).to_contain_text("today: mmu \u2192 guest_mmu, walk_mmu \u2192 nested_mmu")
    expect(out.locator("svg.kvmbook-diagram")).to_have_count(2)
    # SVM without NPT on the host cannot offer nested NPT: no diagram.
    explorer.locator(".e2e-vendor button", has_text="SVM").first.click()
    explorer.locator(".e2e-tdp input[type=checkbox]").first.uncheck()
    expect(out).to_contain_text("Not a configuration KVM allows")
    expect(out.locator("svg.kvmbook-diagram")).to_have_count(0)
    # With NPT on the host again, AMD's picture is Intel's: the same pointers.
    explorer.locator(".e2e-tdp input[type=checkbox]").first.check()
    expect(out).to_contain_text("SVM host with NPT")
    expect(out).to_contain_text("today: mmu \u2192 guest_mmu, walk_mmu \u2192 nested_mmu")
    expect(out.locator("svg.kvmbook-diagram")).to_have_count(2)


def drive_nested(page, explorer, expect):
    out = explorer.locator(".e2e-nested-output").first
    expect(out).to_contain_text("Outcome: L1 gpa 0x109567 (L2 gpa 0x9567)")
    # The dropdown: the EPT does not map the PD's page. Two L2 levels of
    # 4 + 1 references, then the EPT walk for 0x2000 fails at its PTE: 14.
    explorer.locator(".e2e-ept-unmapped select").first.select_option(label="PD")
    expect(out).to_contain_text("exit qualification 0x83 (READ|WRITE|GVA_IS_VALID)")
    step = explorer.locator(".e2e-step").first
    expect(step.locator(".widget-readout")).to_have_text("14")
    # The slider, back to reference 7: the second entry of the EPT walk for
    # the PDPT's page 0x3000, the EPT PDPTE at L1 0x2000.
    step.locator(".noUi-handle").focus()
    for _ in range(7):
        page.keyboard.press("ArrowLeft")
    expect(step.locator(".widget-readout")).to_have_text("7")
    expect(out).to_contain_text(
        "reference 7 of 14: EPT PDPTE at L1 0x2000, translating L2 gpa 0x3000 (the PDPT)")


DRIVERS = {"explore_walk": drive_walk, "explore_permissions": drive_permissions,
           "explore_layouts": drive_layouts, "explore_nested": drive_nested}


def patient_expect(actual):
    """playwright's ``expect`` with a 30 s default timeout (a kernel callback on 2 busy cores)."""
    from playwright.sync_api import expect

    assertions = expect(actual)

    class Patient:
        def __getattr__(self, name):
            method = getattr(assertions, name)
            return lambda *args, **kwargs: method(*args, **{"timeout": 30_000, **kwargs})

    return Patient()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_runs_in_jupyterlab_and_its_widgets_call_python(page, lab, chapter):
    need((BOOK / f"{chapter}.md").is_file(), f"book/{chapter}.md is missing")
    page.set_viewport_size({"width": 1280, "height": 1100})
    log = watch(page)
    try:
        panel = open_as_notebook(page, lab, f"{chapter}.md")
        run_all(page, panel, code_cell_count(BOOK / f"{chapter}.md"))
        found = problems(panel)
        assert not found, "\n".join(found)
        explorer = panel.locator(".kvmbook-explorer").first
        explorer.scroll_into_view_if_needed()
        DRIVERS[chapter](page, explorer, patient_expect)
        explorer.evaluate("el => el.scrollIntoView({block: 'start'})")
        screenshot(page, f"jupyter_{chapter}")
        assert_local(log)
    except Exception as e:
        if isinstance(e, AssertionError):
            raise
        pytest.fail(f"{type(e).__name__}: {e}\n--- jupyter log (tail) ---\n"
                    f"{lab.log.read_text()[-4000:]}", pytrace=False)
    finally:
        lab.shut_down_kernels()


def test_a_failing_cell_is_reported(page, lab):
    """The checks above can fail: an exception stops Run All and shows a traceback."""
    page.set_viewport_size({"width": 1280, "height": 900})
    log = watch(page)
    try:
        panel = open_as_notebook(page, lab, "failing_cell.md")
        run_all(page, panel, 3)
        found = problems(panel)
    finally:
        lab.shut_down_kernels()
    assert found[0] == "code cells [3] of 3 did not run", found
    assert len(found) == 2 and "ZeroDivisionError" in found[1], found
    assert_local(log)
