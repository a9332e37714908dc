"""Where a VM's guest agent is reached: a libvirt domain on a host, or a unix socket."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LibvirtTarget:
    """A libvirt domain's agent, via ``virDomainQemuAgentCommand`` on host ``uri``."""

    uri: str
    #: libvirt domain UUID, any form (with or without dashes).
    domain_uuid: str

    def __str__(self) -> str:
        return f"{self.uri}#{self.domain_uuid}"


@dataclass(frozen=True, slots=True)
class SocketTarget:
    """An agent on a unix socket (a QEMU chardev, as plain QEMU or Proxmox set up)."""

    path: str

    def __str__(self) -> str:
        return f"unix:{self.path}"


AgentTarget = LibvirtTarget | SocketTarget
