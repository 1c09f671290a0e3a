"""The C structures of every step, declared once, and rendered as C or as Python.

The refactoring changes a handful of structures of
``arch/x86/include/asm/kvm_host.h``: ``struct kvm_mmu``, the MMU members of
``struct kvm_vcpu_arch`` and of ``struct kvm_arch``, and the sketch's new
``struct kvm_paging_context`` and ``struct kvm_mmu_kind``. Each is declared
here once, as a :class:`Struct` of :class:`CField` (a C declarator, our own
one-line note, the model's default value), and each step records only the
structures it changes (:data:`CHANGES`), written as an edit of the
previous step's declaration, the way a patch edits the header.

Two things are produced from the same declaration:

* the Python class a step uses (:func:`py_class`, a dataclass with one field
  per C member, plus the model-only state of :class:`VcpuModel` or
  :class:`VmModel`);
* the C declaration (:func:`c_declaration`) and, for a step, the unified diff
  of the declarations it changes (:func:`c_diff`), which the chapters show.

Glossary
--------
member
    A field of a struct: a function pointer (its value is the name of the C
    function, or None for NULL), a value, an embedded struct, or a pointer
    to a struct (a Python reference to one of the vCPU's or VM's objects).
partial
    A struct of which only the MMU members are modelled
    (``kvm_vcpu_arch``, ``kvm_arch``); its declaration starts with ``...``.

KVM
---
Step 0 restates ``struct kvm_mmu`` and the MMU members of
``struct kvm_vcpu_arch`` from ``arch/x86/include/asm/kvm_host.h``
(torvalds/linux at 004a0aa56ede: 18 members, before the TDX
``mirror_root_hpa``). The types are KVM's; the notes are ours. Later steps
are the 2021 mail's structures and the intermediate ones this book adds.
"""

from __future__ import annotations

import dataclasses
import difflib
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Callable, Optional

from refimpl.errors import check_choice, check_instance, check_int
from refimpl.host.roles import CpuRole, PageRole
from refimpl.layouts.model import INVALID_ROOT, GuestRegs, Host, prev_roots

__all__ = [
    "STRUCT_NAMES", "CHANGES", "struct_at", "structs_at", "changed_structs", "py_class",
    "c_declaration", "c_diff", "c_diff_markdown",
]

STRUCT_NAMES = ("kvm_mmu_kind", "kvm_paging_context", "kvm_mmu", "kvm_arch", "kvm_vcpu_arch")
"""Every struct a step can change, in the order the chapters print them."""


@dataclass(frozen=True)
class CField:
    """One member of a C struct.

    Parameters
    ----------
    name : str
        The member's name, also the Python field's.
    decl : str
        Its C declarator with ``{}`` where the name goes
        (``"u64 *{}"``, ``"int (*{})(struct kvm_vcpu *vcpu)"``).
    note : str
        One line: what it holds (ours, not the kernel's comment).
    default : object
        The model's value of a fresh structure (None is NULL).
    factory : callable or None
        Builds the default instead (mutable or per-instance values).
    embeds : str or None
        For an embedded struct, its C name: the Python default is a fresh
        instance of that struct's class at the same step.
    """

    name: str
    decl: str
    note: str
    default: object = None
    factory: Optional[Callable[[], object]] = None
    embeds: Optional[str] = None

    def __post_init__(self) -> None:
        for k in ("name", "decl", "note"):
            check_instance(k, getattr(self, k), str)
        if "{}" not in self.decl:
            raise ValueError(f"CField {self.name}: decl must contain '{{}}' where the name goes")

    @property
    def c(self) -> str:
        """The member as one line of C."""
        return self.decl.format(self.name) + ";"

    @property
    def pointer(self) -> bool:
        """A pointer to a struct (not a function pointer, not an embedded struct)."""
        return self.decl.startswith(("struct ", "void ")) and "*{}" in self.decl


@dataclass(frozen=True)
class Struct:
    """One C struct as a step declares it.

    Parameters
    ----------
    name : str
        C name (``"kvm_mmu"``).
    py_name : str
        Name of the Python class (``"KvmMmu"``).
    doc : str
        One paragraph: what the struct is for at this step.
    fields : tuple of CField
    partial : bool
        Only the MMU members are modelled.
    """

    name: str
    py_name: str
    doc: str
    fields: tuple[CField, ...]
    partial: bool = False

    def __post_init__(self) -> None:
        check_choice("name", self.name, STRUCT_NAMES)
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"struct {self.name}: a member is declared twice")

    def names(self) -> tuple[str, ...]:
        """The members' names, in order."""
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> CField:
        """One member by name."""
        for f in self.fields:
            if f.name == name:
                return f
        raise ValueError(f"struct {self.name} has no member {name!r}")

    def edit(self, *, doc: Optional[str] = None, drop: tuple[str, ...] = (),
             rename: Optional[dict[str, CField]] = None, prepend: tuple[CField, ...] = (),
             append: tuple[CField, ...] = (), after: Optional[tuple[str, tuple[CField, ...]]] = None
             ) -> "Struct":
        """The struct as the next step changes it.

        Parameters
        ----------
        drop : tuple of str
            Members removed (moved elsewhere).
        rename : dict
            ``old name -> new CField`` (in place; a new name, type or both).
        prepend, append : tuple of CField
            Members added at the top or the bottom.
        after : (str, tuple of CField) or None
            Members added right after a named one.

        Raises
        ------
        ValueError
            A dropped or renamed member that does not exist.
        """
        rename = rename or {}
        for n in (*drop, *rename):
            self.field(n)
        out: list[CField] = list(prepend)
        for f in self.fields:
            if f.name in drop:
                continue
            g = rename.get(f.name, f)
            out.append(g)
            if after is not None and g.name == after[0]:
                out.extend(after[1])
        out.extend(append)
        return Struct(self.name, self.py_name, self.doc if doc is None else doc, tuple(out),
                      self.partial)


# ---------------------------------------------------------------------------
# The members, as KVM declares them (types restated from kvm_host.h)
# ---------------------------------------------------------------------------

def _cb(name: str, decl: str, note: str) -> CField:
    return CField(name, decl, note)


_GET_GUEST_PGD = _cb("get_guest_pgd", "unsigned long (*{})(struct kvm_vcpu *vcpu)",
                     "reads the root of the walked tables: CR3, EPTP12 or nCR3")
_GET_PDPTR = _cb("get_pdptr", "u64 (*{})(struct kvm_vcpu *vcpu, int index)",
                 "reads PAE PDPTE number index")
_PAGE_FAULT = _cb("page_fault", "int (*{})(struct kvm_vcpu *vcpu, struct kvm_page_fault *fault)",
                  "handles a fault on this MMU's roots")
_INJECT = _cb("inject_page_fault",
              "void (*{})(struct kvm_vcpu *vcpu, struct x86_exception *fault)",
              "delivers a fault that a software walk found")
_GVA_TO_GPA = _cb("gva_to_gpa",
                  "gpa_t (*{})(struct kvm_vcpu *vcpu, struct kvm_mmu *mmu, gpa_t gva_or_gpa, "
                  "u64 access, struct x86_exception *exception)",
                  "the software walker of the guest tables")
_SYNC_SPTE = _cb("sync_spte", "int (*{})(struct kvm_vcpu *vcpu, struct kvm_mmu_page *sp, int i)",
                 "re-syncs one SPTE of an unsync shadow page")
_ROOT = CField("root", "struct kvm_mmu_root_info {}", "current root: guest pgd and host page",
               INVALID_ROOT)
_CPU_ROLE = CField("cpu_role", "union kvm_cpu_role {}",
                   "paging mode of the tables walked", factory=CpuRole)
_ROOT_ROLE = CField("root_role", "union kvm_mmu_page_role {}",
                    "format of the tables KVM builds", factory=PageRole)
_PKRU_MASK = CField("pkru_mask", "u32 {}", "protection-key lookup mask (0 without PKE)", 0)
_PREV_ROOTS = CField("prev_roots", "struct kvm_mmu_root_info {}[KVM_MMU_NUM_PREV_ROOTS]",
                     "cache of earlier roots", factory=prev_roots)
_PERMISSIONS = CField("permissions", "u8 {}[16]",
                      "permission-fault bitmap, by error code and access rights")
_PAE_ROOT = CField("pae_root", "u64 *{}", "special root page for PAE-format roots", False)
_PML4_ROOT = CField("pml4_root", "u64 *{}", "special PML4 over a 32-bit or PAE shadow root",
                    False)
_PML5_ROOT = CField("pml5_root", "u64 *{}", "special PML5 over it, with a 5-level host", False)
_ZERO_CHECK = CField("shadow_zero_check", "struct rsvd_bits_validate {}",
                     "bits that must be zero in the SPTEs KVM builds")
_GUEST_RSVD = CField("guest_rsvd_check", "struct rsvd_bits_validate {}",
                     "reserved bits of the guest's entries")
_PDPTRS = CField("pdptrs", "u64 {}[4]", "cached PAE PDPTEs", (0, 0, 0, 0))

WALK_FIELDS = ("get_guest_pgd", "get_pdptr", "inject_page_fault", "gva_to_gpa", "cpu_role",
               "pkru_mask", "permissions", "guest_rsvd_check", "pdptrs")
"""The guest-walk half of the 2021 ``struct kvm_mmu``: what step 2 moves out."""

KIND_FIELDS = ("sync_spte", "shadow_zero_check")
"""What operating on KVM's tables without a vCPU needs: what step 3 moves out."""


def _ptr(name: str, struct: str, note: str) -> CField:
    return CField(name, f"struct {struct} *{{}}", note)


def _embed(name: str, struct: str, note: str) -> CField:
    return CField(name, f"struct {struct} {{}}", note, embeds=struct)


_KVM_MMU_0 = Struct(
    "kvm_mmu", "KvmMmu",
    "``struct kvm_mmu`` as in KVM after the 2022 role series and the sync_page -> "
    "sync_spte rename (c3c6c9fc5d24): the guest walk, KVM's tables and its roots in "
    "one structure, three of them per vCPU.",
    (_GET_GUEST_PGD, _GET_PDPTR, _PAGE_FAULT, _INJECT, _GVA_TO_GPA, _SYNC_SPTE, _ROOT, _CPU_ROLE,
     _ROOT_ROLE, _PKRU_MASK, _PREV_ROOTS, _PERMISSIONS, _PAE_ROOT, _PML4_ROOT, _PML5_ROOT,
     _ZERO_CHECK, _GUEST_RSVD, _PDPTRS))

_VCPU_0 = Struct(
    "kvm_vcpu_arch", "KvmVcpuArch",
    "The MMU members of ``struct kvm_vcpu_arch``: three ``kvm_mmu`` and two pointers.",
    (_ptr("mmu", "kvm_mmu", "the MMU that handles faults"),
     _embed("root_mmu", "kvm_mmu", "L1's MMU, also L2's when L1 has no EPT/NPT"),
     _embed("guest_mmu", "kvm_mmu", "shadows L1's EPT/NPT while L2 runs"),
     _embed("nested_mmu", "kvm_mmu", "walks L2's own tables; never handles a fault"),
     _ptr("walk_mmu", "kvm_mmu", "the MMU used for gva-to-gpa walks (emulation)")),
    partial=True)

_VM_0 = Struct("kvm_arch", "Vm", "``struct kvm_arch`` holds no MMU structure yet.", (),
               partial=True)

_PAGING_CONTEXT = Struct(
    "kvm_paging_context", "KvmPagingContext",
    "``struct kvm_paging_context`` (2021 mail): what emulation needs to walk one guest's "
    "tables, the walk half of the old ``kvm_mmu``.",
    tuple(_KVM_MMU_0.field(n) for n in WALK_FIELDS))

_KIND = Struct(
    "kvm_mmu_kind", "KvmMmuKind",
    "``struct kvm_mmu_kind`` (2021 mail): what operating on KVM's tables needs without a "
    "running vCPU.",
    (CField("direct", "bool {}", "the tables map GPAs linearly (TDP)", False),
     _SYNC_SPTE, _ZERO_CHECK))

_WALK_PTR = _ptr("walk", "kvm_paging_context",
                 "the paging context whose tables these roots shadow")
_KIND_PTR = _ptr("kind", "kvm_mmu_kind", "&kvm->arch.direct_mmu or &vcpu->arch.shadow_mmu")

_VCPU_1 = _VCPU_0.edit(
    doc="Step 1's vCPU: ``nested_mmu`` is a paging context, ``walk_mmu`` is ``walk``.",
    rename={"nested_mmu": _embed("walk12", "kvm_paging_context", "walks L2's own tables"),
            "walk_mmu": CField("walk", "void *{}",
                               "&root_mmu (a kvm_mmu) or &walk12 until step 2")})
_KVM_MMU_2 = _KVM_MMU_0.edit(
    doc="Step 2's ``struct kvm_mmu``: roots and KVM's tables, and a pointer to its walk.",
    drop=WALK_FIELDS, prepend=(_WALK_PTR,))
_VCPU_2 = _VCPU_1.edit(
    doc="Step 2's vCPU: two ``kvm_mmu``, three paging contexts, two pointers.",
    rename={"guest_mmu": _embed("tdp12_mmu", "kvm_mmu", "shadows L1's EPT12/NPT12 while L2 runs"),
            "walk": _ptr("walk", "kvm_paging_context", "&root_walk or &walk12")},
    after=("tdp12_mmu", (_embed("root_walk", "kvm_paging_context",
                                "walks the tables of the guest on root_mmu"),
                         _embed("walk01", "kvm_paging_context", "walks L1's EPT12/NPT12"))))
_KVM_MMU_3 = _KVM_MMU_2.edit(
    doc="The sketch's ``struct kvm_mmu``: what a vCPU needs while it runs on a set of roots.",
    drop=KIND_FIELDS, prepend=(_KIND_PTR,))
_DIRECT_KIND = CField("direct_mmu", "struct kvm_mmu_kind {}", "the kind of TDP tables",
                      embeds="kvm_mmu_kind")
_VCPU_3 = _VCPU_2.edit(
    doc="Step 3's vCPU: two kinds, two ``kvm_mmu``, three paging contexts.",
    prepend=(_DIRECT_KIND, _embed("shadow_mmu", "kvm_mmu_kind", "the kind of shadow tables")))
_VCPU_4 = _VCPU_3.edit(doc="The sketch's vCPU: one kind, two ``kvm_mmu``, three paging contexts.",
                       drop=("direct_mmu",))
_VM_4 = Struct("kvm_arch", "KvmArch",
               "``struct kvm_arch`` with the VM's one direct kind (None in the model "
               "without TDP).",
               (CField("direct_mmu", "struct kvm_mmu_kind {}",
                       "the kind every vCPU's TDP roots share"),),
               partial=True)

CHANGES: dict[int, tuple[Struct, ...]] = {
    0: (_KVM_MMU_0, _VCPU_0, _VM_0),
    1: (_PAGING_CONTEXT, _VCPU_1),
    2: (_KVM_MMU_2, _VCPU_2),
    3: (_KIND, _KVM_MMU_3, _VCPU_3),
    4: (_VCPU_4, _VM_4),
}
"""The structs each step declares, as the step leaves them; a step not listed changes none."""

LAST_STEP = 8


def struct_at(step: int, name: str) -> Optional[Struct]:
    """The declaration of struct ``name`` after ``step`` (None before it exists).

    Raises
    ------
    ValueError
        Unknown struct or step out of range.
    """
    check_int("step", step)
    return _struct_at(step, name)


@lru_cache(maxsize=None)
def _struct_at(step: int, name: str) -> Optional[Struct]:
    if not 0 <= step <= LAST_STEP:
        raise ValueError(f"step must be in [0, {LAST_STEP}], got {step}")
    check_choice("name", name, STRUCT_NAMES)
    found = None
    for n in range(step + 1):
        for s in CHANGES.get(n, ()):
            if s.name == name:
                found = s
    return found


def structs_at(step: int) -> dict[str, Struct]:
    """Every struct that exists after ``step``, by C name."""
    out = {n: struct_at(step, n) for n in STRUCT_NAMES}
    return {n: s for n, s in out.items() if s is not None}


def changed_structs(step: int) -> tuple[str, ...]:
    """C names of the structs ``step`` changes (or, for step 0, declares)."""
    check_int("step", step)
    return tuple(n for n in STRUCT_NAMES if n in {s.name for s in CHANGES.get(step, ())})


# ---------------------------------------------------------------------------
# Rendering as C
# ---------------------------------------------------------------------------


def c_declaration(step: int, name: str, *, notes: bool = True) -> str:
    """The C declaration of struct ``name`` as ``step`` leaves it.

    Parameters
    ----------
    notes : bool
        Put each member's note after it as a comment.

    Raises
    ------
    ValueError
        The struct does not exist at that step.
    """
    s = struct_at(step, name)
    if s is None:
        raise ValueError(f"struct {name} does not exist at step {step}")
    lines = [f"struct {name} {{"]
    if s.partial:
        lines.append("\t...")
    for f in s.fields:
        lines.append(f"\t{f.c}" + (f"\t/* {f.note} */" if notes else ""))
    lines.append("};")
    return "\n".join(lines)


def c_diff(step_before: int, step_after: int, *, notes: bool = False) -> str:
    """A unified diff of the C declarations that differ between two steps.

    Structs that exist on one side only are diffed against nothing. Notes
    are left out by default, so a diff shows only what the compiler sees.

    Returns
    -------
    str
        The diff, one ``--- a/... +++ b/...`` section per struct; empty when
        no declaration changed.
    """
    out: list[str] = []
    for name in STRUCT_NAMES:
        a, b = struct_at(step_before, name), struct_at(step_after, name)
        if a == b:
            continue
        ta = c_declaration(step_before, name, notes=notes).splitlines() if a else []
        tb = c_declaration(step_after, name, notes=notes).splitlines() if b else []
        out.extend(difflib.unified_diff(ta, tb, f"step{step_before}/struct {name}",
                                        f"step{step_after}/struct {name}", n=20, lineterm=""))
    return "\n".join(out)


def c_diff_markdown(step_before: int, step_after: int) -> str:
    """:func:`c_diff` as a Markdown ``diff`` block, or a sentence when it is empty."""
    d = c_diff(step_before, step_after)
    if not d:
        return f"*No C structure changes between step {step_before} and step {step_after}.*"
    return f"```diff\n{d}\n```"


# ---------------------------------------------------------------------------
# Rendering as Python
# ---------------------------------------------------------------------------


@dataclass(eq=False)
class VmModel:
    """Model-only state of a VM (not in any C struct).

    Attributes
    ----------
    host : refimpl.layouts.model.Host
        Host and VM configuration.
    vcpus : list
        The VM's vCPUs, in creation order.
    root_pages : dict
        Root pages handed out so far: ``(root role word, guest gfn or None)``
        -> host address. KVM shares a TDP root between vCPUs with the same
        role (``kvm_tdp_mmu_get_vcpu_root_hpa``) and a shadow root between
        vCPUs with the same role and guest root (``kvm_mmu_get_shadow_page``),
        so a root is named by that key.
    """

    host: Host
    vcpus: list = field(default_factory=list)
    root_pages: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_instance("host", self.host, Host)
        check_instance("vcpus", self.vcpus, list)

    def root_hpa(self, key: tuple) -> int:
        """The host address of the root page for ``key``, allocated on first use."""
        if key not in self.root_pages:
            self.root_pages[key] = (len(self.root_pages) + 1) << 12
        return self.root_pages[key]


@dataclass(eq=False)
class VcpuModel:
    """Model-only state of a vCPU (not MMU state).

    Attributes
    ----------
    kvm : VmModel
        The VM (``vcpu->kvm``).
    regs : refimpl.layouts.model.GuestRegs
        Registers of the running guest (L2's in guest mode).
    guest_mode : bool
        ``is_guest_mode`` (``HF_GUEST_MASK``).
    l1_regs : GuestRegs or None
        L1's registers saved in vmcs12/vmcb01 while L2 runs.
    nested_pgd : int or None
        EPTP12 or nCR3 while L2 runs with nested TDP.
    resets : int
        How many times ``kvm_mmu_reset_context`` ran.
    """

    kvm: VmModel
    regs: GuestRegs = GuestRegs()
    guest_mode: bool = False
    l1_regs: Optional[GuestRegs] = None
    nested_pgd: Optional[int] = None
    resets: int = 0

    @property
    def host(self) -> Host:
        """The VM's host configuration."""
        return self.kvm.host

    def name_of(self, obj: object) -> str:
        """Which embedded structure ``obj`` is (``"root_mmu"``, ``"kvm.direct_mmu"``...).

        Raises
        ------
        ValueError
            ``obj`` is none of this vCPU's structures nor its VM's.
        """
        for f in dataclasses.fields(self):
            if f.metadata.get("embedded") and getattr(self, f.name) is obj:
                return f.name
        if obj is not None and getattr(self.kvm, "direct_mmu", None) is obj:
            return "kvm.direct_mmu"
        raise ValueError(f"{type(obj).__name__} is not a structure of this vCPU or its VM")


MODEL_ONLY = frozenset(f.name for f in dataclasses.fields(VcpuModel)) | frozenset(
    f.name for f in dataclasses.fields(VmModel))
"""Names of the model-only attributes of vCPUs and VMs."""

_CLASSES: dict[int, type] = {}
_HOME = {0: "refimpl.layouts.legacy", LAST_STEP: "refimpl.layouts.split"}


def _home(s: Struct, module: str) -> str:
    # Today's structs are documented in legacy, the sketch's in split.
    if s is struct_at(LAST_STEP, s.name):
        return _HOME[LAST_STEP]
    if s is struct_at(0, s.name):
        return _HOME[0]
    return module


def py_class(step: int, name: str, module: Optional[str] = None) -> type:
    """The Python class of struct ``name`` at ``step``, one per declaration.

    A step that does not change a struct gets the same class as the step
    before. The class is a dataclass (compared by identity) with one field
    per member, in C order, after the model-only fields of
    :class:`VcpuModel` (``kvm_vcpu_arch``) or :class:`VmModel`
    (``kvm_arch``).

    Parameters
    ----------
    module : str or None
        Module the class is documented in, for the steps between today's
        layout (:mod:`refimpl.layouts.legacy`) and the sketch's
        (:mod:`refimpl.layouts.split`); default this module.
    """
    s = struct_at(step, name)
    if s is None:
        raise ValueError(f"struct {name} does not exist at step {step}")
    if id(s) in _CLASSES:
        return _CLASSES[id(s)]
    specs = []
    for f in s.fields:
        if f.embeds is not None:
            sub = py_class(step, f.embeds, module)
            if f.name == "direct_mmu" and s.name == "kvm_vcpu_arch":
                fac = (lambda sub=sub: sub(direct=True))
            else:
                fac = sub
            specs.append((f.name, object, field(default_factory=fac, metadata={"embedded": True})))
        elif f.factory is not None:
            specs.append((f.name, object, field(default_factory=f.factory)))
        else:
            specs.append((f.name, object, field(default=f.default)))
    base = {"kvm_vcpu_arch": (VcpuModel,), "kvm_arch": (VmModel,)}.get(name, ())
    cls = dataclasses.make_dataclass(s.py_name, specs, bases=base, eq=False)
    cls.__module__ = _home(s, module or __name__)
    cls.__doc__ = _docstring(s)
    cls.struct = s
    _CLASSES[id(s)] = cls
    return cls


def _docstring(s: Struct) -> str:
    lines = [s.doc, "", "Attributes", "----------"]
    for f in s.fields:
        lines += [f"{f.name}", f"    ``{f.c}`` {f.note}."]
    if s.partial:
        lines += ["", "Only the MMU members are modelled; the model-only state is inherited."]
    lines += ["", "KVM", "---", f"``struct {s.name}``; the C declaration is "
              ":func:`refimpl.layouts.structs.c_declaration`."]
    return "\n".join(lines)
