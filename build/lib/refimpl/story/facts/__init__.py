"""The register of KVM facts the book and ``refimpl`` rely on.

Every commit id, Message-ID, version, function or file location, and date
that a chapter or a docstring states about KVM has one entry here: the claim,
where it was confirmed (a stored copy of a repository file at a commit, or a
list mail by Message-ID), and whether it was confirmed at all. A fact that
could not be confirmed stays in the register with ``confirmed=False``, and
the prose that rests on it says so. ``tests/story/test_facts.py`` fails when a
commit id or Message-ID appears in ``book/`` or ``refimpl/`` without an entry.

The entries are kept in one module per part of the book (``thread``,
``guest``, ``host``, ``layouts``, ``history``, ``bugs``...); this module
gathers them into :data:`FACTS`.

Glossary
--------
key
    What the prose cites: a commit id (12 hex digits or more), a Message-ID,
    or a short name for a fact without an identifier
    (``"kvm_mmu_get_tdp_level"``).
source
    Where the fact was read: ``"torvalds/linux@<commit>:<path>"``, a
    Message-ID for list mail, or a document and section (Intel SDM, AMD APM).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

KINDS = ("commit", "message-id", "function", "file", "version", "date", "behaviour")


@dataclass(frozen=True)
class Fact:
    """One fact about KVM, with where it was confirmed.

    Parameters
    ----------
    key : str
        The identifier the prose cites (commit id, Message-ID) or a short name.
    kind : str
        One of :data:`KINDS`.
    claim : str
        What the book relies on, in one sentence.
    source : str
        Where it was read.
    confirmed : bool
        Whether the claim was confirmed in that stored copy.
    """

    key: str
    kind: str
    claim: str
    source: str
    confirmed: bool

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Fact {self.key!r}: kind must be one of {KINDS}, not {self.kind!r}")
        if not self.key or not self.claim or not self.source:
            raise ValueError(f"Fact {self.key!r}: key, claim and source must all be given")


def _gather() -> tuple[Fact, ...]:
    facts: list[Fact] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        facts.extend(importlib.import_module(f"{__name__}.{info.name}").FACTS)
    seen: dict[str, Fact] = {}
    for f in facts:
        if f.key in seen:
            raise ValueError(f"fact {f.key!r} is registered twice")
        seen[f.key] = f
    return tuple(facts)


FACTS: tuple[Fact, ...] = _gather()


def lookup(key: str) -> Fact | None:
    """The entry for ``key``; a commit id matches an entry that shares its first 12 digits."""
    for f in FACTS:
        if f.key == key:
            return f
        if f.kind == "commit" and len(key) >= 12 and (f.key.startswith(key[:12]) or key.startswith(f.key[:12])):
            return f
    return None
