"""The virtual machine around the MMU: host frames, memslots, vCPUs.

The MMUs of this package build tables that a (modelled) CPU walks in *host*
physical memory. This module supplies what they build them from:

Glossary
--------
host frame (pfn, hfn)
    A 4 KiB page of host-physical memory, numbered from 0.
    :class:`HostMemory` hands frames out for KVM's own page-table pages
    (``alloc_page``) and for guest RAM (``alloc_range``).
memslot
    A range of guest frames ``[base_gfn, base_gfn + npages)`` backed by the
    consecutive host frames ``[host_pfn, host_pfn + npages)``; the model's
    ``userspace_addr``. Flags: :data:`KVM_MEM_LOG_DIRTY_PAGES` (dirty
    logging) and :data:`KVM_MEM_READONLY`. See :class:`Memslot`.
address space (``as_id``)
    0 for normal memory, 1 for SMM; each has its own memslots.
memslot generation
    A counter bumped by every memslot change; MMIO SPTEs record it, so
    that a change makes them stale (:mod:`refimpl.host.spte`).
dirty bitmap
    Per memslot, the gfns written since the log was last read.
listener
    An MMU that must hear of memslot changes (KVM's
    ``kvm_arch_flush_shadow_memslot`` / ``kvm_arch_commit_memory_region``
    calls); see :class:`MemslotListener`.

Misuse (overlapping or malformed memslots, frames out of range, operations
on a deleted memslot) raises :class:`ValueError` or :class:`TypeError`
naming the problem, and leaves the VM exactly as it was
(:meth:`Kvm.snapshot` compares states). Guest accesses never raise here: a
gfn outside every memslot simply has no memslot (``gfn_to_memslot`` returns
None) and the MMU takes its MMIO path.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum, IntFlag
from typing import Optional, Protocol

from refimpl.errors import HostOutOfMemory, check_fields, check_range
from refimpl.guest.cpu import CpuState
from refimpl.guest.memory import MAX_SIZE, GuestMemory, check_int
from refimpl.host.kvm_mmu import Mmu
from refimpl.host.tlb import Tlb

__all__ = [
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "KVM_MEM_LOG_DIRTY_PAGES",
    "KVM_MEM_READONLY",
    "KVM_USER_MEM_SLOTS",
    "KVM_ADDRESS_SPACE_NUM",
    "MemslotFlags",
    "HostMemory",
    "Memslot",
    "MemslotChangeKind",
    "MemslotChange",
    "MemslotListener",
    "Vcpu",
    "Kvm",
]

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT


class MemslotFlags(IntFlag):
    """``kvm_userspace_memory_region.flags`` (``include/uapi/linux/kvm.h``)."""

    NONE = 0
    LOG_DIRTY_PAGES = 1 << 0
    READONLY = 1 << 1


#: Memslot flag: keep a dirty log (``KVM_MEM_LOG_DIRTY_PAGES``).
KVM_MEM_LOG_DIRTY_PAGES = MemslotFlags.LOG_DIRTY_PAGES
#: Memslot flag: guest writes exit to userspace (``KVM_MEM_READONLY``).
KVM_MEM_READONLY = MemslotFlags.READONLY
#: Slot ids a user may use (``KVM_USER_MEM_SLOTS`` on x86).
KVM_USER_MEM_SLOTS = 32764
#: Address spaces: normal and SMM (``KVM_ADDRESS_SPACE_NUM`` on x86).
KVM_ADDRESS_SPACE_NUM = 2


def _flag(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {value!r}")


# ---------------------------------------------------------------------------
# Host memory
# ---------------------------------------------------------------------------


#: The most host frames a :class:`HostMemory` may have (1 TiB of host).
MAX_FRAMES = 1 << 28


class HostMemory:
    """Host-physical memory: ``nframes`` 4 KiB frames and who uses them.

    Frames ``[0, backed_frames)`` have bytes (a :class:`refimpl.guest.memory.GuestMemory`
    at host address 0, ``self.mem``), so the CPU's walkers can read page
    tables there. Frames above ``backed_frames`` exist and can be allocated
    and mapped, but have no contents: large guests whose data the model
    never reads need no gigabytes of Python memory.

    Allocation is deterministic: :meth:`alloc_page` takes the lowest free
    backed frame (page-table pages, shadow pages), :meth:`alloc_range` the
    highest free aligned run (guest RAM), so the two rarely meet.

    Parameters
    ----------
    nframes : int
        Number of host frames, ``1 <= nframes <= MAX_FRAMES`` (2**28: the
        model keeps a byte per frame).
    backed_frames : int or None
        Frames with contents (default: all), at most ``nframes`` and at most
        2**20 (4 GiB of bytes, :data:`refimpl.guest.memory.MAX_SIZE`).
    maxphyaddr : int
        The host's MAXPHYADDR (``boot_cpu_data.x86_phys_bits``), 32..52;
        SPTE reserved bits and the MMIO SPTE value depend on it.

    Raises
    ------
    ValueError
        Sizes out of range, or ``nframes`` not addressable with
        ``maxphyaddr`` bits.

    KVM
    ---
    Stands for the host kernel's page allocator (``__get_free_page`` for
    page-table pages in ``tdp_mmu_alloc_sp``/``kvm_mmu_alloc_shadow_page``)
    and for the frames that back a memslot's ``userspace_addr``.
    """

    def __init__(self, nframes: int, *, backed_frames: Optional[int] = None,
                 maxphyaddr: int = 46) -> None:
        nframes = check_int("nframes", nframes)
        if not 1 <= nframes <= MAX_FRAMES:
            raise ValueError(f"nframes must be in [1, {MAX_FRAMES:#x}], got {nframes:#x}")
        maxphyaddr = check_int("maxphyaddr", maxphyaddr)
        if not 32 <= maxphyaddr <= 52:
            raise ValueError(f"maxphyaddr must be in [32, 52], got {maxphyaddr}")
        if nframes > 1 << (maxphyaddr - PAGE_SHIFT):
            raise ValueError(
                f"nframes {nframes} exceeds what maxphyaddr={maxphyaddr} can address"
            )
        if backed_frames is None:
            backed_frames = nframes
        backed_frames = check_int("backed_frames", backed_frames)
        if not 0 <= backed_frames <= min(nframes, MAX_SIZE // PAGE_SIZE):
            raise ValueError(f"backed_frames must be in [0, {min(nframes, MAX_SIZE // PAGE_SIZE)}], "
                             f"got {backed_frames}")
        self.nframes = nframes
        self.backed_frames = backed_frames
        self.maxphyaddr = maxphyaddr
        self.mem = GuestMemory(backed_frames * PAGE_SIZE)
        self._used = bytearray(nframes)
        self.pages_allocated = 0
        self.pages_freed = 0

    def __repr__(self) -> str:
        return (f"HostMemory(nframes={self.nframes}, backed={self.backed_frames}, "
                f"used={self.used_frames})")

    @property
    def used_frames(self) -> int:
        """Number of allocated frames."""
        return self.nframes - self._used.count(0)

    def is_allocated(self, pfn: int) -> bool:
        """Whether frame ``pfn`` is allocated (False outside host memory)."""
        pfn = check_int("pfn", pfn)
        return 0 <= pfn < self.nframes and bool(self._used[pfn])

    def is_backed(self, pfn: int) -> bool:
        """Whether frame ``pfn`` has contents the walkers can read."""
        pfn = check_int("pfn", pfn)
        return 0 <= pfn < self.backed_frames

    def alloc_page(self) -> int:
        """Allocate one zeroed backed frame (a page-table page); its pfn.

        Raises
        ------
        refimpl.errors.HostOutOfMemory
            If no backed frame is free (the host is out of memory).
        """
        pfn = self._used.find(0, 0, self.backed_frames)
        if pfn < 0:
            raise HostOutOfMemory("host memory: no free backed frame for a page-table page")
        self._used[pfn] = 1
        self.mem.buffer[pfn * PAGE_SIZE:(pfn + 1) * PAGE_SIZE] = bytes(PAGE_SIZE)
        self.pages_allocated += 1
        return pfn

    def free_page(self, pfn: int) -> None:
        """Free a frame from :meth:`alloc_page`."""
        pfn = check_int("pfn", pfn)
        self.free_range(pfn, 1)

    def alloc_range(self, npages: int, align: int = 1) -> int:
        """Allocate the highest free run of ``npages`` frames starting at a
        multiple of ``align``; returns its first pfn.

        Raises
        ------
        ValueError
            ``npages < 1`` or ``align`` not a power of two.
        refimpl.errors.HostOutOfMemory
            If no such run is free.
        """
        npages = check_int("npages", npages)
        align = check_int("align", align)
        if npages < 1:
            raise ValueError(f"npages must be >= 1, got {npages}")
        if align < 1 or align & (align - 1):
            raise ValueError(f"align must be a power of two, got {align}")
        start = (self.nframes - npages) // align * align
        while start >= 0:
            busy = self._used.rfind(1, start, start + npages)
            if busy < 0:
                self._used[start:start + npages] = b"\x01" * npages
                for p in range(start, min(start + npages, self.backed_frames)):
                    self.mem.buffer[p * PAGE_SIZE:(p + 1) * PAGE_SIZE] = bytes(PAGE_SIZE)
                self.pages_allocated += npages
                return start
            # The run must end at or below the busy frame.
            if busy - npages < 0:
                break
            start = (busy - npages) // align * align
        raise HostOutOfMemory(f"host memory: no free run of {npages} frames aligned to {align}")

    def free_range(self, pfn: int, npages: int) -> None:
        """Free ``npages`` frames from ``pfn``; all must be allocated.

        Raises
        ------
        ValueError
            If a frame is outside host memory or not allocated (nothing is
            freed then).
        """
        pfn = check_int("pfn", pfn)
        npages = check_int("npages", npages)
        if npages < 1 or pfn < 0 or pfn + npages > self.nframes:
            raise ValueError(f"frames [{pfn:#x}, +{npages}) are outside host memory")
        if self._used.find(0, pfn, pfn + npages) >= 0:
            raise ValueError(f"frames [{pfn:#x}, +{npages}) are not all allocated")
        self._used[pfn:pfn + npages] = bytes(npages)
        self.pages_freed += npages

    def read64(self, hpa: int) -> int:
        """The 64-bit word at host-physical ``hpa`` (a backed frame)."""
        hpa = check_int("hpa", hpa)
        return self.mem.read64(hpa)

    def write64(self, hpa: int, value: int) -> None:
        """Store a 64-bit word at host-physical ``hpa`` (a backed frame)."""
        hpa = check_int("hpa", hpa)
        value = check_int("value", value)
        self.mem.write64(hpa, value)

    def state(self) -> tuple[bytes, bytes]:
        """Allocation map and contents, for snapshots."""
        return bytes(self._used), bytes(self.mem.buffer)


# ---------------------------------------------------------------------------
# Memslots
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Memslot:
    """One ``struct kvm_memory_slot``.

    Parameters
    ----------
    id : int
        The slot id, ``0 <= id < KVM_USER_MEM_SLOTS``.
    as_id : int
        Address space: 0 (normal) or 1 (SMM).
    base_gfn, npages : int
        The guest frames ``[base_gfn, base_gfn + npages)``, ``npages >= 1``.
    host_pfn : int
        First host frame; guest frame ``base_gfn + i`` is host frame
        ``host_pfn + i`` (the model's ``userspace_addr``).
    flags : refimpl.host.vm.MemslotFlags
        :data:`KVM_MEM_LOG_DIRTY_PAGES`, :data:`KVM_MEM_READONLY`.
    owns_frames : bool
        The VM allocated the host frames and frees them on deletion.

    KVM
    ---
    ``struct kvm_memory_slot`` in ``include/linux/kvm_host.h``; validated by
    ``__kvm_set_memory_region`` in ``virt/kvm/kvm_main.c``.
    """

    id: int
    as_id: int
    base_gfn: int
    npages: int
    host_pfn: int
    flags: MemslotFlags = MemslotFlags.NONE
    owns_frames: bool = False

    def __post_init__(self) -> None:
        check_fields(self, id=int, as_id=int, base_gfn=int, npages=int, host_pfn=int,
                     flags=MemslotFlags, owns_frames=bool)
        check_range("Memslot.id", self.id, 0, 1 << 16)
        check_range("Memslot.as_id", self.as_id, 0, 2)
        check_range("Memslot.base_gfn", self.base_gfn, 0, 1 << 52)
        check_range("Memslot.npages", self.npages, 1, 1 << 52)
        check_range("Memslot.host_pfn", self.host_pfn, 0, 1 << 52)

    @property
    def end_gfn(self) -> int:
        """One past the last gfn."""
        return self.base_gfn + self.npages

    @property
    def readonly(self) -> bool:
        """``KVM_MEM_READONLY``: guest writes exit to userspace."""
        return bool(self.flags & MemslotFlags.READONLY)

    @property
    def dirty_logging(self) -> bool:
        """``KVM_MEM_LOG_DIRTY_PAGES`` (``kvm_slot_dirty_track_enabled``)."""
        return bool(self.flags & MemslotFlags.LOG_DIRTY_PAGES)

    def contains(self, gfn: int) -> bool:
        """Whether ``gfn`` lies in the slot."""
        gfn = check_int("gfn", gfn)
        return self.base_gfn <= gfn < self.end_gfn

    def gfn_to_hfn(self, gfn: int) -> int:
        """The host frame backing ``gfn`` (``__gfn_to_hva_memslot`` + GUP)."""
        gfn = check_int("gfn", gfn)
        if not self.contains(gfn):
            raise ValueError(f"gfn {gfn:#x} is not in memslot {self.id}")
        return self.host_pfn + (gfn - self.base_gfn)


class MemslotChangeKind(Enum):
    """``enum kvm_mr_change`` (``include/linux/kvm_host.h``)."""

    CREATE = "create"
    DELETE = "delete"
    MOVE = "move"
    FLAGS_ONLY = "flags_only"


@dataclass(frozen=True)
class MemslotChange:
    """A committed memslot change: what the MMUs are told.

    Parameters
    ----------
    kind : refimpl.host.vm.MemslotChangeKind
    old, new : refimpl.host.vm.Memslot or None
        The slot before (None for CREATE) and after (None for DELETE).
    generation : int
        The memslot generation after the change.
    """

    kind: MemslotChangeKind
    old: Optional[Memslot]
    new: Optional[Memslot]
    generation: int


class MemslotListener(Protocol):
    """What an MMU implements to follow the VM's memslots and dirty logs.

    KVM
    ---
    ``kvm_arch_flush_shadow_memslot``, ``kvm_arch_commit_memory_region``
    (``kvm_mmu_slot_apply_flags``), ``kvm_arch_sync_dirty_log`` and
    ``kvm_arch_mmu_enable_log_dirty_pt_masked`` in ``arch/x86/kvm``.
    """

    def memslot_changed(self, kvm: "Kvm", change: MemslotChange) -> None:
        """React to a committed change (zap, invalidate, write-protect...)."""

    def sync_dirty_log(self, kvm: "Kvm", slot: Memslot) -> None:
        """Move hardware-logged dirty pages (PML) into the dirty bitmap."""

    def dirty_log_cleared(self, kvm: "Kvm", slot: Memslot, gfns: frozenset[int]) -> None:
        """Re-arm dirty tracking for ``gfns`` after userspace read the log."""


@dataclass(eq=False)
class Vcpu:
    """A vCPU as the MMUs see it (``struct kvm_vcpu``).

    Attributes
    ----------
    vcpu_id : int
    smm : bool
        In System Management Mode: memslots of address space 1, and
        ``role.smm`` set.
    cpu : refimpl.guest.cpu.CpuState or None
        The guest registers (for shadow paging); None for TDP-only users.
    mmu : refimpl.host.kvm_mmu.Mmu or None
        ``vcpu->arch.mmu`` (set by the MMU that runs this vCPU).
    pml_buffer : list of int
        GPAs the CPU logged since the last PML flush (Intel PML).
    tlb : refimpl.host.tlb.Tlb or None
        The vCPU's one TLB, whose entries are tagged by root, as VPID/EPTP
        or ASID tagging does; every :class:`refimpl.host.kvm_mmu.Mmu` of the vCPU
        (``root_mmu``, ``guest_mmu``) shares it, so a flush reaches all of
        them. Made on first use by :func:`refimpl.host.tlb.vcpu_tlb`.
    """

    vcpu_id: int
    smm: bool = False
    cpu: Optional[CpuState] = None
    mmu: Optional[Mmu] = None
    pml_buffer: list[int] = field(default_factory=list)
    tlb: Optional[Tlb] = None

    def __post_init__(self) -> None:
        check_fields(self, vcpu_id=int, smm=bool, pml_buffer=list, cpu=(CpuState, None),
                     mmu=(Mmu, None), tlb=(Tlb, None))
        check_range("Vcpu.vcpu_id", self.vcpu_id, 0, 1 << 16)

    @property
    def as_id(self) -> int:
        """The memslot address space (``kvm_arch_vcpu_memslots_id``: 1 in SMM)."""
        return 1 if self.smm else 0


class Kvm:
    """A VM: host memory, memslots per address space, generation, vCPUs.

    Parameters
    ----------
    host : refimpl.host.vm.HostMemory
    guest_maxphyaddr : int or None
        MAXPHYADDR the guest sees (default: the host's). Memslots and
        faulting GPAs must lie below it.

    Attributes
    ----------
    generation : int
        Memslot generation (``kvm_memslots(kvm)->generation``); +1 per
        committed change.
    vcpus : list of refimpl.host.vm.Vcpu
    listeners : list of refimpl.host.vm.MemslotListener
        MMUs told about each change, in order.

    KVM
    ---
    ``struct kvm`` (``include/linux/kvm_host.h``) and the memslot update
    path ``kvm_set_memory_region`` in ``virt/kvm/kvm_main.c``. Divergence:
    KVM adds ``KVM_ADDRESS_SPACE_NUM`` to the generation per update and
    marks an update in progress with a high bit; the model adds 1, which
    keeps the property that matters (every change makes a new value).
    """

    def __init__(self, host: HostMemory, *, guest_maxphyaddr: Optional[int] = None,
                 initial_generation: int = 0) -> None:
        if not isinstance(host, HostMemory):
            raise TypeError(f"host must be a HostMemory, got {type(host).__name__}")
        if guest_maxphyaddr is None:
            guest_maxphyaddr = host.maxphyaddr
        guest_maxphyaddr = check_int("guest_maxphyaddr", guest_maxphyaddr)
        if not 32 <= guest_maxphyaddr <= host.maxphyaddr:
            raise ValueError(
                f"guest_maxphyaddr must be in [32, {host.maxphyaddr}], got {guest_maxphyaddr}"
            )
        self.host = host
        self.guest_maxphyaddr = guest_maxphyaddr
        self.generation = check_int("initial_generation", initial_generation)
        self._slots: dict[tuple[int, int], Memslot] = {}
        self._dirty: dict[tuple[int, int], set[int]] = {}
        self._deleted: set[tuple[int, int]] = set()
        self.vcpus: list[Vcpu] = []
        self.listeners: list[MemslotListener] = []

    # -- vCPUs -------------------------------------------------------------

    def create_vcpu(self, *, smm: bool = False) -> Vcpu:
        """Add a vCPU (``KVM_CREATE_VCPU``) and return it."""
        v = Vcpu(len(self.vcpus), smm=_flag("smm", smm))
        self.vcpus.append(v)
        return v

    # -- lookups -----------------------------------------------------------

    @property
    def max_gfn(self) -> int:
        """One past the highest gfn the guest can address."""
        return 1 << (self.guest_maxphyaddr - PAGE_SHIFT)

    def memslots(self, as_id: int = 0) -> tuple[Memslot, ...]:
        """The slots of an address space, by base gfn."""
        as_id = check_int("as_id", as_id)
        return tuple(sorted((s for (a, _), s in self._slots.items() if a == as_id),
                            key=lambda s: s.base_gfn))

    def all_memslots(self) -> tuple[Memslot, ...]:
        """Every slot of every address space."""
        return tuple(sorted(self._slots.values(), key=lambda s: (s.as_id, s.base_gfn)))

    def memslot(self, slot_id: int, as_id: int = 0) -> Memslot:
        """The slot with this id.

        Raises
        ------
        ValueError
            If there is none (never created, or deleted).
        """
        key = (check_int("as_id", as_id), check_int("slot_id", slot_id))
        s = self._slots.get(key)
        if s is None:
            what = "was deleted" if key in self._deleted else "does not exist"
            raise ValueError(f"slot_id {slot_id} (as_id {as_id}) {what}")
        return s

    def gfn_to_memslot(self, gfn: int, as_id: int = 0) -> Optional[Memslot]:
        """The slot holding ``gfn``, or None (``__gfn_to_memslot``)."""
        return self._gfn_to_memslot(check_int("gfn", gfn), check_int("as_id", as_id))

    def _gfn_to_memslot(self, gfn: int, as_id: int) -> Optional[Memslot]:
        """:meth:`gfn_to_memslot` for the MMUs, on checked values."""
        for (a, _), s in self._slots.items():
            if a == as_id and s.base_gfn <= gfn < s.end_gfn:
                return s
        return None

    def gfn_to_hfn(self, gfn: int, as_id: int = 0) -> Optional[int]:
        """The host frame behind ``gfn``, or None outside every slot."""
        gfn = check_int("gfn", gfn)
        s = self._gfn_to_memslot(gfn, check_int("as_id", as_id))
        return None if s is None else s.host_pfn + (gfn - s.base_gfn)

    # -- validation --------------------------------------------------------

    def _check_new(self, slot: Memslot, ignore: Optional[tuple[int, int]] = None) -> None:
        if slot.npages < 1:
            raise ValueError(f"npages must be >= 1, got {slot.npages}")
        if slot.base_gfn < 0:
            raise ValueError(f"base_gfn must be >= 0, got {slot.base_gfn:#x}")
        if slot.end_gfn > self.max_gfn:
            raise ValueError(
                f"base_gfn {slot.base_gfn:#x} + npages {slot.npages:#x} exceeds the guest's "
                f"physical address space ({self.max_gfn:#x} frames)"
            )
        if slot.host_pfn < 0 or slot.host_pfn + slot.npages > self.host.nframes:
            raise ValueError(
                f"host_pfn range [{slot.host_pfn:#x}, +{slot.npages:#x}) is outside host memory "
                f"({self.host.nframes:#x} frames)"
            )
        for (a, i), s in self._slots.items():
            if (a, i) == ignore or a != slot.as_id:
                continue
            if slot.base_gfn < s.end_gfn and s.base_gfn < slot.end_gfn:
                raise ValueError(
                    f"memslot [{slot.base_gfn:#x}, {slot.end_gfn:#x}) overlaps slot {i} "
                    f"[{s.base_gfn:#x}, {s.end_gfn:#x}) in as_id {a}"
                )

    @staticmethod
    def _check_flags(flags: object) -> MemslotFlags:
        f = check_int("flags", flags)
        known = int(MemslotFlags.LOG_DIRTY_PAGES) | int(MemslotFlags.READONLY)
        if f < 0 or f & ~known:
            raise ValueError(f"flags {f:#x} has unknown bits")
        return MemslotFlags(f)

    def _commit(self, change: MemslotChange) -> None:
        for listener in self.listeners:
            listener.memslot_changed(self, change)

    def _alloc_slot_frames(self, base_gfn: int, npages: int) -> int:
        """Host frames for a slot, congruent to ``base_gfn`` modulo the
        largest huge page the slot can hold, so that huge pages are possible."""
        for span in (1 << 18, 1 << 9):
            offset = base_gfn % span
            if npages + offset >= span:
                try:
                    start = self.host.alloc_range(npages + offset, span)
                except MemoryError:
                    continue
                if offset:
                    self.host.free_range(start, offset)
                    self.host.pages_freed -= offset
                    self.host.pages_allocated -= offset
                return start + offset
        return self.host.alloc_range(npages)

    # -- memslot operations ------------------------------------------------

    def add_memslot(self, slot_id: int, base_gfn: int, npages: int, *,
                    host_pfn: Optional[int] = None, flags: int = 0,
                    as_id: int = 0) -> Memslot:
        """Create a memslot (``KVM_SET_USER_MEMORY_REGION``, ``KVM_MR_CREATE``).

        Parameters
        ----------
        slot_id, base_gfn, npages : int
        host_pfn : int or None
            Host frames to map; they must be allocated in host memory (the
            caller keeps ownership). None: the VM allocates frames, aligned
            so that huge pages are possible, and frees them on deletion.
        flags : int
            :class:`MemslotFlags` bits.
        as_id : int
            0 or 1 (SMM).

        Raises
        ------
        ValueError
            Bad id, id in use, bad flags, empty or out-of-range slot,
            overlap with a slot of the same address space, host frames out
            of range or not allocated. The VM is unchanged.
        """
        flags = check_int("flags", flags)
        slot_id = check_int("slot_id", slot_id)
        as_id = check_int("as_id", as_id)
        base_gfn = check_int("base_gfn", base_gfn)
        npages = check_int("npages", npages)
        flags = self._check_flags(flags)
        if not 0 <= slot_id < KVM_USER_MEM_SLOTS:
            raise ValueError(f"slot_id must be in [0, {KVM_USER_MEM_SLOTS}), got {slot_id}")
        if as_id not in range(KVM_ADDRESS_SPACE_NUM):
            raise ValueError(f"as_id must be 0 or 1, got {as_id}")
        if (as_id, slot_id) in self._slots:
            raise ValueError(f"slot_id {slot_id} (as_id {as_id}) already exists")
        owns = host_pfn is None
        probe = Memslot(slot_id, as_id, base_gfn, npages, 0 if owns else check_int("host_pfn", host_pfn), flags, owns)
        if owns:
            self._check_new(replace(probe, host_pfn=0))
            slot = replace(probe, host_pfn=self._alloc_slot_frames(base_gfn, npages))
        else:
            self._check_new(probe)
            if self.host._used.find(0, probe.host_pfn, probe.host_pfn + npages) >= 0:
                raise ValueError(
                    f"host_pfn range [{probe.host_pfn:#x}, +{npages:#x}) is not allocated host memory"
                )
            slot = probe
        self._slots[(as_id, slot_id)] = slot
        self._dirty[(as_id, slot_id)] = set()
        self._deleted.discard((as_id, slot_id))
        self.generation += 1
        self._commit(MemslotChange(MemslotChangeKind.CREATE, None, slot, self.generation))
        return slot

    def delete_memslot(self, slot_id: int, as_id: int = 0) -> None:
        """Delete a memslot (``KVM_MR_DELETE``); the MMUs zap its mappings.

        Raises
        ------
        ValueError
            If the slot does not exist (or was already deleted).
        """
        slot_id = check_int("slot_id", slot_id)
        as_id = check_int("as_id", as_id)
        old = self.memslot(slot_id, as_id)
        key = (old.as_id, old.id)
        del self._slots[key]
        del self._dirty[key]
        self._deleted.add(key)
        self.generation += 1
        # The MMUs drop every mapping of the old frames before the frames go
        # back to the host allocator.
        self._commit(MemslotChange(MemslotChangeKind.DELETE, old, None, self.generation))
        if old.owns_frames:
            self.host.free_range(old.host_pfn, old.npages)

    def move_memslot(self, slot_id: int, new_base_gfn: int, as_id: int = 0) -> Memslot:
        """Move a slot to another gfn range, same frames (``KVM_MR_MOVE``).

        Raises
        ------
        ValueError
            Unknown slot, dirty logging on (KVM refuses to move a logged
            slot), or the new range is bad or overlaps.
        """
        slot_id = check_int("slot_id", slot_id)
        as_id = check_int("as_id", as_id)
        old = self.memslot(slot_id, as_id)
        new_base_gfn = check_int("new_base_gfn", new_base_gfn)
        if old.dirty_logging:
            raise ValueError(f"slot_id {slot_id}: cannot move a slot with dirty logging on")
        new = replace(old, base_gfn=new_base_gfn)
        self._check_new(new, ignore=(old.as_id, old.id))
        self._slots[(old.as_id, old.id)] = new
        self._dirty[(old.as_id, old.id)] = set()
        self.generation += 1
        self._commit(MemslotChange(MemslotChangeKind.MOVE, old, new, self.generation))
        return new

    def set_memslot_flags(self, slot_id: int, flags: int, as_id: int = 0) -> Memslot:
        """Change a slot's flags (``KVM_MR_FLAGS_ONLY``): dirty logging on/off.

        Raises
        ------
        ValueError
            Unknown slot, unknown flag bits, or a change of
            ``KVM_MEM_READONLY`` (KVM refuses it).
        """
        slot_id = check_int("slot_id", slot_id)
        flags = check_int("flags", flags)
        as_id = check_int("as_id", as_id)
        old = self.memslot(slot_id, as_id)
        flags = self._check_flags(flags)
        if (flags ^ old.flags) & MemslotFlags.READONLY:
            raise ValueError(f"flags: KVM_MEM_READONLY of slot {slot_id} cannot change")
        new = replace(old, flags=flags)
        self._slots[(old.as_id, old.id)] = new
        if not new.dirty_logging:
            self._dirty[(old.as_id, old.id)] = set()
        self.generation += 1
        self._commit(MemslotChange(MemslotChangeKind.FLAGS_ONLY, old, new, self.generation))
        return new

    def enable_dirty_logging(self, slot_id: int, as_id: int = 0) -> Memslot:
        """Set ``KVM_MEM_LOG_DIRTY_PAGES`` on a slot."""
        slot_id = check_int("slot_id", slot_id)
        as_id = check_int("as_id", as_id)
        s = self.memslot(slot_id, as_id)
        return self.set_memslot_flags(slot_id, s.flags | MemslotFlags.LOG_DIRTY_PAGES, as_id)

    def disable_dirty_logging(self, slot_id: int, as_id: int = 0) -> Memslot:
        """Clear ``KVM_MEM_LOG_DIRTY_PAGES`` on a slot."""
        slot_id = check_int("slot_id", slot_id)
        as_id = check_int("as_id", as_id)
        s = self.memslot(slot_id, as_id)
        return self.set_memslot_flags(slot_id, s.flags & ~MemslotFlags.LOG_DIRTY_PAGES, as_id)

    # -- dirty log ---------------------------------------------------------

    def mark_page_dirty(self, gfn: int, as_id: int = 0) -> None:
        """Record a write to ``gfn`` if its slot logs (``mark_page_dirty_in_slot``)."""
        self._mark_page_dirty(check_int("gfn", gfn), check_int("as_id", as_id))

    def _mark_page_dirty(self, gfn: int, as_id: int) -> None:
        """:meth:`mark_page_dirty` for the MMUs, on checked values."""
        s = self._gfn_to_memslot(gfn, as_id)
        if s is not None and s.dirty_logging:
            self._dirty[(s.as_id, s.id)].add(gfn)

    def peek_dirty_log(self, slot_id: int, as_id: int = 0) -> frozenset[int]:
        """The dirty gfns of a slot, after syncing hardware logs; not cleared."""
        slot_id = check_int("slot_id", slot_id)
        as_id = check_int("as_id", as_id)
        s = self.memslot(slot_id, as_id)
        for listener in self.listeners:
            listener.sync_dirty_log(self, s)
        return frozenset(self._dirty[(s.as_id, s.id)])

    def get_dirty_log(self, slot_id: int, as_id: int = 0) -> frozenset[int]:
        """Read and clear a slot's dirty log (``KVM_GET_DIRTY_LOG``).

        The MMUs re-arm tracking for the returned gfns (write-protect or
        clear D) before this returns, as ``kvm_arch_mmu_enable_log_dirty_pt_masked``
        does.

        Raises
        ------
        ValueError
            Unknown slot, or dirty logging is off for it.
        """
        slot_id = check_int("slot_id", slot_id)
        as_id = check_int("as_id", as_id)
        s = self.memslot(slot_id, as_id)
        if not s.dirty_logging:
            raise ValueError(f"slot_id {slot_id}: dirty logging is not enabled")
        gfns = self.peek_dirty_log(slot_id, as_id)
        self._dirty[(s.as_id, s.id)] = set()
        if gfns:
            for listener in self.listeners:
                listener.dirty_log_cleared(self, s, gfns)
        return gfns

    # -- snapshots ---------------------------------------------------------

    def snapshot(self) -> tuple:
        """Everything a memslot operation may change, as a comparable value."""
        return (
            tuple(sorted(self._slots.items())),
            tuple(sorted((k, tuple(sorted(v))) for k, v in self._dirty.items())),
            tuple(sorted(self._deleted)),
            self.generation,
            self.host.state(),
        )
