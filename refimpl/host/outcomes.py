"""How host-side operations end: closed sets of outcomes, as values.

The guest side reports a failed walk as a :class:`refimpl.guest.faults.WalkError`;
the host side reports its outcomes with the enums here, so that a caller
compares with a name (``RetPf.EMULATE``) and a typo fails at import, not
silently. Every enum is a :class:`enum.StrEnum`: a member equals its value
(``RetPf.FIXED == "fixed"``), so code and chapters that compare with the
strings the model used to return keep working.

Glossary
--------
:class:`refimpl.host.outcomes.RetPf`
    What KVM's page-fault handler did (``RET_PF_*``).
:class:`refimpl.host.outcomes.HwFault`
    Why the CPU's walk of KVM's tables stopped.
:class:`refimpl.host.outcomes.AccessPath`
    Who completed a guest access: the CPU, KVM's emulator, userspace (MMIO),
    or nobody (the guest, or L1, receives a fault).
:class:`refimpl.host.outcomes.GuestStore`
    How a guest store to one of its page tables reached memory.
:class:`refimpl.host.outcomes.AccessResult`
    The one record of a guest access, for the TDP and the shadow MMU.

KVM
---
``RET_PF_*`` is the anonymous enum in ``arch/x86/kvm/mmu/mmu_internal.h``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Optional

from refimpl.guest.faults import Fault

__all__ = ["RetPf", "HwFault", "AccessPath", "GuestStore", "AccessResult"]


class RetPf(StrEnum):
    """What the page-fault handler did (``RET_PF_*``).

    Attributes
    ----------
    CONTINUE
        So far so good: keep handling the fault (internal to the handler).
    RETRY
        Let the CPU retry the access (e.g. the root went away meanwhile).
    EMULATE
        Emulate the instruction: MMIO, or a write KVM must see.
    WRITE_PROTECTED
        A write to a write-protected gfn (emulated, after trying to unprotect).
    INVALID
        The fast paths could not handle it: take the slow path.
    FIXED
        An SPTE was installed or changed; retry the access.
    SPURIOUS
        The SPTE already allowed the access.
    """

    CONTINUE = "continue"
    RETRY = "retry"
    EMULATE = "emulate"
    WRITE_PROTECTED = "write_protected"
    INVALID = "invalid"
    FIXED = "fixed"
    SPURIOUS = "spurious"


class HwFault(StrEnum):
    """Why the CPU's walk of KVM's tables stopped.

    Attributes
    ----------
    NOT_PRESENT
        An SPTE on the path is not present (EPT violation, #NPF or #PF with P=0).
    PERMISSION
        Present, but the access is not allowed (EPT violation, #NPF or #PF with P=1).
    RSVD
        A reserved or misconfigured SPTE: an EPT misconfiguration or PFERR.RSVD,
        the MMIO path.
    """

    NOT_PRESENT = "not_present"
    PERMISSION = "permission"
    RSVD = "rsvd"


class AccessPath(StrEnum):
    """Who completed a guest access.

    Attributes
    ----------
    HARDWARE
        The CPU, through KVM's tables (or its TLB).
    EMULATED
        KVM emulated the instruction on guest memory.
    MMIO
        No memslot, or a write to a read-only one: an exit to userspace.
    FAULT
        The guest receives ``fault``.
    EXIT
        Nested: the fault is reflected to L1 (an EPT violation, a
        misconfiguration or a #NPF).
    """

    HARDWARE = "hardware"
    EMULATED = "emulated"
    MMIO = "mmio"
    FAULT = "fault"
    EXIT = "exit"


class GuestStore(StrEnum):
    """How a guest store to a frame KVM may shadow reached memory.

    Attributes
    ----------
    EMULATED
        The frame is write-tracked: KVM emulated the store and zapped the
        SPTEs it made stale (``kvm_mmu_track_write``).
    DIRECT
        The store went to memory; the frame's level-1 shadow pages went
        unsync (``mmu_try_to_unsync_pages``).
    """

    EMULATED = "emulated"
    DIRECT = "direct"


@dataclass(frozen=True)
class AccessResult:
    """How a guest access ended, under the TDP or the shadow MMU.

    Parameters
    ----------
    path : refimpl.host.outcomes.AccessPath
        Who completed it.
    hpa : int or None
        Host-physical address accessed (None for MMIO and faults).
    gpa : int or None
        Guest-physical address, when KVM walked the guest's tables.
    fault : refimpl.guest.faults.Fault or None
        The exception injected into the guest.
    exits : int
        Page faults (EPT violations, misconfigurations, shadow page
        faults) KVM handled on the way.
    tlb_hit : bool
        Satisfied from the vCPU's TLB, without a walk.
    """

    path: AccessPath
    hpa: Optional[int] = None
    gpa: Optional[int] = None
    fault: Optional[Fault] = None
    exits: int = 0
    tlb_hit: bool = False

    @property
    def ok(self) -> bool:
        """The access happened (no fault)."""
        return self.fault is None

    @property
    def faults(self) -> int:
        """The TDP MMU's name for ``exits``."""
        return self.exits

    @property
    def exit(self) -> Optional[str]:
        """``"mmio"`` when the access left the guest for userspace, else None."""
        return AccessPath.MMIO if self.path is AccessPath.MMIO else None
