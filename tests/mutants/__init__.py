"""Semantic mutants of the MMU modules, and the code that applies them.

A *mutant* is one plausible one-line mistake a kernel developer could make
in an MMU module: ``<`` for ``<=`` at a memslot's end, a missing TLB flush,
a dropped rmap removal. Each catalogue ``tests/mutants/m_<module>.py``
defines ``MUTANTS``, a tuple of :class:`Mutant`. ``tests/mutants/run.py``
applies them one at a time to a copy of the repository and runs the fast
MMU tests against each: a mutant that no test notices *survives*, and shows
a rule the tests do not pin down.

A catalogue may also define ``EQUIVALENT``, a dict from a mutant's 1-based
index to the reason no test can catch it: a mutant whose change the rest
of the model makes invisible (a check that another check already implies).
The runner reports such a survivor as *equivalent*, not as a failure.

``tests/test_mutants.py`` keeps the catalogues from rotting: every mutant
must still apply exactly once, and the mutated file must still compile.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import NamedTuple

__all__ = ["Mutant", "CATALOGUE_DIR", "REPO_ROOT", "apply", "catalogue_files", "changed_lines",
           "equivalents", "load"]

CATALOGUE_DIR = Path(__file__).resolve().parent
REPO_ROOT = CATALOGUE_DIR.parent.parent


class Mutant(NamedTuple):
    """One semantic mutant.

    Parameters
    ----------
    path : str
        The file to mutate, relative to the repository root.
    old : str
        An exact source fragment that occurs exactly once in that file.
    new : str
        Its replacement: ``old`` with one line changed or deleted (``old``
        may carry unchanged lines around it, to be unique).
    why : str
        The plausible mistake, in one sentence.
    """

    path: str
    old: str
    new: str
    why: str


def apply(source: str, mutant: Mutant) -> str:
    """``source`` with ``mutant.old`` replaced by ``mutant.new``.

    Raises
    ------
    TypeError
        ``mutant`` is not a :class:`Mutant`.
    ValueError
        ``old`` does not occur exactly once, or ``new`` is not ``old``
        with exactly one line changed or deleted.
    """
    if not isinstance(mutant, Mutant):
        raise TypeError(f"mutant must be a Mutant, got {type(mutant).__name__}")
    n = source.count(mutant.old)
    if n != 1:
        raise ValueError(f"mutant of {mutant.path}: the fragment {mutant.old!r} occurs "
                         f"{n} times, not exactly once")
    if changed_lines(mutant.old, mutant.new) != 1:
        raise ValueError(f"mutant of {mutant.path}: new must be old with exactly one line "
                         f"changed or deleted, got {mutant.new!r}")
    return source.replace(mutant.old, mutant.new, 1)


def changed_lines(old: str, new: str) -> int:
    """Lines changed from ``old`` to ``new`` (a deleted line counts one);
    a large number if the two differ in another way."""
    o, n = old.split("\n"), new.split("\n")
    if len(o) == len(n):
        return sum(a != b for a, b in zip(o, n))
    if len(n) == len(o) - 1:
        for k in range(len(o)):
            if o[:k] + o[k + 1:] == n:
                return 1
    return 1 << 30


def catalogue_files(directory: Path = CATALOGUE_DIR) -> list[Path]:
    """The catalogues ``m_*.py`` in ``directory``, sorted by name."""
    return sorted(Path(directory).glob("m_*.py"))


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(f"_mutant_catalogue_{path.stem[2:]}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def equivalents(directory: Path = CATALOGUE_DIR) -> dict[str, str]:
    """``{id: reason}`` for the mutants the catalogues declare equivalent.

    Raises
    ------
    ValueError
        ``EQUIVALENT`` is not a dict from a valid 1-based index to a reason.
    """
    out: dict[str, str] = {}
    for path in catalogue_files(directory):
        module = _module(path)
        declared = getattr(module, "EQUIVALENT", {})
        n = len(getattr(module, "MUTANTS", ()))
        if not isinstance(declared, dict):
            raise ValueError(f"{path.name}: EQUIVALENT must be a dict of index -> reason")
        for k, why in declared.items():
            if not isinstance(k, int) or not 1 <= k <= n or not isinstance(why, str) or not why:
                raise ValueError(f"{path.name}: EQUIVALENT entry {k!r} names no mutant or "
                                 f"gives no reason")
            out[f"{path.stem[2:]}.{k}"] = why
    return out


def load(directory: Path = CATALOGUE_DIR) -> list[tuple[str, Mutant]]:
    """Every mutant of every catalogue, as ``(id, mutant)``.

    The id is the catalogue's name without ``m_`` and a 1-based index:
    ``tdp_mmu.3`` is the third mutant of ``m_tdp_mmu.py``.

    Raises
    ------
    ValueError
        A catalogue has no ``MUTANTS`` tuple, or an entry is not a Mutant.
    """
    out: list[tuple[str, Mutant]] = []
    for path in catalogue_files(directory):
        name = path.stem[2:]
        module = _module(path)
        mutants = getattr(module, "MUTANTS", None)
        if not isinstance(mutants, tuple):
            raise ValueError(f"{path.name}: MUTANTS must be a tuple of Mutant")
        for i, m in enumerate(mutants, 1):
            # Catalogues written before this module existed define a local
            # NamedTuple of the same shape: accept it by its fields.
            if not isinstance(m, Mutant):
                if getattr(m, "_fields", None) != Mutant._fields:
                    raise ValueError(f"{path.name}: entry {i} is not a Mutant")
                m = Mutant(*m)
            out.append((f"{name}.{i}", m))
    return out
