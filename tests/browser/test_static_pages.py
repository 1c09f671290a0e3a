"""The widget chapters of the built book, opened in headless Chromium from 127.0.0.1.

For each chapter page: the widgets are drawn from their saved state (not
blank), every request is answered from the local server (none fails, none
leaves the host, no 4xx), and a control that the page's own JavaScript can
move does move. Python callbacks need a kernel, which a static page does not
have: the tests also check that the output stays as saved, which is what the
chapters tell the reader. Each page is saved as
``_build/screenshots/<chapter>.png``.
"""

from __future__ import annotations

import re

import pytest

from browser_support import HTML_DIR, need, screenshot, watch

#: A page error every jupyter-book 1.0.4 page raises: sphinx-thebe's inline
#: script declaring THEBE_JS_URL is added twice. It is not ours and is harmless
#: (thebe is never launched: the book has no launch buttons).
KNOWN_PAGE_ERRORS = re.compile(r"Identifier 'THEBE_JS_URL' has already been declared")

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
    response = page.goto(f"{book_url}/book/{chapter}.html", wait_until="load")
    assert response is not None and response.ok
    log.source = response.text()
    try:
        page.wait_for_selector(".kvmbook-explorer", timeout=10_000)
    except Exception:
        pytest.fail(f"no widget rendered on {chapter}.html within 10 s; requests that left "
                    f"127.0.0.1 (aborted): {log.off_host}; failed: {log.failed}; "
                    f"JavaScript errors: {log.page_errors}", pytrace=False)
    return log


def assert_clean(log) -> None:
    assert not log.off_host, f"requests left 127.0.0.1: {log.off_host}"
    assert not log.failed, f"requests failed: {log.failed}"
    assert not log.bad_status, f"error responses: {log.bad_status}"
    errors = [e for e in log.page_errors if not KNOWN_PAGE_ERRORS.search(e)]
    assert not errors, f"JavaScript errors: {errors}"
    assert any(u.endswith("/_static/ipywidgets/embed.js") or "/_static/ipywidgets/embed.js?" in u
               for u in log.requests), "the vendored embed.js was not loaded"


@pytest.mark.parametrize("chapter", list(CHAPTERS))
def test_widgets_render_offline(page, book_url, chapter):
    log = open_chapter(page, book_url, chapter)
    selector, saved_text = CHAPTERS[chapter]
    explorer = page.locator(".kvmbook-explorer").first
    box = explorer.bounding_box()
    assert box is not None and box["height"] > 150 and box["width"] > 300, box
    assert page.locator(".jupyter-widgets").count() >= 5
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
    assert_clean(log)


def test_walk_slider_moves_without_a_kernel(page, book_url):
    log = open_chapter(page, book_url, "explore_walk")
    slider = page.locator(".e2e-pkey").first
    readout = slider.locator(".widget-readout")
    assert readout.inner_text().strip() == "0"
    before = page.locator(".e2e-walk-output").first.inner_text()
    slider.locator(".noUi-handle").focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert readout.inner_text().strip() == "2"
    # The callback is Python: without a kernel the output stays as saved.
    assert page.locator(".e2e-walk-output").first.inner_text() == before
    assert_clean(log)


def test_permission_slider_and_toggles_move(page, book_url):
    log = open_chapter(page, book_url, "explore_permissions")
    slider = page.locator(".e2e-acc").first
    readout = slider.locator(".widget-readout")
    assert readout.inner_text().strip() == "7"
    slider.locator(".noUi-handle").focus()
    page.keyboard.press("ArrowLeft")
    assert readout.inner_text().strip() == "6"
    write = page.locator(".e2e-access button", has_text="write").first
    assert "mod-active" not in (write.get_attribute("class") or "")
    write.click()
    assert "mod-active" in (write.get_attribute("class") or "")
    assert_clean(log)


def test_layout_checkbox_toggles(page, book_url):
    log = open_chapter(page, book_url, "explore_layouts")
    nested = page.locator(".e2e-nested input[type=checkbox]").first
    assert not nested.is_checked()
    nested.click()
    assert nested.is_checked()
    svm = page.locator(".e2e-vendor button", has_text="SVM").first
    svm.click()
    assert "mod-active" in (svm.get_attribute("class") or "")
    assert_clean(log)
