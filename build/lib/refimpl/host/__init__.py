"""The host side: the tables KVM itself builds (``kvm_mmu_kind`` and ``kvm_mmu``).

MMU roles, SPTEs, the VM and its vCPUs, the MMU objects, and the three
implementations that fill KVM's tables: the TDP MMU, the shadow MMU, and the
shadow of L1's EPT/NPT (``tdp12``).
"""
