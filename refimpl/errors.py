"""The exception contract of ``refimpl``, and the checks that keep it.

Every public function, method and constructor of the package (a name in a
module's ``__all__``, or a module's function or class without a leading
underscore, and their public methods) promises three things.

1. **Bad arguments raise one of two classes.** A value of the wrong type
   raises :class:`TypeError`; a value of the right type that is out of
   range, or a combination no CPU or VM can be in, raises
   :class:`ValueError`. That covers negative or too-large addresses,
   sizes that must be page multiples and are not, unknown flag or access
   bits, impossible register states (CR0.PG without CR0.PE, EFER.LMA
   without paging), memslots that overlap or leave the guest's physical
   address space, and unknown names. ``bool`` is not accepted where a
   number is expected, and a float is never silently truncated; NumPy
   integer scalars are integers. The message names the argument and the
   allowed type or range (``"gva 0x100000000 does not fit in 32 bits"``,
   ``"size must be an int, got str 'x'"``).

2. **A call that raises changes nothing.** Arguments are checked before
   any state changes, so the object a method is called on, and every
   argument, is as it was.

3. **Guest-controlled data never raises.** The contents of guest memory
   (page-table entries, PDPTEs, EPT and NPT entries) and register values
   a guest could load are not arguments to validate: whatever they hold,
   a walk returns a translation or a guest-visible fault (a ``#PF``/``#GP``
   :class:`refimpl.guest.faults.Fault`, an EPT violation or misconfiguration, a
   nested fault). A table address outside memory is a fault too.

One more class is part of the contract: :class:`HostOutOfMemory` (a
:class:`MemoryError`) when the model's *host* runs out of frames for a
request that was valid, as the kernel's allocator would return
``-ENOMEM``. Anything else escaping a public call (``AttributeError``,
``IndexError``, ``KeyError``, ``OverflowError``, ``RuntimeError``, NumPy
errors, ...) is a bug in the model, and ``tests/api/test_api_fuzz.py`` looks
for it by calling every public callable with arbitrary values.

The ``check_*`` helpers below are what modules use at function entry; each
returns the normalised value (an ``int`` for anything with ``__index__``).

Records (dataclasses) follow one rule. A record a caller builds and passes
in (a memslot, an SPTE format, a workload event, a diagram box) is an
argument like any other: its ``__post_init__`` checks its fields, with
:func:`check_fields` and the helpers above, and a bad field raises
:class:`TypeError` or :class:`ValueError` naming ``Class.field``. Records
the model returns are not validated on construction: they are outputs (a
walk's result, a fault, a page, statistics, a report's rows), built only by
the model from values it has already checked, many of them on the per-walk,
per-SPTE or per-TLB-fill path where a check would cost time. The list of
those is ``OUTPUT_RECORDS`` in ``tests/api_surface.py``, one reason per
record.
"""

from __future__ import annotations

import operator

__all__ = [
    "DOCUMENTED",
    "HostOutOfMemory",
    "UnknownName",
    "check_int",
    "check_range",
    "check_bool",
    "check_instance",
    "check_choice",
    "check_items",
    "check_page_aligned",
    "check_bugs",
    "check_fields",
]


class HostOutOfMemory(MemoryError):
    """The model's host memory has no free frame for a valid request.

    KVM
    ---
    Allocation failures in ``arch/x86/kvm/mmu/mmu.c`` (``mmu_topup_memory_caches``)
    and ``virt/kvm/kvm_main.c`` surface as ``-ENOMEM``.
    """


class UnknownName(KeyError, ValueError):
    """A name (a box, an input) that the object does not have.

    A :class:`KeyError` for callers that look names up, and a
    :class:`ValueError` like every other bad argument.
    """

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


#: The exception classes a public call may raise (subclasses included).
DOCUMENTED: tuple[type[BaseException], ...] = (TypeError, ValueError, HostOutOfMemory)


def check_int(name: str, value: object) -> int:
    """``value`` as an ``int``.

    Accepts anything with ``__index__`` (NumPy integers) but not ``bool``.

    Raises
    ------
    TypeError
        Naming ``name``, if ``value`` is not an integer.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not bool ({value!r})")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None


def check_range(name: str, value: object, lo: int, hi: int) -> int:
    """``value`` as an ``int`` in ``[lo, hi)``.

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If it is outside ``[lo, hi)``; the message gives the range.
    """
    v = check_int(name, value)
    if not lo <= v < hi:
        raise ValueError(f"{name} must be in [{_fmt(lo)}, {_fmt(hi)}), got {_fmt(v)}")
    return v


def check_bool(name: str, value: object) -> bool:
    """``value`` as a ``bool``: a bool, a NumPy bool, or the integers 0 and 1.

    Raises
    ------
    TypeError
        For anything else.
    """
    if isinstance(value, bool):
        return value
    if type(value).__name__ == "bool_":  # numpy.bool_
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")


def check_instance(name: str, value: object, cls: type | tuple[type, ...]) -> object:
    """``value`` itself, if it is an instance of ``cls``.

    Raises
    ------
    TypeError
        Naming ``name`` and the expected class.
    """
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be a {_names(cls)}, got {type(value).__name__}")
    return value


def check_items(name: str, value: object, cls: type | tuple[type, ...]) -> tuple:
    """``value``'s items as a tuple, if ``value`` is an iterable (not a
    string, bytes or mapping) whose every item is an instance of ``cls``.

    Raises
    ------
    TypeError
        Naming ``name``: not such an iterable, or an item of another type.
    """
    if isinstance(value, (str, bytes, bytearray, dict)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be an iterable of {_names(cls)}, got {type(value).__name__}")
    try:
        items = tuple(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an iterable of {_names(cls)}, "
                        f"got {type(value).__name__}") from None
    for i, item in enumerate(items):
        if not isinstance(item, cls):
            raise TypeError(f"{name}[{i}] must be a {_names(cls)}, got {type(item).__name__}")
    return items


def _names(cls: object) -> str:
    if isinstance(cls, tuple):
        return " or ".join(_names(c) for c in cls)
    return getattr(cls, "__name__", repr(cls))


def check_choice(name: str, value: object, choices) -> object:
    """``value`` itself, if it is one of ``choices`` (compared with ``==``).

    Raises
    ------
    TypeError
        If ``value`` is unhashable or of a type none of the choices has.
    ValueError
        If it is not one of them; the message lists them.
    """
    choices = tuple(choices)
    try:
        ok = value in choices
    except Exception:  # an array or an object with an odd __eq__
        ok = False
    if not ok or isinstance(value, bool) and not any(isinstance(c, bool) for c in choices):
        if not any(isinstance(value, type(c)) for c in choices):
            raise TypeError(f"{name} must be one of {choices!r}, got {type(value).__name__}")
        raise ValueError(f"{name} must be one of {choices!r}, got {value!r}")
    return value


def check_page_aligned(name: str, value: object, page: int = 4096) -> int:
    """``value`` as a non-negative ``int`` that is a multiple of ``page``.

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If it is negative or not a multiple of ``page``.
    """
    v = check_int(name, value)
    page = check_int("page", page)
    if page < 1:
        raise ValueError(f"page must be >= 1, got {page}")
    if v < 0 or v % page:
        raise ValueError(f"{name} must be a non-negative multiple of {page:#x}, got {_fmt(v)}")
    return v


def check_bugs(name: str, value: object, known) -> frozenset:
    """``value`` as a frozenset of replayed-bug switch names, all in ``known``.

    The modules that can reproduce a published bug (:mod:`refimpl.bugs`)
    take such a set, empty by default.

    Raises
    ------
    TypeError
        If ``value`` is a string (one name must still be given in a set) or
        not an iterable of strings.
    ValueError
        If a name is not one of ``known``; the message lists them.
    """
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an iterable of names, not a {type(value).__name__}")
    try:
        names = frozenset(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an iterable of names, got {type(value).__name__}") from None
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"{name} must hold strings, got {sorted(map(repr, names))}")
    unknown = names - set(known)
    if unknown:
        raise ValueError(f"{name}: unknown names {sorted(unknown)}; known: {sorted(known)}")
    return names


def check_fields(record: object, **kinds) -> None:
    """Check the fields of a dataclass ``record`` against ``kinds``.

    Each keyword names a field and gives what it must hold: ``int`` (checked
    with :func:`check_int`), ``bool`` (:func:`check_bool`), or a class or
    tuple of classes (:func:`check_instance`); ``None`` in a tuple allows
    ``None``. The value is not changed (frozen records stay as built).
    Ranges are checked by the record itself, after this call.

    Raises
    ------
    TypeError
        Naming ``Class.field`` and the expected type.
    """
    owner = type(record).__name__
    for field, kind in kinds.items():
        value = getattr(record, field)
        name = f"{owner}.{field}"
        if isinstance(kind, tuple) and None in kind:
            if value is None:
                continue
            kind = tuple(k for k in kind if k is not None)
            if len(kind) == 1:
                kind = kind[0]
        if kind is int:
            check_int(name, value)
        elif kind is bool:
            check_bool(name, value)
        else:
            check_instance(name, value, kind)


def _fmt(v: int) -> str:
    return f"{v:#x}" if abs(v) >= 4096 else str(v)
