"""Helpers for the browser tests: finding Chromium, servers on 127.0.0.1, a request log.

The tests open the built book (``_build/html``) the way a reader does, in
Debian's ``chromium`` driven by the Python ``playwright`` package through the
system executable (``playwright install`` is never needed). Every request to
a host other than 127.0.0.1 is aborted and recorded, so a page that would
reach a CDN fails its test instead of quietly working online.

Missing pieces (chromium, playwright, voila, the built book) make the tests
skip with the reason, so ``pytest`` works on a machine with only Python. With
``BOOK_BROWSER_TESTS=1`` (CI sets it) the same pieces are required and a
missing one fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML_DIR = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
REQUIRED = os.environ.get("BOOK_BROWSER_TESTS") == "1"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}

#: A page error every jupyter-book 1.0.4 page raises: sphinx-thebe's inline
#: script declaring THEBE_JS_URL is added twice. It is not ours and is harmless
#: (thebe is never launched: the book has no launch buttons).
KNOWN_PAGE_ERRORS = re.compile(r"Identifier 'THEBE_JS_URL' has already been declared")


def need(condition: bool, what: str) -> None:
    """Skip (or, with BOOK_BROWSER_TESTS=1, fail) unless ``condition``."""
    if condition:
        return
    if REQUIRED:
        pytest.fail(f"BOOK_BROWSER_TESTS=1 but {what}", pytrace=False)
    pytest.skip(what)


def chromium_path() -> str | None:
    """The system Chromium (Debian's ``chromium`` package)."""
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    """Wait until something listens on ``port``; fail if ``proc`` dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server this module started (by its own handle), then kill if needed."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@dataclass
class RequestLog:
    """What a page asked for: requests, failures, error responses, off-host attempts."""

    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    bad_status: list[str] = field(default_factory=list)
    off_host: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    source: str = ""


def watch(page) -> RequestLog:
    """Record ``page``'s traffic, and abort every request that leaves 127.0.0.1."""
    log = RequestLog()

    def route(r):
        url = r.request.url
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOCAL_HOSTS:
            log.off_host.append(url)
            r.abort()
        else:
            r.continue_()

    page.route("**/*", route)
    page.on("request", lambda req: log.requests.append(req.url))
    page.on("requestfailed",
            lambda req: log.failed.append(f"{req.url} ({req.failure})"))
    page.on("response",
            lambda resp: log.bad_status.append(f"{resp.status} {resp.url}")
            if resp.status >= 400 else None)
    page.on("pageerror", lambda exc: log.page_errors.append(str(exc)))
    return log


def screenshot_of(locator, name: str) -> Path:
    """Save a screenshot of one element as ``_build/screenshots/<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(path))
    return path


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot as ``_build/screenshots/<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def assert_clean(log: RequestLog) -> None:
    """Nothing left 127.0.0.1, nothing failed or got an error status, no JavaScript error."""
    assert not log.off_host, f"requests left 127.0.0.1: {log.off_host}"
    assert not log.failed, f"requests failed: {log.failed}"
    assert not log.bad_status, f"error responses: {log.bad_status}"
    errors = [e for e in log.page_errors if not KNOWN_PAGE_ERRORS.search(e)]
    assert not errors, f"JavaScript errors: {errors}"
