"""Run every chapter of the book as a test.

The chapters are MyST Markdown notebooks. nbval only collects ``.ipynb``
files, so this plugin reads a chapter with jupytext and hands the notebook to
nbval's own collector: each code cell becomes one test item, executed in a
fresh kernel whose working directory is the chapter's folder. Chapters carry
no stored outputs, so only errors fail a cell (assertion cells are the
claims). ``tests/test_toc.py`` checks that every chapter listed in
``_toc.yml`` is collected here.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbval.plugin
import pytest

BOOK = Path(__file__).parent / "book"


def is_chapter(path: Path) -> bool:
    """A MyST notebook under ``book/``: a ``.md`` file whose front matter names a kernel."""
    if path.suffix != ".md" or BOOK not in path.resolve().parents:
        return False
    head = path.read_text(encoding="utf-8")[:2000]
    return head.startswith("---") and "kernelspec:" in head.split("\n---", 1)[0]


class MystNotebook(nbval.plugin.IPyNbFile):
    """nbval's notebook collector, reading a MyST Markdown chapter through jupytext."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.compare_outputs = False

    def collect(self):
        read = nbval.plugin.nbformat.read
        nbval.plugin.nbformat.read = lambda path, as_version=4: jupytext.read(path)
        try:
            yield from super().collect()
        finally:
            nbval.plugin.nbformat.read = read


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if is_chapter(file_path):
        return MystNotebook.from_parent(parent, path=file_path)
    return None
