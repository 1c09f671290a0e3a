"""The page-walk explorer's model: one walk, built from a handful of bits.

A :class:`WalkSetup` names everything a reader can change: the paging mode,
CR0.WP, CR4.PSE/SMEP/SMAP/PKE, EFER.NXE, RFLAGS.AC, the access, and the bits
of one entry per level. :func:`explain_walk` builds the smallest guest
memory that holds those entries (one table per level, at fixed addresses),
runs :func:`refimpl.guest.walker.translate` on it, and returns a
:class:`WalkReport`: the walk level by level, the rights accumulated so far
at each level, the outcome, and the rule that decided it.
:func:`walk_html` renders a report as the HTML the widget shows.

Nothing here imports ipywidgets: the widget (``refimpl.viz.widgets``) only
turns controls into a :class:`WalkSetup` and shows :func:`walk_html`.

Glossary
--------
entry bits
    P, W (R/W), U (U/S), A, D, PS (bit 7) and NX (bit 63, XD in Intel's
    manuals) of one paging-structure entry.
rule
    Why the walk ended as it did: the first entry with P=0, the reserved
    bits of the entry that had them, or the access-rights rules (SDM 4.6)
    that the accumulated rights broke.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from html import escape

from refimpl.guest.cpu import CpuState, PagingMode
from refimpl.guest.faults import WalkError
from refimpl.guest.formats import ACC, CR0, CR4, EFER, PFERR, PTE32, PTE64, RFLAGS
from refimpl.guest.memory import GuestMemory
from refimpl.guest.permissions import PFEC_INDEX_MASK, permission_fault
from refimpl.guest.walker import ACCESS_FETCH, ACCESS_USER, ACCESS_WRITE, TranslateResult, translate, walk_context
from refimpl.errors import check_bool, check_choice, check_fields, check_instance, check_int, check_range

#: The modes the explorer offers, by the name shown in its menu.
MODES: dict[str, PagingMode] = {
    "32-bit": PagingMode.BITS32,
    "PAE": PagingMode.PAE,
    "4-level": PagingMode.LEVEL4,
    "5-level": PagingMode.LEVEL5,
}

#: The accesses the explorer offers, as ``translate`` access bits (user added separately).
ACCESSES: dict[str, int] = {"read": 0, "write": ACCESS_WRITE, "fetch": ACCESS_FETCH}

#: Where the table of each level lives (the level-``n`` table at ``n * 0x1000``).
TABLE_GPA = {level: level * 0x1000 for level in range(1, 6)}

#: The guest-physical page every leaf maps (aligned for a 1 GiB page, below 4 GiB).
PAGE_GPA = 0x4000_0000

#: Offset of the address within its 4 KiB page.
PAGE_OFFSET = 0x567

#: Guest memory size: the tables, nothing else (the page itself is never read).
MEMORY_SIZE = 0x6000

#: The guest's MAXPHYADDR in the explorer.
MAXPHYADDR = 46


def entry_name(mode: PagingMode, level: int) -> str:
    """The SDM's name for the entry of ``level`` in ``mode`` (PML5E ... PTE).

    Raises
    ------
    TypeError, ValueError
        ``mode`` not a PagingMode, ``level`` not in ``[1, 5]``.
    """
    check_instance("mode", mode, PagingMode)
    level = check_range("level", level, 1, 6)
    if level == 1:
        return "PTE"
    if level == 2:
        return "PDE"
    if level == 3:
        return "PDPTE"
    return {4: "PML4E", 5: "PML5E"}[level]


def levels(mode: PagingMode) -> tuple[int, ...]:
    """The levels a walk in ``mode`` visits, top down."""
    check_instance("mode", mode, PagingMode)
    return tuple(range(mode.root_level, 0, -1))


def index_at(mode: PagingMode, level: int) -> int:
    """The table index the explorer's address selects at ``level``.

    The root level uses index 1, the next index 2, and so on, so that every
    entry sits at a different offset in its table and the trace shows it.
    """
    level = check_int("level", level)
    check_instance("mode", mode, PagingMode)
    return mode.root_level - level + 1


def explorer_gva(mode: PagingMode) -> int:
    """The linear address the explorer translates in ``mode``."""
    check_instance("mode", mode, PagingMode)
    fmt_bits = 10 if mode is PagingMode.BITS32 else 9
    gva = PAGE_OFFSET
    for level in levels(mode):
        shift = 12 + fmt_bits * (level - 1)
        gva |= index_at(mode, level) << shift
    return gva


@dataclass(frozen=True)
class EntryBits:
    """The bits of one paging-structure entry that a reader can set.

    Parameters
    ----------
    p, w, u, a, d, ps, nx : bool
        Present, writable (R/W), user (U/S), accessed, dirty, bit 7 (PS),
        execute-disable (bit 63; 8-byte entries only).
    """

    p: bool = True
    w: bool = True
    u: bool = True
    a: bool = True
    d: bool = False
    ps: bool = False
    nx: bool = False

    #: Field names in the order the explorer shows them.
    NAMES = ("p", "w", "u", "a", "d", "ps", "nx")

    def __post_init__(self) -> None:
        check_fields(self, p=bool, w=bool, u=bool, a=bool, d=bool, ps=bool, nx=bool)

    def flags(self, wide: bool) -> int:
        """The flag bits as an entry value (no address); NX only if ``wide``."""
        layout = PTE64 if wide else PTE32
        v = 0
        for name, on in (("P", self.p), ("W", self.w), ("U", self.u), ("A", self.a),
                         ("D", self.d), ("PS", self.ps)):
            if on:
                v |= layout[name].bit
        if wide and self.nx:
            v |= PTE64.XD.bit
        return v


#: What a PAE PDPTE may have: only P (every other low bit is reserved).
PDPTE_ONLY_P = EntryBits(p=True, w=False, u=False, a=False, d=False, ps=False, nx=False)


def default_entries(mode: PagingMode) -> dict[int, EntryBits]:
    """Entries that map the page: P, W, U, A everywhere (a PAE PDPTE: P only)."""
    check_instance("mode", mode, PagingMode)
    out = {level: EntryBits() for level in levels(mode)}
    if mode is PagingMode.PAE:
        out[3] = PDPTE_ONLY_P
    return out


@dataclass(frozen=True)
class WalkSetup:
    """Everything the page-walk explorer lets a reader choose.

    Parameters
    ----------
    mode : str
        A key of :data:`refimpl.viz.walk.MODES`.
    cr0_wp, cr4_pse, cr4_smep, cr4_smap, cr4_pke, efer_nxe, rflags_ac : bool
        The control bits.
    access : str
        ``"read"``, ``"write"`` or ``"fetch"``.
    user : bool
        The access is made at CPL 3.
    entries : dict of int to EntryBits
        The entry of each level (missing levels: :class:`EntryBits` defaults).
    pkey : int
        Protection key of the leaf (4/5-level paging only).
    pkru_ad, pkru_wd : bool
        PKRU's access-disable and write-disable bits for ``pkey``.
    """

    mode: str = "4-level"
    cr0_wp: bool = True
    cr4_pse: bool = False
    cr4_smep: bool = False
    cr4_smap: bool = False
    cr4_pke: bool = False
    efer_nxe: bool = True
    rflags_ac: bool = False
    access: str = "read"
    user: bool = False
    entries: dict[int, EntryBits] = field(default_factory=dict)
    pkey: int = 0
    pkru_ad: bool = False
    pkru_wd: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {self.mode!r}")
        if self.access not in ACCESSES:
            raise ValueError(f"access must be one of {list(ACCESSES)}, got {self.access!r}")
        if not 0 <= self.pkey <= 15:
            raise ValueError(f"pkey must be in 0..15, got {self.pkey!r}")

    @property
    def paging_mode(self) -> PagingMode:
        """The :class:`refimpl.guest.cpu.PagingMode` of ``mode``."""
        return MODES[self.mode]

    def entry(self, level: int) -> EntryBits:
        """The entry bits of ``level`` (defaults if not given).

        Raises
        ------
        TypeError, ValueError
            ``level`` not a level of this setup's paging mode.
        """
        level = check_int("level", level)
        check_choice("level", level, levels(self.paging_mode))
        return self.entries.get(level, default_entries(self.paging_mode)[level])

    def with_entry(self, level: int, **bits: bool) -> "WalkSetup":
        """A copy with some bits of one level's entry changed.

        Raises
        ------
        TypeError, ValueError
            ``level`` not a level of this mode; a bit name :class:`EntryBits`
            does not have, or a value that is not a bool.
        """
        level = check_int("level", level)
        check_choice("level", level, levels(self.paging_mode))
        for k, v in bits.items():
            check_choice("bit name", k, [f.name for f in fields(EntryBits)])
            check_bool(k, v)
        entries = {lv: self.entry(lv) for lv in levels(self.paging_mode)}
        entries[level] = replace(entries[level], **bits)
        return replace(self, entries=entries)

    @property
    def access_bits(self) -> int:
        """The access as :func:`refimpl.guest.walker.translate` takes it."""
        return ACCESSES[self.access] | (ACCESS_USER if self.user else 0)

    def cpu(self) -> CpuState:
        """The registers: the mode's PG/PAE/LMA/LA57 plus the chosen bits."""
        mode = self.paging_mode
        cr0 = CR0.PE.bit | CR0.PG.bit | (CR0.WP.bit if self.cr0_wp else 0)
        cr4 = 0
        efer = EFER.NXE.bit if self.efer_nxe else 0
        if mode is not PagingMode.BITS32:
            cr4 |= CR4.PAE.bit
        if mode.long_mode:
            efer |= EFER.LME.bit | EFER.LMA.bit
        if mode is PagingMode.LEVEL5:
            cr4 |= CR4.LA57.bit
        for on, bit in ((self.cr4_pse, CR4.PSE.bit), (self.cr4_smep, CR4.SMEP.bit),
                        (self.cr4_smap, CR4.SMAP.bit), (self.cr4_pke, CR4.PKE.bit)):
            if on:
                cr4 |= bit
        pkru = ((1 if self.pkru_ad else 0) | (2 if self.pkru_wd else 0)) << (2 * self.pkey)
        cr3 = TABLE_GPA[mode.root_level]
        return CpuState(cr0=cr0, cr3=cr3, cr4=cr4, efer=efer,
                        rflags=RFLAGS.AC.bit if self.rflags_ac else 0, pkru=pkru,
                        maxphyaddr=MAXPHYADDR)


def build_memory(setup: WalkSetup) -> GuestMemory:
    """Guest memory with one table per level, each holding the one entry the walk uses.

    A non-leaf entry points to the next level's table. An entry that ends
    the walk (level 1, or bit 7 where it means a large page, as
    :meth:`refimpl.guest.walker.WalkContext.is_last_gpte` decides) maps
    :data:`PAGE_GPA`; the leaf also carries the protection key in 4/5-level
    paging. Entries below the leaf are written too, but never read.
    """
    check_instance("setup", setup, WalkSetup)
    mode = setup.paging_mode
    cpu = setup.cpu()
    ctx = walk_context(cpu)
    wide = mode is not PagingMode.BITS32
    mem = GuestMemory(MEMORY_SIZE)
    leaf_seen = False
    for level in levels(mode):
        bits = setup.entry(level)
        value = bits.flags(wide)
        is_pae_root = mode is PagingMode.PAE and level == 3
        ends = not is_pae_root and ctx.is_last_gpte(level, value)
        if ends and not leaf_seen:
            value |= PAGE_GPA
            if mode.long_mode:
                value |= setup.pkey << PTE64.PKEY.lo
            leaf_seen = True
        elif level > 1:
            value |= TABLE_GPA[level - 1]
        else:
            value |= PAGE_GPA
        gpa = TABLE_GPA[level] + index_at(mode, level) * (8 if wide else 4)
        if is_pae_root:
            # The four PDPTEs sit at CR3; index_at(PAE, 3) == 1 picks the second.
            gpa = TABLE_GPA[3] + 8 * index_at(mode, 3)
        if wide:
            mem.write64(gpa, value)
        else:
            mem.write32(gpa, value)
    return mem


def rights_str(acc: int) -> str:
    """ACC rights as three letters: ``U`` or ``-``, ``W`` or ``-``, ``X`` or ``-``."""
    acc = check_int("acc", acc)
    return (("U" if acc & ACC.USER else "-") + ("W" if acc & ACC.WRITE else "-")
            + ("X" if acc & ACC.EXEC else "-"))


def decode_error_code(code: int) -> str:
    """``0x7 (P|W|U)``: the error code and the names of its bits, low bit first."""
    code = check_int("code", code)
    names = [f.name for f in PFERR if f is not PFERR.IMPLICIT and code & f]
    return f"{code:#x} ({'|'.join(names) if names else 'none'})"


def _bit_names(value: int, wide: bool) -> list[str]:
    """Names of the bits of ``value`` (single bits by field; multi-bit fields as ranges)."""
    layout = PTE64 if wide else PTE32
    out = []
    for bit in range((64 if wide else 32)):
        if value >> bit & 1:
            f = next((f for f in layout if f.lo <= bit <= f.hi), None)
            name = f.name if f is not None and f.width == 1 else f"bit {bit}"
            if f is not None and f.width > 1:
                name = f"bit {bit} ({f.name})"
            out.append(name)
    return out


@dataclass(frozen=True)
class PermissionRule:
    """One access-rights rule of SDM 4.6 that an access broke.

    Parameters
    ----------
    name : str
        Short name (``"U/S"``, ``"R/W"``, ``"NX"``, ``"SMEP"``, ``"SMAP"``,
        ``"PK"``).
    text : str
        The rule in one sentence.
    """

    name: str
    text: str

    def __post_init__(self) -> None:
        check_fields(self, name=str, text=str)


def broken_rules(
    *, write: bool, user: bool, fetch: bool, acc: int, wp: bool, smep: bool, smap: bool,
    nx: bool, ac: bool, pke: bool = False, pkru_ad: bool = False, pkru_wd: bool = False,
) -> list[PermissionRule]:
    """The SDM rules an access to a page with rights ``acc`` breaks, in SDM order.

    This is the explanation the explorer prints; ``tests/viz/test_viz.py``
    checks, for every input, that it is empty exactly when
    :func:`refimpl.guest.permissions.permission_fault` allows the access, and
    contains ``PK`` exactly when that function reports PK.
    """
    acc = check_int("acc", acc)
    page_user = bool(acc & ACC.USER)
    page_write = bool(acc & ACC.WRITE)
    page_exec = bool(acc & ACC.EXEC)
    out = []
    if user and not page_user:
        out.append(PermissionRule("U/S", "a user-mode access needs U/S=1 in every entry"))
    if write and not page_write and (user or wp):
        who = "a user-mode write" if user else "with CR0.WP=1, a supervisor write"
        out.append(PermissionRule("R/W", f"{who} needs R/W=1 in every entry"))
    if fetch and nx and not page_exec:
        out.append(PermissionRule("NX", "with EFER.NXE=1, a fetch needs XD=0 in every entry"))
    if not user and fetch and smep and page_user:
        out.append(PermissionRule("SMEP", "with CR4.SMEP=1, no supervisor fetch from a user page"))
    if not user and not fetch and smap and page_user and not ac:
        out.append(PermissionRule(
            "SMAP", "with CR4.SMAP=1 and RFLAGS.AC=0, no supervisor data access to a user page"))
    if pke and page_user and not fetch and (pkru_ad or (write and pkru_wd and (user or wp))):
        which = "PKRU.AD" if pkru_ad else "PKRU.WD"
        out.append(PermissionRule("PK", f"{which} of the page's protection key denies it"))
    return out


@dataclass(frozen=True)
class WalkRow:
    """One entry the walk read.

    Parameters
    ----------
    level : int
    name : str
        PML5E, PML4E, PDPTE, PDE or PTE.
    gpa : int
        Where the entry is.
    value : int
        The entry as read (before A/D write-back).
    after : int
        The entry after the walk (A/D set on success).
    rights : str or None
        The rights accumulated down to this entry (:func:`rights_str`), or
        None for a PAE PDPTE (it carries no rights) or an entry with P=0.
    note : str
        ``"not present"``, ``"reserved bits"``, ``"leaf"`` or ``""``.
    """

    level: int
    name: str
    gpa: int
    value: int
    after: int
    rights: str | None
    note: str


@dataclass(frozen=True)
class WalkReport:
    """What the explorer shows for one :class:`WalkSetup`.

    Parameters
    ----------
    setup : WalkSetup
    gva : int
        The translated address.
    result : TranslateResult
        What :func:`refimpl.guest.walker.translate` returned.
    rows : tuple of WalkRow
        The walk, top down.
    outcome : str
        ``"gpa 0x40004567 (4 KiB page)"``, ``"#PF, error code 0x7 (P|W|U)"``
        or ``"#GP(0)"``.
    reason : WalkError or None
        ``result.fault.reason``.
    rule : str
        The rule that decided it, in a sentence.
    rules : tuple of PermissionRule
        For a rights fault, every rule broken.
    """

    setup: WalkSetup
    gva: int
    result: TranslateResult
    rows: tuple[WalkRow, ...]
    outcome: str
    reason: WalkError | None
    rule: str
    rules: tuple[PermissionRule, ...] = ()

    @property
    def error_code(self) -> int | None:
        """The fault's error code, or None on success."""
        return None if self.result.fault is None else self.result.fault.error_code


_PAGE_SIZE = {1: "4 KiB", 2: "2 MiB", 3: "1 GiB"}


def explain_walk(setup: WalkSetup) -> WalkReport:
    """Run the walk :func:`refimpl.viz.walk.build_memory` sets up, and explain it.

    Returns
    -------
    WalkReport
    """
    check_instance("setup", setup, WalkSetup)
    mode = setup.paging_mode
    cpu = setup.cpu()
    ctx = walk_context(cpu)
    fmt = ctx.fmt
    wide = mode is not PagingMode.BITS32
    mem = build_memory(setup)
    gva = explorer_gva(mode)
    result = translate(mem, cpu, gva, setup.access_bits)
    fault = result.fault

    rows = []
    acc_and = ~0
    for level, gpa, value in result.trace:
        is_pae_root = mode is PagingMode.PAE and level == 3
        after = mem.read64(gpa) if wide else mem.read32(gpa)
        note, rights = "", None
        if not value & fmt.present_mask:
            note = "not present"
        else:
            if not is_pae_root:
                acc_and &= value ^ fmt.nx_mask
                rights = rights_str(fmt.gpte_access(acc_and ^ fmt.nx_mask))
            if fault is not None and fault.reason is WalkError.RSVD and level == result.level:
                note = "reserved bits"
            elif not is_pae_root and ctx.is_last_gpte(level, value):
                note = "leaf"
        rows.append(WalkRow(level, entry_name(mode, level), gpa, value, after, rights, note))

    rules: list[PermissionRule] = []
    if fault is None:
        size = "4 MiB" if (mode is PagingMode.BITS32 and result.level == 2) else _PAGE_SIZE[result.level]
        outcome = f"gpa {result.gpa:#x} ({size} page)"
        walked = fmt.gpte_access(acc_and ^ fmt.nx_mask)
        rule = (f"every entry is present with no reserved bit set, and the rights "
                f"{rights_str(walked)} allow a {_access_words(setup)}")
        if walked != result.access_rights:
            rule += ("; the leaf is clean (D=0), so the translation returned leaves out W "
                     "until a write sets D (KVM's protect_clean_gpte)")
    else:
        if fault.vector == 14:
            outcome = f"#PF, error code {decode_error_code(fault.error_code)}"
        else:
            outcome = f"#GP({fault.error_code})"
        rule, rules = _rule(setup, result, ctx, wide)
    return WalkReport(setup, gva, result, tuple(rows), outcome,
                      None if fault is None else fault.reason, rule, tuple(rules))


def _access_words(setup: WalkSetup) -> str:
    return f"{'user' if setup.user else 'supervisor'} {setup.access}"


def _rule(setup, result, ctx, wide) -> tuple[str, list[PermissionRule]]:
    fault = result.fault
    mode = setup.paging_mode
    reason = fault.reason
    where = ""
    if result.level is not None:
        where = f"the {entry_name(mode, result.level)} (level {result.level})"
    if reason is WalkError.NOT_PRESENT:
        return f"{reason.value}: P=0 in {where}, so the error code has no P bit", []
    if reason is WalkError.RSVD:
        level, _gpa, value = result.trace[-1]
        names = _bit_names(value & ctx.rsvd.mask(value, level), wide)
        return (f"{reason.value}: {', '.join(names)} reserved in {where}; "
                f"the error code has RSVD and P"), []
    if reason is WalkError.BAD_PDPTE:
        return (f"{reason.value}: a present PDPTE has reserved bits set, so the MOV to CR3 "
                f"that loaded it would have raised #GP"), []
    if reason is WalkError.PERMISSION:
        cpu = setup.cpu()
        acc = result.access_rights
        rules = broken_rules(
            write=setup.access == "write", user=setup.user, fetch=setup.access == "fetch",
            acc=acc, wp=cpu.wp, smep=cpu.smep, smap=cpu.smap, nx=cpu.nx, ac=cpu.ac,
            pke=cpu.pke_active, pkru_ad=setup.pkru_ad, pkru_wd=setup.pkru_wd,
        )
        index = (setup.access_bits & PFEC_INDEX_MASK
                 | (PFERR.RSVD if cpu.ac else 0)) >> 1
        byte = ctx.permissions[index]
        text = (f"{reason.value}: the page's rights are {rights_str(acc)}; "
                f"permissions[{index}] = {byte:#04x} has bit {acc} set"
                if (byte >> acc) & 1 else
                f"{reason.value}: the page's rights are {rights_str(acc)}")
        return text + "; broken: " + "; ".join(f"{r.name} ({r.text})" for r in rules), rules
    return reason.value, []


def check_explanation(report: WalkReport) -> None:
    """Raise AssertionError if the report's rules disagree with the walker.

    The explanation is computed apart from the walk (:func:`broken_rules`
    restates the SDM); this cross-check is what lets the chapter trust it.
    """
    check_instance("report", report, WalkReport)
    fault = report.result.fault
    if fault is None or fault.reason is not WalkError.PERMISSION:
        assert not report.rules, report.rules
        return
    cpu = report.setup.cpu()
    got = permission_fault(
        walk_context(cpu).permissions, walk_context(cpu).pkru_mask,
        pte_access=report.result.access_rights, pte_pkey=report.setup.pkey,
        access=report.setup.access_bits, rflags_ac=cpu.ac, pkru=cpu.pkru,
    )
    assert got, "the walker reported a rights fault that permission_fault does not"
    assert bool(report.rules), "a rights fault with no broken rule"
    assert (any(r.name == "PK" for r in report.rules)) == bool(got & PFERR.PK)


# ---------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------

_TD = 'style="border:1px solid #ccc;padding:2px 6px;font-family:monospace;text-align:left"'
_TH = 'style="border:1px solid #ccc;padding:2px 6px;background:#eee;text-align:left"'


def _flag_str(value: int, wide: bool) -> str:
    layout = PTE64 if wide else PTE32
    names = [n for n in ("P", "W", "U", "A", "D", "PS") if value & layout[n].bit]
    if wide and value & PTE64.XD.bit:
        names.append("NX")
    if wide and PTE64.PKEY.get(value):
        names.append(f"pkey={PTE64.PKEY.get(value)}")
    return " ".join(names) if names else "(none)"


def walk_html(report: WalkReport) -> str:
    """The report as an HTML fragment: the walk table, then outcome and rule."""
    check_instance("report", report, WalkReport)
    setup = report.setup
    wide = setup.paging_mode is not PagingMode.BITS32
    digits = 16 if wide else 8
    head = ("<tr>" + "".join(f"<th {_TH}>{h}</th>" for h in (
        "level", "entry", "entry gpa", "value read", "flags", "rights so far",
        "after the walk", "")) + "</tr>")
    body = []
    for r in report.rows:
        changed = r.after ^ r.value
        after = "unchanged" if not changed else (
            f"{r.after:#0{digits + 2}x} (+{' '.join(_bit_names(changed, wide))})")
        colour = {"not present": "#fde2e2", "reserved bits": "#fde2e2", "leaf": "#e3f5e1"}
        style = f' style="background:{colour[r.note]}"' if r.note in colour else ""
        body.append(
            f'<tr class="walk-row" data-level="{r.level}"{style}>'
            f"<td {_TD}>{r.level}</td><td {_TD}>{r.name}</td><td {_TD}>{r.gpa:#x}</td>"
            f"<td {_TD}>{r.value:#0{digits + 2}x}</td><td {_TD}>{_flag_str(r.value, wide)}</td>"
            f"<td {_TD}>{r.rights or '&mdash;'}</td><td {_TD}>{after}</td>"
            f"<td {_TD}>{r.note}</td></tr>"
        )
    ok = report.result.fault is None
    colour = "#1b6e1b" if ok else "#a31515"
    rights = rights_str(report.result.access_rights) if report.result.level else "&mdash;"
    return (
        f'<div class="kvmbook-walk">'
        f"<p style=\"margin:0 0 4px 0\"><b>{setup.mode}</b> paging, "
        f"{escape(_access_words(setup))} of gva <code>{report.gva:#x}</code></p>"
        f'<table style="border-collapse:collapse;font-size:12px">{head}{"".join(body)}</table>'
        f'<p class="walk-outcome" style="margin:6px 0 0 0;color:{colour}"><b>Outcome:</b> '
        f"{escape(report.outcome)}</p>"
        f'<p class="walk-rights" style="margin:2px 0 0 0"><b>Rights returned:</b> {rights}</p>'
        f'<p class="walk-rule" style="margin:2px 0 0 0"><b>Decided by:</b> '
        f"{escape(report.rule)}</p></div>"
    )
