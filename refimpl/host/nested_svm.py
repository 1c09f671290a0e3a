"""VMLOAD and VMSAVE executed by L2: which memory do they touch?

VMLOAD and VMSAVE move a block of processor state (FS, GS, TR, LDTR, the
SYSCALL MSRs...) between the CPU and a 4 KiB save area whose address is in
rAX. Outside a guest, rAX is a host-physical address. A hypervisor either
intercepts the instructions or, with AMD's *virtual VMLOAD/VMSAVE*, lets the
CPU treat rAX as a guest-physical address translated through the nested page
tables. Neither may give a guest a host-physical address.

For L2 the rule is one level up. If L1 intercepts VMLOAD/VMSAVE in its
VMCB12, the instruction is L1's to emulate (a nested #VMEXIT). If it does
not, L2 executes them "natively" as far as L1 can tell, so rAX must be an L1
physical address: L0 must trap the instruction and perform it on L1's
memory, because the CPU running L2 would otherwise take rAX as a *host*
physical address. KVM did not always trap it: CVE-2021-3656.

Glossary
--------
VMCB12, VMCB02
    The control block L1 wrote for L2, and the one KVM builds from it and
    actually runs L2 with.
intercept
    A VMCB bit that makes an instruction exit to the hypervisor.

KVM
---
``recalc_intercepts``, ``nested_vmcb_needs_vls_intercept`` and
``nested_vmcb02_prepare_control`` in ``arch/x86/kvm/svm/nested.c``;
``vmload_vmsave_interception`` in ``arch/x86/kvm/svm/svm.c``. The fix is
commit c7dfa4009965 ("KVM: nSVM: always intercept VMLOAD/VMSAVE when nested
(CVE-2021-3656)", 2021). As its title says, that fix intercepted them
whenever L2 runs; today's KVM intercepts them only when
``nested_vmcb_needs_vls_intercept`` says L2 cannot use virtual
VMLOAD/VMSAVE, which is never the case in this model (it has no virtual
VMLOAD/VMSAVE for L2), so the model keeps the 2021 rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Iterable, Optional

from refimpl.errors import check_bugs
from refimpl.guest.memory import check_int
from refimpl.layouts.legacy import KvmVcpuArch
from refimpl.host.vm import PAGE_SIZE, Kvm

__all__ = ["BUGS", "VmloadHandler", "VmloadOutcome", "l2_vmload"]

#: Replayed bugs (:mod:`refimpl.bugs`) of this module; none is on by default.
BUGS: dict[str, str] = {
    "vmload_not_intercepted": (
        "CVE-2021-3656: when L1 does not intercept VMLOAD/VMSAVE, VMCB02 does not "
        "either, and the CPU running L2 takes rAX as a host-physical address"),
}


class VmloadHandler(StrEnum):
    """Who carried out an L2 VMLOAD/VMSAVE.

    Attributes
    ----------
    L1
        A nested #VMEXIT: L1 intercepts the instruction and emulates it.
    L0
        KVM intercepted it and emulated it on L1's memory.
    CPU
        The processor ran it unintercepted (rAX taken as a host address).
    """

    L1 = "L1"
    L0 = "L0"
    CPU = "cpu"


@dataclass(frozen=True)
class VmloadOutcome:
    """What an L2 VMLOAD/VMSAVE did.

    Parameters
    ----------
    handler : refimpl.host.nested_svm.VmloadHandler
        ``L1`` (nested #VMEXIT: L1 emulates it), ``L0`` (KVM emulates it
        on L1's memory) or ``CPU`` (executed by hardware, unintercepted).
    hpa : int or None
        The host-physical address of the save area touched; None when
        nothing was touched (exit to L1, or #GP).
    fault : str or None
        ``"#GP"`` when the save area is not in L1's memory.
    """

    handler: VmloadHandler
    hpa: Optional[int] = None
    fault: Optional[str] = None


def l2_vmload(kvm: Kvm, vcpu: KvmVcpuArch, rax: int, *, l1_intercepts: bool,
              bugs: Iterable[str] = ()) -> VmloadOutcome:
    """L2 executes VMLOAD (or VMSAVE: same address rule) with ``rax``.

    Step 1: if L1's VMCB12 intercepts the instruction, it exits to L1.
    Step 2: otherwise KVM's VMCB02 intercepts it anyway (L2 has no virtual
    VMLOAD/VMSAVE in this model), and KVM treats
    ``rax`` as an L1 guest-physical address: through L1's memslots to a host
    frame, or #GP when no memslot holds it. With
    ``bugs={"vmload_not_intercepted"}`` (:data:`BUGS`) step 2 is missing and
    the CPU uses ``rax`` as a host-physical address.

    Parameters
    ----------
    kvm : refimpl.host.vm.Kvm
        L1's VM (its memslots are L1's physical memory).
    vcpu : refimpl.layouts.legacy.KvmVcpuArch
        A vCPU of an SVM host in guest mode (after
        :func:`refimpl.layouts.legacy.nested_svm_vmrun`).
    rax : int
        The save-area address, 4 KiB aligned and below 2**52.
    l1_intercepts : bool
        VMCB12 has the VMLOAD/VMSAVE intercept.
    bugs : iterable of str

    Raises
    ------
    ValueError
        Not an SVM vCPU in guest mode, ``rax`` unaligned or out of range, or
        an unknown bug name.
    TypeError
        ``bugs`` is a str, or ``kvm`` is not a :class:`refimpl.host.vm.Kvm`.

    KVM
    ---
    ``recalc_intercepts`` (``arch/x86/kvm/svm/nested.c``) sets both
    intercepts in VMCB02 when ``nested_vmcb_needs_vls_intercept`` is true
    (L2 has no virtual VMLOAD/VMSAVE, always so in this model; the 2021 fix
    set them whenever the vCPU was in guest mode);
    ``vmload_vmsave_interception`` (``arch/x86/kvm/svm/svm.c``) maps
    ``rax >> 12`` as an L1 gfn (``kvm_vcpu_map``) and injects #GP when that
    fails. The APM requires rAX to be 4 KiB aligned.
    """
    bugs = check_bugs("bugs", bugs, BUGS)
    if not isinstance(kvm, Kvm):
        raise TypeError(f"kvm must be a Kvm, got {type(kvm).__name__}")
    if not isinstance(vcpu, KvmVcpuArch) or vcpu.host.vendor != "svm" or not vcpu.guest_mode:
        raise ValueError("vcpu must be an SVM vCPU running L2 (after nested_svm_vmrun)")
    rax = check_int("rax", rax)
    if not 0 <= rax < 1 << 52 or rax % PAGE_SIZE:
        raise ValueError(f"rax must be 4 KiB aligned and in [0, 2**52), got {rax:#x}")
    if l1_intercepts:                                   # Step 1
        return VmloadOutcome(VmloadHandler.L1)
    if "vmload_not_intercepted" in bugs:                # the CPU runs it
        return VmloadOutcome(VmloadHandler.CPU, hpa=rax)
    hfn = kvm.gfn_to_hfn(rax >> 12) if rax >> 12 < kvm.max_gfn else None   # Step 2
    if hfn is None:
        return VmloadOutcome(VmloadHandler.L0, fault="#GP")
    return VmloadOutcome(VmloadHandler.L0, hpa=hfn * PAGE_SIZE)
