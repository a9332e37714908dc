"""ZStack UUIDs: 32 hexadecimal characters, no dashes, lowercase when vmexec makes them."""

from __future__ import annotations

import re
import uuid

_UUID_RE = re.compile(r"^[0-9a-fA-F]{32}$")


def new_uuid() -> str:
    """A new random ZStack UUID (also a run id in the guest)."""
    return uuid.uuid4().hex


def is_uuid(value: str) -> bool:
    """Whether ``value`` is a ZStack UUID (32 hex characters; case is not checked)."""
    return bool(_UUID_RE.match(value))


def normalize_uuid(value: str) -> str:
    """``value`` in ZStack's form: dashes dropped, lowercase. Does not validate."""
    return value.replace("-", "").lower()
