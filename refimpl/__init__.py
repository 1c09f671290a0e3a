"""refimpl: an executable reference model of Linux KVM's x86 MMU.

This module is the stable public API (see ``refimpl-api.md`` in the book's
API chapter): guest memory, the CPU state, and the three walks. Everything
else lives in submodules (``refimpl.walker``, ``refimpl.ept``, ...).

Bad arguments anywhere in the package raise ``TypeError`` or ``ValueError``
naming the argument and what it allows, and change nothing; guest memory
contents never raise. :mod:`refimpl.errors` states the contract in full.
"""

from .batch import translate_batch
from .cpu import CpuState
from .ept import ept_translate
from .memory import GuestMemory
from .walker import ACCESS_FETCH, ACCESS_IMPLICIT, ACCESS_USER, ACCESS_WRITE, translate

__all__ = [
    "GuestMemory",
    "CpuState",
    "translate",
    "translate_batch",
    "ept_translate",
    "ACCESS_WRITE",
    "ACCESS_USER",
    "ACCESS_FETCH",
    "ACCESS_IMPLICIT",
]
