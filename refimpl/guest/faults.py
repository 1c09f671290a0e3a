"""Why a walk failed, and the exception the guest sees.

A walk never raises: it ends in success or in one :class:`WalkError`, a
closed set of reasons. :func:`fault_for` turns a reason into the
:class:`Fault` that KVM injects: a page fault (vector 14) with an error code,
or a general-protection fault (vector 13).

Glossary
--------
error code
    The word pushed with a #PF: P (the entry was present: a rights or
    reserved-bit fault), W, U, RSVD, F (fetch), PK (protection key).
"""

from __future__ import annotations

from refimpl.errors import check_int

from dataclasses import dataclass
from enum import Enum

from refimpl.guest.formats import PFERR

#: Exception vectors.
PF_VECTOR = 14
GP_VECTOR = 13


class WalkError(Enum):
    """The ways a guest page-table walk can fail.

    KVM
    ---
    ``arch/x86/kvm/mmu/paging_tmpl.h`` (the ``goto error`` sites of
    ``FNAME(walk_addr_generic)``); ``arch/x86/kvm/x86.c`` (``load_pdptrs``)
    and the emulator's canonical-address checks for the #GP cases.
    """

    #: An entry on the path has its present bit(s) clear.
    NOT_PRESENT = "not present"
    #: A table lies (partly) outside guest memory: KVM finds no memslot and
    #: reports it like a not-present entry.
    NO_MEMSLOT = "table outside guest memory"
    #: A present entry has a reserved bit set (EPT: misconfiguration).
    RSVD = "reserved bit set"
    #: The accumulated rights (or a protection key) deny the access.
    PERMISSION = "access rights"
    #: Four- or five-level paging and the address is not canonical.
    NON_CANONICAL = "non-canonical address"
    #: PAE paging and a present PDPTE has a reserved bit, or the PDPT cannot
    #: be read: the MOV to CR3 that loaded it would have raised #GP.
    BAD_PDPTE = "bad PDPTE"


@dataclass(frozen=True)
class Fault:
    """The exception a failed translation raises in the guest.

    Parameters
    ----------
    vector : int
        14 (#PF) or 13 (#GP).
    error_code : int
        The error code (0 for #GP).
    reason : WalkError
        Why the walk failed.
    level : int or None
        Level of the entry that ended the walk, if any.

    KVM
    ---
    ``arch/x86/kvm/kvm_emulate.h`` (``struct x86_exception``: vector,
    error_code, address).
    """

    vector: int
    error_code: int
    reason: WalkError
    level: int | None = None

    @property
    def flags(self) -> PFERR:
        """The error code as named bits."""
        return PFERR(self.error_code)


def page_fault_error_code(
    reason: WalkError, access: int, *, has_pferr_fetch: bool, perm_errcode: int = 0
) -> int:
    """The #PF error code for a failed walk.

    Parameters
    ----------
    reason : WalkError
        NOT_PRESENT, NO_MEMSLOT, RSVD or PERMISSION.
    access : int
        The access (W, U, F bits).
    has_pferr_fetch : bool
        EFER.NXE or CR4.SMEP: only then does KVM report F on fetch faults.
    perm_errcode : int
        For PERMISSION: what ``permission_fault`` returned (P or P|PK).

    KVM
    ---
    ``arch/x86/kvm/mmu/paging_tmpl.h``: the ``error:`` label of
    ``FNAME(walk_addr_generic)``. KVM sets F whenever EFER.NXE or CR4.SMEP
    is set, in every paging mode, including 32-bit paging where the SDM's
    rule (F only with PAE/64-bit paging and NXE=1, or SMEP=1) differs.
    """
    reason, access, perm_errcode = _check_fault_args(reason, access, perm_errcode)
    if reason not in _PF_REASONS:
        raise ValueError(f"reason {reason} is not a page fault")
    return _page_fault_error_code(reason, access, has_pferr_fetch, perm_errcode)


def _page_fault_error_code(
    reason: WalkError, access: int, has_pferr_fetch: bool, perm_errcode: int
) -> int:
    # The walk's partial code: none for a missing entry, P|RSVD for a
    # reserved bit, what permission_fault said for a rights fault ...
    if reason is WalkError.RSVD:
        code = _RSVD_P
    elif reason is WalkError.PERMISSION:
        code = perm_errcode
    else:
        code = 0
    # ... plus the access: W and U always, F only when KVM reports it.
    code |= access & _W_U
    if access & _F and has_pferr_fetch:
        code |= _F
    return code


def fault_for(
    reason: WalkError,
    access: int,
    *,
    has_pferr_fetch: bool,
    perm_errcode: int = 0,
    level: int | None = None,
) -> Fault:
    """The guest exception for a failed walk.

    #GP reasons (NON_CANONICAL, BAD_PDPTE) give vector 13 and error code 0;
    the others give a #PF built by :func:`page_fault_error_code`.

    KVM
    ---
    ``arch/x86/kvm/mmu/paging_tmpl.h`` (#PF); ``arch/x86/kvm/x86.c``
    (``load_pdptrs`` failing makes the CR3 write inject #GP).
    """
    reason, access, perm_errcode = _check_fault_args(reason, access, perm_errcode)
    level = None if level is None else check_int("level", level)
    return _fault_for(reason, access, has_pferr_fetch, perm_errcode, level)


def _fault_for(
    reason: WalkError, access: int, has_pferr_fetch: bool, perm_errcode: int = 0,
    level: int | None = None,
) -> Fault:
    """:func:`fault_for` for arguments the walkers have already checked."""
    if reason in _GP_REASONS:
        return Fault(GP_VECTOR, 0, reason, level)
    code = _page_fault_error_code(reason, access, has_pferr_fetch, perm_errcode)
    return Fault(PF_VECTOR, code, reason, level)


def _check_fault_args(reason: object, access: object, perm_errcode: object):
    if not isinstance(reason, WalkError):
        raise TypeError(f"reason must be a WalkError, got {type(reason).__name__}")
    return reason, check_int("access", access), check_int("perm_errcode", perm_errcode)


_GP_REASONS = (WalkError.NON_CANONICAL, WalkError.BAD_PDPTE)
_PF_REASONS = (WalkError.NOT_PRESENT, WalkError.NO_MEMSLOT, WalkError.RSVD, WalkError.PERMISSION)
_RSVD_P = int(PFERR.RSVD | PFERR.P)
_W_U = int(PFERR.W | PFERR.U)
_F = int(PFERR.F)
