"""Decoding vmexec's Server-Sent Events into typed events (``vmexec.client.events``): pure."""

from __future__ import annotations

import json

import pytest

from vmexec.client import (
    BadEvent,
    OutputEvent,
    Result,
    RunFinished,
    TargetFinished,
    TargetOutput,
    TargetStarted,
)
from vmexec.client.events import RunReplay, decode_execution_event, decode_run_event


def test_output_events_carry_the_stream_the_text_and_the_resume_offset() -> None:
    event = decode_execution_event("stdout", json.dumps({"text": "héllo\n"}), "7")
    assert event == OutputEvent("stdout", "héllo\n", 7)
    assert isinstance(event, OutputEvent) and event.data == "héllo\n".encode()
    assert decode_execution_event("stderr", '{"text": ""}', "0") == OutputEvent("stderr", "", 0)


def test_the_result_event_is_the_jobs_reply() -> None:
    body = {"success": True, "exitCode": 3, "stdout": "x", "stderr": "", "timedOut": False}
    event = decode_execution_event("result", json.dumps({"status": 200, "body": body}), "1")
    assert isinstance(event, Result) and event.ok and event.error is None
    assert event.exec_result is not None and event.exec_result.shell_status == 3


def test_an_error_result_is_a_typed_api_error() -> None:
    error = {"code": "VM.EXEC.1010", "description": "The command was cancelled",
             "details": "by the user"}
    event = decode_execution_event(
        "result", json.dumps({"status": 503, "body": {"error": error}}), "12")
    assert isinstance(event, Result) and not event.ok and event.exec_result is None
    assert event.error is not None
    assert (event.error.status, event.error.code) == (503, "VM.EXEC.1010")
    assert str(event.error) == "VM.EXEC.1010: by the user"


def test_unknown_event_types_are_skipped() -> None:
    assert decode_execution_event("progress", "{}", "") is None
    assert decode_run_event("somethingNew", "not even json") is None


@pytest.mark.parametrize(("event", "data", "event_id"), [
    ("stdout", "not json", "1"),
    ("stdout", "[1]", "1"),
    ("stdout", '{"text": 3}', "1"),
    ("stdout", '{"text": "a"}', "x"),
    ("result", '{"body": {}}', "1"),
    ("result", '{"status": true, "body": {}}', "1"),
])
def test_malformed_known_events_are_bad_events(event: str, data: str, event_id: str) -> None:
    with pytest.raises(BadEvent):
        decode_execution_event(event, data, event_id)


def test_run_events() -> None:
    vm, ex = "a" * 32, "b" * 32
    assert decode_run_event("targetStarted", json.dumps(
        {"vmInstanceUuid": vm, "vmInstanceName": "web-1", "executionUuid": ex})
    ) == TargetStarted(vm, "web-1", ex)
    output = decode_run_event("output", json.dumps(
        {"vmInstanceUuid": vm, "executionUuid": ex, "stream": "stderr", "text": "e\n"}))
    assert output == TargetOutput(vm, ex, "stderr", "e\n")
    assert decode_run_event("targetFinished", json.dumps(
        {"vmInstanceUuid": vm, "executionUuid": ex, "state": "Failed", "exitCode": 2,
         "errorCode": None})) == TargetFinished(vm, ex, "Failed", 2, None)
    finished = decode_run_event("runFinished", json.dumps(
        {"inventory": {"uuid": "c" * 32, "state": "Succeeded"}}))
    assert isinstance(finished, RunFinished)
    assert (finished.run.uuid, finished.run.state) == ("c" * 32, "Succeeded")
    with pytest.raises(BadEvent):
        decode_run_event("output", json.dumps({"vmInstanceUuid": vm, "executionUuid": ex,
                                               "stream": "stdin", "text": ""}))


def test_a_replayed_run_stream_passes_only_what_had_not_come() -> None:
    vm, ex = "a" * 32, "b" * 32
    started = TargetStarted(vm, "web-1", ex)

    def out(text: str, stream: str = "stdout") -> TargetOutput:
        return TargetOutput(vm, ex, stream, text)  # type: ignore[arg-type]

    replay = RunReplay()
    replay.connected()
    assert replay.admit(started) == started
    assert replay.admit(out("hello ")) == out("hello ")
    assert replay.admit(out("e", "stderr")) == out("e", "stderr")
    # The connection drops; the new one replays everything, chunked differently (stored rows).
    replay.connected()
    assert replay.admit(started) is None
    assert replay.admit(out("hel")) is None
    assert replay.admit(out("lo wor")) == out("wor")
    assert replay.admit(out("ld\n")) == out("ld\n")
    assert replay.admit(out("e", "stderr")) is None
    finished = TargetFinished(vm, ex, "Succeeded", 0, None)
    assert replay.admit(finished) == finished
    assert replay.admit(finished) is None
