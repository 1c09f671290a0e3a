"""The guest side: what the guest's own page tables mean (``kvm_paging_context``).

Bit layouts (:mod:`~refimpl.guest.formats`), guest memory and CPU state,
reserved bits, permissions, faults, and the walker that defines a
translation (:mod:`~refimpl.guest.walker`, KVM's ``paging_tmpl.h``), with
EPT/NPT walks and the two-dimensional nested walk built on it. Nothing here
knows about KVM's own tables; that is :mod:`refimpl.host`.
"""
