"""The MMU under concurrency: KVM's locking rules as a model a checker can explore.

KVM's MMU state is shared by every vCPU of a VM and by the host's memory
manager, which calls KVM back through MMU notifiers. Three kinds of code
touch it at once: page faults under ``mmu_lock`` taken for read (the TDP
MMU), or for write (the legacy and shadow MMUs); the fast page fault, which
takes no lock at all; and notifier callbacks, which take the lock for write.
This package models that as a handful of threads, each a sequence of atomic
steps, over a tiny shared state (one two-entry page table under one root
entry), and explores every interleaving of two or three of them.

One concern per module:

* :mod:`~refimpl.host.concurrency.model`: the shared state (``Vm``), the
  SPTE encoding (bits from :mod:`refimpl.host.spte`'s EPT layout) and the
  atomic primitives (read, compare-and-exchange, lock, TLB flush, RCU);
* :mod:`~refimpl.host.concurrency.threads`: the thread programs (a TDP MMU
  fault, a shadow MMU fault, the fast page fault, an MMU-notifier
  invalidation, aging, a table zap, a guest access) and the ``BUGS``
  switches that replay races KVM closed;
* :mod:`~refimpl.host.concurrency.invariants`: what must hold after every
  step;
* :mod:`~refimpl.host.concurrency.checker`: the explorer (breadth-first,
  with state hashing, so the first violation found is a shortest one);
* :mod:`~refimpl.host.concurrency.scenarios`: the named configurations the
  book, the tests and the benchmark run.

Glossary
--------
step
    One atomic action of one thread: a load, a compare-and-exchange, taking
    or dropping ``mmu_lock``, a TLB flush. Between two steps of a thread any
    other thread may run.
interleaving
    A maximal sequence of steps of all threads, each thread's steps in its
    program order.
state
    The shared ``Vm`` together with every thread's program counter and
    registers; two interleavings that reach the same state are explored
    once from there (state hashing).
frozen SPTE
    ``FROZEN_SPTE`` (``REMOVED_SPTE`` before 2024): a non-present value a
    thread holding ``mmu_lock`` for read writes to claim an SPTE while it
    does a multi-step change; other threads wait or retry.
"""
