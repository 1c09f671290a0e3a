"""Sphinx extension: Python in the published book's pages, so the explorers recompute.

At build time, for the HTML builder, it

* fetches the npm package ``pyodide`` at the pinned :data:`PYODIDE_VERSION`
  with ``npm pack`` into ``.cache/pyodide/`` (once; npm keeps its own cache
  too), and checks the tarball against the pinned sha512 :data:`PYODIDE_INTEGRITY`
  (the ``dist.integrity`` the npm registry publishes for that version);
* copies its core files (:data:`CORE_FILES`: the interpreter's WebAssembly,
  its loader, the standard library, the lock file) into
  ``_static/pyodide-<version>/`` of the site;
* writes ``_static/live/refimpl.zip``, the pure-Python package ``refimpl/``
  as the page's Python imports it;
* adds the page script ``_static/live/live.js`` (from ``_widgets/live/``)
  to every page that holds an explorer written by :mod:`refimpl.viz.web`.

No package is loaded at run time beyond the standard library, and every
file comes from the site itself. Without npm (or when ``npm pack`` fails),
the build logs an info message, copies nothing, and the pages say that
their explorers are static: they still show the outcome saved at build time.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

#: The pinned Pyodide release (CPython 3.14.2 in WebAssembly).
PYODIDE_VERSION = "314.0.8"
#: ``npm view pyodide@314.0.8 dist.integrity``: sha512 of the package tarball.
PYODIDE_INTEGRITY = ("sha512-74Wq1kXOC+CCEzAfxuRAO701nAcCMLjf8NrwvWpu8S41dVMXwXmLQ05dYB+F4e46AdnGo0oq7YHSVUpHsoarLQ==")
#: What the browser needs to start Python with its standard library alone.
CORE_FILES = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm",
              "python_stdlib.zip", "pyodide-lock.json", "package.json")
MARKER = 'class="kvmbook-live"'


def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def _fetch(cache: Path) -> Path | None:
    """The checked tarball in ``cache``, fetched with npm if needed; None without npm."""
    tgz = cache / f"pyodide-{PYODIDE_VERSION}.tgz"
    if not tgz.is_file():
        npm = shutil.which("npm")
        if npm is None:
            logger.info("kvmbook_live: npm is not installed, so the explorers stay static "
                        "(install node and npm for the live explorers)")
            return None
        cache.mkdir(parents=True, exist_ok=True)
        logger.info(f"kvmbook_live: npm pack pyodide@{PYODIDE_VERSION}")
        try:
            subprocess.run([npm, "pack", f"pyodide@{PYODIDE_VERSION}", "--pack-destination",
                            str(cache), "--silent"], check=True, capture_output=True,
                           text=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", "") or exc
            logger.info(f"kvmbook_live: npm pack failed ({str(detail).strip()[:300]}), "
                        "so the explorers stay static")
            return None
    got = _integrity(tgz)
    if got != PYODIDE_INTEGRITY:
        tgz.unlink()
        raise ExtensionError(f"kvmbook_live: {tgz.name} has {got}, expected "
                             f"{PYODIDE_INTEGRITY}; the file was removed")
    return tgz


def refimpl_zip(package: Path) -> bytes:
    """``package`` (the ``refimpl/`` folder) as a zip of its ``.py`` files, byte-for-byte stable."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(package.rglob("*.py")):
            if "__pycache__" in f.parts:
                continue
            info = zipfile.ZipInfo(str(f.relative_to(package.parent)), (1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, f.read_bytes())
    return buf.getvalue()


def _builder_inited(app) -> None:
    app.kvmbook_live_tgz = None
    if app.builder.format != "html":
        return
    app.kvmbook_live_tgz = _fetch(Path(app.srcdir) / ".cache" / "pyodide")
    package = Path(app.srcdir) / "refimpl"
    app.kvmbook_live_zip = refimpl_zip(package)


def _page_context(app, pagename, templatename, context, doctree) -> None:
    if MARKER not in context.get("body", ""):
        return
    live = app.kvmbook_live_tgz is not None
    pathto = context["pathto"]
    digest = hashlib.sha256(app.kvmbook_live_zip).hexdigest()[:12]
    config = {
        "runtime": live,
        "pyodide": pathto(f"_static/pyodide-{PYODIDE_VERSION}/", 1),
        "refimpl": pathto("_static/live/refimpl.zip", 1) + f"?v={digest}",
        "worker": pathto("_static/live/worker.js", 1) + f"?v={digest}",
    }
    app.add_js_file(None, body=f"window.KVMBOOK_LIVE = {json.dumps(config)};")
    app.add_js_file("live/live.js", defer="defer")
    app.add_css_file("live/live.css")


def _build_finished(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    if app.kvmbook_live_tgz is None:
        return
    static = Path(app.outdir) / "_static"
    (static / "live").mkdir(parents=True, exist_ok=True)
    (static / "live" / "refimpl.zip").write_bytes(app.kvmbook_live_zip)
    dest = static / f"pyodide-{PYODIDE_VERSION}"
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(app.kvmbook_live_tgz) as tar:
        for name in CORE_FILES:
            member = tar.extractfile(f"package/{name}")
            if member is None:
                raise ExtensionError(f"kvmbook_live: the pyodide package has no {name}")
            (dest / name).write_bytes(member.read())
    (dest / "SOURCE.txt").write_text(
        f"npm package pyodide@{PYODIDE_VERSION} (license MPL-2.0, see package.json), "
        f"tarball {PYODIDE_INTEGRITY}; the core files only, copied by _ext/kvmbook_live.py.\n")
    total = sum(f.stat().st_size for f in dest.iterdir())
    total += len(app.kvmbook_live_zip)
    logger.info(f"kvmbook_live: Python runtime and refimpl added {total} bytes to the site")


def setup(app):
    app.connect("builder-inited", _builder_inited)
    app.connect("html-page-context", _page_context)
    app.connect("build-finished", _build_finished)
    return {"version": PYODIDE_VERSION, "parallel_read_safe": True, "parallel_write_safe": True}
