"""A test oracle for nested paging: the single table a shadow of the composition would hold.

:func:`flatten` scans L1's EPT or NPT and L2's tables, written separately
from the walker (recursive scans over every entry, not walks), and builds
fresh four- or five-level tables mapping each L2 virtual page straight to
its L1 physical page with the rights of both dimensions ANDed.
``tests/guest/test_nested.py`` checks that a one-dimensional walk of those tables
agrees with :func:`refimpl.guest.nested.nested_translate`.

It shares with the model only the bit layouts and the reserved-bit masks
(``walk_context``), which have tests of their own.
"""

from __future__ import annotations

from dataclasses import replace

from refimpl.errors import check_bool, check_int
from refimpl.guest.cpu import CpuState, PagingMode
from refimpl.guest.ept import _check_maxphyaddr
from refimpl.guest.formats import CR0, CR4, EFER, EPTP, PTE64, PTTYPE32, pse36_addr
from refimpl.guest.memory import GuestMemory
from refimpl.guest.nested import _check_eptp
from refimpl.guest.walker import PAE_CR3_PDPT_MASK, load_pdptrs, root_table, walk_context

_PAGE = ~0xFFF

_EPT_ALLOWED = 0x000F_FFFF_FFFF_F3FF | (1 << 63)  # RWX MT IPAT PS A D, address, SVE
_ADDR = PTE64.ADDR.mask
_NX = PTE64.XD.bit


def _ept_pages(mem: GuestMemory, eptp: int, execute_only: bool) -> dict[int, tuple[int, int]]:
    """L2 frame -> (L1 frame, R|W|X ANDed), by scanning L1's EPT tables.

    Written separately from the walker: a recursive scan over every entry.
    Entries the scan does not understand (unknown bits, W without R, a bad
    leaf memory type, execute-only without support) map nothing.
    """
    out: dict[int, tuple[int, int]] = {}
    levels = EPTP.WALK_LENGTH.get(eptp) + 1

    def scan(table: int, level: int, base: int, rights: int) -> None:
        for i in range(512):
            a = table + 8 * i
            if not mem.contains(a, 8):
                return
            e = mem.read64(a)
            rwx = e & 7
            if not rwx or e & ~_EPT_ALLOWED or (rwx & 2 and not rwx & 1):
                continue
            if rwx == 4 and not execute_only:
                continue
            r = rights & rwx
            span = 1 << (12 + 9 * (level - 1))
            start = base + i * span
            leaf = level == 1 or (e >> 7) & 1
            if leaf:
                if level > 3 or (e >> 3) & 7 in (2, 3, 7):
                    continue
                frame = (e & _ADDR & ~(span - 1)) >> 12
                for j in range(span >> 12):
                    out[(start >> 12) + j] = (frame + j, r)
            else:
                if e & 0x78:  # MT/IPAT bits are reserved in tables
                    continue
                scan(e & _ADDR, level - 1, start, r)

    scan(eptp & _ADDR, levels, 0, 7)
    return out


def _npt_pages(mem: GuestMemory, ncr3: int, l1_cr4: int, l1_efer: int,
               maxphyaddr: int) -> dict[int, tuple[int, int]]:
    """L2 frame -> (L1 frame, R|W|X), by scanning L1's 64-bit NPT tables.

    A page is mapped (R) when every entry on its path is present, user
    (NPT walks are user walks) and free of reserved bits; W is the AND of
    the W bits, X is clear if any entry has NX (with L1's EFER.NX).
    """
    cpu = CpuState(cr0=CR0.PE.bit | CR0.PG.bit, cr3=ncr3, cr4=l1_cr4 & ~CR4.PKE.mask,
                   efer=l1_efer, maxphyaddr=maxphyaddr)
    ctx = walk_context(cpu)
    rsvd = ctx.rsvd.rsvd_bits_mask
    nx_on = cpu.nx
    out: dict[int, tuple[int, int]] = {}

    def scan(table: int, level: int, base: int, w: int, x: int) -> None:
        for i in range(512):
            a = table + 8 * i
            if not mem.contains(a, 8):
                return
            e = mem.read64(a)
            if e & 5 != 5 or e & rsvd[(e >> 7) & 1][level - 1]:
                continue  # not present, not user, or malformed
            w2 = w & (e >> 1) & 1
            x2 = x & (0 if nx_on and e >> 63 else 1)
            span = 1 << (12 + 9 * (level - 1))
            start = base + i * span
            if level == 1 or (e >> 7) & 1:
                frame = (e & _ADDR & ~(span - 1)) >> 12
                for j in range(span >> 12):
                    out[(start >> 12) + j] = (frame + j, 1 | w2 << 1 | x2 << 2)
            else:
                scan(e & _ADDR, level - 1, start, w2, x2)

    scan(root_table(cpu), ctx.root_level, 0, 1, 1)
    return out


def _l2_leaves(l1_mem: GuestMemory, l2_cpu: CpuState,
               second: dict[int, tuple[int, int]]) -> dict[int, int]:
    """gva page -> flattened 64-bit leaf, by scanning L2's tables in any mode.

    Each L2 table is read at the L1 address ``second`` gives for its page
    (which must be R and W there: KVM's nested access for tables is
    ``W|U``); leaves are kept if the final page is R in ``second``.
    """
    ctx = walk_context(l2_cpu)  # reserved-bit masks shared with the walker
    fmt = ctx.fmt
    nbytes, bits = fmt.entry_bytes, fmt.level_bits
    rsvd = ctx.rsvd.rsvd_bits_mask
    nx_on = l2_cpu.nx and fmt.nx_mask
    long_mode = l2_cpu.mode.long_mode
    leaves: dict[int, int] = {}

    def l1_address(l2_addr: int) -> int | None:
        m = second.get(l2_addr >> 12)
        if m is None or m[1] & 3 != 3:  # the table page must be R and W
            return None
        return (m[0] << 12) | (l2_addr & 0xFFF)

    def scan(l2_table: int, level: int, base: int, w: int, u: int, nx: int) -> None:
        table = l1_address(l2_table & ~0xFFF)
        if table is None:
            return
        for i in range(4096 // nbytes):
            a = table + nbytes * i
            if not l1_mem.contains(a, nbytes):
                return
            e = l1_mem._load(a, nbytes)
            if not e & 1 or e & rsvd[(e >> 7) & 1][level - 1]:
                continue
            w2, u2 = w & (e >> 1) & 1, u & (e >> 2) & 1
            nx2 = nx | ((e >> 63) & 1 if nx_on else 0)
            span = 1 << (12 + bits * (level - 1))
            start = base + i * span
            if ctx.is_last_gpte(level, e):
                frame = (e & fmt.leaf_addr_mask(level)) >> 12
                if fmt is PTTYPE32 and level == 2:
                    frame |= pse36_addr(e) >> 12
                pkey = e & (0xF << 59) if long_mode else 0
                for j in range(span >> 12):
                    f = second.get(frame + j)
                    if f is None or not f[1] & 1:
                        continue
                    pte = (f[0] << 12) | 1 | PTE64.A.bit | PTE64.D.bit
                    pte |= (w2 & (f[1] >> 1) & 1) << 1 | u2 << 2
                    if nx2 or not f[1] & 4:
                        pte |= _NX
                    leaves[start + (j << 12)] = pte | pkey
            else:
                scan(e & fmt.base_addr_mask, level - 1, start, w2, u2, nx2)

    if l2_cpu.mode is PagingMode.PAE:
        # load_pdptrs through the second dimension; a failing load maps nothing.
        cr3 = l2_cpu.cr3 & PAE_CR3_PDPT_MASK
        pdpt = l1_address(cr3 & _PAGE)
        pdptes = None if pdpt is None else load_pdptrs(
            l1_mem, pdpt | (cr3 & 0xFFF), l2_cpu.maxphyaddr)
        for i, (_gpa, v) in enumerate(pdptes or ()):
            if v & 1:
                scan(v & _ADDR, 2, i << 30, 1, 1, 0)
    else:
        scan(root_table(l2_cpu), ctx.root_level, 0, 1, 1, 0)
    return leaves


def flatten(
    l1_mem: GuestMemory,
    l2_cpu: CpuState,
    *,
    eptp: int | None = None,
    ncr3: int | None = None,
    l1_cr4: int | None = None,
    l1_efer: int | None = None,
    execute_only: bool = True,
    maxphyaddr: int = 52,
) -> tuple[GuestMemory, CpuState]:
    """One table mapping L2 virtual addresses straight to L1 physical ones.

    Scans L1's EPT (``eptp``) or 64-bit NPT (``ncr3``) into a map of L2
    frames, then scans L2's tables (32-bit, PAE, four- or five-level),
    reading each through that map, and writes one 4 KiB leaf per mapped
    page into fresh four-level tables (five-level for a five-level L2). A
    page is mapped when L2's path to it is valid, every L2 table on the
    path (and, for PAE, the PDPT page) is readable and writable in L1's
    tables (KVM's nested access for tables is ``W|U``), and the final page
    is readable there (every nested access carries ``U``: for EPT that
    means R, for NPT a user page). Its rights are the AND of both
    dimensions: W if L2 and L1 allow writes, U as L2 says, NX if L2 has NX
    or L1's tables forbid execution. Every flattened entry has A and D set.

    Parameters
    ----------
    l1_mem : refimpl.guest.memory.GuestMemory
    l2_cpu : refimpl.guest.cpu.CpuState
        L2's registers; any paged mode.
    eptp : int or None
        L1's EPT pointer.
    ncr3, l1_cr4, l1_efer : int or None
        L1's nested CR3, CR4 and EFER (64-bit NPT only: EFER.LMA=1).
    execute_only : bool
        EPT: whether execute-only entries are allowed.
    maxphyaddr : int
        L1's MAXPHYADDR (NPT reserved bits).

    Returns
    -------
    (refimpl.guest.memory.GuestMemory, refimpl.guest.cpu.CpuState)
        The flattened tables, and L2's registers with CR3 pointing at them.
        A 32-bit or PAE L2 gets four-level long-mode registers (CR4.PAE,
        EFER.LME/LMA/NX set, CR4.PSE/PKE cleared; CR0.WP, SMEP, SMAP kept):
        its gvas are below 4 GiB, so the walk is the same kind of walk.

    Raises
    ------
    TypeError, ValueError
        Misuse: both or neither of ``eptp``/``ncr3``, a bad EPTP, NPT
        without long mode, or an L2 without paging.

    Notes
    -----
    One case has no single-table equivalent: with L2's CR0.WP=0 a
    supervisor write ignores W, so a page L1 maps read-only stays writable
    for supervisor writes in the flat table, where the composed walk exits
    to L1.

    KVM
    ---
    Not a KVM structure: the equivalent single table. KVM's shadow of L1's
    EPT/NPT (``guest_mmu``, :mod:`refimpl.host.tdp12`) holds L1's rights;
    hardware ANDs them with L2's own tables at run time, giving the rights
    built here.
    """
    if not isinstance(l1_mem, GuestMemory):
        raise TypeError(f"l1_mem must be a GuestMemory, got {type(l1_mem).__name__}")
    if not isinstance(l2_cpu, CpuState):
        raise TypeError(f"l2_cpu must be a CpuState, got {type(l2_cpu).__name__}")
    if l2_cpu.mode is PagingMode.NONE:
        raise ValueError("l2_cpu: flatten needs L2 paging (CR0.PG=1)")
    maxphyaddr = _check_maxphyaddr(maxphyaddr)
    if (eptp is None) == (ncr3 is None):
        raise ValueError("eptp, ncr3: give exactly one (EPT or NPT)")
    if eptp is not None:
        eptp = _check_eptp(eptp)
        execute_only = check_bool("execute_only", execute_only)
        second = _ept_pages(l1_mem, eptp, execute_only)
    else:
        if l1_cr4 is None or l1_efer is None:
            raise ValueError("l1_cr4, l1_efer: required with ncr3 (they give the NPT format)")
        l1_efer = check_int("l1_efer", l1_efer)
        if not l1_efer & EFER.LMA.bit:
            raise ValueError("l1_efer: flatten supports 64-bit NPT only (EFER.LMA=1)")
        second = _npt_pages(l1_mem, check_int("ncr3", ncr3), check_int("l1_cr4", l1_cr4),
                            l1_efer, maxphyaddr)
    leaves = _l2_leaves(l1_mem, l2_cpu, second)
    top = 5 if l2_cpu.mode is PagingMode.LEVEL5 else 4

    # Write the leaves into fresh tables: page 0 is the root.
    tables: dict[tuple[int, int], int] = {}  # (level, gva prefix) -> table page index
    pages = [bytearray(4096)]
    tables[(top, 0)] = 0
    for va, pte in sorted(leaves.items()):
        t = 0
        for level in range(top, 1, -1):
            shift = 12 + 9 * (level - 1)
            idx = (va >> shift) & 511
            key = (level - 1, va >> shift)
            child = tables.get(key)
            if child is None:
                child = tables[key] = len(pages)
                pages.append(bytearray(4096))
                entry = (child << 12) | 0x7 | PTE64.A.bit  # P, W, U, A
                pages[t][idx * 8: idx * 8 + 8] = entry.to_bytes(8, "little")
            t = child
        idx = (va >> 12) & 511
        pages[t][idx * 8: idx * 8 + 8] = pte.to_bytes(8, "little")
    flat = GuestMemory(4096 * len(pages))
    flat.write(0, bytes(b"".join(pages)))
    if l2_cpu.mode.long_mode:
        return flat, replace(l2_cpu, cr3=0)
    cpu = replace(l2_cpu, cr3=0, cr4=(l2_cpu.cr4 | CR4.PAE.bit) & ~(CR4.PSE.mask | CR4.PKE.mask),
                  efer=l2_cpu.efer | EFER.LME.bit | EFER.LMA.bit | EFER.NXE.bit)
    return flat, cpu
