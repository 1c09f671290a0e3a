"""A widget chapter served live by Voilà: a control moved in the browser runs the Python callback.

The chapter (a MyST Markdown notebook) is converted to ``.ipynb`` with
jupytext in a temporary folder, served by Voilà on 127.0.0.1 with a real
kernel, and driven in headless Chromium. Voilà's page template asks a CDN for
Font Awesome CSS; the request is aborted (as on a machine without network),
which is why navigation waits for ``domcontentloaded`` only. The widgets
themselves come from Voilà's own server.

Expected texts are worked out by hand from KVM's table (see the chapter):
with CR0.WP=1 and EFER.NXE=1, row 1 (supervisor write) is ``0x33`` and row 3
(user write) is ``0x3f``; bit 5 of ``0x3f`` is set, bit 7 is not.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from browser_support import ROOT, free_port, need, screenshot, stop, wait_for_port, watch

CHAPTER = ROOT / "book" / "explore_permissions.md"


@pytest.fixture(scope="module")
def voila_url(tmp_path_factory):
    """Voilà serving the permission-bitmap chapter on 127.0.0.1."""
    try:
        import jupytext
        import voila  # noqa: F401
    except ImportError as e:
        need(False, f"{e.name} is not installed (pip install voila==0.5.13 jupytext)")
    need(CHAPTER.is_file(), f"{CHAPTER} is missing")
    folder = tmp_path_factory.mktemp("voila")
    notebook = folder / "explore_permissions.ipynb"
    jupytext.write(jupytext.read(CHAPTER), notebook)
    port = free_port()
    log = open(folder / "voila.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "voila", str(notebook), "--no-browser", f"--port={port}",
         "--Voila.ip=127.0.0.1", "--show_tracebacks=True"],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc, timeout=30)
        yield f"http://127.0.0.1:{port}/", folder / "voila.log"
    finally:
        stop(proc)
        log.close()


def test_voila_callback_updates_output(page, voila_url):
    url, voila_log = voila_url
    try:
        drive(page, url)
    except Exception as e:
        pytest.fail(f"{type(e).__name__}: {e}\n--- voila log ---\n{voila_log.read_text()}",
                    pytrace=False)


def drive(page, voila_url: str) -> None:
    from playwright.sync_api import expect

    log = watch(page)
    page.goto(voila_url, wait_until="domcontentloaded", timeout=60_000)
    summary = page.locator(".e2e-bitmap-output .bitmap-summary").first
    expect(summary).to_contain_text("A supervisor read uses row 0 (byte 0x00)", timeout=60_000)

    # A click on "write": the observe callback rebuilds the table in Python.
    page.locator(".e2e-access button", has_text="write").first.click()
    expect(summary).to_have_text(
        "A supervisor write uses row 1 (byte 0x33); on a page with ACC 7 (UWX) bit 7 is 0: "
        "the access is allowed.")

    page.locator(".e2e-user input[type=checkbox]").first.click()
    expect(summary).to_contain_text("A user write uses row 3 (byte 0x3f)")

    # Type 5 into the slider's readout.
    readout = page.locator(".e2e-acc .widget-readout").first
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("5")
    page.keyboard.press("Enter")
    expect(summary).to_have_text(
        "A user write uses row 3 (byte 0x3f); on a page with ACC 5 (U-X) bit 5 is 1: "
        "the access faults.")
    hit = page.locator(".e2e-bitmap-output td.hit").first
    assert (hit.get_attribute("data-row"), hit.get_attribute("data-col")) == ("3", "5")

    screenshot(page, "voila_explore_permissions")
    # Only the aborted CDN requests may fail; everything Voilà serves must work.
    local_failed = [f for f in log.failed if f.split(" ")[0] not in log.off_host]
    assert not local_failed, f"local requests failed: {local_failed}"
    assert not log.bad_status, log.bad_status
    print("aborted off-host requests (Voila's template):", log.off_host)
