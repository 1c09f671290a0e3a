"""The field ledger: where every piece of today's ``struct kvm_mmu`` goes.

One :class:`LedgerRow` per field of :class:`refimpl.layouts.legacy.KvmMmu` and
per MMU pointer/instance of ``struct kvm_vcpu_arch``. Each row gives its home
in the 2021 sketch (from :data:`refimpl.layouts.split.SKETCH_HOME` for fields),
why, how Sean Christopherson classified it in the same thread (11 Nov 2021,
01:18 UTC, ``YYxvSfUPTXbclpSa@google.com``, with his correction of 01:44,
``YYx1mDJo/L79cKOH@google.com``; he used the names of the time), and where
the 2026 "chainsaw" series put it (a stored 2026 ``kvm_host.h``, the one that
defines ``struct kvm_pagewalk``).

Glossary
--------
home
    ``"struct.field"`` in the new layout, or ``"dropped"``.
guest context
    Sean's bucket for state that depends on the guest's paging mode.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterable, Sequence

from refimpl.errors import check_fields, check_instance, check_items

from refimpl.layouts.legacy import KvmMmu as LegacyKvmMmu
from refimpl.layouts.split import SKETCH_HOME, STRUCT_CLASSES, KvmArch, KvmVcpuArch
from refimpl.story.thread import sean_summary

__all__ = [
    "LedgerRow",
    "POINTERS",
    "LEDGER",
    "check_ledger",
    "sketch_home_is_valid",
    "ledger_rows",
    "ledger_markdown",
    "later_markdown",
    "LATER",
    "SHORT_STRUCT",
]

POINTERS = ("root_mmu", "guest_mmu", "nested_mmu", "mmu", "walk_mmu")
"""The MMU members of legacy ``struct kvm_vcpu_arch`` covered by the ledger:
three embedded ``struct kvm_mmu`` (``root_mmu``, ``guest_mmu``, ``nested_mmu``)
and two pointers into them (``mmu``, ``walk_mmu``)."""


@dataclass(frozen=True)
class LedgerRow:
    """One legacy field or vCPU member and its fate.

    Parameters
    ----------
    legacy : str
        ``"kvm_mmu.<field>"`` or ``"kvm_vcpu_arch.<member>"``.
    home : str
        Home in the sketch: ``"kvm_mmu_kind.x"``, ``"kvm_mmu.x"``,
        ``"kvm_paging_context.x"``, ``"kvm_arch.x"``, ``"kvm_vcpu_arch.x"``,
        or ``"dropped"``.
    reason : str
        One line: why it goes there.
    sean : str
        Sean's classification in the 2021 thread ("-" if he did not cover it).
    home_2026 : str
        Where the 2026 series put it.
    """

    legacy: str
    home: str
    reason: str
    sean: str
    home_2026: str

    def __post_init__(self) -> None:
        check_fields(self, legacy=str, home=str, reason=str, sean=str, home_2026=str)


def _f(field: str, reason: str, h26: str) -> LedgerRow:
    struct, sfield = SKETCH_HOME[field]
    return LedgerRow(f"kvm_mmu.{field}", f"{struct}.{sfield}", reason, sean_summary(field), h26)


LEDGER: tuple[LedgerRow, ...] = (
    _f("get_guest_pgd", "reads the root of the tables being walked (CR3, EPTP12, nCR3)",
       "kvm_pagewalk.get_guest_pgd"),
    _f("get_pdptr", "reads a PAE PDPTE of the tables being walked", "kvm_pagewalk.get_pdptr"),
    _f("page_fault", "entered while the vCPU runs on these roots", "kvm_mmu.page_fault"),
    _f("inject_page_fault", "delivers a fault found by a software walk", "kvm_pagewalk.inject_page_fault"),
    _f("gva_to_gpa", "the software walker itself", "kvm_pagewalk.gva_to_gpa"),
    _f("sync_spte", "NULL for TDP, so only the per-vCPU shadow kind has one; it needs that "
       "vCPU to read and judge the gpte (KVM 2026: in kvm_mmu)",
       "kvm_mmu.sync_spte"),
    _f("root", "the roots differ per vCPU: normal, SMM, L2 without TDP",
       "kvm_mmu.root"),
    _f("cpu_role", "the format of the guest tables being walked",
       "kvm_pagewalk.cpu_role"),
    _f("root_role", "the format of the roots; differs per vCPU in smm/guest_mode",
       "kvm_mmu.root_role"),
    _f("pkru_mask", "derived from the walked format (CR4.PKE, CR0.WP)", "kvm_page_format.pkru_mask (kvm_pagewalk.fmt)"),
    _f("prev_roots", "cache of earlier roots of this vCPU",
       "kvm_mmu.prev_roots"),
    _f("permissions", "derived from the walked format (WP, SMEP, SMAP, NX)", "kvm_page_format.permissions (u16[16], kvm_pagewalk.fmt)"),
    _f("pae_root", "special root page of this vCPU's roots", "kvm_mmu.pae_root"),
    _f("pml4_root", "special root page of this vCPU's roots", "kvm_mmu.pml4_root"),
    _f("pml5_root", "special root page of this vCPU's roots", "kvm_mmu.pml5_root"),
    _f("shadow_zero_check", "what make_spte checks; from the guest only CPUID (GBPAGES, "
       "MAXPHYADDR via the TDP level) and the shadow root level",
       "kvm_page_format rsvd bits (kvm_mmu.fmt)"),
    _f("guest_rsvd_check", "derived from the walked format and guest MAXPHYADDR", "kvm_page_format rsvd bits (kvm_pagewalk.fmt)"),
    _f("pdptrs", "PAE PDPTE registers of the guest being walked", "kvm_vcpu_arch.pdptrs"),
    LedgerRow("kvm_vcpu_arch.root_mmu", "kvm_vcpu_arch.root_mmu",
              "split into root_mmu + root_walk; its kind is kvm->direct_mmu or shadow_mmu",
              "-", "kvm_vcpu_arch.root_mmu (+ gva_walk)"),
    LedgerRow("kvm_vcpu_arch.guest_mmu", "kvm_vcpu_arch.tdp12_mmu",
              "renamed; split into tdp12_mmu + walk01; its kind is shadow_mmu",
              "-", "kvm_vcpu_arch.guest_mmu (+ ngpa_walk)"),
    LedgerRow("kvm_vcpu_arch.nested_mmu", "kvm_vcpu_arch.walk12",
              "only its paging-context half was ever used", "-",
              "deleted (gva_walk is the one gva->gpa walker)"),
    LedgerRow("kvm_vcpu_arch.mmu", "kvm_vcpu_arch.mmu",
              "still the fault-handling MMU: &root_mmu or &tdp12_mmu", "-",
              "kvm_vcpu_arch.mmu"),
    LedgerRow("kvm_vcpu_arch.walk_mmu", "kvm_vcpu_arch.walk",
              "now points to a paging context: &root_walk or &walk12", "-",
              "deleted (always gva_walk)"),
)
"""The ledger: 18 ``kvm_mmu`` fields, then the 5 vCPU members."""


def check_ledger(rows: Iterable[LedgerRow]) -> None:
    """Check that ``rows`` cover every legacy field and pointer exactly once.

    Raises
    ------
    ValueError
        Naming the missing, duplicated or unknown entries.
    """
    expected = [f"kvm_mmu.{f.name}" for f in fields(LegacyKvmMmu)]
    expected += [f"kvm_vcpu_arch.{p}" for p in POINTERS]
    seen: dict[str, int] = {}
    for r in rows:
        if not isinstance(r, LedgerRow):
            raise TypeError(f"ledger rows must be LedgerRow, got {r!r}")
        seen[r.legacy] = seen.get(r.legacy, 0) + 1
    missing = [e for e in expected if e not in seen]
    dup = [k for k, n in seen.items() if n > 1]
    unknown = [k for k in seen if k not in expected]
    problems = []
    if missing:
        problems.append(f"missing {missing}")
    if dup:
        problems.append(f"listed more than once {dup}")
    if unknown:
        problems.append(f"not legacy fields {unknown}")
    if problems:
        raise ValueError("ledger: " + "; ".join(problems))


def sketch_home_is_valid(home: str) -> bool:
    """Whether ``home`` names a real field of the sketch's structures (or ``"dropped"``).

    Raises
    ------
    TypeError
        ``home`` not a str.
    """
    check_instance("home", home, str)
    if home == "dropped":
        return True
    struct, _, name = home.partition(".")
    classes = dict(STRUCT_CLASSES, kvm_arch=KvmArch, kvm_vcpu_arch=KvmVcpuArch)
    cls = classes.get(struct)
    return cls is not None and name in {f.name for f in fields(cls)}


def ledger_rows(rows: Sequence[LedgerRow] = LEDGER) -> list[tuple[str, ...]]:
    """The ledger as plain tuples ``(legacy, home, reason, sean, home_2026)``.

    Raises
    ------
    TypeError
        ``rows`` not an iterable of :class:`LedgerRow`.
    """
    rows = check_items("rows", rows, LedgerRow)
    return [(r.legacy, r.home, r.reason, r.sean, r.home_2026) for r in rows]


#: Short names of the sketch's structures in :func:`ledger_markdown`'s home column.
SHORT_STRUCT: dict[str, str] = {
    "kvm_paging_context": "ctx",
    "kvm_mmu_kind": "kind",
    "kvm_mmu": "mmu",
    "kvm_vcpu_arch": "vcpu",
    "kvm_arch": "kvm",
}


def _short_home(home: str) -> str:
    struct, _, name = home.partition(".")
    return f"{SHORT_STRUCT.get(struct, struct)}.{name}" if name else home


def _today(legacy: str) -> str:
    struct, _, name = legacy.partition(".")
    return f"`{name}`" + (" (vCPU)" if struct == "kvm_vcpu_arch" else "")


def ledger_markdown(rows: Sequence[LedgerRow] = LEDGER) -> str:
    """The ledger as a Markdown table that fits a narrow page.

    The first column drops the ``kvm_mmu.`` / ``kvm_vcpu_arch.`` prefix (a
    vCPU member is marked "(vCPU)"); the home column abbreviates the sketch's
    structures as :data:`SHORT_STRUCT` says (the chapter gives the legend).

    Raises
    ------
    TypeError
        ``rows`` not an iterable of :class:`LedgerRow`.
    """
    rows = check_items("rows", rows, LedgerRow)
    lines = ["| today | home in the sketch | why | Sean, Nov 2021 |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {_today(r.legacy)} | `{_short_home(r.home)}` | {r.reason} | {r.sean} |")
    return "\n".join(lines)


LATER: tuple[tuple[str, str, str, str], ...] = (
    ("2022", "MMU role refactoring (Bonzini; v1 `20220204115718.14934-1-pbonzini@redhat.com`, "
     "v2 `20220221162243.683208-1-pbonzini@redhat.com`, v3 `20220414074000.31438-1-pbonzini@redhat.com`)",
     "`mmu_role` split into `cpu_role` and `root_role`; `direct_map`, "
     "`shadow_root_level`, `root_level`, `ept_ad` removed",
     "the sketch's split of guest format (paging context) from table format (MMU)"),
    ("2023", "CR0.WP without MMU reset (Mathias Krause, v4 March 2023, with patches by "
     "Christopherson and Bonzini)",
     "with TDP a CR0.WP toggle no longer unloads the roots; "
     "`__kvm_mmu_refresh_passthrough_bits` recomputes the guest paging metadata",
     "the mail's wish to drop `kvm_mmu_reset_context` on CR0.WP writes"),
    ("2026", "\"apply chainsaw to struct kvm_mmu\" (Bonzini, v2 2026-06-24)",
     "`kvm_pagewalk` + `kvm_page_format`; `nested_mmu` and `walk_mmu` deleted; "
     "`pdptrs` to the vCPU; no per-VM `direct_mmu`",
     "`kvm_paging_context` realised; step 1 of the mail (kill `nested_mmu`/`walk_mmu`) done"),
)
"""What KVM later merged: (year, series, change, relation to the sketch)."""


def later_markdown() -> str:
    """:data:`LATER` plus the 2026 home of each legacy field, as Markdown.

    The sketch column abbreviates structures as :data:`SHORT_STRUCT` says.
    """
    lines = ["| year | series | what changed | relation to the sketch |", "|---|---|---|---|"]
    lines += [f"| {y} | {s} | {c} | {r} |" for y, s, c, r in LATER]
    lines += ["", "| today | 2021 sketch | 2026 |", "|---|---|---|"]
    lines += [f"| {_today(r.legacy)} | `{_short_home(r.home)}` | {r.home_2026} |" for r in LEDGER]
    return "\n".join(lines)
