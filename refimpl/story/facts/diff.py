"""Facts behind the refactoring differential's real MMUs and the kept-shadow-roots mistake."""

from refimpl.story.facts import Fact

_STABLE_62 = ("20230515161722.317407140@linuxfoundation.org (stable@vger, 15 May 2023): "
              "[PATCH 6.2 016/242], the backport of 01b31714bd90 with its patch text")
_APPLIED = ("190509c8-0f05-d05c-831c-596d2c9664ac@grsecurity.net (kvm@vger, 25 Mar 2023): "
            "Mathias Krause's reply quoting the list of the v4 series' applied commits")

FACTS = (
    Fact("20230515161722.317407140@linuxfoundation.org", "message-id",
         "the 6.2 stable backport of \"KVM: x86: Do not unload MMU roots when only toggling "
         "CR0.WP with TDP enabled\" (upstream 01b31714bd90), carrying the patch to "
         "kvm_post_set_cr0 in arch/x86/kvm/x86.c", _STABLE_62, True),
    Fact("diff.kvm_post_set_cr0_tdp_only", "behaviour",
         "01b31714bd90 skips the unload only when tdp_enabled and the CR0 change is exactly "
         "X86_CR0_WP (then kvm_init_mmu alone); its comment gives the reason shadow paging "
         "keeps the reset: CR0.WP is part of the MMU role only for non-nested, indirect "
         "shadow MMUs, and with TDP it does not affect SPTEs", _STABLE_62, True),
    Fact("e40bcf9f3a18", "commit",
         "\"KVM: x86: Ignore CR0.WP toggles in non-paging mode\", patch 3/6 of Mathias "
         "Krause's v4 CR0.WP series (the rule step 8 models for CR0.PG=0)", _APPLIED, True),
    Fact("2fdcc1b32418", "commit",
         "\"KVM: x86/mmu: Avoid indirect call for get_cr3\", patch 1/6 of the same series",
         _APPLIED, True),
    Fact("diff.no_shadow_wp_fix_commit", "behaviour",
         "no commit titled \"Fix CR0.WP toggling for shadow paging\" was found in the stored "
         "list mail or shortlogs; the series' six applied patches are 2fdcc1b32418, "
         "01b31714bd90, e40bcf9f3a18, 74cdc836919b, 50f13998451e and fb509f76acc8, none of "
         "which drops the reset for shadow paging", _APPLIED, True),
    Fact("74cdc836919b", "commit",
         "\"KVM: x86: Make use of kvm_read_cr*_bits() when testing bits\", patch 4/6 of the "
         "series", _APPLIED, True),
    Fact("50f13998451e", "commit", "\"KVM: x86/mmu: Fix comment typo\", patch 5/6 of the series",
         _APPLIED, True),
    Fact("190509c8-0f05-d05c-831c-596d2c9664ac@grsecurity.net", "message-id",
         "Mathias Krause's reply (25 Mar 2023) quoting Sean Christopherson's list of the "
         "applied v4 patches with their kvm-x86 commit ids", _APPLIED, True),
    Fact("diff.kvm_mmu_child_role_from_parent", "behaviour",
         "a child shadow page's role is copied from its parent's role (level, access, "
         "direct and quadrant adjusted), so pages built below a root kept across a WP "
         "change carry the root's old cr0_wp",
         "David Matlack's patch adding kvm_mmu_child_role to arch/x86/kvm/mmu/mmu.c "
         "(kvm@vger, March 2022, reviewed by Peter Xu: role = parent_sp->role, then level, "
         "access, direct changed) and later mmu.c patches that keep that body", True),
)
