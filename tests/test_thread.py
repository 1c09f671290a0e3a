"""The thread's data: Sean's field list and the fates of its fields."""

import pytest

from refimpl.story import thread

# struct kvm_mmu of the classic tree, written out by hand from
# ../shared/kvm-facts.md section 2.1 (kvm_host.h at kvm-x86 04f2bbf1).
CLASSIC_FIELDS = {
    "get_guest_pgd", "get_pdptr", "page_fault", "inject_page_fault", "gva_to_gpa",
    "sync_spte", "root", "cpu_role", "root_role", "pkru_mask", "prev_roots",
    "permissions", "pae_root", "pml4_root", "pml5_root", "shadow_zero_check",
    "guest_rsvd_check", "pdptrs",
}


def test_sean_listed_24_fields_15_of_them_guest_context():
    # Counted by hand in message YYxvSfUPTXbclpSa@google.com.
    names = [n for n, _ in thread.SEAN_FIELDS]
    assert len(names) == len(set(names)) == 24
    guest = [n for n, g in thread.SEAN_FIELDS if g is thread.SeanGroup.GUEST_CONTEXT]
    assert len(guest) == 15
    never = {n for n, g in thread.SEAN_FIELDS if g is thread.SeanGroup.NEVER_PER_VM}
    assert never == {"root_hpa", "pae_root", "pml4_root", "pml5_root"}


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


def test_tables_have_one_row_per_item():
    assert thread.sean_table().count("\n") == 24 + 1
    assert thread.thread_table().count("\n") == len(thread.THREAD) + 1
    assert len({m.msg_id for m in thread.THREAD}) == len(thread.THREAD) == 5


def test_groups_of_todays_fields_by_hand():
    G = thread.SeanGroup
    assert thread.groups_of("root") == {G.GUEST_CONTEXT: ["root_pgd"], G.NEVER_PER_VM: ["root_hpa"]}
    assert thread.groups_of("root_role") == {
        G.GUEST_CONTEXT: ["mmu_role"], G.REDUNDANT: ["ept_ad", "direct_map", "shadow_root_level"]}
    assert thread.sean_summary("sync_spte") == "guest context (as sync_page, invlpg)"
    assert thread.sean_summary("pdptrs") == "guest context"
    with pytest.raises(ValueError, match="'mirror_root_hpa'"):
        thread.groups_of("mirror_root_hpa")
