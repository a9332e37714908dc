"""VM lookups: resolving a VM for an exec, its inventory, QueryVmInstance, the agent switch
(GetVmQga/SetVmQga) and a live probe of its agent (GetVmGuestToolsInfo).

Lookups are served from memory; one that misses triggers a resync first, so a VM defined a
moment ago is found without waiting for the periodic one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from vmexec.agent import errors as agent_errors
from vmexec.agent.directory import AgentDirectory
from vmexec.agent.targets import AgentTarget
from vmexec.services.errors import VmNotFound
from vmexec.services.inventory.records import VmRecord, query_reply, to_wire
from vmexec.services.inventory.store import InventoryStore
from vmexec.services.inventory.sync import Sync
from vmexec.services.inventory.visibility import Viewer
from vmexec.services.queries import QueryRunner
from vmexec.zstack.classes import VM_INSTANCE_INVENTORY
from vmexec.zstack.ids import normalize_uuid
from vmexec.zstack.inventories import (
    ACCOUNT_RESOURCE_REF_FIELDS,
    VM_CONCRETE_RESOURCE_TYPE,
    VM_RESOURCE_TYPE,
    GuestToolsStatus,
    VmState,
)
from vmexec.zstack.query import Query

ACCOUNT_RESOURCE_REF_INVENTORY = "org.zstack.header.identity.AccountResourceRefInventory"
#: Seconds GetVmGuestToolsInfo waits for the agent.
GUEST_TOOLS_TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class VmRef:
    """What the exec path needs of a VM: where its agent is and whether it may be used."""

    uuid: str
    name: str
    target: AgentTarget
    qga_enabled: bool
    #: ``Linux`` or ``Windows``.
    platform: str
    #: ZStack state: Running, Stopped, Paused, ...
    state: str


class VmLookups:
    """The VMs of ``store``; ``sync`` resyncs on a miss; ``agents`` serves the live probe."""

    def __init__(self, store: InventoryStore, sync: Sync, agents: AgentDirectory,
                 queries: QueryRunner) -> None:
        self._store = store
        self._sync = sync
        self._agents = agents
        self._queries = queries

    async def find(self, vm_uuid: str, visible_to: Viewer | None = None) -> VmRecord:
        """The VM, resyncing once if it is not known yet (or not visible to ``visible_to``:
        a VM of another account costs the same as an unknown one, so that nothing tells
        them apart).

        Raises:
            VmNotFound: no such VM on any host, or one ``visible_to`` does not see.
        """
        key = normalize_uuid(vm_uuid)
        vm = self._visible(self._store.vms.get(key), visible_to)
        if vm is None:
            await self._sync.sync_on_miss(time.monotonic())
            vm = self._visible(self._store.vms.get(key), visible_to)
        if vm is None:
            raise VmNotFound(vm_uuid)
        return vm

    @staticmethod
    def _visible(vm: VmRecord | None, viewer: Viewer | None) -> VmRecord | None:
        if vm is None or viewer is None or viewer.sees(vm.owner_account_uuid):
            return vm
        return None

    def visible_uuids(self, viewer: Viewer) -> frozenset[str] | None:
        """The UUIDs of the VMs ``viewer`` sees; ``None`` for an admin (every VM)."""
        if viewer.admin:
            return None
        return frozenset(vm.uuid for vm in self._store.vms.values()
                         if viewer.sees(vm.owner_account_uuid))

    async def change_owner(self, vm_uuid: str, account_uuid: str | None) -> VmRecord:
        """Raises: VmNotFound."""
        vm = await self.find(vm_uuid)
        await self._store.set_owner(vm.uuid, account_uuid)
        return vm

    async def resolve(self, vm_uuid: str, visible_to: Viewer | None = None) -> VmRef:
        """Raises: VmNotFound."""
        vm = await self.find(vm_uuid, visible_to)
        return VmRef(uuid=vm.uuid, name=vm.name, target=self._sync.target(vm),
                     qga_enabled=vm.qga_enabled, platform=vm.platform, state=vm.state)

    async def inventory(self, vm_uuid: str) -> dict[str, Any]:
        """Raises: VmNotFound."""
        vm = await self.find(vm_uuid)
        return to_wire(vm.values(self._store.hosts.get(vm.host_uuid)))

    async def query(self, query: Query, uuid: str | None = None,
                    visible_to: Viewer | None = None) -> dict[str, Any]:
        """QueryVmInstance's reply: ``inventories``, ``total`` when asked, and ``schema``;
        only the VMs ``visible_to`` sees."""
        if uuid is not None:
            query = query.with_uuid(normalize_uuid(uuid))
        moment = time.monotonic()
        result = await self._queries.evaluate(query, self._values(visible_to))
        if query.conditions and not result.matched:
            # Nothing matched: the VM may have been defined a moment ago.
            await self._sync.sync_on_miss(moment)
            result = await self._queries.evaluate(query, self._values(visible_to))
        return query_reply(query, result, VM_INSTANCE_INVENTORY)

    async def query_owners(self, query: Query, viewer: Viewer,
                           admin_account_uuid: str) -> dict[str, Any]:
        """QueryAccountResourceRef's reply: who owns each VM ``viewer`` sees (``None`` owners
        are ``admin_account_uuid``)."""
        refs = [{"accountUuid": vm.owner_account_uuid or admin_account_uuid,
                 "resourceUuid": vm.uuid, "resourceType": VM_RESOURCE_TYPE,
                 "concreteResourceType": VM_CONCRETE_RESOURCE_TYPE}
                for vm in sorted(self._store.vms.values(), key=lambda v: (v.create_date, v.name))
                if viewer.sees(vm.owner_account_uuid)]
        assert all(ref.keys() == ACCOUNT_RESOURCE_REF_FIELDS.keys() for ref in refs)
        result = await self._queries.evaluate(query, refs)
        return query_reply(query, result, ACCOUNT_RESOURCE_REF_INVENTORY)

    async def get_qga(self, vm_uuid: str, visible_to: Viewer | None = None) -> bool:
        """Raises: VmNotFound."""
        return (await self.find(vm_uuid, visible_to)).qga_enabled

    async def set_qga(self, vm_uuid: str, enable: bool) -> None:
        """Raises: VmNotFound."""
        vm = await self.find(vm_uuid)
        await self._store.set_qga(vm.uuid, enable)

    async def guest_tools_info(self, vm_uuid: str,
                               visible_to: Viewer | None = None) -> dict[str, Any]:
        """GetVmGuestToolsInfo from the live agent: ``status`` Running (answered),
        NotRunning (a channel but no answer) or Not Connected (no channel, VM not running).

        Raises:
            VmNotFound: no such VM (or not visible to ``visible_to``).
        """
        vm = await self.find(vm_uuid, visible_to)
        if vm.state != VmState.RUNNING or not vm.has_agent_channel:
            return {"status": GuestToolsStatus.NOT_CONNECTED, "features": {}}
        agent = self._agents.get(self._sync.target(vm))
        try:
            info = await agent.info(timeout=GUEST_TOOLS_TIMEOUT)
        except agent_errors.AgentCommandError:
            # guest-info itself is disabled in this agent, yet it answered: it runs.
            return {"status": GuestToolsStatus.RUNNING, "features": {}}
        except (agent_errors.NoAgentChannel, agent_errors.DomainNotRunning,
                agent_errors.DomainNotFound, agent_errors.HostUnreachable):
            return {"status": GuestToolsStatus.NOT_CONNECTED, "features": {}}
        except agent_errors.AgentError:
            return {"status": GuestToolsStatus.NOT_RUNNING, "features": {}}
        features = {
            "guestExec": info.enabled("guest-exec") and info.enabled("guest-exec-status"),
            "guestFileTransfer": all(info.enabled(c) for c in (
                "guest-file-open", "guest-file-read", "guest-file-write", "guest-file-close")),
        }
        reply: dict[str, Any] = {"status": GuestToolsStatus.RUNNING, "features": features}
        if info.version:
            reply["version"] = info.version
        return reply

    def _values(self, viewer: Viewer | None) -> list[dict[str, Any]]:
        vms = sorted((vm for vm in self._store.vms.values()
                      if viewer is None or viewer.sees(vm.owner_account_uuid)),
                     key=lambda v: (v.create_date, v.name))
        return [vm.values(self._store.hosts.get(vm.host_uuid)) for vm in vms]
