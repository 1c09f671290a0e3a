"""Toggling CR0.WP with TDP keeps the roots,
yet the next emulated permission check honours the new WP.

kvm-unit-tests' ``check_toggle_cr0_wp`` is the regression this guards; the
2023 change is ``kvm_post_set_cr0`` in ``arch/x86/kvm/x86.c``.
"""

import pytest

from refimpl.layouts import legacy as L
from refimpl.guest.permissions import permission_fault, update_permission_bitmask
from refimpl.host.roles import CR0_PG, CR0_WP

SUPERVISOR_WRITE = 1 << 1          # error-code W, U=0
READ_ONLY_USER_PAGE = 0b101        # ACC: USER | EXEC, no WRITE


def fresh(tdp: bool) -> L.KvmVcpuArch:
    vcpu = L.kvm_mmu_create(L.Host(tdp_enabled=tdp))
    L.set_regs(vcpu, L.L1_REGS)      # CR0.PG=1, WP=1, 4-level paging
    return vcpu


def supervisor_write_faults(mmu: L.KvmMmu) -> bool:
    # The Derived record names the inputs KVM fed update_permission_bitmask;
    # rebuild the real table from them and ask it.
    inputs = dict(mmu.permissions.inputs)
    table = update_permission_bitmask(**inputs)
    return bool(permission_fault(table, 0, pte_access=READ_ONLY_USER_PAGE, pte_pkey=0,
                                 access=SUPERVISOR_WRITE, rflags_ac=False, pkru=0))


def test_tdp_wp_toggle_keeps_roots_but_changes_permissions():
    vcpu = fresh(tdp=True)
    root, resets = vcpu.root_mmu.root, vcpu.resets
    assert supervisor_write_faults(vcpu.root_mmu)           # WP=1: RO page protects
    L.kvm_set_cr0(vcpu, vcpu.regs.cr0 & ~CR0_WP)
    assert vcpu.resets == resets and vcpu.root_mmu.root == root   # nothing unloaded
    assert not supervisor_write_faults(vcpu.root_mmu)       # WP=0: supervisor may write
    L.kvm_set_cr0(vcpu, vcpu.regs.cr0 | CR0_WP)
    assert vcpu.resets == resets and supervisor_write_faults(vcpu.root_mmu)


def test_shadow_wp_toggle_resets_because_wp_is_in_the_role():
    vcpu = fresh(tdp=False)
    resets = vcpu.resets
    role_before = vcpu.root_mmu.root_role
    L.kvm_set_cr0(vcpu, vcpu.regs.cr0 & ~CR0_WP)
    assert vcpu.resets == resets + 1
    assert (role_before.cr0_wp, vcpu.root_mmu.root_role.cr0_wp) == (1, 0)
    assert not supervisor_write_faults(vcpu.root_mmu)


def test_other_writes():
    vcpu = L.kvm_mmu_create(L.Host(tdp_enabled=True))
    L.set_regs(vcpu, L.GuestRegs(cr0=CR0_PG | CR0_WP | 1, cr3=0x1000))  # 32-bit paging
    resets = vcpu.resets
    L.kvm_set_cr0(vcpu, vcpu.regs.cr0 | (1 << 5))   # CR0.NE: no role bit
    assert vcpu.resets == resets
    L.kvm_set_cr0(vcpu, 1)                          # PG and WP off: reset
    assert vcpu.resets == resets + 1 and vcpu.root_mmu.cpu_role.base.direct == 1


def test_wp_toggle_with_paging_off_does_nothing():
    vcpu = L.kvm_mmu_create(L.Host(tdp_enabled=True))
    L.set_regs(vcpu, L.GuestRegs(cr0=1))       # PE only
    resets, perms = vcpu.resets, vcpu.root_mmu.permissions
    L.kvm_set_cr0(vcpu, 1 | CR0_WP)
    assert vcpu.resets == resets and vcpu.root_mmu.permissions is perms


def test_impossible_cr0_is_rejected_and_state_kept():
    vcpu = fresh(tdp=True)
    before = vcpu.regs
    with pytest.raises(ValueError):
        L.kvm_set_cr0(vcpu, CR0_PG | CR0_WP)    # PG without PE: no CPU is in that state
    assert vcpu.regs == before
