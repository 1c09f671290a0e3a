"""A realistic, seeded four-level page-table image, and addresses to walk in it.

The layout follows a Linux x86-64 process as a memory-forensics tool meets it
in a dump:

* user space: program text at ``0x400000``, a heap, a few shared-library
  mappings near ``0x7f00_0000_0000`` and a stack below ``0x7ffc_0000_0000``,
  all 4 KiB pages, with holes (some not present, some holding Linux-style
  swap entries: P=0, other bits set);
* the kernel's direct map at ``0xffff_8880_0000_0000``: one 1 GiB page at
  guest-physical 0 (as Linux maps physical memory);
* kernel text at ``0xffff_ffff_8100_0000`` in 2 MiB pages;
* a vmalloc area at ``0xffff_c900_0000_0000`` in scattered 4 KiB pages.

Page tables and data frames are scattered over guest memory by a seeded
shuffle of its frames, so neighbouring entries do not point at neighbouring
frames. Every leaf points inside guest memory, so a forensic tool that checks
the target against its physical layer agrees with the walker.

The image is meant to be walked by refimpl, volatility3 and the C loop
(``benchmarks/walk.c``) with identical answers: the control registers give
supervisor reads no rights to fault on (no SMAP), no entry has a reserved bit
set, and no address is non-canonical (volatility3 masks such addresses
instead of faulting).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from refimpl import CpuState, GuestMemory
from refimpl.guest.formats import CR0, CR4, EFER, PTTYPE64

P, W, U, A, D, PS, G = 1 << 0, 1 << 1, 1 << 2, 1 << 5, 1 << 6, 1 << 7, 1 << 8
XD = 1 << 63
PAGE = 4096

#: The guest's registers: long mode, CR0.WP, EFER.NXE, no SMEP/SMAP/PKE.
CPU_BITS = dict(
    cr0=CR0.PE.bit | CR0.WP.bit | CR0.PG.bit,
    cr4=CR4.PAE.bit,
    efer=EFER.LME.bit | EFER.LMA.bit | EFER.NXE.bit,
)


@dataclass
class Image:
    """A page-table image and where things are in it.

    Attributes
    ----------
    mem : refimpl.GuestMemory
        Guest memory holding the tables (and nothing else: data frames are
        left zero).
    cpu : refimpl.CpuState
        Registers with CR3 at the root table.
    pages_4k, pages_2m, pages_1g : list of int
        Virtual addresses of mapped pages of each size.
    holes : list of int
        Page addresses that fault, at every level of the walk.
    tables : int
        Number of page tables.
    """

    mem: GuestMemory
    cpu: CpuState
    pages_4k: list[int] = field(default_factory=list)
    pages_2m: list[int] = field(default_factory=list)
    pages_1g: list[int] = field(default_factory=list)
    holes: list[int] = field(default_factory=list)
    tables: int = 0

    @property
    def cr3(self) -> int:
        return self.cpu.cr3


class _Builder:
    def __init__(self, rng: random.Random, mem_bytes: int, maxphyaddr: int):
        self.rng = rng
        self.mem = GuestMemory(mem_bytes)
        frames = list(range(1, mem_bytes // PAGE))  # frame 0 stays unused
        rng.shuffle(frames)
        self.free = frames
        self.tables = 0
        self.root = self.new_table()
        self.maxphyaddr = maxphyaddr

    def frame(self) -> int:
        return self.free.pop() * PAGE

    def new_table(self) -> int:
        self.tables += 1
        return self.frame()

    def _entry(self, table: int, index: int) -> int:
        return self.mem.read64(table + 8 * index)

    def table_for(self, va: int, level: int, user: bool) -> int:
        """The table at ``level`` (1..3) covering ``va``, created on demand."""
        table = self.root
        for lv in range(4, level, -1):
            index = PTTYPE64.index(va, lv)
            entry = self._entry(table, index)
            if not entry & P:
                child = self.new_table()
                # Table entries: writable, user if the region is; A set on
                # most (the guest has used them), clear on a few.
                flags = P | W | (U if user else 0) | (A if self.rng.random() < 0.95 else 0)
                self.mem.write64(table + 8 * index, child | flags)
                table = child
            else:
                table = entry & 0x000F_FFFF_FFFF_F000
        return table

    def map(self, va: int, level: int, target: int, *, user: bool, writable: bool,
            exec_: bool) -> None:
        table = self.table_for(va, level, user)
        index = PTTYPE64.index(va, level)
        r = self.rng.random()
        flags = P | (W if writable else 0) | (U if user else 0) | (0 if exec_ else XD)
        flags |= A if r < 0.9 else 0
        flags |= D if writable and r < 0.6 else 0
        flags |= 0 if user else G
        if level > 1:
            flags |= PS
        self.mem.write64(table + 8 * index, target | flags)

    def hole(self, va: int, *, user: bool) -> None:
        """Leave ``va``'s PTE not present: zero, or a Linux swap entry."""
        table = self.table_for(va, 1, user)
        index = PTTYPE64.index(va, 1)
        if self.rng.random() < 0.5:
            swp = (self.rng.randrange(1, 1 << 20) << 12) | (self.rng.randrange(32) << 1)
            self.mem.write64(table + 8 * index, swp & ~P)


def build_image(seed: int = 1, *, mem_mib: int = 64, scale: float = 1.0,
                maxphyaddr: int = 46) -> Image:
    """Build the image.

    Parameters
    ----------
    seed : int
        Seeds every choice; the same seed gives the same bytes.
    mem_mib : int
        Guest memory in MiB (tables and data frames are taken from it).
    scale : float
        Multiplies the number of mapped 4 KiB pages (1.0: about 4,800).
    maxphyaddr : int
        The guest's MAXPHYADDR (no entry sets a bit at or above it).
    """
    rng = random.Random(seed)
    b = _Builder(rng, mem_mib << 20, maxphyaddr)
    img_4k: list[int] = []
    img_2m: list[int] = []
    holes: list[int] = []

    def region(start: int, npages: int, *, user: bool, writable: bool, exec_: bool,
               hole_rate: float) -> None:
        for i in range(npages):
            va = start + i * PAGE
            if rng.random() < hole_rate:
                b.hole(va, user=user)
                holes.append(va)
            else:
                b.map(va, 1, b.frame(), user=user, writable=writable, exec_=exec_)
                img_4k.append(va)

    n = lambda k: max(1, int(k * scale))  # noqa: E731
    # User space.
    region(0x40_0000, n(96), user=True, writable=False, exec_=True, hole_rate=0.02)
    region(0x60_0000, n(32), user=True, writable=True, exec_=False, hole_rate=0.0)
    region(0x0100_0000, n(1536), user=True, writable=True, exec_=False, hole_rate=0.15)
    lib = 0x7F3A_0000_0000 + rng.randrange(1 << 20) * PAGE
    for _ in range(12):
        size = n(rng.choice([16, 64, 128, 256]))
        region(lib, size, user=True, writable=rng.random() < 0.3,
               exec_=rng.random() < 0.4, hole_rate=0.1)
        lib += (size + rng.randrange(1, 64)) * PAGE
    region(0x7FFC_1234_0000 - n(64) * PAGE, n(64), user=True, writable=True,
           exec_=False, hole_rate=0.05)
    # Kernel: direct map (1 GiB page at 0), text in 2 MiB pages, vmalloc.
    direct = 0xFFFF_8880_0000_0000
    b.map(direct, 3, 0, user=False, writable=True, exec_=False)
    text = 0xFFFF_FFFF_8100_0000
    mem_bytes = mem_mib << 20
    for i in range(8):
        target = rng.randrange(mem_bytes >> 21) << 21
        b.map(text + (i << 21), 2, target, user=False, writable=i >= 6, exec_=i < 6)
        img_2m.append(text + (i << 21))
    vmalloc = 0xFFFF_C900_0000_0000
    for _ in range(n(40)):
        region(vmalloc, rng.randrange(1, 32), user=False, writable=True, exec_=False,
               hole_rate=0.0)
        vmalloc += rng.randrange(40, 4000) * PAGE

    # Addresses that fault higher up: empty PML4 slots, PDPT and PD slots.
    for _ in range(n(200)):
        holes.append(rng.randrange(1, 250) << 39 | rng.randrange(1 << 27) << 12)
    for _ in range(n(200)):
        holes.append(0x7F3A_0000_0000 + (rng.randrange(8, 500) << 30) + rng.randrange(1 << 18) * PAGE)
    for _ in range(n(200)):
        holes.append(0x0100_0000 + (rng.randrange(16, 500) << 21) + rng.randrange(512) * PAGE)

    cpu = CpuState(cr3=b.root, maxphyaddr=maxphyaddr, **CPU_BITS)
    return Image(b.mem, cpu, img_4k, img_2m, [direct], holes, b.tables)


def scalar_addresses(img: Image, seed: int = 2) -> list[int]:
    """Distinct-page addresses for the scalar comparison, shuffled.

    Every mapped 4 KiB page once, as many 4 KiB pieces of the large pages
    (inside guest memory), and every hole; each with a random byte offset.
    No two addresses share a 4 KiB page, so volatility3's per-page cache
    (cleared before each repeat) gives it no hits.
    """
    rng = random.Random(seed)
    pages = list(img.pages_4k)
    pages += [base + rng.randrange(512) * PAGE for base in img.pages_2m for _ in range(64)]
    mem_pages = img.mem.size // PAGE
    for base in img.pages_1g:
        pages += [base + k * PAGE for k in rng.sample(range(mem_pages), min(1024, mem_pages))]
    pages += img.holes
    pages = list(dict.fromkeys(pages))  # distinct, first occurrence kept
    rng.shuffle(pages)
    return [p + rng.randrange(PAGE) for p in pages]


def batch_addresses(img: Image, n: int, seed: int = 3) -> np.ndarray:
    """``n`` addresses drawn (with repeats) from :func:`scalar_addresses`."""
    base = np.array(scalar_addresses(img, seed), dtype=np.uint64)
    rng = np.random.default_rng(seed)
    pick = base[rng.integers(0, len(base), n)]
    return (pick & ~np.uint64(PAGE - 1)) | rng.integers(0, PAGE, n, dtype=np.uint64)
