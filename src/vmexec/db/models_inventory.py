"""Inventory tables: the hosts vmexec manages and the VMs discovered on them.

The hypervisor is the source of truth for what VMs exist and their state; these rows keep what
it does not know: when vmexec first saw a VM (``createDate``), when its state last changed
(``lastOpDate``), and the per-VM guest-agent switch (``SetVmQga``). Several nodes on one
database share them; a host's row also says which node owns it (lists and watches it) until
when, and each live node's heartbeat says how many nodes share the hosts out.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vmexec.db.base import Base
from vmexec.db.models import UUID_LEN, UtcDateTime, utcnow

#: Host kinds: a libvirt connection URI, or a directory of agent sockets (``unix:///dir``).
KIND_LIBVIRT = "libvirt"
KIND_SOCKET_DIR = "socketdir"


class HostRow(Base):
    __tablename__ = "hosts"

    uuid: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    #: ``qemu:///system``, ``qemu+ssh://user@ip:port/system``, ``unix:///dir``, ...
    uri: Mapped[str] = mapped_column(String(1024), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    management_ip: Mapped[str | None] = mapped_column(String(255))
    username: Mapped[str | None] = mapped_column(String(255))
    ssh_port: Mapped[int | None] = mapped_column(Integer)
    zone_uuid: Mapped[str | None] = mapped_column(String(UUID_LEN))
    cluster_uuid: Mapped[str | None] = mapped_column(String(UUID_LEN))
    #: ZStack's admin state: Enabled / Disabled.
    state: Mapped[str] = mapped_column(String(32), default="Enabled")
    #: ZStack's connection status: Connected / Disconnected / Connecting.
    status: Mapped[str] = mapped_column(String(32), default="Connecting")
    create_date: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_op_date: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    #: The node (``node_id``) that watches and resyncs the host while its lease runs; other
    #: nodes only read the host's rows. Null: nobody (a node released it on shutdown).
    owner_node: Mapped[str | None] = mapped_column(String(64))
    #: When the owner's lease ends unless renewed; a peer takes an expired host over.
    lease_expires: Mapped[datetime | None] = mapped_column(UtcDateTime)


class VmRow(Base):
    __tablename__ = "vms"

    #: The libvirt domain UUID (or the socket-derived one) as 32 lowercase hex characters.
    uuid: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    host_uuid: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("hosts.uuid", ondelete="CASCADE"), index=True)
    last_host_uuid: Mapped[str | None] = mapped_column(String(UUID_LEN))
    name: Mapped[str] = mapped_column(String(255), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    #: ZStack's VM state: Running, Stopped, Paused, Stopping, Crashed, Unknown, ...
    state: Mapped[str] = mapped_column(String(32))
    platform: Mapped[str] = mapped_column(String(32), default="Linux")
    architecture: Mapped[str | None] = mapped_column(String(32))
    cpu_num: Mapped[int] = mapped_column(Integer, default=0)
    memory_size: Mapped[int] = mapped_column(BigInteger, default=0)
    has_agent_channel: Mapped[bool] = mapped_column(Boolean, default=False)
    #: For VMs of agent-socket directories: the socket of the agent.
    socket_path: Mapped[str | None] = mapped_column(String(1024))
    #: SetVmQga: false makes vmexec refuse to use the agent of this VM.
    qga_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: ChangeResourceOwner: the account that owns the VM; null is the ``admin`` account.
    owner_account_uuid: Mapped[str | None] = mapped_column(String(UUID_LEN), index=True)
    create_date: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_op_date: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class NodeHeartbeatRow(Base):
    """A node alive until ``lease_expires`` (renewed with its host leases, in the same
    transaction and to the same time): the nodes the hosts are shared out among."""

    __tablename__ = "node_heartbeats"

    node_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    lease_expires: Mapped[datetime] = mapped_column(UtcDateTime)
