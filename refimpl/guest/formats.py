"""Bit layouts of the guest paging structures, control registers and error code.

Every bit position the walker uses is written down here once, as a
:class:`~refimpl.bits.Layout`, and every other module reads it from here
(``PTE64.W.bit``, ``CR0.PG.bit``). The book renders the same objects as its
tables.

The second half of the module is the analogue of the block at the top of
KVM's ``paging_tmpl.h``: the handful of facts that differ between the three
entry formats the template is compiled for (``PTTYPE`` 32, 64 and EPT),
gathered in one frozen :class:`EntryFormat` each.

Glossary
--------
gpte
    A guest page-table entry, as read from guest memory.
leaf
    The entry that maps the page: level 1 always, or a higher level whose
    page-size bit (bit 7) ends the walk.
PSE-36
    In 32-bit paging, a 4 MiB PDE carries physical-address bits 35:32 in
    its bits 16:13.
ACC
    KVM's three-bit summary of an entry's rights: EXEC (1), WRITE (2) and
    USER (4); for EPT, USER stands for "readable".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag

from refimpl.bits import Field, Layout, bits
from refimpl.errors import check_choice, check_fields, check_int, check_range

# ---------------------------------------------------------------------------
# Control registers: only the bits that decide the paging mode or the rights.
# ---------------------------------------------------------------------------

CR0 = Layout(
    "CR0",
    64,
    (
        Field("PE", 0, 0, "protection enable; paging needs it"),
        Field("WP", 16, 16, "write protect: supervisor writes honour R/W"),
        Field("PG", 31, 31, "paging enable"),
    ),
)

CR4 = Layout(
    "CR4",
    64,
    (
        Field("PSE", 4, 4, "4 MiB pages in 32-bit paging"),
        Field("PAE", 5, 5, "physical address extension: 8-byte entries"),
        Field("LA57", 12, 12, "five-level paging in long mode"),
        Field("SMEP", 20, 20, "no supervisor fetches from user pages"),
        Field("SMAP", 21, 21, "no supervisor data accesses to user pages"),
        Field("PKE", 22, 22, "protection keys for user pages"),
    ),
)

EFER = Layout(
    "IA32_EFER",
    64,
    (
        Field("LME", 8, 8, "long mode enable"),
        Field("LMA", 10, 10, "long mode active"),
        Field("NXE", 11, 11, "execute-disable bit 63 in PAE and 64-bit entries"),
    ),
)

RFLAGS = Layout(
    "RFLAGS",
    64,
    (Field("AC", 18, 18, "alignment check; exempts explicit accesses from SMAP"),),
)

# ---------------------------------------------------------------------------
# Paging-structure entries.
# ---------------------------------------------------------------------------

def _x86_flags(ps_doc: str) -> tuple[Field, ...]:
    """Bits 11:0 that every x86 paging entry with R/W and U/S shares.

    32-bit entries, the 4 MiB PDE, and PAE/4-level/5-level entries all start
    with these rows; only the meaning of bit 7 depends on the entry, so the
    caller names it. Declared once here, and read by every layout below.
    """
    return (
        Field("P", 0, 0, "present"),
        Field("W", 1, 1, "writable"),
        Field("U", 2, 2, "user-mode accesses allowed"),
        Field("PWT", 3, 3, "page write-through"),
        Field("PCD", 4, 4, "page cache disable"),
        Field("A", 5, 5, "accessed"),
        Field("D", 6, 6, "dirty (leaf only)"),
        Field("PS", 7, 7, ps_doc),
        Field("G", 8, 8, "global (leaf only)"),
        Field("AVL", 9, 11, "ignored, free for software"),
    )


#: A 32-bit paging entry (PDE or PTE) that maps a 4 KiB page or a table.
PTE32 = Layout(
    "32-bit paging entry",
    32,
    _x86_flags("page size in a PDE when CR4.PSE=1 (PAT in a PTE)")
    + (Field("ADDR", 12, 31, "physical address bits 31:12"),),
)

#: A 32-bit PDE with PS=1 and CR4.PSE=1: a 4 MiB page (PSE-36 form).
PDE32_4M = Layout(
    "32-bit 4 MiB PDE",
    32,
    _x86_flags("page size: 1 here")
    + (
        Field("PAT", 12, 12, "page attribute table index bit"),
        Field("ADDR_HI", 13, 16, "physical address bits 35:32 (PSE-36)"),
        Field("RSVD", 17, 21, "reserved: a set bit is a RSVD fault"),
        Field("ADDR", 22, 31, "physical address bits 31:22"),
    ),
)

#: A PAE page-directory-pointer-table entry (one of the four "PDPTE registers").
PDPTE_PAE = Layout(
    "PAE PDPTE",
    64,
    (
        Field("P", 0, 0, "present"),
        Field("RSVD_LO", 1, 2, "reserved (no R/W, U/S here)"),
        Field("PWT", 3, 3, "page write-through"),
        Field("PCD", 4, 4, "page cache disable"),
        Field("RSVD_MID", 5, 8, "reserved (no A, D, PS, G here)"),
        Field("AVL", 9, 11, "ignored, free for software"),
        Field("ADDR", 12, 62, "physical address of the page directory"),
        Field("RSVD_HI", 63, 63, "reserved (no XD here)"),
    ),
)

#: A PAE or 4/5-level paging entry (PML5E, PML4E, PDPTE, PDE, PTE).
PTE64 = Layout(
    "PAE / 64-bit paging entry",
    64,
    _x86_flags("page size in a PDPTE/PDE; reserved in PML4E/PML5E; PAT in a PTE")
    + (
        Field("ADDR", 12, 51, "physical address (bits at or above MAXPHYADDR reserved)"),
        Field("AVL_HI", 52, 58, "ignored, free for software"),
        Field("PKEY", 59, 62, "protection key (leaf, 4/5-level only; PAE: reserved)"),
        Field("XD", 63, 63, "execute disable (reserved when EFER.NXE=0)"),
    ),
)

#: An EPT paging-structure entry.
EPTE = Layout(
    "EPT entry",
    64,
    (
        Field("R", 0, 0, "readable"),
        Field("W", 1, 1, "writable"),
        Field("X", 2, 2, "executable"),
        Field("MT", 3, 5, "memory type (leaf); reserved in tables"),
        Field("IPAT", 6, 6, "ignore PAT (leaf); reserved in tables"),
        Field("PS", 7, 7, "page size at levels 2 and 3; reserved at 4 and 5"),
        Field("A", 8, 8, "accessed (if EPTP bit 6)"),
        Field("D", 9, 9, "dirty (leaf, if EPTP bit 6)"),
        Field("XU", 10, 10, "user execute (mode-based execute control)"),
        Field("ADDR", 12, 51, "physical address (bits at or above MAXPHYADDR reserved)"),
        Field("SVE", 63, 63, "suppress #VE"),
    ),
)

#: The EPT pointer (VMCS field).
EPTP = Layout(
    "EPT pointer",
    64,
    (
        Field("MT", 0, 2, "memory type of the paging structures: 0 (UC) or 6 (WB)"),
        Field("WALK_LENGTH", 3, 5, "number of levels minus one: 3 or 4"),
        Field("AD", 6, 6, "accessed and dirty flags enabled"),
        Field("ADDR", 12, 51, "physical address of the root table"),
    ),
)

#: The exit qualification of an EPT violation (the bits KVM builds).
EPT_EXIT_QUAL = Layout(
    "EPT violation exit qualification",
    64,
    (
        Field("ACC_READ", 0, 0, "the access was a data read"),
        Field("ACC_WRITE", 1, 1, "the access was a data write"),
        Field("ACC_INSTR", 2, 2, "the access was an instruction fetch"),
        Field("RWX", 3, 5, "R, W, X of the entry rights ANDed over the walk"),
        Field("GVA_IS_VALID", 7, 7, "a guest linear address was being translated"),
        Field("GVA_TRANSLATED", 8, 8, "the access was to the final page, not a table"),
    ),
)

# ---------------------------------------------------------------------------
# The page-fault error code.
# ---------------------------------------------------------------------------

PFEC = Layout(
    "page-fault error code",
    64,
    (
        Field("P", 0, 0, "the entry was present (a rights or reserved-bit fault)"),
        Field("W", 1, 1, "the access was a write"),
        Field("U", 2, 2, "the access was in user mode"),
        Field("RSVD", 3, 3, "a reserved bit was set"),
        Field("F", 4, 4, "the access was an instruction fetch"),
        Field("PK", 5, 5, "a protection key denied the access"),
        Field("IMPLICIT", 48, 48, "KVM-internal: an implicit supervisor access"),
    ),
)


class PFERR(IntFlag):
    """Page-fault error-code bits (KVM's ``PFERR_*_MASK``).

    ``IMPLICIT`` is KVM's synthetic ``PFERR_IMPLICIT_ACCESS``: it travels in
    the access argument and never appears in an error code.

    KVM
    ---
    ``arch/x86/include/asm/kvm_host.h`` (``PFERR_PRESENT_MASK`` and friends).
    """

    P = PFEC.P.bit
    W = PFEC.W.bit
    U = PFEC.U.bit
    RSVD = PFEC.RSVD.bit
    F = PFEC.F.bit
    PK = PFEC.PK.bit
    IMPLICIT = PFEC.IMPLICIT.bit


class ACC(IntFlag):
    """KVM's summary of an entry's rights (``ACC_*_MASK``).

    The values are chosen so that ``EXEC`` is the P bit (which is set in any
    entry the walker judges), and ``WRITE`` and ``USER`` are the R/W and U/S
    bits: the x86 rights are then ``gpte & 7`` with EXEC flipped by NX.

    KVM
    ---
    ``arch/x86/kvm/mmu/spte.h`` (``ACC_EXEC_MASK``, ``ACC_WRITE_MASK``,
    ``ACC_USER_MASK``, ``ACC_ALL``).
    """

    EXEC = 1
    WRITE = 2
    USER = 4
    ALL = 7


# The ACC trick relies on these coincidences; check them as spte.h does.
assert ACC.EXEC == PTE64.P.bit and ACC.WRITE == PTE64.W.bit and ACC.USER == PTE64.U.bit
assert PTE32.P.bit == PTE64.P.bit and PTE32.W.bit == PTE64.W.bit and PTE32.U.bit == PTE64.U.bit

# ---------------------------------------------------------------------------
# The three entry formats of paging_tmpl.h.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryFormat:
    """What differs between the entry formats one walker serves.

    This is the ``#if PTTYPE == ...`` block at the top of ``paging_tmpl.h``:
    everything else about a walk is the same code.

    Parameters
    ----------
    name : str
        ``"32"``, ``"64"`` or ``"ept"`` (KVM's ``PTTYPE``).
    entry_bytes : int
        Size of one entry (4 or 8).
    level_bits : int
        Address bits translated per level (10 or 9).
    present_mask : int
        An entry is present when any of these bits is set.
    accessed_mask, dirty_mask : int
        The A and D bits.
    nx_mask : int
        The execute-disable bit, inverted before rights are ANDed (0 when the
        format has none).
    base_addr_mask : int
        Bits of an entry (or of CR3/EPTP) that address the next table.
    max_addr_bit : int
        Highest physical-address bit an entry can carry (31 or 51).
    is_ept : bool
        Rights come from R/W/X bits (R standing in for ACC_USER).

    KVM
    ---
    ``arch/x86/kvm/mmu/paging_tmpl.h`` (``pt_element_t``, ``PT_LEVEL_BITS``,
    ``PT_GUEST_ACCESSED_SHIFT``, ``PT_GUEST_DIRTY_SHIFT``,
    ``PT_BASE_ADDR_MASK``, ``FNAME(is_present_gpte)``, ``FNAME(gpte_access)``).
    """

    name: str
    entry_bytes: int
    level_bits: int
    present_mask: int
    accessed_mask: int
    dirty_mask: int
    nx_mask: int
    base_addr_mask: int
    max_addr_bit: int
    is_ept: bool = False

    def __post_init__(self) -> None:
        check_fields(self, name=str, entry_bytes=int, level_bits=int, present_mask=int,
                     accessed_mask=int, dirty_mask=int, nx_mask=int, base_addr_mask=int,
                     max_addr_bit=int, is_ept=bool)
        check_choice("EntryFormat.entry_bytes", self.entry_bytes, (4, 8))
        check_range("EntryFormat.level_bits", self.level_bits, 1, 64)
        check_range("EntryFormat.max_addr_bit", self.max_addr_bit, 1, 65)
        for mask in ("present_mask", "accessed_mask", "dirty_mask", "nx_mask", "base_addr_mask"):
            check_range(f"EntryFormat.{mask}", getattr(self, mask), 0, 1 << 64)
        # Derived once, for index(): the lowest address bit each level
        # translates (by level, 1-5; entry 0 unused) and the index width.
        object.__setattr__(
            self, "shifts", (0,) + tuple(12 + self.level_bits * (lv - 1) for lv in range(1, 6))
        )
        object.__setattr__(self, "index_mask", (1 << self.level_bits) - 1)

    def level_shift(self, level: int) -> int:
        """Lowest address bit translated at ``level`` (12 for level 1)."""
        level = check_range("level", level, 1, 6)
        return self.shifts[level]

    def index(self, addr: int, level: int) -> int:
        """Index of the entry for ``addr`` in a level-``level`` table.

        The ``level_bits`` bits of ``addr`` from :meth:`level_shift` up. This
        is the one place the index is written; the unrolled fast paths
        (:mod:`refimpl.fast`) use the ``shifts`` and ``index_mask`` it reads.

        KVM
        ---
        ``arch/x86/kvm/mmu/paging_tmpl.h``: ``PT_INDEX(addr, lvl)``, defined
        there through ``__PT_INDEX`` with the format's ``PT_LEVEL_BITS``.
        """
        if type(addr) is not int or type(level) is not int or not (
            0 <= addr < 1 << 64 and 1 <= level <= 5
        ):
            addr = check_range("addr", addr, 0, 1 << 64)
            level = check_range("level", level, 1, 6)
        return (addr >> self.shifts[level]) & self.index_mask

    def leaf_addr_mask(self, level: int) -> int:
        """Bits of a level-``level`` leaf that give the page's address."""
        if type(level) is not int or not 1 <= level <= 5:
            level = check_range("level", level, 1, 6)
        return ((1 << (self.max_addr_bit + 1)) - 1) & ~self.offset_mask(level)

    def offset_mask(self, level: int) -> int:
        """Bits of the address that pass through a level-``level`` leaf."""
        if type(level) is not int or not 1 <= level <= 5:
            level = check_range("level", level, 1, 6)
        return (1 << self.shifts[level]) - 1

    def gpte_access(self, pte_bits: int) -> int:
        """The ACC rights of an entry (or of entries ANDed together).

        ``pte_bits`` must already have its NX bit in natural form (set means
        no-execute); for x86 the exec right is then P XOR NX. For EPT, R
        becomes ACC.USER, W ACC.WRITE and X ACC.EXEC.

        Raises
        ------
        TypeError, ValueError
            ``pte_bits`` not an int in ``[0, 2**64)``.
        """
        if type(pte_bits) is not int or not 0 <= pte_bits < 1 << 64:
            pte_bits = check_range("pte_bits", pte_bits, 0, 1 << 64)
        if self.is_ept:
            return (
                (_ACC_WRITE if pte_bits & _EPT_W else 0)
                | (_ACC_EXEC if pte_bits & _EPT_X else 0)
                | (_ACC_USER if pte_bits & _EPT_R else 0)
            )
        acc = pte_bits & _X86_ACC_BITS
        if pte_bits & self.nx_mask:
            acc ^= _ACC_EXEC
        return acc

    def gpte_pkey(self, pte: int) -> int:
        """Protection key of a leaf (only the 64-bit format has one)."""
        pte = check_int("pte", pte)
        return (pte >> _PKEY_SHIFT) & 0xF if self.name == "64" else 0


# Plain-int copies for gpte_access/gpte_pkey, which run on every walk.
_ACC_EXEC, _ACC_WRITE, _ACC_USER = int(ACC.EXEC), int(ACC.WRITE), int(ACC.USER)
_EPT_R, _EPT_W, _EPT_X = EPTE.R.bit, EPTE.W.bit, EPTE.X.bit
_X86_ACC_BITS = PTE64.W.bit | PTE64.U.bit | PTE64.P.bit
_PKEY_SHIFT = PTE64.PKEY.lo


#: 32-bit paging: 4-byte entries, two levels of 10 bits, no NX.
PTTYPE32 = EntryFormat(
    name="32",
    entry_bytes=4,
    level_bits=10,
    present_mask=PTE32.P.bit,
    accessed_mask=PTE32.A.bit,
    dirty_mask=PTE32.D.bit,
    nx_mask=0,
    base_addr_mask=PTE32.ADDR.mask,
    max_addr_bit=31,
)

#: PAE, 4-level and 5-level paging (and NPT): 8-byte entries, 9 bits a level.
PTTYPE64 = EntryFormat(
    name="64",
    entry_bytes=8,
    level_bits=9,
    present_mask=PTE64.P.bit,
    accessed_mask=PTE64.A.bit,
    dirty_mask=PTE64.D.bit,
    nx_mask=PTE64.XD.bit,
    base_addr_mask=PTE64.ADDR.mask,
    max_addr_bit=51,
)

#: EPT: 8-byte entries, present if any of R/W/X, A and D at bits 8 and 9.
PTTYPE_EPT = EntryFormat(
    name="ept",
    entry_bytes=8,
    level_bits=9,
    present_mask=EPTE.R.bit | EPTE.W.bit | EPTE.X.bit,
    accessed_mask=EPTE.A.bit,
    dirty_mask=EPTE.D.bit,
    nx_mask=0,
    base_addr_mask=EPTE.ADDR.mask,
    max_addr_bit=51,
    is_ept=True,
)

#: PSE-36: bits 16:13 of a 4 MiB PDE move up to physical-address bits 35:32.
PSE36_SHIFT = 32 - PDE32_4M.ADDR_HI.lo


def pse36_addr(pde: int) -> int:
    """Physical-address bits 35:32 that a 4 MiB PDE supplies (PSE-36).

    KVM
    ---
    ``arch/x86/kvm/mmu/paging_tmpl.h`` (``pse36_gfn_delta``, compiled for
    ``PTTYPE == 32`` only, and applied when ``is_cpuid_PSE36()``); KVM
    treats PSE-36 as always supported.

    Raises
    ------
    TypeError, ValueError
        ``pde`` not an int in ``[0, 2**32)``.
    """
    pde = check_range("pde", pde, 0, 1 << 32)
    return (pde & PDE32_4M.ADDR_HI.mask) << PSE36_SHIFT
