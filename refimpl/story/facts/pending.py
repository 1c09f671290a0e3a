"""Facts cited before the audit, not yet confirmed: each moves to its part's module once checked."""

from refimpl.story.facts import Fact

FACTS = (
)
