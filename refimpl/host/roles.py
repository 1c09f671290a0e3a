"""MMU roles: the page role, the extended role and the CPU role.

KVM describes "what kind of page tables" with two 32-bit words and one
64-bit pair, all defined in ``arch/x86/include/asm/kvm_host.h``:

Glossary
--------
page role (``union kvm_mmu_page_role``)
    Stored in every shadow page (``kvm_mmu_page.role``). Two shadow pages for
    the same gfn can be shared only if their page roles are equal, so the
    word holds exactly the guest state that changes the *contents* of a
    shadow page. :data:`PAGE_ROLE` is its bit layout.
extended role (``union kvm_mmu_extended_role``)
    Guest state that changes software walks (permission checks, reserved
    bits) but not the validity of a shadow page, e.g. CR4.PKE.
    :data:`EXT_ROLE` is its bit layout.
CPU role (``union kvm_cpu_role``)
    ``{base: page role, ext: extended role}`` in one u64: the guest's paging
    mode as a walker sees it. ``kvm_mmu.cpu_role``. See :class:`CpuRole`.
root role
    A page role: the format of the tables KVM itself builds (TDP tables or
    shadow tables). ``kvm_mmu.root_role``. Since the 2022 "MMU role
    refactoring" it is computed separately from the CPU role.

The functions here restate ``kvm_calc_cpu_role``,
``kvm_calc_tdp_mmu_root_page_role``, ``kvm_init_shadow_mmu``,
``kvm_calc_shadow_ept_root_page_role`` and ``kvm_init_shadow_npt_mmu`` (all in
``arch/x86/kvm/mmu/mmu.c``, kvm-x86/linux at 04f2bbf1, "classic" layout, before
the 2026 split).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from refimpl.bits import Field, Layout
from refimpl.errors import check_int
from refimpl.guest.formats import ACC, CR0, CR4, EFER

__all__ = [
    "PAGE_ROLE",
    "EXT_ROLE",
    "ACC_EXEC_MASK",
    "ACC_WRITE_MASK",
    "ACC_USER_MASK",
    "ACC_ALL",
    "PT32_ROOT_LEVEL",
    "PT32E_ROOT_LEVEL",
    "PT64_ROOT_4LEVEL",
    "PT64_ROOT_5LEVEL",
    "CR0_PG",
    "CR0_WP",
    "CR4_PSE",
    "CR4_PAE",
    "CR4_LA57",
    "CR4_SMEP",
    "CR4_SMAP",
    "CR4_PKE",
    "EFER_LME",
    "EFER_LMA",
    "EFER_NX",
    "PageRole",
    "ExtRole",
    "CpuRole",
    "calc_cpu_role",
    "calc_tdp_root_role",
    "calc_shadow_root_role",
    "calc_shadow_ept_role",
    "calc_shadow_npt_role",
]

# ---------------------------------------------------------------------------
# Layouts: bit positions exactly as the C bitfields pack them (GCC on x86
# allocates bitfields from bit 0 upwards).
# ---------------------------------------------------------------------------

PAGE_ROLE = Layout(
    "kvm_mmu_page_role",
    32,
    (
        Field("level", 0, 3, "level of the table this page is (1 = 4 KiB leaf table)"),
        Field("has_4_byte_gpte", 4, 4, "the shadowed guest table has 4-byte entries (32-bit paging)"),
        Field("quadrant", 5, 6, "which part of a 32-bit guest table this PAE-format page shadows"),
        Field("direct", 7, 7, "maps a linear GPA range, not a guest table (TDP, PG=0, split huge page)"),
        Field("access", 8, 10, "ACC_* rights (U, W, X) inherited from the parent entries"),
        Field("invalid", 11, 11, "page is obsolete and being zapped"),
        Field("efer_nx", 12, 12, "built with EFER.NX semantics (bit 63 is NX, not reserved)"),
        Field("cr0_wp", 13, 13, "built with CR0.WP=1"),
        Field("smep_andnot_wp", 14, 14, "CR4.SMEP=1 and CR0.WP=0"),
        Field("smap_andnot_wp", 15, 15, "CR4.SMAP=1 and CR0.WP=0"),
        Field("ad_disabled", 16, 16, "accessed/dirty bits not used (EPT without A/D)"),
        Field("guest_mode", 17, 17, "built while the vCPU runs L2"),
        Field("passthrough", 18, 18, "extra top level over a 4-level NPT on a 5-level host"),
        Field("smm", 24, 31, "SMM address space; a whole byte so the memslot index is a shift"),
    ),
)
"""Bit layout of ``union kvm_mmu_page_role`` (u32); bits 23:19 are unused."""

EXT_ROLE = Layout(
    "kvm_mmu_extended_role",
    32,
    (
        Field("valid", 0, 0, "set once computed, so an all-zero role is never mistaken for one"),
        Field("execonly", 1, 1, "nested EPT allows execute-only entries"),
        Field("cr4_pse", 2, 2, "CR4.PSE (4 MiB pages in 32-bit paging)"),
        Field("cr4_pke", 3, 3, "CR4.PKE, only while EFER.LMA=1"),
        Field("cr4_smap", 4, 4, "CR4.SMAP"),
        Field("cr4_smep", 5, 5, "CR4.SMEP"),
        Field("cr4_la57", 6, 6, "CR4.LA57, only while EFER.LMA=1"),
        Field("efer_lma", 7, 7, "EFER.LMA (long mode active)"),
    ),
)
"""Bit layout of ``union kvm_mmu_extended_role`` (u32); bits 31:8 are unused."""

# ACC_* rights (arch/x86/kvm/mmu/spte.h): the "access" field's bits. Derived
# from refimpl.guest.formats.ACC, their one definition, as plain ints (the
# fault paths AND them with role.access thousands of times).
ACC_EXEC_MASK = int(ACC.EXEC)
ACC_WRITE_MASK = int(ACC.WRITE)
ACC_USER_MASK = int(ACC.USER)
ACC_ALL = ACC_EXEC_MASK | ACC_WRITE_MASK | ACC_USER_MASK

# Root levels (arch/x86/kvm/mmu.h).
PT32_ROOT_LEVEL = 2
PT32E_ROOT_LEVEL = 3
PT64_ROOT_4LEVEL = 4
PT64_ROOT_5LEVEL = 5

# Architectural control-register bits that the roles read, from the register
# layouts of refimpl.guest.formats (one definition per bit).
CR0_PG = CR0.PG.bit
CR0_WP = CR0.WP.bit
CR4_PSE = CR4.PSE.bit
CR4_PAE = CR4.PAE.bit
CR4_LA57 = CR4.LA57.bit
CR4_SMEP = CR4.SMEP.bit
CR4_SMAP = CR4.SMAP.bit
CR4_PKE = CR4.PKE.bit
EFER_LME = EFER.LME.bit
EFER_LMA = EFER.LMA.bit
EFER_NX = EFER.NXE.bit

# Bits the SDM/APM define in each register; anything else is reserved and a
# real CPU (and KVM's kvm_is_valid_cr0/cr4, kvm_valid_efer) would reject it.
_CR0_KNOWN = 0xE005003F  # PE MP EM TS ET NE | WP | AM | NW CD PG
_CR4_KNOWN = 0x03FF7FFF  # VME..LA57, VMXE, SMXE, FSGSBASE..UINTR (bit 15 reserved)
_EFER_KNOWN = 0xFD01     # SCE | LME | LMA NXE SVME LMSLE FFXSR TCE


# ---------------------------------------------------------------------------
# Role values
# ---------------------------------------------------------------------------


def _check_fields(obj: object, layout: Layout) -> None:
    for f in fields(obj):  # type: ignore[arg-type]
        v = getattr(obj, f.name)
        if isinstance(v, bool):
            v = int(v)
            object.__setattr__(obj, f.name, v)
        if not isinstance(v, int):
            raise TypeError(f"{type(obj).__name__}.{f.name} must be an int, got {v!r}")
        width = layout[f.name].width
        if not 0 <= v < (1 << width):
            raise ValueError(
                f"{type(obj).__name__}.{f.name}={v} does not fit in {width} bit(s)"
            )


@dataclass(frozen=True)
class PageRole:
    """One ``union kvm_mmu_page_role``: every field of :data:`PAGE_ROLE`.

    Booleans are accepted and stored as 0/1. ``word`` is the u32 the C union
    would hold; ``PageRole.from_word`` decodes one.

    KVM
    ---
    ``union kvm_mmu_page_role`` in ``arch/x86/include/asm/kvm_host.h``.
    """

    level: int = 0
    has_4_byte_gpte: int = 0
    quadrant: int = 0
    direct: int = 0
    access: int = 0
    invalid: int = 0
    efer_nx: int = 0
    cr0_wp: int = 0
    smep_andnot_wp: int = 0
    smap_andnot_wp: int = 0
    ad_disabled: int = 0
    guest_mode: int = 0
    passthrough: int = 0
    smm: int = 0

    def __post_init__(self) -> None:
        _check_fields(self, PAGE_ROLE)

    @property
    def word(self) -> int:
        """The role as the u32 ``role.word``."""
        return PAGE_ROLE.encode(**{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_word(cls, word: int) -> "PageRole":
        """Decode a u32 ``role.word``; bits 23:19 must be zero."""
        word = check_int("word", word)
        if not isinstance(word, int) or not 0 <= word < 1 << 32:
            raise ValueError(f"page role word must be a u32, got {word!r}")
        if word & ~PAGE_ROLE.used_mask:
            raise ValueError(f"page role word {word:#x} sets unused bits")
        return cls(**PAGE_ROLE.decode(word))

    def replace(self, **changes: int) -> "PageRole":
        """A copy with some fields changed (the C idiom ``role.x = ...``)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class ExtRole:
    """One ``union kvm_mmu_extended_role``: every field of :data:`EXT_ROLE`.

    KVM
    ---
    ``union kvm_mmu_extended_role`` in ``arch/x86/include/asm/kvm_host.h``.
    """

    valid: int = 0
    execonly: int = 0
    cr4_pse: int = 0
    cr4_pke: int = 0
    cr4_smap: int = 0
    cr4_smep: int = 0
    cr4_la57: int = 0
    efer_lma: int = 0

    def __post_init__(self) -> None:
        _check_fields(self, EXT_ROLE)

    @property
    def word(self) -> int:
        """The role as the u32 ``ext.word``."""
        return EXT_ROLE.encode(**{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_word(cls, word: int) -> "ExtRole":
        """Decode a u32 ``ext.word``; bits 31:8 must be zero."""
        word = check_int("word", word)
        if not isinstance(word, int) or not 0 <= word < 1 << 32:
            raise ValueError(f"extended role word must be a u32, got {word!r}")
        if word & ~EXT_ROLE.used_mask:
            raise ValueError(f"extended role word {word:#x} sets unused bits")
        return cls(**EXT_ROLE.decode(word))


@dataclass(frozen=True)
class CpuRole:
    """``union kvm_cpu_role``: the guest paging mode, base page role + ext.

    KVM
    ---
    ``union kvm_cpu_role`` in ``arch/x86/include/asm/kvm_host.h``; ``base`` is
    the low 32 bits of ``as_u64`` and ``ext`` the high 32 bits.
    """

    base: PageRole = PageRole()
    ext: ExtRole = ExtRole()

    def __post_init__(self) -> None:
        if not isinstance(self.base, PageRole):
            raise TypeError(f"CpuRole.base must be a PageRole, got {self.base!r}")
        if not isinstance(self.ext, ExtRole):
            raise TypeError(f"CpuRole.ext must be an ExtRole, got {self.ext!r}")

    @property
    def as_u64(self) -> int:
        """The role as the u64 ``cpu_role.as_u64``."""
        return self.base.word | (self.ext.word << 32)

    @classmethod
    def from_u64(cls, value: int) -> "CpuRole":
        """Decode a u64 ``cpu_role.as_u64``."""
        value = check_int("value", value)
        if not isinstance(value, int) or not 0 <= value < 1 << 64:
            raise ValueError(f"cpu role must be a u64, got {value!r}")
        return cls(PageRole.from_word(value & 0xFFFFFFFF), ExtRole.from_word(value >> 32))

    @property
    def paging(self) -> bool:
        """CR0.PG was set (``is_cr0_pg``): a direct CPU role means no paging."""
        return not self.base.direct


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------


def _reg(name: str, value: object, known: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if not 0 <= value < 1 << 64:
        raise ValueError(f"{name}={value:#x} is not a 64-bit register value")
    if value & ~known:
        raise ValueError(f"{name}={value:#x} sets reserved bits {value & ~known:#x}")
    return value


def _flag(name: str, value: object) -> int:
    if isinstance(value, bool) or value in (0, 1):
        return int(value)  # type: ignore[arg-type]
    raise TypeError(f"{name} must be a bool, got {value!r}")


def _level(name: str, value: object, allowed: tuple[int, ...]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


# ---------------------------------------------------------------------------
# Role computations
# ---------------------------------------------------------------------------


def calc_cpu_role(cr0: int, cr4: int, efer: int, smm: bool = False,
                  guest_mode: bool = False) -> CpuRole:
    """The CPU role for the given control registers.

    Parameters
    ----------
    cr0, cr4, efer : int
        Register values with architectural bit positions. Only CR0.{PG,WP},
        CR4.{PSE,PAE,LA57,SMEP,SMAP,PKE} and EFER.{LMA,NX} matter; other
        defined bits are ignored, reserved bits raise ``ValueError``.
    smm : bool
        The vCPU is in System Management Mode (``is_smm``).
    guest_mode : bool
        The vCPU runs L2 (``is_guest_mode``).

    Returns
    -------
    CpuRole
        With CR0.PG=0: ``direct=1``, ``access=ACC_ALL``, level 0 and only
        ``ext.valid`` set. Otherwise level 2 (32-bit), 3 (PAE), 4 or 5
        (long mode, LA57), ``has_4_byte_gpte = !CR4.PAE``, the WP/NX/SMEP/SMAP
        bits, and the extended role; PKE and LA57 count only in long mode.

    Raises
    ------
    ValueError
        Reserved register bits, or EFER.LMA=1 without CR0.PG and CR4.PAE
        (long mode cannot be active then).

    KVM
    ---
    ``kvm_calc_cpu_role`` in ``arch/x86/kvm/mmu/mmu.c``. KVM reads the
    registers through ``struct kvm_mmu_role_regs``; here they are arguments.
    """
    cr0 = check_int("cr0", cr0)
    cr4 = check_int("cr4", cr4)
    efer = check_int("efer", efer)
    cr0 = _reg("cr0", cr0, _CR0_KNOWN)
    cr4 = _reg("cr4", cr4, _CR4_KNOWN)
    efer = _reg("efer", efer, _EFER_KNOWN)
    smm = _flag("smm", smm)
    guest_mode = _flag("guest_mode", guest_mode)
    lma = bool(efer & EFER_LMA)
    if lma and not (cr0 & CR0_PG and cr4 & CR4_PAE):
        raise ValueError("efer: EFER.LMA=1 needs CR0.PG=1 and CR4.PAE=1")

    ext = ExtRole(valid=1)
    if not cr0 & CR0_PG:
        return CpuRole(PageRole(access=ACC_ALL, smm=smm, guest_mode=guest_mode, direct=1), ext)

    wp = bool(cr0 & CR0_WP)
    smep, smap = bool(cr4 & CR4_SMEP), bool(cr4 & CR4_SMAP)
    if lma:
        level = PT64_ROOT_5LEVEL if cr4 & CR4_LA57 else PT64_ROOT_4LEVEL
    elif cr4 & CR4_PAE:
        level = PT32E_ROOT_LEVEL
    else:
        level = PT32_ROOT_LEVEL
    base = PageRole(
        level=level,
        has_4_byte_gpte=not cr4 & CR4_PAE,
        access=ACC_ALL,
        efer_nx=bool(efer & EFER_NX),
        cr0_wp=wp,
        smep_andnot_wp=smep and not wp,
        smap_andnot_wp=smap and not wp,
        guest_mode=guest_mode,
        smm=smm,
    )
    ext = ExtRole(
        valid=1,
        cr4_pse=bool(cr4 & CR4_PSE),
        cr4_pke=lma and bool(cr4 & CR4_PKE),
        cr4_smap=smap,
        cr4_smep=smep,
        cr4_la57=lma and bool(cr4 & CR4_LA57),
        efer_lma=lma,
    )
    return CpuRole(base, ext)


def calc_tdp_root_role(cpu_role: CpuRole, tdp_level: int = PT64_ROOT_4LEVEL,
                       ad_enabled: bool = True) -> PageRole:
    """The root role of KVM's own TDP (EPT/NPT) tables.

    Parameters
    ----------
    cpu_role : CpuRole
        The guest's CPU role; only ``smm`` and ``guest_mode`` are copied.
    tdp_level : int
        4 or 5 (``kvm_mmu_get_tdp_level``).
    ad_enabled : bool
        Hardware A/D bits are used (``kvm_ad_enabled``).

    Returns
    -------
    PageRole
        ``direct=1``, ``access=ACC_ALL``, ``cr0_wp=1``, ``efer_nx=1``,
        ``level=tdp_level``; the guest's CR0/CR4/EFER play no part.

    KVM
    ---
    ``kvm_calc_tdp_mmu_root_page_role`` in ``arch/x86/kvm/mmu/mmu.c``.
    """
    tdp_level = check_int("tdp_level", tdp_level)
    if not isinstance(cpu_role, CpuRole):
        raise TypeError(f"cpu_role must be a CpuRole, got {cpu_role!r}")
    tdp_level = _level("tdp_level", tdp_level, (PT64_ROOT_4LEVEL, PT64_ROOT_5LEVEL))
    return PageRole(
        level=tdp_level,
        direct=1,
        access=ACC_ALL,
        cr0_wp=1,
        efer_nx=1,
        ad_disabled=not _flag("ad_enabled", ad_enabled),
        smm=cpu_role.base.smm,
        guest_mode=cpu_role.base.guest_mode,
    )


def calc_shadow_root_role(cpu_role: CpuRole) -> PageRole:
    """The root role of shadow page tables for a guest (host without TDP).

    Returns
    -------
    PageRole
        ``cpu_role.base`` with the level raised to at least 3 (KVM shadows
        32-bit and PAE guests with PAE-format tables) and ``efer_nx=1`` (KVM
        always runs shadowed guests with EFER.NX on, for the NX hugepage
        mitigation and for CR0.WP=0/SMEP emulation).

    KVM
    ---
    ``kvm_init_shadow_mmu`` in ``arch/x86/kvm/mmu/mmu.c``.
    """
    if not isinstance(cpu_role, CpuRole):
        raise TypeError(f"cpu_role must be a CpuRole, got {cpu_role!r}")
    return cpu_role.base.replace(level=max(cpu_role.base.level, PT32E_ROOT_LEVEL), efer_nx=1)


def calc_shadow_ept_role(level: int = PT64_ROOT_4LEVEL, accessed_dirty: bool = True,
                         execonly: bool = False, smm: bool = False) -> CpuRole:
    """The CPU role of L1's EPT tables, shadowed for L2 (nested EPT).

    Parameters
    ----------
    level : int
        EPTP12 walk length, 4 or 5 (EPTP bits 5:3 plus one).
    accessed_dirty : bool
        EPTP12 bit 6: L1 enabled EPT A/D bits.
    execonly : bool
        Execute-only EPT entries are offered to L1.
    smm : bool
        Must be false: KVM has no SMM transfer monitor, so L2 never runs in
        SMM (KVM warns if it does).

    Returns
    -------
    CpuRole
        ``guest_mode=1``, ``direct=0``, ``has_4_byte_gpte=0``,
        ``ad_disabled = !accessed_dirty``; ``ext.execonly``. The root role is
        the same word as ``base``: KVM's shadow EPT has L1's EPT format.

    KVM
    ---
    ``kvm_calc_shadow_ept_root_page_role`` (called by
    ``kvm_init_shadow_ept_mmu``) in ``arch/x86/kvm/mmu/mmu.c``.
    """
    level = check_int("level", level)
    level = _level("level", level, (PT64_ROOT_4LEVEL, PT64_ROOT_5LEVEL))
    if _flag("smm", smm):
        raise ValueError("smm: nested EPT is never used in SMM")
    base = PageRole(level=level, access=ACC_ALL, guest_mode=1,
                    ad_disabled=not _flag("accessed_dirty", accessed_dirty))
    return CpuRole(base, ExtRole(valid=1, execonly=_flag("execonly", execonly)))


def calc_shadow_npt_role(cr4: int, efer: int, tdp_level: int = PT64_ROOT_4LEVEL,
                         smm: bool = False) -> tuple[CpuRole, PageRole]:
    """CPU role and root role for shadowing L1's NPT tables (nested NPT).

    Parameters
    ----------
    cr4, efer : int
        L1's CR4 and EFER (from vmcb01): the NPT format follows L1's paging
        mode. CR4.PKE is dropped; CR0 is taken as PG alone, so CR0.WP=0.
    tdp_level : int
        The host's NPT level, 4 or 5.
    smm : bool
        The vCPU's SMM state, copied as in ``kvm_calc_cpu_role``.

    Returns
    -------
    (CpuRole, PageRole)
        The CPU role has ``guest_mode=1`` (L2 is being entered). The root
        role is its base with ``level = tdp_level`` and ``passthrough=1``
        when a 4-level L1 NPT is shadowed by 5-level tables.

    KVM
    ---
    ``kvm_init_shadow_npt_mmu`` in ``arch/x86/kvm/mmu/mmu.c``, called by
    ``nested_svm_init_mmu_context`` in ``arch/x86/kvm/svm/nested.c``.
    """
    cr4 = check_int("cr4", cr4)
    efer = check_int("efer", efer)
    tdp_level = check_int("tdp_level", tdp_level)
    tdp_level = _level("tdp_level", tdp_level, (PT64_ROOT_4LEVEL, PT64_ROOT_5LEVEL))
    cr4 = _reg("cr4", cr4, _CR4_KNOWN)
    cpu_role = calc_cpu_role(CR0_PG, cr4 & ~CR4_PKE, efer, smm=smm, guest_mode=True)
    root = cpu_role.base.replace(level=tdp_level)
    if tdp_level == PT64_ROOT_5LEVEL and cpu_role.base.level == PT64_ROOT_4LEVEL:
        root = root.replace(passthrough=1)
    return cpu_role, root


# The dataclasses and the layouts must name the same fields (one source).
assert tuple(f.name for f in fields(PageRole)) == PAGE_ROLE.names
assert tuple(f.name for f in fields(ExtRole)) == EXT_ROLE.names
# The SMM byte stays at the top of the word (kvm_memslots_for_spte_role).
assert PAGE_ROLE.smm.lo == 24 and PAGE_ROLE.smm.hi == 31
