"""A gzip-compressed ``newc`` cpio archive written from a directory tree (the initramfs format).

Written in Python rather than piped through cpio(1) so the archive is reproducible (sorted
entries, fixed inode numbers, root-owned unless told otherwise) and can hold device nodes
without creating them on the host.
"""

from __future__ import annotations

import gzip
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

_TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Owner:
    """Ownership of an archive entry; the staging tree is written as root."""

    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class CharDevice:
    """A character device node to add to the archive (e.g. ``dev/console``)."""

    path: str
    major: int
    minor: int
    mode: int = 0o600


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


def _pad(n: int) -> bytes:
    return b"\0" * ((4 - n % 4) % 4)


class _Writer:
    def __init__(self, out: _Sink) -> None:
        self._out = out
        self._ino = 0

    def entry(self, name: str, mode: int, data: bytes = b"", *, owner: Owner = Owner(),
              mtime: int = 0, rdev: tuple[int, int] = (0, 0)) -> None:
        self._ino += 1
        encoded = name.encode() + b"\0"
        fields = (self._ino, mode, owner.uid, owner.gid, 1, mtime, len(data), 0, 0,
                  rdev[0], rdev[1], len(encoded), 0)
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._out.write(header + encoded + _pad(len(header) + len(encoded)))
        self._out.write(data + _pad(len(data)))


def _walk(root: Path) -> Iterator[Path]:
    # Parents before children, names sorted: the kernel creates entries in archive order.
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(dirnames + filenames):
            yield base / name


def write_initramfs(root: Path, dest: Path, *, owners: dict[str, Owner] | None = None,
                    devices: tuple[CharDevice, ...] = (), level: int = 6) -> None:
    """Pack ``root`` into ``dest`` as gzip-compressed newc cpio.

    ``owners`` maps archive paths (relative, e.g. ``home/vmuser``) to non-root owners.
    Modification times are kept: Python's .pyc files are validated against them.

    Raises:
        OSError: reading the tree or writing ``dest`` failed.
    """
    owners = owners or {}
    tmp = dest.with_suffix(dest.suffix + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=level,
                                               mtime=0) as gz:
        writer = _Writer(gz)
        for path in _walk(root):
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            owner = owners.get(rel, Owner())
            mtime = int(st.st_mtime)
            if stat.S_ISLNK(st.st_mode):
                writer.entry(rel, st.st_mode, os.readlink(path).encode(), owner=owner,
                             mtime=mtime)
            elif stat.S_ISDIR(st.st_mode):
                writer.entry(rel, st.st_mode, owner=owner, mtime=mtime)
            elif stat.S_ISREG(st.st_mode):
                writer.entry(rel, st.st_mode, path.read_bytes(), owner=owner, mtime=mtime)
        for dev in devices:
            writer.entry(dev.path, stat.S_IFCHR | dev.mode, rdev=(dev.major, dev.minor))
        writer.entry(_TRAILER, 0)
    tmp.replace(dest)
