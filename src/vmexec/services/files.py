"""Files into and out of guests for the API: the VM as the caller sees it, then the engine's
copy (:mod:`vmexec.execution.files`).

Who may copy files to or from a VM is who may run commands on it: the same resolution of the
VM for the caller (another account's VM is not found), the same refusal of a VM whose agent
is disabled in vmexec or that is known to be down.

Raises the engine's :class:`~vmexec.execution.errors.ExecError` subclasses (among them
:class:`~vmexec.execution.errors.GuestFileError`), :class:`QgaDisabled` and ``VmNotFound``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from vmexec.execution.engine import Executor
from vmexec.execution.errors import GuestUnavailable, UnavailableReason
from vmexec.execution.files import Download, check_path
from vmexec.execution.models import Platform
from vmexec.services.executions import Caller, QgaDisabled
from vmexec.services.inventory import Inventory, VmRef
from vmexec.zstack.inventories import VmState


class FileService:
    def __init__(self, executor: Executor, inventory: Inventory) -> None:
        self._executor = executor
        self._inventory = inventory

    async def _vm(self, caller: Caller, vm_uuid: str, path: str) -> tuple[VmRef, Platform]:
        vm = await self._inventory.resolve(vm_uuid, visible_to=caller.viewer)
        platform = Platform.WINDOWS if vm.platform == Platform.WINDOWS else Platform.LINUX
        check_path(path, platform)
        if not vm.qga_enabled:
            raise QgaDisabled(f"the guest agent is disabled for VM[uuid:{vm.uuid}] "
                              "(SetVmQga enable=false); enable it to copy files")
        if vm.state in (VmState.STOPPED, VmState.CRASHED):
            raise GuestUnavailable(f"VM[uuid:{vm.uuid}] is {vm.state}, not Running",
                                   UnavailableReason.VM_NOT_RUNNING)
        return vm, platform

    async def push(self, caller: Caller, vm_uuid: str, path: str, body: AsyncIterator[bytes],
                   *, mode: str | None = None, owner: str | None = None) -> int:
        """Write ``body`` to ``path`` in the VM's guest; the bytes written."""
        vm, platform = await self._vm(caller, vm_uuid, path)
        return await self._executor.files(vm.target, platform).upload(
            path, body, mode=mode, owner=owner)

    async def pull(self, caller: Caller, vm_uuid: str, path: str) -> Download:
        """Open ``path`` in the VM's guest for reading (its size, and its bytes as they are
        read)."""
        vm, platform = await self._vm(caller, vm_uuid, path)
        return await self._executor.files(vm.target, platform).download(path)
