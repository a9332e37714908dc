"""Cutting the output of many VMs into whole lines, so that lines of different VMs never mix
(pure: bytes in, bytes out).

Chunks arrive cut anywhere (mid-line, even mid-character); a :class:`LineBuffer` keeps each
source's partial last line until its end comes, or until the source ends (then the partial line
is given a line end, so the next VM's line starts on a line of its own).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

#: Between the VM's name and its line.
SEPARATOR = " | "


class LineBuffer(Generic[K]):
    """Per-source (any hashable key) buffers of bytes, giving out complete lines."""

    def __init__(self) -> None:
        self._partial: dict[K, bytes] = {}

    def feed(self, source: K, data: bytes) -> list[bytes]:
        """The lines ``data`` completes for ``source`` (each ending with ``\\n``); the rest
        is kept for the next chunk."""
        held = self._partial.pop(source, b"") + data
        *lines, rest = held.split(b"\n")
        if rest:
            self._partial[source] = rest
        return [line + b"\n" for line in lines]

    def end(self, source: K) -> list[bytes]:
        """``source`` ended: its partial last line, with a line end added (or nothing)."""
        rest = self._partial.pop(source, b"")
        return [rest + b"\n"] if rest else []

    def pending(self) -> list[K]:
        """The sources that hold a partial line."""
        return list(self._partial)


def prefix_of(name: str, width: int) -> bytes:
    """``name`` padded to ``width`` characters, then the separator: ``b"web-1  | "``."""
    return f"{name:<{width}}{SEPARATOR}".encode("utf-8", "surrogateescape")


def prefixed(prefix: bytes, lines: Sequence[bytes]) -> bytes:
    """``lines`` joined, each after ``prefix``."""
    return b"".join(prefix + line for line in lines)
