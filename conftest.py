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


# Differential tests record what they checked ("4-level: 40000 cases, 0
# mismatches") as user properties named ``*_summary`` or ``unicorn_diff``;
# the properties travel back from xdist workers inside the test reports, and
# are printed together at the end of the run so that the counts show in the
# test output, not only in captured stdout.
SUMMARY_KEYS = ("unicorn_diff", "differential_summary")
_summaries: list[str] = []


def pytest_runtest_logreport(report):
    if report.when == "call":
        _summaries.extend(v for k, v in report.user_properties if k in SUMMARY_KEYS)


def pytest_terminal_summary(terminalreporter):
    if _summaries:
        terminalreporter.section("differential runs")
        for line in sorted(set(_summaries)):
            terminalreporter.write_line(line)
