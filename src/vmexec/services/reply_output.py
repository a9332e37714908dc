"""A command's reply without copies of its output: the output text stays the engine's bytes
until the reply is written, piece by piece (issue 15: 8 MiB of output cost the server 11 times
that, as str, as the ``stream`` that repeats it, as the JSON text and as its bytes).

A reply *without its output* has the output keys (:data:`OUTPUT_KEYS`) where the whole reply
has them, with null values (never null in a reply): at the top of a command's reply, in the
``opaque`` of a timed-out or cancelled command's error. The exact bytes (``stdoutBase64``/
``stderrBase64``, for a stream that is not UTF-8 or on request) are output keys too: a null one
says the whole reply has it. :func:`with_output` fills them from the streams' bytes, whole;
:class:`ReplyOutput` also as JSON written in pieces (:meth:`ReplyOutput.json_chunks`), byte for
byte what ``json.dumps`` of the whole reply gives with Starlette's ``JSONResponse`` options.
The same form is what an execution record and a job keep of the reply: the output is stored
once, as the execution's output.
"""

from __future__ import annotations

import base64
import codecs
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vmexec.execution.models import StreamOutput
from vmexec.zstack.exec import exact_output, stream_text

#: Keys of a reply that carry the output text (in every reply that has output).
TEXT_KEYS = ("stream", "stdout", "stderr")
#: Keys of a reply that carry the output's exact bytes (in some: see exact_fields).
BYTES_KEYS = ("stdoutBase64", "stderrBase64")
#: Keys of a reply that carry the output.
OUTPUT_KEYS = TEXT_KEYS + BYTES_KEYS
#: The mark of a reply kept without its output keys (before they stayed in place) that had
#: both streams' bytes.
_BOTH_BASE64 = "vmexecBothBase64"
#: Bytes of output decoded and encoded at a time when a reply is written in pieces.
PIECE_BYTES = 64 * 1024
#: The ends ZStack's ``stream`` drops from each stream (see vmexec.zstack.exec.stream_text).
_LINE_ENDS = ("\r\n", "\n")


def without_output(body: Mapping[str, Any], *, exact: Sequence[str] = ()) -> dict[str, Any]:
    """``body`` with the output left out: its keys stay in place, null. ``exact``: the
    bytes keys the whole reply has that ``body`` lacks (made without its output): they are
    the output's last fields (see ``CommandOutput.to_json``)."""

    def emptied(fields: Mapping[str, Any]) -> dict[str, Any]:
        return {**{k: None if k in OUTPUT_KEYS else v for k, v in fields.items()},
                **dict.fromkeys(exact)}

    error = body.get("error")
    if isinstance(error, Mapping):
        opaque = error.get("opaque")
        if isinstance(opaque, Mapping):
            return {**body, "error": {**error, "opaque": emptied(opaque)}}
        return dict(body)
    return emptied(body)


def lacks_output(body: Mapping[str, Any]) -> bool:
    """Whether ``body`` is a reply without its output text (:func:`without_output`, or kept
    before the keys stayed in place: without them)."""
    error = body.get("error")
    if isinstance(error, Mapping):
        opaque = error.get("opaque")
        return isinstance(opaque, Mapping) and _unfilled(opaque)
    return _unfilled(body)


def _unfilled(fields: Mapping[str, Any]) -> bool:
    return any(fields.get(k) is None for k in TEXT_KEYS)


def with_output(body: Mapping[str, Any], stdout: StreamOutput,
                stderr: StreamOutput) -> dict[str, Any]:
    """The inverse of :func:`without_output`: the output put back where the whole reply has
    it, so that it is that reply byte for byte. (Replies kept before the keys stayed in place
    lack them: they come first in an ``opaque``, last in a reply; their bytes keys are those
    of a stream that is not UTF-8, or both when marked so.)"""
    error = body.get("error")
    if isinstance(error, Mapping):
        opaque = error.get("opaque")
        if not isinstance(opaque, Mapping):
            return dict(body)
        filled = _filled(opaque, stdout, stderr, first=True)
        return {**body, "error": {**error, "opaque": filled}}
    return _filled(body, stdout, stderr, first=False)


def _filled(fields: Mapping[str, Any], stdout: StreamOutput, stderr: StreamOutput, *,
            first: bool) -> dict[str, Any]:
    """``fields`` with the output in; ``first``: where a reply kept without the output keys
    gets them."""
    if any(k in fields for k in TEXT_KEYS):
        return {k: _output_value(k, stdout, stderr) if k in OUTPUT_KEYS and v is None else v
                for k, v in fields.items()}
    kept = {k: v for k, v in fields.items() if k != _BOTH_BASE64}
    output = {"stream": stream_text(stdout.text, stderr.text), "stdout": stdout.text,
              "stderr": stderr.text,
              **exact_output(stdout.data, stderr.data, always=bool(fields.get(_BOTH_BASE64)))}
    return {**output, **kept} if first else {**kept, **output}


def _output_value(key: str, stdout: StreamOutput, stderr: StreamOutput) -> str:
    if key == "stream":
        return stream_text(stdout.text, stderr.text)
    stream = stdout if key in ("stdout", "stdoutBase64") else stderr
    if key in BYTES_KEYS:
        return base64.b64encode(stream.data).decode("ascii")
    return stream.text


def _dumps(value: Any) -> str:
    # Starlette's JSONResponse.render, which the whole reply would be written with.
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class ReplyOutput:
    """A command's output as the engine returned it, for a reply without its output text."""

    stdout: StreamOutput
    stderr: StreamOutput
    #: Bytes decoded and encoded at a time by :meth:`json_chunks`.
    piece_bytes: int = PIECE_BYTES

    @property
    def size(self) -> int:
        """Bytes of output, both streams."""
        return self.stdout.size + self.stderr.size

    def fill(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The whole reply (its text built in memory)."""
        return with_output(body, self.stdout, self.stderr)

    def json_chunks(self, body: Mapping[str, Any]) -> Iterator[bytes]:
        """The whole reply's JSON (as :func:`_dumps` writes it, UTF-8), in pieces of about
        :data:`PIECE_BYTES`: the output's text is decoded and escaped a piece at a time."""
        yield from self._value(body, top=True)

    def json_size(self, body: Mapping[str, Any]) -> int:
        """Bytes of :meth:`json_chunks` (counted piece by piece: the ``Content-Length``)."""
        return sum(len(chunk) for chunk in self.json_chunks(body))

    def _value(self, value: Any, *, top: bool) -> Iterator[bytes]:
        if not isinstance(value, Mapping):
            yield _dumps(value).encode()
            return
        fills = top and "error" not in value
        yield b"{"
        for i, (key, item) in enumerate(value.items()):
            yield (("," if i else "") + _dumps(key) + ":").encode()
            if fills and key in OUTPUT_KEYS and item is None:
                yield b'"'
                yield from self._text(key)
                yield b'"'
            elif top and key == "error" and isinstance(item, Mapping):
                yield from self._error(item)
            else:
                yield _dumps(item).encode()
        yield b"}"

    def _error(self, error: Mapping[str, Any]) -> Iterator[bytes]:
        yield b"{"
        for i, (key, item) in enumerate(error.items()):
            yield (("," if i else "") + _dumps(key) + ":").encode()
            if key == "opaque" and isinstance(item, Mapping):
                yield from self._value(item, top=True)
            else:
                yield _dumps(item).encode()
        yield b"}"

    def _text(self, key: str) -> Iterator[bytes]:
        """The escaped text of output key ``key`` (without its quotes)."""
        if key in BYTES_KEYS:
            yield from _encoded(self.stdout if key == "stdoutBase64" else self.stderr,
                                self.piece_bytes)
            return
        stdout = _decoded(self.stdout, self.piece_bytes)
        stderr = _decoded(self.stderr, self.piece_bytes)
        if key == "stdout":
            yield from _escaped(stdout)
        elif key == "stderr":
            yield from _escaped(stderr)
        else:  # stream: see vmexec.zstack.exec.stream_text
            yield from _escaped(_chomped(stdout), prefix="standardStream: ")
            yield from _escaped(_chomped(stderr), prefix=", errorStream: ")


def _blocks(pieces: Sequence[bytes], size: int) -> Iterator[bytes | memoryview]:
    """The bytes of ``pieces`` in blocks of ``size`` (the last may be shorter): views into a
    piece, or for a block across pieces a copy of its parts (``size`` bytes at most)."""
    held: list[memoryview] = []
    held_size = 0
    for piece in pieces:
        view = memoryview(piece)
        start = 0
        if held:
            start = min(size - held_size, len(view))
            held.append(view[:start])
            held_size += start
            if held_size < size:
                continue
            yield b"".join(held)
            held, held_size = [], 0
        while len(view) - start >= size:
            yield view[start:start + size]
            start += size
        if start < len(view):
            held, held_size = [view[start:]], len(view) - start
    if held:
        yield b"".join(held)


def _decoded(output: StreamOutput, piece_bytes: int) -> Iterator[str]:
    """``output.text`` in pieces (an incremental decoder gives what decoding at once does)."""
    decoder = codecs.getincrementaldecoder(output.encoding)(errors="replace")
    for block in _blocks(output.pieces, piece_bytes):
        piece = decoder.decode(block)
        if piece:
            yield piece
    rest = decoder.decode(b"", final=True)
    if rest:
        yield rest


def _encoded(output: StreamOutput, piece_bytes: int) -> Iterator[bytes]:
    """``output.data`` as base64 in pieces (of whole 3-byte groups: their base64 is that of
    the whole; it needs no JSON escaping)."""
    for block in _blocks(output.pieces, max(3, piece_bytes - piece_bytes % 3)):
        yield base64.b64encode(block)


def _chomped(pieces: Iterator[str]) -> Iterator[str]:
    """``pieces`` without the one line end their text ends with (held back: the last two
    characters are only known at the end)."""
    held = ""
    for piece in pieces:
        text = held + piece
        held, ready = text[-2:], text[:-2]
        if ready:
            yield ready
    for end in _LINE_ENDS:
        if held.endswith(end):
            held = held[:-len(end)]
            break
    if held:
        yield held


def _escaped(pieces: Iterator[str], *, prefix: str = "") -> Iterator[bytes]:
    """JSON string content (no quotes) of ``prefix`` and ``pieces``, UTF-8."""
    if prefix:
        yield _dumps(prefix)[1:-1].encode()
    for piece in pieces:
        yield _dumps(piece)[1:-1].encode()
