"""The explorer chapters of the built book, opened in headless Chromium from 127.0.0.1, as static pages.

For each chapter page: the explorer is drawn as the plain HTML controls of
``refimpl.viz.web`` with the outcome saved at build time (not blank), every
request is answered from the local server (none fails, none leaves the
host, no 4xx), and the page names no CDN. The page is served as a build
without npm writes it (its ``KVMBOOK_LIVE`` config says there is no Python
runtime), so it must say that its explorer is static and start no Python.
The explorers' Python, which makes them recompute in the page, is tested in
``test_live_explorers.py``. Each page is saved as
``_build/screenshots/<chapter>.png``.
"""

from __future__ import annotations

import re

import pytest

from browser_support import HTML_DIR, assert_clean, need, screenshot, watch


#: chapter -> (output selector, text the saved output must contain)
CHAPTERS = {
    "explore_walk": (".e2e-walk-output", "Outcome: gpa 0x40000567 (4 KiB page)"),
    "explore_permissions": (".e2e-bitmap-output",
                            "A supervisor read uses row 0 (byte 0x00); on a page with ACC 7 (UWX)"),
    "explore_layouts": (".e2e-layout-output",
                        "today: mmu \u2192 root_mmu, walk_mmu \u2192 root_mmu"),
    "explore_nested": (".e2e-nested-output", "Outcome: L1 gpa 0x109567 (L2 gpa 0x9567)"),
}


def open_chapter(page, book_url: str, chapter: str):
    need((HTML_DIR / "book" / f"{chapter}.html").is_file(),
         f"{chapter}.html is not in {HTML_DIR / 'book'} (is the chapter in _toc.yml?)")
    log = watch(page)

    def as_built_without_npm(route):
        body = route.fetch().text()
        assert '"runtime": true' in body or '"runtime": false' in body
        route.fulfill(body=body.replace('"runtime": true', '"runtime": false'),
                      content_type="text/html")

    page.route(f"**/book/{chapter}.html", as_built_without_npm)
    response = page.goto(f"{book_url}/book/{chapter}.html", wait_until="load")
    assert response is not None and response.ok
    log.source = response.text()
    try:
        page.wait_for_selector(".kvmbook-live", timeout=10_000)
    except Exception:
        pytest.fail(f"no explorer on {chapter}.html within 10 s; requests that left "
                    f"127.0.0.1 (aborted): {log.off_host}; failed: {log.failed}; "
                    f"JavaScript errors: {log.page_errors}", pytrace=False)
    return log


def assert_page_clean(log) -> None:
    assert_clean(log)
    assert any("/_static/live/live.js" in u for u in log.requests), "live.js was not loaded"
    assert not [u for u in log.requests if "pyodide" in u or "/live/worker.js" in u]


@pytest.mark.parametrize("chapter", list(CHAPTERS))
def test_explorers_render_offline(page, book_url, chapter):
    log = open_chapter(page, book_url, chapter)
    selector, saved_text = CHAPTERS[chapter]
    explorer = page.locator(".kvmbook-live").first
    box = explorer.bounding_box()
    assert box is not None and box["height"] > 150 and box["width"] > 300, box
    assert explorer.locator("input, select").count() >= 4
    page.wait_for_function("window.kvmbookLive && window.kvmbookLive.state === 'static'")
    status = explorer.locator(".kvmbook-live-status").inner_text()
    assert status.startswith("This explorer is static in this build"), status
    assert explorer.locator("fieldset").evaluate("f => f.disabled")
    output = page.locator(selector).first
    text = output.inner_text()
    assert saved_text in text, text[:400]
    if chapter == "explore_layouts":
        # Two generated diagrams, drawn as inline SVG with their boxes.
        assert page.locator(f"{selector} svg.kvmbook-diagram").count() == 2
        assert page.locator(f"{selector} svg g.box").count() == 3 + 2 + 9
    # The page as served names no CDN; its only external URL is thebe's,
    # which sphinx-thebe defines on every page but loads only on launch.
    html = log.source
    for cdn in ("jsdelivr", "cdnjs", "cdn.", "googleapis"):
        assert cdn not in html, cdn
    external = set(re.findall(r"https?://[^\s\"'<>)\\]+", html)) - {"http://www.w3.org/2000/svg"}
    assert external <= {"https://unpkg.com/thebe@0.8.2/lib/index.js"}, external
    screenshot(page, chapter)
    assert_page_clean(log)
