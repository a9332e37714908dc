"""Output kept in pieces, cut on UTF-8 character boundaries (so that each piece decodes alone:
live readers get the pieces as chunks, and a result holds them without joining them)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence


def utf8_complete(data: bytes) -> int:
    """How many leading bytes of ``data`` end on a character boundary: all of them but an
    incomplete multibyte sequence at the end (bytes that are not UTF-8 are not held back:
    waiting would not make them decode)."""
    # A UTF-8 character is at most 4 bytes: only the last 3 can be an incomplete one.
    for back in range(1, min(3, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: its lead byte is further back
        if byte >= 0xF0:
            needed = 4 if byte < 0xF8 else 1
        elif byte >= 0xE0:
            needed = 3
        elif byte >= 0xC0:
            needed = 2
        else:
            needed = 1  # ASCII: complete
        return len(data) - back if needed > back else len(data)
    return len(data)


def whole_characters(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """``pieces`` cut anew where one ends inside a UTF-8 character: that character's start
    moves on to the next piece, so that each piece decodes alone. Pieces that end whole come
    out as the same objects (no copy)."""
    carry = b""
    for piece in pieces:
        if carry:
            piece = carry + piece
        end = utf8_complete(piece)
        piece, carry = (piece, b"") if end == len(piece) else (piece[:end], piece[end:])
        if piece:
            yield piece
    if carry:
        yield carry


def prefix(pieces: Sequence[bytes], limit: int) -> list[bytes]:
    """The pieces of the first ``limit`` bytes of ``pieces`` (only a piece the limit cuts is
    copied: its start)."""
    kept: list[bytes] = []
    left = limit
    for piece in pieces:
        if left <= 0:
            break
        kept.append(piece if len(piece) <= left else piece[:left])
        left -= len(piece)
    return kept
