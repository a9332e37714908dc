"""A command's reply written in pieces from the engine's bytes (issue 15) is, byte for byte,
the reply ``JSONResponse`` writes of the whole body: any bytes, any encoding, any piece size
(pieces that cut characters and line ends), the output in any pieces, every shape of reply
that carries output."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.responses import JSONResponse

from vmexec.execution.models import StreamOutput
from vmexec.services.reply_output import ReplyOutput, lacks_output, with_output, without_output
from vmexec.zstack.exec import CommandOutput, exact_fields

VM = {"uuid": "a" * 32, "name": "vm \u00e9\"1\"", "state": "Running"}


def replies(stdout: StreamOutput, stderr: StreamOutput, *,
            always_base64: bool) -> list[dict[str, Any]]:
    """Every reply shape with output: a command's (with and without ZStack's schema map), a
    timed-out one's error (output in ``opaque``); with the bytes of a stream that is not
    UTF-8, or of both (``always_base64``)."""
    output = CommandOutput(stdout=stdout.text, stderr=stderr.text, exit_code=3, signal=None,
                           stdout_truncated=False, stderr_truncated=True, timed_out=False,
                           duration_ms=12, stdout_data=stdout.data, stderr_data=stderr.data,
                           always_base64=always_base64)
    reply = output.reply(VM)
    error = {"error": {"code": "VM.EXEC.1003", "description": "timed out", "details": "d",
                       "opaque": output.to_json()}}
    return [reply, {**reply, "schema": {"vmInstance": "VmInstanceInventory"}}, error]


line_ends = st.sampled_from([b"", b"\n", b"\r\n", b"\r", b"\n\n", b"\r\n\r\n"])
texts = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=40).map(lambda t: t.encode()),
    st.lists(st.sampled_from([b"\xe2\x82\xac", b"\xe2\x82", b"\x80", b"\"", b"\\", b"\x00",
                              b"\x1f", b"\xf0\x9f\x98\x80", b"\xe2\x80\xa8", b"a", b"\r\n"]),
             max_size=20).map(b"".join))


def cut(data: bytes, at: list[int]) -> list[bytes]:
    """``data`` in pieces, cut at the offsets ``at`` (modulo its length; empty pieces too)."""
    points = sorted(a % (len(data) + 1) for a in at)
    return [data[i:j] for i, j in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=300, deadline=None)
@given(stdout=texts, stdout_end=line_ends, stderr=texts, stderr_end=line_ends,
       encoding=st.sampled_from(["utf-8", "cp437", "cp932", "cp1252"]),
       piece=st.integers(min_value=1, max_value=9), always_base64=st.booleans(),
       cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=6))
def test_pieces_are_the_whole_replys_bytes(stdout: bytes, stdout_end: bytes, stderr: bytes,
                                           stderr_end: bytes, encoding: str, piece: int,
                                           always_base64: bool, cuts: list[int]) -> None:
    # The engine's output comes in the pieces it was read in, cut anywhere.
    out = StreamOutput(cut(stdout + stdout_end, cuts), encoding=encoding)
    err = StreamOutput(cut(stderr + stderr_end, cuts[::-1]), encoding=encoding)
    lazy = ReplyOutput(out, err, piece_bytes=piece)
    for whole in replies(out, err, always_base64=always_base64):
        body = without_output(whole)
        assert lacks_output(body) and not lacks_output(whole)
        expected = JSONResponse(whole).body
        assert lazy.fill(body) == whole
        assert with_output(body, out, err) == whole
        assert b"".join(lazy.json_chunks(body)) == expected
        assert lazy.json_size(body) == len(expected)
        assert JSONResponse(lazy.fill(body)).body == expected  # the keys in their places


def test_a_reply_made_without_its_output_gets_its_bytes_keys_in_place() -> None:
    # How the service makes it: no output at all, then the keys put in (the bytes ones last).
    out, err = StreamOutput(b"\xff\x00"), StreamOutput(b"ok")
    empty = StreamOutput(b"")
    for always_base64 in (False, True):
        whole, _, error = replies(out, err, always_base64=always_base64)
        made, _, made_error = replies(empty, empty, always_base64=False)
        exact = exact_fields(out.data, err.data, always=always_base64)
        lazy = ReplyOutput(out, err, piece_bytes=4)
        for reply, bare in ((whole, made), (error, made_error)):
            body = without_output(bare, exact=exact)
            assert body == without_output(reply)
            assert b"".join(lazy.json_chunks(body)) == JSONResponse(reply).body


def test_an_error_without_output_is_written_as_it_is() -> None:
    body = {"error": {"code": "VM.EXEC.1001", "description": "no agent", "details": None}}
    lazy = ReplyOutput(StreamOutput(b""), StreamOutput(b""))
    assert not lacks_output(body)
    assert b"".join(lazy.json_chunks(body)) == JSONResponse(body).body
