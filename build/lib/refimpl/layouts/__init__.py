"""Where KVM keeps its MMU state: today's layout, the 2021 sketch, and the steps between.

:mod:`~refimpl.layouts.steps` holds the refactoring, one module per step;
:mod:`~refimpl.layouts.legacy` and :mod:`~refimpl.layouts.split` are
today's ``struct kvm_mmu`` and the sketch's three structs;
:mod:`~refimpl.layouts.workload` drives any step through seeded workloads.
"""
