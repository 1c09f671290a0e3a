"""Full access.c enumeration of one paging depth, vectorised.

Every legal flag word of kvm-unit-tests' ``x86/access.c`` (19,169,280 of them
for 37 <= MAXPHYADDR < 52 with PKU) is judged twice, with NumPy:

* the **oracle** side, :func:`access_oracle.expected_vec`, states access.c's
  rules (``ac_emulate_access`` / ``ac_test_permissions``) and never looks at
  ``refimpl``;
* the **model** side builds the entries access.c would write, then walks them
  with ``refimpl``'s own pieces: the reserved-bit masks of
  :func:`refimpl.guest.rsvd.reset_rsvds_bits_mask`, the rights summary of
  :meth:`refimpl.guest.formats.EntryFormat.gpte_access`, the permission bitmap and
  PKRU mask of :mod:`refimpl.guest.permissions` (``update_permission_bitmask``,
  ``update_pkru_bitmask``, ``permission_fault``) and the error-code rule of
  :func:`refimpl.guest.faults.page_fault_error_code`. The scalar refimpl functions
  are evaluated once over their small input domains into lookup tables, which
  NumPy then indexes. The parts that live in the walker itself (stop at the
  first non-present or reserved entry; A/D written only on success) are
  restated here from ``/work/shared/refimpl-api.md``.

The two must agree on fault, error code, and the A/D bits of the PTE and the
PDE (PDE.A is "don't care" where access.c says so).

``--mode batch`` instead runs the whole walk through
:func:`refimpl.translate_batch`: one page-table tree gives every entry part of
a flag word its own GVA, and each group of words sharing one CPU state and
access kind is one ``translate_batch`` call (see :class:`BatchLayout`). The
scalar ``translate`` is exercised on random samples by
``tests/guest/test_access_oracle.py``.

Run: ``python -m benchmarks.access_enum [--mode tables|batch] [--depth 4|5]
[--maxphyaddr N] [--no-pku] [--smep] [--limit N]``. Exit status 0 when every
combination agrees.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import access_oracle as ao  # noqa: E402
from access_oracle import AC  # noqa: E402

U64 = np.uint64


def _v(flags: np.ndarray, flag: AC) -> np.ndarray:
    return (flags & np.uint32(flag)) != 0


def _bit(cond: np.ndarray, value: int) -> np.ndarray:
    return np.where(cond, U64(value), U64(0))


# ---------------------------------------------------------------------------
# The entries access.c writes (layout, not expectation)
# ---------------------------------------------------------------------------


def entries_vec(flags: np.ndarray, depth: int) -> dict[int, np.ndarray]:
    """Entry values by level (``depth`` .. 1) for each flag word, as uint64.

    Mirrors :func:`access_oracle.upper_entry`, ``pde_value`` and ``pte_value``
    (checked against them in :func:`_self_check`).
    """
    n = flags.shape[0]
    pkey = _v(flags, AC.PKU_PKEY)
    pse = _v(flags, AC.PDE_PSE)
    out: dict[int, np.ndarray] = {}
    for lvl in range(depth, 2, -1):
        e = np.full(n, ao.upper_entry(0, depth, lvl), U64)
        if lvl == 3:
            e &= ~_bit(_v(flags, AC.PDPTE_NO_WRITABLE), ao.E_W)
        out[lvl] = e
    pde = np.where(pse, U64(ao.PAGE_GPA | ao.E_PS), U64(ao.table_gpa(depth, 2)))
    pde |= np.where(pkey, np.where(pse, U64(1 << 59), U64(2 << 59)), U64(0))
    for flag, bit in ((AC.PDE_PRESENT, ao.E_P), (AC.PDE_WRITABLE, ao.E_W),
                      (AC.PDE_USER, ao.E_U), (AC.PDE_ACCESSED, ao.E_A),
                      (AC.PDE_DIRTY, ao.E_D), (AC.PDE_NX, ao.E_NX),
                      (AC.PDE_BIT51, 1 << 51), (AC.PDE_BIT36, 1 << 36),
                      (AC.PDE_BIT13, 1 << 13)):
        pde |= _bit(_v(flags, flag), bit)
    out[2] = pde
    pte = np.full(n, ao.PAGE_GPA, U64) | _bit(pkey, 1 << 59)
    for flag, bit in ((AC.PTE_PRESENT, ao.E_P), (AC.PTE_WRITABLE, ao.E_W),
                      (AC.PTE_USER, ao.E_U), (AC.PTE_ACCESSED, ao.E_A),
                      (AC.PTE_DIRTY, ao.E_D), (AC.PTE_NX, ao.E_NX),
                      (AC.PTE_BIT51, 1 << 51), (AC.PTE_BIT36, 1 << 36)):
        pte |= _bit(_v(flags, flag), bit)
    out[1] = pte
    return out


# ---------------------------------------------------------------------------
# The model side: refimpl's tables, indexed with NumPy
# ---------------------------------------------------------------------------

# Control index: CR0.WP | SMEP<<1 | EFER.NX<<2 | PKE<<3 | PKRU.AD1<<4 | PKRU.WD1<<5
# Access index: W | U<<1 | F<<2


def _ctrl_index(flags: np.ndarray) -> np.ndarray:
    idx = np.zeros(flags.shape[0], np.intp)
    for i, f in enumerate((AC.CPU_CR0_WP, AC.CPU_CR4_SMEP, AC.CPU_EFER_NX,
                           AC.CPU_CR4_PKE, AC.PKU_AD, AC.PKU_WD)):
        idx |= _v(flags, f).astype(np.intp) << i
    return idx


def _access_index(flags: np.ndarray) -> np.ndarray:
    return (_v(flags, AC.ACCESS_WRITE).astype(np.intp)
            | _v(flags, AC.ACCESS_USER).astype(np.intp) << 1
            | _v(flags, AC.ACCESS_FETCH).astype(np.intp) << 2)


def _access_word(aidx: int) -> int:
    return (2 if aidx & 1 else 0) | (4 if aidx & 2 else 0) | (16 if aidx & 4 else 0)


class ModelTables:
    """refimpl's permission / PKU / error-code / reserved-bit logic as arrays."""

    def __init__(self, depth: int, maxphyaddr: int):
        from refimpl.guest.faults import WalkError, page_fault_error_code
        from refimpl.guest.formats import PTTYPE64
        from refimpl.guest.permissions import (permission_fault, update_permission_bitmask,
                                         update_pkru_bitmask)
        from refimpl.guest.rsvd import reset_rsvds_bits_mask

        # perm[ctrl, access, acc, pkey] -> 0, P or P|PK
        perm = np.zeros((64, 8, 8, 2), np.uint8)
        for ctrl in range(64):
            wp, smep, nx, pke, ad, wd = ((ctrl >> i) & 1 for i in range(6))
            table = update_permission_bitmask(cr0_wp=bool(wp), cr4_smep=bool(smep),
                                              cr4_smap=False, efer_nx=bool(nx))
            pkru_mask = update_pkru_bitmask(cr4_pke=bool(pke), cr0_wp=bool(wp))
            pkru = (0x30 | wd << 3 | ad << 2) if pke else ao.PKRU_PKE_OFF
            for aidx in range(8):
                for acc in range(8):
                    for pkey in range(2):
                        perm[ctrl, aidx, acc, pkey] = permission_fault(
                            table, pkru_mask, pte_access=acc, pte_pkey=pkey,
                            access=_access_word(aidx), rflags_ac=False, pkru=pkru)
        self.perm = perm
        # err[reason, access, has_pferr_fetch, perm_is_pk]; reason 0 NP, 1 RSVD, 2 PERM
        err = np.zeros((3, 8, 2, 2), np.uint8)
        for r, reason in enumerate((WalkError.NOT_PRESENT, WalkError.RSVD, WalkError.PERMISSION)):
            for aidx in range(8):
                for hpf in range(2):
                    for pk in range(2):
                        err[r, aidx, hpf, pk] = page_fault_error_code(
                            reason, _access_word(aidx), has_pferr_fetch=bool(hpf),
                            perm_errcode=0x21 if pk else 0x1)
        self.err = err
        # rsvd[level][nx, bit7]
        self.rsvd = {}
        for lvl in range(1, depth + 1):
            t = np.zeros((2, 2), U64)
            for nx in range(2):
                m = reset_rsvds_bits_mask(root_level=depth, maxphyaddr=maxphyaddr,
                                          nx=bool(nx), gbpages=True, pse=False)
                for b7 in range(2):
                    t[nx, b7] = m.rsvd_bits_mask[b7][lvl - 1]
            self.rsvd[lvl] = t
        # acc of a path: gpte_access over (AND of entries with NX flipped) ^ NX,
        # which only depends on bits P, W, U and NX: 16 values.
        self.acc = np.array([PTTYPE64.gpte_access((k & 7) | (ao.E_NX if k & 8 else 0))
                             for k in range(16)], np.intp)
        self.depth = depth


class ModelResult:
    def __init__(self, fault, error, pte_add, pde_add):
        self.fault, self.error, self.pte_add, self.pde_add = fault, error, pte_add, pde_add


def model_access(t: ModelTables, flags: np.ndarray, entries: dict[int, np.ndarray],
                 aidx: np.ndarray) -> ModelResult:
    """One access per flag word through the model pieces."""
    n = flags.shape[0]
    nx = _v(flags, AC.CPU_EFER_NX).astype(np.intp)
    NP, RSVD, PERM, OK = 0, 1, 2, 3
    reason = np.full(n, OK, np.int8)
    done = np.zeros(n, bool)
    walk = np.full(n, ~U64(0), U64)   # AND over the path of (entry ^ NX)
    leaf_is_pde = np.zeros(n, bool)
    for lvl in range(t.depth, 0, -1):
        e = entries[lvl]
        active = ~done
        if lvl == 1:
            active &= ~leaf_is_pde
        present = (e & U64(ao.E_P)) != 0
        b7 = ((e >> U64(7)) & U64(1)).astype(np.intp)
        rsvd = (e & t.rsvd[lvl][nx, b7]) != 0
        np_here = active & ~present
        rs_here = active & present & rsvd
        reason[np_here] = NP
        reason[rs_here] = RSVD
        done |= np_here | rs_here
        ok_here = active & ~done
        walk = np.where(ok_here, walk & (e ^ U64(ao.E_NX)), walk)
        if lvl == 2:
            leaf_is_pde = ok_here & ((e & U64(ao.E_PS)) != 0)
    reached = reason == OK
    k = ((walk & U64(7)) | np.where((walk & U64(ao.E_NX)) == 0, U64(8), U64(0))).astype(np.intp)
    acc = t.acc[k]
    leaf = np.where(leaf_is_pde, entries[2], entries[1])
    pkey = ((leaf >> U64(59)) & U64(15)).astype(np.intp)
    pkey = np.minimum(pkey, 1)  # leaf keys are 0 or 1 in this layout
    perm = t.perm[_ctrl_index(flags), aidx, acc, pkey]
    reason[reached & (perm != 0)] = PERM
    fault = reason != OK
    hpf = (_v(flags, AC.CPU_EFER_NX) | _v(flags, AC.CPU_CR4_SMEP)).astype(np.intp)
    error = t.err[np.minimum(reason, 2), aidx, hpf, (perm >> 5) & 1]
    error = np.where(fault, error, 0).astype(np.uint8)
    # A/D: written only when the walk succeeds: A in every entry used, D in
    # the leaf on a write.
    ok = ~fault
    wr = (aidx & 1) != 0
    leaf_bits = (np.where(ok, ao.E_A, 0) | np.where(ok & wr, ao.E_D, 0)).astype(np.uint8)
    pte_add = np.where(leaf_is_pde, 0, leaf_bits).astype(np.uint8)
    pde_add = np.where(leaf_is_pde, leaf_bits, np.where(ok, ao.E_A, 0)).astype(np.uint8)
    return ModelResult(fault, error, pte_add, pde_add)


def model_vec(t: ModelTables, flags: np.ndarray, depth: int) -> ModelResult:
    """The model's outcome for each flag word, including the priming read."""
    entries = entries_vec(flags, depth)
    aidx = _access_index(flags)
    r = model_access(t, flags, entries, aidx)
    twice = _v(flags, AC.ACCESS_TWICE)
    if twice.any():
        first = model_access(t, flags, entries, np.zeros_like(aidx))
        r.pte_add |= np.where(twice, first.pte_add, 0).astype(np.uint8)
        r.pde_add |= np.where(twice, first.pde_add, 0).astype(np.uint8)
    return r


# ---------------------------------------------------------------------------
# --mode batch: the real vectorised walker (refimpl.translate_batch)
# ---------------------------------------------------------------------------
#
# A flag word splits into an "entry" part (bits 18:0: PTE, PDE, PDPTE.ro) and
# a "group" part (bits 30:19: PKRU, pkey, access kind, CPU bits). One guest
# memory holds a page-table tree in which every entry part has its own GVA:
# PDPT slot base + (ro << 1 | pde.13), PD slot = the other 9 PDE flags, PT
# slot = the 8 PTE flags; every non-leaf PDE has its own page table. Each
# group then is one CPU state and one access: translate_batch runs it over
# all the group's legal entry parts at once.
#
# Every PTE is walked by exactly one GVA, so its final A/D bits are checked
# per case. A PDE is shared by the 256 GVAs that differ only in PTE flags;
# since a walk only ORs A/D in, its final A/D must lie between the OR of the
# bits the oracle requires (don't-care bits left out) and the OR of the bits
# it allows.

ENTRY_BITS = 19
_ADDR36 = ((1 << 36) - 1) & ~0xFFF


class BatchLayout:
    """The page-table tree of the batch mode (one per pkey value)."""

    def __init__(self, depth: int, pkey: bool):
        self.depth = depth
        base = ao.TABLES_GPA
        self.root = base
        upper = [base + 4096 * (i + 1) for i in range(depth - 3)]  # below root .. PDPT
        self.pd = base + 4096 * (depth - 2)                   # 4 PDs
        self.pt = self.pd + 4096 * 4                          # 1024 PTs
        self.end = self.pt + 1024 * 4096
        self.pdpt_slot0 = ao.pt_index(ao.TEST_GVA, 3) & ~3
        words = {}
        tables = [self.root] + upper                          # level depth .. 3 tables
        for i, lvl in enumerate(range(depth, 3, -1)):
            words[tables[i] + 8 * ao.pt_index(ao.TEST_GVA, lvl)] = tables[i + 1] | 7
        pdpt = tables[-1]
        for ro in (0, 1):
            for sel in (0, 1):
                e = (self.pd + 4096 * (ro << 1 | sel)) | ao.E_P | ao.E_U | (0 if ro else ao.E_W)
                words[pdpt + 8 * (self.pdpt_slot0 + (ro << 1 | sel))] = e
        pk = int(AC.PKU_PKEY) if pkey else 0
        for ro in (0, 1):
            for v in range(1024):          # PDE flags (bits 17:8)
                f = v << 8 | pk
                pde = ao.pde_value(f, depth)
                if not f & AC.PDE_PSE:
                    pde = (pde & ~_ADDR36) | self.pt_of(ro, v)
                words[self.pd + 4096 * (ro << 1 | v >> 9) + 8 * (v & 511)] = pde
        self.image = np.zeros((self.end - base) // 8, U64)
        for a, w in words.items():
            self.image[(a - base) // 8] = w
        # Every page table holds the same 256 PTEs (PTE flags, bits 7:0); the
        # tables of 2 MiB PDEs are simply never reached.
        row = np.array([ao.pte_value(q | pk) for q in range(256)], U64)
        pts = self.image[(self.pt - base) // 8:].reshape(1024, 512)
        pts[:, :256] = row
        # Per entry part: gva, expected gpa, and the word index of PTE and PDE.
        e = np.arange(1 << ENTRY_BITS, dtype=np.int64)
        q, v, ro = e & 255, (e >> 8) & 1023, (e >> 18) & 1
        pse = (v << 8 & int(AC.PDE_PSE)) != 0
        gva_hi = ao.TEST_GVA & ~((1 << 39) - 1)
        self.gva = (np.uint64(gva_hi) | ((self.pdpt_slot0 + (ro << 1 | v >> 9)).astype(U64) << U64(30))
                    | ((v & 511).astype(U64) << U64(21)) | (q.astype(U64) << U64(12)))
        self.gpa = np.where(pse, ao.PAGE_GPA + (q << 12), ao.PAGE_GPA).astype(U64)
        # Word indices relative to ao.TABLES_GPA (index into self.image).
        self.pde_word = (self.pd - base + 4096 * (ro << 1 | v >> 9) + 8 * (v & 511)) // 8
        self.pte_word = np.where(pse, 0, (self.pt - base + 4096 * (ro * 512 + (v & 511))
                                          + 8 * q) // 8)

    def pt_of(self, ro: int, v: int) -> int:
        return self.pt + 4096 * (ro * 512 + (v & 511))


@functools.lru_cache(maxsize=4)
def _layout(depth: int, pkey: bool) -> BatchLayout:
    return BatchLayout(depth, pkey)


def run_batch(depth: int, maxphyaddr: int, pku: bool, smep: bool, limit: int, show: int):
    import refimpl

    mem = refimpl.GuestMemory(40 << 20)
    view = np.frombuffer(mem.buffer, dtype="<u8")
    lay = {pk: _layout(depth, pk) for pk in ((False, True) if pku else (False,))}
    w0 = ao.TABLES_GPA // 8
    checked = failed = shown = 0
    entry = np.arange(1 << ENTRY_BITS, dtype=np.uint32)
    ad = np.uint64(ao.E_A | ao.E_D)

    def report(f, what):
        nonlocal shown
        if shown < show:
            print(f"MISMATCH {ao.show(f)} [{f:#010x}]: {what}")
            shown += 1

    for key in range(1 << (ao.NR_AC_FLAGS - ENTRY_BITS)):
        if not ao.legal(key << ENTRY_BITS, maxphyaddr, pku, smep):
            continue
        flags = entry | np.uint32(key << ENTRY_BITS)
        flags = flags[ao.legal_vec(flags, maxphyaddr, pku, smep)]
        if limit and checked + flags.size > limit:
            flags = flags[: limit - checked]
        if flags.size == 0:
            break
        f0 = int(flags[0])
        L = lay[bool(f0 & AC.PKU_PKEY)]
        view[w0: w0 + L.image.size] = L.image
        cpu = refimpl.CpuState(**{**ao.cpu_kwargs(f0, depth, maxphyaddr), "cr3": L.root})
        e = (flags & np.uint32((1 << ENTRY_BITS) - 1)).astype(np.intp)
        gvas = L.gva[e]
        if f0 & AC.ACCESS_TWICE:
            refimpl.translate_batch(mem, cpu, gvas, 0)
        r = refimpl.translate_batch(mem, cpu, gvas, ao.access_mask(f0))
        exp = ao.expected_vec(flags)
        pse = _v(flags, AC.PDE_PSE)
        bad = (r.fault != exp.fault) | (np.where(r.fault, r.error_code, 0) != exp.error_code)
        bad |= r.fault & (r.vector != 14)
        bad |= ~r.fault & ((r.gpa != L.gpa[e]) | (r.level != np.where(pse, 2, 1)))
        # PTEs: one walk each.
        pte0 = L.image[L.pte_word[e]] & ad
        pte1 = view[L.pte_word[e] + w0] & ad
        bad |= ~pse & (pte1 != (pte0 | exp.pte_add.astype(U64)))
        # PDEs: shared; final A/D between the required and the allowed OR.
        pw = L.pde_word[e]
        uniq, inv = np.unique(pw, return_inverse=True)
        need = np.zeros(uniq.size, U64)
        allow = np.zeros(uniq.size, U64)
        np.bitwise_or.at(need, inv, (exp.pde_add & ~exp.pde_ignore).astype(U64))
        np.bitwise_or.at(allow, inv, exp.pde_add.astype(U64))
        init = L.image[uniq] & ad
        fin = view[uniq + w0] & ad
        pde_bad = ((fin & ~(init | allow)) != 0) | (((init | need) & ~fin) != 0)
        bad |= pde_bad[inv]
        checked += flags.size
        nbad = int(bad.sum())
        failed += nbad
        for i in np.nonzero(bad)[0][: max(0, show - shown)]:
            report(int(flags[i]),
                   f"oracle fault={bool(exp.fault[i])} err={int(exp.error_code[i]):#x} "
                   f"pte+={int(exp.pte_add[i]):#x} pde+={int(exp.pde_add[i]):#x}; "
                   f"translate_batch fault={bool(r.fault[i])} vector={int(r.vector[i])} "
                   f"err={int(r.error_code[i]):#x} gpa={int(r.gpa[i]):#x} level={int(r.level[i])} "
                   f"pte A/D {int(pte0[i]):#x}->{int(pte1[i]):#x} "
                   f"pde A/D {int(init[inv[i]]):#x}->{int(fin[inv[i]]):#x}")
        if limit and checked >= limit:
            break
    return checked, failed


# ---------------------------------------------------------------------------


def _self_check(depth: int, maxphyaddr: int, smep: bool) -> None:
    rng = np.random.default_rng(0)
    s = ao.sample_legal(rng, 2000, maxphyaddr, smep=smep)
    ent = entries_vec(s, depth)
    for i, f in enumerate(s.tolist()):
        assert int(ent[2][i]) == ao.pde_value(f, depth)
        assert int(ent[1][i]) == ao.pte_value(f)
        for lvl in range(depth, 2, -1):
            assert int(ent[lvl][i]) == ao.upper_entry(f, depth, lvl)


def compare(flags: np.ndarray, exp: ao.ExpectedVec, got: ModelResult) -> np.ndarray:
    """Indices where oracle and model disagree."""
    # Compare the final A/D bits (what the entries start with, plus what the
    # access adds), as access.c compares whole entries.
    pte0 = (np.where(_v(flags, AC.PTE_ACCESSED), ao.E_A, 0)
            | np.where(_v(flags, AC.PTE_DIRTY), ao.E_D, 0)).astype(np.uint8)
    pde0 = (np.where(_v(flags, AC.PDE_ACCESSED), ao.E_A, 0)
            | np.where(_v(flags, AC.PDE_DIRTY), ao.E_D, 0)).astype(np.uint8)
    keep = ~exp.pde_ignore
    bad = ((exp.fault != got.fault) | (exp.error_code != got.error)
           | ((pte0 | exp.pte_add) != (pte0 | got.pte_add))
           | ((pde0 | exp.pde_add) & keep != (pde0 | got.pde_add) & keep))
    return np.nonzero(bad)[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--depth", type=int, default=4, choices=(4, 5))
    p.add_argument("--maxphyaddr", type=int, default=40)
    p.add_argument("--no-pku", action="store_true")
    p.add_argument("--smep", action="store_true",
                   help="extension: also enumerate CR4.SMEP words (access.c rejects them)")
    p.add_argument("--limit", type=int, default=0, help="stop after this many combos")
    p.add_argument("--show", type=int, default=10, help="mismatches to print")
    p.add_argument("--mode", choices=("tables", "batch"), default="tables",
                   help="tables: refimpl's permission/rsvd/error tables (default); "
                        "batch: the whole walk through refimpl.translate_batch")
    a = p.parse_args(argv)
    pku = not a.no_pku

    t0 = time.perf_counter()
    _self_check(a.depth, a.maxphyaddr, a.smep)
    want = ao.count_legal(a.maxphyaddr, pku, a.smep)
    checked = failed = 0
    shown = 0
    if a.mode == "batch":
        checked, failed = run_batch(a.depth, a.maxphyaddr, pku, a.smep, a.limit, a.show)
        chunks = []
    else:
        tables = ModelTables(a.depth, a.maxphyaddr)
        chunks = ao.enumerate_legal(a.maxphyaddr, pku, a.smep)
    for chunk in chunks:
        if a.limit and checked + chunk.size > a.limit:
            chunk = chunk[: a.limit - checked]
        exp = ao.expected_vec(chunk)
        got = model_vec(tables, chunk, a.depth)
        bad = compare(chunk, exp, got)
        checked += chunk.size
        failed += bad.size
        for i in bad[: max(0, a.show - shown)]:
            f = int(chunk[i])
            print(f"MISMATCH {ao.show(f)} [{f:#010x}]: oracle fault={bool(exp.fault[i])} "
                  f"err={int(exp.error_code[i]):#x} pte+={int(exp.pte_add[i]):#x} "
                  f"pde+={int(exp.pde_add[i]):#x} (ignore {int(exp.pde_ignore[i]):#x}); "
                  f"model fault={bool(got.fault[i])} err={int(got.error[i]):#x} "
                  f"pte+={int(got.pte_add[i]):#x} pde+={int(got.pde_add[i]):#x}")
            shown += 1
        if a.limit and checked >= a.limit:
            break
    dt = time.perf_counter() - t0
    print(f"mode {a.mode}: {a.depth}-level paging, MAXPHYADDR={a.maxphyaddr}, "
          f"PKU={'on' if pku else 'off'}, "
          f"SMEP={'extension' if a.smep else 'access.c (rejected)'}")
    print(f"legal combos: {checked} checked (counted combinatorially: {want})")
    print(f"passed: {checked - failed}  failed: {failed}  elapsed: {dt:.1f} s")
    if not a.limit and checked != want:
        print("ERROR: enumeration count differs from the combinatorial count")
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
