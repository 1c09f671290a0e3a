"""Fixtures for the browser tests: one headless Chromium, the built book on 127.0.0.1, a page.

See ``browser_support.py`` for when the tests skip and when they fail.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from browser_support import CHROMIUM_ARGS, HTML_DIR, chromium_path, free_port, need, stop, wait_for_port


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session."""
    path = chromium_path()
    need(path is not None, "chromium is not installed (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "the Python package playwright is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def book_url():
    """``_build/html`` served by ``python -m http.server`` on 127.0.0.1."""
    need((HTML_DIR / "index.html").is_file(),
         f"the book is not built ({HTML_DIR} has no index.html; run jupyter-book build .)")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(HTML_DIR)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc, timeout=10)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.fixture
def page(browser):
    """A fresh page (own context) with a 1280x900 viewport."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(15_000)
    yield p
    context.close()
