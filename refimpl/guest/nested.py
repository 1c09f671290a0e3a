"""Nested (two-dimensional) paging: an L2 address through L2's tables and L1's EPT/NPT.

Three levels of software are involved. L0 is KVM on the host. L1 is a guest
hypervisor that KVM runs. L2 is L1's guest. When L1 runs L2 with EPT (Intel)
or NPT (AMD), an L2 virtual address (gva) becomes an L2 physical address
through L2's own page tables, and every L2 physical address, *including the
address of each of L2's page tables*, becomes an L1 physical address through
L1's EPT or NPT tables. This module models that composition as KVM's
emulator does it: the ordinary guest walker
(:func:`refimpl.guest.walker.walk_addr_generic`) walks L2's tables, and its
``translate_gpa`` hook (KVM's ``kvm_translate_gpa`` /
``translate_nested_gpa``) sends each table address and the final address
through a walk of L1's EPT (:func:`refimpl.guest.ept.ept_walk_context`) or NPT
(:func:`refimpl.guest.ept.npt_translate`).

What it models
--------------
* The order and number of memory references (:class:`NestedRef`): with an
  ``n``-level L2 walk over an ``m``-level EPT/NPT walk, ``(n+1)(m+1) - 1``
  (24 for four levels over four).
* Fault routing (:class:`NestedFault`): a failure in L2's tables is a #PF
  for L2; a failure in L1's EPT/NPT is a VM exit to L1 (EPT violation with
  an exit qualification, EPT misconfiguration, or #NPF with exit_info_1/2),
  except while loading a PAE L2's PDPTEs: ``load_pdptrs`` gives the inner
  walk no exception to fill, so a PDPT page that L1's tables do not map
  readable and writable is a #GP in L2, and L1 hears nothing.
* The address L1 is told: the page of the table or of the final address,
  as the walker passes pages to ``kvm_translate_gpa``; but the whole
  address for an L2 without paging (``nonpaging_gva_to_gpa`` passes it
  unchanged), low bits included.
* The version followed: the newest tree (``kvm-x86/linux``), where the
  walker builds the exit qualification and the #NPF stage bits itself;
  ``refimpl.story.facts.nested`` records each rule, its source, and where
  the classic tree differs.
* A/D: L2's entries get A (and D) only when the whole walk succeeds, as in a
  one-dimensional walk; L1's EPT/NPT entries get A (and D) from each inner
  walk that succeeds, including the ones for L2's tables, because KVM
  translates table addresses with a write access (setting A/D writes them).

Glossary
--------
L0, L1, L2
    The host (KVM), the guest hypervisor, and L1's guest.
L2 gpa, L1 gpa
    An address in L2's physical space (what L2's tables contain), and in
    L1's physical space (what L1's EPT/NPT leaves contain; KVM's memslots
    map it to host memory).
dimension
    Which tables a reference reads: ``"L2"`` (L2's page tables) or ``"EPT"``
    / ``"NPT"`` (L1's tables for L2).
step
    The L2-physical address an inner walk serves: 0 for the address of L2's
    root table, ``k`` for the table read at the ``k``-th level of L2's walk,
    ``n`` for the final page.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from refimpl.errors import check_bool, check_instance
from refimpl.guest.cpu import CpuState, PagingMode
from refimpl.guest.ept import (
    EPTP_MEMORY_TYPES,
    EPTP_WALK_LENGTHS,
    EptFault,
    EptFaultKind,
    _check_flag,
    _check_maxphyaddr,
    _ept_fault,
    ept_violation_exit_qualification,
    ept_walk_context,
    npt_translate,
)
from refimpl.guest.faults import PF_VECTOR, WalkError, _fault_for
from refimpl.guest.formats import EPT_EXIT_QUAL, EPTP, PFERR, PTTYPE32, pse36_addr
from refimpl.guest.memory import GuestMemory, check_int
from refimpl.guest.walker import (
    ACCESS_FETCH,
    ACCESS_WRITE,
    PAE_CR3_PDPT_MASK,
    _is_canonical,
    _load_pdptrs,
    _root_table,
    _walk_addr_generic,
    _walk_context_of,
    check_access,
    check_gva,
)

#: exit_info_1 bit 32 of a #NPF: the fault was on the final guest-physical
#: access (KVM's ``PFERR_GUEST_FINAL_MASK``).
PFERR_GUEST_FINAL = 1 << 32
#: exit_info_1 bit 33 of a #NPF: the fault was on an access to one of the
#: guest's page tables (KVM's ``PFERR_GUEST_PAGE_MASK``).
PFERR_GUEST_PAGE = 1 << 33

_PAGE = ~0xFFF
_U = int(PFERR.U)
_WF = ACCESS_WRITE | ACCESS_FETCH


@dataclass(frozen=True)
class NestedRef:
    """One memory reference of a two-dimensional walk.

    Parameters
    ----------
    dimension : str
        ``"L2"`` for an entry of L2's tables, ``"EPT"`` or ``"NPT"`` for an
        entry of L1's tables.
    step : int
        For an ``"L2"`` entry, its position in L2's walk (1 = root table);
        for an EPT/NPT entry, the L2-physical address being translated: ``k``
        for the table that the L2 walk reads next at position ``k + 1``, and
        the last step for the final page.
    level : int
        Level of the entry in its own hierarchy.
    address : int
        Where the entry was read: an L1 guest-physical address.
    value : int
        The entry as read (before any A/D update).
    l2_gpa : int
        For an ``"L2"`` entry, its own L2 guest-physical address; for an
        EPT/NPT entry, the (page-aligned) L2 gpa its walk translates.
    phase : str
        ``"walk"``, or ``"pdptr"`` for the PAE PDPTE load that precedes it.

    KVM
    ---
    The reads done by ``FNAME(walk_addr_generic)`` in
    ``arch/x86/kvm/mmu/paging_tmpl.h``: one copy walking L2's tables
    (``nested_mmu``) and, inside each ``kvm_translate_gpa``, the EPT or NPT
    copy walking L1's tables (``guest_mmu``).
    """

    dimension: str
    step: int
    level: int
    address: int
    value: int
    l2_gpa: int
    phase: str = "walk"


class NestedFaultKind(StrEnum):
    """What a failed nested translation delivers; each equals its string.

    KVM
    ---
    ``kvm_inject_page_fault`` (``arch/x86/kvm/x86.c``) for L2's own #PF;
    ``nested_ept_inject_page_fault`` (``arch/x86/kvm/vmx/nested.c``) and
    ``nested_svm_inject_npf_exit`` (``arch/x86/kvm/svm/nested.c``) for the
    VM exits to L1.
    """

    #: A page fault injected into L2 (a failure in L2's own tables).
    PF = "#PF"
    #: A general-protection fault injected into L2 (non-canonical gva, bad PDPTE).
    GP = "#GP"
    #: An EPT violation exit to L1.
    EPT_VIOLATION = "EPT violation"
    #: An EPT misconfiguration exit to L1.
    EPT_MISCONFIG = "EPT misconfiguration"
    #: A nested page fault (#NPF) exit to L1.
    NPF = "#NPF"


@dataclass(frozen=True)
class NestedFault:
    """Where a failed nested translation is delivered, and with what.

    Parameters
    ----------
    target : str
        ``"L2"`` (an exception injected into L2) or ``"L1"`` (a VM exit).
    kind : NestedFaultKind
        ``"#PF"``, ``"#GP"``, ``"EPT violation"``, ``"EPT misconfiguration"``
        or ``"#NPF"`` (a ``str`` enum, equal to those strings).
    address : int
        For #PF, the gva (CR2); 0 for #GP. For a VM exit, the L2
        guest-physical address that L1's tables failed to translate
        (``guest_physical_address`` in the VMCS, ``exit_info_2`` in the
        VMCB): page-aligned when L2 pages, as the walker passes page
        addresses to ``kvm_translate_gpa``; the whole address, low bits
        kept, when L2 does not page (``nonpaging_gva_to_gpa``).
    error_code : int
        #PF: the error code. EPT: KVM's EPT walker error code (``P|RSVD``
        for a misconfiguration; W and U from the access, never F). #NPF:
        the same as ``exit_info_1``.
    reason : refimpl.guest.faults.WalkError
        Why the failing walk stopped.
    level : int or None
        Level where the failing walk (L2's, or L1's) stopped.
    final : bool
        VM exits only: the failure was on the final access, not on one of
        L2's tables.
    exit_qualification : int or None
        EPT violations only (see :func:`emulated_ept_exit_qualification`).
    exit_info_1, exit_info_2 : int or None
        #NPF only.
    vector : int or None
        For an exception into L2: 14 or 13.

    KVM
    ---
    ``kvm_inject_emulated_page_fault`` (``arch/x86/kvm/x86.c``) picks the
    target: the faulting context's ``inject_page_fault``, which is
    ``nested_ept_inject_page_fault`` (``arch/x86/kvm/vmx/nested.c``) or
    ``nested_svm_inject_npf_exit`` (``arch/x86/kvm/svm/nested.c``) for a
    fault found in L1's tables, and ``kvm_inject_page_fault`` for L2's own.
    """

    target: str
    kind: NestedFaultKind
    address: int
    error_code: int
    reason: WalkError
    level: int | None
    final: bool = False
    exit_qualification: int | None = None
    exit_info_1: int | None = None
    exit_info_2: int | None = None
    vector: int | None = None


@dataclass(frozen=True)
class NestedResult:
    """The result of :func:`nested_translate`.

    Parameters
    ----------
    l1_gpa : int or None
        The L1 guest-physical address reached, or None on a fault.
    l2_gpa : int or None
        The L2 guest-physical address (what L2's tables map the gva to);
        known also when only the final EPT/NPT walk failed.
    fault : refimpl.guest.nested.NestedFault or None
    level : int or None
        Level of L2's leaf (or of the L2 entry where the walk stopped).
    trace : tuple of refimpl.guest.nested.NestedRef
        Every memory reference, in order.
    access_rights : int
        L2's ACC rights of the page on success, as
        ``access_rights`` of :class:`refimpl.guest.walker.TranslateResult`.

    KVM
    ---
    ``struct guest_walker`` after ``FNAME(walk_addr_generic)`` with
    ``nested_mmu``: ``gfn`` is the L1 frame, ``fault`` the exception.
    """

    l1_gpa: int | None
    l2_gpa: int | None
    fault: NestedFault | None
    level: int | None
    trace: tuple[NestedRef, ...]
    access_rights: int = 0

    @property
    def gpa(self) -> int | None:
        """The L1 guest-physical address reached: ``l1_gpa`` under the name
        the stable API gives it (as ``gpa`` of :class:`refimpl.guest.walker.TranslateResult`)."""
        return self.l1_gpa

    def references(self, phase: str = "walk") -> int:
        """How many memory references of ``phase`` the translation made."""
        return sum(1 for r in self.trace if r.phase == phase)


def reference_count(l2_levels: int, l1_levels: int) -> int:
    """Memory references of a successful two-dimensional walk with 4 KiB pages.

    Each of the ``n`` L2 tables costs an ``m``-level walk of L1's tables
    (to find the table) plus one read (the entry); the final page costs one
    more ``m``-level walk: ``n(m + 1) + m = (n + 1)(m + 1) - 1``.

    Parameters
    ----------
    l2_levels : int
        ``n``: L2 table levels read from memory during the walk (2 for
        32-bit and for PAE, whose PDPTEs are loaded with CR3; 4 or 5).
    l1_levels : int
        ``m``: levels of L1's EPT/NPT (4 or 5).

    KVM
    ---
    Not a KVM function: the cost of ``FNAME(walk_addr_generic)`` with
    ``kvm_translate_gpa`` on every table and on the final address.
    """
    n = check_int("l2_levels", l2_levels)
    m = check_int("l1_levels", l1_levels)
    if not 1 <= n <= 5:
        raise ValueError(f"l2_levels must be in [1, 5], got {n}")
    if not 1 <= m <= 5:
        raise ValueError(f"l1_levels must be in [1, 5], got {m}")
    return (n + 1) * (m + 1) - 1


class _Inner:
    """The second dimension: L2 gpa to L1 gpa through L1's EPT or NPT.

    One object serves one :func:`nested_translate` call; ``translate`` is
    the walker's ``translate_gpa`` hook (KVM's ``kvm_translate_gpa`` ->
    ``translate_nested_gpa`` -> the EPT or NPT copy of
    ``FNAME(gva_to_gpa)``), and ``routed`` builds the exit that
    ``inject_page_fault`` of L1's context would deliver.
    """

    def __init__(self, mem, *, eptp, ncr3, l1_cr4, l1_efer, maxphyaddr, execute_only):
        self.mem = mem
        self.eptp = eptp
        self.ncr3 = ncr3
        self.l1_cr4 = l1_cr4
        self.l1_efer = l1_efer
        self.maxphyaddr = maxphyaddr
        if eptp is not None:
            self.dimension = "EPT"
            self.ctx = ept_walk_context(
                EPTP.WALK_LENGTH.get(eptp) + 1, bool(EPTP.AD.get(eptp)), maxphyaddr, execute_only
            )
        else:
            self.dimension = "NPT"
        self.calls: list[tuple[int, int, tuple]] = []  # (l2 address, access, trace)
        self.failure = None  # (l2 address, access, inner fault)

    def translate(self, l2_gpa: int, access: int):
        """Translate ``l2_gpa`` (a page, or a whole address without paging)."""
        # translate_nested_gpa ORs PFERR_USER_MASK: "NPT walks are always
        # user walks", and the EPT walker reads U as "readable".
        access = (access & _WF) | _U
        if self.eptp is not None:
            walk = _walk_addr_generic(self.mem, self.ctx, self.eptp, l2_gpa, access, False, 0,
                                      None, None)
            self.calls.append((l2_gpa, access, walk.trace))
            if walk.error is None:
                return walk.gpa, None
            fault = _ept_fault(walk, access)
        else:
            # A legacy (32-bit or PAE) NPT walk indexes with address bits
            # 31:12 only (PT32_INDEX; the PDPTE is (addr >> 30) & 3): higher
            # bits of the L2 gpa are ignored, though a fault reports the
            # address as given.
            bits = 52 if self.l1_efer & (1 << 10) else 32
            r = npt_translate(
                self.mem, self.ncr3, l2_gpa & ((1 << bits) - 1), access & _WF,
                cr4=self.l1_cr4, efer=self.l1_efer, maxphyaddr=self.maxphyaddr,
            )
            self.calls.append((l2_gpa, access, r.trace))
            if r.fault is None:
                return r.gpa, None
            fault = r.fault
        self.failure = (l2_gpa, access, fault)
        return None, fault

    def routed(self, final: bool) -> NestedFault:
        """The VM exit to L1 for the last failed inner walk."""
        l2_gpa, access, fault = self.failure
        if self.eptp is not None:
            if fault.kind == EptFaultKind.MISCONFIG:
                return NestedFault("L1", NestedFaultKind.EPT_MISCONFIG, l2_gpa, fault.error_code,
                                   fault.reason, fault.level, final)
            qual = emulated_ept_exit_qualification(access, fault.ept_rwx,
                                                   paging_structure=not final)
            return NestedFault("L1", NestedFaultKind.EPT_VIOLATION, l2_gpa, fault.error_code,
                               fault.reason, fault.level, final, exit_qualification=qual)
        return _npf_exit_to_l1(fault.error_code, fault.reason, fault.level, l2_gpa, final)


def emulated_ept_exit_qualification(access: int, ept_rwx: int, *,
                                    paging_structure: bool) -> int:
    """The exit qualification of an EPT violation KVM's emulator found.

    Exactly one access bit: WRITE for a write, else INSTR for a fetch, else
    READ; GVA_IS_VALID always; READ as well for an access to one of L2's
    paging structures, GVA_TRANSLATED for the final access; bits 5:3 the
    R, W, X of the EPT entries ANDed down to the one that failed.

    Parameters
    ----------
    access : int
        The access the EPT walk was given (``ACCESS_WRITE`` and/or
        ``ACCESS_FETCH``; U, always there, is ignored).
    ept_rwx : int
        R, W, X (bits 2:0) accumulated by the walk.
    paging_structure : bool
        The walk translated the address of one of L2's tables (or of the
        PAE PDPT), not the final page.

    KVM
    ---
    The ``PTTYPE_EPT`` part of the ``error:`` path of
    ``FNAME(walk_addr_generic)`` in ``arch/x86/kvm/mmu/paging_tmpl.h``, in
    the newest tree (kvm-x86), where the walker fills
    ``fault.exit_qualification`` itself from ``PFERR_GUEST_PAGE_MASK``;
    ``nested_ept_inject_page_fault`` (``vmx/nested.c``) copies it for an
    emulated walk. The classic tree ORs READ for every access (U is always
    set) and takes bits 8:7 from the hardware exit being handled:
    :func:`ept_exit_to_l1`.
    """
    access = check_int("access", access)
    ept_rwx = check_int("ept_rwx", ept_rwx)
    paging_structure = check_bool("paging_structure", paging_structure)
    q = EPT_EXIT_QUAL
    if access & ACCESS_WRITE:
        bits = q.ACC_WRITE.bit
    elif access & ACCESS_FETCH:
        bits = q.ACC_INSTR.bit
    else:
        bits = q.ACC_READ.bit
    bits |= q.GVA_IS_VALID.bit
    bits |= q.ACC_READ.bit if paging_structure else q.GVA_TRANSLATED.bit
    return bits | (ept_rwx & 7) << q.RWX.lo


def ept_exit_to_l1(fault: EptFault, l2_page: int, *, final: bool,
                   hw_exit_qualification: int) -> NestedFault:
    """The VM exit L1 gets when a walk of its EPT for ``l2_page`` failed.

    A misconfiguration (RSVD in the walker's error code) becomes an EPT
    misconfiguration exit; anything else an EPT violation whose exit
    qualification :func:`refimpl.guest.ept.ept_violation_exit_qualification`
    builds, keeping bits 7 and 8 of ``hw_exit_qualification``. This is the
    classic form, and the form of an exit reflected from hardware
    (:mod:`refimpl.host.tdp12`); the emulator's own walks
    (:func:`nested_translate`) use :func:`emulated_ept_exit_qualification`.

    KVM
    ---
    ``nested_ept_inject_page_fault`` in ``arch/x86/kvm/vmx/nested.c``.
    """
    check_instance("fault", fault, EptFault)
    l2_page = check_int("l2_page", l2_page)
    final = check_bool("final", final)
    hw_exit_qualification = check_int("hw_exit_qualification", hw_exit_qualification)
    return _ept_exit_to_l1(fault, l2_page, final, hw_exit_qualification)


def _ept_exit_to_l1(fault: EptFault, l2_page: int, final: bool,
                    hw_exit_qualification: int) -> NestedFault:
    if fault.kind == EptFaultKind.MISCONFIG:
        return NestedFault("L1", NestedFaultKind.EPT_MISCONFIG, l2_page, fault.error_code,
                           fault.reason, fault.level, final)
    qual = ept_violation_exit_qualification(fault, hw_exit_qualification=hw_exit_qualification)
    return NestedFault("L1", NestedFaultKind.EPT_VIOLATION, l2_page, fault.error_code,
                       fault.reason, fault.level, final, exit_qualification=qual)


def npf_exit_to_l1(error_code: int, reason: WalkError, level: int | None, l2_page: int, *,
                   final: bool) -> NestedFault:
    """The #NPF exit L1 gets when a walk of its NPT for ``l2_page`` failed.

    exit_info_1 is the walker's error code plus GUEST_FINAL (the final
    access) or GUEST_PAGE (one of L2's tables); exit_info_2 the L2 gpa.

    KVM
    ---
    ``nested_svm_inject_npf_exit`` in ``arch/x86/kvm/svm/nested.c``.
    """
    error_code = check_int("error_code", error_code)
    check_instance("reason", reason, WalkError)
    if level is not None:
        level = check_int("level", level)
    l2_page = check_int("l2_page", l2_page)
    final = check_bool("final", final)
    return _npf_exit_to_l1(error_code, reason, level, l2_page, final)


def _npf_exit_to_l1(error_code: int, reason: WalkError, level: int | None, l2_page: int,
                    final: bool) -> NestedFault:
    info1 = error_code | (PFERR_GUEST_FINAL if final else PFERR_GUEST_PAGE)
    return NestedFault("L1", NestedFaultKind.NPF, l2_page, info1, reason, level, final,
                       exit_info_1=info1, exit_info_2=l2_page)


def _check_eptp(eptp: object) -> int:
    eptp = check_int("eptp", eptp)
    if not 0 <= eptp < 1 << 64:
        raise ValueError(f"eptp must be in [0, 2**64), got {eptp:#x}")
    if EPTP.MT.get(eptp) not in EPTP_MEMORY_TYPES:
        raise ValueError(f"eptp memory type (bits 2:0) must be 0 or 6, got {EPTP.MT.get(eptp)}")
    if EPTP.WALK_LENGTH.get(eptp) not in EPTP_WALK_LENGTHS:
        raise ValueError("eptp walk length (bits 5:3) must be 3 or 4 (four or five levels)")
    return eptp


def nested_translate(
    l1_mem: GuestMemory,
    l2_cpu: CpuState,
    gva: int,
    access: int = 0,
    *,
    eptp: int | None = None,
    ncr3: int | None = None,
    l1_cr4: int | None = None,
    l1_efer: int | None = None,
    maxphyaddr: int = 52,
    execute_only: bool = True,
) -> NestedResult:
    """Translate an L2 virtual address through L2's tables and L1's EPT or NPT.

    L2's tables hold L2-physical addresses. Before each of L2's tables is
    read, its page address goes through L1's tables (an inner walk) to an
    L1-physical address, where the entry is read; after L2's walk reaches a
    leaf and its rights allow the access, the final page goes through L1's
    tables as well. Exactly one of ``eptp`` and ``ncr3`` selects EPT or NPT.

    Parameters
    ----------
    l1_mem : refimpl.guest.memory.GuestMemory
        L1's physical memory: L1's EPT/NPT tables, L2's tables (wherever
        L1 maps them) and L2's data. A/D bits are written here.
    l2_cpu : refimpl.guest.cpu.CpuState
        L2's registers (paging mode, CR3 = an L2-physical address, WP, SMEP,
        SMAP, NX, PKRU).
    gva : int
        The L2 linear address.
    access : int
        ``ACCESS_WRITE``, ``ACCESS_USER``, ``ACCESS_FETCH``,
        ``ACCESS_IMPLICIT`` ORed, as for :func:`refimpl.guest.walker.translate`.
    eptp : int or None
        L1's EPT pointer for L2 (vmcs12): memory type 0/6, four or five
        levels, bit 6 A/D.
    ncr3, l1_cr4, l1_efer : int or None
        L1's nested CR3 for L2 (vmcb12), and L1's CR4 and EFER, which give
        the NPT format.
    maxphyaddr : int
        L1's MAXPHYADDR (reserved address bits of EPT/NPT entries).
    execute_only : bool
        EPT only: whether execute-only entries are allowed.

    Returns
    -------
    refimpl.guest.nested.NestedResult

    Raises
    ------
    TypeError, ValueError
        Misuse only: bad types, both or neither of ``eptp``/``ncr3``, a bad
        EPTP, ``gva`` or ``access`` out of range. Memory contents never raise.

    Notes
    -----
    Access of the inner walks: ``U`` always (``translate_nested_gpa``); for
    L2's tables (and the PAE PDPT page) also ``W``, because L2's format has
    A/D bits (KVM's ``nested_access``), even when no A/D bit needs setting.
    Hardware with EPT A/D disabled treats those reads as reads; KVM's
    emulation does not. For the final page, the access's ``W``/``F`` plus
    ``U``.

    EPT violation: the error code is the EPT walker's (W and U from the
    access, P for a rights fault, never F: the EPT role has neither EFER.NX
    nor CR4.SMEP); the exit qualification is
    :func:`emulated_ept_exit_qualification` (newest tree).
    #NPF: exit_info_1 is the inner walk's error code plus GUEST_PAGE (bit
    33) for a table or GUEST_FINAL (bit 32) for the final page; exit_info_2
    is the L2 gpa. Classic KVM's emulation path sets bit 32 in every case
    (a TODO in ``nested_svm_inject_npf_exit``).

    PAE L2: a PDPT page L1's tables do not map with W|U gives #GP in L2
    (``load_pdptrs`` fails), never a VM exit. L2 without paging: the
    address reported to L1 keeps its low 12 bits. A 32-bit or PAE NPT
    ignores bits 63:32 of the L2 gpa it walks, as KVM's walker indexes with
    bits 31:12 only; a fault still reports the whole address.

    KVM
    ---
    ``arch/x86/kvm/mmu/paging_tmpl.h`` (``FNAME(walk_addr_generic)``: a
    ``kvm_translate_gpa`` per table and for the final gfn);
    ``arch/x86/kvm/x86.c`` (``translate_nested_gpa``, ``load_pdptrs``);
    ``arch/x86/kvm/mmu/mmu.c`` (``nonpaging_gva_to_gpa``);
    ``arch/x86/kvm/vmx/nested.c`` (``nested_ept_inject_page_fault``);
    ``arch/x86/kvm/svm/nested.c`` (``nested_svm_inject_npf_exit``).
    """
    if not isinstance(l1_mem, GuestMemory):
        raise TypeError(f"l1_mem must be a GuestMemory, got {type(l1_mem).__name__}")
    if not isinstance(l2_cpu, CpuState):
        raise TypeError(f"l2_cpu must be a CpuState, got {type(l2_cpu).__name__}")
    gva = check_gva(gva, l2_cpu)
    access = check_access(access)
    maxphyaddr = _check_maxphyaddr(maxphyaddr)
    execute_only = _check_flag("execute_only", execute_only)
    if (eptp is None) == (ncr3 is None):
        raise ValueError("eptp, ncr3: give exactly one (EPT or NPT)")
    if eptp is not None:
        eptp = _check_eptp(eptp)
    else:
        ncr3 = check_int("ncr3", ncr3)
        if l1_cr4 is None or l1_efer is None:
            raise ValueError("l1_cr4, l1_efer: required with ncr3 (they give the NPT format)")
        l1_cr4 = check_int("l1_cr4", l1_cr4)
        l1_efer = check_int("l1_efer", l1_efer)
    inner = _Inner(l1_mem, eptp=eptp, ncr3=ncr3, l1_cr4=l1_cr4, l1_efer=l1_efer,
                   maxphyaddr=maxphyaddr, execute_only=execute_only)
    dim = inner.dimension
    trace: list[NestedRef] = []

    def inner_refs(step: int, phase: str = "walk") -> None:
        l2_page, _acc, refs = inner.calls[len(inner_refs.seen)]
        inner_refs.seen.append(l2_page)
        trace.extend(NestedRef(dim, step, lv, a, v, l2_page, phase) for lv, a, v in refs)

    inner_refs.seen = []  # type: ignore[attr-defined]

    mode = l2_cpu.mode
    if mode is PagingMode.NONE:
        # nonpaging_gva_to_gpa hands the whole address (not its page) to
        # kvm_translate_gpa, so a failure reports it with its low bits.
        l1, _ = inner.translate(gva, access)
        inner_refs(0)
        if l1 is None:
            return NestedResult(None, gva, inner.routed(True), None, tuple(trace))
        return NestedResult((l1 & _PAGE) | (gva & 0xFFF), gva, None, None, tuple(trace))
    if mode.long_mode and not _is_canonical(gva, l2_cpu.linear_address_bits):
        f = _fault_for(WalkError.NON_CANONICAL, access, l2_cpu.has_pferr_fetch)
        return NestedResult(None, None, _l2_fault(f, gva), None, ())

    ctx = _walk_context_of(l2_cpu)
    pdpte = None
    root = _root_table(l2_cpu)
    if mode is PagingMode.PAE:
        # load_pdptrs: CR3's page goes through L1's tables (W|U), then the
        # four PDPTEs are read from the L1 page. It passes no exception
        # pointer: a failed translation reaches no one, load_pdptrs returns
        # 0, and the CR3 load raises #GP in L2, as a bad PDPTE does.
        cr3 = l2_cpu.cr3 & PAE_CR3_PDPT_MASK
        page, _ = inner.translate(cr3 & _PAGE, ACCESS_WRITE | _U)
        inner_refs(0, "pdptr")
        pdptes = None if page is None else _load_pdptrs(
            l1_mem, page | (cr3 & 0xFFF), l2_cpu.maxphyaddr)
        if pdptes is None:
            f = _fault_for(WalkError.BAD_PDPTE, access, l2_cpu.has_pferr_fetch)
            return NestedResult(None, None, _l2_fault(f, gva), None, tuple(trace))
        i = ctx.fmt.index(gva, 3)  # bits 31:30 of a 32-bit address
        pdpte = pdptes[i]
        trace.append(NestedRef("L2", 0, 3, pdpte[0], pdpte[1], cr3 + 8 * i, "pdptr"))
        root = 0
    inner.calls.clear()
    inner_refs.seen.clear()

    walk = _walk_addr_generic(l1_mem, ctx, root, gva, access, l2_cpu.ac, l2_cpu.pkru, pdpte,
                              inner.translate)
    entries = walk.trace[1:] if pdpte is not None else walk.trace
    for k, (level, address, value) in enumerate(entries):
        inner_refs(k)
        l2_entry = inner.calls[k][0] | (address & 0xFFF)
        trace.append(NestedRef("L2", k + 1, level, address, value, l2_entry))
    if len(inner.calls) > len(entries):
        inner_refs(len(entries))
    l2_gpa = None
    if walk.nested_fault is not None:
        # The failing inner walk was for the final page if L2's walk had
        # already reached its leaf (the last entry read is at walk.level).
        final = bool(entries) and entries[-1][0] == walk.level
        if final:
            l2_gpa = _l2_gpa(ctx, entries[-1], gva)
        return NestedResult(None, l2_gpa, inner.routed(final), walk.level, tuple(trace))
    if walk.error is not None:
        f = _fault_for(walk.error, access, ctx.has_pferr_fetch, walk.errcode, walk.level)
        return NestedResult(None, None, _l2_fault(f, gva), walk.level, tuple(trace), walk.acc)
    l2_gpa = _l2_gpa(ctx, entries[-1], gva)
    return NestedResult(walk.gpa, l2_gpa, None, walk.level, tuple(trace), walk.acc)


def _l2_gpa(ctx, leaf: tuple[int, int, int], gva: int) -> int:
    level, _address, pte = leaf
    fmt = ctx.fmt
    gpa = (pte & fmt.leaf_addr_mask(level)) | (gva & fmt.offset_mask(level))
    if level == 2 and fmt is PTTYPE32:
        gpa |= pse36_addr(pte)
    return gpa


def _l2_fault(f, gva: int) -> NestedFault:
    if f.vector == PF_VECTOR:
        return NestedFault("L2", NestedFaultKind.PF, gva, f.error_code, f.reason, f.level,
                           vector=f.vector)
    return NestedFault("L2", NestedFaultKind.GP, 0, f.error_code, f.reason, f.level,
                       vector=f.vector)
