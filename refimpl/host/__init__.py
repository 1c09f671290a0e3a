"""The host side: the tables KVM itself builds (``kvm_mmu_kind`` and ``kvm_mmu``).

One module per concept, listed from the bottom of the import graph up (a
module imports only modules above it in this list, and never the other way;
``tests/test_imports.py`` checks there is no cycle):

``roles``
    The page role, extended role and CPU role (``kvm_mmu_page_role``...).
``spte``
    The SPTE formats and the SPTEs KVM writes (``spte.h``, ``spte.c``).
``tlb``
    The vCPU's TLB: what the CPU caches from KVM's tables.
``kvm_mmu``
    ``struct kvm_mmu_kind`` and ``struct kvm_mmu`` of the 2021 sketch.
``mmu_page``
    ``struct kvm_mmu_page``: one page of either MMU's tables.
``outcomes``
    How faults, walks and accesses end (``RET_PF_*`` and friends), as enums.
``vm``
    The VM around the MMU: host memory, memslots, vCPUs.
``mmu``
    The public face of the above, plus the CPU's walk of KVM's tables and the
    remote TLB flush.
``tdp_mmu``, ``shadow_mmu``, ``tdp12``, ``legacy_direct_mmu``
    The implementations that fill KVM's tables: the TDP MMU, the shadow
    MMU, the shadow of L1's EPT/NPT, and the legacy direct MMU (EPT/NPT
    tables built with the shadow MMU's code, ``tdp_mmu=0``).
``direct_mmu``
    The direct kind's interface, and the choice between its two
    implementations.
``nested_svm``
    L2's VMLOAD/VMSAVE (CVE-2021-3656).
"""
