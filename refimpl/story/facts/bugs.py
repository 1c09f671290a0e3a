"""Facts behind the replayed bugs (book/bugs_replayed.md)."""

from refimpl.story.facts import Fact

_PULL = "kvm@vger mail 20230424173529.2648601-2-seanjc@google.com ([GIT PULL] KVM: x86: Misc changes for 6.4)"

FACTS = (
    Fact("cf9f4c0eb169", "commit",
         "'KVM: x86/mmu: Refresh CR0.WP prior to checking for emulated permission faults' "
         "(Sean Christopherson), Fixes: fb509f76acc8; the last commit of tag kvm-x86-misc-6.4",
         _PULL + "; the fix's patch mail (Fixes: fb509f76acc8, Reported-by: Mathias Krause)",
         True),
    Fact("20230424173529.2648601-2-seanjc@google.com", "message-id",
         "the kvm-x86 misc pull for 6.4 carries both fb509f76acc8 and its fix cf9f4c0eb169, "
         "so no release had the stale CR0.WP bug",
         "kvm@vger list archive, Mon 24 Apr 2023 10:35 -0700",
         True),
)
