"""The guest CPU state a walk depends on, and the paging mode it implies.

:class:`CpuState` holds the registers (CR0, CR3, CR4, EFER, RFLAGS, PKRU) and
two CPUID facts (MAXPHYADDR, 1 GiB pages). It is validated once, when built;
everything else, such as :attr:`CpuState.mode`, is derived from it.

Glossary
--------
paging mode
    Which page-table format the CPU walks: none (CR0.PG=0), 32-bit
    (two levels of 4-byte entries), PAE (three levels, four PDPTEs loaded at
    CR3), four-level or five-level (long mode, CR4.LA57).
root level
    The level of the table CR3 points to: 2, 3, 4 or 5 (KVM's
    ``cpu_role.base.level``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from refimpl.guest.formats import CR0, CR4, EFER, RFLAGS
from refimpl.guest.memory import check_int
from refimpl.guest.rsvd import MAX_MAXPHYADDR, MIN_MAXPHYADDR


class PagingMode(Enum):
    """The guest's paging mode; the value is the root level (0: no paging).

    KVM
    ---
    ``arch/x86/kvm/mmu/mmu.c`` (``kvm_calc_cpu_role``: ``role.base.level``
    is 5/4 with LMA, 3 with PAE, 2 otherwise; ``direct`` without PG).
    """

    NONE = 0
    BITS32 = 2
    PAE = 3
    LEVEL4 = 4
    LEVEL5 = 5

    @property
    def root_level(self) -> int:
        """Level of the table CR3 points to (0 without paging)."""
        return self.value

    @property
    def long_mode(self) -> bool:
        """Whether this is a long-mode (four- or five-level) mode."""
        return self.value >= 4


_REGS64 = ("cr0", "cr3", "cr4", "efer", "rflags")

# The bits read on every translation, as plain ints (a Layout lookup is a scan).
_CR0_PE, _CR0_WP, _CR0_PG = CR0.PE.bit, CR0.WP.bit, CR0.PG.bit
_CR4_PSE, _CR4_PAE, _CR4_LA57 = CR4.PSE.bit, CR4.PAE.bit, CR4.LA57.bit
_CR4_SMEP, _CR4_SMAP, _CR4_PKE = CR4.SMEP.bit, CR4.SMAP.bit, CR4.PKE.bit
_EFER_LMA, _EFER_NXE = EFER.LMA.bit, EFER.NXE.bit
_RFLAGS_AC = RFLAGS.AC.bit


@dataclass(frozen=True)
class CpuState:
    """The guest registers and CPUID facts that decide a translation.

    Parameters
    ----------
    cr0, cr3, cr4, efer, rflags : int
        The registers, with architectural bit positions (see
        :mod:`refimpl.guest.formats`). Each in ``[0, 2**64)``.
    pkru : int
        The PKRU register, in ``[0, 2**32)``.
    maxphyaddr : int
        The guest's MAXPHYADDR, in ``[32, 52]``.
    gbpages : bool
        Whether the guest has 1 GiB pages (CPUID PDPE1GB).

    Raises
    ------
    TypeError
        If a register is not an int (``bool`` is refused), or ``gbpages`` is
        neither a bool nor 0/1.
    ValueError
        For a value out of range or a state no CPU can be in: CR0.PG=1 with
        CR0.PE=0 (names ``cr0``); EFER.LMA=1 without CR0.PG or CR4.PAE
        (names ``efer``).

    KVM
    ---
    The inputs of ``kvm_calc_cpu_role`` in ``arch/x86/kvm/mmu/mmu.c``;
    ``kvm_set_cr0``/``kvm_is_valid_cr4`` in ``arch/x86/kvm/x86.c`` refuse the
    impossible combinations.
    """

    cr0: int = 0
    cr3: int = 0
    cr4: int = 0
    efer: int = 0
    rflags: int = 0
    pkru: int = 0
    maxphyaddr: int = 52
    gbpages: bool = True

    def __post_init__(self) -> None:
        for name in _REGS64:
            v = check_int(name, getattr(self, name))
            if not 0 <= v < 1 << 64:
                raise ValueError(f"{name} must be in [0, 2**64), got {v:#x}")
            object.__setattr__(self, name, v)
        pkru = check_int("pkru", self.pkru)
        if not 0 <= pkru < 1 << 32:
            raise ValueError(f"pkru must be in [0, 2**32), got {pkru:#x}")
        object.__setattr__(self, "pkru", pkru)
        m = check_int("maxphyaddr", self.maxphyaddr)
        if not MIN_MAXPHYADDR <= m <= MAX_MAXPHYADDR:
            raise ValueError(
                f"maxphyaddr must be in [{MIN_MAXPHYADDR}, {MAX_MAXPHYADDR}], got {m}"
            )
        object.__setattr__(self, "maxphyaddr", m)
        gb = self.gbpages
        if not isinstance(gb, bool):
            if isinstance(gb, int) and gb in (0, 1):
                gb = bool(gb)
            else:
                raise TypeError(f"gbpages must be a bool, got {gb!r}")
        object.__setattr__(self, "gbpages", gb)

        if self.pg and not self.cr0 & _CR0_PE:
            raise ValueError("cr0: CR0.PG=1 requires CR0.PE=1 (paging needs protected mode)")
        if self.lma and not (self.pg and self.pae):
            raise ValueError("efer: EFER.LMA=1 requires CR0.PG=1 and CR4.PAE=1")
        # Derived once: the state is frozen.
        object.__setattr__(self, "_mode", self._compute_mode())

    # -- single bits, named as KVM's is_*() helpers -----------------------
    @property
    def pg(self) -> bool:
        """CR0.PG."""
        return bool(self.cr0 & _CR0_PG)

    @property
    def wp(self) -> bool:
        """CR0.WP."""
        return bool(self.cr0 & _CR0_WP)

    @property
    def pse(self) -> bool:
        """CR4.PSE."""
        return bool(self.cr4 & _CR4_PSE)

    @property
    def pae(self) -> bool:
        """CR4.PAE."""
        return bool(self.cr4 & _CR4_PAE)

    @property
    def la57(self) -> bool:
        """CR4.LA57."""
        return bool(self.cr4 & _CR4_LA57)

    @property
    def smep(self) -> bool:
        """CR4.SMEP."""
        return bool(self.cr4 & _CR4_SMEP)

    @property
    def smap(self) -> bool:
        """CR4.SMAP."""
        return bool(self.cr4 & _CR4_SMAP)

    @property
    def pke(self) -> bool:
        """CR4.PKE."""
        return bool(self.cr4 & _CR4_PKE)

    @property
    def nx(self) -> bool:
        """EFER.NXE."""
        return bool(self.efer & _EFER_NXE)

    @property
    def lma(self) -> bool:
        """EFER.LMA."""
        return bool(self.efer & _EFER_LMA)

    @property
    def ac(self) -> bool:
        """RFLAGS.AC."""
        return bool(self.rflags & _RFLAGS_AC)

    @property
    def mode(self) -> PagingMode:
        """The paging mode these registers select."""
        return self._mode  # type: ignore[attr-defined]

    def _compute_mode(self) -> PagingMode:
        if not self.pg:
            return PagingMode.NONE
        if self.lma:
            return PagingMode.LEVEL5 if self.la57 else PagingMode.LEVEL4
        if self.pae:
            return PagingMode.PAE
        return PagingMode.BITS32

    @property
    def has_pferr_fetch(self) -> bool:
        """Whether KVM reports F in fetch-fault error codes (EFER.NXE or CR4.SMEP)."""
        return self.nx or self.smep

    @property
    def pke_active(self) -> bool:
        """Protection keys in force: CR4.PKE in long mode (KVM's ``ext.cr4_pke``)."""
        return self.pke and self.lma

    @property
    def linear_address_bits(self) -> int:
        """Width of a linear address: 32, 48 or 57."""
        mode = self.mode
        if mode is PagingMode.LEVEL5:
            return 57
        if mode is PagingMode.LEVEL4:
            return 48
        return 32
