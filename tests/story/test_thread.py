"""The thread's data: Sean's field list, his correction, and the fates of the fields.

Expectations are written out by hand from the list mails (by Message-ID) and
from ``struct kvm_mmu`` in ``arch/x86/include/asm/kvm_host.h`` of
kvm-x86/linux at 04f2bbf1c779.
"""

import pytest

from refimpl.story import thread

G = thread.SeanGroup

# struct kvm_mmu of the classic tree, copied by hand from kvm_host.h at
# kvm-x86/linux 04f2bbf1c779, in declaration order.
CLASSIC_FIELDS = {
    "get_guest_pgd", "get_pdptr", "page_fault", "inject_page_fault", "gva_to_gpa",
    "sync_spte", "root", "cpu_role", "root_role", "pkru_mask", "prev_roots",
    "permissions", "pae_root", "pml4_root", "pml5_root", "shadow_zero_check",
    "guest_rsvd_check", "pdptrs",
}


def test_sean_listed_24_fields_15_of_them_guest_context():
    # Counted by hand in message YYxvSfUPTXbclpSa@google.com (01:18 UTC).
    names = [n for n, _ in thread.SEAN_FIELDS]
    assert len(names) == len(set(names)) == 24
    guest = [n for n, g in thread.SEAN_FIELDS if g is G.GUEST_CONTEXT]
    assert len(guest) == 15
    never = {n for n, g in thread.SEAN_FIELDS if g is G.NEVER_PER_VM}
    assert never == {"root_hpa", "pae_root", "pml4_root", "pml5_root"}


def test_his_correction_moves_exactly_the_two_fault_callbacks():
    # YYx1mDJo/L79cKOH@google.com (01:44 UTC): "page_fault() and
    # inject_page_fault() could be per-VM".
    assert thread.SEAN_CORRECTIONS == {"page_fault": G.PER_VM, "inject_page_fault": G.PER_VM}
    assert thread.sean_final("page_fault") is G.PER_VM
    assert thread.sean_final("get_pdptr") is G.GUEST_CONTEXT
    final_guest = [n for n, _ in thread.SEAN_FIELDS if thread.sean_final(n) is G.GUEST_CONTEXT]
    assert len(final_guest) == 13
    with pytest.raises(ValueError, match="'root_role'"):
        thread.sean_final("root_role")      # a 2022 name, not one Sean listed
    with pytest.raises(TypeError, match="field"):
        thread.sean_final(3)


def test_the_correction_shows_in_the_tables():
    assert thread.sean_summary("page_fault") == "guest context → per VM"
    row = next(r for r in thread.sean_table().splitlines() if r.startswith("| `inject_page_fault`"))
    assert "guest context → per VM (01:44)" in row
    assert thread.group_label(G.PER_VM_IF) == "per VM under conditions"
    assert thread.sean_summary("prev_roots") == "previous roots"
    assert set(thread.GROUP_LABELS) == set(G)      # every group has a label


def test_fates_turn_2021_into_the_classic_structure():
    thread.check_fates()
    assert thread.fields_after() == CLASSIC_FIELDS


@pytest.mark.parametrize("broken, word", [
    (thread.FATES[1:], "missing=['get_guest_pgd']"),
    (thread.FATES + (thread.FATES[0],), "duplicated=['get_guest_pgd']"),
    (thread.FATES + (thread.Fate("lm_root", (), "x", "y"),), "unknown=['lm_root']"),
])
def test_check_fates_names_the_broken_field(broken, word):
    with pytest.raises(ValueError, match=word.replace("[", r"\[").replace("]", r"\]")):
        thread.check_fates(broken)


def test_removed_fields_are_the_ones_with_no_home_of_their_own():
    gone = {f.field for f in thread.FATES if f.field not in f.now}
    assert gone == {"translate_gpa", "sync_page", "invlpg", "mmu_role", "root_level",
                    "root_pgd", "ept_ad", "direct_map", "shadow_root_level", "root_hpa"}


def test_each_fate_cites_the_commit_that_made_it():
    # Read in the stored shortlogs: c3c6c9fc5d24 renamed sync_page to
    # sync_spte; 9fd4a4e3a3d9 removed FNAME(invlpg).
    src = {f.field: f.source for f in thread.FATES}
    assert src["sync_page"].startswith("c3c6c9fc5d24")
    assert src["invlpg"].startswith("9fd4a4e3a3d9")
    assert src["root_pgd"].startswith("b9e5603c2a3a") and src["root_hpa"].startswith("b9e5603c2a3a")
    assert src["direct_map"] == src["ept_ad"] == "role series, Paolo Bonzini, 2022"
    # The series' cover letters, read in the archive: v1 4 Feb, v2 21 Feb,
    # v3 14 Apr 2022 (the version merged).
    assert thread.ROLE_SERIES == ("20220204115718.14934-1-pbonzini@redhat.com",
                                  "20220221162243.683208-1-pbonzini@redhat.com",
                                  "20220414074000.31438-1-pbonzini@redhat.com")


def test_the_thread_in_order_with_utc_times():
    # Date: headers of the six mails, converted to UTC by hand.
    assert [(m.msg_id.split("@")[0][:12], m.date) for m in thread.THREAD] == [
        ("202111102230", "2021-11-10 22:29"),   # 14:29:51 -0800
        ("80407e4a-36e", "2021-11-10 22:44"),   # 23:44:54 +0100
        ("CANgfPd8hzDU", "2021-11-10 23:49"),   # 15:49:44 -0800
        ("YYxvSfUPTXbc", "2021-11-11 01:18"),   # 01:18:01 +0000
        ("YYx1mDJo/L79", "2021-11-11 01:44"),   # 01:44:56 +0000
        ("2c924ef5-2ff", "2021-11-11 07:06"),   # 08:06:31 +0100
    ]
    assert "not shadow paging" in thread.THREAD[0].gist


def test_tables_have_one_row_per_item():
    assert thread.sean_table().count("\n") == 24 + 1
    assert thread.thread_table().count("\n") == len(thread.THREAD) + 1
    assert len({m.msg_id for m in thread.THREAD}) == len(thread.THREAD) == 6


def test_groups_of_todays_fields_by_hand():
    assert thread.groups_of("root") == {G.GUEST_CONTEXT: ["root_pgd"], G.NEVER_PER_VM: ["root_hpa"]}
    assert thread.groups_of("root_role") == {
        G.GUEST_CONTEXT: ["mmu_role"], G.REDUNDANT: ["ept_ad", "direct_map", "shadow_root_level"]}
    assert thread.sean_summary("sync_spte") == "guest context (as sync_page, invlpg)"
    assert thread.sean_summary("pdptrs") == "guest context"
    with pytest.raises(ValueError, match="'mirror_root_hpa'"):
        thread.groups_of("mirror_root_hpa")


# ---------------------------------------------------------------------------
# The ledger's row for sync_spte, argued in the sketch chapter
# ---------------------------------------------------------------------------

def test_sync_spte_row_by_hand():
    from refimpl.story import ledger
    row = next(r for r in ledger.LEDGER if r.legacy == "kvm_mmu.sync_spte")
    assert row.home == "kvm_mmu_kind.sync_spte"              # the model's home (split.SKETCH_HOME)
    assert row.sean == "guest context (as sync_page, invlpg)"
    assert row.home_2026 == "kvm_mmu.sync_spte"                # NEWEST kvm_host.h: beside page_fault
    assert "vCPU" in row.reason and "needs no run-time state" not in row.reason


def test_only_per_vcpu_kinds_carry_a_sync_spte():
    # The row's argument: the per-VM direct kind never has a sync_spte, so
    # every callback that needs a vCPU sits in a per-vCPU shadow kind.
    from refimpl.layouts import legacy as L, split as S
    for key, v in S.configurations().items():
        if v.kvm.direct_mmu is not None:
            assert v.kvm.direct_mmu.sync_spte is None, key
    kvm = S.kvm_arch_init_vm(L.Host())
    a, b = S.kvm_mmu_create(kvm), S.kvm_mmu_create(kvm)
    assert a.shadow_mmu is not b.shadow_mmu and a.root_mmu.kind is b.root_mmu.kind


def test_sync_spte_follows_the_guest_format():
    # Which FNAME(sync_spte) a shadow kind holds is chosen by the format of
    # the guest tables it shadows (paging_tmpl.h instances): guest context.
    from refimpl.layouts import legacy as L, split as S
    kvm = S.kvm_arch_init_vm(L.Host(tdp_enabled=False))
    got = []
    for regs in (L.L1_REGS, L.GuestRegs(cr0=0x80010001, cr3=0x3000)):   # 64-bit, 32-bit
        v = S.kvm_mmu_create(kvm)
        S.set_regs(v, regs)
        got.append(v.root_mmu.kind.sync_spte)
    assert got == ["paging64_sync_spte", "paging32_sync_spte"]
    assert S.configurations()["vmx_ept"].tdp12_mmu.kind.sync_spte == "ept_sync_spte"
