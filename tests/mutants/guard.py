"""A pytest plugin the mutant runner loads (``-p mutants.guard``).

It refuses to run unless ``refimpl`` is imported from the mutated copy
named by ``MUTANT_COPY``: otherwise an installed (editable) ``refimpl``
could be tested instead, and every mutant would "survive".
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_sessionstart(session):
    copy = os.environ.get("MUTANT_COPY")
    if not copy:
        return
    import refimpl

    where = Path(refimpl.__file__).resolve()
    if Path(copy).resolve() not in where.parents:
        raise pytest.UsageError(f"mutant guard: refimpl imported from {where}, not from {copy}")
