"""Random page tables, CPU states and addresses, shared by the walker tests.

The generators draw from a ``random.Random`` so that a test's seed fixes
its cases. Entries mix every bit a walk looks at (P, W, U, A, D, PS,
reserved address bits, NX, protection keys) and point back into memory,
sometimes past its end; tables alias one another, so a page can be a table
at several levels at once. ``tests/fast`` compares the fast paths with the
definition on them.
"""

from __future__ import annotations

import random

from refimpl import CpuState, GuestMemory

#: The paging modes the generators know: no paging, 32-bit (with and
#: without CR4.PSE), PAE, four- and five-level.
MODES = ["none", "32", "32pse", "pae", "4", "5"]

PAGES = 24


def random_image(rng: random.Random, entry_bytes: int, size: int, pages: int = PAGES) -> GuestMemory:
    """Tables whose entries point back into memory (and sometimes past it).

    Entries mix every bit the walker looks at: P, W, U, A, D, PS, reserved
    address bits, NX, protection keys; tables alias one another, so a page
    can be a table at several levels at once.
    """
    mem = GuestMemory(size)
    for page in range(pages):
        for i in range(rng.choice([8, 32, 512 if entry_bytes == 8 else 1024])):
            target = rng.randrange(pages + 2)
            flags = 0x1 if rng.random() < 0.95 else 0
            flags |= rng.choice([0, 0x2, 0x2]) | rng.choice([0, 0x4, 0x4])
            flags |= rng.choice([0, 0x20, 0x20, 0x20]) | rng.choice([0, 0x40])
            flags |= 0x80 if rng.random() < 0.2 else 0
            value = (target << 12) | flags
            if flags & 0x80 and rng.random() < 0.5:
                value &= ~0x3FFF_F000  # an aligned large page (at gpa 0)
            if entry_bytes == 8:
                r = rng.random()
                if r < 0.1:
                    value |= 1 << 63
                elif r < 0.12:
                    value |= 1 << rng.choice([13, 20, 29, 38, 45, 51])
                value |= rng.choice([0, 0, 0, 1 << 59, 5 << 59])
                if 8 * i + 8 <= 0x1000 and page * 0x1000 + 8 * i + 8 <= size:
                    mem.write64(page * 0x1000 + 8 * i, value)
            else:
                if rng.random() < 0.1:
                    value |= 1 << rng.choice([13, 16, 17, 21])
                if 4 * i + 4 <= 0x1000 and page * 0x1000 + 4 * i + 4 <= size:
                    mem.write32(page * 0x1000 + 4 * i, value & 0xFFFF_FFFF)
    return mem


def random_cpu(rng: random.Random, mode: str, pages: int = PAGES) -> CpuState:
    wp, smep, smap, nx, ac, pke = (rng.random() < 0.5 for _ in range(6))
    cr0 = 0x1 | (wp << 16) | ((mode != "none") << 31)
    cr4 = (smep << 20) | (smap << 21) | (pke << 22)
    efer = nx << 11
    cr3 = rng.randrange(pages + 1) << 12
    if mode == "32pse":
        cr4 |= 0x10
    if mode == "pae":
        cr4 |= 0x20
        cr3 |= rng.randrange(4) * 32
    if mode in ("4", "5"):
        cr4 |= 0x20 | ((mode == "5") << 12)
        efer |= 0x500
        cr3 |= rng.choice([0, 0, 0x18])  # PWT/PCD bits: ignored by the walk
    return CpuState(
        cr0=cr0, cr3=cr3, cr4=cr4, efer=efer, rflags=ac << 18,
        pkru=rng.choice([0, rng.getrandbits(32)]),
        maxphyaddr=rng.choice([36, 40, 46, 52]),
        gbpages=rng.random() < 0.7,
    )


def random_gvas(rng: random.Random, mode: str, n: int) -> list[int]:
    out = []
    for _ in range(n):
        if mode in ("none", "32", "32pse"):
            g = (rng.randrange(8) << 22) | (rng.randrange(8) << 12)
        elif mode == "pae":
            g = (rng.randrange(4) << 30) | (rng.randrange(8) << 21) | (rng.randrange(8) << 12)
        else:
            levels = 4 if mode == "4" else 5
            g = 0
            for lvl in range(levels):
                index = rng.randrange(8) if rng.random() < 0.9 else rng.randrange(512)
                g |= index << (12 + 9 * lvl)
            top = 47 if mode == "4" else 56
            r = rng.random()
            if r < 0.1:
                g |= (1 << 64) - (1 << top)  # canonical upper half
            elif r < 0.13:
                g |= 1 << rng.choice([top, 60, 63])  # not canonical
        out.append(g | rng.randrange(0x1000))
    return out


def image(seed: int, mode: str):
    rng = random.Random(seed)
    entry_bytes = 4 if mode in ("32", "32pse") else 8
    size = PAGES * 0x1000 + rng.choice([0, 0, 4, 12, -0x800])
    return rng, random_image(rng, entry_bytes, size), random_cpu(rng, mode)
