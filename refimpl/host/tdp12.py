"""``tdp12_mmu`` (today's ``guest_mmu``): L0's shadow of L1's EPT or NPT tables.

When L1 runs L2 with EPT, the CPU cannot walk L1's EPT12 (it maps L2
physical addresses to *L1* physical ones). L0 (KVM) builds EPT02 instead:
shadow pages that map L2-physical addresses straight to host frames. It
fills them lazily: an L2 access that EPT02 does not map exits to L0, which
walks L1's EPT12 for the L2 gpa (the EPT copy of ``paging_tmpl.h``), looks
the L1 gpa up in its memslots, and installs an SPTE whose rights are L1's
rights ANDed along the walk and limited by the memslot. If L1's EPT12 does
not allow the access, L0 reflects an EPT violation (or misconfiguration)
to L1 instead.

This is the ordinary shadow MMU (:class:`refimpl.host.shadow_mmu.ShadowMmu`)
with a different guest entry format, exactly as KVM compiles
``paging_tmpl.h`` with ``PTTYPE_EPT``: :class:`Tdp12Mmu` subclasses it and
changes only what is EPT-specific (the guest walk, the roles, the root,
the hardware walk, INVEPT). Write tracking of L1's upper-level EPT tables,
unsync leaf shadow pages, syncing, prefetch, rmaps and zapping are the
shadow MMU's own code.

Coherence, in three rules
-------------------------
1. Upper-level EPT12 tables (levels 2 and up) that have a shadow page are
   *write-tracked*: every L1 store to them is trapped and zaps the SPTEs it
   makes stale, so the change is visible to L2 at once.
2. Level-1 EPT12 tables are only write-protected; L1's first store makes
   their shadow pages *unsync* and goes straight to memory. L2 may keep
   using the old SPTEs, as the architecture lets it keep using cached
   EPT translations, until L1 executes INVEPT.
3. INVEPT frees the guest_mmu roots it names (single-context: the roots
   built for that EPTP, current or in ``prev_roots``; global: all). The
   next VM entry reloads the root, and loading a root syncs every unsync
   page below it (``kvm_mmu_load`` -> ``kvm_mmu_sync_roots``).

NPT is the same with x86 tables: L1's NPT12 is an ordinary 64-bit
hierarchy, so :func:`shadow_npt_vcpu` runs the unmodified shadow MMU on it
with ``role.guest_mode`` set, every access a user access.

Glossary
--------
EPT12, EPT02
    L1's EPT for L2 (L2 gpa -> L1 gpa), and the tables L0 builds for the
    CPU while L2 runs (L2 gpa -> host pa): the shadow pages of this module.
INVEPT
    L1's instruction to drop cached EPT translations: single-context (one
    EPTP) or global.
naive switches (:data:`TDP12_BUGS`)
    Each removes one coherence rule, for the tests to catch.

Scope: the model works at the level of L2-physical addresses (L2's own
page-table walk is done by the CPU through EPT02, and by
:func:`refimpl.guest.nested.nested_translate` when KVM emulates). L1's stores to
its EPT tables go through :meth:`refimpl.host.shadow_mmu.ShadowMmu.guest_write`
(the trap or the direct store), not through a model of L1's own TDP
mapping; the data L2 reads and writes is not modelled. MBEC, EPT-violation
#VE and the sync that every nested VMRUN requests on SVM are left out.

KVM
---
``arch/x86/kvm/mmu/mmu.c`` (``kvm_init_shadow_ept_mmu``,
``kvm_mmu_page_fault``, ``kvm_mmu_load``), ``arch/x86/kvm/mmu/paging_tmpl.h``
with ``PTTYPE_EPT`` (``ept_page_fault``, ``ept_sync_spte``),
``arch/x86/kvm/vmx/nested.c`` (``nested_ept_init_mmu_context``,
``nested_ept_new_eptp``, ``nested_ept_inject_page_fault``,
``handle_invept``) and ``arch/x86/kvm/svm/nested.c``
(``nested_svm_init_mmu_context``, ``nested_svm_inject_npf_exit``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Optional

from refimpl.guest.cpu import CpuState
from refimpl.guest.ept import EptFault, _check_flag, ept_access_pfec, ept_walk_context
from refimpl.guest.faults import WalkError
from refimpl.guest.formats import CR0, EFER, EPT_EXIT_QUAL, EPTP
from refimpl.errors import check_instance, check_range
from refimpl.guest.memory import GuestMemory, check_int
from refimpl.host.kvm_mmu import INVALID_ROOT, Mmu, MmuKind, RootInfo
from refimpl.host.outcomes import AccessPath, HwFault, RetPf
from refimpl.host.mmu import HwResult, _hw_translate_tdp
from refimpl.host.tlb import vcpu_tlb
from refimpl.guest.nested import NestedFault, _check_eptp, ept_exit_to_l1, npf_exit_to_l1
from refimpl.host.roles import ACC_ALL, CpuRole, PageRole, calc_shadow_ept_role
from refimpl.host.shadow_mmu import GuestWalk, ShadowMmu, ShadowVcpu
from refimpl.host.spte import SpteFormat, ept_format, ept_shadow_zero_check
from refimpl.host.vm import Kvm, Vcpu
from refimpl.guest.walker import ACCESS_FETCH, ACCESS_USER, ACCESS_WRITE, TranslateResult, WalkContext, \
    check_access, walk_addr_generic

__all__ = [
    "TDP12_BUGS",
    "INVEPT_SINGLE_CONTEXT",
    "INVEPT_GLOBAL",
    "L2Access",
    "Tdp12Vcpu",
    "Tdp12Mmu",
    "shadow_npt_vcpu",
    "npt_access",
]

#: INVEPT extent 1 (the instruction's type operand): the roots of one EPTP.
INVEPT_SINGLE_CONTEXT = 1
#: INVEPT extent 2: every EPTP's roots.
INVEPT_GLOBAL = 2

#: The naive switches: each drops one of the coherence rules.
TDP12_BUGS: dict[str, str] = {
    "no_write_tracking": (
        "L1's upper-level EPT tables are not write-tracked: an L1 store to them is not "
        "trapped, so the shadow pages built from the old entry stay (account_shadowed "
        "without kvm_write_track_add_gfn)"),
    "invept_keeps_roots": (
        "INVEPT does nothing to guest_mmu: unsync leaf shadow pages are never synced, so "
        "L1's leaf edits never reach L2 (handle_invept without kvm_mmu_free_roots)"),
}

_WF = ACCESS_WRITE | ACCESS_FETCH
_GVA_BITS = EPT_EXIT_QUAL.GVA_IS_VALID.bit | EPT_EXIT_QUAL.GVA_TRANSLATED.bit


@dataclass(frozen=True)
class L2Access:
    """How an L2 access through ``tdp12_mmu`` ended.

    Parameters
    ----------
    path : refimpl.host.outcomes.AccessPath
        ``HARDWARE`` (the CPU found it in EPT02/NPT02), ``EMULATED``
        (L0 emulated the instruction), ``MMIO`` (the L1 gpa is in no
        memslot: an exit to L0's userspace) or ``EXIT`` (reflected to L1).
    hpa : int or None
        The host-physical address reached.
    l1_gpa : int or None
        The L1 gpa, when L0 walked L1's tables for this access.
    exit : refimpl.guest.nested.NestedFault or None
        The EPT violation / misconfiguration / #NPF L1 receives.
    exits : int
        Exits to L0 (EPT violations of EPT02) on the way.
    """

    path: AccessPath
    hpa: Optional[int] = None
    l1_gpa: Optional[int] = None
    exit: Optional[NestedFault] = None
    exits: int = 0


@dataclass(eq=False)
class Tdp12Vcpu(ShadowVcpu):
    """A vCPU's ``guest_mmu`` state while it shadows one EPT12.

    Attributes
    ----------
    eptp : int
        L1's current EPT pointer for L2 (EPTP12).
    ctx : refimpl.guest.walker.WalkContext or None
        The EPT walk context of ``eptp`` (levels, A/D, execute-only).

    The inherited ``cpu`` is unused (L2's own registers do not shape
    EPT02); ``mmu`` is ``vcpu->arch.guest_mmu``.
    """

    eptp: int = 0
    ctx: Optional[WalkContext] = None


class Tdp12Mmu(ShadowMmu):
    """The shadow MMU running on L1's EPT tables: ``guest_mmu`` / ``tdp12_mmu``.

    Parameters
    ----------
    kvm : refimpl.host.vm.Kvm
        L0's VM for L1: its memslots map L1 gpas to host frames.
    l1_mem : refimpl.guest.memory.GuestMemory
        L1's physical memory as L1 sees it (its EPT12 tables).
    execute_only : bool
        Execute-only EPT entries are offered to L1 (``ept_caps``).
    bugs : iterable of str
        Names from :data:`TDP12_BUGS`.
    fmt : refimpl.host.spte.SpteFormat or None
        The EPT SPTE format (default :func:`refimpl.host.spte.ept_format` with the
        host's MAXPHYADDR).

    KVM
    ---
    ``kvm_init_shadow_ept_mmu`` in ``arch/x86/kvm/mmu/mmu.c``. In KVM
    these shadow pages share ``mmu_page_hash`` (and the write-tracking
    counts) with any shadow pages of L1's own, ``role.guest_mode=1``
    keeping them apart; the model gives them an instance of their own.
    """

    BUGS = TDP12_BUGS

    def __init__(self, kvm: Kvm, l1_mem: GuestMemory, *, execute_only: bool = True,
                 bugs: Iterable[str] = (), fmt: Optional[SpteFormat] = None) -> None:
        self.execute_only = _check_flag("execute_only", execute_only)
        super().__init__(kvm, l1_mem, bugs=bugs, fmt=fmt)

    # -- what differs from x86 shadow paging -------------------------------

    def _check_fmt(self, kvm: Kvm, fmt: Optional[SpteFormat]) -> SpteFormat:
        if fmt is None:
            fmt = ept_format(phys_bits=kvm.host.maxphyaddr, has_exec_only=True)
        if not isinstance(fmt, SpteFormat) or fmt.name != "ept":
            raise ValueError("fmt: EPT02 needs ept_format()")
        return fmt

    def _gpte_context(self, vc: ShadowVcpu) -> WalkContext:
        assert isinstance(vc, Tdp12Vcpu) and vc.ctx is not None
        return vc.ctx

    def _account_shadowed(self, sp) -> None:
        if "no_write_tracking" in self.bugs and sp.role.level > 1:
            self.indirect_shadow_pages += 1
            return
        super()._account_shadowed(sp)

    def _try_to_unsync(self, gfn: int, can_unsync: bool, prefetch: bool) -> bool:
        if "no_write_tracking" in self.bugs and any(
                sp.role.level > 1 for sp in self.gfn_sps.get(gfn, ())):
            return False  # the store reaches memory unnoticed
        return super()._try_to_unsync(gfn, can_unsync, prefetch)

    def _unaccount_shadowed(self, sp) -> None:
        if "no_write_tracking" in self.bugs and sp.role.level > 1:
            self.indirect_shadow_pages -= 1
            return
        super()._unaccount_shadowed(sp)

    def _ept_state(self, eptp: int):
        level = EPTP.WALK_LENGTH.get(eptp) + 1
        ad = bool(EPTP.AD.get(eptp))
        cpu_role = calc_shadow_ept_role(level, ad, self.execute_only)
        ctx = ept_walk_context(level, ad, self.kvm.guest_maxphyaddr, self.execute_only)
        return cpu_role, cpu_role.base, ctx

    def _kind(self, level: int) -> MmuKind:
        # reset_ept_shadow_zero_bits_mask: EPT masks with L1's execute-only.
        zero = ept_shadow_zero_check(self.fmt, execonly=self.execute_only)
        return MmuKind(False, self.fmt, zero, level, ad_enabled=self.fmt.ad_bits)

    def add_vcpu(self, eptp: int, *,  # type: ignore[override]
                 vcpu: Optional[Vcpu] = None) -> Tdp12Vcpu:
        """Start shadowing EPT12 at ``eptp`` for a vCPU entering L2.

        Parameters
        ----------
        eptp : int
            EPTP12: memory type 0/6, four or five levels, bit 6 A/D.
        vcpu : refimpl.host.vm.Vcpu or None
            The vCPU (default: a new one). Its ``mmu`` is not changed: the
            nested entry points it at the returned ``mmu``.

        Raises
        ------
        TypeError, ValueError
            A bad EPTP, or ``vcpu`` not of this VM.

        KVM
        ---
        ``nested_ept_init_mmu_context`` (``arch/x86/kvm/vmx/nested.c``) ->
        ``kvm_init_shadow_ept_mmu``; the root is built by ``kvm_mmu_load``.
        """
        eptp = _check_eptp(eptp)
        if vcpu is None:
            vcpu = self.kvm.create_vcpu()
        elif not isinstance(vcpu, Vcpu) or vcpu not in self.kvm.vcpus:
            raise TypeError("vcpu must be a Vcpu of this VM")
        cpu_role, root_role, ctx = self._ept_state(eptp)
        kind = self._kind(root_role.level)
        mmu = Mmu(kind=kind, root_role=root_role, tlb=vcpu_tlb(vcpu))
        vc = Tdp12Vcpu(vcpu, CpuState(), mmu, kind, cpu_role, eptp=eptp, ctx=ctx)
        mmu.page_fault = lambda addr, access: self.access(vc, addr, access)
        self.vcpus.append(vc)
        self._enter(vc)
        return vc

    def set_eptp(self, vc: Tdp12Vcpu, eptp: int) -> None:
        """A nested VM entry (or EPTP switch) with EPTP12 = ``eptp``.

        A new format (levels, A/D) gives new roles; then the root is
        switched like a CR3 load: kept if it was built for ``eptp`` with the
        current role, else taken from ``prev_roots``, else rebuilt. Nothing
        is synced: stale EPT translations are L1's to flush with INVEPT.

        KVM
        ---
        ``nested_ept_new_eptp`` (``arch/x86/kvm/vmx/nested.c``) ->
        ``kvm_init_shadow_ept_mmu`` -> ``kvm_mmu_new_pgd``.
        """
        vc = self._check_vcpu(vc)
        eptp = _check_eptp(eptp)
        cpu_role, root_role, ctx = self._ept_state(eptp)
        if cpu_role != vc.cpu_role:
            # A new format: new roles; roots of the old one stay cached but
            # are not usable until the format comes back.
            vc.cpu_role, vc.ctx = cpu_role, ctx
            vc.mmu.root_role = root_role
            vc.kind = vc.mmu.kind = self._kind(root_role.level)
        self._new_pgd(vc, eptp)
        vc.eptp = eptp
        self._enter(vc)

    def load_root(self, vc, eptp, cpu_role, root_role, *,  # type: ignore[override]
                  keep_root: bool = False) -> None:
        """Take the roles from a caller that computes them (a refactoring layout).

        As :meth:`refimpl.host.shadow_mmu.ShadowMmu.load_root`, with EPTP12 in
        place of the registers: the EPT12 walk context (levels, A/D,
        execute-only) is read from ``cpu_role``, not from ``eptp``, so a
        stale role walks with a stale format.

        Raises
        ------
        TypeError, ValueError
            A bad EPTP, roles of the wrong type, or a direct ``root_role``.
        """
        vc = self._check_vcpu(vc)
        eptp = _check_eptp(eptp)
        check_instance("cpu_role", cpu_role, CpuRole)
        check_instance("root_role", root_role, PageRole)
        if not isinstance(keep_root, bool):
            raise TypeError(f"keep_root must be a bool, got {keep_root!r}")
        if root_role.direct:
            raise ValueError("root_role: a shadow root needs an indirect role (direct=0)")
        b = cpu_role.base
        ctx = ept_walk_context(b.level, not b.ad_disabled, self.kvm.guest_maxphyaddr,
                               bool(cpu_role.ext.execonly))
        if not keep_root:
            self._free_roots(vc, current=True, previous=False)
            vc.kind = vc.mmu.kind = self._kind(root_role.level)
        vc.cpu_role, vc.ctx, vc.eptp = cpu_role, ctx, eptp
        vc.mmu.root_role = root_role
        self._enter(vc)

    def write_cr3(self, vc, cr3):  # type: ignore[override]
        """Not for EPT12: L2's CR3 does not select EPT02 (use :meth:`set_eptp`)."""
        raise TypeError("write_cr3: guest_mmu follows EPTP12; use set_eptp")

    def set_cpu(self, vc, cpu):  # type: ignore[override]
        """Not for EPT12: L2's registers do not shape EPT02."""
        raise TypeError("set_cpu: guest_mmu follows EPTP12; use set_eptp")

    def invlpg(self, vc, gva):  # type: ignore[override]
        """Not for EPT12: L2's INVLPG does not touch EPT02 (L1 uses INVEPT)."""
        raise TypeError("invlpg: EPT02 is invalidated by INVEPT")

    def _load(self, vc: ShadowVcpu) -> None:
        """``kvm_mmu_load`` for EPT02: the root shadows EPTP12's root table."""
        assert isinstance(vc, Tdp12Vcpu)
        root_gfn = (vc.eptp & EPTP.ADDR.mask) >> 12
        sp = self._alloc_root_sp(vc, root_gfn, 0, vc.mmu.root_role.level)
        vc.mmu.root = RootInfo(sp.hpa, vc.eptp)
        self._sync_roots(vc)

    def invept(self, vc: Tdp12Vcpu, extent: int, eptp: int = 0) -> int:
        """L1 executes INVEPT: free the guest_mmu roots it names.

        Parameters
        ----------
        vc : Tdp12Vcpu
        extent : int
            :data:`INVEPT_SINGLE_CONTEXT` (roots whose EPTP has the root
            address of ``eptp``, current or previous) or :data:`INVEPT_GLOBAL`.
        eptp : int
            The INVEPT descriptor's EPTP (single-context only).

        Returns
        -------
        int
            How many roots were freed. The next VM entry reloads the root
            and syncs the unsync pages below it.

        KVM
        ---
        ``handle_invept`` and ``nested_ept_root_matches``
        (``arch/x86/kvm/vmx/nested.c``), ``kvm_mmu_free_roots``.
        """
        vc = self._check_vcpu(vc)
        extent = check_int("extent", extent)
        if extent not in (INVEPT_SINGLE_CONTEXT, INVEPT_GLOBAL):
            raise ValueError(f"extent must be {INVEPT_SINGLE_CONTEXT} (single-context) or "
                             f"{INVEPT_GLOBAL} (global), got {extent}")
        if extent == INVEPT_SINGLE_CONTEXT:
            eptp = _check_eptp(eptp)
        if "invept_keeps_roots" in self.bugs:
            return 0
        mmu = vc.mmu

        def named(root: RootInfo) -> bool:
            if not root.valid:
                return False
            if extent == INVEPT_GLOBAL:
                return True
            return (root.pgd & EPTP.ADDR.mask) == (eptp & EPTP.ADDR.mask)

        freed = 0
        for i, root in enumerate(mmu.prev_roots):
            if named(root):
                self._free_root(root)
                mmu.prev_roots[i] = INVALID_ROOT
                freed += 1
        if named(mmu.root):
            self._free_root(mmu.root)
            mmu.root = INVALID_ROOT
            freed += 1
        self._log("INVEPT", None, f"extent {extent}: {freed} root(s) freed")
        return freed

    # -- the walk of EPT12 ---------------------------------------------------

    def guest_walk(self, vc: ShadowVcpu, gva: int, access: int) -> GuestWalk:
        """Walk EPT12 for the L2 gpa ``gva`` as ``ept_page_fault`` does.

        Parameters
        ----------
        vc : Tdp12Vcpu
        gva : int
            The L2 guest-physical address.
        access : int
            ``ACCESS_WRITE`` / ``ACCESS_FETCH`` (0: a read), turned into
            the EPT walker's error code (:func:`refimpl.guest.ept.ept_access_pfec`).

        Returns
        -------
        refimpl.host.shadow_mmu.GuestWalk
            On failure ``result.fault`` is the :class:`refimpl.guest.ept.EptFault`.
            Sets EPT12's A/D bits on success when EPTP12 enables them.

        KVM
        ---
        ``FNAME(walk_addr_generic)`` with ``PTTYPE_EPT``
        (``arch/x86/kvm/mmu/paging_tmpl.h``).
        """
        vc = self._check_vcpu(vc)
        if vc.ctx is None:
            raise ValueError("guest_walk: no EPTP12 loaded (set_eptp first)")
        gva = check_range("gva", gva, 0, 1 << 52)
        return self._guest_walk(vc, gva, check_int("access", access))

    def _guest_walk(self, vc: ShadowVcpu, gva: int, access: int) -> GuestWalk:
        assert isinstance(vc, Tdp12Vcpu) and vc.ctx is not None
        ctx = vc.ctx
        pfec = ept_access_pfec(access & _WF)
        walk = walk_addr_generic(self.guest_mem, ctx, vc.eptp, gva, pfec)
        error, level, errcode = walk.error, walk.level, walk.errcode
        if error is None:
            for lv, gpa, _ in walk.trace:
                if self.kvm._gfn_to_memslot(gpa >> 12, vc.vcpu.as_id) is None:
                    error, level, errcode = WalkError.NO_MEMSLOT, lv, 0
                    break
        if error is not None:
            fault = EptFault("misconfig" if error is WalkError.RSVD else "violation", level,
                             errcode | pfec, walk.pte_access & 7, error)
            failed = TranslateResult(None, fault, level,  # type: ignore[arg-type]
                                     walk.trace, walk.acc)
            return GuestWalk(failed)
        pt_access, table_gfn, ptes, pte_gpa = {}, {}, {}, {}
        above = ACC_ALL
        for lv, gpa, pte in walk.trace:
            pt_access[lv], table_gfn[lv], ptes[lv], pte_gpa[lv] = above, gpa >> 12, pte, gpa
            above &= ctx.fmt.gpte_access(pte)
        assert walk.gpa is not None
        result = TranslateResult(walk.gpa, None, walk.level, walk.trace, walk.acc)
        return GuestWalk(result, walk.level, walk.gpa >> 12, walk.acc, pt_access, table_gfn,
                         ptes, pte_gpa)

    # -- L2's accesses -------------------------------------------------------

    def hw_walk(self, vc: ShadowVcpu, gva: int, access: int = 0) -> HwResult:
        """The CPU's walk of EPT02 for the L2 gpa ``gva`` (no L0 involved)."""
        vc = self._check_vcpu(vc)
        gva = check_range("gva", gva, 0, 1 << 52)
        return self._hw_walk(vc, gva, check_int("access", access))

    def _hw_walk(self, vc: ShadowVcpu, gva: int, access: int) -> HwResult:
        root = vc.mmu.root
        if root.hpa is None:
            return HwResult(None, None, HwFault.NOT_PRESENT)
        role = vc.mmu.root_role
        return _hw_translate_tdp(self.host, self.fmt, root.hpa, role.level, gva, access & _WF,
                                 not role.ad_disabled)

    def access(self, vc: ShadowVcpu, gva: int, access: int = 0, *,  # type: ignore[override]
               hw_exit_qualification: int = _GVA_BITS) -> L2Access:
        """L2 touches its physical address ``gva`` while running on EPT02.

        The CPU walks EPT02; on an EPT violation L0 walks EPT12: a failure is
        reflected to L1, a success installs SPTEs and the access is retried.

        Parameters
        ----------
        vc : Tdp12Vcpu
        gva : int
            The L2 guest-physical address.
        access : int
            ``ACCESS_WRITE`` and/or ``ACCESS_FETCH`` (0: a read).
        hw_exit_qualification : int
            Bits 7/8 of the hardware exit (a linear address was translated,
            the final access), kept in the exit qualification L1 receives.

        Returns
        -------
        L2Access

        KVM
        ---
        ``handle_ept_violation`` (``arch/x86/kvm/vmx/vmx.c``) ->
        ``kvm_mmu_page_fault`` -> ``ept_page_fault``; reflected by
        ``nested_ept_inject_page_fault``.
        """
        vc = self._check_vcpu(vc)
        gva = check_range("gva", gva, 0, 1 << 52)
        access = check_access(access, _WF)
        hw, r, exits = self._fault_loop(
            vc, gva, access,
            lambda hw: self._ept_page_fault(vc, gva, access, hw, hw_exit_qualification))
        if r is None:
            return L2Access(AccessPath.HARDWARE, hpa=hw.hpa, exits=exits)
        return replace(r, exits=exits)

    def _ept_page_fault(self, vc: ShadowVcpu, l2_gpa: int, access: int, hw: HwResult,
                        hw_qual: int) -> Optional[L2Access]:
        """``ept_page_fault`` (``FNAME(page_fault)``); None means "retry"."""
        if self._current_mmio_spte(hw):
            return self._emulate_l2(vc, l2_gpa, access, hw_qual)  # handle_mmio_page_fault
        w = self._guest_walk(vc, l2_gpa, access)
        self._log("EPT12 walk", None, f"L2 gpa {l2_gpa:#x} access {access:#x}")
        for level, gpa, gpte in w.result.trace:
            self._log("EPT12 walk", level, f"entry at L1 gpa {gpa:#x}", gpte)
        if w.result.fault is not None:
            ex = ept_exit_to_l1(w.result.fault, l2_gpa & ~0xFFF,  # type: ignore[arg-type]
                                final=True, hw_exit_qualification=hw_qual)
            self._log("reflect", w.result.level, f"{ex.kind} to L1")
            return L2Access(AccessPath.EXIT, exit=ex)
        write = bool(access & ACCESS_WRITE)
        slot = self.kvm._gfn_to_memslot(w.gfn, vc.vcpu.as_id)
        if write and self.write_track.get(w.gfn, 0) > 0:
            return self._emulate_l2(vc, l2_gpa, access, hw_qual)
        if slot is not None and write and slot.readonly:
            return self._emulate_l2(vc, l2_gpa, access, hw_qual)
        ret = self._fetch(vc, l2_gpa, w, w.pte_access, w.pte_access, write, slot)
        if ret is RetPf.EMULATE:
            return self._emulate_l2(vc, l2_gpa, access, hw_qual)
        return None

    def _emulate_l2(self, vc: ShadowVcpu, l2_gpa: int, access: int, hw_qual: int) -> L2Access:
        """L0 emulates L2's access: the shadow MMU's emulation (walk EPT12,
        then the memslot), with a failed walk reflected to L1."""
        r = self._emulate(vc, l2_gpa, access)
        if r.fault is not None:
            ex = ept_exit_to_l1(r.fault, l2_gpa & ~0xFFF, final=True,  # type: ignore[arg-type]
                                hw_exit_qualification=hw_qual)
            return L2Access(AccessPath.EXIT, exit=ex)
        return L2Access(r.path, hpa=r.hpa, l1_gpa=r.gpa)


# ---------------------------------------------------------------------------
# Nested NPT: the unmodified shadow MMU, guest_mode role, user accesses.
# ---------------------------------------------------------------------------


def shadow_npt_vcpu(mmu: ShadowMmu, ncr3: int, l1_cr4: int, l1_efer: int) -> ShadowVcpu:
    """A shadow-MMU vCPU that shadows L1's NPT12 (nested NPT, 64-bit L1).

    The NPT format is L1's paging mode with CR0 = PG (so CR0.WP=0) and
    CR4.PKE dropped; the roles carry ``guest_mode=1``.

    Parameters
    ----------
    mmu : refimpl.host.shadow_mmu.ShadowMmu
        Its ``guest_mem`` is L1's memory (holding NPT12).
    ncr3 : int
        nCR3 from vmcb12.
    l1_cr4, l1_efer : int
        L1's CR4 and EFER (vmcb01). Long mode only in this model.

    Raises
    ------
    ValueError
        L1 not in long mode (32-bit and PAE NPT need KVM's extra
        ``pml4_root``/``pae_root`` levels, not modelled).

    KVM
    ---
    ``nested_svm_init_mmu_context`` (``arch/x86/kvm/svm/nested.c``) ->
    ``kvm_init_shadow_npt_mmu`` (``arch/x86/kvm/mmu/mmu.c``).
    """
    if not isinstance(mmu, ShadowMmu) or isinstance(mmu, Tdp12Mmu):
        raise TypeError("mmu must be an x86 ShadowMmu")
    l1_efer = check_int("l1_efer", l1_efer)
    if not l1_efer & EFER.LMA.bit:
        raise ValueError("l1_efer: the model shadows 64-bit NPT only (EFER.LMA=1)")
    cpu = CpuState(cr0=CR0.PE.bit | CR0.PG.bit, cr3=check_int("ncr3", ncr3),
                   cr4=check_int("l1_cr4", l1_cr4) & ~(1 << 22), efer=l1_efer,
                   maxphyaddr=mmu.kvm.guest_maxphyaddr)
    return mmu.add_vcpu(cpu, guest_mode=True)


def npt_access(mmu: ShadowMmu, vc: ShadowVcpu, l2_gpa: int, access: int = 0) -> L2Access:
    """L2 touches ``l2_gpa`` while running on NPT02 (shadow of NPT12).

    NPT walks are user walks, so the access is made with ``ACCESS_USER``;
    a fault found in NPT12 becomes a #NPF for L1 with GUEST_FINAL.

    KVM
    ---
    ``npf_interception`` (``arch/x86/kvm/svm/svm.c``) ->
    ``kvm_mmu_page_fault`` -> ``paging64_page_fault``; reflected by
    ``nested_svm_inject_npf_exit`` (``arch/x86/kvm/svm/nested.c``).
    """
    check_instance("mmu", mmu, ShadowMmu)
    mmu._check_vcpu(vc)
    l2_gpa = check_int("l2_gpa", l2_gpa)
    access = check_access(access, _WF)
    r = mmu.access(vc, l2_gpa, access | ACCESS_USER)
    if r.fault is not None:
        f = r.fault
        ex = npf_exit_to_l1(f.error_code, f.reason, f.level, l2_gpa & ~0xFFF, final=True)
        return L2Access(AccessPath.EXIT, exit=ex, exits=r.exits)
    return L2Access(r.path, hpa=r.hpa, l1_gpa=r.gpa, exits=r.exits)
