"""The vCPU's TLB: translations the CPU cached from KVM's tables.

KVM has no TLB of its own; the processor does, and KVM must flush it
(``kvm_flush_remote_tlbs``) whenever it takes rights away from an SPTE or
frees a table. Modelling the TLB makes a missing flush observable: a stale
entry keeps granting what the SPTE no longer grants.

This module can be skipped on a first reading, as Sail's ``vmem_tlb.sail``
can: the hardware walk (:func:`refimpl.host.mmu.hw_translate`) defines what
an access does, and the TLB only remembers walks.

Glossary
--------
entry (:class:`refimpl.host.tlb.TlbEntry`)
    One cached 4 KiB translation with the rights of the whole walk.
tag
    The root the walk started from. Entries of different roots (L1's and
    L2's, two address spaces) live side by side, as VPID/EPTP tagging on
    Intel and ASID tagging on AMD keep them apart.

KVM
---
Not a KVM structure. The flushes are ``kvm_flush_remote_tlbs``
(``virt/kvm/kvm_main.c``) and ``kvm_vcpu_flush_tlb_all``
(``arch/x86/kvm/x86.c``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from refimpl.errors import check_int
from refimpl.guest.walker import ACCESS_FETCH, ACCESS_USER, ACCESS_WRITE

__all__ = ["TlbEntry", "Tlb", "vcpu_tlb"]


@dataclass(frozen=True)
class TlbEntry:
    """One cached translation of a page.

    Parameters
    ----------
    hpa : int
        Host-physical address of the 4 KiB page.
    level : int
        Level of the leaf that mapped it.
    writable, user, executable : bool
        Rights of the whole walk.
    dirty : bool
        The leaf's D bit was set when cached (a write through a clean
        entry walks again to set D, and to log it with PML).
    """

    hpa: int
    level: int
    writable: bool
    user: bool
    executable: bool
    dirty: bool


class Tlb:
    """A vCPU's TLB: translations tagged by root, filled by hardware walks.

    The public methods check their arguments; the MMUs call the
    underscored ones with values they have already checked.

    KVM
    ---
    Not a KVM object: the CPU's TLB (tagged by EPTP/VPID on Intel, ASID on
    AMD), flushed by ``kvm_flush_remote_tlbs`` / ``kvm_vcpu_flush_tlb_all``.
    """

    def __init__(self) -> None:
        self.entries: dict[tuple[int, int], TlbEntry] = {}
        self.flushes = 0

    def lookup(self, root_hpa: int, addr: int, access: int) -> Optional[TlbEntry]:
        """A cached entry that allows ``access`` without a walk, else None."""
        return self._lookup(check_int("root_hpa", root_hpa), check_int("addr", addr),
                            check_int("access", access))

    def _lookup(self, root_hpa: int, addr: int, access: int) -> Optional[TlbEntry]:
        e = self.entries.get((root_hpa, addr >> 12))
        if e is None:
            return None
        if access & ACCESS_WRITE and not (e.writable and e.dirty):
            return None
        if access & ACCESS_FETCH and not e.executable:
            return None
        if access & ACCESS_USER and not e.user:
            return None
        return e

    def fill(self, root_hpa: int, addr: int, entry: TlbEntry) -> None:
        """Cache ``entry`` for the page of ``addr``."""
        root_hpa = check_int("root_hpa", root_hpa)
        addr = check_int("addr", addr)
        if not isinstance(entry, TlbEntry):
            raise TypeError(f"entry must be a TlbEntry, got {type(entry).__name__}")
        self._fill(root_hpa, addr, entry)

    def _fill(self, root_hpa: int, addr: int, entry: TlbEntry) -> None:
        self.entries[(root_hpa, addr >> 12)] = entry

    def flush_all(self) -> None:
        """Drop every entry."""
        self.entries.clear()
        self.flushes += 1

    def flush_addr(self, root_hpa: int, addr: int) -> None:
        """Drop the entry for one page (INVLPG)."""
        root_hpa = check_int("root_hpa", root_hpa)
        addr = check_int("addr", addr)
        self.entries.pop((root_hpa, addr >> 12), None)


_MISSING = object()


def vcpu_tlb(vcpu: object) -> Tlb:
    """The TLB of ``vcpu``, made on first use; pass it to every Mmu of the vCPU.

    Parameters
    ----------
    vcpu : refimpl.host.vm.Vcpu

    Raises
    ------
    TypeError
        ``vcpu`` is not a vCPU (it has no ``tlb`` slot holding a
        :class:`Tlb` or None). The check is by that slot, not by class,
        because :mod:`refimpl.host.vm` imports this module (a vCPU holds
        its TLB), so this module cannot import the vCPU's class.

    KVM
    ---
    Not a KVM structure: the processor's TLB. Its entries are tagged by root
    (VPID/EPTP on Intel, ASID on AMD), so L1's and L2's translations live
    side by side, and ``kvm_flush_remote_tlbs`` (``KVM_REQ_TLB_FLUSH``,
    ``kvm_vcpu_flush_tlb_all`` in ``arch/x86/kvm/x86.c``) drops them all.
    """
    tlb = getattr(vcpu, "tlb", _MISSING)
    if tlb is _MISSING or not (tlb is None or isinstance(tlb, Tlb)) or isinstance(vcpu, type):
        raise TypeError(f"vcpu must be a refimpl.host.vm.Vcpu, got {type(vcpu).__name__}")
    if tlb is None:
        tlb = Tlb()
        vcpu.tlb = tlb  # type: ignore[attr-defined]
    return tlb
