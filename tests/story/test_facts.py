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
