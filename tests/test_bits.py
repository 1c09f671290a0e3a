"""Field and Layout: the single source of bit layouts."""

import pytest
from hypothesis import given, strategies as st

from refimpl.bits import Field, Layout, bits


def test_masks_by_hand():
    assert Field("W", 1, 1).mask == 0b10
    assert Field("pkey", 59, 62).mask == 0x7800_0000_0000_0000
    assert bits(13, 20) == 0x1F_E000
    assert Field("pkey", 59, 62).bits_text() == "62:59"
    assert Field("W", 1, 1).bits_text() == "1"


def test_layout_rejects_overlap_and_overflow():
    with pytest.raises(ValueError, match="A and B overlap"):
        Layout("t", 8, (Field("A", 0, 3), Field("B", 3, 4)))
    with pytest.raises(ValueError, match="does not fit in 8 bits"):
        Layout("t", 8, (Field("A", 6, 8),))
    with pytest.raises(ValueError, match="defined twice"):
        Layout("t", 8, (Field("A", 0, 0), Field("A", 1, 1)))


@pytest.mark.parametrize("args, exc", [
    (("x", 3, 2), ValueError), (("x", -1, 2), ValueError),
    (("x", 0, 2.0), TypeError), (("not a name", 0, 0), ValueError),
])
def test_field_validates(args, exc):
    with pytest.raises(exc):
        Field(*args)


def test_set_rejects_values_that_do_not_fit():
    f = Field("level", 0, 3)
    assert f.set(0xF0, 5) == 0xF5
    with pytest.raises(ValueError, match="does not fit in 4 bit"):
        f.set(0, 16)
    with pytest.raises(ValueError, match="not a flag"):
        f.bit


ROLE_LIKE = Layout("demo", 16, (Field("level", 0, 3), Field("direct", 7, 7),
                                Field("access", 8, 10)))


def test_encode_by_hand():
    # level=4 -> 0x4; direct -> bit 7 = 0x80; access=7 -> bits 10:8 = 0x700
    assert ROLE_LIKE.encode(level=4, direct=1, access=7) == 0x784
    with pytest.raises(ValueError, match="no field 'smm'"):
        ROLE_LIKE.encode(smm=1)


@given(st.integers(0, 15), st.integers(0, 1), st.integers(0, 7))
def test_decode_inverts_encode(level, direct, access):
    word = ROLE_LIKE.encode(level=level, direct=direct, access=access)
    assert ROLE_LIKE.decode(word) == {"level": level, "direct": direct, "access": access}
    assert word & ~ROLE_LIKE.used_mask == 0


def test_markdown_lists_highest_bit_first():
    md = ROLE_LIKE.to_markdown().splitlines()
    assert md[2].startswith("| 10:8 | `access`") and md[-1].startswith("| 3:0 | `level`")
