"""A command's reply written in pieces from the engine's bytes (issue 15) is, byte for byte,
the reply ``JSONResponse`` writes of the whole body: any bytes, any encoding, any piece size
(pieces that cut characters and line ends), every shape of reply that carries output."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.responses import JSONResponse

from vmexec.execution.models import StreamOutput
from vmexec.services.reply_output import ReplyOutput, lacks_output, with_output, without_output
from vmexec.zstack.exec import CommandOutput

VM = {"uuid": "a" * 32, "name": "vm \u00e9\"1\"", "state": "Running"}


def replies(stdout: str, stderr: str) -> list[dict[str, Any]]:
    """Every reply shape with output: a command's (with and without ZStack's schema map), a
    timed-out one's error (output in ``opaque``)."""
    output = CommandOutput(stdout=stdout, stderr=stderr, exit_code=3, signal=None,
                           stdout_truncated=False, stderr_truncated=True, timed_out=False,
                           duration_ms=12)
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


@settings(max_examples=300, deadline=None)
@given(stdout=texts, stdout_end=line_ends, stderr=texts, stderr_end=line_ends,
       encoding=st.sampled_from(["utf-8", "cp437", "cp932", "cp1252"]),
       piece=st.integers(min_value=1, max_value=9))
def test_pieces_are_the_whole_replys_bytes(stdout: bytes, stdout_end: bytes, stderr: bytes,
                                           stderr_end: bytes, encoding: str,
                                           piece: int) -> None:
    out = StreamOutput(stdout + stdout_end, encoding=encoding)
    err = StreamOutput(stderr + stderr_end, encoding=encoding)
    lazy = ReplyOutput(out, err, piece_bytes=piece)
    for whole in replies(out.text, err.text):
        body = without_output(whole)
        assert lacks_output(body) and not lacks_output(whole)
        expected = JSONResponse(whole).body
        assert lazy.fill(body) == whole
        assert with_output(body, out.text, err.text) == whole
        assert b"".join(lazy.json_chunks(body)) == expected
        assert lazy.json_size(body) == len(expected)
        assert JSONResponse(lazy.fill(body)).body == expected  # the keys in their places


def test_an_error_without_output_is_written_as_it_is() -> None:
    body = {"error": {"code": "VM.EXEC.1001", "description": "no agent", "details": None}}
    lazy = ReplyOutput(StreamOutput(b""), StreamOutput(b""))
    assert not lacks_output(body)
    assert b"".join(lazy.json_chunks(body)) == JSONResponse(body).body
