"""The mutant catalogues still apply, and the runner tells a survivor from a kill.

``tests/mutants/run.py`` runs the fast MMU tests against each mutant of
``tests/mutants/m_*.py``. These checks keep that machinery honest without
running the catalogue: every mutant must still find its fragment exactly
once and leave a file that compiles (so a refactoring of an MMU module
cannot silently retire a mutant), and the runner itself must report a
mutant that changes nothing as *survived* and a mutant that breaks a rule a
test pins down as *killed*.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mutants import REPO_ROOT, Mutant, apply, changed_lines, load
from mutants.run import run_one

CATALOGUE = load()


def test_catalogue_is_not_empty_and_ids_are_unique():
    ids = [i for i, _ in CATALOGUE]
    assert len(ids) >= 30
    assert len(ids) == len(set(ids))
    # Each mutant changes a different fragment: no duplicates.
    assert len({(m.path, m.old, m.new) for _, m in CATALOGUE}) == len(ids)


@pytest.mark.parametrize("ident,mutant", CATALOGUE, ids=[i for i, _ in CATALOGUE])
def test_mutant_applies_once_and_compiles(ident, mutant):
    path = REPO_ROOT / mutant.path
    assert path.is_file(), f"{ident}: no file {mutant.path}"
    assert mutant.path.startswith("refimpl/"), "mutants target the package"
    assert mutant.why.strip().endswith("."), f"{ident}: why is one sentence"
    source = path.read_text(encoding="utf-8")
    mutated = apply(source, mutant)          # raises unless old occurs exactly once
    assert mutated != source
    compile(mutated, mutant.path, "exec")


def test_apply_rejects_a_fragment_that_is_missing_or_repeated():
    src = "a = 1\nb = 1\n"
    with pytest.raises(ValueError, match="0 times"):
        apply(src, Mutant("x.py", "c = 1", "c = 2", "."))
    with pytest.raises(ValueError, match="2 times"):
        apply(src, Mutant("x.py", " = 1", " = 2", "."))
    with pytest.raises(ValueError, match="one line"):
        apply(src, Mutant("x.py", "a = 1\nb = 1", "a = 2\nb = 2", "."))
    with pytest.raises(TypeError, match="Mutant"):
        apply(src, ("x.py", "a = 1", "a = 2", "."))
    assert apply(src, Mutant("x.py", "a = 1\nb", "a = 2\nb", ".")) == "a = 2\nb = 1\n"


def test_changed_lines_counts_one_changed_or_deleted_line():
    assert changed_lines("a\nb\nc", "a\nX\nc") == 1
    assert changed_lines("a\nb\nc", "a\nc") == 1
    assert changed_lines("a\nb", "a\nb") == 0
    assert changed_lines("a\nb", "X\nY") == 2
    assert changed_lines("a", "a\nb") > 1


# A test the planted runs use: fast, and it pins one rule of the TDP MMU
# (a read of a read-only memslot is mapped, a write exits to userspace).
ONE_TEST = ("tests/host/test_tdp_mmu.py::test_readonly_slot_read_maps_readonly_and_write_exits",)


def test_runner_reports_a_mutant_that_changes_nothing_as_survived():
    # A comment added to a line: the code is unchanged, no test can fail.
    noop = Mutant("refimpl/host/tdp_mmu.py", "if write and slot.readonly:",
                  "if write and slot.readonly:  # planted no-op",
                  "Changes nothing (a planted check on the runner).")
    out = run_one("planted.noop", noop, tests=ONE_TEST, timeout=300)
    assert out.status == "survived", out


def test_runner_reports_a_caught_mutant_as_killed():
    ro = Mutant("refimpl/host/tdp_mmu.py", "if write and slot.readonly:", "if slot.readonly:",
                "Reads of a read-only slot exit too (a planted check on the runner).")
    out = run_one("planted.ro", ro, tests=ONE_TEST, timeout=300)
    assert out.status == "killed", out
    assert out.detail == ONE_TEST[0]


def test_runner_reports_a_stale_mutant_as_an_error():
    stale = Mutant("refimpl/host/tdp_mmu.py", "no such fragment", "x", ".")
    out = run_one("planted.stale", stale, tests=ONE_TEST)
    assert out.status == "error" and "0 times" in out.detail


def test_guard_refuses_a_refimpl_from_elsewhere(tmp_path, monkeypatch):
    # The guard plugin must stop a run whose refimpl is not the mutated copy.
    import refimpl
    from mutants import guard

    monkeypatch.setenv("MUTANT_COPY", str(tmp_path))
    with pytest.raises(pytest.UsageError, match="not from"):
        guard.pytest_sessionstart(None)
    monkeypatch.setenv("MUTANT_COPY", str(Path(refimpl.__file__).resolve().parent.parent))
    guard.pytest_sessionstart(None)


def test_equivalent_mutants_are_declared_with_a_reason():
    from mutants import equivalents
    declared = equivalents()
    ids = {i for i, _ in CATALOGUE}
    assert declared and set(declared) <= ids
    assert all(len(why) > 40 for why in declared.values())
