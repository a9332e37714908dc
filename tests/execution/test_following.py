"""Cutting followed output on UTF-8 character boundaries (pure: no guest)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vmexec.execution.following import utf8_complete


@given(st.text(), st.data())
def test_a_cut_keeps_whole_characters_only(text: str, data: st.DataObject) -> None:
    encoded = text.encode()
    cut = data.draw(st.integers(0, len(encoded)))
    kept = utf8_complete(encoded[:cut])
    encoded[:kept].decode("utf-8")  # decodes alone
    # ... and is the longest prefix that does: at most the 3 bytes of one character wait.
    boundaries = [len(text[:i].encode()) for i in range(len(text) + 1)]
    assert kept == max(b for b in boundaries if b <= cut)


@given(st.binary())
def test_bytes_that_are_not_utf8_are_never_held_for_long(data: bytes) -> None:
    assert 0 <= len(data) - utf8_complete(data) <= 3


def test_examples() -> None:
    emoji = "\U0001f600".encode()  # F0 9F 98 80
    assert [utf8_complete(emoji[:i]) for i in range(5)] == [0, 0, 0, 0, 4]
    assert utf8_complete(b"a\xc3") == 1 and utf8_complete(b"a\xc3\xa9") == 3
    assert utf8_complete(b"\xff\xfe") == 2  # not UTF-8: waiting would not help
