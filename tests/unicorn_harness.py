"""Differential harness: ``refimpl.translate`` against QEMU's x86 walker (unicorn).

Each *case* is a physical-memory image (random page tables plus a fixed
harness region), a CPU state and one access (read, write or fetch, at CPL0 or
CPL3) to one guest-virtual address. The same image is given to unicorn
(QEMU 5 TCG, ``target/i386/excp_helper.c: handle_mmu_fault``), which really
executes the access, and to ``refimpl.translate``; the results are compared
and every disagreement is put into a named :class:`DiffClass` or reported as
unexplained.

How the unicorn side works
--------------------------
Physical memory
    ``MEM_SIZE`` bytes at physical address 0, mapped with ``mem_map_ptr`` onto
    a NumPy array, so the image after the run is read without copying. Every
    8-byte word of the image that the harness does not use holds a *marker*
    ``0xB8 | imm32 << 8 | TAG << 40`` with ``imm32 = (pa >> 3) << 1``: as data
    it names its own physical address, as code it is ``mov eax, imm32; hlt``
    (the HLT ends QEMU's translation block, which otherwise runs past the end
    of the page and faults there before executing anything), and as a 4- or
    8-byte paging-structure entry it is not present (bit 0 and bit 32 are
    clear), so markers never change a walk. refimpl gets the identical image.
Harness region
    Physical ``[0, POOL_START)``: GDT, kernel code, user code, kernel stack and
    the harness's own page tables. It is mapped at ``INFRA_VA`` through one
    top-level slot the random tables never use (PML5E/PML4E 511, PAE PDPTE 3,
    32-bit PDE 1023); kernel pages are U=0, the user code page U=1, no page
    is NX, every entry is preset A=1/D=1. Random tables live in the pool
    ``[POOL_START, MEM_SIZE)``.
CPU state
    CR0/CR3/CR4 with ``reg_write``, EFER with ``reg_write(UC_X86_REG_MSR,
    (0xC0000080, v))``, GDTR with ``reg_write``. Long modes use ``UC_MODE_64``,
    32-bit and PAE paging ``UC_MODE_32``. The CPU model is Skylake-Server:
    QEMU only honours CR4.SMAP when the model has SMAP (qemu64 silently
    ignores it).
PKRU
    The kernel stub executes ``WRPKRU`` when CR4.PKE=1 (QEMU's helper checks
    CR4.PKE only, not CPUID).
CPL3
    The kernel stub executes ``IRETQ`` (``IRETD`` in 32-bit modes) from a frame
    prepared on the kernel stack, with DPL3 code and stack segments from the
    harness GDT; QEMU's CPL is SS.DPL. A user load/store then runs from the
    U=1 harness code page; a user fetch is the ``IRET`` target itself.
Error code and CR2
    Unicorn never delivers exceptions through the guest IDT: it calls the
    ``UC_HOOK_INTR`` hook with the vector and drops the exception. CR2 is a
    readable register. The error code is not, so the harness reads
    ``CPUX86State.error_code`` from the bytes of ``uc.context_save()`` at an
    offset *calibrated* at start-up against not-present faults whose error
    codes are certain (0, 2, 4, 6 and the protection fault 3); calibration
    fails loudly if the offset is not unique.
Physical address reached
    A load returns a marker (the address it names is the PA); a store writes a
    value that occurs nowhere in the image and is searched for afterwards; a
    fetch executes the marker as ``mov eax, imm32``. When the word at the PA is
    not a marker (the address maps a page-table page), a load is checked by
    value against refimpl's memory at refimpl's GPA, and a fetch is reported
    as reached without a verified PA.
A/D bits
    The whole unicorn image after the run is compared word by word with
    refimpl's memory after ``translate`` (plus the store, when it succeeded).

Known disagreements
-------------------
:class:`DiffClass` defines them precisely: QEMU leaves A bits set on a
faulting walk (``QEMU_A_BITS_ON_FAULT``); QEMU omits the F bit in 32-bit
paging with EFER.NXE=1 (``F_BIT_32BIT_NXE``); QEMU implements PSE-40, not
PSE-36, for 4 MiB pages (``PSE36_RSVD_BITS_17_20``); KVM's #GP for reserved
PAE PDPTE bits at CR3 load has no QEMU counterpart (``PAE_PDPTE_RSVD_GP``).
Independently of QEMU, the harness checks KVM's rule that a faulting walk
writes no memory. The tests ``test_harness_qemu_*`` pin QEMU's side of each
class, so a changed unicorn makes them fail rather than be silently excused.

What cannot be reached through unicorn
--------------------------------------
* Implicit supervisor accesses (``ACCESS_IMPLICIT``): only explicit
  loads/stores/fetches are generated.
* KVM's MAXPHYADDR and 1 GiB-page CPUID: QEMU TCG uses 40 physical-address
  bits (calibrated at start-up) and accepts 1 GiB pages regardless of CPUID,
  so refimpl is run with ``maxphyaddr=<calibrated>`` and ``gbpages=True``.
* Final addresses beyond the mapped memory (PSE-36 frames above 4 GiB): unicorn
  stops with ``UC_ERR_*_UNMAPPED``; the physical address comes from the
  ``UC_HOOK_MEM_UNMAPPED`` hook (which reports physical addresses) and is
  compared with refimpl's GPA. A *table* beyond memory reads as zero in QEMU
  (a not-present fault, as in KVM).
* PAE PDPTE loading at MOV CR3: QEMU reads the PDPTE on every walk and never
  raises #GP for it; see :attr:`DiffClass.PAE_PDPTE_RSVD_GP`.
* refimpl's ``level`` is not compared (QEMU does not expose it; the exact
  physical address of the access distinguishes page sizes in practice).
* Other MAXPHYADDR values, ``gbpages=False`` and AMD-only reserved bits:
  QEMU TCG's behaviour is fixed, so they are not generated.
* Each case is a single access on a fresh unicorn instance: no TLB reuse,
  INVLPG or CR3-switch effects are tested.
"""

from __future__ import annotations

import enum
import random
import struct
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

try:  # the test module skips when unicorn is missing
    import unicorn as _uc
    from unicorn import x86_const as _x86
except ImportError:  # pragma: no cover - exercised only without unicorn
    _uc = None
    _x86 = None

# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------

MEM_SIZE = 8 << 20
POOL_START = 0x10000
PAGE = 0x1000

# Harness pages (physical).
GDT_PA = 0x1000
KCODE_PA = 0x2000
UCODE_PA = 0x3000
KSTACK_PA = 0x4000
INFRA_TABLES = (0x5000, 0x6000, 0x7000, 0x8000)  # L4/L3/L2/L1 tables of the harness slot
INFRA_NPAGES = 16

# Error-code / access bits (same positions as refimpl's ACCESS_*).
PF_P, PF_W, PF_U, PF_RSVD, PF_F, PF_PK = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20

CR0_PE, CR0_WP, CR0_PG = 1 << 0, 1 << 16, 1 << 31
CR4_PSE, CR4_PAE, CR4_LA57 = 1 << 4, 1 << 5, 1 << 12
CR4_SMEP, CR4_SMAP, CR4_PKE = 1 << 20, 1 << 21, 1 << 22
EFER_LME, EFER_LMA, EFER_NXE = 1 << 8, 1 << 10, 1 << 11
RFLAGS_FIXED, RFLAGS_AC = 0x2, 1 << 18

MARKER_TAG = 0x5A4BF4  # bytes 5..7 of every marker word; byte 5 = HLT ends QEMU's translation block
STORE_LOW = 0x11  # low byte of stored values (never 0xB8, so never a marker)

# Entry bits.
E_P, E_W, E_U, E_PWT, E_PCD, E_A, E_D, E_PS, E_G = (1 << i for i in range(9))
E_NX = 1 << 63
ADDR_MASK = ((1 << 52) - 1) & ~0xFFF


class Mode(enum.Enum):
    """Paging modes the harness can run (value: number of levels)."""

    BITS32 = 2
    PAE = 3
    LEVEL4 = 4
    LEVEL5 = 5

    @property
    def long(self) -> bool:
        return self.value >= 4

    @property
    def entry_size(self) -> int:
        return 4 if self is Mode.BITS32 else 8


INFRA_VA = {
    Mode.BITS32: 0xFFC00000,
    Mode.PAE: 0xFFE00000,
    Mode.LEVEL4: 0xFFFFFFFFFFE00000,
    Mode.LEVEL5: 0xFFFFFFFFFFE00000,
}


def marker(pa: int) -> int:
    """The marker word stored at 8-aligned physical address ``pa``."""
    return 0xB8 | (((pa >> 3) << 1) << 8) | (MARKER_TAG << 40)


def decode_marker64(v: int) -> Optional[int]:
    """The PA a loaded 8-byte marker names, or None if ``v`` is not a marker."""
    if v & 0xFF != 0xB8 or v >> 40 != MARKER_TAG:
        return None
    imm = (v >> 8) & 0xFFFFFFFF
    if imm & 1:
        return None
    pa = (imm >> 1) << 3
    return pa if marker(pa) == v else None


def decode_marker32(v: int) -> Optional[int]:
    """The PA a loaded 4-byte marker (low half) names, or None."""
    if v & 0xFF != 0xB8:
        return None
    imm24 = (v >> 8) & 0xFFFFFF
    if imm24 & 1:
        return None
    pa = (imm24 >> 1) << 3
    return pa if marker(pa) & 0xFFFFFFFF == v else None


def decode_imm(imm: int) -> Optional[int]:
    """The PA named by the ``imm32`` of an executed marker, or None."""
    if imm & 1 or imm >= 1 << 24:
        return None
    return (imm >> 1) << 3


_TEMPLATE: Optional[np.ndarray] = None


def _marker_template() -> np.ndarray:
    global _TEMPLATE
    if _TEMPLATE is None:
        pa = np.arange(MEM_SIZE // 8, dtype=np.uint64) * np.uint64(8)
        words = (
            np.uint64(0xB8)
            | (((pa >> np.uint64(3)) << np.uint64(1)) << np.uint64(8))
            | np.uint64(MARKER_TAG << 40)
        )
        words[: POOL_START // 8] = 0
        _TEMPLATE = words.view(np.uint8)
    return _TEMPLATE


# --------------------------------------------------------------------------
# Case description
# --------------------------------------------------------------------------


@dataclass
class Case:
    """One memory image, CPU state and access."""

    mode: Mode
    cr0: int
    cr3: int
    cr4: int
    efer: int
    rflags: int
    pkru: int
    gva: int
    access: int  # PF_W / PF_U / PF_F bits
    writes: list = field(default_factory=list)  # (pa, value, size) entries written by the generator
    label: str = ""
    store_value: int = 0

    @property
    def user(self) -> bool:
        return bool(self.access & PF_U)

    @property
    def kind(self) -> str:
        if self.access & PF_F:
            return "fetch"
        return "write" if self.access & PF_W else "read"

    def describe(self) -> str:
        lines = [
            f"case {self.label or '?'}: mode={self.mode.name} access={self.kind} "
            f"{'user' if self.user else 'supervisor'} gva={self.gva:#x}",
            f"  cr0={self.cr0:#x} cr3={self.cr3:#x} cr4={self.cr4:#x} efer={self.efer:#x} "
            f"rflags={self.rflags:#x} pkru={self.pkru:#x}",
        ]
        img = build_image(self)
        for lvl, addr, val, leaf in walk_path(img, self.mode, self.cr3, self.cr4, self.gva):
            lines.append(
                f"  L{lvl} entry @{addr:#x} = {val:#0{18 if self.mode.entry_size == 8 else 10}x}"
                f"{' (leaf)' if leaf else ''}{' [marker/not written]' if not any(w[0] == addr for w in self.writes) else ''}"
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------
# Memory image
# --------------------------------------------------------------------------


def _put(img: np.ndarray, pa: int, value: int, size: int) -> None:
    img[pa : pa + size] = np.frombuffer(value.to_bytes(size, "little"), dtype=np.uint8)


def _get(img: np.ndarray, pa: int, size: int) -> int:
    return int.from_bytes(img[pa : pa + size].tobytes(), "little")


def _gdt_words(mode: Mode) -> list[int]:
    if mode.long:
        kcode, ucode = 0x00AF9B000000FFFF, 0x00AFFB000000FFFF
    else:
        kcode, ucode = 0x00CF9B000000FFFF, 0x00CFFB000000FFFF
    return [0, kcode, 0x00CF93000000FFFF, ucode, 0x00CFF3000000FFFF]


KCS, KDS, UCS, UDS = 0x08, 0x10, 0x1B, 0x23


def _stub(case: Case) -> tuple[bytes, bytes, list[int], int]:
    """Kernel code, user code, iret frame words, and number of instructions."""
    long = case.mode.long
    rex = b"\x48" if long else b""
    kcode = b""
    n = 0
    if case.cr4 & CR4_PKE:
        kcode += b"\x0f\x01\xef"  # wrpkru
        n += 1
    load, store = rex + b"\x8b\x33", rex + b"\x89\x33"  # mov rsi,[rbx] / mov [rbx],rsi
    ucode = b""
    frame: list[int] = []
    if not case.user:
        kcode += {"read": load, "write": store, "fetch": b"\xff\xe3"}[case.kind]  # jmp rbx
        n += 1 if case.kind != "fetch" else 2
    else:
        kcode += rex + b"\xcf"  # iretq / iretd
        n += 2
        iva = INFRA_VA[case.mode]
        target = case.gva if case.kind == "fetch" else iva + (UCODE_PA if case.kind == "read" else UCODE_PA + 0x10)
        frame = [target, UCS, RFLAGS_FIXED | (case.rflags & RFLAGS_AC), iva + UCODE_PA + 0x800, UDS]
        ucode = load + b"\x90" * (0x10 - len(load)) + store
    return kcode, ucode, frame, n


FRAME_OFFSET = 0xF00  # iret frame inside the kernel stack page


def build_image(case: Case) -> np.ndarray:
    """The full physical image of ``case`` (a fresh uint8 array)."""
    img = _marker_template().copy()
    mode = case.mode
    esz = mode.entry_size
    # GDT
    for i, d in enumerate(_gdt_words(mode)):
        _put(img, GDT_PA + 8 * i, d, 8)
    # Harness page tables: top slot of CR3 page -> chain -> PT mapping pages 0..15
    nonleaf = E_P | E_W | E_U | E_A
    pt = INFRA_TABLES[3]
    for i in range(INFRA_NPAGES):
        flags = E_P | E_W | E_A | E_D | (E_U if i * PAGE == UCODE_PA else 0)
        _put(img, pt + i * esz, i * PAGE | flags, esz)
    if mode is Mode.BITS32:
        _put(img, (case.cr3 & ~0xFFF) + 1023 * 4, pt | nonleaf, 4)
    elif mode is Mode.PAE:
        _put(img, INFRA_TABLES[2] + 511 * 8, pt | nonleaf, 8)
        _put(img, (case.cr3 & ~0x1F) + 3 * 8, INFRA_TABLES[2] | E_P, 8)
    else:
        _put(img, INFRA_TABLES[2] + 511 * 8, pt | nonleaf, 8)
        _put(img, INFRA_TABLES[1] + 511 * 8, INFRA_TABLES[2] | nonleaf, 8)
        if mode is Mode.LEVEL4:
            _put(img, (case.cr3 & ~0xFFF) + 511 * 8, INFRA_TABLES[1] | nonleaf, 8)
        else:
            _put(img, INFRA_TABLES[0] + 511 * 8, INFRA_TABLES[1] | nonleaf, 8)
            _put(img, (case.cr3 & ~0xFFF) + 511 * 8, INFRA_TABLES[0] | nonleaf, 8)
    # Random part (written after the harness slot; the generator never targets it).
    for pa, value, size in case.writes:
        _put(img, pa, value, size)
    # Code and iret frame
    kcode, ucode, frame, _ = _stub(case)
    img[KCODE_PA : KCODE_PA + len(kcode)] = np.frombuffer(kcode, dtype=np.uint8)
    img[UCODE_PA : UCODE_PA + len(ucode)] = np.frombuffer(ucode, dtype=np.uint8)
    fw = 8 if mode.long else 4
    for i, w in enumerate(frame):
        _put(img, KSTACK_PA + FRAME_OFFSET + fw * i, w, fw)
    return img


def infra_slot_addr(mode: Mode, cr3: int) -> int:
    """Physical address of the harness's top-level entry (never randomised)."""
    if mode is Mode.BITS32:
        return (cr3 & ~0xFFF) + 1023 * 4
    if mode is Mode.PAE:
        return (cr3 & ~0x1F) + 3 * 8
    return (cr3 & ~0xFFF) + 511 * 8


def walk_path(img: np.ndarray, mode: Mode, cr3: int, cr4: int, gva: int) -> list[tuple[int, int, int, bool]]:
    """The entries a walk of ``gva`` reads, top-down: ``(level, pa, value, is_leaf)``.

    Only follows addresses (present entries, PS where it ends a walk); makes
    no permission or reserved-bit decision except stopping where an entry
    cannot be followed. Used to describe cases and to check that A-bit
    differences lie on the walk path.
    """
    out = []
    if mode is Mode.BITS32:
        a = (cr3 & ~0xFFF) + ((gva >> 22) & 0x3FF) * 4
        v = _get(img, a, 4)
        leaf = bool(v & E_P and v & E_PS and cr4 & CR4_PSE)
        out.append((2, a, v, leaf))
        if not v & E_P or leaf:
            return out
        a = (v & 0xFFFFF000) + ((gva >> 12) & 0x3FF) * 4
        if a + 4 > MEM_SIZE:
            return out
        v = _get(img, a, 4)
        out.append((1, a, v, True))
        return out
    if mode is Mode.PAE:
        a = (cr3 & 0xFFFFFFE0) + ((gva >> 30) & 3) * 8
        table = None
        level = 3
    else:
        level = mode.value
        table = cr3 & ADDR_MASK
        a = None
    while True:
        if a is None:
            a = table + ((gva >> (12 + 9 * (level - 1))) & 0x1FF) * 8
        if a + 8 > MEM_SIZE:
            return out
        v = _get(img, a, 8)
        leaf = level == 1 or bool(v & E_PS and level in (2, 3) and not (mode is Mode.PAE and level == 3))
        out.append((level, a, v, leaf))
        if not v & E_P or leaf or (v & E_PS and level >= 4):
            return out
        table = v & ADDR_MASK
        a = None
        level -= 1


# --------------------------------------------------------------------------
# Running a case in unicorn
# --------------------------------------------------------------------------


@dataclass
class UcOutcome:
    kind: str  # "ok", "fault", "unmapped", "harness"
    vector: Optional[int] = None
    error_code: Optional[int] = None
    cr2: Optional[int] = None
    pa: Optional[int] = None  # verified physical address of the access
    value: Optional[int] = None  # loaded value / executed imm32
    detail: str = ""
    memory: Optional[np.ndarray] = None  # image after the run

    def describe(self) -> str:
        if self.kind == "fault":
            s = f"fault vector={self.vector} error_code={self.error_code:#x} cr2={self.cr2:#x}"
        elif self.kind == "ok":
            s = f"ok pa={'?' if self.pa is None else hex(self.pa)}"
            if self.value is not None:
                s += f" value={self.value:#x}"
        elif self.kind == "unmapped":
            s = f"unmapped pa={'?' if self.pa is None else hex(self.pa)}"
        else:
            s = self.kind
        return s + (f" ({self.detail})" if self.detail else "")


class _Calib:
    err_offset: Optional[int] = None
    maxphyaddr: Optional[int] = None


CALIB = _Calib()
CPU_MODEL = None  # set lazily (needs unicorn)


def _new_uc(mode: Mode, buf: np.ndarray):
    uc = _uc.Uc(_uc.UC_ARCH_X86, _uc.UC_MODE_64 if mode.long else _uc.UC_MODE_32)
    uc.ctl_set_cpu_model(_x86.UC_CPU_X86_SKYLAKE_SERVER)
    uc.mem_map_ptr(0, MEM_SIZE, _uc.UC_PROT_ALL, buf.ctypes.data)
    return uc


def run_unicorn(case: Case, img: Optional[np.ndarray] = None, want_context: bool = False):
    """Execute ``case`` in unicorn; returns :class:`UcOutcome` (and context bytes)."""
    if img is None:
        img = build_image(case)
    buf = img.copy()
    mode = case.mode
    uc = _new_uc(mode, buf)
    X = _x86
    long = mode.long
    iva = INFRA_VA[mode]
    # Data segments are loaded from the GDT at its physical address while
    # paging is still off (unicorn resets them to 16-bit, base-0 caches);
    # then GDTR is pointed at the harness mapping for IRET's CS/SS loads.
    uc.reg_write(X.UC_X86_REG_GDTR, (0, GDT_PA, 5 * 8 - 1, 0))
    for seg in (X.UC_X86_REG_SS, X.UC_X86_REG_DS, X.UC_X86_REG_ES):
        uc.reg_write(seg, KDS)
    uc.reg_write(X.UC_X86_REG_GDTR, (0, iva + GDT_PA, 5 * 8 - 1, 0))
    uc.reg_write(X.UC_X86_REG_CR4, case.cr4)
    uc.reg_write(X.UC_X86_REG_CR3, case.cr3)
    uc.reg_write(X.UC_X86_REG_MSR, (0xC0000080, case.efer))
    uc.reg_write(X.UC_X86_REG_CR0, case.cr0)
    if long:
        R = dict(bx=X.UC_X86_REG_RBX, si=X.UC_X86_REG_RSI, ax=X.UC_X86_REG_RAX, cx=X.UC_X86_REG_RCX,
                 dx=X.UC_X86_REG_RDX, sp=X.UC_X86_REG_RSP, ip=X.UC_X86_REG_RIP, fl=X.UC_X86_REG_RFLAGS)
    else:
        R = dict(bx=X.UC_X86_REG_EBX, si=X.UC_X86_REG_ESI, ax=X.UC_X86_REG_EAX, cx=X.UC_X86_REG_ECX,
                 dx=X.UC_X86_REG_EDX, sp=X.UC_X86_REG_ESP, ip=X.UC_X86_REG_EIP, fl=X.UC_X86_REG_EFLAGS)
    uc.reg_write(R["fl"], RFLAGS_FIXED | (case.rflags & RFLAGS_AC))
    uc.reg_write(R["bx"], case.gva)
    uc.reg_write(R["si"], case.store_value)
    uc.reg_write(R["ax"], case.pkru)
    uc.reg_write(R["cx"], 0)
    uc.reg_write(R["dx"], 0)
    uc.reg_write(R["sp"], iva + KSTACK_PA + FRAME_OFFSET)

    events: list[tuple[int, int]] = []
    reached: list[bool] = []

    def on_intr(u, intno, _ud):
        events.append((intno, u.reg_read(X.UC_X86_REG_CR2)))
        u.emu_stop()

    uc.hook_add(_uc.UC_HOOK_INTR, on_intr)
    unmapped_pa: list[int] = []

    def on_unmapped(u, access, addr, size, value, _ud):
        unmapped_pa.append(addr)  # unicorn reports the *physical* address here
        return False

    uc.hook_add(_uc.UC_HOOK_MEM_UNMAPPED, on_unmapped)
    if case.kind == "fetch":
        def on_code(u, addr, size, _ud):
            if addr == case.gva:
                reached.append(True)
        uc.hook_add(_uc.UC_HOOK_CODE, on_code, None, case.gva, case.gva)

    _, ucode, _, ninsn = _stub(case)
    err = None
    try:
        uc.emu_start(iva + KCODE_PA, 0, count=ninsn)
    except _uc.UcError as e:
        err = e
    ctx = bytes(uc.context_save()) if (want_context or events) else b""
    rip = uc.reg_read(R["ip"])
    out = UcOutcome(kind="harness", memory=buf)
    unmapped = (_uc.UC_ERR_READ_UNMAPPED, _uc.UC_ERR_WRITE_UNMAPPED, _uc.UC_ERR_FETCH_UNMAPPED)
    if events:
        intno, cr2 = events[0]
        ec = None
        if CALIB.err_offset is not None:
            ec = struct.unpack_from("<I", ctx, CALIB.err_offset)[0]
        if case.kind == "fetch" and reached:
            out.kind = "ok"
            out.detail = f"fetched; next instruction raised vector {intno} (cr2={cr2:#x})"
        elif (case.kind == "fetch" and intno == 14 and rip == case.gva
              and (case.gva | 0xFFF) < cr2 <= (case.gva | 0xFFF) + 16):
            # QEMU 5 lets a translation block run past the end of the page and
            # faults on the next page while translating, before executing
            # the first instruction: the fetch of the gva itself succeeded.
            out.kind = "ok"
            out.detail = f"fetched; translator faulted on the next page (cr2={cr2:#x})"
        elif intno == 14 and cr2 == (case.gva if long else case.gva & 0xFFFFFFFF):
            out = UcOutcome("fault", 14, ec, cr2, memory=buf)
        elif intno == 13 and long and not is_canonical(case.gva, mode):
            out = UcOutcome("fault", 13, ec, cr2, memory=buf)
        else:
            out.detail = f"unexpected vector {intno} cr2={cr2:#x} rip={rip:#x}"
    elif err is not None:
        if err.errno in unmapped:
            out.kind = "unmapped"
            out.detail = str(err)
            if unmapped_pa:
                out.pa = unmapped_pa[-1]
        else:
            out.detail = f"unicorn error {err}"
    else:
        if case.kind == "fetch":
            if reached:
                out.kind = "ok"
                imm = uc.reg_read(R["ax"]) & 0xFFFFFFFF
                out.value = imm
                pa = decode_imm(imm)
                if rip == ((case.gva + 5) & ((1 << 64) - 1)) and pa is not None and pa + 8 <= MEM_SIZE \
                        and _get(img, pa, 8) == marker(pa):
                    out.pa = pa  # the marker names the 8-byte word at the gva
            else:
                out.detail = f"fetch not reached, rip={rip:#x}"
        else:
            expect = (iva + UCODE_PA + (0 if case.kind == "read" else 0x10) + (3 if long else 2)) if case.user \
                else iva + KCODE_PA + len(_stub(case)[0])
            if rip != expect:
                out.detail = f"stopped at rip={rip:#x}, expected {expect:#x}"
            else:
                out.kind = "ok"
                size = 8 if long else 4
                if case.kind == "read":
                    v = uc.reg_read(R["si"]) & ((1 << (8 * size)) - 1)
                    out.value = v
                    out.pa = decode_marker64(v) if long else decode_marker32(v)
                else:
                    view = buf.view(np.uint64) if long else buf.view(np.uint32)
                    hits = np.flatnonzero(view == case.store_value)
                    if len(hits) == 1:
                        out.pa = int(hits[0]) * size
                    else:
                        out.detail = f"store value found {len(hits)} times"
    return (out, ctx) if want_context else out


def is_canonical(gva: int, mode: Mode) -> bool:
    bits = 57 if mode is Mode.LEVEL5 else 48
    top = gva >> (bits - 1)
    return top == 0 or top == (1 << (65 - bits)) - 1


# --------------------------------------------------------------------------
# Hand-built cases (calibration and sanity tests)
# --------------------------------------------------------------------------

SIMPLE_GVA = {Mode.BITS32: 0x00403008, Mode.PAE: 0x40403008, Mode.LEVEL4: 0x0000004080403008,
              Mode.LEVEL5: 0x0001008080403008}
SIMPLE_DATA_PA = 0x300000


def simple_case(mode: Mode, access: int, leaf_flags: int, *, upper_flags: int = E_P | E_W | E_U,
                cr0: int = CR0_PE | CR0_PG | CR0_WP, cr4_extra: int = 0, nxe: bool = True,
                rflags: int = RFLAGS_FIXED, pkru: int = 0, gva: Optional[int] = None,
                data_pa: int = SIMPLE_DATA_PA, label: str = "simple") -> Case:
    """A 4 KiB mapping of ``gva`` with one table per level at fixed pool pages."""
    gva = SIMPLE_GVA[mode] if gva is None else gva
    cr4 = {Mode.BITS32: 0, Mode.PAE: CR4_PAE, Mode.LEVEL4: CR4_PAE, Mode.LEVEL5: CR4_PAE | CR4_LA57}[mode] | cr4_extra
    efer = (EFER_NXE if nxe else 0) | (EFER_LME | EFER_LMA if mode.long else 0)
    esz = mode.entry_size
    tables = [0x100000 + i * PAGE for i in range(mode.value)]
    cr3 = tables[0]
    writes = []
    for i, level in enumerate(range(mode.value, 0, -1)):
        if mode is Mode.BITS32:
            idx = (gva >> (22 if level == 2 else 12)) & 0x3FF
        elif mode is Mode.PAE and level == 3:
            idx = (gva >> 30) & 3
        else:
            idx = (gva >> (12 + 9 * (level - 1))) & 0x1FF
        addr = tables[i] + idx * esz
        if level == 1:
            val = (data_pa & ~0xFFF) | leaf_flags
        elif mode is Mode.PAE and level == 3:
            val = tables[i + 1] | E_P
        else:
            val = tables[i + 1] | upper_flags
        writes.append((addr, val, esz))
    return Case(mode, cr0, cr3, cr4, efer, rflags, pkru, gva, access, writes, label,
                store_value=_store_value(random.Random(0), mode))


def _store_value(rng: random.Random, mode: Mode) -> int:
    if mode.long:
        return (rng.getrandbits(56) << 8) | STORE_LOW
    return (rng.getrandbits(24) << 8) | STORE_LOW


def calibrate() -> None:
    """Find the error-code offset in the saved context and QEMU's MAXPHYADDR."""
    if CALIB.err_offset is not None:
        return
    m = Mode.LEVEL4
    known = [  # (access, leaf flags, expected error code): certain by the SDM
        (0, 0, 0x0), (PF_W, 0, 0x2), (PF_U, 0, 0x4), (PF_U | PF_W, 0, 0x6),
        (PF_W, E_P | E_U, 0x3), (PF_U, E_P | E_W, 0x5),
    ]
    cands = None
    for access, leaf, code in known:
        out, ctx = run_unicorn(simple_case(m, access, leaf, label="calib"), want_context=True)
        if out.kind != "fault" or out.vector != 14:
            raise RuntimeError(f"calibration: expected #PF for access {access:#x}, got {out.describe()}")
        here = {o for o in range(0, len(ctx) - 3, 4) if struct.unpack_from("<I", ctx, o)[0] == code}
        cands = here if cands is None else cands & here
    if not cands or len(cands) != 1:
        raise RuntimeError(f"calibration: error-code offset not unique: {sorted(cands or [])[:10]}")
    CALIB.err_offset = cands.pop()
    # MAXPHYADDR: lowest PA bit of a 4 KiB PTE that gives a RSVD fault.
    for bit in range(32, 52):
        c = simple_case(m, 0, E_P | E_W | E_U, label="calib-maxphy")
        c.writes[-1] = (c.writes[-1][0], c.writes[-1][1] | (1 << bit), 8)
        out = run_unicorn(c)
        if out.kind == "fault" and out.error_code & PF_RSVD:
            CALIB.maxphyaddr = bit
            break
    else:
        CALIB.maxphyaddr = 52


# --------------------------------------------------------------------------
# Random cases
# --------------------------------------------------------------------------

def _n_index_bits(mode: Mode, level: int) -> int:
    if mode is Mode.BITS32:
        return 10
    if mode is Mode.PAE and level == 3:
        return 2
    return 9


def _index_shift(mode: Mode, level: int) -> int:
    if mode is Mode.BITS32:
        return 12 if level == 1 else 22
    return 12 + 9 * (level - 1)


def _page_size(mode: Mode, level: int) -> int:
    if level == 1:
        return PAGE
    if mode is Mode.BITS32:
        return 4 << 20
    return 1 << _index_shift(mode, level)


def _infra_index(mode: Mode) -> int:
    return {Mode.BITS32: 1023, Mode.PAE: 3}.get(mode, 511)


def gen_case(rng: random.Random, mode: Mode, label: str = "") -> Case:
    """A random case: CPU state, access, and one random walk for the access's gva."""
    maxphy = CALIB.maxphyaddr or 40
    for _attempt in range(100):
        case = _gen_case_once(rng, mode, label, maxphy)
        if case is not None:
            return case
    raise RuntimeError("gen_case: could not avoid the harness slot")


def _gen_case_once(rng: random.Random, mode: Mode, label: str, maxphy: int) -> Optional[Case]:
    r = rng.random
    long = mode.long
    wide = mode is not Mode.BITS32  # 8-byte entries
    # ---- CPU state
    cr0 = CR0_PE | CR0_PG | (CR0_WP if r() < 0.6 else 0)
    cr4 = {Mode.BITS32: 0, Mode.PAE: CR4_PAE, Mode.LEVEL4: CR4_PAE, Mode.LEVEL5: CR4_PAE | CR4_LA57}[mode]
    if r() < (0.7 if mode is Mode.BITS32 else 0.3):
        cr4 |= CR4_PSE
    cr4 |= (CR4_SMEP if r() < 0.3 else 0) | (CR4_SMAP if r() < 0.3 else 0) | (CR4_PKE if r() < 0.35 else 0)
    efer = (EFER_NXE if r() < 0.7 else 0) | (EFER_LME | EFER_LMA if long else 0)
    rflags = RFLAGS_FIXED | (RFLAGS_AC if r() < 0.4 else 0)
    pkru = 0
    if cr4 & CR4_PKE and r() < 0.85:
        pkru = rng.getrandbits(32)
    kind = rng.choice(("read", "write", "fetch"))
    access = {"read": 0, "write": PF_W, "fetch": PF_F}[kind] | (PF_U if r() < 0.5 else 0)
    # ---- shape of the walk
    top = mode.value
    leaf = 1
    x = r()
    if mode is Mode.BITS32:
        if cr4 & CR4_PSE and x < 0.35:
            leaf = 2
    elif mode is Mode.PAE:
        if x < 0.3:
            leaf = 2
    else:
        leaf = 3 if x < 0.15 else 2 if x < 0.4 else 1
    pool = range(POOL_START // PAGE, MEM_SIZE // PAGE)
    levels = list(range(top, leaf - 1, -1))
    pages: dict[int, int] = {}
    fresh = rng.sample(pool, len(levels) + 1)
    for i, lvl in enumerate(levels):
        if i > 0 and r() < 0.05:
            pages[lvl] = pages[levels[rng.randrange(i)]]  # a table used at two levels
        else:
            pages[lvl] = fresh[i] * PAGE
    cr3 = pages[top]
    if mode is Mode.PAE:
        cr3 += rng.randrange(0, PAGE, 32)
    # ---- target physical address
    if r() < 0.05:
        data_page = rng.choice(list(pages.values()))
    else:
        data_page = fresh[-1] * PAGE
    pa = data_page + rng.randrange(0, 0xFF1, 8)
    # ---- gva: random indices at every level >= leaf, offset bits from pa
    size = _page_size(mode, leaf)
    gva = pa & (size - 1)
    idx = {}
    for lvl in levels:
        nb = _n_index_bits(mode, lvl)
        hi = (1 << nb) - (1 if lvl == top else 0)  # top level: never the harness slot
        if mode is Mode.PAE and lvl == 3:
            hi = 3
        idx[lvl] = rng.randrange(hi)
        gva |= idx[lvl] << _index_shift(mode, lvl)
    if long:
        bits = 57 if mode is Mode.LEVEL5 else 48
        if gva >> (bits - 1) & 1:
            gva |= ((1 << 64) - 1) ^ ((1 << bits) - 1)
        if r() < 0.03:
            gva ^= 1 << 62  # non-canonical
    # ---- entries
    writes: list[tuple[int, int, int]] = []
    esz = mode.entry_size
    rsvd_level = rng.choice(levels) if r() < 0.15 else None  # at most one entry gets a reserved/odd bit
    for lvl in levels:
        addr = (cr3 & ~0x1F if (mode is Mode.PAE and lvl == 3) else pages[lvl]) + idx[lvl] * esz
        is_leaf = lvl == leaf
        if is_leaf:
            base = pa & ~(size - 1) & ~0xFFF
        else:
            base = pages[lvl - 1]
            if r() < 0.02:  # next table outside memory
                base = rng.randrange(MEM_SIZE >> 12, 1 << (32 if not wide else maxphy - 1) >> 12) << 12
        if mode is Mode.PAE and lvl == 3:
            value = _pdpte(rng, base, maxphy)
        else:
            value = _entry(rng, mode, lvl, is_leaf, base, cr4, efer, maxphy, odd_bits=lvl == rsvd_level)
        writes.append((addr, value, esz))
    if mode is Mode.PAE and r() < 0.05:  # another present PDPTE, maybe with reserved bits
        others = [i for i in range(3) if i != idx[3]]
        i = rng.choice(others)
        writes.append(((cr3 & ~0x1F) + 8 * i, _pdpte(rng, rng.choice(fresh) * PAGE, maxphy, rsvd_p=0.5), 8))
    slot = infra_slot_addr(mode, cr3)
    if any(a == slot for a, _, _ in writes):
        return None
    case = Case(mode, cr0, cr3, cr4, efer, rflags, pkru, gva, access, writes, label,
                store_value=_store_value(rng, mode))
    return case


def _pdpte(rng: random.Random, base: int, maxphy: int, rsvd_p: float = 0.04) -> int:
    r = rng.random
    if r() < 0.04:
        return rng.getrandbits(64) & ~1
    v = base | E_P
    if r() < 0.1:
        v |= E_PWT
    if r() < 0.1:
        v |= E_PCD
    if r() < 0.3:
        v |= rng.getrandbits(3) << 9  # AVL
    if r() < rsvd_p:
        bit = rng.choice([1, 2, 5, 6, 7, 8, 63, rng.randrange(maxphy, 63)])
        v |= 1 << bit
    return v


def _entry(rng: random.Random, mode: Mode, lvl: int, is_leaf: bool, base: int, cr4: int, efer: int,
           maxphy: int, odd_bits: bool = False) -> int:
    r = rng.random
    wide = mode is not Mode.BITS32
    if r() < 0.05:  # not present, garbage elsewhere
        return rng.getrandbits(64 if wide else 32) & ~1
    v = base | E_P
    if r() < (0.7 if is_leaf else 0.9):
        v |= E_W
    if r() < (0.7 if is_leaf else 0.9):
        v |= E_U
    if r() < 0.5:
        v |= E_A
    if r() < 0.5:
        v |= E_D
    for b in (E_PWT, E_PCD, E_G):
        if r() < 0.1:
            v |= b
    if r() < 0.3:
        v |= rng.getrandbits(3) << 9
    large = is_leaf and lvl > 1
    if large:
        v |= E_PS
        if r() < 0.2:
            v |= 1 << 12  # PAT
    elif mode is Mode.BITS32 and lvl == 2 and not cr4 & CR4_PSE and r() < 0.2:
        v |= E_PS  # ignored without CR4.PSE
    elif mode.long and lvl >= 4 and r() < 0.02:
        v |= E_PS  # reserved in PML4E/PML5E
    if wide:
        if r() < (0.15 if efer & EFER_NXE else 0.03):  # reserved without EFER.NXE
            v |= E_NX
        if mode.long:
            if r() < 0.15:
                v |= rng.getrandbits(7) << 52  # ignored
            if r() < 0.5:
                v |= rng.getrandbits(4) << 59  # protection key (leaf) / ignored
        elif r() < 0.03:
            v |= 1 << rng.randrange(52, 63)  # reserved in PAE
    # reserved / unusual address bits, in at most one entry per case
    if odd_bits:
        choices = []
        if wide:
            choices.append(rng.randrange(maxphy, 52))
        if large and wide:
            top = 29 if lvl == 3 else 20
            choices.append(rng.randrange(13, top + 1))
        if large and not wide:
            choices += [rng.randrange(17, 22), rng.randrange(13, 17)]  # PSE-36 rsvd / PA 35:32
        if choices:
            v |= 1 << rng.choice(choices)
    return v


# --------------------------------------------------------------------------
# Comparison with refimpl
# --------------------------------------------------------------------------


class DiffClass(enum.Enum):
    """Known, legitimate differences between QEMU (unicorn) and KVM (refimpl).

    A case is *explained* only if every difference between the two results is
    covered by one of these definitions; anything else is a failure.
    """

    QEMU_A_BITS_ON_FAULT = "qemu-a-bits-on-faulting-walk"
    """Both fault with the same vector and error code (up to another class's
    error-code difference), and every memory difference is bit 5 (A) set by
    QEMU, clear in refimpl, in an entry on the gva's walk path that QEMU reads
    before it can fault: a non-leaf entry, or a 1 GiB leaf PDPTE (QEMU sets its
    A before the permission check). KVM sets no A/D bits on a faulting walk;
    the SDM allows either (``handle_mmu_fault`` sets A level by level)."""

    F_BIT_32BIT_NXE = "f-bit-32bit-paging-with-efer-nxe"
    """32-bit (non-PAE) paging, fetch, EFER.NXE=1, CR4.SMEP=0, both #PF, and
    the error codes differ exactly in F: refimpl (KVM) has F=1, QEMU F=0.
    QEMU sets F only for ``(NXE && PAE) || SMEP``; KVM for ``NXE || SMEP``."""

    PSE36_RSVD_BITS_17_20 = "pse36-4mib-pde-bits-17-20"
    """32-bit paging with CR4.PSE=1, the gva's PDE is a present 4 MiB PDE with
    a bit of 17..20 set and bit 21 clear; refimpl reports exactly the #PF a
    reserved bit gives (P|RSVD, W/U from the access, F on a fetch when
    EFER.NXE or CR4.SMEP) (KVM: PSE-36, bits 17..21 reserved), QEMU (PSE-40: bits 13..20 are PA
    bits 39:32, only bit 21 reserved) does not report RSVD. QEMU's memory may
    differ only by A/D bits it set in that PDE."""

    PAE_PDPTE_RSVD_GP = "pae-pdpte-reserved-gp-at-cr3-load"
    """PAE paging, one of the four PDPTEs at CR3 is present with a bit KVM
    reserves (bits 1, 2, 5..8, MAXPHYADDR..63), and refimpl reports #GP
    (vector 13, error code 0: the MOV CR3 that loads the PDPTEs fails). QEMU loads a PDPTE on
    every walk and never raises #GP for it; its result is not checked (beyond
    not being #GP), and its memory may differ only by A/D bits it set on the
    walk path and by its own store."""


@dataclass
class RefResult:
    vector: Optional[int]
    error_code: Optional[int]
    gpa: Optional[int]
    level: Optional[int]

    def describe(self) -> str:
        if self.vector is not None:
            return f"fault vector={self.vector} error_code={self.error_code:#x}"
        return f"ok gpa={self.gpa:#x} level={self.level}"


@dataclass
class CaseResult:
    case: Case
    ref: RefResult
    uc: UcOutcome
    classes: frozenset
    problems: list
    notes: list

    @property
    def agree(self) -> bool:
        return not self.classes and not self.problems

    @property
    def explained(self) -> bool:
        return not self.problems

    def report(self) -> str:
        lines = [self.case.describe(),
                 f"  refimpl : {self.ref.describe()}",
                 f"  unicorn : {self.uc.describe()}"]
        if self.classes:
            lines.append("  classes : " + ", ".join(sorted(c.name for c in self.classes)))
        for p in self.problems:
            lines.append(f"  PROBLEM : {p}")
        for n in self.notes:
            lines.append(f"  note    : {n}")
        return "\n".join(lines)


def ref_cpu(case: Case):
    from refimpl import CpuState
    return CpuState(cr0=case.cr0, cr3=case.cr3, cr4=case.cr4, efer=case.efer, rflags=case.rflags,
                    pkru=case.pkru, maxphyaddr=CALIB.maxphyaddr or 40, gbpages=True)


def run_ref(case: Case, img: np.ndarray) -> tuple[RefResult, np.ndarray]:
    """refimpl's result and its memory afterwards (store applied on success)."""
    from refimpl import GuestMemory, translate
    mem = GuestMemory(MEM_SIZE)
    buf = getattr(mem, "buffer", None)
    if isinstance(buf, bytearray) and len(buf) == MEM_SIZE:
        view = np.frombuffer(buf, dtype=np.uint8)
        view[:] = img
    else:  # pragma: no cover - public-API fallback
        mem.write(0, img.tobytes())
        view = None
    res = translate(mem, ref_cpu(case), case.gva, case.access)
    f = res.fault
    if f is not None:
        rr = RefResult(int(f.vector), int(f.error_code), None, None)
    else:
        rr = RefResult(None, None, int(res.gpa), res.level)
        size = 8 if case.mode.long else 4
        if case.kind == "write" and 0 <= rr.gpa and rr.gpa + size <= MEM_SIZE:
            mem.write(rr.gpa, (case.store_value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
    after = view if view is not None else np.frombuffer(mem.read(0, MEM_SIZE), dtype=np.uint8)
    return rr, after


def _rsvd_code(case: Case) -> int:
    """The error code of a reserved-bit #PF for ``case``'s access, as KVM builds it."""
    code = PF_P | PF_RSVD | (case.access & (PF_W | PF_U))
    if case.access & PF_F and (case.efer & EFER_NXE or case.cr4 & CR4_SMEP):
        code |= PF_F
    return code


def _pdpte_kvm_rsvd(v: int, maxphy: int) -> bool:
    mask = (1 << 1) | (1 << 2) | (0xF << 5) | (((1 << 64) - 1) ^ ((1 << maxphy) - 1))
    return bool(v & E_P and v & mask)


def compare(case: Case, img: np.ndarray, uc: UcOutcome, ref: RefResult, ref_after: np.ndarray) -> CaseResult:
    problems: list[str] = []
    notes: list[str] = []
    classes: set[DiffClass] = set()
    mode = case.mode
    size = 8 if mode.long else 4
    path = walk_path(img, mode, case.cr3, case.cr4, case.gva)
    # Entries whose A/D QEMU may legitimately leave set (per class).
    ad_ok_entries: set[int] = set()  # entries where A and D set by QEMU are allowed
    a_ok_entries: set[int] = set()  # entries where only A set by QEMU is allowed (QEMU_A_BITS_ON_FAULT)
    allow_uc_store = False
    maxphy = CALIB.maxphyaddr or 40

    # ---- result component
    if ref.vector is None:
        if uc.kind == "ok":
            if uc.pa is not None:
                if uc.pa != ref.gpa:
                    problems.append(f"physical address differs: unicorn {uc.pa:#x}, refimpl {ref.gpa:#x}")
            elif case.kind == "read" and uc.value is not None:
                if 0 <= ref.gpa and ref.gpa + size <= MEM_SIZE:
                    rv = _get(ref_after, ref.gpa, size)
                    if rv != uc.value:
                        problems.append(f"loaded {uc.value:#x}, refimpl memory at gpa {ref.gpa:#x} holds {rv:#x}")
                    else:
                        notes.append("PA checked by value (not a marker word)")
                else:
                    problems.append("unicorn loaded from memory, refimpl gpa is outside memory")
            elif case.kind == "fetch":
                if 0 <= ref.gpa and ref.gpa + 8 <= MEM_SIZE and _get(img, ref.gpa, 8) == marker(ref.gpa):
                    problems.append(f"fetch reached but did not execute refimpl's marker at {ref.gpa:#x} ({uc.detail})")
                else:
                    notes.append("fetch reached; PA not verifiable (not a marker word)")
            else:
                problems.append(f"could not locate the store ({uc.detail})")
        elif uc.kind == "unmapped":
            if 0 <= ref.gpa and ref.gpa + size <= MEM_SIZE:
                problems.append(f"unicorn hit unmapped memory, refimpl gpa {ref.gpa:#x} is inside memory")
            elif uc.pa != ref.gpa:
                problems.append(f"physical address outside memory differs: unicorn "
                                f"{'?' if uc.pa is None else hex(uc.pa)}, refimpl {ref.gpa:#x}")
        else:
            problems.append("refimpl succeeded, unicorn did not")
    else:
        same = uc.kind == "fault" and uc.vector == ref.vector and (ref.vector != 14 or uc.error_code == ref.error_code)
        if not same:
            pde = path[0] if (mode is Mode.BITS32 and path) else None
            if (mode is Mode.BITS32 and case.kind == "fetch" and case.efer & EFER_NXE
                    and not case.cr4 & CR4_SMEP and ref.vector == 14 and uc.kind == "fault"
                    and uc.vector == 14 and not uc.error_code & PF_F
                    and ref.error_code == uc.error_code | PF_F):
                classes.add(DiffClass.F_BIT_32BIT_NXE)
            elif (pde is not None and case.cr4 & CR4_PSE and pde[2] & E_P and pde[2] & E_PS
                    and pde[2] & (0xF << 17) and not pde[2] & (1 << 21)
                    and ref.vector == 14 and ref.error_code == _rsvd_code(case)
                    and not (uc.kind == "fault" and (uc.error_code or 0) & PF_RSVD)
                    and uc.kind in ("ok", "fault", "unmapped")):
                classes.add(DiffClass.PSE36_RSVD_BITS_17_20)
                ad_ok_entries.add(pde[1])
            elif (mode is Mode.PAE and ref.vector == 13 and not ref.error_code
                    and any(_pdpte_kvm_rsvd(_get(img, (case.cr3 & ~0x1F) + 8 * i, 8), maxphy) for i in range(4))
                    and not (uc.kind == "fault" and uc.vector == 13)
                    and uc.kind in ("ok", "fault", "unmapped")):
                classes.add(DiffClass.PAE_PDPTE_RSVD_GP)
                ad_ok_entries.update(e[1] for e in path)
                allow_uc_store = uc.kind == "ok" and case.kind == "write" and uc.pa is not None
            else:
                problems.append("fault differs")
    # ---- memory component
    if ref.vector is not None and not np.array_equal(ref_after, img):
        # KVM semantics, checked directly: QEMU may set the same A bits, which
        # would hide this from the comparison below.
        problems.append("refimpl wrote guest memory on a faulting walk")
    a_ok_on_fault = ref.vector is not None and uc.kind == "fault"
    if a_ok_on_fault:
        for lvl, addr, val, is_leaf in path:
            if not is_leaf or (mode.long and lvl == 3):
                a_ok_entries.add(addr)
    u64 = uc.memory.view(np.uint64)
    r64 = ref_after.view(np.uint64)
    diff = np.flatnonzero(u64 != r64)
    used_a = False
    for w in diff[:64]:
        waddr = int(w) * 8
        uv, rv = int(u64[w]), int(r64[w])
        if allow_uc_store and waddr == (uc.pa & ~7):
            continue
        ok = True
        for off in ((0, 4) if esz4(mode) else (0,)):
            ea = waddr + off
            m = (1 << (8 * (4 if esz4(mode) else 8))) - 1
            ue, re_ = (uv >> (8 * off)) & m, (rv >> (8 * off)) & m
            d = ue ^ re_
            if not d:
                continue
            if ea in ad_ok_entries and not d & ~(E_A | E_D) and ue & d == d:
                continue
            if ea in a_ok_entries and d == E_A and ue & E_A:
                used_a = True
                continue
            ok = False
        if not ok:
            problems.append(f"memory differs at {waddr:#x}: unicorn {uv:#018x}, refimpl {rv:#018x}")
    if len(diff) > 64:
        problems.append(f"... {len(diff)} differing words in total")
    if used_a:
        classes.add(DiffClass.QEMU_A_BITS_ON_FAULT)
    return CaseResult(case, ref, uc, frozenset(classes), problems, notes)


def esz4(mode: Mode) -> bool:
    return mode is Mode.BITS32


def run_case(case: Case) -> CaseResult:
    """Run ``case`` in unicorn and refimpl and compare."""
    calibrate()
    img = build_image(case)
    uc = run_unicorn(case, img)
    if uc.kind == "harness":
        ref, after = run_ref(case, img)
        return CaseResult(case, ref, uc, frozenset(), [f"harness failure: {uc.detail}"], [])
    ref, after = run_ref(case, img)
    return compare(case, img, uc, ref, after)


@dataclass
class Summary:
    mode: Mode
    cases: int = 0
    agree: int = 0
    per_class: dict = field(default_factory=dict)
    unexplained: list = field(default_factory=list)
    notes: dict = field(default_factory=dict)
    outcomes: dict = field(default_factory=dict)  # refimpl outcome kinds (coverage)

    def add(self, res: CaseResult) -> None:
        self.cases += 1
        ref = res.ref
        kinds = ["ok"] if ref.vector is None else [f"#{'PF' if ref.vector == 14 else 'GP'}"]
        if ref.vector == 14:
            kinds += [n for b, n in ((PF_P, "P"), (PF_RSVD, "RSVD"), (PF_PK, "PK"), (PF_F, "F"), (PF_U, "U"),
                                     (PF_W, "W")) if ref.error_code & b]
        if ref.vector is None and ref.level and ref.level > 1:
            kinds.append(f"large-L{ref.level}")
        for k in kinds:
            self.outcomes[k] = self.outcomes.get(k, 0) + 1
        if res.agree:
            self.agree += 1
        for c in res.classes:
            self.per_class[c.name] = self.per_class.get(c.name, 0) + 1
        for n in res.notes:
            self.notes[n] = self.notes.get(n, 0) + 1
        if res.problems:
            self.unexplained.append(res)

    def line(self) -> str:
        cls = ", ".join(f"{k}={v}" for k, v in sorted(self.per_class.items())) or "none"
        cov = " ".join(f"{k}={v}" for k, v in sorted(self.outcomes.items()))
        return (f"unicorn-diff {self.mode.name}: {self.cases} cases, {self.agree} agree, "
                f"{self.cases - self.agree - len(self.unexplained)} explained [{cls}], "
                f"{len(self.unexplained)} UNEXPLAINED; refimpl outcomes: {cov}")


def run_mode(mode: Mode, n: int, seed: int) -> Summary:
    rng = random.Random(f"{seed}-{mode.name}")
    s = Summary(mode)
    for i in range(n):
        case = gen_case(rng, mode, label=f"seed={seed} mode={mode.name} #{i}")
        s.add(run_case(case))
    return s
