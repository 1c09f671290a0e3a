"""The layout explorer's model: which structure each MMU pointer designates.

A :class:`LayoutSetup` is four switches: TDP on the host, L2 running, VMX or
SVM, and EPT/NPT in L1 (for L2). :func:`explain_layout` builds a vCPU of
today's layout (:mod:`refimpl.layouts.legacy`) and one of the 2021 sketch
(:mod:`refimpl.layouts.split`) by running the same transitions the modules'
``configurations()`` run (L1's registers, then the nested entry), and reads
their pointer tables. :func:`layout_html` draws both as SVG box-and-arrow
diagrams (:mod:`refimpl.viz.svg`), with no Graphviz needed.
:func:`configuration_reports` does the same for the named configurations of
:data:`refimpl.layouts.legacy.CONFIGURATIONS`, and :func:`serving` reads which
walker and which MMU serve each kind of access in one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from refimpl.layouts import legacy as L
from refimpl.layouts import split as S
from refimpl.viz.svg import Arrow, Box, Diagram, render
from refimpl.errors import check_instance

VENDORS = ("vmx", "svm")


@dataclass(frozen=True)
class LayoutSetup:
    """The layout explorer's switches.

    Parameters
    ----------
    tdp : bool
        KVM uses EPT/NPT itself (``tdp_enabled``); otherwise shadow paging.
    nested : bool
        L2 is running (the vCPU is in guest mode).
    vendor : str
        ``"vmx"`` (Intel) or ``"svm"`` (AMD).
    l1_tdp : bool
        L1 runs L2 with EPT (VMX) or NPT (SVM). Only read when ``nested``.
    """

    tdp: bool = True
    nested: bool = False
    vendor: str = "vmx"
    l1_tdp: bool = True

    def __post_init__(self) -> None:
        if self.vendor not in VENDORS:
            raise ValueError(f"vendor must be 'vmx' or 'svm', got {self.vendor!r}")

    @property
    def host(self) -> L.Host:
        """The :class:`refimpl.layouts.legacy.Host` of this setup."""
        return L.Host(tdp_enabled=self.tdp, vendor=self.vendor)

    def describe(self) -> str:
        """One line: host, guest, and what L1 gave L2."""
        vendor = "VMX" if self.vendor == "vmx" else "SVM"
        tdp_name = "EPT" if self.vendor == "vmx" else "NPT"
        host = f"{vendor} host with {tdp_name}" if self.tdp else f"{vendor} host, shadow paging"
        if not self.nested:
            return f"{host}; L1 running"
        l1 = f"L1 uses {tdp_name} for L2" if self.l1_tdp else f"L1 shadows L2's tables itself"
        return f"{host}; L2 running; {l1}"


def run_transitions(module, create, setup: LayoutSetup):
    """A vCPU of ``module``'s layout in ``setup``'s configuration.

    The steps of :func:`refimpl.layouts.legacy.run_configurations`: a fresh vCPU,
    :data:`refimpl.layouts.legacy.L1_REGS`, and, if ``setup.nested``, a nested
    entry with :data:`refimpl.layouts.legacy.L2_REGS`.

    Raises
    ------
    ValueError
        From the transition, for a configuration KVM refuses (nested EPT/NPT
        when KVM itself does not use EPT/NPT).
    """
    check_instance("setup", setup, LayoutSetup)
    vcpu = create(setup.host)
    module.set_regs(vcpu, L.L1_REGS)
    if setup.nested:
        if setup.vendor == "vmx":
            module.nested_vmx_vmentry(vcpu, L.L2_REGS, ept=setup.l1_tdp, eptp=L.EPTP12)
        else:
            module.nested_svm_vmrun(vcpu, L.L2_REGS, npt=setup.l1_tdp, ncr3=L.NCR3)
    return vcpu


@dataclass(frozen=True)
class LayoutReport:
    """Both layouts in one configuration.

    Parameters
    ----------
    setup : LayoutSetup
    impossible : str or None
        Why the configuration cannot exist (the transition's ValueError), or None.
    legacy : dict or None
        :func:`refimpl.layouts.legacy.pointer_table` of the legacy vCPU.
    split : dict or None
        :func:`refimpl.layouts.split.pointer_table` of the sketch's vCPU.
    split_callbacks : dict or None
        The sketch's callbacks: ``{"root_mmu.page_fault": ..., "root_walk.gva_to_gpa": ...}``.
    """

    setup: LayoutSetup
    impossible: str | None
    legacy: dict | None
    split: dict | None
    split_callbacks: dict | None

    def legacy_diagram(self) -> Diagram:
        """Today's layout: ``mmu`` and ``walk_mmu`` pointing into three ``kvm_mmu``."""
        d = Diagram(560, 215, caption="today's layout: vcpu->arch.mmu and walk_mmu")
        t = self.legacy or {}
        used = {t.get("mmu"), t.get("walk_mmu")}
        for i, name in enumerate(L.MMU_STRUCTS):
            cb = t.get(name, {})
            d.boxes.append(Box(name, 280, 10 + 70 * i, 270, name, (
                f"page_fault: {cb.get('page_fault') or 'NULL'}",
                f"gva_to_gpa: {cb.get('gva_to_gpa') or 'NULL'}"),
                "used" if name in used else "idle"))
        d.boxes.append(Box("mmu", 10, 30, 170, "vcpu->arch.mmu", ("handles page faults",), "pointer"))
        d.boxes.append(Box("walk_mmu", 10, 125, 170, "vcpu->arch.walk_mmu",
                           ("walks gva -> gpa",), "pointer"))
        if self.legacy is not None:
            d.arrows.append(Arrow("mmu", t["mmu"], "mmu", show_label=False))
            d.arrows.append(Arrow("walk_mmu", t["walk_mmu"], "walk_mmu", show_label=False))
        return d

    def split_diagram(self) -> Diagram:
        """The sketch: ``mmu``, ``walk``, each MMU's kind and paging context."""
        d = Diagram(660, 330, caption="the 2021 sketch: mmu, walk, kinds and paging contexts")
        t = self.split or {}
        cb = self.split_callbacks or {}
        used = set()
        if self.split is not None:
            used = {t["mmu"], t["walk"], t["mmu->walk"],
                    t["root_mmu.kind"] if t["mmu"] == "root_mmu" else t["tdp12_mmu.kind"]}

        def style(name: str) -> str:
            return "used" if name in used else "idle"

        d.boxes += [
            Box("root_mmu", 210, 10, 215, "root_mmu",
                (f"page_fault: {cb.get('root_mmu.page_fault') or 'NULL'}",), style("root_mmu")),
            Box("tdp12_mmu", 210, 90, 215, "tdp12_mmu",
                (f"page_fault: {cb.get('tdp12_mmu.page_fault') or 'NULL'}",), style("tdp12_mmu")),
            Box("kvm.direct_mmu", 480, 10, 175, "kvm.direct_mmu",
                ("kind, one per VM" if self.setup.tdp else "absent: no TDP",),
                style("kvm.direct_mmu") if self.setup.tdp else "absent"),
            Box("shadow_mmu", 480, 90, 175, "shadow_mmu", ("kind, one per vCPU",),
                style("shadow_mmu")),
            Box("root_walk", 210, 180, 215, "root_walk",
                (f"gva_to_gpa: {cb.get('root_walk.gva_to_gpa') or 'NULL'}",), style("root_walk")),
            Box("walk01", 480, 180, 175, "walk01",
                (f"gva_to_gpa: {cb.get('walk01.gva_to_gpa') or 'NULL'}",), style("walk01")),
            Box("walk12", 210, 260, 215, "walk12",
                (f"gva_to_gpa: {cb.get('walk12.gva_to_gpa') or 'NULL'}",), style("walk12")),
            Box("mmu", 10, 40, 150, "vcpu->arch.mmu", ("a kvm_mmu",), "pointer"),
            Box("walk", 10, 200, 150, "vcpu->arch.walk", ("a paging context",), "pointer"),
        ]
        if self.split is not None:
            d.arrows += [
                Arrow("mmu", t["mmu"], "mmu", show_label=False),
                Arrow("walk", t["walk"], "walk", show_label=False),
                Arrow("root_mmu", t["root_mmu.kind"], ".kind"),
                Arrow("tdp12_mmu", t["tdp12_mmu.kind"], ".kind"),
                Arrow("root_mmu", "root_walk", ".walk", "l", "l", 70),
                Arrow("tdp12_mmu", "walk01", ".walk", "b", "t", 40),
            ]
        return d


def explain_layout(setup: LayoutSetup) -> LayoutReport:
    """Build both vCPUs for ``setup`` and read where their pointers go."""
    check_instance("setup", setup, LayoutSetup)
    try:
        legacy = run_transitions(L, L.kvm_mmu_create, setup)
        split = run_transitions(S, lambda host: S.kvm_mmu_create(S.kvm_arch_init_vm(host)), setup)
    except ValueError as e:
        return LayoutReport(setup, str(e), None, None, None)
    return _report(setup, legacy, split)


#: The switches of each named configuration of
#: :data:`refimpl.layouts.legacy.CONFIGURATIONS` (``after_exit`` is drawn like
#: ``tdp``: L1 runs again).
CONFIGURATION_SETUPS: dict[str, LayoutSetup] = {
    "shadow": LayoutSetup(tdp=False),
    "tdp": LayoutSetup(),
    "vmx_ept": LayoutSetup(nested=True),
    "vmx_noept": LayoutSetup(nested=True, l1_tdp=False),
    "svm_npt": LayoutSetup(nested=True, vendor="svm"),
    "svm_nonpt": LayoutSetup(nested=True, vendor="svm", l1_tdp=False),
    "after_exit": LayoutSetup(),
}


def configuration_reports() -> dict[str, LayoutReport]:
    """Both layouts in every named configuration, from the vCPUs that
    :func:`refimpl.layouts.legacy.configurations` and
    :func:`refimpl.layouts.split.configurations` build by running the transitions."""
    legacy, split = L.configurations(), S.configurations()
    return {key: _report(CONFIGURATION_SETUPS[key], legacy[key], split[key])
            for key in L.CONFIGURATIONS}


#: The four accesses of :func:`serving`.
ACCESS_KINDS = ("L1 emulated access", "L2 emulated access", "L2 hardware fault",
                "L1 hardware fault")


def serving(legacy: L.KvmVcpuArch, split: S.KvmVcpuArch) -> dict[str, dict[str, str]]:
    """Which walker and which MMU serve each kind of access, in both layouts.

    For one configuration (a legacy vCPU and the split vCPU built by the
    same transitions), reads the pointers: an emulated access walks with
    ``walk_mmu`` (sketch: ``walk``) and translates each gpa it finds with
    :func:`refimpl.layouts.legacy.kvm_translate_gpa` (sketch:
    :func:`refimpl.layouts.split.kvm_translate_gpa`); a hardware fault goes to
    ``mmu->page_fault``. L1's hardware faults, once L1 runs again, go to
    ``root_mmu``. A cell is ``"-"`` for a level that is not running.

    Returns
    -------
    dict
        ``{"today": {access kind: text}, "sketch": {access kind: text}}``,
        access kinds from :data:`ACCESS_KINDS`.
    """
    check_instance("legacy", legacy, L.KvmVcpuArch)
    check_instance("split", split, S.KvmVcpuArch)
    if legacy.walk_mmu is None or legacy.mmu is None or split.walk is None or split.mmu is None:
        raise ValueError("serving: both vCPUs need an initialised MMU (kvm_init_mmu)")
    if legacy.guest_mode != split.guest_mode:
        raise ValueError("serving: legacy and split are not in the same configuration "
                         f"(guest_mode {legacy.guest_mode} vs {split.guest_mode})")
    today: dict[str, str] = {}
    sketch: dict[str, str] = {}
    nested = legacy.guest_mode
    walk = f"{legacy.name_of(legacy.walk_mmu)}.gva_to_gpa = {legacy.walk_mmu.gva_to_gpa}"
    swalk = f"{split.name_of(split.walk)}.gva_to_gpa = {split.walk.gva_to_gpa}"
    if nested:
        inner = L.kvm_translate_gpa(legacy, legacy.walk_mmu)
        sinner = S.kvm_translate_gpa(split, split.walk)
        today["L2 emulated access"] = walk + (
            f"; each gpa through {legacy.name_of(inner)}.gva_to_gpa = {inner.gva_to_gpa}"
            if inner is not None else "; gpas used as they are")
        sketch["L2 emulated access"] = swalk + (
            f"; each gpa through {split.name_of(sinner)}.gva_to_gpa = {sinner.gva_to_gpa}"
            if sinner is not None else "; gpas used as they are")
        today["L2 hardware fault"] = (f"{legacy.name_of(legacy.mmu)}.page_fault = "
                                      f"{legacy.mmu.page_fault}")
        sketch["L2 hardware fault"] = (f"{split.name_of(split.mmu)}.page_fault = "
                                       f"{split.mmu.page_fault} (kind "
                                       f"{split.name_of(split.mmu.kind)})")
        today["L1 emulated access"] = sketch["L1 emulated access"] = "-"
    else:
        today["L1 emulated access"], sketch["L1 emulated access"] = walk, swalk
        today["L2 emulated access"] = sketch["L2 emulated access"] = "-"
        today["L2 hardware fault"] = sketch["L2 hardware fault"] = "-"
    today["L1 hardware fault"] = f"root_mmu.page_fault = {legacy.root_mmu.page_fault}"
    sketch["L1 hardware fault"] = (f"root_mmu.page_fault = {split.root_mmu.page_fault} "
                                   f"(kind {split.name_of(split.root_mmu.kind)})")
    return {"today": today, "sketch": sketch}


def _report(setup: LayoutSetup, legacy: L.KvmVcpuArch, split: S.KvmVcpuArch) -> LayoutReport:
    callbacks = {
        "root_mmu.page_fault": split.root_mmu.page_fault,
        "tdp12_mmu.page_fault": split.tdp12_mmu.page_fault,
        "root_walk.gva_to_gpa": split.root_walk.gva_to_gpa,
        "walk01.gva_to_gpa": split.walk01.gva_to_gpa,
        "walk12.gva_to_gpa": split.walk12.gva_to_gpa,
    }
    return LayoutReport(setup, None, L.pointer_table(legacy), S.pointer_table(split), callbacks)


_TD = 'style="border:1px solid #ccc;padding:2px 6px;font-family:monospace"'


def layout_html(report: LayoutReport) -> str:
    """Both diagrams side by side, with a one-line summary of each layout."""
    check_instance("report", report, LayoutReport)
    setup = report.setup
    head = f'<p class="layout-config" style="margin:0 0 4px 0"><b>{escape(setup.describe())}</b></p>'
    if report.impossible is not None:
        return (f'<div class="kvmbook-layout">{head}<p class="layout-summary" '
                f'style="color:#a31515">Not a configuration KVM allows: '
                f"{escape(report.impossible)}.</p></div>")
    t, s = report.legacy, report.split
    summary = (f"today: mmu &rarr; {t['mmu']}, walk_mmu &rarr; {t['walk_mmu']}; "
               f"sketch: mmu &rarr; {s['mmu']} (kind {s['root_mmu.kind'] if s['mmu'] == 'root_mmu' else s['tdp12_mmu.kind']}, "
               f"paging context {s['mmu->walk']}), walk &rarr; {s['walk']}")
    legacy_svg = render(report.legacy_diagram(), "kvmbook-legacy")
    split_svg = render(report.split_diagram(), "kvmbook-split")
    return (
        f'<div class="kvmbook-layout">{head}'
        f'<p class="layout-summary" style="margin:0 0 6px 0">{summary}</p>'
        '<div style="display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start">'
        f"<div><p style=\"margin:0\"><i>Today's layout</i> (refimpl.layouts.legacy)</p>{legacy_svg}</div>"
        f"<div><p style=\"margin:0\"><i>The 2021 sketch</i> (refimpl.layouts.split)</p>{split_svg}</div>"
        "</div></div>"
    )
