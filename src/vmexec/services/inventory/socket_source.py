"""The :class:`~.source.HostSource` of an agent-socket directory (``unix:///dir``).

Each socket in the directory is one running VM's agent (:mod:`vmexec.hypervisor.sockets`).
There are no lifecycle events: the periodic resync and the resync on a missed lookup find
sockets that appear or go.
"""

from __future__ import annotations

import asyncio

from vmexec.agent.targets import AgentTarget, SocketTarget
from vmexec.db.models_inventory import KIND_SOCKET_DIR
from vmexec.hypervisor import errors as hv_errors
from vmexec.hypervisor.sockets import scan_socket_dir, socket_dir
from vmexec.services.inventory.records import VmRecord
from vmexec.services.inventory.source import (
    ChangeCallback,
    NoSuchVm,
    NoWatcher,
    SeenVm,
    SourceError,
    Watcher,
)
from vmexec.zstack.exec import Platform
from vmexec.zstack.inventories import VmState


class SocketDirSource:
    """One agent-socket directory; see the module docstring."""

    kind = KIND_SOCKET_DIR

    def __init__(self, uri: str) -> None:
        """Raises:
            ValueError: ``uri`` is not ``unix://`` with an absolute path.
        """
        self.uri = uri
        self._directory = socket_dir(uri)

    async def probe(self) -> None:
        await self.list_vms()

    async def list_vms(self) -> list[SeenVm]:
        try:
            sockets = await asyncio.to_thread(scan_socket_dir, self._directory)
        except hv_errors.HypervisorError as exc:
            raise SourceError(exc.message) from None
        # A socket is an agent listening, so the VM runs; its platform is not known.
        return [SeenVm(uuid=s.uuid, name=s.name, state=VmState.RUNNING, platform=Platform.LINUX,
                       socket_path=s.path) for s in sockets]

    async def vm(self, uuid: str) -> SeenVm:
        for vm in await self.list_vms():
            if vm.uuid == uuid:
                return vm
        raise NoSuchVm(f"no agent socket of VM {uuid} in {self._directory}")

    async def watch(self, on_change: ChangeCallback) -> Watcher:
        return NoWatcher()

    def agent_target(self, vm: VmRecord) -> AgentTarget:
        # Every VM of a socket directory was seen with its socket.
        assert vm.socket_path is not None, vm
        return SocketTarget(vm.socket_path)

    async def aclose(self) -> None:
        pass
