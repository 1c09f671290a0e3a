"""The shadow MMU: KVM's tables for a guest that has its own page tables.

Without EPT/NPT, the CPU walks tables that KVM builds from the guest's:
*shadow page tables* that map guest-virtual addresses straight to host
frames. This module models how KVM builds and keeps them, on top of the VM
of :mod:`refimpl.host.vm`, the SPTE format of :mod:`refimpl.host.spte` and the
per-vCPU :class:`refimpl.host.kvm_mmu.Mmu` / :class:`refimpl.host.kvm_mmu.MmuKind`.

Glossary
--------
shadow page (SP, :class:`refimpl.host.mmu_page.MmuPage`)
    One host page of 512 SPTEs that shadows one guest table (or part of
    one: see *quadrant*), or maps a linear range of guest frames (*direct*).
    Identified by ``(gfn, role.word)`` in the VM's page hash.
role
    A :class:`refimpl.host.roles.PageRole`: everything that changes the
    *contents* of an SP. Two walks share an SP only if the roles are equal.
access (``role.access``)
    The rights (ACC_*) of the guest entries *above* the shadowed table,
    ANDed. Leaf SPTEs get ``role.access & gpte rights``.
quadrant
    A 32-bit guest table has 1024 four-byte entries, a shadow table 512
    eight-byte ones: the guest page directory is shadowed by four SPs
    (quadrants 0-3, 1 GiB each, the four PAE roots) and each guest page
    table by two (quadrants 0-1, 2 MiB each).
direct SP
    A level-1 SP that maps the 512 frames of a guest large page with 4 KiB
    SPTEs; its gfn is the first frame, its access the large page's rights.
write tracking, write protection
    Guest frames that hold shadowed upper-level tables are *write-tracked*:
    every guest store to them is emulated (:meth:`ShadowMmu.guest_write`)
    and zaps the SPTEs it makes stale. Frames of shadowed level-1 tables
    are only *write-protected* in the SPTEs; a store unprotects them by
    marking their SPs *unsync*.
unsync
    A level-1 SP whose guest table may have changed since its SPTEs were
    made. Allowed because the architecture lets the TLB keep stale leaf
    translations until INVLPG or a CR3 load; KVM *syncs* it then
    (``mmu_sync_children``, ``sync_spte``). Unsync pages are not kept per
    vCPU: like every shadow page they live in the VM's page hash
    (``mmu_page_hash``, here ``ShadowMmu.page_hash``), and a vCPU finds
    them below its roots through ``unsync_child_bitmap``.
CR3 load
    A new CR3 first tries the cached roots (``prev_roots``); a root that
    must be rebuilt finds its existing child SPs again in the page hash
    (``kvm_mmu_find_shadow_page``, reached through ``kvm_mmu_get_child_sp``
    as the fault path descends), so only tables never shadowed before get
    new SPs.
rmap
    Reverse map gfn -> leaf SPTEs mapping it, used to write-protect a frame
    (shadowing a new table, dirty logging).
prev_roots
    The three previous ``(pgd, root)`` pairs kept for a fast CR3 switch.
naive switches (:data:`BUGS`)
    Each reproduces the wrong behaviour behind one kvm-unit-tests directed
    regression (``x86/access.c``), for the tests and the book.

Scope and deliberate simplifications: host huge pages are off (every leaf
SPTE maps 4 KiB, so guest large pages always get direct SPs, the case the
regressions need); no fast page fault, no NX huge page splitting, no
``is_self_change_mapping``; guests must have paging on (``CR0.PG=1``) and no
protection keys (KVM offers PKU only with TDP); guest page-table stores are
modelled by :meth:`ShadowMmu.guest_write` (the vCPU's own store path for its
tables), and :meth:`ShadowMmu.access` models loads/stores whose data the
model ignores.

KVM
---
``arch/x86/kvm/mmu/mmu.c``, ``arch/x86/kvm/mmu/paging_tmpl.h``,
``arch/x86/kvm/mmu/mmu_internal.h`` (``struct kvm_mmu_page``) and
``Documentation/virt/kvm/x86/mmu.rst`` (torvalds/linux, v6.x).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterable, Optional

from refimpl.guest.cpu import CpuState, PagingMode
from refimpl.guest.faults import Fault, WalkError, fault_for
from refimpl.guest.memory import GuestMemory, check_int
from refimpl.host.kvm_mmu import INVALID_ROOT, KVM_MMU_NUM_PREV_ROOTS, Mmu, MmuKind, RootInfo, shadow_kind
from refimpl.host.outcomes import AccessPath, AccessResult, GuestStore, HwFault, RetPf
from refimpl.host.mmu import HwResult, _hw_translate_shadow
from refimpl.host.mmu_page import MmuPage
from refimpl.host.tlb import vcpu_tlb
from refimpl.host.mmu_page import SPTE_ENT_PER_PAGE, _acc_str
from refimpl.host.roles import (
    ACC_ALL, ACC_EXEC_MASK, ACC_USER_MASK, ACC_WRITE_MASK, PT32E_ROOT_LEVEL,
    PT64_ROOT_4LEVEL, CpuRole, PageRole, calc_cpu_role, calc_shadow_root_role,
)
from refimpl.host.spte import (
    MMIO_SPTE_GEN_MASK, SpteFormat, _large, _mmio, _present, _to_pfn, get_mmio_spte_generation,
    get_mmio_spte_gfn, make_mmio_spte, make_nonleaf_spte, make_spte, shadow_zero_check_for,
    x86_format,
)
from refimpl.host.vm import Kvm, Memslot, MemslotChange, MemslotChangeKind, Vcpu
from refimpl.guest.walker import (
    ACCESS_FETCH, ACCESS_USER, ACCESS_WRITE, TranslateResult, WalkContext, check_access,
    check_gva, load_pdptrs, walk_addr_generic, walk_context,
)
from refimpl.fast.scalar import translate
from refimpl.errors import check_bugs, check_instance

__all__ = [
    "BUGS",
    "PTE_PREFETCH_NUM",
    "SPTE_ENT_PER_PAGE",
    "GuestWalk",
    "FaultStep",
    "ShadowVcpu",
    "ShadowMmu",
    "kvm_mmu_child_role",
    "get_written_sptes",
    "detect_write_misaligned",
]

#: Neighbouring SPTEs filled ahead of a fault (``PTE_PREFETCH_NUM``).
PTE_PREFETCH_NUM = 8

#: The naive switches: each re-creates a bug a kvm-unit-tests regression
#: catches (the value says which test and what the fix was).
BUGS: dict[str, str] = {
    "single_pt_access": (
        "check_effective_sp_permissions: every SP on the path gets the rights of *all* "
        "non-leaf entries, not of the entries above it (fixed 2021, Lai Jiangshan, "
        "'Use the correct inherited permissions to get shadow page')"),
    "direct_access_from_parents": (
        "corrupt_hugepage_trigger: a direct SP's role.access leaves out the large page's "
        "own rights and an existing direct SP is never re-validated (validate_direct_spte)"),
    "wp0_fixup_after_role": (
        "check_large_pte_dirty_for_nowp: the CR0.WP=0 fix-up (W=1, U=0) is applied to the "
        "leaf after the direct SP's role was chosen from the unmodified rights (2012, "
        "Xiao Guangrong, 'KVM: MMU: fix Dirty bit missed if CR0.WP = 0', c22885050e65, "
        "unconfirmed)"),
    "smep_keeps_exec": (
        "check_smep_andnot_wp: the CR0.WP=0 fix-up turns a user page into a kernel page "
        "but leaves it executable, so SMEP no longer stops supervisor fetches"),
    "no_smep_andnot_wp_role": (
        "role.smep_andnot_wp left out: SPs built with CR0.WP=0, SMEP=0 are reused after "
        "SMEP is turned on"),
    "no_smap_andnot_wp_role": (
        "role.smap_andnot_wp left out: SPs built with CR0.WP=0, SMAP=0 are reused after "
        "SMAP is turned on"),
    "no_cr0_wp_role": (
        "role.cr0_wp left out: SPTEs made writable for a CR0.WP=0 supervisor write are "
        "reused after CR0.WP=1"),
    "prefetch_skips_checks": (
        "check_pfec_on_prefetch_pte: the prefetch loop goes on past unusable entries and "
        "installs any present neighbouring gpte, without the reserved-bit and accessed-bit "
        "checks of prefetch_invalid_gpte (a reconstruction: the 2010 fix, kvm commit "
        "3ddf6c06e13e, is not restated here)"),
}

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_PAGE = 4096


# ---------------------------------------------------------------------------
# Shadow pages
# ---------------------------------------------------------------------------


def kvm_mmu_child_role(parent: PageRole, index: int, direct: bool, access: int) -> PageRole:
    """The role of the SP that the SPTE ``parent.spt[index]`` points to.

    The parent's role with the level one lower, the given ``access`` and
    ``direct``, ``passthrough`` cleared; for a 32-bit guest the quadrant is
    the parity of ``index`` (two shadow PDEs per 4 MiB guest PDE: the first
    shadows guest PTEs 0-511, the second 512-1023).

    Raises
    ------
    ValueError
        ``index`` outside 0..511, ``access`` outside ACC_ALL, or a parent at
        level 1.

    KVM
    ---
    ``kvm_mmu_child_role`` in ``arch/x86/kvm/mmu/mmu.c``.
    """
    if not isinstance(parent, PageRole):
        raise TypeError(f"parent must be a PageRole, got {type(parent).__name__}")
    index = check_int("index", index)
    access = check_int("access", access)
    if not 0 <= index < SPTE_ENT_PER_PAGE:
        raise ValueError(f"index must be in [0, 512), got {index}")
    if not 0 <= access <= ACC_ALL:
        raise ValueError(f"access must be ACC bits, got {access:#x}")
    if parent.level <= 1:
        raise ValueError("parent: a level-1 page has no children")
    role = parent.replace(level=parent.level - 1, access=access, direct=int(bool(direct)),
                          passthrough=0)
    if role.has_4_byte_gpte:
        role = role.replace(quadrant=index & 1)
    return role


def detect_write_misaligned(role: PageRole, gpa: int, nbytes: int) -> bool:
    """Whether a guest store of ``nbytes`` at ``gpa`` straddles gptes of ``role``'s size.

    A one-byte store at the start of an entry is not misaligned (guests
    clear status bits that way); any other store under 4 bytes is.

    KVM
    ---
    ``detect_write_misaligned`` in ``arch/x86/kvm/mmu/mmu.c``.
    """
    gpa = check_int("gpa", gpa)
    nbytes = check_int("nbytes", nbytes)
    check_instance("role", role, PageRole)
    offset = gpa & (_PAGE - 1)
    pte_size = 4 if role.has_4_byte_gpte else 8
    if not offset & (pte_size - 1) and nbytes == 1:
        return False
    misaligned = (offset ^ (offset + nbytes - 1)) & ~(pte_size - 1)
    return bool(misaligned) or nbytes < 4


def get_written_sptes(role: PageRole, gpa: int) -> Optional[tuple[int, int]]:
    """``(first index, count)`` of the SPTEs of an SP with ``role`` that a
    guest store at ``gpa`` makes stale, or None if it shadows another part.

    For 32-bit guests the offset doubles (4-byte gptes, 8-byte SPTEs) and a
    guest PDE (4 MiB) is shadowed by two PDEs (2 MiB each).

    KVM
    ---
    ``get_written_sptes`` in ``arch/x86/kvm/mmu/mmu.c``.
    """
    gpa = check_int("gpa", gpa)
    check_instance("role", role, PageRole)
    offset = gpa & (_PAGE - 1)
    n = 1
    if role.has_4_byte_gpte:
        offset <<= 1
        if role.level == 2:
            offset = (offset & ~7) << 1
            n = 2
        quadrant = offset >> 12
        offset &= _PAGE - 1
        if quadrant != role.quadrant:
            return None
    return offset // 8, n


# ---------------------------------------------------------------------------
# The guest walk, as the shadow MMU reads it
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GuestWalk:
    """What the fault path needs from the guest walk (``struct guest_walker``).

    Parameters
    ----------
    result : refimpl.guest.walker.TranslateResult
        The walk (``fault`` set if the guest must see a fault).
    level : int
        Level of the leaf gpte.
    gfn : int
        The guest frame accessed (offset within a large page included).
    pte_access : int
        ACC rights of the whole walk (``protect_clean_gpte`` applied).
    pt_access : dict of int to int
        ``pt_access[level]``: rights of the entries *above* ``level``.
    table_gfn : dict of int to int
        ``table_gfn[level]``: the guest table holding the level-``level`` entry.
    ptes : dict of int to int
        ``ptes[level]``: the gpte read at ``level``.
    pte_gpa : dict of int to int
        Where each gpte was read.
    """

    result: TranslateResult
    level: int = 0
    gfn: int = 0
    pte_access: int = 0
    pt_access: dict = field(default_factory=dict)
    table_gfn: dict = field(default_factory=dict)
    ptes: dict = field(default_factory=dict)
    pte_gpa: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FaultStep:
    """One step of a traced shadow page fault (for the book's tables).

    Parameters
    ----------
    step : str
        ``"guest walk"``, ``"get SP"``, ``"link"``, ``"SPTE"``, ``"prefetch"``,
        ``"unsync"``, ``"sync"``, ``"zap"``...
    level : int or None
    detail : str
    value : int or None
        The gpte or SPTE involved.
    """

    step: str
    level: Optional[int]
    detail: str
    value: Optional[int] = None


@dataclass(eq=False)
class ShadowVcpu:
    """One vCPU under shadow paging: registers, its MMU, its kind, PAE root.

    Attributes
    ----------
    vcpu : refimpl.host.vm.Vcpu
    cpu : refimpl.guest.cpu.CpuState
        The guest's registers.
    mmu : refimpl.host.kvm_mmu.Mmu
        ``vcpu->arch.mmu`` (root, root_role, prev_roots).
    kind : refimpl.host.kvm_mmu.MmuKind
        The vCPU's own kind (the sketch's ``vcpu->arch.shadow_mmu``).
    cpu_role : refimpl.host.roles.CpuRole
    pdptrs : tuple of four int
        The PAE PDPTE registers loaded at the last CR3 load.
    pae_root_pfn : int
        Host frame of the four-entry PAE root (``mmu->pae_root``).
    pae_root : list of refimpl.host.mmu_page.MmuPage or None
        The SPs the four PAE root entries point to.
    req_sync, req_free_obsolete : bool
        Pending ``KVM_REQ_MMU_SYNC`` / ``KVM_REQ_MMU_FREE_OBSOLETE_ROOTS``.
    """

    vcpu: Vcpu
    cpu: CpuState
    mmu: Mmu
    kind: MmuKind
    cpu_role: CpuRole
    pdptrs: tuple[int, int, int, int] = (0, 0, 0, 0)
    pae_root_pfn: int = 0
    pae_root: list = field(default_factory=lambda: [None] * 4)
    req_sync: bool = False
    req_free_obsolete: bool = False


# ---------------------------------------------------------------------------
# The shadow MMU
# ---------------------------------------------------------------------------


class ShadowMmu:
    """The shadow MMU of one VM: its pages, hash, rmaps, and its vCPUs.

    Parameters
    ----------
    kvm : refimpl.host.vm.Kvm
        The VM (host memory, memslots). The shadow MMU registers itself as
        a memslot listener.
    guest_mem : refimpl.guest.memory.GuestMemory
        Guest-physical memory as the guest sees it (its page tables); the
        guest's *data* lives in the host frames the memslots name, which
        the model never reads.
    bugs : iterable of str
        Names from :data:`BUGS` to switch on (default: none, the correct MMU).
    fmt : refimpl.host.spte.SpteFormat or None
        The shadow SPTE format (default ``x86_format(tdp=False)`` with the
        host's MAXPHYADDR).

    Raises
    ------
    TypeError, ValueError
        Wrong types, unknown bug names, or a format that is not a shadow one.

    KVM
    ---
    The shadow-paging half of ``struct kvm_arch`` (``mmu_page_hash``,
    ``active_mmu_pages``, ``indirect_shadow_pages``, the per-memslot
    ``gfn_write_track`` and rmaps) and the functions of
    ``arch/x86/kvm/mmu/mmu.c`` and ``paging_tmpl.h`` named on each method.
    """

    #: The naive switches this class knows (a subclass has its own).
    BUGS: dict[str, str] = BUGS

    def __init__(self, kvm: Kvm, guest_mem: GuestMemory, *, bugs: Iterable[str] = (),
                 fmt: Optional[SpteFormat] = None) -> None:
        if not isinstance(kvm, Kvm):
            raise TypeError(f"kvm must be a refimpl.host.vm.Kvm, got {type(kvm).__name__}")
        if not isinstance(guest_mem, GuestMemory):
            raise TypeError(f"guest_mem must be a GuestMemory, got {type(guest_mem).__name__}")
        bugs = check_bugs("bugs", bugs, self.BUGS)
        fmt = self._check_fmt(kvm, fmt)
        self.kvm = kvm
        self.host = kvm.host
        self.guest_mem = guest_mem
        self.bugs = bugs
        self.fmt = fmt
        #: ``mmu_page_hash``: (gfn, role.word) -> SP, valid pages only.
        self.page_hash: dict[tuple[int, int], MmuPage] = {}
        #: Valid SPs by gfn (``for_each_gfn_valid_sp``).
        self.gfn_sps: dict[int, list[MmuPage]] = {}
        #: Every SP by host frame (``spte_to_child_sp``, ``root_to_sp``).
        self.sp_by_pfn: dict[int, MmuPage] = {}
        #: ``gfn_write_track``: shadowed upper-level tables per gfn.
        self.write_track: dict[int, int] = {}
        #: rmap: gfn -> leaf SPTEs (sp, index) mapping it.
        self.rmap: dict[int, set[tuple[MmuPage, int]]] = {}
        self.indirect_shadow_pages = 0
        self.vcpus: list[ShadowVcpu] = []
        self.tracing = False
        self.trace: list[FaultStep] = []
        self.stats: dict[str, int] = {"sp_created": 0, "sp_zapped": 0, "emulated_writes": 0,
                                      "flooded": 0, "synced_sptes": 0, "prefetched": 0}
        kvm.listeners.append(self)

    def _check_fmt(self, kvm: Kvm, fmt: Optional[SpteFormat]) -> SpteFormat:
        """The SPTE format: x86 shadow tables (a subclass may build EPT ones)."""
        if fmt is None:
            fmt = x86_format(phys_bits=kvm.host.maxphyaddr, tdp=False)
        if not isinstance(fmt, SpteFormat) or fmt.name != "x86" or fmt.tdp:
            raise ValueError("fmt: the shadow MMU needs x86_format(tdp=False)")
        return fmt

    def _gpte_context(self, vc: ShadowVcpu) -> WalkContext:
        """The walk context of the guest tables ``vc`` shadows (the PTTYPE).

        x86 tables here; :class:`refimpl.host.tdp12.Tdp12Mmu` returns the EPT
        context of L1's EPTP, as KVM compiles ``paging_tmpl.h`` once more
        with ``PTTYPE_EPT``.
        """
        return walk_context(vc.cpu)

    # -- small helpers ------------------------------------------------------

    def _log(self, step: str, level: Optional[int], detail: str, value: Optional[int] = None) -> None:
        if self.tracing:
            self.trace.append(FaultStep(step, level, detail, value))

    def _set_spte(self, sp: MmuPage, i: int, value: int) -> None:
        """``mmu_spte_set``/``mmu_spte_update``: one SPTE, in the SP and host memory."""
        sp.spt[i] = value
        self.host.mem._store(sp.hpa + 8 * i, 8, value)

    def _child(self, spte: int) -> Optional[MmuPage]:
        return self.sp_by_pfn.get(_to_pfn(spte))

    def _check_vcpu(self, vc: object) -> ShadowVcpu:
        if not isinstance(vc, ShadowVcpu) or vc not in self.vcpus:
            raise TypeError("vcpu must be a ShadowVcpu of this ShadowMmu")
        return vc

    def gfn_write_tracked(self, gfn: int) -> bool:
        """Whether guest stores to ``gfn`` are emulated (``kvm_gfn_is_write_tracked``)."""
        gfn = check_int("gfn", gfn)
        return self.write_track.get(gfn, 0) > 0

    def shadow_pages(self) -> list[MmuPage]:
        """Every valid SP, in creation order of host frames."""
        return sorted(self.page_hash.values(), key=lambda sp: sp.pfn)

    # -- vCPUs and roles ----------------------------------------------------

    def _roles(self, cpu: CpuState, guest_mode: bool = False) -> tuple[CpuRole, PageRole]:
        if not cpu.pg:
            raise ValueError("cpu: the shadow MMU model needs CR0.PG=1 (non-paging guests "
                             "run on direct roots, not modelled)")
        if cpu.maxphyaddr > self.kvm.guest_maxphyaddr:
            raise ValueError(f"cpu: maxphyaddr {cpu.maxphyaddr} exceeds the VM's guest "
                             f"MAXPHYADDR {self.kvm.guest_maxphyaddr}")
        if cpu.pke:
            raise ValueError("cpu: CR4.PKE is not offered with shadow paging (KVM needs TDP for PKU)")
        cpu_role = calc_cpu_role(cpu.cr0, cpu.cr4, cpu.efer, guest_mode=guest_mode)
        root_role = calc_shadow_root_role(cpu_role)
        if "no_cr0_wp_role" in self.bugs:
            root_role = root_role.replace(cr0_wp=1)
        if "no_smep_andnot_wp_role" in self.bugs:
            root_role = root_role.replace(smep_andnot_wp=0)
        if "no_smap_andnot_wp_role" in self.bugs:
            root_role = root_role.replace(smap_andnot_wp=0)
        return cpu_role, root_role

    def add_vcpu(self, cpu: CpuState, *, guest_mode: bool = False) -> ShadowVcpu:
        """Create a vCPU running with registers ``cpu`` and load its roots.

        ``guest_mode=True`` sets ``role.guest_mode`` in every role: the
        tables shadowed are L1's nested page tables for L2 (nested NPT,
        see :func:`refimpl.host.tdp12.shadow_npt_vcpu`), not a guest's own.

        Raises
        ------
        TypeError, ValueError
            ``cpu`` is not a CpuState, has paging off or CR4.PKE on, or (PAE)
            its PDPTEs cannot be loaded.

        KVM
        ---
        ``kvm_mmu_create``, ``init_kvm_softmmu`` and ``kvm_mmu_load`` in
        ``arch/x86/kvm/mmu/mmu.c``.
        """
        if not isinstance(cpu, CpuState):
            raise TypeError(f"cpu must be a CpuState, got {type(cpu).__name__}")
        cpu_role, root_role = self._roles(cpu, bool(guest_mode))
        pdptrs = (0, 0, 0, 0)
        if cpu.mode is PagingMode.PAE:
            loaded = self._load_pdptrs(cpu)
            if loaded is None:
                raise ValueError("cpu: the PAE PDPTEs at CR3 cannot be loaded (#GP)")
            pdptrs = loaded
        kind = shadow_kind(self.fmt, root_level=root_role.level)
        kind.shadow_zero_check = self._zero_check(cpu, root_role)
        vcpu = self.kvm.create_vcpu()
        mmu = Mmu(kind=kind, root_role=root_role, tlb=vcpu_tlb(vcpu))
        vcpu.cpu, vcpu.mmu = cpu, mmu
        vc = ShadowVcpu(vcpu, cpu, mmu, kind, cpu_role, pdptrs, self.host.alloc_page())
        mmu.page_fault = lambda addr, access: self.access(vc, addr, access)
        self.vcpus.append(vc)
        self._enter(vc)
        return vc

    def _load_pdptrs(self, cpu: CpuState) -> Optional[tuple[int, int, int, int]]:
        loaded = load_pdptrs(self.guest_mem, cpu.cr3, cpu.maxphyaddr)
        if loaded is None:
            return None
        return tuple(v for _, v in loaded)  # type: ignore[return-value]

    def set_cpu(self, vc: ShadowVcpu, cpu: CpuState) -> Optional[Fault]:
        """The guest loads new control registers (MOV to CR0/CR3/CR4, WRMSR EFER).

        A change of a role bit (CR0.PG/WP, CR4.PSE/PAE/LA57/SMEP/SMAP/PKE,
        EFER.LMA/NX) resets the MMU context: every root is freed. A change of
        CR3 alone is a CR3 load (:meth:`write_cr3`).

        Returns
        -------
        refimpl.guest.faults.Fault or None
            #GP if PAE PDPTEs cannot be loaded (the registers stay unchanged).

        KVM
        ---
        ``kvm_set_cr0``/``kvm_post_set_cr0``, ``kvm_set_cr4``/``kvm_post_set_cr4``,
        ``set_efer`` (``arch/x86/kvm/x86.c``) and ``kvm_mmu_reset_context``.
        """
        vc = self._check_vcpu(vc)
        if not isinstance(cpu, CpuState):
            raise TypeError(f"cpu must be a CpuState, got {type(cpu).__name__}")
        old = vc.cpu
        cpu_role, root_role = self._roles(cpu, bool(vc.cpu_role.base.guest_mode))
        if cpu_role == vc.cpu_role and cpu.mode is old.mode:
            # No role bit changed: keep the roots. RFLAGS/PKRU need nothing;
            # a new CR3 is a CR3 load.
            if cpu.cr3 != old.cr3:
                fault = self.write_cr3(vc, cpu.cr3)
                if fault is not None:
                    return fault
            vc.cpu = vc.vcpu.cpu = cpu
            return None
        pdptrs = vc.pdptrs
        if cpu.mode is PagingMode.PAE:
            loaded = self._load_pdptrs(cpu)
            if loaded is None:
                return Fault(13, 0, WalkError.BAD_PDPTE)
            pdptrs = loaded
        # kvm_mmu_reset_context: unload every root, then re-initialise.
        self._free_roots(vc, current=True, previous=True)
        self._reinit(vc, cpu, cpu_role, root_role, pdptrs)
        return None

    def _reinit(self, vc: ShadowVcpu, cpu: CpuState, cpu_role: CpuRole, root_role: PageRole,
                pdptrs: tuple[int, int, int, int], *, reset_kind: bool = True) -> None:
        """``kvm_init_mmu`` then ``kvm_mmu_load``: take the new roles (and,
        unless the current root is kept, the kind's level and zero check)."""
        vc.cpu = vc.vcpu.cpu = cpu
        vc.cpu_role, vc.pdptrs = cpu_role, pdptrs
        vc.mmu.root_role = root_role
        if reset_kind:
            vc.kind.root_level = root_role.level
            vc.kind.shadow_zero_check = self._zero_check(cpu, root_role)
        self._enter(vc)

    def _zero_check(self, cpu: CpuState, root_role: PageRole):
        """``reset_shadow_zero_bits_mask``: the root's level and EFER.NX, the guest's GBPAGES."""
        return shadow_zero_check_for(self.fmt, root_role.level, nx=bool(root_role.efer_nx),
                                     gbpages=cpu.gbpages)

    def load_root(self, vc: ShadowVcpu, cpu: CpuState, cpu_role: CpuRole, root_role: PageRole,
                  *, keep_root: bool = False) -> None:
        """Take the roles from a caller that computes them (a refactoring layout).

        :meth:`set_cpu` derives the roles from the registers and decides by
        itself whether to reset; this method lets the caller decide, so that
        a layout's choices (including wrong ones) reach the shadow pages.

        Parameters
        ----------
        vc : ShadowVcpu
        cpu : refimpl.guest.cpu.CpuState
            The registers the fault handler walks the guest's tables with
            (paging on); its CR3 is the root's pgd.
        cpu_role : refimpl.host.roles.CpuRole
            The MMU's CPU role (the format of the guest's tables).
        root_role : refimpl.host.roles.PageRole
            The role new shadow pages get (an indirect role).
        keep_root : bool
            False: the layout loaded a new root: unload the current one and
            load one for ``root_role`` (``kvm_mmu_unload`` + ``kvm_mmu_load``;
            shadow pages of the same ``(gfn, role)`` are found again in the
            page hash). True: the layout re-initialised the context without
            unloading (``kvm_init_mmu`` alone): the current root, built for
            the old role, stays in use.

        Raises
        ------
        TypeError, ValueError
            Wrong types, paging off, a direct ``root_role``, or (PAE) PDPTEs
            at CR3 that cannot be loaded. Nothing changes then.

        KVM
        ---
        ``kvm_init_mmu``, ``kvm_mmu_unload`` and ``kvm_mmu_load``
        (``arch/x86/kvm/mmu/mmu.c``), as ``kvm_post_set_cr0``
        (``arch/x86/kvm/x86.c``) and the other register writes call them.
        """
        vc = self._check_vcpu(vc)
        check_instance("cpu", cpu, CpuState)
        check_instance("cpu_role", cpu_role, CpuRole)
        check_instance("root_role", root_role, PageRole)
        if not isinstance(keep_root, bool):
            raise TypeError(f"keep_root must be a bool, got {keep_root!r}")
        if not cpu.pg:
            raise ValueError("cpu: shadow roots need CR0.PG=1")
        if root_role.direct:
            raise ValueError("root_role: a shadow root needs an indirect role (direct=0)")
        pdptrs = vc.pdptrs
        if cpu.mode is PagingMode.PAE:
            loaded = self._load_pdptrs(cpu)
            if loaded is None:
                raise ValueError("cpu: the PAE PDPTEs at CR3 cannot be loaded (#GP)")
            pdptrs = loaded
        if not keep_root:
            self._free_roots(vc, current=True, previous=False)
        self._reinit(vc, cpu, cpu_role, root_role, pdptrs, reset_kind=not keep_root)

    def write_cr3(self, vc: ShadowVcpu, cr3: int) -> Optional[Fault]:
        """MOV to CR3 (PCIDs off): fast switch via ``prev_roots``, then sync.

        Returns
        -------
        refimpl.guest.faults.Fault or None
            #GP if PAE PDPTEs at the new CR3 cannot be loaded.

        KVM
        ---
        ``kvm_set_cr3`` (``arch/x86/kvm/x86.c``), ``kvm_mmu_new_pgd`` and
        ``fast_pgd_switch`` (``arch/x86/kvm/mmu/mmu.c``).
        """
        vc = self._check_vcpu(vc)
        cr3 = check_int("cr3", cr3)
        new = CpuState(cr0=vc.cpu.cr0, cr3=cr3, cr4=vc.cpu.cr4, efer=vc.cpu.efer,
                       rflags=vc.cpu.rflags, pkru=vc.cpu.pkru, maxphyaddr=vc.cpu.maxphyaddr,
                       gbpages=vc.cpu.gbpages)
        if new.mode is PagingMode.PAE:
            loaded = self._load_pdptrs(new)
            if loaded is None:
                return Fault(13, 0, WalkError.BAD_PDPTE)
            if loaded != vc.pdptrs:
                # Shadow roots must be rebuilt when the PDPTEs change.
                self._free_roots(vc, current=True, previous=False)
            vc.pdptrs = loaded
        if cr3 != vc.cpu.cr3:
            self._new_pgd(vc, cr3)
        vc.cpu = vc.vcpu.cpu = new
        vc.req_sync = True  # kvm_invalidate_pcid: KVM_REQ_MMU_SYNC
        self._enter(vc)
        return None

    def _root_sp(self, root: RootInfo) -> Optional[MmuPage]:
        if root.hpa is None:
            return None
        return self.sp_by_pfn.get(root.hpa >> 12)

    def _is_root_usable(self, vc: ShadowVcpu, root: RootInfo, pgd: int) -> bool:
        sp = self._root_sp(root)
        return (sp is not None and root.pgd == pgd and not sp.role.invalid
                and sp.role.word == vc.mmu.root_role.word)

    def _new_pgd(self, vc: ShadowVcpu, pgd: int) -> None:
        """``kvm_mmu_new_pgd`` / ``fast_pgd_switch`` (PCIDs off)."""
        mmu = vc.mmu
        if mmu.root.valid and self._root_sp(mmu.root) is None:
            # A PAE root has no SP: never cached, just freed.
            self._free_roots(vc, current=True, previous=False)
        if mmu.root.valid:
            # cached_root_find_and_keep_current: rotate C,0,1,2 until a hit.
            if self._is_root_usable(vc, mmu.root, pgd):
                return
            for i in range(KVM_MMU_NUM_PREV_ROOTS):
                mmu.root, mmu.prev_roots[i] = mmu.prev_roots[i], mmu.root
                if self._is_root_usable(vc, mmu.root, pgd):
                    if self.tracing:
                        self._log("fast CR3 switch", None,
                                  f"reused prev_roots[{i}] for pgd {pgd:#x}")
                    self._after_switch(vc)
                    return
            self._free_roots(vc, current=True, previous=False)
        else:
            # cached_root_find_without_current
            for i in range(KVM_MMU_NUM_PREV_ROOTS):
                if self._is_root_usable(vc, mmu.prev_roots[i], pgd):
                    mmu.root = mmu.prev_roots[i]
                    del mmu.prev_roots[i]
                    mmu.prev_roots.append(INVALID_ROOT)
                    self._after_switch(vc)
                    return

    def _after_switch(self, vc: ShadowVcpu) -> None:
        sp = self._root_sp(vc.mmu.root)
        if sp is not None:
            sp.write_flooding_count = 0

    def _free_root(self, root: RootInfo) -> None:
        sp = self._root_sp(root)
        if sp is None:
            return
        sp.root_count -= 1
        if sp.root_count == 0 and sp.role.invalid:
            self._free_sp_frame(sp)

    def _free_roots(self, vc: ShadowVcpu, *, current: bool, previous: bool,
                    only_obsolete: bool = False) -> None:
        """``kvm_mmu_free_roots`` (and ``kvm_mmu_free_obsolete_roots``)."""
        mmu = vc.mmu

        def obsolete(root: RootInfo) -> bool:
            sp = self._root_sp(root)
            return sp is None or bool(sp.role.invalid)

        if previous:
            for i, root in enumerate(mmu.prev_roots):
                if root.valid and (not only_obsolete or obsolete(root)):
                    self._free_root(root)
                    mmu.prev_roots[i] = INVALID_ROOT
        if current and mmu.root.valid and (not only_obsolete or obsolete(mmu.root)):
            if self._root_sp(mmu.root) is None:  # the PAE root
                for i, sp in enumerate(vc.pae_root):
                    if sp is not None:
                        sp.root_count -= 1
                        if sp.root_count == 0 and sp.role.invalid:
                            self._free_sp_frame(sp)
                    vc.pae_root[i] = None
                    self.host.mem._store(vc.pae_root_pfn * _PAGE + 8 * i, 8, 0)
            else:
                self._free_root(mmu.root)
            mmu.root = INVALID_ROOT

    def _alloc_root_sp(self, vc: ShadowVcpu, gfn: int, quadrant: int, level: int) -> MmuPage:
        """``mmu_alloc_root``."""
        role = vc.mmu.root_role.replace(level=level, quadrant=quadrant)
        sp = self._get_shadow_page(vc, gfn, role)
        sp.root_count += 1
        return sp

    def _load(self, vc: ShadowVcpu) -> None:
        """``kvm_mmu_load``: ``mmu_alloc_shadow_roots``, then sync the roots."""
        cpu, mmu = vc.cpu, vc.mmu
        level = vc.cpu_role.base.level
        pgd = cpu.cr3
        if level >= PT64_ROOT_4LEVEL:
            root_gfn = (cpu.cr3 & 0x000F_FFFF_FFFF_F000) >> 12
            sp = self._alloc_root_sp(vc, root_gfn, 0, mmu.root_role.level)
            mmu.root = RootInfo(sp.hpa, pgd)
        else:
            for i in range(4):
                if level == PT32E_ROOT_LEVEL:
                    pdpte = vc.pdptrs[i]
                    if not pdpte & 1:
                        continue
                    root_gfn = (pdpte & 0x000F_FFFF_FFFF_F000) >> 12
                    quadrant = 0
                else:
                    root_gfn = (cpu.cr3 & 0xFFFF_F000) >> 12
                    quadrant = i
                sp = self._alloc_root_sp(vc, root_gfn, quadrant, 2)
                vc.pae_root[i] = sp
                self.host.mem._store(vc.pae_root_pfn * _PAGE + 8 * i, 8, sp.hpa | 1)
            mmu.root = RootInfo(vc.pae_root_pfn * _PAGE, pgd)
        self._sync_roots(vc)

    def _enter(self, vc: ShadowVcpu) -> None:
        """The MMU requests handled before VM entry, then ``kvm_mmu_reload``."""
        if vc.req_free_obsolete:
            vc.req_free_obsolete = False
            self._free_roots(vc, current=True, previous=True, only_obsolete=True)
        if vc.req_sync:
            vc.req_sync = False
            self._sync_roots(vc)
        if not vc.mmu.root.valid:
            self._load(vc)

    # -- the page hash ------------------------------------------------------

    def _get_shadow_page(self, vc: ShadowVcpu, gfn: int, role: PageRole) -> MmuPage:
        """``kvm_mmu_get_shadow_page``: find ``(gfn, role)`` in the VM's hash
        (``kvm_mmu_find_shadow_page``, syncing an unsync page found) or
        create it (``kvm_mmu_alloc_shadow_page``)."""
        for sp in list(self.gfn_sps.get(gfn, ())):
            if sp.role.word != role.word:
                # An upper-level table is about to be write-tracked: its
                # level-1 SPs may not stay unsync.
                if role.level > 1 and sp.unsync:
                    self._prepare_zap(sp)
                continue
            if sp.role.direct:
                return sp
            if sp.unsync:
                # Found but stale: sync it (it stays unsync) before reuse.
                if self._sync_page(vc, sp) < 0:
                    break
            sp.write_flooding_count = 0
            if self.tracing:
                self._log("get SP", role.level, f"found {sp!r}")
            return sp
        sp = MmuPage.shadow(role, gfn, self.host.alloc_page())
        self.page_hash[(gfn, role.word)] = sp
        self.gfn_sps.setdefault(gfn, []).append(sp)
        self.sp_by_pfn[sp.pfn] = sp
        self.stats["sp_created"] += 1
        if sp.has_gptes:
            self._account_shadowed(sp)
        if self.tracing:
            self._log("get SP", role.level, f"created {sp!r}")
        return sp

    def _account_shadowed(self, sp: MmuPage) -> None:
        """``account_shadowed``: write-track upper tables, write-protect the frame."""
        self.indirect_shadow_pages += 1
        if sp.role.level > 1:
            self.write_track[sp.gfn] = self.write_track.get(sp.gfn, 0) + 1
        self._write_protect_gfn(sp.gfn, pt_protect=True)

    def _unaccount_shadowed(self, sp: MmuPage) -> None:
        self.indirect_shadow_pages -= 1
        if sp.role.level > 1:
            n = self.write_track[sp.gfn] - 1
            if n:
                self.write_track[sp.gfn] = n
            else:
                del self.write_track[sp.gfn]

    def _write_protect_gfn(self, gfn: int, *, pt_protect: bool) -> bool:
        """``kvm_mmu_slot_gfn_write_protect`` through the rmap."""
        changed = False
        mask = 2 | (self.fmt.mmu_writable_mask if pt_protect else 0)
        for sp, i in list(self.rmap.get(gfn, ())):
            spte = sp.spt[i]
            if spte & mask:
                self._set_spte(sp, i, spte & ~mask)
                changed = True
        return changed

    # -- linking and unlinking ----------------------------------------------

    def _link(self, parent: MmuPage, i: int, sp: MmuPage) -> None:
        """``link_shadow_page``."""
        if _present(parent.spt[i]):
            self._zap_pte(parent, i)
        self._set_spte(parent, i, make_nonleaf_spte(self.fmt, sp.pfn,
                                                    ad_disabled=bool(sp.role.ad_disabled)))
        sp.parent_ptes.add((parent, i))
        if sp.unsync or sp.unsync_children:
            self._mark_unsync(parent, i)
        if self.tracing:
            self._log("link", parent.role.level, f"SPTE {i} of {parent!r} -> SP at level "
                      f"{sp.role.level}", parent.spt[i])

    def _mark_unsync(self, sp: MmuPage, i: int) -> None:
        if i in sp.unsync_child_bitmap:
            return
        sp.unsync_child_bitmap.add(i)
        if len(sp.unsync_child_bitmap) > 1:
            return
        for parent, j in list(sp.parent_ptes):
            self._mark_unsync(parent, j)

    def _unsync_page(self, sp: MmuPage) -> None:
        """``kvm_unsync_page``: the guest may now write the table directly."""
        sp.unsync = True
        for parent, j in list(sp.parent_ptes):
            self._mark_unsync(parent, j)
        if self.tracing:
            self._log("unsync", sp.role.level, f"{sp!r}")

    def _rmap_remove(self, sp: MmuPage, i: int) -> None:
        tr = sp.shadowed_translation.pop(i, None)
        if tr is not None:
            s = self.rmap.get(tr[0])
            if s is not None:
                s.discard((sp, i))
                if not s:
                    del self.rmap[tr[0]]

    def _zap_pte(self, sp: MmuPage, i: int) -> None:
        """``mmu_page_zap_pte``: clear one SPTE (leaf: rmap; table: unlink child)."""
        spte = sp.spt[i]
        if _present(spte):
            if sp.role.level == 1 or _large(spte):
                self._rmap_remove(sp, i)
            else:
                child = self._child(spte)
                if child is not None:
                    child.parent_ptes.discard((sp, i))
        if spte:
            self._set_spte(sp, i, 0)

    def _collect_unsync(self, sp: MmuPage, out: list[MmuPage]) -> bool:
        """``mmu_unsync_walk``: unsync level-1 SPs below ``sp``; prunes the bitmap."""
        found = False
        for i in sorted(sp.unsync_child_bitmap):
            spte = sp.spt[i]
            child = self._child(spte) if _present(spte) and not _large(spte) else None
            below = False
            if child is not None:
                if child.unsync_children:
                    below = self._collect_unsync(child, out)
                elif child.unsync:
                    if child not in out:
                        out.append(child)
                    below = True
            if below:
                found = True
            else:
                sp.unsync_child_bitmap.discard(i)
        return found

    def _prune_unsync_bits(self, sp: MmuPage) -> None:
        self._collect_unsync(sp, [])

    def _prepare_zap(self, sp: MmuPage) -> None:
        """``kvm_mmu_prepare_zap_page``: unlink, untrack, mark invalid."""
        if sp.role.invalid:
            return
        if sp.role.level > 1:
            pages: list[MmuPage] = []
            self._collect_unsync(sp, pages)
            for child in pages:
                self._prepare_zap(child)
        for i in range(SPTE_ENT_PER_PAGE):
            if sp.spt[i]:
                self._zap_pte(sp, i)
        for parent, j in list(sp.parent_ptes):
            self._set_spte(parent, j, 0)
        sp.parent_ptes.clear()
        if sp.has_gptes:
            self._unaccount_shadowed(sp)
        sp.unsync = False
        sp.unsync_child_bitmap.clear()
        del self.page_hash[(sp.gfn, sp.role.word)]
        self.gfn_sps[sp.gfn].remove(sp)
        if not self.gfn_sps[sp.gfn]:
            del self.gfn_sps[sp.gfn]
        sp.role = sp.role.replace(invalid=1)
        self.stats["sp_zapped"] += 1
        if self.tracing:
            self._log("zap", sp.role.level, f"{sp!r}")
        if sp.root_count:
            for vc in self.vcpus:
                vc.req_free_obsolete = True
        else:
            self._free_sp_frame(sp)

    def _free_sp_frame(self, sp: MmuPage) -> None:
        if self.sp_by_pfn.get(sp.pfn) is sp:
            del self.sp_by_pfn[sp.pfn]
            self.host.free_page(sp.pfn)

    def zap_all(self) -> None:
        """Zap every shadow page (``kvm_mmu_zap_all_fast``, e.g. memslot deletion)."""
        for sp in self.shadow_pages():
            self._prepare_zap(sp)

    # -- unsync and sync ----------------------------------------------------

    def _try_to_unsync(self, gfn: int, can_unsync: bool, prefetch: bool) -> bool:
        """``mmu_try_to_unsync_pages``; True means "write-protect instead"."""
        if self.write_track.get(gfn, 0) > 0:
            return True
        for sp in list(self.gfn_sps.get(gfn, ())):
            if not sp.has_gptes:
                continue
            if not can_unsync:
                return True
            if sp.unsync:
                continue
            if prefetch:
                return True
            self._unsync_page(sp)
        return False

    def _level1_gpte_gpa(self, sp: MmuPage, i: int) -> tuple[int, int]:
        """``FNAME(get_level1_sp_gpa)`` + index: where SPTE ``i``'s gpte lives."""
        if sp.role.has_4_byte_gpte:
            return (sp.gfn << 12) + (sp.role.quadrant * 512 + i) * 4, 4
        return (sp.gfn << 12) + i * 8, 8

    def _read_gpte(self, gpa: int, size: int) -> Optional[int]:
        if not self.guest_mem.contains(gpa, size) or self.kvm._gfn_to_memslot(gpa >> 12, 0) is None:
            return None
        return self.guest_mem._load(gpa, size)

    def _prefetch_invalid_gpte(self, vc: ShadowVcpu, sp: MmuPage, i: int, gpte: int) -> bool:
        """``FNAME(prefetch_invalid_gpte)``: drop the SPTE unless the gpte is usable."""
        ctx = self._gpte_context(vc)
        present = gpte & ctx.fmt.present_mask
        if "prefetch_skips_checks" in self.bugs:
            bad = not present
        else:
            # Only accessed entries are prefetched, when the format has A/D.
            bad = (ctx.rsvd.is_rsvd_bits_set(gpte, 1) or not present
                   or (ctx.have_ad and not gpte & ctx.fmt.accessed_mask))
        if bad:
            self._zap_pte(sp, i)
        return bad

    def _sync_spte(self, vc: ShadowVcpu, sp: MmuPage, i: int) -> int:
        """``FNAME(sync_spte)``: redo SPTE ``i`` of an unsync SP from its gpte."""
        spte = sp.spt[i]
        if not spte:
            return 0
        gpa, size = self._level1_gpte_gpa(sp, i)
        gpte = self._read_gpte(gpa, size)
        if gpte is None:
            return -1
        self.stats["synced_sptes"] += 1
        if self._prefetch_invalid_gpte(vc, sp, i, gpte):
            return 1
        ctx = self._gpte_context(vc)
        fmt = ctx.fmt
        gfn = (gpte & fmt.base_addr_mask) >> 12
        pte_access = sp.role.access & fmt.gpte_access(gpte)
        if ctx.have_ad and not gpte & fmt.dirty_mask:
            pte_access &= ~ACC_WRITE_MASK  # protect_clean_gpte
        if _mmio(self.fmt, spte):
            if gfn != get_mmio_spte_gfn(self.fmt, spte):
                self._set_spte(sp, i, 0)
            else:
                self._set_spte(sp, i, make_mmio_spte(self.fmt, gfn, pte_access,
                                                     self.kvm.generation & MMIO_SPTE_GEN_MASK))
            return 1
        old = sp.shadowed_translation.get(i)
        if old is None or gfn != old[0]:
            self._log("sync", 1, f"SPTE {i} of {sp!r} dropped: its gpte now maps gfn {gfn:#x}")
            self._zap_pte(sp, i)
            return 1
        if old[1] == pte_access:
            return 0
        sp.shadowed_translation[i] = (gfn, pte_access)
        slot = self.kvm._gfn_to_memslot(gfn, vc.vcpu.as_id)
        res = make_spte(vc.kind, pte_access=pte_access, level=1, gfn=gfn, pfn=_to_pfn(spte),
                        old_spte=spte, prefetch=True, ad_disabled=bool(sp.role.ad_disabled),
                        host_writable=bool(spte & self.fmt.host_writable_mask),
                        try_unsync=lambda g, cu: self._try_to_unsync(g, cu, True))
        self._set_spte(sp, i, res.spte)
        if res.writable and slot is not None and slot.dirty_logging:
            self.kvm._mark_page_dirty(gfn, slot.as_id)
        if self.tracing:
            self._log("sync", 1, f"SPTE {i} of {sp!r} redone from gpte {gpte:#x}", res.spte)
        return 1

    def _sync_page_check(self, vc: ShadowVcpu, sp: MmuPage) -> bool:
        ign = PageRole(level=0xF, access=7, quadrant=3, passthrough=1).word
        return not sp.role.direct and not ((sp.role.word ^ vc.mmu.root_role.word) & ~ign)

    def _sync_page(self, vc: ShadowVcpu, sp: MmuPage) -> int:
        """``kvm_sync_page``: sync every SPTE; zap the SP if it cannot be synced."""
        if not self._sync_page_check(vc, sp):
            self._prepare_zap(sp)
            return -1
        flush = 0
        for i in range(SPTE_ENT_PER_PAGE):
            if sp.spt[i]:
                r = self._sync_spte(vc, sp, i)
                if r < 0:
                    self._zap_pte(sp, i)
                flush |= 1 if r else 0
        return flush

    def _sync_children(self, vc: ShadowVcpu, parent: MmuPage) -> None:
        """``mmu_sync_children``: write-protect and sync every unsync page below."""
        pages: list[MmuPage] = []
        self._collect_unsync(parent, pages)
        for sp in pages:
            self._write_protect_gfn(sp.gfn, pt_protect=True)
        for sp in pages:
            if sp.role.invalid:
                continue
            sp.unsync = False
            self._sync_page(vc, sp)
        self._prune_unsync_bits(parent)

    def _sync_roots(self, vc: ShadowVcpu) -> None:
        """``kvm_mmu_sync_roots``."""
        if not vc.mmu.root.valid:
            return
        sp = self._root_sp(vc.mmu.root)
        if sp is not None:
            if sp.unsync_children:
                self._sync_children(vc, sp)
            return
        for sp in vc.pae_root:
            if sp is not None and not sp.role.invalid:
                self._sync_children(vc, sp)

    # -- the guest walk -------------------------------------------------------

    def guest_walk(self, vc: ShadowVcpu, gva: int, access: int) -> GuestWalk:
        """Walk the guest's tables for ``gva`` as KVM's fault path does.

        Uses :func:`refimpl.guest.walker.translate`, except that PAE walks start
        from the PDPTE registers loaded at the last CR3 load, and a guest
        table outside every memslot ends the walk as not present. Sets the
        guest's A/D bits on success.

        KVM
        ---
        ``FNAME(walk_addr_generic)`` in ``arch/x86/kvm/mmu/paging_tmpl.h``.

        Raises
        ------
        TypeError, ValueError
            ``vc`` not a vCPU of this MMU, ``gva`` out of range for the
            mode, ``access`` with unknown bits.
        """
        self._check_vcpu(vc)
        access = check_access(access)
        gva = check_gva(gva, vc.cpu)
        return self._guest_walk(vc, gva, access)

    def _guest_walk(self, vc: ShadowVcpu, gva: int, access: int) -> GuestWalk:
        cpu = vc.cpu
        ctx = walk_context(cpu)
        if cpu.mode is PagingMode.PAE:
            i = (gva >> 30) & 3
            w = walk_addr_generic(self.guest_mem, ctx, 0, gva, access, rflags_ac=cpu.ac,
                                  pkru=cpu.pkru, pdpte=((cpu.cr3 & 0xFFFF_FFE0) + 8 * i,
                                                        vc.pdptrs[i]))
            if w.error is None:
                result = TranslateResult(w.gpa, None, w.level, w.trace, w.acc)
            else:
                result = TranslateResult(None, fault_for(
                    w.error, access, has_pferr_fetch=ctx.has_pferr_fetch,
                    perm_errcode=w.errcode, level=w.level), w.level, w.trace, w.acc)
        else:
            result = translate(self.guest_mem, cpu, gva, access)
        entries = [e for e in result.trace if not (cpu.mode is PagingMode.PAE and e[0] == 3)]
        for level, gpa, _ in entries:
            if self.kvm._gfn_to_memslot(gpa >> 12, vc.vcpu.as_id) is None:
                f = fault_for(WalkError.NO_MEMSLOT, access, has_pferr_fetch=ctx.has_pferr_fetch,
                              level=level)
                return GuestWalk(TranslateResult(None, f, level, result.trace, 0))
        if result.fault is not None:
            return GuestWalk(result)
        pt_access: dict[int, int] = {}
        table_gfn: dict[int, int] = {}
        ptes: dict[int, int] = {}
        pte_gpa: dict[int, int] = {}
        above = ACC_ALL
        for level, gpa, pte in entries:
            pt_access[level] = above
            table_gfn[level] = gpa >> 12
            ptes[level] = pte
            pte_gpa[level] = gpa
            above &= ctx.fmt.gpte_access(pte)
        assert result.gpa is not None and result.level is not None
        return GuestWalk(result, result.level, result.gpa >> 12, result.access_rights,
                         pt_access, table_gfn, ptes, pte_gpa)

    # -- the vCPU's accesses --------------------------------------------------

    def hw_walk(self, vc: ShadowVcpu, gva: int, access: int = 0) -> HwResult:
        """The CPU's walk of ``vc``'s current shadow root (no KVM involved).

        See :func:`refimpl.host.mmu.hw_translate_shadow`: CR0.WP=1 always, SMEP,
        SMAP and RFLAGS.AC are the guest's.
        """
        vc = self._check_vcpu(vc)
        gva = check_gva(gva, vc.cpu)
        access = check_access(access, ACCESS_WRITE | ACCESS_USER | ACCESS_FETCH)
        return self._hw_walk(vc, gva, access)

    def _hw_walk(self, vc: ShadowVcpu, gva: int, access: int) -> HwResult:
        root = vc.mmu.root
        if root.hpa is None:
            return HwResult(None, None, HwFault.NOT_PRESENT)
        cpu = vc.cpu
        return _hw_translate_shadow(self.host, self.fmt, root.hpa, vc.mmu.root_role.level, gva,
                                    access, cpu.smep, cpu.smap, cpu.ac)

    def access(self, vc: ShadowVcpu, gva: int, access: int = 0) -> AccessResult:
        """One guest access: the CPU walks the shadow tables; on a fault KVM runs.

        Parameters
        ----------
        vc : ShadowVcpu
        gva : int
        access : int
            ``ACCESS_WRITE``, ``ACCESS_USER``, ``ACCESS_FETCH`` ORed.

        Returns
        -------
        refimpl.host.outcomes.AccessResult

        Raises
        ------
        TypeError, ValueError
            Misuse only (bad ``gva``/``access``); guest table contents never
            raise.

        KVM
        ---
        ``kvm_mmu_page_fault`` -> ``FNAME(page_fault)`` / ``handle_mmio_page_fault``
        (``arch/x86/kvm/mmu/mmu.c``, ``paging_tmpl.h``).
        """
        vc = self._check_vcpu(vc)
        gva = check_gva(gva, vc.cpu)
        access = check_access(access, ACCESS_WRITE | ACCESS_USER | ACCESS_FETCH)
        hw, r, exits = self._fault_loop(vc, gva, access,
                                        lambda hw: self._page_fault(vc, gva, access, hw))
        if r is None:
            return AccessResult(AccessPath.HARDWARE, hpa=hw.hpa, exits=exits)
        return AccessResult(r.path, r.hpa, r.gpa, r.fault, exits)

    def _fault_loop(self, vc: ShadowVcpu, addr: int, access: int, handle):
        """Run an access: the CPU walks the root; on a fault ``handle(hw)``
        runs (KVM's page-fault handler) and the access is retried unless it
        returned a result. Returns ``(hw, result or None, exits)``."""
        exits = 0
        for _ in range(8):
            self._enter(vc)
            hw = self._hw_walk(vc, addr, access)
            if hw.fault is None:
                return hw, None, exits
            exits += 1
            vc.kind.stats.page_faults += 1
            r = handle(hw)
            if r is not None:
                return hw, r, exits
        raise RuntimeError(f"shadow MMU model: no progress on {addr:#x} (a model bug)")

    def _current_mmio_spte(self, hw: HwResult) -> bool:
        """The CPU stopped at an MMIO SPTE of the current memslot generation
        (``handle_mmio_page_fault`` can emulate at once)."""
        if hw.fault is not HwFault.RSVD or not hw.trace:
            return False
        spte = hw.trace[-1][2]
        return _mmio(self.fmt, spte) and get_mmio_spte_generation(spte) == (
            self.kvm.generation & MMIO_SPTE_GEN_MASK)

    def _emulate(self, vc: ShadowVcpu, gva: int, access: int) -> AccessResult:
        """The emulator's access: walk the guest tables, then touch memory."""
        w = self._guest_walk(vc, gva, access)
        if w.result.fault is not None:
            return AccessResult(AccessPath.FAULT, fault=w.result.fault)
        gpa = w.result.gpa
        assert gpa is not None
        slot = self.kvm._gfn_to_memslot(gpa >> 12, vc.vcpu.as_id)
        if slot is None or (access & ACCESS_WRITE and slot.readonly):
            vc.kind.stats.mmio_faults += 1
            return AccessResult(AccessPath.MMIO, gpa=gpa)
        if access & ACCESS_WRITE:
            self.kvm._mark_page_dirty(gpa >> 12, slot.as_id)
        return AccessResult(AccessPath.EMULATED, hpa=(slot.gfn_to_hfn(gpa >> 12) << 12) | (gpa & 0xFFF),
                            gpa=gpa)

    def _page_fault(self, vc: ShadowVcpu, gva: int, access: int,
                    hw: HwResult) -> Optional[AccessResult]:
        """``FNAME(page_fault)``; None means "retry the access"."""
        if self._current_mmio_spte(hw):
            return self._emulate(vc, gva, access)  # handle_mmio_page_fault
        write = bool(access & ACCESS_WRITE)
        user = bool(access & ACCESS_USER)
        w = self._guest_walk(vc, gva, access)
        if self.tracing:
            self._log("guest walk", None, f"gva {gva:#x} access {access:#x}")
            for level, gpa, gpte in w.result.trace:
                self._log("guest walk", level, f"gpte at gpa {gpa:#x}", gpte)
        if w.result.fault is not None:
            if self.tracing:
                self._log("inject", w.result.level,
                          f"#PF error code {w.result.fault.error_code:#x}")
            return AccessResult(AccessPath.FAULT, fault=w.result.fault)
        slot = self.kvm._gfn_to_memslot(w.gfn, vc.vcpu.as_id)
        if write and self.write_track.get(w.gfn, 0) > 0:
            return self._emulate(vc, gva, access)  # page_fault_handle_page_track
        if slot is not None and write and slot.readonly:
            return self._emulate(vc, gva, access)  # KVM_PFN_ERR_RO_FAULT
        pte_access = w.pte_access
        unfixed = pte_access
        cpu = vc.cpu
        if write and not pte_access & ACC_WRITE_MASK and not cpu.wp and not user and slot is not None:
            # Emulate CR0.WP=0: a kernel write to a read-only page is allowed,
            # so make the SPTE writable but supervisor-only...
            pte_access = (pte_access | ACC_WRITE_MASK) & ~ACC_USER_MASK
            # ...and, as the page is now a kernel page, not executable under SMEP.
            if cpu.smep and "smep_keeps_exec" not in self.bugs:
                pte_access &= ~ACC_EXEC_MASK
            if self.tracing:
                self._log("CR0.WP=0", w.level,
                          f"rights {_acc_str(unfixed)} -> {_acc_str(pte_access)}")
        direct_access = unfixed if "wp0_fixup_after_role" in self.bugs else pte_access
        if "direct_access_from_parents" in self.bugs:
            direct_access = w.pt_access[w.level]
        ret = self._fetch(vc, gva, w, pte_access, direct_access, write, slot)
        if ret is RetPf.EMULATE:
            return self._emulate(vc, gva, access)
        return None

    def _fetch(self, vc: ShadowVcpu, gva: int, w: GuestWalk, pte_access: int,
               direct_access: int, write: bool, slot: Optional[Memslot]) -> RetPf:
        """``FNAME(fetch)``: build and link SPs down to the leaf, then the SPTE."""
        mmu = vc.mmu
        if mmu.root_role.level == PT32E_ROOT_LEVEL:
            sp = vc.pae_root[(gva >> 30) & 3]
            if sp is None:
                return RetPf.RETRY
        else:
            sp = self._root_sp(mmu.root)
            if sp is None:
                return RetPf.RETRY
        level = sp.role.level
        # Levels the guest maps with tables: indirect SPs.
        while level > w.level:
            i = (gva >> (12 + 9 * (level - 1))) & 511
            sp.write_flooding_count = 0
            table_gfn = w.table_gfn[level - 1]
            if "single_pt_access" in self.bugs:
                access = w.pt_access[w.level]
            else:
                access = w.pt_access[level - 1]
            spte = sp.spt[i]
            if _present(spte) and not _large(spte):
                child = self._child(spte)
            else:
                role = kvm_mmu_child_role(sp.role, i, False, access)
                child = self._get_shadow_page(vc, table_gfn, role)
                if child.unsync_children:
                    self._sync_children(vc, child)
                self._link(sp, i, child)
            assert child is not None
            sp, level = child, level - 1
        # Levels below a guest large page: direct SPs down to 4 KiB.
        while level > 1:
            i = (gva >> (12 + 9 * (level - 1))) & 511
            sp.write_flooding_count = 0
            base_gfn = w.gfn & ~((1 << (9 * (level - 1))) - 1)
            spte = sp.spt[i]
            if _present(spte) and not _large(spte):
                child = self._child(spte)
                if (child is not None and child.role.access != direct_access
                        and "direct_access_from_parents" not in self.bugs):
                    # validate_direct_spte: wrong rights, unlink and redo.
                    self._zap_pte(sp, i)
                    child = None
            else:
                child = None
            if child is None:
                role = kvm_mmu_child_role(sp.role, i, True, direct_access)
                child = self._get_shadow_page(vc, base_gfn, role)
                self._link(sp, i, child)
            sp, level = child, level - 1
        i = (gva >> 12) & 511
        sp.write_flooding_count = 0
        ret = self._mmu_set_spte(vc, sp, i, pte_access, w.gfn, slot, write, prefetch=False)
        if ret is not RetPf.SPURIOUS and slot is not None:
            self._pte_prefetch(vc, sp, i)
        return ret

    def _mmu_set_spte(self, vc: ShadowVcpu, sp: MmuPage, i: int, pte_access: int, gfn: int,
                      slot: Optional[Memslot], write_fault: bool, prefetch: bool) -> RetPf:
        """``mmu_set_spte``: install the leaf SPTE; ``EMULATE`` if W was withheld."""
        old = sp.spt[i]
        if slot is None:
            if _present(old):
                self._zap_pte(sp, i)
            spte = make_mmio_spte(self.fmt, gfn, pte_access,
                                  self.kvm.generation & MMIO_SPTE_GEN_MASK)
            self._set_spte(sp, i, spte)
            if self.tracing:
                self._log("MMIO SPTE", 1, f"SPTE {i} of {sp!r}", spte)
            return RetPf.EMULATE
        pfn = slot.gfn_to_hfn(gfn)
        was_rmapped = False
        if _present(old):
            if prefetch and _to_pfn(old) == pfn:
                return RetPf.SPURIOUS
            if _to_pfn(old) != pfn:
                self._zap_pte(sp, i)
            else:
                was_rmapped = True
        elif old:
            self._set_spte(sp, i, 0)  # an MMIO SPTE
        res = make_spte(vc.kind, pte_access=pte_access, level=1, gfn=gfn, pfn=pfn,
                        old_spte=sp.spt[i], prefetch=prefetch, host_writable=not slot.readonly,
                        ad_disabled=bool(sp.role.ad_disabled),
                        try_unsync=lambda g, cu: self._try_to_unsync(g, cu, prefetch))
        if res.rsvd_violation:
            raise RuntimeError(f"shadow MMU model built a reserved SPTE {res.spte:#x} (a model bug)")
        if sp.spt[i] != res.spte:
            self._set_spte(sp, i, res.spte)
        if res.writable and slot.dirty_logging:
            self.kvm._mark_page_dirty(gfn, slot.as_id)
        sp.shadowed_translation[i] = (gfn, pte_access)
        if not was_rmapped:
            self.rmap.setdefault(gfn, set()).add((sp, i))
        if self.tracing:
            self._log("prefetch" if prefetch else "SPTE", 1,
                      f"SPTE {i} of {sp!r}: gfn {gfn:#x} -> pfn {pfn:#x}, rights "
                      f"{_acc_str(pte_access)}{' (write-protected)' if res.wrprot else ''}",
                      res.spte)
        return RetPf.EMULATE if res.wrprot and write_fault else RetPf.FIXED

    def _pte_prefetch(self, vc: ShadowVcpu, sp: MmuPage, i: int) -> None:
        """``FNAME(pte_prefetch)``: fill up to 7 neighbours of a new leaf SPTE."""
        if sp.role.level > 1 or sp.role.direct:
            return  # __direct_pte_prefetch is not modelled
        start = i & ~(PTE_PREFETCH_NUM - 1)
        ctx = self._gpte_context(vc)
        fmt = ctx.fmt
        for j in range(start, start + PTE_PREFETCH_NUM):
            if j == i or _present(sp.spt[j]):
                continue
            gpa, size = self._level1_gpte_gpa(sp, j)
            gpte = self._read_gpte(gpa, size)
            if gpte is None or self._prefetch_invalid_gpte(vc, sp, j, gpte):
                if "prefetch_skips_checks" in self.bugs:
                    continue  # the old loop went on past unusable entries
                break
            gfn = (gpte & fmt.base_addr_mask) >> 12
            pte_access = sp.role.access & fmt.gpte_access(gpte)
            if ctx.have_ad and not gpte & fmt.dirty_mask:
                pte_access &= ~ACC_WRITE_MASK
            slot = self.kvm._gfn_to_memslot(gfn, vc.vcpu.as_id)
            if slot is None or (slot.dirty_logging and pte_access & ACC_WRITE_MASK):
                break
            self.stats["prefetched"] += 1
            self._mmu_set_spte(vc, sp, j, pte_access, gfn, slot, False, prefetch=True)

    # -- guest stores to its page tables --------------------------------------

    def guest_write(self, vc: ShadowVcpu, gpa: int, data: bytes) -> GuestStore:
        """The guest stores ``data`` at ``gpa`` (typically one of its gptes).

        If the frame is write-tracked (a shadowed upper-level table) the
        store is emulated: memory is written, then the SPTEs it makes stale
        are zapped, or the whole SP on a misaligned store or the third
        emulated store in a row (write flooding). Otherwise the level-1 SPs
        of the frame go unsync and the store reaches memory directly.

        Returns
        -------
        refimpl.host.outcomes.GuestStore
            ``EMULATED`` or ``DIRECT``.

        Raises
        ------
        TypeError, ValueError
            Bad ``data``, or ``gpa`` outside guest memory or every memslot.

        KVM
        ---
        ``page_fault_handle_page_track`` and ``kvm_mmu_track_write``
        (``arch/x86/kvm/mmu/mmu.c``) for the emulated path;
        ``mmu_try_to_unsync_pages`` for the direct one.
        """
        vc = self._check_vcpu(vc)
        if isinstance(data, str) or not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        gpa = check_int("gpa", gpa)
        n = len(data)
        if n < 1 or (gpa & 0xFFF) + n > _PAGE:
            raise ValueError("data must be 1 byte or more and stay within one page")
        if not self.guest_mem.contains(gpa, n):
            raise ValueError(f"gpa {gpa:#x} is outside guest memory")
        gfn = gpa >> 12
        slot = self.kvm._gfn_to_memslot(gfn, vc.vcpu.as_id)
        if slot is None:
            raise ValueError(f"gpa {gpa:#x} is in no memslot")
        if self.write_track.get(gfn, 0) > 0:
            self.guest_mem.write(gpa, bytes(data))
            self.kvm._mark_page_dirty(gfn, slot.as_id)
            self._track_write(gpa, n)
            return GuestStore.EMULATED
        self._try_to_unsync(gfn, True, False)
        self.guest_mem.write(gpa, bytes(data))
        self.kvm._mark_page_dirty(gfn, slot.as_id)
        return GuestStore.DIRECT

    def _track_write(self, gpa: int, nbytes: int) -> None:
        """``kvm_mmu_track_write``."""
        self.stats["emulated_writes"] += 1
        if not self.indirect_shadow_pages:
            return
        for sp in list(self.gfn_sps.get(gpa >> 12, ())):
            if not sp.has_gptes or sp.role.invalid:
                continue
            flooded = False
            if sp.role.level > 1:
                sp.write_flooding_count += 1
                flooded = sp.write_flooding_count >= 3
            if detect_write_misaligned(sp.role, gpa, nbytes) or flooded:
                if flooded:
                    self.stats["flooded"] += 1
                self._prepare_zap(sp)
                continue
            where = get_written_sptes(sp.role, gpa)
            if where is None:
                continue
            first, count = where
            for k in range(first, first + count):
                if sp.spt[k]:
                    self._log("zap", sp.role.level, f"SPTE {k} of {sp!r}: its gpte was written")
                self._zap_pte(sp, k)

    def invlpg(self, vc: ShadowVcpu, gva: int) -> None:
        """INVLPG: sync the leaf SPTEs for ``gva`` in every cached root.

        KVM
        ---
        ``kvm_mmu_invlpg`` -> ``kvm_mmu_invalidate_addr`` (``KVM_MMU_ROOTS_ALL``)
        -> ``__kvm_mmu_invalidate_addr`` in ``arch/x86/kvm/mmu/mmu.c``.
        """
        vc = self._check_vcpu(vc)
        gva = check_gva(gva, vc.cpu)
        roots = [vc.mmu.root] + list(vc.mmu.prev_roots)
        for root in roots:
            if not root.valid:
                continue
            sp = self._root_sp(root)
            if sp is None:
                sp = vc.pae_root[(gva >> 30) & 3]
            level = sp.role.level if sp is not None else 0
            while sp is not None and not sp.role.invalid:
                i = (gva >> (12 + 9 * (level - 1))) & 511
                if sp.unsync:
                    if self._sync_spte(vc, sp, i) < 0:
                        self._zap_pte(sp, i)
                if not sp.unsync_children:
                    break
                spte = sp.spt[i]
                if not _present(spte) or level == 1 or _large(spte):
                    break
                sp, level = self._child(spte), level - 1
        self._enter(vc)

    # -- memslot listener ---------------------------------------------------

    def memslot_changed(self, kvm: Kvm, change: MemslotChange) -> None:
        """Deleting or moving a slot zaps everything; enabling dirty logging
        write-protects the slot (``kvm_mmu_slot_remove_write_access``)."""
        check_instance("kvm", kvm, Kvm)
        check_instance("change", change, MemslotChange)
        if change.kind in (MemslotChangeKind.DELETE, MemslotChangeKind.MOVE):
            self.zap_all()
        elif change.kind is MemslotChangeKind.FLAGS_ONLY and change.new is not None:
            if change.new.dirty_logging and not (change.old and change.old.dirty_logging):
                for gfn in list(self.rmap):
                    if change.new.contains(gfn):
                        self._write_protect_gfn(gfn, pt_protect=False)

    def sync_dirty_log(self, kvm: Kvm, slot: Memslot) -> None:
        """Nothing to do: shadow paging logs by write protection, not PML."""

    def dirty_log_cleared(self, kvm: Kvm, slot: Memslot, gfns: frozenset[int]) -> None:
        """Write-protect the returned gfns again (``kvm_mmu_write_protect_pt_masked``)."""
        for gfn in gfns:
            self._write_protect_gfn(gfn, pt_protect=False)

    # -- inspection -----------------------------------------------------------

    def leaf_sptes(self) -> list[tuple[MmuPage, int, int]]:
        """Every present leaf SPTE of every valid SP: ``(sp, index, spte)``."""
        out = []
        for sp in self.shadow_pages():
            if sp.role.level != 1:
                continue
            for i, spte in enumerate(sp.spt):
                if _present(spte):
                    out.append((sp, i, spte))
        return out
