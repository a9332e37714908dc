"""The exact bytes of output on the wire: ``stdoutBase64``/``stderrBase64``, base64 on output
events, and their way through the execution record's stored reply (pure)."""

from __future__ import annotations

import base64

from vmexec.client.events import OutputEvent, decode_execution_event, decode_run_event
from vmexec.client.models import ExecResult
from vmexec.execution.models import StreamOutput
from vmexec.services.reply_output import OUTPUT_KEYS, with_output, without_output
from vmexec.zstack.exec import CommandOutput, chunk_data, exact_output

BINARY = bytes(range(256))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_bytes_are_added_only_for_output_that_is_not_utf8() -> None:
    assert exact_output("é".encode(), b"") == {}
    assert exact_output(BINARY, b"ok") == {"stdoutBase64": b64(BINARY)}
    assert exact_output(b"a", b"b", always=True) == {"stdoutBase64": b64(b"a"),
                                                     "stderrBase64": b64(b"b")}
    # A character cut in two is not UTF-8 either.
    assert "stdoutBase64" in exact_output("é".encode()[:1], b"")


def test_a_chunk_keeps_its_text_and_gets_its_bytes_when_not_utf8() -> None:
    assert chunk_data(b"hi\n") == {"text": "hi\n"}
    assert chunk_data(b"\xffA") == {"text": "\ufffdA", "base64": b64(b"\xffA")}


def _reply(stdout: bytes, stderr: bytes, *, always: bool = False) -> dict[str, object]:
    output = CommandOutput(stdout=stdout.decode(errors="replace"),
                           stderr=stderr.decode(errors="replace"), exit_code=0, signal=None,
                           stdout_truncated=False, stderr_truncated=False, timed_out=False,
                           duration_ms=1, stdout_data=stdout, stderr_data=stderr,
                           always_base64=always)
    return output.reply({"uuid": "vm"})


def test_the_stored_reply_gives_back_the_same_reply() -> None:
    for stdout, stderr, always in [(BINARY, b"e", False), (b"o", b"e", True),
                                   (b"o", b"e", False), (BINARY, BINARY, False)]:
        reply = _reply(stdout, stderr, always=always)
        stored = without_output(reply)
        assert all(stored[k] is None for k in reply if k in OUTPUT_KEYS)
        assert with_output(stored, StreamOutput(stdout), StreamOutput(stderr)) == reply


def test_an_errors_opaque_output_comes_back_with_its_bytes() -> None:
    output = _reply(BINARY, b"")
    error = {"error": {"code": "VM.EXEC.1001", "opaque": {
        k: v for k, v in output.items() if k not in ("success", "vmInstance")}}}
    assert with_output(without_output(error), StreamOutput(BINARY), StreamOutput(b"")) == error


def test_a_reply_kept_without_its_output_keys_gets_its_bytes_back() -> None:
    # As the execution record kept it before the keys stayed in place (null): left out, and
    # marked when it had both streams' bytes.
    reply = _reply(b"o", b"e", always=True)
    kept = {k: v for k, v in reply.items()
            if k not in ("stream", "stdout", "stderr", "stdoutBase64", "stderrBase64")}
    filled = with_output({**kept, "vmexecBothBase64": True}, StreamOutput(b"o"),
                         StreamOutput(b"e"))
    assert filled == reply and "vmexecBothBase64" not in filled
    assert "stdoutBase64" not in with_output(kept, StreamOutput(b"o"), StreamOutput(b"e"))


def test_the_client_reads_the_exact_bytes() -> None:
    event = decode_execution_event("stdout", '{"text": "\\ufffd", "base64": "/w=="}', "1")
    assert isinstance(event, OutputEvent) and event.data == b"\xff"
    plain = decode_execution_event("stdout", '{"text": "h\\u00e9"}', "3")
    assert isinstance(plain, OutputEvent) and plain.data == "hé".encode()
    target = decode_run_event("output", '{"vmInstanceUuid": "v", "executionUuid": "e", '
                                        '"stream": "stderr", "text": "?", "base64": "AAE="}')
    assert target is not None and getattr(target, "data", None) == b"\x00\x01"
    result = ExecResult.from_wire(_reply(BINARY, b"err"))
    assert result.stdout_data == BINARY and result.stderr_data == b"err"
