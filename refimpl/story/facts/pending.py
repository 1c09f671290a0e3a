"""Facts cited before the audit, not yet confirmed: each moves to its part's module once checked."""

from refimpl.story.facts import Fact

FACTS = (
    Fact('1f5a21ee8400', 'commit', "cited in refimpl/story/thread.py", "pending audit", False),
    Fact('9fd4a4e3a3d9', 'commit', "cited in refimpl/story/thread.py", "pending audit", False),
    Fact('b9e5603c2a3a', 'commit', "cited in refimpl/story/thread.py", "pending audit", False),
    Fact('c59a0f57fa32', 'commit', "cited in refimpl/story/thread.py", "pending audit", False),
    Fact('20211110223010.1392399-1-bgardon@google.com', 'message-id', "cited in book/dirty_logging.md, book/refactor_step5_spte_takes_kind.md, refimpl/story/thread.py", "pending audit", False),
    Fact('20220204115718.14934-1-pbonzini@redhat.com', 'message-id', "cited in refimpl/story/history.py, refimpl/story/ledger.py, refimpl/story/thread.py", "pending audit", False),
    Fact('2c924ef5-2ff9-c9a8-f28c-8bedaf8b1af6@redhat.com', 'message-id', "cited in book/refactor_step1_walk12.md, book/sketch.md, refimpl/story/history.py, refimpl/story/thread.py", "pending audit", False),
    Fact('80407e4a-36e1-e606-ed9f-74429f850e77@redhat.com', 'message-id', "cited in refimpl/story/thread.py", "pending audit", False),
    Fact('CANgfPd8hzDU+v52t9Kr=b48utC1p_j3yJ8gHzo-uifAxHbh-eQ@mail.gmail.com', 'message-id', "cited in refimpl/story/thread.py", "pending audit", False),
    Fact('YYxvSfUPTXbclpSa@google.com', 'message-id', "cited in book/refactor_step2_paging_context.md, book/refactor_step4_direct_kind_per_vm.md, refimpl/story/ledger.py, refimpl/story/thread.py", "pending audit", False),
)
