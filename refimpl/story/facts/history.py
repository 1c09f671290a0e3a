"""Facts behind the history of the sketch (``refimpl/story/history.py``)."""

from refimpl.story.facts import Fact

_ROLES_REVLIST = "kvm.git revision-list mails (kvm@vger, 2022): shortlog of the role series"
_CHAINSAW = ("kvm.git revision-list mail revlist-50406d35f563-a204badd8432 (kvm@vger, "
             "June 2026): shortlog of branch kvm-chainsaw")

FACTS = (
    Fact("20230322013731.102955-1-minipli@grsecurity.net", "message-id",
         "v4 cover letter of Mathias Krause's CR0.WP series (22 Mar 2023)",
         "patch 2/6 of the series (In-Reply-To) and later covers linking it, kvm@vger", True),
    Fact("e5ed0fb01004", "commit", "\"KVM: x86/mmu: split cpu_role from mmu_role\"",
         _ROLES_REVLIST, True),
    Fact("7a458f0e1ba1", "commit",
         "\"KVM: x86/mmu: remove extended bits from mmu_role, rename field\" (mmu_role -> "
         "root_role)", _ROLES_REVLIST, True),
    Fact("ec283cb1dcb9", "commit", "\"KVM: x86/mmu: remove ept_ad field\"", _ROLES_REVLIST, True),
    Fact("347a0d0ded16", "commit", "\"KVM: x86/mmu: replace direct_map with root_role.direct\"",
         _ROLES_REVLIST, True),
    Fact("a972e29c1d6c", "commit",
         "\"KVM: x86/mmu: replace shadow_root_level with root_role.level\"", _ROLES_REVLIST, True),
    Fact("4d25502aa12e", "commit",
         "\"KVM: x86/mmu: replace root_level with cpu_role.base.level\"", _ROLES_REVLIST, True),
    Fact("a3fe5dbda0a4", "commit",
         "\"KVM: x86/mmu: Split huge pages mapped by the TDP MMU when dirty logging is "
         "enabled\" (David Matlack, 2022)", "later patches citing it, kvm@vger", True),
    Fact("20260624213102.71082-1-pbonzini@redhat.com", "message-id",
         "\"KVM: apply chainsaw to struct kvm_mmu\" (v2): kvm_mmu split into kvm_pagewalk, "
         "kvm_mmu and kvm_page_format", "lore link quoted in a stored 2026 kernel digest page",
         True),
    Fact("ac889bdd23df", "commit", "\"KVM: x86/mmu: introduce struct kvm_pagewalk\"", _CHAINSAW,
         True),
    Fact("d42e93ee58d3", "commit", "\"KVM: x86/mmu: change walk_mmu to struct kvm_pagewalk\"",
         _CHAINSAW, True),
    Fact("b99416dd992b", "commit", "\"KVM: x86/mmu: change nested_mmu.w to ngva_walk\"",
         _CHAINSAW, True),
    Fact("0a59a8b8a248", "commit",
         "\"KVM: x86/mmu: pull struct kvm_pagewalk out of struct kvm_mmu\"", _CHAINSAW, True),
    Fact("148fe965df16", "commit", "\"KVM: x86/mmu: unify root_gva_walk and ngva_walk\"",
         _CHAINSAW, True),
    Fact("a204badd8432", "commit", "merge of branch 'kvm-chainsaw'", _CHAINSAW, True),
)
