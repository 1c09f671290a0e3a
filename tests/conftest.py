"""Shared set-up for the test folders, which mirror ``refimpl``'s subpackages.

The oracles and generators every folder may use (``access_oracle``,
``unicorn_harness``, ``nested_oracle``, ``api_surface``, ``strategies``)
live in ``tests/`` itself; this puts that folder on the import path.
"""

import sys
from pathlib import Path

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
