"""The events of vmexec's Server-Sent Event streams, typed, and their decoding (pure: no I/O).

An execution's live output (``…/executions/{uuid}/output``):

- :class:`OutputEvent`: a chunk of ``stdout`` or ``stderr``, in the order the guest wrote it;
  ``offset`` (the event's ``id``) is the byte offset in the combined output right after it;
- :class:`Result`: last, the reply the execution's job has (HTTP ``status`` and ``body``).

A run's events (``…/runs/{uuid}/events``): :class:`TargetStarted`, :class:`TargetOutput`,
:class:`TargetFinished`, then :class:`RunFinished`.

Events of a type this client does not know are skipped (``None``), so a newer server may add
some; an event of a known type whose data is malformed is a :class:`BadEvent`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from vmexec.client.errors import ApiError, ClientError
from vmexec.client.models import ExecResult, Run

Stream = Literal["stdout", "stderr"]
STREAMS: tuple[Stream, ...] = ("stdout", "stderr")
#: The last event of an execution's output stream.
RESULT_EVENT = "result"


class BadEvent(ClientError):
    """The server sent an event this client cannot read (its type and why)."""


def text_bytes(text: str) -> bytes:
    """The bytes the guest wrote for ``text`` (UTF-8; undecodable bytes kept as the server
    escaped them with surrogates, if it did)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that did not come from an undecodable byte
        return text.encode("utf-8", "replace")


@dataclass(frozen=True)
class OutputEvent:
    """A chunk of an execution's output. ``offset`` is the byte offset in the execution's
    combined output (both streams) right after this chunk: ``follow(uuid, last_event_id=
    offset)`` resumes after it."""

    stream: Stream
    text: str
    offset: int
    #: The chunk's exact bytes when the server sent them (not UTF-8: ``base64``).
    raw: bytes | None = None

    @property
    def data(self) -> bytes:
        """The chunk's bytes as the guest wrote them."""
        return self.raw if self.raw is not None else text_bytes(self.text)


@dataclass(frozen=True)
class Result:
    """An execution's end: the reply its job has (``status`` 200 with the command's result,
    else a ZStack error: ``VM.EXEC.1001`` timed out, ``VM.EXEC.1010`` cancelled, ...).
    ``offset`` is the total bytes of output."""

    status: int
    body: Mapping[str, Any] = field(default_factory=dict)
    offset: int = 0

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def exec_result(self) -> ExecResult | None:
        """The command's result when the command ran (else None: see ``error``)."""
        return ExecResult.from_wire(self.body) if self.ok else None

    @property
    def error(self) -> ApiError | None:
        """The ZStack error the execution ended with (None when the command ran)."""
        return None if self.ok else ApiError.from_reply(self.status, self.body,
                                                        json.dumps(self.body))


@dataclass(frozen=True)
class TargetStarted:
    """A run's target began: its VM and the execution that runs the command there."""

    vm_instance_uuid: str
    vm_instance_name: str | None
    execution_uuid: str


@dataclass(frozen=True)
class TargetOutput:
    """A chunk of a run's target's output."""

    vm_instance_uuid: str
    execution_uuid: str
    stream: Stream
    text: str
    raw: bytes | None = None

    @property
    def data(self) -> bytes:
        return self.raw if self.raw is not None else text_bytes(self.text)


@dataclass(frozen=True)
class TargetFinished:
    """A run's target ended (``state`` as RunTarget's)."""

    vm_instance_uuid: str
    execution_uuid: str | None
    state: str
    exit_code: int | None
    error_code: str | None


@dataclass(frozen=True)
class RunFinished:
    """The run ended; its final inventory."""

    run: Run


ExecutionEvent = OutputEvent | Result
RunEvent = TargetStarted | TargetOutput | TargetFinished | RunFinished


def _json_object(event: str, data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise BadEvent(f"the {event!r} event's data is not JSON: {data[:200]!r}") from None
    if not isinstance(value, dict):
        raise BadEvent(f"the {event!r} event's data is not a JSON object: {data[:200]!r}")
    return value


def _offset(event: str, event_id: str) -> int:
    try:
        return int(event_id)
    except ValueError:
        raise BadEvent(f"the {event!r} event's id is not a byte offset: {event_id!r}") from None


def _field(event: str, data: Mapping[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadEvent(f"the {event!r} event has no {kind.__name__} {name!r}: {dict(data)!r}")
    return value


def _optional(data: Mapping[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def _raw(event: str, data: Mapping[str, Any]) -> bytes | None:
    """An output event's exact bytes (``base64``), if it has them."""
    encoded = _optional(data, "base64", str)
    if encoded is None:
        return None
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise BadEvent(f"the {event!r} event's base64 is not: {encoded[:200]!r}") from None


def _stream(event: str, value: Any) -> Stream:
    for stream in STREAMS:
        if value == stream:
            return stream
    raise BadEvent(f"the {event!r} event names no stream (stdout or stderr): {value!r}")


def decode_execution_event(event: str, data: str, event_id: str) -> ExecutionEvent | None:
    """An event of ``…/executions/{uuid}/output`` (None: a type this client does not know).
    Raises BadEvent."""
    if event in STREAMS:
        body = _json_object(event, data)
        return OutputEvent(_stream(event, event), _field(event, body, "text", str),
                           _offset(event, event_id), _raw(event, body))
    if event == RESULT_EVENT:
        body = _json_object(event, data)
        status = _field(event, body, "status", int)
        reply = body.get("body")
        return Result(status, reply if isinstance(reply, dict) else {},
                      _offset(event, event_id) if event_id else 0)
    return None


def decode_run_event(event: str, data: str) -> RunEvent | None:
    """An event of ``…/runs/{uuid}/events`` (None: a type this client does not know).
    Raises BadEvent."""
    if event not in ("targetStarted", "output", "targetFinished", "runFinished"):
        return None
    body = _json_object(event, data)
    if event == "runFinished":
        return RunFinished(Run.from_wire(_field(event, body, "inventory", dict)))
    vm = _field(event, body, "vmInstanceUuid", str)
    if event == "targetStarted":
        return TargetStarted(vm, _optional(body, "vmInstanceName", str),
                             _field(event, body, "executionUuid", str))
    if event == "output":
        return TargetOutput(vm, _field(event, body, "executionUuid", str),
                            _stream(event, body.get("stream")), _field(event, body, "text", str),
                            _raw(event, body))
    return TargetFinished(vm, _optional(body, "executionUuid", str),
                          _field(event, body, "state", str), _optional(body, "exitCode", int),
                          _optional(body, "errorCode", str))


class RunReplay:
    """Drops what a reconnected run stream repeats.

    A run's event stream has no event ids: a client that connects (again) gets every event so
    far first. This filter remembers what was received (targets started and finished, the
    bytes of each execution's streams) and lets only the new part through, however the
    repeated output is cut into chunks. Call ``connected()`` at each (re)connect.
    """

    def __init__(self) -> None:
        self._seen: set[tuple[str, str, str | None]] = set()
        self._received: dict[tuple[str, Stream], int] = {}
        self._replayed: dict[tuple[str, Stream], int] = {}

    def connected(self) -> None:
        """A new connection: its output starts again at byte 0 of every stream."""
        self._replayed = {}

    def admit(self, event: RunEvent) -> RunEvent | None:
        """``event`` if new, its new part (output), or None when it was received before."""
        if isinstance(event, TargetStarted | TargetFinished):
            key = (type(event).__name__, event.vm_instance_uuid, event.execution_uuid)
            if key in self._seen:
                return None
            self._seen.add(key)
            return event
        if not isinstance(event, TargetOutput):
            return event
        stream = (event.execution_uuid, event.stream)
        data = event.data
        start = self._replayed.get(stream, 0)
        self._replayed[stream] = start + len(data)
        have = self._received.get(stream, 0)
        if start + len(data) <= have:
            return None
        self._received[stream] = start + len(data)
        if start >= have:
            return event
        fresh = data[have - start:]
        return TargetOutput(event.vm_instance_uuid, event.execution_uuid, event.stream,
                            fresh.decode("utf-8", "surrogateescape"))
