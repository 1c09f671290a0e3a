"""Guest page tables built in guest memory, as a guest kernel builds them.

The shadow MMU's tests, the workloads of :mod:`refimpl.layouts.workload`
and the chapters need guests with page tables: :class:`refimpl.guest.tables.GuestPageTables`
writes 32-bit, PAE and four-level tables into a
:class:`refimpl.guest.memory.GuestMemory`, allocating table frames from a
given gfn up. It belongs to the guest, not to KVM: KVM only reads such
tables (and shadows them).
"""

from __future__ import annotations

from typing import Optional

from refimpl.errors import check_int, check_range
from refimpl.guest.cpu import PagingMode
from refimpl.guest.memory import GuestMemory

__all__ = ["GuestPageTables"]

_PAGE = 4096


class GuestPageTables:
    """Build guest page tables in guest memory, as a guest kernel would.

    Parameters
    ----------
    mem : refimpl.guest.memory.GuestMemory
    mode : refimpl.guest.cpu.PagingMode
        ``BITS32``, ``PAE`` or ``LEVEL4``.
    first_gfn : int
        Tables are taken from consecutive frames starting here.

    Attributes
    ----------
    cr3 : int
        The CR3 value for these tables (for PAE, the 32-byte PDPT at the
        start of the first frame).

    Entries are written straight to memory: use it to set up tables before
    the shadow MMU shadows them, and
    :meth:`refimpl.host.shadow_mmu.ShadowMmu.guest_write` after.
    """

    def __init__(self, mem: GuestMemory, mode: PagingMode, first_gfn: int) -> None:
        if not isinstance(mem, GuestMemory):
            raise TypeError(f"mem must be a GuestMemory, got {type(mem).__name__}")
        if mode not in (PagingMode.BITS32, PagingMode.PAE, PagingMode.LEVEL4):
            raise ValueError(f"mode must be BITS32, PAE or LEVEL4, got {mode}")
        self.mem, self.mode = mem, mode
        self.next_gfn = check_int("first_gfn", first_gfn)
        self.root_gfn = self.alloc_table()
        self.cr3 = self.root_gfn << 12

    @property
    def entry_bytes(self) -> int:
        """4 for 32-bit paging, else 8."""
        return 4 if self.mode is PagingMode.BITS32 else 8

    def alloc_table(self) -> int:
        """A zeroed table frame; its gfn."""
        gfn = self.next_gfn
        if not self.mem.contains(gfn << 12, _PAGE):
            raise ValueError("guest memory is full")
        self.mem.write(gfn << 12, bytes(_PAGE))
        self.next_gfn += 1
        return gfn

    def index(self, gva: int, level: int) -> int:
        """Index of ``gva``'s entry in a level-``level`` table."""
        gva = check_int("gva", gva)
        level = check_int("level", level)
        if self.mode is PagingMode.BITS32:
            return (gva >> (12 + 10 * (level - 1))) & 1023
        if self.mode is PagingMode.PAE and level == 3:
            return (gva >> 30) & 3
        return (gva >> (12 + 9 * (level - 1))) & 511

    def entry_gpa(self, table_gfn: int, gva: int, level: int) -> int:
        """Where ``gva``'s level-``level`` entry lives in table ``table_gfn``."""
        table_gfn = check_int("table_gfn", table_gfn)
        gva = check_int("gva", gva)
        level = check_int("level", level)
        return (table_gfn << 12) + self.index(gva, level) * self.entry_bytes

    def read(self, gpa: int) -> int:
        """The entry at ``gpa``.

        Raises
        ------
        TypeError, ValueError
            ``gpa`` not an int, or the entry not inside guest memory.
        """
        gpa = check_int("gpa", gpa)
        if not self.mem.contains(gpa, self.entry_bytes) or gpa < 0:
            raise ValueError(f"gpa {gpa:#x} (+{self.entry_bytes}) is outside guest memory "
                             f"[0, {self.mem.size:#x})")
        return self.mem._load(gpa, self.entry_bytes)

    def write(self, gpa: int, value: int) -> None:
        """Store an entry at ``gpa`` directly in memory.

        Raises
        ------
        TypeError, ValueError
            ``gpa`` outside guest memory, ``value`` not in
            ``[0, 2**(8 * entry_bytes))``.
        """
        gpa = check_int("gpa", gpa)
        value = check_int("value", value)
        if not 0 <= value < 1 << (8 * self.entry_bytes):
            raise ValueError(f"value {value:#x} does not fit in {8 * self.entry_bytes} bits")
        if not self.mem.contains(gpa, self.entry_bytes) or gpa < 0:
            raise ValueError(f"gpa {gpa:#x} (+{self.entry_bytes}) is outside guest memory "
                             f"[0, {self.mem.size:#x})")
        self.mem._store(gpa, self.entry_bytes, value)

    def map(self, gva: int, gpa: int, *, leaf_level: int = 1, leaf: int = 0x7,
            upper: Optional[dict] = None, tables: Optional[dict] = None) -> dict:
        """Map ``gva`` to ``gpa`` with a leaf of ``leaf_level``.

        Parameters
        ----------
        leaf : int
            Flag bits of the leaf (P, W, U, A, D, NX...); PS is added for
            a large leaf.
        upper : dict of int to int
            Flag bits of the non-leaf entry at each level (default P|W|U).
        tables : dict of int to int
            Force the table gfn that the entry at a level points to (to
            share tables between walks).

        Returns
        -------
        dict of int to int
            ``{level: entry gpa}`` of the entries on the path.
        """
        top = {PagingMode.BITS32: 2, PagingMode.PAE: 3, PagingMode.LEVEL4: 4}[self.mode]
        gva = check_range("gva", gva, 0, 1 << (32 if top < 4 else 64))
        gpa = check_range("gpa", gpa, 0, 1 << 52)
        leaf_level = check_range("leaf_level", leaf_level, 1, top + 1)
        leaf = check_range("leaf", leaf, 0, 1 << 64)
        for name, d in (("upper", upper), ("tables", tables)):
            if d is not None and not isinstance(d, dict):
                raise TypeError(f"{name} must be a dict of level -> int, got {type(d).__name__}")
            for k, v in (d or {}).items():
                check_range(f"{name} key", k, 1, top + 1)
                check_range(f"{name}[{k}]", v, 0, 1 << 40)
        # Every table the walk needs must fit before anything is written.
        fresh = sum(1 for lv in range(top, leaf_level, -1) if lv not in (tables or {}))
        if not self.mem.contains(self.next_gfn << 12, fresh * _PAGE):
            raise ValueError("guest memory is full: no room for the tables this map needs")
        upper = upper or {}
        tables = tables or {}
        table = self.root_gfn
        path = {}
        for level in range(top, leaf_level, -1):
            e = self.entry_gpa(table, gva, level)
            path[level] = e
            cur = self.read(e)
            if level in tables:
                child = tables[level]
            elif cur & 1 and not cur & 0x80:
                child = (cur & 0x000F_FFFF_FFFF_F000) >> 12
            else:
                child = self.alloc_table()
            flags = upper.get(level, 0x7)
            if self.mode is PagingMode.PAE and level == 3:
                flags &= 1  # PDPTEs have no W/U bits
            self.write(e, (child << 12) | flags | (cur & 0x60 if cur & 1 else 0))
            table = child
        e = self.entry_gpa(table, gva, leaf_level)
        path[leaf_level] = e
        value = gpa | leaf | (0x80 if leaf_level > 1 else 0)
        if self.mode is PagingMode.BITS32 and leaf_level == 2:
            value = (gpa & 0xFFC0_0000) | leaf | 0x80
        self.write(e, value)
        return path
