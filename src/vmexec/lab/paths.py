"""Where the lab keeps its files: images and .debs in the user's cache, run state per lab."""

from __future__ import annotations

import os
from pathlib import Path

#: Prefix of every lab domain name; also the default lab instance name.
DEFAULT_PREFIX = "vmexec-lab"


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/vmexec/lab`` (``~/.cache/vmexec/lab`` when the variable is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vmexec" / "lab"


def debs_dir() -> Path:
    """Downloaded .deb files, kept across image rebuilds."""
    return cache_root() / "debs"


def images_dir() -> Path:
    """One sub-directory per image input hash."""
    return cache_root() / "images"


def state_root() -> Path:
    """Run state of lab instances (console logs) and of the daemons the lab started.

    Kept in the cache root rather than /run so it survives for ``lab down`` on hosts where
    /run is not a tmpfs; everything in it is checked against live processes before use.
    """
    return cache_root() / "state"


def lab_state_dir(prefix: str) -> Path:
    """Run state of one lab instance (its console logs), named by its domain-name prefix."""
    return state_root() / prefix


def daemons_state_dir() -> Path:
    """Pids of the libvirtd / virtlogd processes the lab started (shared by every instance)."""
    return state_root() / "daemons"
