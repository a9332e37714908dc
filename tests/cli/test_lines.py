"""Cutting many VMs' output into whole, prefixed lines (``vmexec.cli.lines``): pure, no VM."""

from __future__ import annotations

from vmexec.cli.lines import LineBuffer, prefix_of, prefixed


def test_a_line_split_across_chunks_comes_out_once_whole() -> None:
    lines: LineBuffer[str] = LineBuffer()
    assert lines.feed("a", b"hel") == []
    assert lines.feed("a", b"lo\nwor") == [b"hello\n"]
    assert lines.feed("a", b"ld\n") == [b"world\n"]
    assert lines.pending() == []


def test_sources_are_buffered_apart() -> None:
    lines: LineBuffer[tuple[str, str]] = LineBuffer()
    assert lines.feed(("vm1", "stdout"), b"one") == []
    assert lines.feed(("vm2", "stdout"), b"two\n") == [b"two\n"]
    assert lines.feed(("vm1", "stderr"), b"err\n") == [b"err\n"]
    assert lines.feed(("vm1", "stdout"), b" more\n") == [b"one more\n"]


def test_several_lines_in_one_chunk_and_empty_lines_are_kept() -> None:
    lines: LineBuffer[str] = LineBuffer()
    assert lines.feed("a", b"1\n\n2\r\n3") == [b"1\n", b"\n", b"2\r\n"]
    assert lines.end("a") == [b"3\n"]  # the source ended: its last line gets a line end
    assert lines.end("a") == []


def test_a_multibyte_character_cut_between_chunks_is_joined_before_output() -> None:
    data = "é€\n".encode()
    lines: LineBuffer[str] = LineBuffer()
    assert lines.feed("a", data[:1]) == []
    assert lines.feed("a", data[1:4]) == []
    assert lines.feed("a", data[4:]) == [data]


def test_prefixes_are_padded_to_the_longest_name() -> None:
    assert prefix_of("web-1", 8) == b"web-1    | "
    assert prefixed(prefix_of("db", 2), [b"a\n", b"b\n"]) == b"db | a\ndb | b\n"
    assert prefixed(b"x | ", []) == b""
