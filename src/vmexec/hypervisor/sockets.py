"""Agent-socket directories: a host kind without libvirt, where each socket is one VM's agent.

``unix:///var/run/qemu-server`` names a directory in which every ``*.sock`` or ``*.qga`` socket
is the guest-agent chardev of one running VM (Proxmox keeps ``<vmid>.qga`` there; plain QEMU or
bare ``qemu-ga`` processes can be set up the same way). The VM's name is the file stem and its
UUID is derived from the socket path, so it stays the same across restarts of vmexec.
"""

from __future__ import annotations

import os
import stat
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path

from vmexec.hypervisor import errors

SCHEME = "unix://"
SUFFIXES = (".sock", ".qga")

# A fixed namespace, so a path always maps to the same UUID (on any vmexec installation).
_NAMESPACE = uuidlib.UUID("5c0d3a7e-6f0b-4b8e-9d0a-7f3e2a1c9b42")


@dataclass(frozen=True, slots=True)
class SocketVm:
    #: 32 lowercase hex characters, derived from ``path``.
    uuid: str
    name: str
    path: str


def is_socket_dir_uri(uri: str) -> bool:
    return uri.startswith(SCHEME)


def socket_dir(uri: str) -> str:
    """The directory named by a ``unix:///dir`` URI.

    Raises:
        ValueError: not a ``unix://`` URI with an absolute path.
    """
    if not is_socket_dir_uri(uri):
        raise ValueError(f"not an agent-socket directory URI: {uri!r} (want unix:///path)")
    path = uri[len(SCHEME):]
    if not path.startswith("/"):
        raise ValueError(f"agent-socket directory must be an absolute path: {uri!r}")
    return os.path.normpath(path)


def socket_vm_uuid(path: str) -> str:
    """The stable VM UUID of the agent socket at ``path``."""
    return uuidlib.uuid5(_NAMESPACE, f"{SCHEME}{os.path.normpath(path)}").hex


def scan_socket_dir(directory: str) -> list[SocketVm]:
    """The agent sockets in ``directory``, sorted by name (blocking: a directory read).

    Only sockets count: a leftover regular file of the same name is not a running VM.

    Raises:
        HostUnreachable: the directory cannot be read.
    """
    try:
        entries = list(os.scandir(directory))
    except OSError as exc:
        raise errors.HostUnreachable(
            f"cannot read agent-socket directory {directory}: {exc.strerror}") from None
    vms = []
    for entry in entries:
        if not entry.name.endswith(SUFFIXES):
            continue
        try:
            if not stat.S_ISSOCK(entry.stat().st_mode):
                continue
        except OSError:
            continue  # removed while scanning
        path = os.path.join(directory, entry.name)
        vms.append(SocketVm(uuid=socket_vm_uuid(path), name=Path(entry.name).stem, path=path))
    vms.sort(key=lambda vm: vm.name)
    return vms
