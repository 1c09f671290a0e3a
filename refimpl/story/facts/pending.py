"""Facts cited before the audit, not yet confirmed: each moves to its part's module once checked."""

from refimpl.story.facts import Fact

FACTS = (
    Fact('01b31714bd90', 'commit', "cited in book/refactor_closing.md, book/refactor_step8_cr0wp_no_reset.md, refimpl/layouts/legacy.py, refimpl/layouts/steps/step0_legacy.py, refimpl/layouts/steps/step8_cr0wp_no_reset.py, refimpl/story/history.py", "pending audit", False),
    Fact('0a59a8b8a248', 'commit', "cited in book/refactor_step2_paging_context.md, refimpl/story/history.py", "pending audit", False),
    Fact('148fe965df16', 'commit', "cited in refimpl/story/history.py", "pending audit", False),
    Fact('1aa9b9572b10', 'commit', "cited in book/bugs_replayed.md, refimpl/bugs.py", "pending audit", False),
    Fact('216b1a47e80c', 'commit', "cited in book/refactor_step5_spte_takes_kind.md, refimpl/story/history.py", "pending audit", False),
    Fact('347a0d0ded16', 'commit', "cited in refimpl/story/history.py", "pending audit", False),
    Fact('3ddf6c06e13e', 'commit', "cited in refimpl/bugs.py, refimpl/host/shadow_mmu.py", "pending audit", False),
    Fact('4d25502aa12e', 'commit', "cited in refimpl/story/history.py", "pending audit", False),
    Fact('5f0b819995e1', 'commit', "cited in refimpl/bugs.py", "pending audit", False),
    Fact('5fd5387c89ec', 'commit', "cited in refimpl/bugs.py", "pending audit", False),
    Fact('72f734a435b2', 'commit', "cited in book/refactor_step3_kind.md, refimpl/story/history.py", "pending audit", False),
    Fact('7a458f0e1ba1', 'commit', "cited in refimpl/story/history.py", "pending audit", False),
    Fact('9e7b0e7fba45', 'commit', "cited in refimpl/bugs.py", "pending audit", False),
    Fact('a204badd8432', 'commit', "cited in book/refactor_closing.md, refimpl/story/history.py", "pending audit", False),
    Fact('a3fe5dbda0a4', 'commit', "cited in refimpl/story/history.py", "pending audit", False),
    Fact('a972e29c1d6c', 'commit', "cited in refimpl/story/history.py", "pending audit", False),
    Fact('ac889bdd23df', 'commit', "cited in book/refactor_step2_paging_context.md, refimpl/story/history.py", "pending audit", False),
    Fact('b99416dd992b', 'commit', "cited in book/refactor_step1_walk12.md", "pending audit", False),
    Fact('c22885050e65', 'commit', "cited in refimpl/bugs.py, refimpl/host/shadow_mmu.py", "pending audit", False),
    Fact('c7dfa4009965', 'commit', "cited in book/bugs_replayed.md, refimpl/bugs.py, refimpl/host/nested_svm.py", "pending audit", False),
    Fact('cf9f4c0eb169', 'commit', "cited in book/bugs_replayed.md, refimpl/bugs.py, refimpl/layouts/legacy.py", "pending audit", False),
    Fact('d42e93ee58d3', 'commit', "cited in book/refactor_step1_walk12.md, refimpl/story/history.py", "pending audit", False),
    Fact('e5ed0fb01004', 'commit', "cited in book/refactor_closing.md, refimpl/story/history.py", "pending audit", False),
    Fact('ec283cb1dcb9', 'commit', "cited in refimpl/story/history.py", "pending audit", False),
    Fact('fb509f76acc8', 'commit', "cited in book/bugs_replayed.md, book/refactor_step8_cr0wp_no_reset.md, refimpl/bugs.py, refimpl/layouts/legacy.py, refimpl/story/history.py", "pending audit", False),
    Fact('20230322013731.102955-*-minipli@grsecurity.net', 'message-id', "cited in refimpl/story/history.py", "pending audit", False),
    Fact('20260624213102.71082-1-pbonzini@redhat.com', 'message-id', "cited in book/refactor_closing.md, refimpl/story/history.py", "pending audit", False),
)
