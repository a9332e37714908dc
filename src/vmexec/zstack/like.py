"""SQL ``LIKE`` patterns (``%`` any run, ``_`` one character), matched without backtracking.

A regular expression such as ``.*a.*a.*b`` backtracks: ``uuid~=%%%%%%%%%%!`` took 48 s on one
record. Here the pattern is split at ``%`` into fixed-length *segments*; the first must match at
the start, the last at the end, and those between are found greedily, leftmost first — which is
optimal because every segment has a fixed length, so no earlier choice ever needs revisiting.

Cost: a segment without ``_`` is found with ``str.find`` (linear, in C); a segment with ``_`` is
found by a bit-parallel scan (shift-and: one pass over the text, the segment's positions held
as bits of one integer). Each segment's search starts where the previous one's match ended, so
the text is read once in all: linear time, and no long call into C, so a thread running it
leaves the GIL to the event loop between steps.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Segment:
    """A run of the pattern between two ``%``: literal characters and ``_`` wildcards."""

    text: str
    #: For the shift-and scan (segments with ``_``): bit i set where text[i] is char / ``_``.
    char_bits: dict[str, int]
    wildcard_bits: int

    @classmethod
    def of(cls, text: str) -> _Segment:
        char_bits: dict[str, int] = {}
        wildcard_bits = 0
        for i, ch in enumerate(text):
            if ch == "_":
                wildcard_bits |= 1 << i
            else:
                char_bits[ch] = char_bits.get(ch, 0) | 1 << i
        return cls(text, char_bits, wildcard_bits)

    @property
    def has_wildcard(self) -> bool:
        return self.wildcard_bits != 0

    def matches_at(self, text: str, start: int) -> bool:
        """Whether the segment matches ``text[start:start + len(segment)]`` exactly."""
        if start < 0 or start + len(self.text) > len(text):
            return False
        if not self.has_wildcard:
            return text.startswith(self.text, start)
        return all(p == "_" or p == c
                   for p, c in zip(self.text, text[start:start + len(self.text)], strict=True))

    def find(self, text: str, start: int, end: int) -> int:
        """The leftmost position >= ``start`` where the segment matches inside
        ``text[:end]``, or -1."""
        if not self.has_wildcard:
            return text.find(self.text, start, end)
        # Shift-and: bit i of `state` is set when the segment's first i+1 characters match the
        # text ending at the current position.
        size = len(self.text)
        done = 1 << (size - 1)
        state = 0
        for position in range(start, end):
            state = ((state << 1) | 1) & (self.char_bits.get(text[position], 0)
                                          | self.wildcard_bits)
            if state & done:
                return position - size + 1
        return -1


class LikePattern:
    """One ``LIKE`` pattern; :meth:`matches` tells whether a whole text matches it."""

    __slots__ = ("_anchored_end", "_anchored_start", "_min_length", "_segments", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        parts = pattern.split("%")  # "%%" gives an empty part: repeated % collapse here
        self._anchored_start = parts[0] != "" or len(parts) == 1
        self._anchored_end = parts[-1] != "" or len(parts) == 1
        self._segments = [_Segment.of(p) for p in parts if p]
        self._min_length = sum(len(s.text) for s in self._segments)

    def matches(self, text: str) -> bool:
        if len(text) < self._min_length:
            return False
        segments = self._segments
        if not segments:  # "" or only %
            return not self._anchored_start or text == ""
        if self._anchored_start and self._anchored_end and len(segments) == 1:
            # No % at all: the one segment is the whole text.
            return len(text) == len(segments[0].text) and segments[0].matches_at(text, 0)
        start, end = 0, len(text)
        if self._anchored_start:
            first, segments = segments[0], segments[1:]
            if not first.matches_at(text, 0):
                return False
            start = len(first.text)
        if self._anchored_end:
            last, segments = segments[-1], segments[:-1]
            end -= len(last.text)
            if end < start or not last.matches_at(text, end):
                return False
        for segment in segments:
            found = segment.find(text, start, end)
            if found < 0:
                return False
            start = found + len(segment.text)
        return True

    def __repr__(self) -> str:
        return f"LikePattern({self.pattern!r})"
