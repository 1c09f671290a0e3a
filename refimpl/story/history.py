"""What KVM merged, set beside the 2021 sketch, as data.

Paolo Bonzini's sketch of 11 November 2021
(``2c924ef5-2ff9-c9a8-f28c-8bedaf8b1af6@redhat.com``, modelled by
:mod:`refimpl.layouts.split`) was never merged as written. Its ideas reached KVM
in three steps: the 2022 split of the MMU role into ``cpu_role`` and
``root_role``, the 2023 change that stopped CR0.WP toggles from resetting the
MMU under TDP, and the 2026 "chainsaw" series that cut ``struct kvm_mmu`` into
``kvm_page_format``, ``kvm_pagewalk`` and ``kvm_mmu``. This module records,
for every element of the sketch, what KVM has instead, a verdict, the reason,
and the source, so that the closing chapter can print the comparison and check
it against the rest of the package.

Glossary
--------
element
    One thing the sketch proposes: a struct, an instance, a pointer, where a
    field lives, or a rule such as "no reset on CR0.WP writes".
verdict
    :class:`Verdict`: followed (KVM did it, perhaps under another name),
    changed (the idea landed in another shape), dropped (not done; the need
    was met another way), not yet (not done and still open).
classic tree, newest tree
    a tree with the 18-member ``struct kvm_mmu`` of :mod:`refimpl.layouts.legacy`
    (checked against torvalds/linux at 004a0aa56ede) and the 2026 tree with the chainsaw series,
    whose ``arch/x86/include/asm/kvm_host.h`` :data:`NEWEST_STRUCTS` transcribes.
2026 home
    Where a field of the classic ``struct kvm_mmu`` lives in the newest tree,
    written as a path: ``kvm_pagewalk.fmt.permissions`` is the
    ``permissions`` member of the ``kvm_page_format`` embedded as ``fmt`` in
    ``struct kvm_pagewalk``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum
from typing import Iterable, Mapping, Optional, Sequence

from refimpl.errors import check_choice, check_fields, check_instance, check_items, check_range

__all__ = [
    "Verdict",
    "Change",
    "CHANGES",
    "Element",
    "MAIL_RULES",
    "ELEMENTS",
    "NEWEST_STRUCTS",
    "EMBEDDED",
    "CLASSIC_TO_2026",
    "VCPU_TO_2026",
    "NEW_IN_2026",
    "CORRESPONDS",
    "DECISIONS",
    "resolve_2026",
    "structs_on_path",
    "field_verdict",
    "field_rows",
    "sketch_ids",
    "check_history",
    "comparison_markdown",
    "fields_markdown",
    "changes_markdown",
    "decisions_markdown",
    "verdict_counts",
]


class Verdict(Enum):
    """What KVM did with one element of the sketch."""

    FOLLOWED = "followed"
    CHANGED = "changed"
    DROPPED = "dropped"
    NOT_YET = "not yet"


@dataclass(frozen=True)
class Change:
    """One change KVM merged after the thread.

    Parameters
    ----------
    key : str
        Short name used by :class:`Element` (``"roles-2022"`` ...).
    year : int
        Year it was merged into a KVM tree.
    title : str
        The series or commit title.
    who : str
        Author(s).
    where : str
        Message-ID of the posting and the commits that carry it.
    status : str
        Which tree it reached.
    """

    key: str
    year: int
    title: str
    who: str
    where: str
    status: str

    def __post_init__(self) -> None:
        check_fields(self, key=str, year=int, title=str, who=str, where=str, status=str)
        check_range("Change.year", self.year, 1991, 2100)


#: The three steps by which the sketch's ideas reached KVM, plus the earlier
#: work on SPTE helpers that take a VM instead of a vCPU.
CHANGES: tuple[Change, ...] = (
    Change("tdp-mmu", 2020, "The TDP MMU: per-VM roots on kvm->arch.tdp_mmu_roots, "
           "shared by every vCPU whose root role matches", "Ben Gardon",
           "arch/x86/kvm/mmu/tdp_mmu.c (kvm_tdp_mmu_alloc_root in the classic tree)",
           "mainline before the thread (v5.10, unconfirmed here)"),
    Change("split-spte", 2022, "Eager page splitting: make_huge_page_split_spte() takes a "
           "struct kvm, not a vCPU", "David Matlack",
           "a3fe5dbda0a4 (split huge pages when dirty logging is enabled); "
           "arch/x86/kvm/mmu/spte.c",
           "mainline since 2022; renamed make_small_spte(), next to make_huge_spte() "
           "for in-place recovery (year unconfirmed here)"),
    Change("roles-2022", 2022, "KVM: MMU: MMU role refactoring", "Paolo Bonzini",
           "20220204115718.14934-1-pbonzini@redhat.com (v1), "
           "20220221162243.683208-1-pbonzini@redhat.com (v2), "
           "20220414074000.31438-1-pbonzini@redhat.com (v3); e5ed0fb01004 split "
           "cpu_role from mmu_role, 7a458f0e1ba1 mmu_role renamed root_role, "
           "ec283cb1dcb9 ept_ad removed, 347a0d0ded16 direct_map, a972e29c1d6c "
           "shadow_root_level, 4d25502aa12e root_level",
           "kvm.git, 2022 (mainline v5.19, unconfirmed here)"),
    Change("cr0wp-2023", 2023, "KVM: x86: Do not unload MMU roots when only toggling "
           "CR0.WP with TDP enabled", "Mathias Krause, Sean Christopherson",
           "20230322013731.102955-1-minipli@grsecurity.net (v4); 01b31714bd90, plus "
           "fb509f76acc8 (CR0.WP guest-owned on VMX) and cf9f4c0eb169 "
           "(kvm_mmu_refresh_passthrough_bits())",
           "kvm-x86 misc pull for 6.4 (all three commits): mainline v6.4"),
    Change("chainsaw-2026", 2026, "KVM: apply chainsaw to struct kvm_mmu (v2)",
           "Paolo Bonzini",
           "20260624213102.71082-1-pbonzini@redhat.com; ac889bdd23df introduce "
           "struct kvm_pagewalk, d42e93ee58d3 walk_mmu becomes a kvm_pagewalk, "
           "0a59a8b8a248 kvm_pagewalk pulled out of kvm_mmu, 148fe965df16 "
           "root_gva_walk and ngva_walk unified, 72f734a435b2 page format pulled "
           "to a new struct, 216b1a47e80c SPTEs tested with kvm_page_format",
           "kvm.git next (merge a204badd8432, 25 Jun 2026); mainline not verified"),
)


@dataclass(frozen=True)
class Element:
    """One element of the sketch and what KVM did with it.

    Parameters
    ----------
    sketch : str
        The element as the mail names it.
    covers : tuple of str
        The identifiers of :mod:`refimpl.layouts.split` it is about: a struct
        name (``"kvm_mmu_kind"``), an instance or pointer
        (``"kvm_vcpu_arch.walk12"``, ``"kvm_arch.direct_mmu"``), a field
        (``"kvm_mmu_kind.shadow_zero_check"``), or a rule of the mail
        (``"mail:..."``, see :data:`MAIL_RULES`).
    said : str
        What the mail says about it.
    merged : str
        What KVM has instead (the newest tree unless said).
    kvm : tuple of str
        The names in the newest tree that hold it: a struct of
        :data:`NEWEST_STRUCTS`, a path ``"struct.field[.field]"``, or
        ``"fn:<C function>"``. Empty when nothing does.
    verdict : Verdict
        Followed, changed, dropped or not yet.
    why : str
        The reason, in one or two sentences.
    change : str
        Key of the :class:`Change` that did it (or ``"-"``).
    """

    sketch: str
    covers: tuple[str, ...]
    said: str
    merged: str
    kvm: tuple[str, ...]
    verdict: Verdict
    why: str
    change: str

    def __post_init__(self) -> None:
        check_fields(self, sketch=str, covers=tuple, said=str, merged=str, kvm=tuple,
                     verdict=Verdict, why=str, change=str)


#: Rules of the mail that are not a struct or an instance.
MAIL_RULES: dict[str, str] = {
    "mail:step1": "first step: kill nested_mmu and walk_mmu, replacing them by "
                  "&vcpu->walk12 and vcpu->walk",
    "mail:spte-helpers-take-kind": "an spte.c function that needs no run-time state "
                                   "takes a struct kvm_mmu_kind* and no vCPU",
    "mail:tdp-mmu-takes-kvm": "the TDP MMU knows its kind is &kvm->direct_mmu, so it "
                              "can take a struct kvm",
    "mail:no-reset-on-cr0wp": "remove kvm_mmu_reset_context from CR0.WP writes",
    "mail:kvm_mmu-has-role": "struct kvm_mmu holds what the vCPU needs while it runs, "
                             "including the role",
}

F, C, D, N = Verdict.FOLLOWED, Verdict.CHANGED, Verdict.DROPPED, Verdict.NOT_YET

#: The side-by-side table: every element of the sketch, in the mail's order.
ELEMENTS: tuple[Element, ...] = (
    Element(
        "struct kvm_mmu_kind", ("kvm_mmu_kind", "kvm_mmu.kind"),
        "function pointers and state needed to operate on page tables; each kvm_mmu "
        "points to one",
        "struct kvm_page_format: reserved-bit masks, permission bitmap and PKU mask, "
        "i.e. how to judge an existing entry; no function pointers. Embedded by value "
        "as fmt in both kvm_mmu (for SPTEs) and kvm_pagewalk (for guest PTEs)",
        ("kvm_page_format", "kvm_mmu.fmt"), C,
        "What turned out to be worth separating was the format of an entry, and the "
        "same kind of format serves guest entries and SPTEs; the callbacks "
        "(sync_spte, page_fault) stayed with the MMU that owns the roots.",
        "chainsaw-2026"),
    Element(
        "struct kvm_mmu (run-time)", ("kvm_mmu", "mail:kvm_mmu-has-role"),
        "function pointers and state needed while the vCPU runs, including the role",
        "struct kvm_mmu keeps page_fault, sync_spte, root, root_role, prev_roots, the "
        "special roots, and gains w (its walker) and fmt (its SPTE format)",
        ("kvm_mmu",), F,
        "The guest-facing half moved out (cpu_role in 2022 as a separate role, the "
        "walker in 2026); what is left is exactly the run-time part.",
        "chainsaw-2026"),
    Element(
        "struct kvm_paging_context", ("kvm_paging_context",),
        "what emulation needs; shadow paging needs it, EPT/NPT faults do not",
        "struct kvm_pagewalk: get_guest_pgd, get_pdptr, inject_page_fault, gva_to_gpa, "
        "cpu_role, fmt",
        ("kvm_pagewalk",), F,
        "Same content under another name; pdptrs moved to the vCPU instead, since "
        "they are a register of the running guest, not of a format.",
        "chainsaw-2026"),
    Element(
        "struct kvm_mmu_kind direct_mmu in struct kvm_arch", ("kvm_arch.direct_mmu",),
        "one kind per VM for TDP (legacy EPT/NPT or the TDP MMU)",
        "no per-VM MMU structure; SPTE masks are module-wide globals in spte.c and TDP "
        "roots are shared per VM by role on kvm->arch.tdp_mmu_roots",
        (), D,
        "What a per-VM kind would hold was already per host (the shadow_*_mask "
        "globals) or per VM by other means (the root list). No message rejecting it "
        "was found: it was not needed once the rest was done.",
        "tdp-mmu"),
    Element(
        "struct kvm_mmu_kind shadow_mmu in struct kvm_vcpu_arch",
        ("kvm_vcpu_arch.shadow_mmu",),
        "one kind per vCPU for shadow tables, shared by root_mmu and tdp12_mmu",
        "no shared per-vCPU kind: root_mmu and guest_mmu each embed their own fmt",
        ("kvm_mmu.fmt",), D,
        "A kvm_page_format is 128 bytes; a copy in each MMU is simpler than a "
        "shared structure with an owner, and two copies per vCPU cost 256 bytes.",
        "chainsaw-2026"),
    Element(
        "struct kvm_mmu root_mmu /* either TDP or shadow */", ("kvm_vcpu_arch.root_mmu",),
        "the MMU of whatever guest runs without nested TDP",
        "root_mmu, \"Non-nested MMU for L1\", paired with gva_walk through root_mmu.w",
        ("kvm_vcpu_arch.root_mmu",), F,
        "Unchanged in role; only its walker half left it.", "chainsaw-2026"),
    Element(
        "struct kvm_mmu tdp12_mmu /* always shadow */", ("kvm_vcpu_arch.tdp12_mmu",),
        "KVM's shadow of L1's EPT12/NPT12",
        "guest_mmu, \"L1 TDP when running nested\", paired with ngpa_walk",
        ("kvm_vcpu_arch.guest_mmu",), F,
        "The same structure under its old name: renaming guest_mmu would have touched "
        "the vendor nested code for no functional gain.",
        "chainsaw-2026"),
    Element(
        "struct kvm_mmu *mmu", ("kvm_vcpu_arch.mmu",),
        "the mail's comment says &kvm->direct_mmu or &vcpu->shadow_mmu",
        "mmu points to root_mmu or guest_mmu, as the C type says (decision (a))",
        ("kvm_vcpu_arch.mmu",), F,
        "Roots and root roles differ between vCPUs sharing a kind (SMM, L2 without "
        "TDP), so the pointer must reach a per-vCPU kvm_mmu.",
        "-"),
    Element(
        "kvm_mmu's pointer to its paging context (model decision (b))", ("kvm_mmu.walk",),
        "not spelled out in the mail; the model records which context each MMU's "
        "roots shadow",
        "kvm_mmu.w: root_mmu.w = &gva_walk, guest_mmu.w = &ngpa_walk (kvm_mmu_create)",
        ("kvm_mmu.w",), F,
        "A shadow MMU must walk the tables it shadows; KVM made the pairing a field.",
        "chainsaw-2026"),
    Element(
        "struct kvm_paging_context root_walk /* maybe unified with walk01? */",
        ("kvm_vcpu_arch.root_walk",),
        "walks the tables of the guest on root_mmu",
        "gva_walk, re-initialised from the current CR0/CR4/EFER on every kvm_init_mmu",
        ("kvm_vcpu_arch.gva_walk",), C,
        "Unified, but with walk12 rather than walk01: root_walk and walk12 are never "
        "live together, walk01 is (decision (b)).",
        "chainsaw-2026"),
    Element(
        "struct kvm_paging_context walk01", ("kvm_vcpu_arch.walk01",),
        "walks L1's EPT12/NPT12 for tdp12_mmu (L2 GPA to L1 GPA)",
        "ngpa_walk, guest_mmu's walker", ("kvm_vcpu_arch.ngpa_walk",), F,
        "A separate walker with its own format (EPT or NPT) and lifetime, as the "
        "sketch has it.", "chainsaw-2026"),
    Element(
        "struct kvm_paging_context walk12", ("kvm_vcpu_arch.walk12",),
        "walks L2's own page tables (replaces nested_mmu)",
        "gva_walk again: re-initialised with L2's registers while in guest mode",
        ("kvm_vcpu_arch.gva_walk",), C,
        "Exactly one of root_walk and walk12 is in use at any time, so one structure "
        "re-initialised on nested entry and exit does both jobs.", "chainsaw-2026"),
    Element(
        "struct kvm_paging_context *walk", ("kvm_vcpu_arch.walk",),
        "either &vcpu->root_walk or &vcpu->walk12",
        "no pointer: every gva walk uses gva_walk", ("kvm_vcpu_arch.gva_walk",), C,
        "With root_walk and walk12 one structure, there is nothing left to choose.",
        "chainsaw-2026"),
    Element(
        "kill nested_mmu and walk_mmu (the first step)", ("mail:step1",),
        "replace them by &vcpu->walk12 and vcpu->walk",
        "both deleted: walk_mmu became a kvm_pagewalk, nested_mmu's walker became "
        "ngva_walk, then merged into gva_walk",
        ("kvm_vcpu_arch.gva_walk",), F,
        "The half-useless nested_mmu (a full kvm_mmu used only to walk) was the "
        "mail's first target and the series' first result.", "chainsaw-2026"),
    Element(
        "shadow_zero_check in the kind (per VM for TDP)",
        ("kvm_mmu_kind.shadow_zero_check",),
        "per VM, \"just like 32-bit shadow page tables are always built for "
        "EFER.NXE=CR4.PAE=1\"",
        "the reserved-bit half of kvm_mmu.fmt, one per MMU (so per vCPU); SPTEs are "
        "also checked against fmt's permission bitmap",
        ("kvm_mmu.fmt.rsvd_bits_mask", "kvm_mmu.fmt.bad_mt_xwr"), C,
        "It became a format like any other, owned by the MMU whose root level it "
        "depends on; sharing it per VM would need the direct kind that was not built.",
        "chainsaw-2026"),
    Element(
        "sync_spte in the kind", ("kvm_mmu_kind.sync_spte",),
        "the unsync callback operates on page tables, so it belongs to the kind",
        "kvm_mmu.sync_spte", ("kvm_mmu.sync_spte",), C,
        "It is still reached through a vCPU's MMU (it takes a vCPU), so it stayed "
        "with the run-time structure.", "chainsaw-2026"),
    Element(
        "roots and prev_roots in kvm_mmu",
        ("kvm_mmu.root", "kvm_mmu.prev_roots", "kvm_mmu.pae_root", "kvm_mmu.pml4_root",
         "kvm_mmu.pml5_root"),
        "run-time state of one vCPU",
        "kvm_mmu.root, prev_roots, pae_root, pml4_root, pml5_root; plus mirror_root_hpa "
        "for TDX",
        ("kvm_mmu.root", "kvm_mmu.prev_roots", "kvm_mmu.pae_root", "kvm_mmu.pml4_root",
         "kvm_mmu.pml5_root"), F,
        "Sean's point stands: a VM may need normal, SMM and L2 roots at once, and "
        "prev_roots could go only if TDP roots were tracked per VM.", "-"),
    Element(
        "the role in kvm_mmu, the guest's mode in the paging context",
        ("kvm_mmu.root_role", "kvm_paging_context.cpu_role"),
        "kvm_mmu holds the role of the tables; the paging context holds the guest mode",
        "2022: mmu_role split into cpu_role and root_role; 2026: cpu_role moved to "
        "kvm_pagewalk", ("kvm_mmu.root_role", "kvm_pagewalk.cpu_role"), F,
        "Mixing the guest's format with the shadow format made the TDP MMU slower "
        "than needed for grsecurity's CR0.WP toggling; the split came first.",
        "roles-2022"),
    Element(
        "spte.c helpers take a kind, not a vCPU", ("mail:spte-helpers-take-kind",),
        "make_spte() and friends need no vCPU when they need no run-time state",
        "helpers that build SPTEs outside a fault take a struct kvm and the global "
        "masks (make_small_spte, make_huge_spte); make_spte() still takes a vCPU "
        "in the classic tree",
        ("fn:make_small_spte", "fn:make_huge_spte"), C,
        "Ben Gardon's goal (rebuild huge pages without a vCPU) was met by helpers "
        "that take the VM; there was no kind to pass.", "split-spte"),
    Element(
        "the TDP MMU takes a struct kvm", ("mail:tdp-mmu-takes-kvm",),
        "the TDP MMU knows its kind is &kvm->direct_mmu",
        "tdp_mmu.c operations outside faults (zap, write-protect, split, recover) "
        "take struct kvm; roots live on kvm->arch.tdp_mmu_roots",
        ("fn:kvm_tdp_mmu_wrprot_slot", "fn:kvm_tdp_mmu_try_split_huge_pages"), F,
        "Followed without the kind: the format it would have carried is global.",
        "tdp-mmu"),
    Element(
        "no kvm_mmu_reset_context on CR0.WP writes", ("mail:no-reset-on-cr0wp",),
        "Paolo wanted to remove it while playing with nested_mmu",
        "with TDP, a WP-only toggle re-runs kvm_init_mmu and keeps every root; "
        "permission_fault refreshes a stale WP first. Shadow paging still resets",
        ("fn:kvm_post_set_cr0", "fn:kvm_mmu_refresh_passthrough_bits"), F,
        "Done in 2023, independently of the split, because grsecurity's KERNEXEC "
        "toggles WP constantly (9.45 s to 5.63 s in the posted benchmark). Under "
        "shadow paging WP is part of the page role, so the reset stays.",
        "cr0wp-2023"),
)

del F, C, D, N

#: Struct members of the newest tree (``kvm_host.h`` of the 2026 tree). For
#: ``kvm_vcpu_arch`` only the MMU members are listed.
NEWEST_STRUCTS: dict[str, tuple[str, ...]] = {
    "kvm_page_format": ("rsvd_bits_mask", "bad_mt_xwr", "pkru_mask", "permissions"),
    "kvm_pagewalk": ("get_guest_pgd", "get_pdptr", "inject_page_fault", "gva_to_gpa",
                     "cpu_role", "fmt"),
    "kvm_mmu": ("page_fault", "sync_spte", "w", "root", "mirror_root_hpa", "root_role",
                "prev_roots", "pae_root", "pml4_root", "pml5_root", "fmt"),
    "kvm_vcpu_arch": ("mmu", "root_mmu", "guest_mmu", "ngpa_walk", "gva_walk", "pdptrs"),
}

#: Members of :data:`NEWEST_STRUCTS` that embed another struct by value.
EMBEDDED: dict[tuple[str, str], str] = {
    ("kvm_pagewalk", "fmt"): "kvm_page_format",
    ("kvm_mmu", "fmt"): "kvm_page_format",
    ("kvm_vcpu_arch", "root_mmu"): "kvm_mmu",
    ("kvm_vcpu_arch", "guest_mmu"): "kvm_mmu",
    ("kvm_vcpu_arch", "ngpa_walk"): "kvm_pagewalk",
    ("kvm_vcpu_arch", "gva_walk"): "kvm_pagewalk",
}

#: Each field of the classic ``struct kvm_mmu`` (:class:`refimpl.layouts.legacy.KvmMmu`)
#: and its 2026 home(s), as seen from ``root_mmu``.
CLASSIC_TO_2026: dict[str, tuple[str, ...]] = {
    "get_guest_pgd": ("kvm_pagewalk.get_guest_pgd",),
    "get_pdptr": ("kvm_pagewalk.get_pdptr",),
    "page_fault": ("kvm_mmu.page_fault",),
    "inject_page_fault": ("kvm_pagewalk.inject_page_fault",),
    "gva_to_gpa": ("kvm_pagewalk.gva_to_gpa",),
    "sync_spte": ("kvm_mmu.sync_spte",),
    "root": ("kvm_mmu.root",),
    "cpu_role": ("kvm_pagewalk.cpu_role",),
    "root_role": ("kvm_mmu.root_role",),
    "pkru_mask": ("kvm_pagewalk.fmt.pkru_mask",),
    "prev_roots": ("kvm_mmu.prev_roots",),
    "permissions": ("kvm_pagewalk.fmt.permissions",),
    "pae_root": ("kvm_mmu.pae_root",),
    "pml4_root": ("kvm_mmu.pml4_root",),
    "pml5_root": ("kvm_mmu.pml5_root",),
    "shadow_zero_check": ("kvm_mmu.fmt.rsvd_bits_mask", "kvm_mmu.fmt.bad_mt_xwr"),
    "guest_rsvd_check": ("kvm_pagewalk.fmt.rsvd_bits_mask", "kvm_pagewalk.fmt.bad_mt_xwr"),
    "pdptrs": ("kvm_vcpu_arch.pdptrs",),
}

#: The MMU members of the classic vCPU and their 2026 homes (empty: deleted).
VCPU_TO_2026: dict[str, tuple[str, ...]] = {
    "root_mmu": ("kvm_vcpu_arch.root_mmu", "kvm_vcpu_arch.gva_walk"),
    "guest_mmu": ("kvm_vcpu_arch.guest_mmu", "kvm_vcpu_arch.ngpa_walk"),
    "nested_mmu": (),
    "mmu": ("kvm_vcpu_arch.mmu",),
    "walk_mmu": (),
}

#: Members of the newest structs that hold no classic field, and why they exist.
NEW_IN_2026: dict[str, str] = {
    "kvm_mmu.w": "the MMU's walker: the pairing the sketch left implicit",
    "kvm_mmu.mirror_root_hpa": "TDX: the root of the mirror tables KVM keeps for a "
                               "TD's private memory (not related to the sketch)",
}

#: Sketch struct -> the newest structs that realise it, used to judge fields.
CORRESPONDS: dict[str, frozenset[str]] = {
    "kvm_mmu_kind": frozenset({"kvm_page_format"}),
    "kvm_mmu": frozenset({"kvm_mmu"}),
    "kvm_paging_context": frozenset({"kvm_pagewalk"}),
}

#: The model's decisions on the mail's four open points (chapter "The 2021
#: sketch") and what KVM did: (label, decision, KVM, agrees).
DECISIONS: tuple[tuple[str, str, str, bool], ...] = (
    ("(a)", "*mmu points to a kvm_mmu (root_mmu or tdp12_mmu)",
     "vcpu->arch.mmu is &root_mmu or &guest_mmu", True),
    ("(b)", "root_walk and walk01 stay apart; root_walk's twin is walk12",
     "ngpa_walk apart; gva_walk does root_walk's and walk12's jobs", True),
    ("(c)", "kvm_mmu_state is the sketch's kvm_mmu", "no such struct in any tree", True),
    ("(d)", "shadow_zero_check can be per VM", "kept per MMU, as kvm_mmu.fmt", False),
)


# ---------------------------------------------------------------------------
# Resolution and checks
# ---------------------------------------------------------------------------


def resolve_2026(path: str,
                 structs: Mapping[str, Sequence[str]] = NEWEST_STRUCTS) -> tuple[str, ...]:
    """The structs a 2026 path passes through, checking every step exists.

    Parameters
    ----------
    path : str
        ``"struct"`` or ``"struct.member[.member]"``, e.g.
        ``"kvm_mmu.fmt.rsvd_bits_mask"``.
    structs : mapping, optional
        Struct name -> members (default :data:`NEWEST_STRUCTS`).

    Returns
    -------
    tuple of str
        The struct names visited, e.g. ``("kvm_mmu", "kvm_page_format")``.

    Raises
    ------
    ValueError
        If a struct or member does not exist, or a member that is not an
        embedded struct is followed by another name.
    """
    if not isinstance(path, str) or not path:
        raise ValueError(f"path must be a non-empty string, got {path!r}")
    _check_structs("structs", structs)
    head, *rest = path.split(".")
    if head not in structs:
        raise ValueError(f"{path!r}: no struct {head!r} in the newest tree")
    visited = [head]
    cur = head
    for i, member in enumerate(rest):
        if member not in structs[cur]:
            raise ValueError(f"{path!r}: struct {cur} has no member {member!r}")
        inner = EMBEDDED.get((cur, member))
        if i + 1 < len(rest):
            if inner is None:
                raise ValueError(f"{path!r}: {cur}.{member} is not an embedded struct")
            visited.append(inner)
            cur = inner
        elif inner is not None:
            visited.append(inner)
    return tuple(visited)


def _check_structs(name: str, structs: object) -> None:
    # A mapping of names to iterables of member names.
    check_instance(name, structs, Mapping)
    for k, v in structs.items():
        check_items(f"{name}[{k!r}]", v, str)


def _check_homes(name: str, homes: object) -> None:
    # A mapping of field names to iterables of 2026 paths.
    check_instance(name, homes, Mapping)
    for k, v in homes.items():
        check_items(f"{name}[{k!r}]", v, str)


def _check_elements(elements: object) -> tuple:
    if isinstance(elements, (str, bytes)) or not hasattr(elements, "__iter__"):
        raise TypeError(f"elements must be Element, got {type(elements).__name__}")
    elements = tuple(elements)
    for e in elements:
        if not isinstance(e, Element):
            raise TypeError(f"elements must be Element, got {e!r}")
    return elements


def structs_on_path(homes: Iterable[str]) -> frozenset[str]:
    """Every struct that any of ``homes`` passes through.

    Raises
    ------
    TypeError
        ``homes`` is not an iterable of strings.
    ValueError
        A path does not resolve (:func:`resolve_2026`).
    """
    homes = check_items("homes", homes, str)
    out: set[str] = set()
    for h in homes:
        out.update(resolve_2026(h))
    return frozenset(out)


def field_verdict(sketch_struct: str, homes: Sequence[str]) -> Verdict:
    """Did a field land where the sketch put it?

    FOLLOWED if some 2026 home passes through a struct that realises
    ``sketch_struct`` (:data:`CORRESPONDS`), CHANGED otherwise, DROPPED if
    there is no home.

    Raises
    ------
    TypeError, ValueError
        ``sketch_struct`` not one of :data:`CORRESPONDS`, or ``homes`` not
        an iterable of resolvable paths.
    """
    if isinstance(sketch_struct, str) and sketch_struct not in CORRESPONDS:
        raise ValueError(f"sketch_struct must be one of {sorted(CORRESPONDS)}, "
                         f"got {sketch_struct!r}")
    check_choice("sketch_struct", sketch_struct, sorted(CORRESPONDS))
    homes = check_items("homes", homes, str)
    if not homes:
        return Verdict.DROPPED
    return Verdict.FOLLOWED if CORRESPONDS[sketch_struct] & structs_on_path(homes) \
        else Verdict.CHANGED


def field_rows(sketch_home: Optional[Mapping[str, tuple[str, str]]] = None,
               to_2026: Mapping[str, tuple[str, ...]] = CLASSIC_TO_2026
               ) -> list[tuple[str, str, tuple[str, ...], Verdict]]:
    """Per classic field: (field, sketch home, 2026 homes, verdict).

    ``sketch_home`` defaults to :data:`refimpl.layouts.split.SKETCH_HOME`.

    Raises
    ------
    TypeError
        ``sketch_home`` is not a mapping of names to ``(struct, field)``
        string pairs, or ``to_2026`` not a mapping of names to paths.
    ValueError
        A field of ``sketch_home`` has no entry in ``to_2026``, or an
        entry does not resolve.
    """
    if sketch_home is None:
        from refimpl.layouts.split import SKETCH_HOME as sketch_home
    check_instance("sketch_home", sketch_home, Mapping)
    for k, v in sketch_home.items():
        if not (isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, str) for x in v)):
            raise TypeError(f"sketch_home[{k!r}] must be a (struct, field) pair of strings, "
                            f"got {v!r}")
    _check_homes("to_2026", to_2026)
    missing = sorted(map(repr, set(sketch_home) - set(to_2026)))
    if missing:
        raise ValueError(f"to_2026 has no entry for {', '.join(missing)}")
    rows = []
    for name, (struct, sfield) in sketch_home.items():
        homes = to_2026[name]
        rows.append((name, f"{struct}.{sfield}", homes, field_verdict(struct, homes)))
    return rows


def sketch_ids() -> frozenset[str]:
    """Every identifier of the sketch an element may cover.

    Struct names of :data:`refimpl.layouts.split.STRUCT_CLASSES`, their fields as
    ``"struct.field"``, the members of :class:`refimpl.layouts.split.KvmArch` and
    :class:`refimpl.layouts.split.KvmVcpuArch` that the mail declares (model-only
    members excluded), and the rules of :data:`MAIL_RULES`.
    """
    from refimpl.layouts.split import STRUCT_CLASSES, KvmArch, KvmVcpuArch
    ids = set(STRUCT_CLASSES)
    for name, cls in STRUCT_CLASSES.items():
        ids.update(f"{name}.{f.name}" for f in fields(cls))
    ids.update(f"kvm_arch.{f.name}" for f in fields(KvmArch) if f.name != "host")
    model_only = {"kvm", "regs", "guest_mode", "l1_regs", "nested_pgd"}
    ids.update(f"kvm_vcpu_arch.{f.name}" for f in fields(KvmVcpuArch)
               if f.name not in model_only)
    ids.update(MAIL_RULES)
    return frozenset(ids)


def check_history(elements: Sequence[Element] = ELEMENTS,
                  to_2026: Mapping[str, tuple[str, ...]] = CLASSIC_TO_2026,
                  vcpu_to_2026: Mapping[str, tuple[str, ...]] = VCPU_TO_2026,
                  new_in_2026: Mapping[str, str] = NEW_IN_2026) -> None:
    """Check the comparison against itself and against the rest of the package.

    - every struct, instance and pointer of
      :data:`refimpl.layouts.split.SKETCH_STRUCTS` (and the pointers ``mmu`` and
      ``walk``) is covered by some element, and every covered id is real
      (:func:`sketch_ids`);
    - every element names a known :class:`Change` and resolvable 2026 names;
    - ``to_2026`` has exactly the fields of the classic ``struct kvm_mmu``
      (:class:`refimpl.layouts.legacy.KvmMmu`, which is also what
      :func:`refimpl.story.thread.fields_after` yields from the 2021 fields), and
      ``vcpu_to_2026`` exactly :data:`refimpl.story.ledger.POINTERS`;
    - every 2026 home resolves in :data:`NEWEST_STRUCTS`, and every member of
      the newest structs is the home of a classic field or in ``new_in_2026``;
    - each home agrees with the 2026 column of :data:`refimpl.story.ledger.LEDGER`.

    Raises
    ------
    ValueError
        Listing every problem found.
    TypeError
        An argument of the wrong type (``elements`` not of
        :class:`Element`, a mapping that is not one of names to paths).
    """
    elements = _check_elements(elements)
    _check_homes("to_2026", to_2026)
    _check_homes("vcpu_to_2026", vcpu_to_2026)
    check_instance("new_in_2026", new_in_2026, Mapping)
    from refimpl.story.ledger import LEDGER, POINTERS
    from refimpl.layouts.legacy import KvmMmu as LegacyKvmMmu
    from refimpl.layouts.split import SKETCH_STRUCTS

    problems: list[str] = []
    known = sketch_ids()
    covered: dict[str, int] = {}
    keys = {c.key for c in CHANGES}
    for e in elements:
        if not isinstance(e, Element):
            raise TypeError(f"elements must be Element, got {e!r}")
        for c in e.covers:
            if c not in known:
                problems.append(f"element {e.sketch!r} covers unknown id {c!r}")
            covered[c] = covered.get(c, 0) + 1
        if e.change != "-" and e.change not in keys:
            problems.append(f"element {e.sketch!r}: unknown change {e.change!r}")
        for k in e.kvm:
            if k.startswith("fn:"):
                continue
            try:
                resolve_2026(k)
            except ValueError as err:
                problems.append(f"element {e.sketch!r}: {err}")
    required = set()
    for struct, _, where in SKETCH_STRUCTS:
        required.add(struct)
        required.update(where)
    required.update({"kvm_vcpu_arch.mmu", "kvm_vcpu_arch.walk"})
    for r in sorted(required - set(covered)):
        problems.append(f"sketch element {r!r} has no row")

    classic = [f.name for f in fields(LegacyKvmMmu)]
    if set(to_2026) != set(classic):
        problems.append(f"classic fields: missing {sorted(set(classic) - set(to_2026))}, "
                        f"unknown {sorted(set(to_2026) - set(classic))}")
    if set(vcpu_to_2026) != set(POINTERS):
        problems.append(f"vCPU members: missing {sorted(set(POINTERS) - set(vcpu_to_2026))}, "
                        f"unknown {sorted(set(vcpu_to_2026) - set(POINTERS))}")

    used: set[str] = set()
    for name, homes in list(to_2026.items()) + list(vcpu_to_2026.items()):
        for h in homes:
            try:
                resolve_2026(h)
            except ValueError as err:
                problems.append(f"{name}: {err}")
                continue
            cur, *members = h.split(".")
            for m in members:
                used.add(f"{cur}.{m}")
                cur = EMBEDDED.get((cur, m), cur)
    for struct, members in NEWEST_STRUCTS.items():
        for m in members:
            p = f"{struct}.{m}"
            if p not in used and p not in new_in_2026:
                problems.append(f"{p} holds no classic field and is not in NEW_IN_2026")

    ledger = {r.legacy: r.home_2026 for r in LEDGER}
    for name, homes in to_2026.items():
        text = ledger.get(f"kvm_mmu.{name}", "")
        for h in homes:
            head = ".".join(h.split(".")[:2])
            if head not in text:
                problems.append(f"kvm_mmu.{name}: home {h} disagrees with the ledger "
                                f"({text!r})")
    for name, homes in vcpu_to_2026.items():
        text = ledger.get(f"kvm_vcpu_arch.{name}", "")
        if not homes and not text.startswith("deleted"):
            problems.append(f"kvm_vcpu_arch.{name}: deleted here, ledger says {text!r}")
        if homes and text.startswith("deleted"):
            problems.append(f"kvm_vcpu_arch.{name}: home {homes[0]} disagrees with the "
                            f"ledger, which says {text!r}")
            continue
        for h in homes:
            if h.split(".")[-1] not in text:
                problems.append(f"kvm_vcpu_arch.{name}: home {h} disagrees with the "
                                f"ledger ({text!r})")
    if problems:
        raise ValueError("history: " + "; ".join(problems))


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


def _cell(s: str) -> str:
    return s.replace("|", "\\|")


def _names(names: Iterable[str]) -> str:
    out = ", ".join(f"`{n.removeprefix('fn:')}" + ("()`" if n.startswith("fn:") else "`")
                    for n in names)
    return out or "(none)"


def comparison_markdown(elements: Sequence[Element] = ELEMENTS) -> str:
    """The side-by-side table: sketch, KVM, verdict, why, when."""
    elements = _check_elements(elements)
    year = {c.key: str(c.year) for c in CHANGES}
    rows = ["| the 2021 sketch | what KVM has | verdict | why | when |",
            "|---|---|---|---|---|"]
    for e in elements:
        rows.append(f"| **{_cell(e.sketch)}**: {_cell(e.said)} | {_cell(e.merged)} "
                    f"({_names(e.kvm)}) | {e.verdict.value} | {_cell(e.why)} | "
                    f"{year.get(e.change, '-')} |")
    return "\n".join(rows)


def fields_markdown() -> str:
    """:func:`field_rows` as a Markdown table."""
    rows = ["| classic field | sketch | 2026 | verdict |", "|---|---|---|---|"]
    for name, sk, homes, v in field_rows():
        rows.append(f"| `{name}` | `{sk}` | {_names(homes)} | {v.value} |")
    return "\n".join(rows)


def changes_markdown() -> str:
    """:data:`CHANGES` as a Markdown table."""
    rows = ["| year | change | who | where | reached |", "|---|---|---|---|---|"]
    rows += [f"| {c.year} | {_cell(c.title)} | {c.who} | {_cell(c.where)} | {c.status} |"
             for c in CHANGES]
    return "\n".join(rows)


def decisions_markdown() -> str:
    """:data:`DECISIONS` as a Markdown table."""
    rows = ["| open point | the book decided | KVM did | same? |", "|---|---|---|---|"]
    rows += [f"| {a} | {d} | {k} | {'yes' if ok else 'no'} |" for a, d, k, ok in DECISIONS]
    return "\n".join(rows)


def verdict_counts(elements: Sequence[Element] = ELEMENTS) -> dict[Verdict, int]:
    """How many elements got each verdict."""
    elements = _check_elements(elements)
    out = {v: 0 for v in Verdict}
    for e in elements:
        out[e.verdict] += 1
    return out

