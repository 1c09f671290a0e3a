"""Guest-physical memory: a flat, little-endian byte array.

The model has one memslot: the range ``[0, size)``. Reads and writes by the
*caller* outside it are misuse and raise :class:`ValueError`; a page-table
walk that reaches outside it is a guest fault, decided by the walker with
:meth:`GuestMemory.contains` before it reads.

Glossary
--------
gpa
    Guest-physical address: an offset into this memory.
memslot
    In KVM, a range of guest-physical addresses backed by host memory. An
    address outside every memslot is not memory (KVM's walker treats a table
    there as not present).
"""

from __future__ import annotations

from refimpl.errors import check_int  # re-exported: modules import it from here

import struct
import sys

#: The largest guest memory the model allocates (4 GiB).
MAX_SIZE = 1 << 32

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class GuestMemory:
    """``size`` bytes of zero-filled guest-physical memory.

    Parameters
    ----------
    size : int
        Number of bytes, ``0 <= size <= MAX_SIZE`` (4 GiB: the model holds
        every byte in a Python ``bytearray``).

    Raises
    ------
    TypeError
        If ``size`` is not an int.
    ValueError
        If ``size`` is negative or above ``MAX_SIZE``.

    KVM
    ---
    Stands for the VM's memslots (``struct kvm_memory_slot`` in
    ``include/linux/kvm_host.h``) with a single slot at GPA 0.
    """

    __slots__ = ("_buf", "_size", "_words")

    def __init__(self, size: int) -> None:
        size = check_int("size", size)
        if not 0 <= size <= MAX_SIZE:
            raise ValueError(f"size must be in [0, {MAX_SIZE:#x}], got {size:#x}")
        self._buf = bytearray(size)
        self._size = size
        self._words = None

    @property
    def size(self) -> int:
        """Number of bytes of guest memory."""
        return self._size

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"GuestMemory({self._size:#x})"

    @property
    def buffer(self) -> bytearray:
        """The backing store itself (for the vectorised walker); do not resize."""
        return self._buf

    def contains(self, gpa: int, n: int) -> bool:
        """Whether ``[gpa, gpa + n)`` lies inside guest memory.

        Raises
        ------
        TypeError
            ``gpa`` or ``n`` not an int.
        """
        if type(gpa) is not int or type(n) is not int:
            gpa, n = check_int("gpa", gpa), check_int("n", n)
        return 0 <= gpa and gpa + n <= self._size

    def _check(self, gpa: object, n: int, what: str = "gpa") -> int:
        gpa = check_int(what, gpa)
        if gpa < 0 or gpa + n > self._size:
            raise ValueError(
                f"{what} {gpa:#x} (+{n} bytes) is outside guest memory [0, {self._size:#x})"
            )
        return gpa

    def read(self, gpa: int, n: int) -> bytes:
        """``n`` bytes from ``gpa``."""
        n = check_int("n", n)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        gpa = self._check(gpa, n)
        return bytes(self._buf[gpa : gpa + n])

    def write(self, gpa: int, data: bytes) -> None:
        """Store ``data`` (bytes-like) at ``gpa``."""
        if isinstance(data, str) or not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
        data = bytes(data)
        gpa = self._check(gpa, len(data))
        self._buf[gpa : gpa + len(data)] = data

    def read32(self, gpa: int) -> int:
        """The little-endian 32-bit word at ``gpa``."""
        gpa = self._check(gpa, 4)
        return _U32.unpack_from(self._buf, gpa)[0]

    def read64(self, gpa: int) -> int:
        """The little-endian 64-bit word at ``gpa``."""
        gpa = self._check(gpa, 8)
        return _U64.unpack_from(self._buf, gpa)[0]

    def write32(self, gpa: int, value: int) -> None:
        """Store ``value`` (``0 <= value < 2**32``) at ``gpa``."""
        value = check_int("value", value)
        if not 0 <= value < 1 << 32:
            raise ValueError(f"value {value:#x} does not fit in 32 bits")
        gpa = self._check(gpa, 4)
        _U32.pack_into(self._buf, gpa, value)

    def write64(self, gpa: int, value: int) -> None:
        """Store ``value`` (``0 <= value < 2**64``) at ``gpa``."""
        value = check_int("value", value)
        if not 0 <= value < 1 << 64:
            raise ValueError(f"value {value:#x} does not fit in 64 bits")
        gpa = self._check(gpa, 8)
        _U64.pack_into(self._buf, gpa, value)

    def copy(self) -> "GuestMemory":
        """An independent copy of this memory."""
        other = GuestMemory(0)
        other._buf = bytearray(self._buf)
        other._size = self._size
        return other

    def __getstate__(self) -> tuple[None, dict[str, object]]:
        # Pickle and deepcopy the bytes, not the cached word view.
        return None, {"_buf": self._buf, "_size": self._size}

    def __setstate__(self, state: tuple[None, dict[str, object]]) -> None:
        slots = state[1]
        self._buf = slots["_buf"]
        self._size = slots["_size"]
        self._words = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GuestMemory):
            return NotImplemented
        return self._buf == other._buf

    __hash__ = None  # type: ignore[assignment]

    # Unchecked accessors for walkers, which test ``contains`` first.
    def _load(self, gpa: int, nbytes: int) -> int:
        if nbytes == 8:
            return _U64.unpack_from(self._buf, gpa)[0]
        return _U32.unpack_from(self._buf, gpa)[0]

    def _word_view(self) -> memoryview | None:
        """Memory as little-endian 64-bit words, ``view[gpa >> 3]`` (for the
        fast walker), created once; None on a big-endian host.

        The view is an export of the buffer, which therefore cannot be
        resized while the memory lives (it never is).
        """
        if self._words is None and sys.byteorder == "little":
            usable = self._size - self._size % 8
            self._words = memoryview(self._buf)[:usable].cast("Q")
        return self._words

    def _store(self, gpa: int, nbytes: int, value: int) -> None:
        if nbytes == 8:
            _U64.pack_into(self._buf, gpa, value)
        else:
            _U32.pack_into(self._buf, gpa, value)
