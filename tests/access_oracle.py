"""An independent expectation oracle for the guest walker, after ``x86/access.c``.

kvm-unit-tests' ``x86/access.c`` (repository ``kvm-unit-tests/kvm-unit-tests``,
functions ``ac_test_bump``, ``ac_test_legal``, ``ac_test_setup_ptes``,
``ac_emulate_access``, ``ac_test_permissions`` and ``ac_test_do_access``)
checks KVM's MMU by counting through a 31-bit word of test flags. Each flag
either sets one bit of the PDE or PTE that maps a test page, chooses the kind
of access (user, write, fetch, a read first), or sets one CPU control bit.
For every legal word it works out, from a handful of rules, whether the access
must fault, the error code, and the A/D bits the walk must leave behind, then
runs the access on the (virtual) CPU and compares.

This module states those rules again in Python and drives :mod:`refimpl`
through its public API (``translate``) the same way. It never asks
``refimpl`` what to expect: the expectation comes only from the flag word.

Glossary
--------
flag word
    An ``int`` whose bits are :class:`AC` members (31 bits, ``NR_AC_FLAGS``).
invalid mask
    Flags the enumeration never sets on a given CPU (bits that are not
    reserved at this MAXPHYADDR, PKU bits without PKU, FEP without forced
    emulation); ``ac_test_bump_one`` steps over them.
legal
    A flag word the enumeration runs: no invalid bit, and none of the
    combinations ``ac_test_legal`` rejects.
twice
    The access is preceded by a plain supervisor read of the same address,
    whose outcome is ignored (it only primes the TLB / shadow pages in KVM).

Layout used (as in access.c): the test page is at GPA 32 MiB, paging
structures from 33 MiB; the entries above the PDE are present, writable and
user (the PDPTE loses W under ``PDPTE_NO_WRITABLE``); the leaf carries
protection key 1 and a non-leaf PDE key 2 under ``PKU_PKEY``; PKRU is
``0x30 | WD1 << 3 | AD1 << 2`` when CR4.PKE=1 (key 2 fully denied, so a walker
that used the non-leaf key would fault) and ``0xfffffffc`` when CR4.PKE=0
(what access.c leaves there after clearing PKE, so a walker that ignored
CR4.PKE would fault).

Extensions beyond access.c (each marked where it is used):

* ``smep=True`` in :func:`legal` lets CR4.SMEP combinations through, user-mode
  accesses included. access.c rejects every CR4.SMEP word since 2021 (and
  user+SMEP always); the rule for them here is the architectural one: a
  *supervisor* instruction fetch from a user page faults under SMEP.
* :func:`run_case` also checks the #PF vector, and on success the GPA and the
  leaf level; access.c observes only fault/no fault, the error code and the
  PTE/PDE values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple

import numpy as np

# ---------------------------------------------------------------------------
# The flag word
# ---------------------------------------------------------------------------


class AC(enum.IntFlag):
    """The 31 test flags, in access.c's bit order (low bits toggle most often)."""

    PTE_WRITABLE = 1 << 0
    PTE_USER = 1 << 1
    PTE_ACCESSED = 1 << 2
    PTE_DIRTY = 1 << 3
    PTE_NX = 1 << 4
    PTE_PRESENT = 1 << 5
    PTE_BIT51 = 1 << 6
    PTE_BIT36 = 1 << 7

    PDE_WRITABLE = 1 << 8
    PDE_USER = 1 << 9
    PDE_ACCESSED = 1 << 10
    PDE_DIRTY = 1 << 11
    PDE_PSE = 1 << 12
    PDE_NX = 1 << 13
    PDE_PRESENT = 1 << 14
    PDE_BIT51 = 1 << 15
    PDE_BIT36 = 1 << 16
    PDE_BIT13 = 1 << 17

    PDPTE_NO_WRITABLE = 1 << 18

    PKU_AD = 1 << 19
    PKU_WD = 1 << 20
    PKU_PKEY = 1 << 21

    ACCESS_USER = 1 << 22
    ACCESS_WRITE = 1 << 23
    ACCESS_FETCH = 1 << 24
    ACCESS_TWICE = 1 << 25

    CPU_EFER_NX = 1 << 26
    CPU_CR0_WP = 1 << 27
    CPU_CR4_SMEP = 1 << 28
    CPU_CR4_PKE = 1 << 29

    FEP = 1 << 30


NR_AC_FLAGS = 31
assert len(AC) == NR_AC_FLAGS and max(AC) == 1 << (NR_AC_FLAGS - 1)

#: access.c's short names (``ac_names``), used by :func:`show`.
AC_NAMES = {
    AC.PTE_PRESENT: "pte.p", AC.PTE_ACCESSED: "pte.a", AC.PTE_WRITABLE: "pte.rw",
    AC.PTE_USER: "pte.user", AC.PTE_DIRTY: "pte.d", AC.PTE_NX: "pte.nx",
    AC.PTE_BIT51: "pte.51", AC.PTE_BIT36: "pte.36",
    AC.PDE_PRESENT: "pde.p", AC.PDE_ACCESSED: "pde.a", AC.PDE_WRITABLE: "pde.rw",
    AC.PDE_USER: "pde.user", AC.PDE_DIRTY: "pde.d", AC.PDE_PSE: "pde.pse",
    AC.PDE_NX: "pde.nx", AC.PDE_BIT51: "pde.51", AC.PDE_BIT36: "pde.36",
    AC.PDE_BIT13: "pde.13", AC.PDPTE_NO_WRITABLE: "pdpte.ro",
    AC.PKU_AD: "pkru.ad", AC.PKU_WD: "pkru.wd", AC.PKU_PKEY: "pkey=1",
    AC.ACCESS_WRITE: "write", AC.ACCESS_USER: "user", AC.ACCESS_FETCH: "fetch",
    AC.ACCESS_TWICE: "twice", AC.CPU_EFER_NX: "efer.nx", AC.CPU_CR0_WP: "cr0.wp",
    AC.CPU_CR4_SMEP: "cr4.smep", AC.CPU_CR4_PKE: "cr4.pke", AC.FEP: "fep",
}


def show(flags: int) -> str:
    """The flag word as access.c prints it: ``"pte.p pde.p write ..."``."""
    return " ".join(AC_NAMES[AC(1 << i)] for i in range(NR_AC_FLAGS) if flags >> i & 1) or "(none)"


# Page-fault error code bits (SDM vol. 3 4.7).
PF_P = 1 << 0
PF_W = 1 << 1
PF_U = 1 << 2
PF_RSVD = 1 << 3
PF_F = 1 << 4
PF_PK = 1 << 5

# Entry bits (4/5-level paging).
E_P = 1 << 0
E_W = 1 << 1
E_U = 1 << 2
E_A = 1 << 5
E_D = 1 << 6
E_PS = 1 << 7
E_NX = 1 << 63
PKEY_SHIFT = 59

# ---------------------------------------------------------------------------
# Enumeration: invalid mask and legality (ac_test_bump / ac_test_legal)
# ---------------------------------------------------------------------------

#: Reserved-bit flags that are always reserved (in a 2 MiB PDE bit 13 is).
_RESERVED_ALWAYS = AC.PDE_BIT13
_RESERVED_51 = AC.PDE_BIT51 | AC.PTE_BIT51
_RESERVED_36 = AC.PDE_BIT36 | AC.PTE_BIT36
_NX_BITS = AC.PDE_NX | AC.PTE_NX
_PKU_FLAGS = AC.PKU_AD | AC.PKU_WD | AC.PKU_PKEY | AC.CPU_CR4_PKE


def invalid_mask(maxphyaddr: int, pku: bool = True, smep_supported: bool = True,
                 fep: bool = False) -> int:
    """Flags the enumeration never sets (``invalid_mask`` in ``ac_test_run``).

    Bit 51 is not reserved when MAXPHYADDR >= 52 and bit 36 is not when
    MAXPHYADDR >= 37, so those flags cannot make a reserved-bit fault there;
    PKU flags go without PKU, CR4.SMEP without SMEP, FEP without forced
    emulation.
    """
    m = 0
    if maxphyaddr >= 52:
        m |= _RESERVED_51
    if maxphyaddr >= 37:
        m |= _RESERVED_36
    if not pku:
        m |= _PKU_FLAGS
    if not smep_supported:
        m |= AC.CPU_CR4_SMEP
    if not fep:
        m |= AC.FEP
    return int(m)


def legal(flags: int, maxphyaddr: int = 40, pku: bool = True, smep: bool = False,
          fep: bool = False) -> bool:
    """Whether access.c's enumeration runs the flag word ``flags``.

    Parameters
    ----------
    flags : int
        A flag word.
    maxphyaddr : int
        The guest's MAXPHYADDR (decides whether bits 51 and 36 are testable).
    pku : bool
        Whether the CPU has protection keys.
    smep : bool
        ``False`` (access.c): every CR4.SMEP word is rejected, as
        ``ac_test_legal`` has done since 2021. ``True`` is an **extension
        beyond access.c**: CR4.SMEP words are legal, including user-mode
        accesses, which access.c could never run with SMEP on.
    fep : bool
        Whether the FEP flag (forced emulation) is enumerated; it does not
        change any expectation.
    """
    if flags & invalid_mask(maxphyaddr, pku, True, fep) or flags >> NR_AC_FLAGS:
        return False
    f = AC(flags)
    if not smep:
        # access.c: CR4.SMEP is rejected outright, and user+SMEP in any case
        # (the test code page is made supervisor while SMEP is on).
        if AC.CPU_CR4_SMEP in f:
            return False
    if AC.ACCESS_FETCH in f and AC.ACCESS_WRITE in f:
        return False
    if AC.CPU_CR4_PKE not in f and f & (AC.PKU_AD | AC.PKU_WD):
        return False
    if AC.PDE_PSE not in f and AC.PDE_BIT13 in f:
        return False
    # At most one reserved bit; the NX bits count as reserved when EFER.NX=0.
    reserved = _RESERVED_ALWAYS | _RESERVED_51 | _RESERVED_36
    if AC.CPU_EFER_NX not in f:
        reserved |= _NX_BITS
    r = int(f & reserved)
    return r & (r - 1) == 0


def count_legal(maxphyaddr: int = 40, pku: bool = True, smep: bool = False,
                fep: bool = False) -> int:
    """The number of legal flag words, counted combinatorially (no enumeration).

    The rules of :func:`legal` touch disjoint groups of flags, so the count is
    a product: free flags contribute a factor 2 each; {fetch, write} 3 (not
    both); {CR4.PKE, AD, WD} 5 (AD/WD only with PKE); user+SMEP is free in
    the extension and impossible in access.c mode (SMEP is never set); and the
    reserved-bit group {EFER.NX, PSE, PDE.NX, PTE.NX, bit13, bit51 x2,
    bit36 x2} is summed over EFER.NX and PSE: with r reserved-type bits
    testable there are r + 1 choices (none or exactly one), times 4 for the
    two NX bits when they are not reserved (EFER.NX=1).
    """
    candidates = ((1 << NR_AC_FLAGS) - 1) & ~invalid_mask(maxphyaddr, pku, True, fep)
    if not smep:
        candidates &= ~AC.CPU_CR4_SMEP
    n51 = 2 if candidates & AC.PTE_BIT51 else 0
    n36 = 2 if candidates & AC.PTE_BIT36 else 0
    reserved_group = 0
    for efer_nx in (0, 1):
        for pse in (0, 1):
            r = n51 + n36 + pse + (0 if efer_nx else 2)
            reserved_group += (r + 1) * (4 if efer_nx else 1)
    group_bits = (AC.CPU_EFER_NX | AC.PDE_PSE | _NX_BITS | AC.PDE_BIT13
                  | _RESERVED_51 | _RESERVED_36 | AC.ACCESS_FETCH | AC.ACCESS_WRITE
                  | AC.CPU_CR4_PKE | AC.PKU_AD | AC.PKU_WD)
    free = bin(candidates & ~group_bits).count("1")
    pku_group = 5 if pku else 1
    return (1 << free) * 3 * pku_group * reserved_group


# ---------------------------------------------------------------------------
# The test page tables (ac_test_setup_ptes)
# ---------------------------------------------------------------------------

PAGE_GPA = 32 << 20          #: the test page (AT_CODE_DATA_PHYS)
TABLES_GPA = 33 << 20        #: the pool of paging structures (AT_PAGING_STRUCTURES_PHYS)
TEST_GVA = 0xFFFF923400000000  #: the address ac_test_run tests
MEM_SIZE = 36 << 20          #: covers the 2 MiB page at 32 MiB and the tables
PKRU_PKE_OFF = 0xFFFFFFFC    #: PKRU whenever CR4.PKE=0 in access.c


def _f(flags: int, flag: AC) -> bool:
    return bool(flags & flag)


def table_gpa(depth: int, level: int) -> int:
    """GPA of the table that the level-``level`` entry points to (1 < level <= depth).

    access.c allocates them from the pool top-down: the table below the root
    entry first. The root table itself (CR3) follows the pool here.
    """
    return TABLES_GPA + (depth - level) * 4096


def root_gpa(depth: int) -> int:
    """GPA of the root table (CR3)."""
    return TABLES_GPA + depth * 4096


def pt_index(gva: int, level: int) -> int:
    return (gva >> (12 + 9 * (level - 1))) & 511


def entry_gpa(depth: int, level: int, gva: int = TEST_GVA) -> int:
    """GPA of the level-``level`` entry that maps ``gva``."""
    table = root_gpa(depth) if level == depth else table_gpa(depth, level + 1)
    return table + 8 * pt_index(gva, level)


def upper_entry(flags: int, depth: int, level: int) -> int:
    """The value of a level-5/4/3 entry: present, writable (unless the PDPTE
    is read-only), user, pointing at the next table, A and D clear."""
    e = table_gpa(depth, level) | E_P | E_U | E_W
    if level == 3 and _f(flags, AC.PDPTE_NO_WRITABLE):
        e &= ~E_W
    return e


def pde_value(flags: int, depth: int) -> int:
    """The PDE as access.c writes it: a 2 MiB leaf under PDE_PSE, else a
    pointer to the page table; pkey 1 on a leaf, 2 on a non-leaf."""
    if _f(flags, AC.PDE_PSE):
        e = PAGE_GPA | E_PS
        if _f(flags, AC.PKU_PKEY):
            e |= 1 << PKEY_SHIFT
    else:
        e = table_gpa(depth, 2)
        if _f(flags, AC.PKU_PKEY):
            e |= 2 << PKEY_SHIFT
    for flag, bit in ((AC.PDE_PRESENT, E_P), (AC.PDE_WRITABLE, E_W), (AC.PDE_USER, E_U),
                      (AC.PDE_ACCESSED, E_A), (AC.PDE_DIRTY, E_D), (AC.PDE_NX, E_NX),
                      (AC.PDE_BIT51, 1 << 51), (AC.PDE_BIT36, 1 << 36),
                      (AC.PDE_BIT13, 1 << 13)):
        if _f(flags, flag):
            e |= bit
    return e


def pte_value(flags: int) -> int:
    """The PTE as access.c writes it (4 KiB page at 32 MiB, pkey 1 if asked)."""
    e = PAGE_GPA
    if _f(flags, AC.PKU_PKEY):
        e |= 1 << PKEY_SHIFT
    for flag, bit in ((AC.PTE_PRESENT, E_P), (AC.PTE_WRITABLE, E_W), (AC.PTE_USER, E_U),
                      (AC.PTE_ACCESSED, E_A), (AC.PTE_DIRTY, E_D), (AC.PTE_NX, E_NX),
                      (AC.PTE_BIT51, 1 << 51), (AC.PTE_BIT36, 1 << 36)):
        if _f(flags, flag):
            e |= bit
    return e


# ---------------------------------------------------------------------------
# Expectations (ac_emulate_access / ac_test_permissions)
# ---------------------------------------------------------------------------


class Expected(NamedTuple):
    """What the access must do.

    ``pte`` is the whole PTE value expected afterwards (``None`` under PSE,
    where there is no PTE); ``pde`` the whole PDE value, compared outside
    ``pde_ignore`` (the A bit is "don't care" when the access faults and PDE.A
    started clear: hardware may set upper A bits before it faults).
    """

    fault: bool
    error_code: int
    pte: int | None
    pde: int
    pde_ignore: int
    #: Extension (KVM semantics, not access.c): whether any walk of the case
    #: (the priming read included) succeeded, i.e. whether the entries above
    #: the PDE must end with A set; KVM writes A bits only on success.
    upper_a: bool = False

    @property
    def leaf_a(self) -> bool:
        return bool((self.pde if self.pte is None else self.pte) & E_A)

    @property
    def leaf_d(self) -> bool:
        return bool((self.pde if self.pte is None else self.pte) & E_D)

    @property
    def pde_a(self) -> bool:
        return bool(self.pde & E_A)

    @property
    def pde_a_dont_care(self) -> bool:
        return bool(self.pde_ignore & E_A)


@dataclass
class _Status:
    """Mutable state of one emulated access (``ac_test_t``'s expected_* fields)."""

    pte_bits: int = 0       # A/D bits the access must add to the PTE
    pde_bits: int = 0       # A/D bits the access must add to the PDE
    ignore_pde: int = 0
    fault: bool = False
    error: int = PF_P


def _rights_check(flags: int, st: _Status, writable: bool, user: bool, executable: bool) -> int:
    """Permission checks on the rights accumulated down to the leaf.

    Returns the A/D bits the leaf must gain (none if the access faults).
    """
    sup_write_ok = not _f(flags, AC.CPU_CR0_WP) and not _f(flags, AC.ACCESS_USER)
    fetch = _f(flags, AC.ACCESS_FETCH)
    write = _f(flags, AC.ACCESS_WRITE)
    if _f(flags, AC.ACCESS_USER) and not user:
        st.fault = True                          # user access to a supervisor page
    if write and not writable and not sup_write_ok:
        st.fault = True                          # write to read-only (CR0.WP=0 exempts supervisor)
    if fetch and not executable:
        st.fault = True                          # fetch from an NX page
    # SMEP: supervisor fetch from a user page. access.c writes this without
    # the "supervisor" qualifier because it never runs user+SMEP; the
    # qualifier only matters for the smep=True extension.
    if fetch and user and _f(flags, AC.CPU_CR4_SMEP) and not _f(flags, AC.ACCESS_USER):
        st.fault = True
    # Protection keys: data accesses (any CPL) to user pages with key 1.
    if user and not fetch and _f(flags, AC.PKU_PKEY) and _f(flags, AC.CPU_CR4_PKE):
        if _f(flags, AC.PKU_AD):
            st.fault = True
            st.error |= PF_PK
        elif write and _f(flags, AC.PKU_WD) and not sup_write_ok:
            st.fault = True
            st.error |= PF_PK
    if st.fault:
        return 0
    return E_A | (E_D if write else 0)


def _emulate(flags: int, st: _Status) -> None:
    """One access described by ``flags`` (ac_emulate_access)."""
    if _f(flags, AC.ACCESS_USER):
        st.error |= PF_U
    if _f(flags, AC.ACCESS_WRITE):
        st.error |= PF_W
    if _f(flags, AC.ACCESS_FETCH):
        st.error |= PF_F
    if not _f(flags, AC.PDE_ACCESSED):
        st.ignore_pde = E_A

    efer_nx = _f(flags, AC.CPU_EFER_NX)
    pde_ok = (_f(flags, AC.PDE_PRESENT) and not _f(flags, AC.PDE_BIT51)
              and not _f(flags, AC.PDE_BIT36) and not _f(flags, AC.PDE_BIT13)
              and not (_f(flags, AC.PDE_NX) and not efer_nx))
    if not pde_ok:
        st.fault = True
        if _f(flags, AC.PDE_PRESENT):
            st.error |= PF_RSVD
        else:
            st.error &= ~PF_P
    else:
        writable = not _f(flags, AC.PDPTE_NO_WRITABLE) and _f(flags, AC.PDE_WRITABLE)
        user = _f(flags, AC.PDE_USER)
        executable = not _f(flags, AC.PDE_NX)
        if _f(flags, AC.PDE_PSE):
            st.pde_bits |= _rights_check(flags, st, writable, user, executable)
        else:
            st.pde_bits |= E_A   # a non-leaf PDE is accessed by the walk
            pte_ok = (_f(flags, AC.PTE_PRESENT) and not _f(flags, AC.PTE_BIT51)
                      and not _f(flags, AC.PTE_BIT36)
                      and not (_f(flags, AC.PTE_NX) and not efer_nx))
            if not pte_ok:
                st.fault = True
                if _f(flags, AC.PTE_PRESENT):
                    st.error |= PF_RSVD
                else:
                    st.error &= ~PF_P
            else:
                st.pte_bits |= _rights_check(
                    flags, st, writable and _f(flags, AC.PTE_WRITABLE),
                    user and _f(flags, AC.PTE_USER),
                    executable and not _f(flags, AC.PTE_NX))
    if not st.fault:
        st.ignore_pde = 0
    # F is reported only when NX or SMEP is enabled.
    if not efer_nx and not _f(flags, AC.CPU_CR4_SMEP):
        st.error &= ~PF_F


_ACCESS_KIND = AC.ACCESS_WRITE | AC.ACCESS_FETCH | AC.ACCESS_USER


def expected(flags: int, depth: int = 4) -> Expected:
    """The outcome access.c expects for ``flags`` (``__ac_set_expected_status``).

    Parameters
    ----------
    flags : int
        A legal flag word.
    depth : int
        4 or 5 (only shifts the table addresses inside the PDE value).
    """
    st = _Status()
    any_ok = False
    if _f(flags, AC.ACCESS_TWICE):
        # The priming read: supervisor, no write, no fetch. Its A/D updates
        # stay; its fault does not.
        _emulate(flags & ~_ACCESS_KIND, st)
        any_ok = not st.fault
        st.fault, st.error, st.ignore_pde = False, PF_P, 0
    _emulate(flags, st)
    any_ok = any_ok or not st.fault
    pde = pde_value(flags, depth) | st.pde_bits
    pte = None if _f(flags, AC.PDE_PSE) else pte_value(flags) | st.pte_bits
    return Expected(st.fault, st.error if st.fault else 0, pte, pde,
                    st.ignore_pde if st.fault else 0, any_ok)


# ---------------------------------------------------------------------------
# Driving refimpl
# ---------------------------------------------------------------------------

CR0_PE, CR0_WP, CR0_PG = 1 << 0, 1 << 16, 1 << 31
CR4_PAE, CR4_LA57, CR4_SMEP, CR4_PKE = 1 << 5, 1 << 12, 1 << 20, 1 << 22
EFER_LME, EFER_LMA, EFER_NXE = 1 << 8, 1 << 10, 1 << 11


def cpu_kwargs(flags: int, depth: int, maxphyaddr: int) -> dict:
    """Keyword arguments for ``refimpl.CpuState`` (ac_test_do_access's CPU setup)."""
    cr4 = CR4_PAE | (CR4_LA57 if depth == 5 else 0)
    if _f(flags, AC.CPU_CR4_SMEP):
        cr4 |= CR4_SMEP
    if _f(flags, AC.CPU_CR4_PKE):
        cr4 |= CR4_PKE
        pkru = 0x30 | (8 if _f(flags, AC.PKU_WD) else 0) | (4 if _f(flags, AC.PKU_AD) else 0)
    else:
        pkru = PKRU_PKE_OFF
    return dict(
        cr0=CR0_PG | CR0_PE | (CR0_WP if _f(flags, AC.CPU_CR0_WP) else 0),
        cr3=root_gpa(depth),
        cr4=cr4,
        efer=EFER_LME | EFER_LMA | (EFER_NXE if _f(flags, AC.CPU_EFER_NX) else 0),
        pkru=pkru,
        maxphyaddr=maxphyaddr,
    )


def access_mask(flags: int) -> int:
    """The ``access`` argument of ``translate`` (error-code positions W, U, F)."""
    return ((2 if _f(flags, AC.ACCESS_WRITE) else 0) | (4 if _f(flags, AC.ACCESS_USER) else 0)
            | (16 if _f(flags, AC.ACCESS_FETCH) else 0))


class AccessEnv:
    """One guest memory reused across cases; only the walked entries change.

    Every case rewrites all ``depth`` entries on the path to TEST_GVA (so A/D
    bits a previous walk set are restored), which takes a few ``write64``
    calls instead of allocating a fresh 36 MiB memory.
    """

    def __init__(self, depth: int = 4, maxphyaddr: int = 40, mem=None):
        import refimpl

        if depth not in (4, 5):
            raise ValueError(f"depth must be 4 or 5, got {depth}")
        self.refimpl = refimpl
        self.depth = depth
        self.maxphyaddr = maxphyaddr
        self.mem = mem if mem is not None else refimpl.GuestMemory(MEM_SIZE)
        self.addr = {lvl: entry_gpa(depth, lvl) for lvl in range(1, depth + 1)}
        self._cpu_cache: dict[int, object] = {}

    def setup(self, flags: int):
        """Write the entries for ``flags``; return ``(cpu, gva, access)``."""
        mem, d = self.mem, self.depth
        for lvl in range(d, 2, -1):
            mem.write64(self.addr[lvl], upper_entry(flags, d, lvl))
        mem.write64(self.addr[2], pde_value(flags, d))
        mem.write64(self.addr[1], pte_value(flags))
        key = flags & (AC.CPU_CR0_WP | AC.CPU_CR4_SMEP | AC.CPU_CR4_PKE | AC.CPU_EFER_NX
                       | AC.PKU_AD | AC.PKU_WD)
        cpu = self._cpu_cache.get(key)
        if cpu is None:
            cpu = self.refimpl.CpuState(**cpu_kwargs(flags, d, self.maxphyaddr))
            self._cpu_cache[key] = cpu
        return cpu, TEST_GVA, access_mask(flags)


_ENVS: dict[tuple[int, int], AccessEnv] = {}


def build(flags: int, depth: int = 4, maxphyaddr: int = 40, env: AccessEnv | None = None):
    """Set up memory and CPU for ``flags``.

    Returns ``(mem, cpu, gva, access)``. The memory object is shared per
    ``(depth, maxphyaddr)`` unless ``env`` is given.
    """
    if env is None:
        env = _ENVS.get((depth, maxphyaddr))
        if env is None:
            env = _ENVS[(depth, maxphyaddr)] = AccessEnv(depth, maxphyaddr)
    cpu, gva, access = env.setup(flags)
    return env.mem, cpu, gva, access


def run_case(flags: int, depth: int = 4, maxphyaddr: int = 40, *,
             env: AccessEnv | None = None,
             translate: Callable | None = None,
             check_upper_a: bool = True) -> str | None:
    """Run one flag word against the walker; ``None`` if it behaves as expected.

    ``translate`` defaults to ``refimpl.translate`` (tests pass a broken one
    to show the oracle notices). ``check_upper_a`` (an extension: KVM
    semantics, not access.c) also checks the A bits of the entries above the
    PDE: set if some walk of the case succeeded, else left clear.
    """
    if env is None:
        env = _ENVS.get((depth, maxphyaddr))
        if env is None:
            env = _ENVS[(depth, maxphyaddr)] = AccessEnv(depth, maxphyaddr)
    if translate is None:
        translate = env.refimpl.translate
    cpu, gva, access = env.setup(flags)
    mem = env.mem
    exp = expected(flags, env.depth)
    try:
        if _f(flags, AC.ACCESS_TWICE):
            translate(mem, cpu, gva, 0)   # priming read; its outcome is ignored
        r = translate(mem, cpu, gva, access)
    except Exception as e:  # noqa: BLE001 - any exception is a walker mismatch
        return f"{show(flags)}: raised {type(e).__name__}: {e}"
    problems = []
    if r.fault is not None and not exp.fault:
        problems.append(f"unexpected fault (vector {r.fault.vector}, error {r.fault.error_code:#x})")
    elif r.fault is None and exp.fault:
        problems.append(f"unexpected access (expected error {exp.error_code:#x})")
    elif r.fault is not None:
        if r.fault.error_code != exp.error_code:
            problems.append(f"error code {r.fault.error_code:#x} expected {exp.error_code:#x}")
        if r.fault.vector != 14:   # extension: access.c only has a #PF handler
            problems.append(f"vector {r.fault.vector} expected 14")
    else:
        # Extension: where the access went.
        want_level = 2 if _f(flags, AC.PDE_PSE) else 1
        if r.gpa != PAGE_GPA:
            problems.append(f"gpa {r.gpa!r} expected {PAGE_GPA:#x}")
        if r.level != want_level:
            problems.append(f"level {r.level!r} expected {want_level}")
    if exp.pte is not None:
        pte = mem.read64(env.addr[1])
        if pte != exp.pte:
            problems.append(f"pte {pte:#x} expected {exp.pte:#x}")
    pde = mem.read64(env.addr[2])
    if (pde ^ exp.pde) & ~exp.pde_ignore:
        problems.append(f"pde {pde:#x} expected {exp.pde:#x} (ignoring {exp.pde_ignore:#x})")
    if check_upper_a:
        for lvl in range(env.depth, 2, -1):
            a = bool(mem.read64(env.addr[lvl]) & E_A)
            if a != exp.upper_a:
                problems.append(f"level-{lvl} entry A={int(a)} expected {int(exp.upper_a)}"
                                " (KVM: A written only by a successful walk)")
    if problems:
        return f"{show(flags)} [{flags:#010x}, {env.depth}-level]: " + "; ".join(problems)
    return None


# ---------------------------------------------------------------------------
# Vectorised forms (for sampling and the full enumeration)
# ---------------------------------------------------------------------------


def _v(flags: np.ndarray, flag: AC) -> np.ndarray:
    return (flags & np.uint32(flag)) != 0


def legal_vec(flags: np.ndarray, maxphyaddr: int = 40, pku: bool = True,
              smep: bool = False, fep: bool = False) -> np.ndarray:
    """:func:`legal` over a ``uint32`` array of flag words."""
    flags = np.asarray(flags, dtype=np.uint32)
    ok = (flags & np.uint32(invalid_mask(maxphyaddr, pku, True, fep)
                            | ~((1 << NR_AC_FLAGS) - 1) & 0xFFFFFFFF)) == 0
    if not smep:
        ok &= ~_v(flags, AC.CPU_CR4_SMEP)
    ok &= ~(_v(flags, AC.ACCESS_FETCH) & _v(flags, AC.ACCESS_WRITE))
    ok &= ~(~_v(flags, AC.CPU_CR4_PKE) & ((flags & np.uint32(AC.PKU_AD | AC.PKU_WD)) != 0))
    ok &= ~(~_v(flags, AC.PDE_PSE) & _v(flags, AC.PDE_BIT13))
    reserved = np.where(_v(flags, AC.CPU_EFER_NX),
                        np.uint32(_RESERVED_ALWAYS | _RESERVED_51 | _RESERVED_36),
                        np.uint32(_RESERVED_ALWAYS | _RESERVED_51 | _RESERVED_36 | _NX_BITS))
    r = flags & reserved
    ok &= (r & (r - np.uint32(1))) == 0
    return ok


class ExpectedVec(NamedTuple):
    """:class:`Expected` for many flag words: fault, error code, and the A/D
    bits the walk must add (``pte_add``, ``pde_add``) plus the PDE bits to
    ignore."""

    fault: np.ndarray       # bool
    error_code: np.ndarray  # uint8, 0 where no fault
    pte_add: np.ndarray     # uint8 (E_A|E_D bits added to the PTE)
    pde_add: np.ndarray     # uint8 (E_A|E_D bits added to the PDE)
    pde_ignore: np.ndarray  # uint8


def _emulate_vec(flags, fault, error, pte_add, pde_add):
    """Vector form of :func:`_emulate`; updates the arrays in place and
    returns ``ignore_pde``."""
    v = lambda f: _v(flags, f)  # noqa: E731
    user_acc, write, fetch = v(AC.ACCESS_USER), v(AC.ACCESS_WRITE), v(AC.ACCESS_FETCH)
    error |= np.where(user_acc, PF_U, 0).astype(np.uint8)
    error |= np.where(write, PF_W, 0).astype(np.uint8)
    error |= np.where(fetch, PF_F, 0).astype(np.uint8)
    efer_nx = v(AC.CPU_EFER_NX)

    pde_p = v(AC.PDE_PRESENT)
    pde_ok = (pde_p & ~v(AC.PDE_BIT51) & ~v(AC.PDE_BIT36) & ~v(AC.PDE_BIT13)
              & ~(v(AC.PDE_NX) & ~efer_nx))
    pse = v(AC.PDE_PSE)
    pte_p = v(AC.PTE_PRESENT)
    pte_ok = pte_p & ~v(AC.PTE_BIT51) & ~v(AC.PTE_BIT36) & ~(v(AC.PTE_NX) & ~efer_nx)

    # Where the walk stops: at the PDE, at the PTE, or it reaches a leaf.
    bad_pde = ~pde_ok
    bad_pte = pde_ok & ~pse & ~pte_ok
    reached = pde_ok & (pse | pte_ok)

    fault |= bad_pde | bad_pte
    rsvd = (bad_pde & pde_p) | (bad_pte & pte_p)
    notp = (bad_pde & ~pde_p) | (bad_pte & ~pte_p)
    error |= np.where(rsvd, PF_RSVD, 0).astype(np.uint8)
    error &= np.where(notp, 0xFF ^ PF_P, 0xFF).astype(np.uint8)
    pde_add |= np.where(pde_ok & ~pse, E_A, 0).astype(np.uint8)

    writable = ~v(AC.PDPTE_NO_WRITABLE) & v(AC.PDE_WRITABLE) & (pse | v(AC.PTE_WRITABLE))
    user = v(AC.PDE_USER) & (pse | v(AC.PTE_USER))
    executable = ~v(AC.PDE_NX) & (pse | ~v(AC.PTE_NX))
    sup_write_ok = ~v(AC.CPU_CR0_WP) & ~user_acc
    perm = ((user_acc & ~user) | (write & ~writable & ~sup_write_ok) | (fetch & ~executable)
            | (fetch & user & v(AC.CPU_CR4_SMEP) & ~user_acc))
    pk_applies = user & ~fetch & v(AC.PKU_PKEY) & v(AC.CPU_CR4_PKE)
    pk = pk_applies & (v(AC.PKU_AD) | (write & v(AC.PKU_WD) & ~sup_write_ok))
    leaf_fault = reached & (perm | pk)
    fault |= leaf_fault
    error |= np.where(reached & pk, PF_PK, 0).astype(np.uint8)
    leaf_bits = np.where(reached & ~fault, E_A, 0) | np.where(reached & ~fault & write, E_D, 0)
    leaf_bits = leaf_bits.astype(np.uint8)
    pde_add |= np.where(pse, leaf_bits, 0).astype(np.uint8)
    pte_add |= np.where(pse, 0, leaf_bits).astype(np.uint8)

    ignore = np.where(fault & ~v(AC.PDE_ACCESSED), E_A, 0).astype(np.uint8)
    error &= np.where(~efer_nx & ~v(AC.CPU_CR4_SMEP), 0xFF ^ PF_F, 0xFF).astype(np.uint8)
    return ignore


def expected_vec(flags: np.ndarray) -> ExpectedVec:
    """:func:`expected` over a ``uint32`` array of legal flag words."""
    flags = np.asarray(flags, dtype=np.uint32)
    n = flags.shape[0]
    pte_add = np.zeros(n, np.uint8)
    pde_add = np.zeros(n, np.uint8)
    twice = _v(flags, AC.ACCESS_TWICE)
    if twice.any():
        f0 = flags & np.uint32(~_ACCESS_KIND & 0xFFFFFFFF)
        p0, d0 = np.zeros(n, np.uint8), np.zeros(n, np.uint8)
        _emulate_vec(f0, np.zeros(n, bool), np.full(n, PF_P, np.uint8), p0, d0)
        pte_add |= np.where(twice, p0, 0).astype(np.uint8)
        pde_add |= np.where(twice, d0, 0).astype(np.uint8)
    fault = np.zeros(n, bool)
    error = np.full(n, PF_P, np.uint8)
    ignore = _emulate_vec(flags, fault, error, pte_add, pde_add)
    error = np.where(fault, error, 0).astype(np.uint8)
    return ExpectedVec(fault, error, pte_add, pde_add, ignore)


def candidate_bits(maxphyaddr: int = 40, pku: bool = True, smep: bool = False,
                   fep: bool = False) -> list[int]:
    """Bit positions the enumeration can set (outside the invalid mask; SMEP
    only under the extension)."""
    inv = invalid_mask(maxphyaddr, pku, True, fep) | (0 if smep else int(AC.CPU_CR4_SMEP))
    return [i for i in range(NR_AC_FLAGS) if not inv >> i & 1]


def enumerate_legal(maxphyaddr: int = 40, pku: bool = True, smep: bool = False,
                    fep: bool = False, chunk_bits: int = 22) -> Iterator[np.ndarray]:
    """All legal flag words in ascending order (ac_test_bump's order), as
    ``uint32`` chunks.

    A counter over the candidate bits is spread onto their positions (runs of
    adjacent positions move together), then :func:`legal_vec` filters.
    """
    bits = candidate_bits(maxphyaddr, pku, smep, fep)
    # Group into runs: (source bit, dest bit, length).
    runs: list[list[int]] = []
    for src, dst in enumerate(bits):
        if runs and runs[-1][1] + runs[-1][2] == dst:
            runs[-1][2] += 1
        else:
            runs.append([src, dst, 1])
    total = 1 << len(bits)
    step = min(1 << chunk_bits, total)
    base = np.arange(step, dtype=np.uint32)
    for start in range(0, total, step):
        c = base + np.uint32(start)
        w = np.zeros(step, np.uint32)
        for src, dst, length in runs:
            w |= ((c >> np.uint32(src)) & np.uint32((1 << length) - 1)) << np.uint32(dst)
        yield w[legal_vec(w, maxphyaddr, pku, smep, fep)]


def sample_legal(rng: np.random.Generator, n: int, maxphyaddr: int = 40, pku: bool = True,
                 smep: bool = False, fep: bool = False) -> np.ndarray:
    """``n`` legal flag words drawn uniformly (with replacement) from the legal set."""
    bits = np.array(candidate_bits(maxphyaddr, pku, smep, fep), dtype=np.uint32)
    mask = np.uint32(sum(1 << int(b) for b in bits))
    out: list[np.ndarray] = []
    have = 0
    while have < n:
        w = rng.integers(0, 1 << NR_AC_FLAGS, size=max(4 * n, 1024), dtype=np.uint32) & mask
        w = w[legal_vec(w, maxphyaddr, pku, smep, fep)]
        out.append(w)
        have += w.size
    return np.concatenate(out)[:n]
