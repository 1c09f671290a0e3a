"""refimpl: an executable reference model of Linux KVM's x86 MMU.

This module is the stable public API (see ``refimpl-api.md`` in the book's
API chapter): guest memory, the CPU state, and the three walks. Everything
else lives in submodules (``refimpl.guest.walker``, ``refimpl.guest.ept``, ...).

``translate`` here is ``refimpl.fast.scalar.translate``: the definition,
:func:`refimpl.guest.walker.translate`, with a fast path for four- and
five-level paging that is tested to give the same results. ``translate_batch``
(:mod:`refimpl.fast.batch`) needs NumPy, and imports it when first called;
everything else imports and runs without it.

Bad arguments anywhere in the package raise ``TypeError`` or ``ValueError``
naming the argument and what it allows, and change nothing; guest memory
contents never raise. :mod:`refimpl.errors` states the contract in full.
"""

from refimpl.fast.batch import translate_batch
from refimpl.fast.scalar import translate
from refimpl.guest.cpu import CpuState
from refimpl.guest.ept import ept_translate
from refimpl.guest.memory import GuestMemory
from refimpl.guest.nested import nested_translate
from refimpl.guest.walker import ACCESS_FETCH, ACCESS_IMPLICIT, ACCESS_USER, ACCESS_WRITE

__all__ = [
    "GuestMemory",
    "CpuState",
    "translate",
    "translate_batch",
    "ept_translate",
    "nested_translate",
    "ACCESS_WRITE",
    "ACCESS_USER",
    "ACCESS_FETCH",
    "ACCESS_IMPLICIT",
]
