"""Cutting followed output on UTF-8 character boundaries, and output kept in pieces (pure: no
guest)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vmexec.execution.models import StreamOutput
from vmexec.execution.utf8 import prefix, utf8_complete, whole_characters


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


@given(st.binary(), st.lists(st.integers(min_value=0, max_value=300), max_size=8),
       st.integers(min_value=0, max_value=320))
def test_output_in_pieces_is_its_bytes(data: bytes, cuts: list[int], offset: int) -> None:
    points = sorted(c % (len(data) + 1) for c in cuts)
    pieces = [data[i:j] for i, j in zip([0, *points], [*points, len(data)], strict=True)]
    output = StreamOutput(pieces, total_bytes=len(data))
    assert output == StreamOutput(data, total_bytes=len(data))
    assert output.size == len(data) and output.data == data
    assert b"".join(output.after(offset)) == data[offset:]
    assert b"".join(prefix(pieces, offset)) == data[:offset]
    assert b"".join(whole_characters(pieces)) == data


@given(st.text(), st.lists(st.integers(min_value=0, max_value=300), max_size=8))
def test_utf8_in_pieces_decodes_piece_by_piece(text: str, cuts: list[int]) -> None:
    data = text.encode()
    points = sorted(c % (len(data) + 1) for c in cuts)
    pieces = [data[i:j] for i, j in zip([0, *points], [*points, len(data)], strict=True)]
    assert "".join(p.decode() for p in whole_characters(pieces)) == text
