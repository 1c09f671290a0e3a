"""Named bit ranges: the one source of every bit layout in the book.

A :class:`Field` names a contiguous run of bits ``lo..hi`` (inclusive, bit 0
is the least significant). A :class:`Layout` is an ordered, frozen set of
fields over a word of ``width`` bits. Code reads ``PTE64.W.mask`` instead of a
literal, and the book renders the same object as its table, so a bit position
is written down exactly once.

Glossary
--------
field
    A run of bits with a name and a one-line meaning.
layout
    The fields of one kind of word (a page-table entry, a role, a register).
mask
    The integer whose set bits are exactly a field's bits.
"""

from __future__ import annotations

from refimpl.errors import check_instance, check_int, check_items, check_range

from dataclasses import dataclass, field
from typing import Iterator


#: One past the highest bit a :class:`Field` or :func:`bits` may name.
MAX_BIT = 1024


@dataclass(frozen=True)
class Field:
    """A named run of bits ``lo..hi`` (inclusive) in a word.

    Parameters
    ----------
    name : str
        The field's name as KVM or the SDM spells it (``"W"``, ``"level"``).
    lo, hi : int
        The lowest and highest bit of the run, ``0 <= lo <= hi``.
    doc : str
        One line saying what the field means.
    """

    name: str
    lo: int
    hi: int
    doc: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"Field name must be an identifier, got {self.name!r}")
        for arg in ("lo", "hi"):
            v = getattr(self, arg)
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"Field {self.name}: {arg} must be an int, got {v!r}")
        if not 0 <= self.lo <= self.hi < MAX_BIT:
            raise ValueError(
                f"Field {self.name}: need 0 <= lo <= hi < {MAX_BIT}, got lo={self.lo}, hi={self.hi}"
            )

    @property
    def width(self) -> int:
        """Number of bits in the field."""
        return self.hi - self.lo + 1

    @property
    def mask(self) -> int:
        """The field's bits, in place."""
        return ((1 << self.width) - 1) << self.lo

    @property
    def bit(self) -> int:
        """The mask of a one-bit field (an error for wider fields)."""
        if self.width != 1:
            raise ValueError(f"Field {self.name} is {self.width} bits wide, not a flag")
        return 1 << self.lo

    def get(self, word: int) -> int:
        """The field's value in ``word``, shifted down to bit 0."""
        word = check_int("word", word)
        if word < 0:
            raise ValueError(f"word must be >= 0, got {word}")
        return (word >> self.lo) & ((1 << self.width) - 1)

    def set(self, word: int, value: int) -> int:
        """``word`` with this field replaced by ``value``.

        Raises
        ------
        ValueError
            If ``value`` does not fit in the field.
        """
        word = check_int("word", word)
        if word < 0:
            raise ValueError(f"word must be >= 0, got {word}")
        value = check_int("value", value)
        if not isinstance(value, int):
            raise TypeError(f"Field {self.name}: value must be an int, got {value!r}")
        value = int(value)
        if not 0 <= value < (1 << self.width):
            raise ValueError(
                f"Field {self.name}: value {value:#x} does not fit in {self.width} bit(s)"
            )
        return (word & ~self.mask) | (value << self.lo)

    def bits_text(self) -> str:
        """The bit range as the SDM writes it: ``"7"`` or ``"62:59"``."""
        return str(self.lo) if self.lo == self.hi else f"{self.hi}:{self.lo}"


@dataclass(frozen=True)
class Layout:
    """An ordered set of non-overlapping fields over a ``width``-bit word.

    Fields are reachable as attributes (``PTE64.W``) and by name
    (``PTE64["W"]``). Construction checks the invariants that ``spte.h``
    checks with ``static_assert``: fields fit the word and no two overlap.

    Parameters
    ----------
    name : str
        What the word is (``"64-bit paging-structure entry"``).
    width : int
        Size of the word in bits.
    fields : tuple of Field
        The fields, in any order; they are kept sorted by ``lo``.

    Raises
    ------
    TypeError, ValueError
        ``name`` not a str, ``width`` not in ``[1, MAX_BIT]``, ``fields``
        not Field objects; fields that overlap, repeat a name or do not
        fit in ``width`` bits.
    """

    name: str
    width: int
    fields: tuple[Field, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_instance("name", self.name, str)
        object.__setattr__(self, "width", check_range("width", self.width, 1, MAX_BIT + 1))
        fields = check_items("fields", self.fields, Field)
        ordered = tuple(sorted(fields, key=lambda f: f.lo))
        object.__setattr__(self, "fields", ordered)
        seen: dict[str, Field] = {}
        for f in ordered:
            if f.name in seen:
                raise ValueError(f"Layout {self.name}: field {f.name} defined twice")
            if f.hi >= self.width:
                raise ValueError(
                    f"Layout {self.name}: field {f.name} (bits {f.bits_text()}) "
                    f"does not fit in {self.width} bits"
                )
            seen[f.name] = f
        for a, b in zip(ordered, ordered[1:]):
            if a.hi >= b.lo:
                raise ValueError(
                    f"Layout {self.name}: fields {a.name} and {b.name} overlap"
                )

    def __getattr__(self, name: str) -> Field:
        # Only called when normal lookup fails: resolve field names.
        for f in object.__getattribute__(self, "fields"):
            if f.name == name:
                return f
        raise AttributeError(f"Layout {self.name!r} has no field {name!r}")

    def __getitem__(self, name: str) -> Field:
        return self.__getattr__(name)

    def __iter__(self) -> Iterator[Field]:
        return iter(self.fields)

    def __contains__(self, name: object) -> bool:
        return any(f.name == name for f in self.fields)

    @property
    def names(self) -> tuple[str, ...]:
        """Field names, lowest bit first."""
        return tuple(f.name for f in self.fields)

    @property
    def used_mask(self) -> int:
        """All bits that belong to some field."""
        m = 0
        for f in self.fields:
            m |= f.mask
        return m

    def decode(self, word: int) -> dict[str, int]:
        """Every field's value in ``word``, by name."""
        word = check_int("word", word)
        return {f.name: f.get(word) for f in self.fields}

    def encode(self, **values: int) -> int:
        """A word with the named fields set (others zero).

        Raises
        ------
        ValueError
            If a name is not a field of this layout, or a value does not fit.
        """
        word = 0
        for name, value in values.items():
            if name not in self:
                raise ValueError(f"Layout {self.name} has no field {name!r}")
            word = self[name].set(word, int(value))
        return word

    def rows(self) -> list[tuple[str, str, str]]:
        """``(bits, name, meaning)`` rows, highest bit first, for tables."""
        return [(f.bits_text(), f.name, f.doc) for f in reversed(self.fields)]

    def to_markdown(self) -> str:
        """The layout as a Markdown table, highest bit first."""
        lines = ["| bits | field | meaning |", "|---|---|---|"]
        lines += [f"| {b} | `{n}` | {d} |" for b, n, d in self.rows()]
        return "\n".join(lines)


def bits(lo: int, hi: int) -> int:
    """The mask of bits ``lo..hi`` inclusive (``bits(13, 20)`` for bits 20:13)."""
    lo = check_int("lo", lo)
    hi = check_int("hi", hi)
    if not 0 <= lo <= hi < MAX_BIT:
        raise ValueError(f"bits: need 0 <= lo <= hi < {MAX_BIT}, got lo={lo}, hi={hi}")
    return ((1 << (hi - lo + 1)) - 1) << lo
