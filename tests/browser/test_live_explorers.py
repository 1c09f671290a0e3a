"""The four explorers of the published book recompute in the page, with Python from the site.

Each test opens one Experiments chapter of the built book (``_build/html``,
served by ``python -m http.server`` on 127.0.0.1) in headless Chromium,
waits for the page's Python (Pyodide, vendored by ``_ext/kvmbook_live.py``)
to load, then moves the plain HTML controls that ``refimpl.viz.web`` writes
to reproduce the chapter's worked cases, and checks that what the page shows
is what the chapter asserts: the error codes, references and pointers
below are the chapter's hand-worked values, copied, not computed.

A test fails on any request that leaves 127.0.0.1 (it is aborted and
recorded), on any request that fails or gets an error status, on any
JavaScript error, on an error the page's Python reports, and on any worked
case that differs. Each explorer (the element) is saved after its last change as
``_build/screenshots/live_<chapter>.png``, and ``_build/screenshots/live_measures.json``
records the bytes the runtime adds to the site and the times measured.
"""

from __future__ import annotations

import json
import os
import re
import statistics
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from browser_support import (HTML_DIR, KNOWN_PAGE_ERRORS, SCREENSHOTS, assert_clean, need,
                             screenshot_of, watch)

READY_MS = 180_000
MEASURES: dict[str, object] = {}


def _runtime_dirs() -> list[Path]:
    return sorted((HTML_DIR / "_static").glob("pyodide-*"))


class Live:
    """One explorer on an open page: its controls by name, and waiting for Python."""

    def __init__(self, page):
        self.page = page
        self.box = page.locator(".kvmbook-live").first

    def ready(self) -> None:
        self.page.wait_for_function(
            "() => { const l = window.kvmbookLive; return l && (l.firstOutcomeAt !== null"
            " || l.state === 'failed' || l.errors.length > 0); }", timeout=READY_MS)
        live = self.page.evaluate("window.kvmbookLive")
        assert live["state"] == "ready" and not live["errors"], live

    def _count(self) -> int:
        return int(self.box.get_attribute("data-recomputes") or 0)

    def _after(self, action) -> None:
        n = self._count()
        action()
        self.page.wait_for_function(
            "(n) => { const b = document.querySelector('.kvmbook-live');"
            " return Number(b.dataset.recomputes || 0) > n && b.dataset.busy === '0'; }",
            arg=n, timeout=30_000)
        errors = self.page.evaluate("window.kvmbookLive.errors")
        assert not errors, errors

    def control(self, name: str, value: str | None = None):
        sel = f'[name="{name}"]' + (f'[value="{value}"]' if value is not None else "")
        return self.box.locator(sel).first

    def check(self, name: str, on: bool = True) -> None:
        box = self.control(name)
        assert box.is_checked() != on, f"{name} is already {on}"
        self._after(lambda: box.set_checked(on))

    def radio(self, name: str, value: str) -> None:
        self._after(lambda: self.control(name, value).check())

    def select(self, name: str, value: str) -> None:
        self._after(lambda: self.control(name).select_option(value))

    def slide(self, name: str, value: int) -> None:
        self._after(lambda: self.control(name).fill(str(value)))

    def text(self) -> str:
        return self.box.locator(".kl-output").inner_text()

    def html(self) -> str:
        return self.box.locator(".kl-output").inner_html()

    def max(self, name: str) -> int:
        return int(self.control(name).get_attribute("max"))


def open_live(page, book_url: str, chapter: str):
    need((HTML_DIR / "book" / f"{chapter}.html").is_file(),
         f"{chapter}.html is not in {HTML_DIR / 'book'} (is the chapter in _toc.yml?)")
    need(bool(_runtime_dirs()), "the book was built without its Python runtime (no npm?)")
    log = watch(page)
    response = page.goto(f"{book_url}/book/{chapter}.html", wait_until="load")
    assert response is not None and response.ok
    live = Live(page)
    status = live.box.locator(".kvmbook-live-status")
    assert status.inner_text().startswith(("Loading Python in your browser", "Live: Python"))
    live.ready()
    assert status.inner_text().startswith("Live: Python 3.")
    return live, log


def assert_live_clean(log) -> None:
    assert_clean(log)
    # Python and its standard library came from this site, and nothing else did.
    assert any("/_static/pyodide-" in u and u.endswith("pyodide.asm.wasm") for u in log.requests)
    assert any("/_static/live/refimpl.zip" in u for u in log.requests)
    assert not [u for u in log.requests if u.endswith(".whl")], "a wheel was fetched"


def _record(page, chapter: str) -> None:
    live = page.evaluate("window.kvmbookLive")
    MEASURES.setdefault("recomputes", []).extend(
        {"chapter": chapter, **r} for r in live["recomputes"][1:])
    _write_measures()


def _write_measures() -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    rows = MEASURES.get("recomputes") or [{"roundTripMs": 0.0, "pythonMs": 0.0}]
    summary = {
        "bytes_added": sum(f.stat().st_size for d in _runtime_dirs() for f in d.iterdir())
        + sum(f.stat().st_size for f in (HTML_DIR / "_static" / "live").iterdir()),
        "recompute_round_trip_ms_median": statistics.median(r["roundTripMs"] for r in rows),
        "recompute_python_ms_median": statistics.median(r["pythonMs"] for r in rows),
        "recompute_round_trip_ms_max": max(r["roundTripMs"] for r in rows),
        "recomputes": len(rows),
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        **{k: v for k, v in MEASURES.items() if k != "recomputes"},
    }
    (SCREENSHOTS / "live_measures.json").write_text(json.dumps(summary, indent=2) + "\n")


def test_walk_recomputes_the_chapters_cases(page, book_url):
    w, log = open_live(page, book_url, "explore_walk")
    assert "Outcome: gpa 0x40000567 (4 KiB page)" in w.text()
    # A user write to a read-only page: P|W|U.
    w.check("l1_w", False)
    w.radio("access", "write")
    w.check("user")
    assert "#PF, error code 0x7 (P|W|U)" in w.text()
    # Supervisor, CR0.WP=0: allowed, and the leaf gains D.
    w.check("user", False)
    w.check("cr0_wp", False)
    assert "gpa 0x40000567" in w.text() and "(+D)" in w.text()
    w.check("cr0_wp")
    assert "error code 0x3" in w.text()
    # PDE not present: W alone.
    w.check("l1_w")
    w.check("l2_p", False)
    assert "error code 0x2" in w.text()
    # PS in the PML4E is reserved: P|W|RSVD.
    w.check("l2_p")
    w.check("l4_ps")
    assert "error code 0xb" in w.text() and "PS reserved in the PML4E" in w.text()
    # PS in the PDPTE: a 1 GiB page, 0x40000000 | 0x604567.
    w.check("l4_ps", False)
    w.check("l3_ps")
    assert "gpa 0x40604567 (1 GiB page)" in w.text()
    w.check("l3_ps", False)
    # NX with EFER.NXE: P|F; without it, a reserved bit: P|RSVD.
    w.radio("access", "fetch")
    w.check("l2_nx")
    assert "error code 0x11" in w.text()
    w.check("efer_nxe", False)
    assert "error code 0x9" in w.text()
    w.check("l2_nx", False)
    w.check("efer_nxe")
    # SMEP: a supervisor fetch from a user page faults, a user fetch does not.
    w.check("cr4_smep")
    assert "error code 0x11" in w.text() and "SMEP" in w.text()
    w.check("user")
    assert "Outcome: gpa 0x40000567" in w.text()
    w.check("user", False)
    w.check("cr4_smep", False)
    # SMAP and RFLAGS.AC.
    w.radio("access", "read")
    w.check("cr4_smap")
    assert "error code 0x1 " in w.text() + " "
    w.check("rflags_ac")
    assert "Outcome: gpa 0x40000567" in w.text()
    # Protection keys: key 3 with PKRU.AD, a user read: P|U|PK.
    w.check("cr4_smap", False)
    w.check("rflags_ac", False)
    w.check("user")
    w.check("cr4_pke")
    w.slide("pkey", 3)
    w.check("pkru_ad")
    assert "error code 0x25" in w.text()
    # 32-bit paging: the mode resets the entries; PS in the PDE needs CR4.PSE.
    w.select("mode", "32-bit")
    assert w.control("l1_nx").is_disabled() and w.control("pkey").is_disabled()
    w.check("user", False)
    w.check("cr4_pke", False)
    w.check("l2_ps")
    assert "(4 KiB page)" in w.text()
    w.check("cr4_pse")
    assert "gpa 0x40002567 (4 MiB page)" in w.text()
    # PAE: a reserved bit in the PDPTE is #GP(0) at the CR3 load.
    w.select("mode", "PAE")
    assert "Outcome: gpa" in w.text()
    w.check("l3_w")
    assert "#GP(0)" in w.text()
    screenshot_of(page.locator(".kvmbook-live").first, "live_explore_walk")
    _record(page, "explore_walk")
    assert_live_clean(log)


def test_permissions_recompute_the_chapters_cases(page, book_url):
    b, log = open_live(page, book_url, "explore_permissions")
    b.check("cr4_smep")
    b.check("cr4_smap")
    text = b.text()
    # The sixteen bytes worked out by hand, in row order.
    assert re.findall(r"0x[0-9a-f]{2}", text[text.index("UWX"):]) == [
        "0xf0", "0xf3", "0x0f", "0x3f", "0x00", "0x33", "0x0f", "0x3f",
        "0xf5", "0xf7", "0x5f", "0x7f", "0xf5", "0xf7", "0x5f", "0x7f"]
    b.slide("acc", 4)
    assert b.html().count('class="hit"') == 1
    assert 'class="hit" data-row="0" data-col="4"' in b.html()
    assert "the access faults" in b.text()
    b.check("rflags_ac")
    assert 'data-row="4" data-col="4"' in b.html() and "byte 0x00" in b.text()
    b.check("rflags_ac", False)
    b.radio("access", "fetch")
    b.slide("acc", 5)
    assert "row 8 (byte 0xf5)" in b.text() and "the access faults" in b.text()
    b.slide("acc", 1)
    assert "the access faults" not in b.text()
    b.slide("acc", 0)
    assert "the access faults" in b.text()
    b.radio("access", "write")
    b.slide("acc", 5)
    assert "row 1 (byte 0xf3)" in b.text() and "the access faults" in b.text()
    b.check("cr4_smap", False)
    assert "row 1 (byte 0x33)" in b.text() and "the access faults" in b.text()
    b.check("cr0_wp", False)
    assert "row 1 (byte 0x00)" in b.text() and "the access faults" not in b.text()
    b.check("user")
    assert "row 3 (byte 0x3f)" in b.text() and "the access faults" in b.text()
    b.slide("acc", 7)
    assert "the access faults" not in b.text()
    screenshot_of(page.locator(".kvmbook-live").first, "live_explore_permissions")
    _record(page, "explore_permissions")
    assert_live_clean(log)


def test_layouts_recompute_the_chapters_cases(page, book_url):
    x, log = open_live(page, book_url, "explore_layouts")
    assert "today: mmu \u2192 root_mmu, walk_mmu \u2192 root_mmu" in x.text()
    assert x.control("l1_tdp").is_disabled()
    x.check("nested")
    assert not x.control("l1_tdp").is_disabled()
    assert ("today: mmu \u2192 guest_mmu, walk_mmu \u2192 nested_mmu; sketch: mmu \u2192 "
            "tdp12_mmu (kind shadow_mmu, paging context walk01), walk \u2192 walk12") in x.text()
    assert 'data-src="walk_mmu" data-dst="nested_mmu"' in x.html()
    assert "ept_page_fault" in x.text()
    x.radio("vendor", "svm")
    assert "guest_mmu  page_fault: paging64_page_fault" in re.sub(r"\s+", "  ", x.text()) \
        or "page_fault: paging64_page_fault" in x.text()
    assert "ept_page_fault" not in x.text()
    x.check("l1_tdp", False)
    assert "today: mmu \u2192 root_mmu, walk_mmu \u2192 root_mmu" in x.text()
    assert "walk \u2192 root_walk" in x.text()
    x.check("nested", False)
    x.check("tdp", False)
    assert x.box.locator(".kl-output svg.kvmbook-diagram").count() == 2
    x.check("nested")
    x.check("l1_tdp")
    assert "Not a configuration KVM allows" in x.text()
    assert "nested NPT needs an SVM host with NPT enabled" in x.text()
    screenshot_of(page.locator(".kvmbook-live").first, "live_explore_layouts")
    _record(page, "explore_layouts")
    assert_live_clean(log)


def test_nested_recomputes_the_chapters_cases(page, book_url):
    n, log = open_live(page, book_url, "explore_nested")
    assert "Outcome: L1 gpa 0x109567 (L2 gpa 0x9567)" in n.text()
    assert n.max("step") == 24
    n.slide("step", 7)
    assert n.html().count('class="nested-row"') == 7
    assert ("reference 7 of 24: EPT PDPTE at L1 0x2000, translating L2 gpa 0x3000 "
            "(the PDPT)") in n.text()
    n.radio("ept_levels", "5")
    assert n.max("step") == 29
    n.select("mode", "5-level")
    assert n.max("step") == 35
    n.select("mode", "4-level")
    n.radio("ept_levels", "4")
    assert n.max("step") == 24
    n.select("ept_unmapped", "PD")
    assert n.max("step") == 14
    assert "exit qualification 0x83 (READ|WRITE|GVA_IS_VALID)" in n.text()
    n.select("ept_unmapped", "none")
    n.select("ept_read_only", "PD")
    assert n.max("step") == 14 and "exit qualification 0x8b" in n.text().lower()
    n.select("ept_read_only", "none")
    n.select("l2_not_present", "PTE")
    assert n.max("step") == 20
    assert "#PF to L2, error code 0x0 (none), CR2 0x8080604567" in n.text()
    n.select("ept_unmapped", "PT")
    assert n.max("step") == 19 and "L2 gpa 0x1000" in n.text()
    n.select("ept_unmapped", "none")
    n.select("l2_not_present", "none")
    n.select("ept_read_only", "data page")
    assert "Outcome: L1 gpa 0x109567 (L2 gpa 0x9567)" in n.text()
    n.radio("access", "write")
    assert n.max("step") == 24 and "exit qualification 0x18a" in n.text().lower()
    # PAE: a new mode puts the menus back to none; the PDPTE load costs 5.
    n.select("mode", "PAE")
    assert n.max("step") == 19
    n.select("ept_unmapped", "PDPT")
    # load_pdptrs passes no exception: #GP in L2, no exit to L1.
    assert n.max("step") == 4 and "Outcome: #GP to L2" in n.text()
    screenshot_of(page.locator(".kvmbook-live").first, "live_explore_nested")
    _record(page, "explore_nested")
    assert_live_clean(log)


def test_time_to_first_outcome_cold_and_warm(browser, book_url):
    """Page load to the first recomputed outcome, with an empty cache, then with it warm.

    Playwright turns the HTTP cache off while a route is set, so this test
    does not abort off-host requests as the others do: it records every
    request and fails if one left 127.0.0.1 (none can succeed here anyway).
    """
    need(bool(_runtime_dirs()), "the book was built without its Python runtime (no npm?)")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        requests, errors = [], []
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        times = []
        for _ in range(2):   # the first load fills the browser cache, the second uses it
            page.goto(f"{book_url}/book/explore_walk.html", wait_until="load")
            Live(page).ready()
            times.append(page.evaluate("window.kvmbookLive"))
        MEASURES["first_outcome_ms_cold"] = times[0]["firstOutcomeAt"]
        MEASURES["first_outcome_ms_warm"] = times[1]["firstOutcomeAt"]
        MEASURES["pyodide_load_ms_cold"] = times[0]["loadMs"]
        MEASURES["pyodide_load_ms_warm"] = times[1]["loadMs"]
        MEASURES["refimpl_import_ms_cold"] = times[0]["importMs"]
        _write_measures()
        off = [u for u in requests if urlsplit(u).hostname not in ("127.0.0.1", None)
               and urlsplit(u).scheme in ("http", "https", "ws", "wss")]
        assert not off, f"requests left 127.0.0.1: {off}"
        assert not [e for e in errors if not KNOWN_PAGE_ERRORS.search(e)], errors
    finally:
        context.close()
