"""How ZStack clients send a password: never in clear, always as its SHA-512 hex digest."""

from __future__ import annotations

import hashlib


def sha512_hex(password: str) -> str:
    """The hex SHA-512 of the password's UTF-8 bytes, as ``LogInByAccount`` expects it."""
    return hashlib.sha512(password.encode()).hexdigest()
