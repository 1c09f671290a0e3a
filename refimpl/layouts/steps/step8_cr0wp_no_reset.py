"""Step 8: a CR0.WP toggle with TDP no longer resets the MMU.

With TDP the roots cannot depend on CR0.WP (a TDP root role has
``cr0_wp=1`` whatever the guest does), so a CR0 write that changes only WP,
with paging on, only recomputes the walk metadata (``kvm_init_mmu``: the
permission bitmap and PKRU mask of the paging context follow the new WP)
and keeps every root loaded. With shadow paging WP is part of the shadow
pages' role, so the reset stays. This is the wish of the 2021 mail, and the
rule KVM adopted in 2023 (what :func:`refimpl.layouts.legacy.kvm_set_cr0`
models); the layout after this step is the sketch's,
:mod:`refimpl.layouts.split`.

Changed: ``set_cr0``.

KVM
---
``kvm_post_set_cr0`` in ``arch/x86/kvm/x86.c`` (commit 01b31714bd90,
2023).
"""

from __future__ import annotations

from refimpl.errors import check_range
from refimpl.host.roles import CR0_PG, CR0_WP
from refimpl.layouts.steps.step0_legacy import Legacy, _with
from refimpl.layouts.steps.step7_zero_check_per_vm import ZeroCheckPerVm

__all__ = ["Cr0WpNoReset"]


class Cr0WpNoReset(ZeroCheckPerVm):
    """Step 8: CR0.WP-only writes under TDP re-init the walk, keep the roots."""

    number = 8
    name = "cr0wp_no_reset"

    def set_cr0(self, vcpu, cr0: int) -> None:
        """The 2023 rule: WP alone with paging off changes nothing, with TDP
        only re-inits; any other CR0 change as before."""
        self._vcpu(vcpu)
        cr0 = check_range("cr0", cr0, 0, 1 << 64)
        old = vcpu.regs.cr0
        if old ^ cr0 == CR0_WP and (vcpu.host.tdp_enabled or not cr0 & CR0_PG):
            vcpu.regs = _with(vcpu.regs, "cr0", cr0)  # validates
            if cr0 & CR0_PG:
                self.count("init_mmu_cr0_wp")
                self.kvm_init_mmu(vcpu)
            return
        Legacy.set_cr0(self, vcpu, cr0)  # the 2021 rule (also for today's layout)
