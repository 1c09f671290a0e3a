"""The fact register: every commit id and Message-ID the book or refimpl cites has an entry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from refimpl.story.facts import FACTS, Fact, lookup

ROOT = Path(__file__).resolve().parents[2]
# A commit id: 12 to 40 hex digits with at least one letter and one digit,
# standing alone (not part of 0x..., a path, a longer word or a Message-ID).
COMMIT = re.compile(r"(?<![0-9A-Za-z_.x/*-])([0-9a-f]{12,40})(?![0-9A-Za-z_@.*-])")
# A Message-ID: local part @ one of the mail domains the thread and series use.
MSGID = re.compile(r"(?<![\w.+=/*-])[A-Za-z0-9._%+/=*-]+@(?:google\.com|redhat\.com|mail\.gmail\.com"
                   r"|grsecurity\.net|intel\.com|amd\.com|linux\.intel\.com|kernel\.org)")


def cited(text: str) -> set[str]:
    keys = {m.group(1) for m in COMMIT.finditer(text)
            if re.search("[a-f]", m.group(1)) and re.search("[0-9]", m.group(1))}
    return keys | {m.group(0) for m in MSGID.finditer(text)}


def sources() -> list[Path]:
    return sorted((ROOT / "book").glob("*.md")) + sorted((ROOT / "refimpl").rglob("*.py"))


def test_the_scanner_finds_what_a_chapter_would_cite():
    text = ("fixed by c3c6c9fc5d24 (see 20220221162243.683208-1-pbonzini@redhat.com); "
            "the mask 0x7ff0000000000000 and 12345678901234 are numbers, not commits")
    assert cited(text) == {"c3c6c9fc5d24", "20220221162243.683208-1-pbonzini@redhat.com"}


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_cited_id_is_registered(path):
    missing = sorted(k for k in cited(path.read_text(encoding="utf-8")) if lookup(k) is None)
    assert not missing, f"{path.relative_to(ROOT)} cites ids missing from refimpl.story.facts: {missing}"


def test_a_planted_unregistered_commit_is_caught():
    planted = "The rename landed as deadbeef1234 in 2023."
    assert [k for k in cited(planted) if lookup(k) is None] == ["deadbeef1234"]


def test_entries_are_well_formed():
    with pytest.raises(ValueError, match="kind"):
        Fact("x", "rumour", "c", "s", True)
    assert len({f.key for f in FACTS}) == len(FACTS)


def unconfirmed_without_a_word(text: str, facts) -> list[str]:
    """Keys of unconfirmed facts cited in ``text`` with no "unconfirmed" (or
    "not confirmed") within 600 characters of the citation."""
    bad = []
    for f in facts:
        if f.confirmed:
            continue
        for m in re.finditer(re.escape(f.key), text):
            near = text[max(0, m.start() - 600): m.end() + 600].lower()
            if "unconfirmed" not in near and "not confirmed" not in near:
                bad.append(f.key)
    return bad


@pytest.mark.parametrize("path", sorted((ROOT / "book").glob("*.md")), ids=lambda p: p.name)
def test_prose_on_an_unconfirmed_fact_says_so(path):
    bad = unconfirmed_without_a_word(path.read_text(encoding="utf-8"), FACTS)
    assert not bad, f"{path.name} cites unconfirmed facts without saying so: {sorted(set(bad))}"


def test_the_unconfirmed_check_catches_a_silent_citation():
    rumour = Fact("0123456789ab", "commit", "a rumoured fix", "nowhere", False)
    assert unconfirmed_without_a_word("Fixed by 0123456789ab in 2019.", [rumour]) == ["0123456789ab"]
    assert unconfirmed_without_a_word("Fixed by 0123456789ab (unconfirmed).", [rumour]) == []
