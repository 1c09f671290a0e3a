"""The book's table of contents and the test suite agree.

Every chapter named in ``_toc.yml`` must exist and must be collected by
pytest as a notebook (through ``conftest.py``), with at least one code cell:
a chapter that pytest silently skipped would be a chapter whose claims are
never checked.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def toc_files(toc: dict) -> list[str]:
    """Every ``file:`` entry of a jb-book table of contents, root first."""
    out = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                out.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc.get("parts", toc.get("chapters", [])))
    return out


def chapter_paths() -> list[Path]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    paths = []
    for name in toc_files(toc):
        candidates = [ROOT / f"{name}{ext}" for ext in (".md", ".ipynb")]
        found = [p for p in candidates if p.exists()]
        assert found, f"_toc.yml names {name!r}, but neither {name}.md nor {name}.ipynb exists"
        paths.append(found[0])
    return paths


def collected_notebooks(paths: list[Path]) -> set[str]:
    """Files pytest collects notebook cells from, asked of pytest itself."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0",
         *map(str, paths)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    files = set()
    for line in proc.stdout.splitlines():
        if "::Cell " in line:
            files.add(line.split("::", 1)[0])
    return files


def test_toc_walker_finds_nested_files():
    toc = {"root": "book/a", "parts": [{"caption": "x", "chapters": [
        {"file": "book/b", "sections": [{"file": "book/c"}]}]}]}
    assert toc_files(toc) == ["book/a", "book/b", "book/c"]


@pytest.mark.slow
def test_every_toc_chapter_is_collected_by_pytest():
    paths = chapter_paths()
    collected = collected_notebooks(paths)
    missing = [str(p.relative_to(ROOT)) for p in paths
               if str(p.relative_to(ROOT)) not in collected]
    assert not missing, f"chapters in _toc.yml that pytest does not run: {missing}"


def test_a_file_without_a_kernel_is_not_collected(tmp_path):
    # The check above must be able to fail: a Markdown page without a
    # kernelspec is not a notebook, and pytest must not report it as one.
    page = ROOT / "book" / "_probe_not_a_notebook.md"
    page.write_text("# Not a notebook\n\n```python\nassert False\n```\n")
    try:
        assert str(page.relative_to(ROOT)) not in collected_notebooks([page])
    finally:
        page.unlink()
