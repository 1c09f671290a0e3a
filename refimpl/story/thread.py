"""The November 2021 thread, as data.

The thread that produced the sketch is a few messages long. This module
records who said what (each message by Message-ID), the ``struct kvm_mmu``
that Sean Christopherson went through field by field, his classification of
each field, and what became of each field afterwards. The chapter "The thread"
renders these tables and checks them against the models of today's structure
(:mod:`refimpl.layouts.legacy`) and of roles (:mod:`refimpl.host.roles`).

Glossary
--------
Sean's groups
    The answers Sean gave to "could this field be per VM?": guest context,
    redundant, previous roots, per VM under conditions and never per VM in
    his first message, plus "could be per VM" for the two fields he moved
    there 26 minutes later.
fate
    What the kernel did to a 2021 field by the classic tree this book models
    (``kvm_host.h`` of kvm-x86/linux at 04f2bbf1c779): kept, renamed, merged
    into another field, or removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from refimpl.errors import check_fields, check_instance, check_items


@dataclass(frozen=True)
class Message:
    """One message of the thread.

    Parameters
    ----------
    msg_id : str
        The Message-ID, without angle brackets.
    author, date : str
        Sender, and date as sent (UTC where known).
    gist : str
        What the message says, in our words.
    """

    msg_id: str
    author: str
    date: str
    gist: str

    def __post_init__(self) -> None:
        check_fields(self, msg_id=str, author=str, date=str, gist=str)


#: The thread, in order, with each message's date and time converted to UTC
#: from its ``Date:`` header in the list archive. Paolo's last message is the
#: seed of this book.
THREAD: tuple[Message, ...] = (
    Message(
        "20211110223010.1392399-1-bgardon@google.com", "Ben Gardon", "2021-11-10 22:29",
        "RFC 00/19 'Optimize disabling dirty logging': on a 96-vCPU, 96 GiB VM, "
        "turning dirty logging off took about 45 s with the TDP MMU against 3.5 s "
        "with the legacy MMU (the older code for the same EPT tables, kvm.tdp_mmu=0; "
        "not shadow paging). The series batches TLB flushes and rebuilds huge "
        "pages in place (about 2 s); patches 6-12 make make_spte() work without "
        "a vCPU.",
    ),
    Message(
        "80407e4a-36e1-e606-ed9f-74429f850e77@redhat.com", "Paolo Bonzini", "2021-11-10 22:44",
        "On patch 11 (shadow_zero_check out of make_spte): with EPT/NPT most of "
        "vcpu->arch.mmu is the same for every vCPU; only what depends on the "
        "guest's paging mode differs, and only the emulator needs it. Suggests "
        "splitting kvm_mmu in two and moving the EPT/NPT MMU to kvm->arch.",
    ),
    Message(
        "CANgfPd8hzDU+v52t9Kr=b48utC1p_j3yJ8gHzo-uifAxHbh-eQ@mail.gmail.com",
        "Ben Gardon", "2021-11-10 23:49",
        "Agrees: a per-vCPU kvm_mmu has always puzzled him; a per-VM part would "
        "formalise the MMU interface.",
    ),
    Message(
        "YYxvSfUPTXbclpSa@google.com", "Sean Christopherson", "2021-11-11 01:18",
        "Asks what would actually move, and sorts every field of struct kvm_mmu "
        "into groups. Nothing that holds a root can "
        "be per VM: a VM may need up to three sets of TDP tables (normal, SMM, "
        "and L2's when L1 does not use TDP).",
    ),
    Message(
        "YYx1mDJo/L79cKOH@google.com", "Sean Christopherson", "2021-11-11 01:44",
        "Corrects himself: page_fault and inject_page_fault, which he had listed "
        "as guest context, could be per VM; neither is particularly interesting.",
    ),
    Message(
        "2c924ef5-2ff9-c9a8-f28c-8bedaf8b1af6@redhat.com", "Paolo Bonzini",
        "2021-11-11 07:06",
        "The sketch: kvm_mmu_kind, kvm_mmu and kvm_paging_context; a direct "
        "kind per VM, a shadow kind per vCPU, root_mmu and tdp12_mmu, walk "
        "contexts root_walk, walk01, walk12 and a *walk pointer. First step: "
        "replace nested_mmu and walk_mmu by &vcpu->walk12 and vcpu->walk.",
    ),
)


class SeanGroup(Enum):
    """Sean's answer, for one field, to "could this be per VM?"."""

    GUEST_CONTEXT = "related to guest context: depends on the vCPU's paging mode"
    REDUNDANT = "redundant with a bit of the role: delete, not move"
    PREV_ROOTS = "droppable only if TDP roots were tracked per VM"
    PER_VM_IF = "per VM only if MAXPHYADDR were uniform or 4- vs 5-level TDP went away"
    NEVER_PER_VM = "a root, i.e. a shadow page: never per VM (normal, SMM, L2 roots)"
    PER_VM = "could be per VM (his correction, 26 minutes later)"


#: ``struct kvm_mmu`` as Sean listed it on 11 Nov 2021 at 01:18 UTC (message
#: YYxvSfUPTXbclpSa@google.com), in his order, with his group for each field.
#: His list is exhaustive: he ends with "that leaves us with" the roots. Two
#: of these groups he corrected 26 minutes later (:data:`SEAN_CORRECTIONS`).
SEAN_FIELDS: tuple[tuple[str, SeanGroup], ...] = (
    ("get_guest_pgd", SeanGroup.GUEST_CONTEXT),
    ("get_pdptr", SeanGroup.GUEST_CONTEXT),
    ("page_fault", SeanGroup.GUEST_CONTEXT),
    ("inject_page_fault", SeanGroup.GUEST_CONTEXT),
    ("gva_to_gpa", SeanGroup.GUEST_CONTEXT),
    ("translate_gpa", SeanGroup.GUEST_CONTEXT),
    ("sync_page", SeanGroup.GUEST_CONTEXT),
    ("invlpg", SeanGroup.GUEST_CONTEXT),
    ("mmu_role", SeanGroup.GUEST_CONTEXT),
    ("root_level", SeanGroup.GUEST_CONTEXT),
    ("permissions", SeanGroup.GUEST_CONTEXT),
    ("pkru_mask", SeanGroup.GUEST_CONTEXT),
    ("guest_rsvd_check", SeanGroup.GUEST_CONTEXT),
    ("pdptrs", SeanGroup.GUEST_CONTEXT),
    ("root_pgd", SeanGroup.GUEST_CONTEXT),
    ("ept_ad", SeanGroup.REDUNDANT),
    ("direct_map", SeanGroup.REDUNDANT),
    ("shadow_root_level", SeanGroup.REDUNDANT),
    ("prev_roots", SeanGroup.PREV_ROOTS),
    ("shadow_zero_check", SeanGroup.PER_VM_IF),
    ("root_hpa", SeanGroup.NEVER_PER_VM),
    ("pae_root", SeanGroup.NEVER_PER_VM),
    ("pml4_root", SeanGroup.NEVER_PER_VM),
    ("pml5_root", SeanGroup.NEVER_PER_VM),
)


#: Sean's reply to himself at 01:44 UTC (message YYx1mDJo/L79cKOH@google.com):
#: the fields whose group he changed, with the new group. ``SEAN_FIELDS``
#: keeps what the first message said.
SEAN_CORRECTIONS: dict[str, SeanGroup] = {
    "page_fault": SeanGroup.PER_VM,
    "inject_page_fault": SeanGroup.PER_VM,
}


def sean_final(field: str) -> SeanGroup:
    """Sean's group for a 2021 field after his correction.

    Raises
    ------
    ValueError
        ``field`` is not one of the fields Sean listed.
    TypeError
        ``field`` is not a str.
    """
    check_instance("field", field, str)
    first = dict(SEAN_FIELDS)
    if field not in first:
        raise ValueError(f"Sean did not list {field!r}; he listed {sorted(first)}")
    return SEAN_CORRECTIONS.get(field, first[field])


@dataclass(frozen=True)
class Fate:
    """What became of one 2021 field in the classic tree.

    Parameters
    ----------
    field : str
        The 2021 field.
    now : tuple of str
        The field(s) of today's ``struct kvm_mmu`` that hold its information
        (empty when it left the structure).
    how : str
        The change, in a few words.
    source : str
        The commit or series that made it.
    """

    field: str
    now: tuple[str, ...]
    how: str
    source: str

    def __post_init__(self) -> None:
        check_fields(self, field=str, now=tuple, how=str, source=str)


#: Paolo Bonzini's 2022 MMU role series, by Message-ID of its cover letters:
#: v1 (4 Feb), v2 (21 Feb) and v3 (14 Apr, the version merged).
ROLE_SERIES: tuple[str, str, str] = (
    "20220204115718.14934-1-pbonzini@redhat.com",
    "20220221162243.683208-1-pbonzini@redhat.com",
    "20220414074000.31438-1-pbonzini@redhat.com",
)

_ROLES_2022 = "role series, Paolo Bonzini, 2022"
_ROOT_2022 = "b9e5603c2a3a, Paolo Bonzini, 2022"

#: Each 2021 field's fate. Kept fields map to themselves.
FATES: tuple[Fate, ...] = (
    Fate("get_guest_pgd", ("get_guest_pgd",), "kept", "-"),
    Fate("get_pdptr", ("get_pdptr",), "kept", "-"),
    Fate("page_fault", ("page_fault",), "kept", "-"),
    Fate("inject_page_fault", ("inject_page_fault",), "kept", "-"),
    Fate("gva_to_gpa", ("gva_to_gpa",), "kept; gains the walking kvm_mmu as a parameter",
         "1f5a21ee8400, Lai Jiangshan, 2021"),
    Fate("translate_gpa", (), "removed: kvm_translate_gpa() in mmu.h translates only when "
         "the walking MMU is nested_mmu", "c59a0f57fa32, Lai Jiangshan, 2021"),
    Fate("sync_page", ("sync_spte",), "renamed sync_spte; syncs one SPTE per call",
         "c3c6c9fc5d24, Lai Jiangshan, 2023"),
    Fate("invlpg", ("sync_spte",), "removed: INVLPG syncs single SPTEs through sync_spte",
         "9fd4a4e3a3d9, Lai Jiangshan, 2023"),
    Fate("mmu_role", ("cpu_role", "root_role"),
         "split into the guest's format (cpu_role) and the format of KVM's tables "
         "(root_role)", _ROLES_2022),
    Fate("root_level", ("cpu_role",), "removed: read as cpu_role.base.level", _ROLES_2022),
    Fate("permissions", ("permissions",), "kept", "-"),
    Fate("pkru_mask", ("pkru_mask",), "kept", "-"),
    Fate("guest_rsvd_check", ("guest_rsvd_check",), "kept", "-"),
    Fate("pdptrs", ("pdptrs",), "kept", "-"),
    Fate("root_pgd", ("root",), "merged with root_hpa into root {pgd, hpa}", _ROOT_2022),
    Fate("ept_ad", ("root_role",), "removed: read as root_role.ad_disabled", _ROLES_2022),
    Fate("direct_map", ("root_role",), "removed: read as root_role.direct", _ROLES_2022),
    Fate("shadow_root_level", ("root_role",), "removed: read as root_role.level",
         _ROLES_2022),
    Fate("prev_roots", ("prev_roots",), "kept", "-"),
    Fate("shadow_zero_check", ("shadow_zero_check",), "kept", "-"),
    Fate("root_hpa", ("root",), "merged with root_pgd into root {pgd, hpa}", _ROOT_2022),
    Fate("pae_root", ("pae_root",), "kept", "-"),
    Fate("pml4_root", ("pml4_root",), "kept", "-"),
    Fate("pml5_root", ("pml5_root",), "kept", "-"),
)

#: The role bit that made each of Sean's redundant fields redundant.
REDUNDANT_WITH: dict[str, str] = {
    "ept_ad": "ad_disabled",
    "direct_map": "direct",
    "shadow_root_level": "level",
}

#: The three kinds of TDP root a VM may need at once (Sean's list), as the
#: role inputs that tell them apart: (name, smm, guest_mode).
TDP_ROOT_KINDS: tuple[tuple[str, bool, bool], ...] = (
    ("normal", False, False),
    ("SMM", True, False),
    ("L2, when L1 does not use TDP", False, True),
)


def fields_after(fates: tuple[Fate, ...] = FATES) -> set[str]:
    """The field set that applying ``fates`` to the 2021 structure yields.

    Raises
    ------
    TypeError
        ``fates`` not an iterable of :class:`Fate`.
    """
    fates = check_items("fates", fates, Fate)
    out: set[str] = set()
    for f in fates:
        out.update(f.now)
    return out


def check_fates(fates: tuple[Fate, ...] = FATES) -> None:
    """Check that ``fates`` gives exactly one fate to every field Sean listed.

    Raises
    ------
    ValueError
        Naming the fields with no fate, with two, or not in Sean's list.
    TypeError
        ``fates`` not an iterable of :class:`Fate`.
    """
    fates = check_items("fates", fates, Fate)
    listed = [name for name, _ in SEAN_FIELDS]
    given = [f.field for f in fates]
    missing = sorted(set(listed) - set(given))
    extra = sorted(set(given) - set(listed))
    twice = sorted({g for g in given if given.count(g) > 1})
    if missing or extra or twice:
        raise ValueError(
            f"fates do not match Sean's field list: missing={missing}, "
            f"unknown={extra}, duplicated={twice}"
        )


def groups_of(field: str) -> dict[SeanGroup, list[str]]:
    """Sean's groups for a field of today's structure.

    Today's field may hold what several 2021 fields held (``root_role`` took
    over ``mmu_role`` and the three redundant fields); the answer lists, per
    group, the 2021 fields that became ``field``.

    Raises
    ------
    ValueError
        If no 2021 field became ``field``.
    """
    group = dict(SEAN_FIELDS)
    out: dict[SeanGroup, list[str]] = {}
    for f in FATES:
        if field in f.now:
            out.setdefault(group[f.field], []).append(f.field)
    if not out:
        raise ValueError(f"no 2021 field of struct kvm_mmu became {field!r}")
    return out


#: How the chapters name each of Sean's groups.
GROUP_LABELS: dict[SeanGroup, str] = {
    SeanGroup.GUEST_CONTEXT: "guest context",
    SeanGroup.REDUNDANT: "redundant",
    SeanGroup.PREV_ROOTS: "previous roots",
    SeanGroup.PER_VM_IF: "per VM under conditions",
    SeanGroup.NEVER_PER_VM: "never per VM",
    SeanGroup.PER_VM: "per VM",
}


def group_label(g: SeanGroup) -> str:
    """A group's name as prose: ``SeanGroup.PER_VM_IF`` -> ``"per VM under conditions"``.

    Raises
    ------
    TypeError
        ``g`` is not a :class:`SeanGroup`.
    """
    check_instance("g", g, SeanGroup)
    return GROUP_LABELS[g]


def sean_summary(field: str) -> str:
    """Sean's groups for today's ``field``, with the 2021 names, as one line.

    A group he corrected is shown as ``first -> corrected``.
    """
    parts = []
    for g, olds in groups_of(field).items():
        names = ", ".join(olds)
        text = group_label(g)
        fixed = {sean_final(o) for o in olds} - {g}
        if fixed:
            text += " → " + ", ".join(sorted(group_label(x) for x in fixed))
        parts.append(text + ("" if names == field else f" (as {names})"))
    return "; ".join(parts)


def sean_table() -> str:
    """Sean's fields with his group and their fate, as a four-column Markdown table.

    A group he corrected reads ``first -> corrected (01:44)``; the fate column
    joins what happened and the commit or series that did it.
    """
    fate = {f.field: f for f in FATES}
    rows = ["| 2021 field | Sean's group | today | what happened |", "|---|---|---|---|"]
    for name, group in SEAN_FIELDS:
        f = fate[name]
        now = ", ".join(f"`{n}`" for n in f.now) or "(gone)"
        said = group_label(group)
        if name in SEAN_CORRECTIONS:
            said = f"{said} → {group_label(SEAN_CORRECTIONS[name])} (01:44)"
        what = f.how if f.source == "-" else f"{f.how} ({f.source})"
        rows.append(f"| `{name}` | {said} | {now} | {what} |")
    return "\n".join(rows)


def thread_table() -> str:
    """The thread's messages as a Markdown table."""
    rows = ["| date | author | Message-ID | gist |", "|---|---|---|---|"]
    rows += [f"| {m.date} | {m.author} | `{m.msg_id}` | {m.gist} |" for m in THREAD]
    return "\n".join(rows)


def thread_markdown() -> str:
    """The thread's messages as a Markdown list: time and author, gist, Message-ID.

    The list reads better than :func:`thread_table` in a narrow page, where a
    long Message-ID would squeeze the gist out of a table.
    """
    items = [f"- **{m.date} UTC, {m.author}.** {m.gist} Message-ID `{m.msg_id}`."
             for m in THREAD]
    return "\n".join(items)
