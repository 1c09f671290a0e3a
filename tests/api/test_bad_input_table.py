"""The bad-input table: one row per misuse, for every module's entry points.

Each row is (module, call, bad argument, expected exception class, fragment
the message must contain). The categories are the ones the contract in
:mod:`refimpl.errors` names: wrong types, negative or out-of-range
addresses, sizes that must be page multiples, unknown flag or access bits,
impossible CPU states, overlapping memslots, unknown names. Where the call
is on an object, the test snapshots the object (and the arguments that are
objects) before the call and checks that the failed call changed nothing.

``tests/api/test_bad_input.py`` holds the older rows for the stable walker API;
this table covers the rest of the package.
"""

from __future__ import annotations

import numpy as np
import pytest

from refimpl import CpuState, GuestMemory, ept_translate, translate, translate_batch
from refimpl import bits
from refimpl.guest import faults, formats, permissions, rsvd
from refimpl.host import mmu, roles
from refimpl.layouts import legacy as mmu_legacy, split as mmu_split
from refimpl.host import spte
from refimpl.story import thread, ledger
from refimpl.guest import walker
from refimpl.guest.cpu import PagingMode
from refimpl.guest.ept import ept_violation_exit_qualification, npt_translate
from refimpl.errors import HostOutOfMemory, UnknownName
from refimpl.host.mmu import make_eptp
from refimpl.host.kvm_mmu import tdp_kind
from refimpl.guest.nested import nested_translate, reference_count
from refimpl.guest.tables import GuestPageTables
from refimpl.host.shadow_mmu import ShadowMmu
from refimpl.host.tdp_mmu import TdpMmu, level_pages
from refimpl.viz import layouts, svg
from refimpl.viz import nested as vnested
from refimpl.viz import walk as vwalk
from refimpl.host.vm import HostMemory, Kvm, Memslot

from refimpl.layouts.legacy import EPTP12, L1_REGS, L2_REGS, Host as MmuHost
from refimpl.layouts.steps import STEPS, Step, get_step, ledger_delta_markdown
from refimpl.layouts.steps import base as rbase
from refimpl.layouts import figures as rfig
from refimpl.story import history as rhist
from refimpl.layouts import measures as rmeas, workload as rwork
from refimpl.layouts.mistakes import WpNoBitmapUpdate

from api_surface import _layout, state_of

LONG = dict(cr0=(1 << 31) | (1 << 16) | 1, cr3=0x1000, cr4=0x20, efer=0xD00)


def kvm_with_slot():
    kvm = Kvm(HostMemory(0x1000, backed_frames=0x100, maxphyaddr=46))
    kvm.add_memslot(0, 0x10, 0x10)
    return kvm


def tdp():
    kvm = kvm_with_slot()
    kvm.create_vcpu()
    return TdpMmu(kvm, tdp_kind(spte.ept_format(phys_bits=46)))


def shadow():
    kvm = kvm_with_slot()
    m = ShadowMmu(kvm, GuestMemory(0x20 << 12))
    m.add_vcpu(CpuState(**LONG, maxphyaddr=46))
    return m


def legacy_vcpu():
    return mmu_legacy.kvm_mmu_create()


def split_vcpu():
    return mmu_split.kvm_mmu_create(mmu_split.kvm_arch_init_vm())


def pt():
    return GuestPageTables(GuestMemory(0x20000), PagingMode.LEVEL4, 0x10)


EPT_FMT = spte.ept_format(phys_bits=46)
X86_FMT = spte.x86_format(phys_bits=46)
RSVD = rsvd.reset_rsvds_bits_mask(root_level=4, maxphyaddr=46, nx=True, gbpages=True, pse=True)
PERMS = permissions.update_permission_bitmask(cr0_wp=True, cr4_smep=False, cr4_smap=False,
                                              efer_nx=True)
CPU = CpuState(**LONG)
MEM = GuestMemory(0x4000)

WL = rwork.generate(3, n_vcpus=1, n_events=6)


def stepped(n, config="tdp"):
    """A fresh instance of step ``n`` whose one vCPU (``_fuzz_vcpu``) runs in ``config``."""
    return lambda: _layout(STEPS[n].cls, config)


def vcpu_of(o):
    return o._fuzz_vcpu


# (id, factory of the object or None, call(obj), exception, fragment)
T, V = TypeError, ValueError
ROWS = [
    # --- memory -----------------------------------------------------------
    ("memory: size too big", None, lambda o: GuestMemory(1 << 40), V, "size"),
    ("memory: size numpy float", None, lambda o: GuestMemory(np.float64(4096)), T, "size"),
    ("memory: contains gpa None", lambda: GuestMemory(16), lambda o: o.contains(None, 1), T, "gpa"),
    ("memory: write64 value 2**64", lambda: GuestMemory(16), lambda o: o.write64(0, 1 << 64), V,
     "value"),
    ("memory: write past end", lambda: GuestMemory(16), lambda o: o.write(12, b"12345"), V, "gpa"),
    # --- cpu ----------------------------------------------------------------
    ("cpu: PG without PE", None, lambda o: CpuState(cr0=1 << 31), V, "cr0"),
    ("cpu: LMA without PAE", None, lambda o: CpuState(cr0=(1 << 31) | 1, efer=1 << 10), V, "efer"),
    ("cpu: cr4 as str", None, lambda o: CpuState(cr4="0x20"), T, "cr4"),
    ("cpu: maxphyaddr 64", None, lambda o: CpuState(maxphyaddr=64), V, "maxphyaddr"),
    # --- walker / batch / ept / nested ------------------------------------
    ("walker: gva negative", None, lambda o: translate(MEM, CPU, -4096), V, "gva"),
    ("walker: non-canonical is not misuse, 2**64 is", None,
     lambda o: translate(MEM, CPU, 1 << 64), V, "gva"),
    ("walker: unknown access bit", None, lambda o: translate(MEM, CPU, 0, 1 << 7), V, "access"),
    ("walker: is_canonical width 0", None, lambda o: walker.is_canonical(0, 0), V, "width"),
    ("walker: load_pdptrs mem", None, lambda o: walker.load_pdptrs(b"", 0, 46), T, "mem"),
    ("walker: walk_context cpu", None, lambda o: walker.walk_context({"cr0": 0}), T, "cpu"),
    ("batch: gvas of str", None, lambda o: translate_batch(MEM, CPU, np.array(["a"])), T, "gvas"),
    ("batch: gvas beyond 2**32 in 32-bit", None,
     lambda o: translate_batch(MEM, CpuState(cr0=(1 << 31) | 1, cr3=0x1000), [1 << 33]), V, "gvas"),
    ("ept: memory type 1", None, lambda o: ept_translate(MEM, 0x1019, 0), V, "eptp"),
    ("ept: walk length 2", None, lambda o: ept_translate(MEM, 0x1016, 0), V, "eptp"),
    ("ept: access user bit", None, lambda o: ept_translate(MEM, 0x101E, 0, 1 << 2), V, "access"),
    ("ept: exit qualification of None", None,
     lambda o: ept_violation_exit_qualification(None), T, "fault"),
    ("npt: ncr3 negative", None,
     lambda o: npt_translate(MEM, -1, 0, cr4=0x20, efer=0xD00), V, "ncr3"),
    ("nested: eptp and ncr3 both", None,
     lambda o: nested_translate(MEM, CPU, 0, eptp=0x101E, ncr3=0x1000), V, "ncr3"),
    ("nested: l2_cpu dict", None, lambda o: nested_translate(MEM, {}, 0, eptp=0x101E), T, "l2_cpu"),
    ("nested: reference_count level 7", None, lambda o: reference_count(7, 4), V, "l2_levels"),
    # --- bits / formats / faults / permissions / rsvd / roles ----------------
    ("bits: hi beyond MAX_BIT", None, lambda o: bits.bits(0, 1 << 40), V, "hi"),
    ("bits: Field.set negative word", None, lambda o: formats.PTE64.W.set(-1, 1), V, "word"),
    ("bits: Field.set value too wide", None, lambda o: formats.PTE64.W.set(0, 2), V, "value"),
    ("bits: Layout fields not Field", None, lambda o: bits.Layout("x", 8, ("W",)), T, "fields"),
    ("formats: index level 0", None, lambda o: formats.PTTYPE64.index(0, 0), V, "level"),
    ("formats: pse36_addr negative", None, lambda o: formats.pse36_addr(-1), V, "pde"),
    ("formats: gpte_access 2**64", None, lambda o: formats.PTTYPE64.gpte_access(1 << 64), V,
     "pte_bits"),
    ("faults: reason not WalkError", None,
     lambda o: faults.page_fault_error_code("rsvd", 0, has_pferr_fetch=False), T, "reason"),
    ("permissions: pte_pkey 16", None,
     lambda o: permissions.permission_fault(PERMS, 0, pte_access=7, pte_pkey=16, access=0,
                                            rflags_ac=False, pkru=0), V, "pte_pkey"),
    ("permissions: table not a tuple", None,
     lambda o: permissions.permission_fault([0] * 16, 0, pte_access=7, pte_pkey=0, access=0,
                                            rflags_ac=False, pkru=0), T, "permissions"),
    ("rsvd: mask level 6", None, lambda o: RSVD.mask(0, 6), V, "level"),
    ("rsvd: maxphyaddr 60", None,
     lambda o: rsvd.reset_rsvds_bits_mask(root_level=4, maxphyaddr=60, nx=True, gbpages=True,
                                          pse=True), V, "maxphyaddr"),
    ("roles: unknown cr4 bit", None, lambda o: roles.calc_cpu_role(0, 1 << 40, 0), V, "cr4"),
    ("roles: PageRole level 16", None, lambda o: roles.PageRole(level=16), V, "level"),
    ("roles: tdp_level 3", None,
     lambda o: roles.calc_tdp_root_role(roles.calc_cpu_role(0, 0, 0), tdp_level=3), V,
     "tdp_level"),
    # --- spte -------------------------------------------------------------
    ("spte: negative spte", None, lambda o: spte.is_shadow_present_pte(-1), V, "spte"),
    ("spte: spte 2**64", None, lambda o: spte.spte_to_pfn(1 << 64), V, "spte"),
    ("spte: spte as float", None, lambda o: spte.is_large_pte(1.0), T, "spte"),
    ("spte: fmt not a format", None, lambda o: spte.is_mmio_spte("ept", 0), T, "fmt"),
    ("spte: make_small_spte index 512", None,
     lambda o: spte.make_small_spte(EPT_FMT, 0x80, 1, 512), V, "index"),
    ("spte: phys_bits 64", None, lambda o: spte.ept_format(phys_bits=64), V, "phys_bits"),
    ("spte: rsvd not masks", None, lambda o: spte.is_rsvd_spte(None, 0, 1), T, "rsvd"),
    # --- mmu --------------------------------------------------------------
    ("mmu: make_eptp unaligned root", None, lambda o: make_eptp(0x1234, 4, True), V, "root_hpa"),
    ("mmu: make_eptp level 3", None, lambda o: make_eptp(0x1000, 3, True), V, "root_level"),
    ("mmu: tdp_kind fmt", None, lambda o: tdp_kind(None), T, "fmt"),
    ("mmu: flush_remote_tlbs vcpus", None,
     lambda o: mmu.flush_remote_tlbs(tdp_kind(EPT_FMT), [1]), T, "vcpus"),
    # --- vm ---------------------------------------------------------------
    ("vm: nframes too many", None, lambda o: HostMemory(1 << 30), V, "nframes"),
    ("vm: overlapping memslot", kvm_with_slot, lambda o: o.add_memslot(1, 0x18, 0x10), V,
     "overlaps"),
    ("vm: memslot beyond MAXPHYADDR", kvm_with_slot,
     lambda o: o.add_memslot(1, 1 << 40, 1), V, "base_gfn"),
    ("vm: unknown memslot flag", kvm_with_slot,
     lambda o: o.set_memslot_flags(0, 1 << 5), V, "flags"),
    ("vm: negative npages", kvm_with_slot, lambda o: o.add_memslot(1, 0x100, -1), V, "npages"),
    ("vm: move onto another slot", lambda: (lambda k: (k.add_memslot(1, 0x40, 4), k)[1])(
        kvm_with_slot()), lambda o: o.move_memslot(1, 0x12), V, "overlaps"),
    ("vm: align not a power of two", lambda: HostMemory(64),
     lambda o: o.alloc_range(1, 3), V, "align"),
    ("vm: free unallocated frames", lambda: HostMemory(64),
     lambda o: o.free_range(0, 1), V, "not all allocated"),
    ("vm: gfn_to_hfn outside slot", None,
     lambda o: Memslot(0, 0, 0x10, 4, 0x100).gfn_to_hfn(0x20), V, "gfn"),
    ("vm: alloc beyond host", lambda: HostMemory(64, backed_frames=4),
     lambda o: o.alloc_range(65), HostOutOfMemory, "65 frames"),
    # --- tdp_mmu ----------------------------------------------------------
    ("tdp_mmu: vcpu of another VM", tdp,
     lambda o: o.page_fault(Kvm(HostMemory(64)).create_vcpu(), 0x10000, 0), V, "vcpu"),
    ("tdp_mmu: gpa beyond MAXPHYADDR", tdp,
     lambda o: o.page_fault(o.kvm.vcpus[0], 1 << 50, 0), V, "gpa"),
    ("tdp_mmu: error_code as str", tdp,
     lambda o: o.page_fault(o.kvm.vcpus[0], 0x10000, "w"), T, "error_code"),
    ("tdp_mmu: guest_access unknown access bit", tdp,
     lambda o: o.guest_access(o.kvm.vcpus[0], 0x10000, 1 << 9), V, "access"),
    ("tdp_mmu: put_root of None", tdp, lambda o: o.put_root(None), T, "root"),
    ("tdp_mmu: level_pages 0", None, lambda o: level_pages(0), V, "level"),
    # --- shadow_mmu -------------------------------------------------------
    ("shadow_mmu: vcpu of another MMU", shadow,
     lambda o: o.access(shadow().vcpus[0], 0x1000), T, "vcpu"),
    ("shadow_mmu: cr3 as str", shadow,
     lambda o: o.write_cr3(o.vcpus[0], "0x1000"), T, "cr3"),
    ("shadow_mmu: guest_walk access bit", shadow,
     lambda o: o.guest_walk(o.vcpus[0], 0x1000, 1 << 9), V, "access"),
    ("shadow_mmu: unknown bug name", None,
     lambda o: ShadowMmu(kvm_with_slot(), GuestMemory(0x1000), bugs={"nope"}), V, "bugs"),
    ("shadow_mmu: table write past memory", pt, lambda o: o.write(0x20000, 0), V, "gpa"),
    ("shadow_mmu: map leaf_level 5", pt, lambda o: o.map(0x1000, 0x2000, leaf_level=5), V,
     "leaf_level"),
    ("shadow_mmu: map gpa negative", pt, lambda o: o.map(0x1000, -0x1000), V, "gpa"),
    # --- mmu_legacy / mmu_split -------------------------------------------
    ("mmu_legacy: vcpu None", None, lambda o: mmu_legacy.kvm_init_mmu(None), T, "vcpu"),
    ("mmu_legacy: cr0 PG without PE", legacy_vcpu,
     lambda o: mmu_legacy.kvm_set_cr0(o, 1 << 31), V, "cr0"),
    ("mmu_legacy: nested EPT on an SVM host", lambda: mmu_legacy.kvm_mmu_create(
        mmu_legacy.Host(vendor="svm")),
     lambda o: mmu_legacy.nested_vmx_vmentry(o, mmu_legacy.GuestRegs(), ept=True, eptp=0x101E),
     V, "VMX"),
    ("mmu_legacy: Derived.get unknown", None,
     lambda o: mmu_legacy.Derived("f", (("a", 1),)).get("b"), UnknownName, "name"),
    ("mmu_split: vcpu None", None, lambda o: mmu_split.kvm_init_mmu(None), T, "vcpu"),
    ("mmu_split: vmexit outside guest mode", split_vcpu,
     lambda o: mmu_split.nested_vmx_vmexit(o), V, "guest mode"),
    ("mmu_split: unknown struct", None, lambda o: mmu_split.resolve_struct_name("kvm_foo"), V,
     "kvm_foo"),
    ("mmu_split: kind_conflicts of str", None, lambda o: mmu_split.kind_conflicts("ab"), T,
     "vcpus"),
    # --- ledger / thread --------------------------------------------------
    ("ledger: rows of ints", None, lambda o: ledger.ledger_markdown([1]), T, "rows"),
    ("ledger: home not str", None, lambda o: ledger.sketch_home_is_valid(3), T, "home"),
    ("thread: fates of str", None, lambda o: thread.check_fates("ab"), T, "fates"),
    # --- viz --------------------------------------------------------------
    ("viz.walk: unknown mode", None, lambda o: vwalk.WalkSetup(mode="6-level"), V, "mode"),
    ("viz.walk: entry level 5 in 4-level", None, lambda o: vwalk.WalkSetup().entry(5), V, "level"),
    ("viz.walk: unknown entry bit", None, lambda o: vwalk.WalkSetup().with_entry(1, q=True), V,
     "bit name"),
    ("viz.walk: entry_name level 0", None, lambda o: vwalk.entry_name(PagingMode.LEVEL4, 0), V,
     "level"),
    ("viz.nested: unknown target", None, lambda o: vnested.target_gpa("PML9"), V, "name"),
    ("viz.nested: mode not a name", None, lambda o: vnested.targets(PagingMode.LEVEL4), T, "mode"),
    ("viz.nested: ept_levels 3", None, lambda o: vnested.ept_table_gpa(3, 1), V, "ept_levels"),
    ("viz.layouts: vendor", None, lambda o: layouts.LayoutSetup(vendor="arm"), V, "vendor"),
    ("viz.svg: unknown box", None, lambda o: svg.Diagram(10, 10).box("x"), UnknownName, "key"),
    ("viz.svg: render a dict", None, lambda o: svg.render({}, "x"), T, "d"),
    # --- refactor: the steps, as data -------------------------------------
    ("refactor: unknown step name", None, lambda o: get_step("walk13"), V, "unknown step"),
    ("refactor: step number 9", None, lambda o: get_step(9), V, "step number must be in [0, 8]"),
    ("refactor: step as float", None, lambda o: get_step(1.0), T, "step must be"),
    ("refactor: step True", None, lambda o: get_step(True), T, "step must be"),
    ("refactor: ledger delta of None", None, lambda o: ledger_delta_markdown(None), T, "step"),
    ("refactor: Step cls not a Layout", None,
     lambda o: Step(0, "x", "t", "s", None, (), int), T, "cls"),
    ("refactor: Step delta not triples", None,
     lambda o: Step(0, "x", "t", "s", None, (("moved", "a"),), STEPS[0].cls), T, "delta"),
    # --- refactor.base ------------------------------------------------------
    ("refactor.base: count an unknown counter", rbase.Layout,
     lambda o: o.count("faults"), V, "what"),
    ("refactor.base: count a list", rbase.Layout, lambda o: o.count(["resets"]), T, "what"),
    ("refactor.base: pgd_source of a dict", None,
     lambda o: rbase.pgd_source({}, "get_guest_cr3"), T, "vcpu"),
    ("refactor.base: pgd_source callback not a name", stepped(0),
     lambda o: rbase.pgd_source(vcpu_of(o), 3), T, "callback"),
    ("refactor.base: pgd_source unknown callback", stepped(0),
     lambda o: rbase.pgd_source(vcpu_of(o), "get_cr3"), V, "not modelled"),
    # --- refactor.steps: a step's methods on its own vCPU -----------------
    ("refactor.steps: vcpu of another step", stepped(2),
     lambda o: o.set_cr0(_layout(STEPS[1].cls)._fuzz_vcpu, L1_REGS.cr0), T, "vcpu"),
    ("refactor.steps: vcpu None", stepped(8), lambda o: o.emulation_walk(None), T, "vcpu"),
    ("refactor.steps: cr0 as str", stepped(0),
     lambda o: o.set_cr0(vcpu_of(o), "0x80010033"), T, "cr0"),
    ("refactor.steps: cr0 PG without PE", stepped(0),
     lambda o: o.set_cr0(vcpu_of(o), 1 << 31), V, "cr0"),
    ("refactor.steps: cr4 2**64", stepped(3),
     lambda o: o.set_cr4(vcpu_of(o), 1 << 64), V, "cr4 must be in [0, "),
    ("refactor.steps: efer negative", stepped(4), lambda o: o.set_efer(vcpu_of(o), -1), V,
     "efer"),
    ("refactor.steps: cr3 float", stepped(1), lambda o: o.set_cr3(vcpu_of(o), 4096.0), T, "cr3"),
    ("refactor.steps: smm 2", stepped(0), lambda o: o.set_smm(vcpu_of(o), 2), T, "smm"),
    ("refactor.steps: set_regs of a dict", stepped(5),
     lambda o: o.set_regs(vcpu_of(o), {"cr0": 0}), T, "regs"),
    ("refactor.steps: w of another vCPU", stepped(2),
     lambda o: o.set_walk(vcpu_of(o), _layout(STEPS[2].cls)._fuzz_vcpu.root_walk), V,
     "w must be a structure of this vCPU"),
    ("refactor.steps: view of a str", stepped(6),
     lambda o: o.view(vcpu_of(o), "root_walk"), V, "w must be"),
    ("refactor.steps: m of the wrong step", stepped(2),
     lambda o: o.walk_of(_layout(STEPS[0].cls)._fuzz_vcpu.root_mmu), T, "m must be"),
    ("refactor.steps: cpu_role None", stepped(7),
     lambda o: o.init_kvm_tdp_mmu(vcpu_of(o), None), T, "cpu_role"),
    ("refactor.steps: vmexit outside guest mode", stepped(1),
     lambda o: o.vmx_vmexit(vcpu_of(o)), V, "not in guest mode"),
    ("refactor.steps: vmentry twice", stepped(3, "vmx_ept"),
     lambda o: o.vmx_vmentry(vcpu_of(o), L2_REGS, ept=True, eptp=EPTP12), V,
     "already in guest mode"),
    ("refactor.steps: EPTP12 with 2-level walk", stepped(0),
     lambda o: o.vmx_vmentry(vcpu_of(o), L2_REGS, ept=True, eptp=0x9000 | (1 << 3) | 6), V,
     "bits 5:3"),
    ("refactor.steps: ept not a bool", stepped(8),
     lambda o: o.vmx_vmentry(vcpu_of(o), L2_REGS, ept="yes", eptp=EPTP12), T, "ept"),
    ("refactor.steps: l2_regs None", stepped(8),
     lambda o: o.vmx_vmentry(vcpu_of(o), None, ept=False), T, "l2_regs"),
    ("refactor.steps: VMRUN on a VMX host", stepped(4),
     lambda o: o.svm_vmrun(vcpu_of(o), L2_REGS, npt=True), V, "SVM"),
    ("refactor.steps: ncr3 negative", stepped(4, "svm_npt"),
     lambda o: o.svm_vmrun(vcpu_of(o), L2_REGS, npt=True, ncr3=-0x1000), V, "ncr3"),
    ("refactor.steps: make_spte gfn 2**40", stepped(0),
     lambda o: o.make_spte(vcpu_of(o), 1 << 40, 0), V, "gfn"),
    ("refactor.steps: make_spte kind None", stepped(5),
     lambda o: o.make_spte(None, 1, 0), T, "kind"),
    ("refactor.steps: tdp_mmu_set_leaf without TDP", stepped(6, "shadow"),
     lambda o: o.tdp_mmu_set_leaf(o._fuzz_vm, vcpu_of(o).mmu.root, 1), V, "TDP is off"),
    ("refactor.steps: create_vcpu of a step-0 VM", stepped(4),
     lambda o: o.create_vcpu(rbase.Vm(MmuHost(), [])), T, "kvm"),
    ("refactor.steps: create_vm of a str", stepped(7), lambda o: o.create_vm("vmx"), T, "host"),
    ("refactor.steps: fault_inject flag of a list", stepped(8),
     lambda o: o.fault_inject(vcpu_of(o), [1]), T, "nested_page_fault"),
    ("refactor.steps: recover_huge_pages of a vCPU", stepped(6),
     lambda o: o.recover_huge_pages(vcpu_of(o)), T, "vm"),
    # --- refactor.mistakes --------------------------------------------------
    ("refactor.mistakes: cr0 None", lambda: _layout(WpNoBitmapUpdate),
     lambda o: o.set_cr0(vcpu_of(o), None), T, "cr0"),
    # --- refactor.workload --------------------------------------------------
    ("refactor.workload: n_vcpus 5", None, lambda o: rwork.generate(1, n_vcpus=5), V,
     "n_vcpus must be in [1, 4]"),
    ("refactor.workload: n_vcpus 0", None, lambda o: rwork.generate(1, n_vcpus=0), V,
     "n_vcpus"),
    ("refactor.workload: n_events 0", None, lambda o: rwork.generate(1, n_events=0), V,
     "n_events must be in [1, 2000]"),
    ("refactor.workload: n_events 2001", None, lambda o: rwork.generate(1, n_events=2001), V,
     "n_events"),
    ("refactor.workload: n_events float", None, lambda o: rwork.generate(1, n_events=6.0), T,
     "n_events"),
    ("refactor.workload: vendor arm", None, lambda o: rwork.generate(1, vendor="arm"), V,
     "vendor"),
    ("refactor.workload: seed negative", None, lambda o: rwork.generate(-1), V, "seed"),
    ("refactor.workload: run of a dict", None, lambda o: rwork.run("legacy", {}), T,
     "workload"),
    ("refactor.workload: run unknown step", None, lambda o: rwork.run("nope", WL), V,
     "unknown step"),
    ("refactor.workload: run step 12", None, lambda o: rwork.run(12, WL), V, "step number"),
    ("refactor.workload: differential n 0", None, lambda o: rwork.differential("kind", 0), V,
     "n must be in"),
    ("refactor.workload: differential n float", None,
     lambda o: rwork.differential("kind", 1.0), T, "n must be an int"),
    ("refactor.workload: differential first_seed negative", None,
     lambda o: rwork.differential("kind", 1, first_seed=-1), V, "first_seed"),
    ("refactor.workload: differential max_mismatches 0", None,
     lambda o: rwork.differential("kind", 1, max_mismatches=0), V, "max_mismatches"),
    ("refactor.workload: differential unknown reference", None,
     lambda o: rwork.differential("kind", 1, reference="sketch"), V, "unknown step"),
    ("refactor.workload: workloads n str", None, lambda o: rwork.workloads("3"), T, "n"),
    ("refactor.workload: first_difference longer than the events", None,
     lambda o: rwork.first_difference(WL, [("-",)] * 8, []), V, "expected has 8 outcomes"),
    ("refactor.workload: first_difference got None", None,
     lambda o: rwork.first_difference(WL, [], None), T, "got"),
    ("refactor.workload: cpu_state_from_role pgd str", None,
     lambda o: rwork.cpu_state_from_role(get_step(0).layout().cpu_role(
         _layout(STEPS[0].cls)._fuzz_vcpu), "0x1000"), T, "pgd"),
    # --- refactor.measures --------------------------------------------------
    ("refactor.measures: state_bytes n_vcpus 4097", None,
     lambda o: rmeas.state_bytes("legacy", 4097), V, "n_vcpus"),
    ("refactor.measures: bytes_table ns of str", None, lambda o: rmeas.bytes_table(["1"]), T,
     "ns"),
    ("refactor.measures: members host str", None, lambda o: rmeas.members(0, "vmx"), T, "host"),
    ("refactor.measures: struct_bytes host str", None,
     lambda o: rmeas.struct_bytes(0, "vmx"), T, "host"),
    ("refactor.measures: needs_vcpu functions int", None,
     lambda o: rmeas.needs_vcpu("kind", 3), T, "functions"),
    ("refactor.measures: counters unknown step", None,
     lambda o: rmeas.counters("sketch", 1), V, "unknown step"),
    # --- refactor.figures ---------------------------------------------------
    ("refactor.figures: unknown config key", None,
     lambda o: rfig.step_diagram("legacy", "nested"), V, "config_key"),
    ("refactor.figures: config key int", None,
     lambda o: rfig.configured_vcpu("legacy", 3), T, "config_key"),
    # --- refactor.history ---------------------------------------------------
    ("refactor.history: resolve_2026 structs list", None,
     lambda o: rhist.resolve_2026("kvm_mmu", ["kvm_mmu"]), T, "structs"),
    ("refactor.history: resolve_2026 unknown member", None,
     lambda o: rhist.resolve_2026("kvm_mmu.nope"), V, "no member 'nope'"),
    ("refactor.history: field_rows to_2026 lacks a field", None,
     lambda o: rhist.field_rows(None, {}), V, "to_2026 has no entry"),
    ("refactor.history: field_rows sketch_home of ints", None,
     lambda o: rhist.field_rows({"root": 1}), T, "sketch_home"),
    ("refactor.history: field_verdict homes str", None,
     lambda o: rhist.field_verdict("kvm_mmu", "kvm_mmu.root"), T, "homes"),
    ("refactor.history: field_verdict sketch_struct int", None,
     lambda o: rhist.field_verdict(3, ()), T, "sketch_struct"),
    ("refactor.history: comparison_markdown of str", None,
     lambda o: rhist.comparison_markdown("kvm_mmu"), T, "elements"),
    ("refactor.history: check_history to_2026 list", None,
     lambda o: rhist.check_history(to_2026=["root"]), T, "to_2026"),
]


@pytest.mark.parametrize("factory, call, exc, fragment",
                         [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_row(factory, call, exc, fragment):
    obj = factory() if factory is not None else None
    before = state_of(obj)
    with pytest.raises(exc) as info:
        call(obj)
    assert fragment in str(info.value), f"message {str(info.value)!r} lacks {fragment!r}"
    assert state_of(obj) == before, "the failed call changed its object"


def test_table_covers_every_module():
    modules = {r[0].split(":")[0] for r in ROWS}
    want = {"memory", "cpu", "walker", "batch", "ept", "npt", "nested", "bits", "formats",
            "faults", "permissions", "rsvd", "roles", "spte", "mmu", "vm", "tdp_mmu",
            "shadow_mmu", "mmu_legacy", "mmu_split", "ledger", "thread", "viz.walk",
            "viz.nested", "viz.layouts", "viz.svg",
            "refactor", "refactor.base", "refactor.steps", "refactor.mistakes",
            "refactor.workload", "refactor.measures", "refactor.figures", "refactor.history"}
    assert want <= modules, sorted(want - modules)


def test_documented_classes_are_the_contract():
    # UnknownName is a ValueError (and a KeyError for old callers);
    # HostOutOfMemory a MemoryError; nothing else is documented.
    from refimpl.errors import DOCUMENTED
    assert issubclass(UnknownName, ValueError) and issubclass(UnknownName, KeyError)
    assert issubclass(HostOutOfMemory, MemoryError)
    assert set(DOCUMENTED) == {TypeError, ValueError, HostOutOfMemory}
