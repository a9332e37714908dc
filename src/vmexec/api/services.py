"""The long-lived parts of a running server, built by the app's lifespan and shared by routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

if TYPE_CHECKING:
    from vmexec.agent.directory import AgentDirectory
    from vmexec.config import Settings
    from vmexec.execution.engine import Executor
    from vmexec.hypervisor.libvirt_host import LibvirtHosts
    from vmexec.services.auth import AuthService
    from vmexec.services.executions import ExecutionService
    from vmexec.services.inventory import Inventory
    from vmexec.services.jobs import JobService


@dataclass(slots=True)
class Services:
    """Everything a request handler may use; one per app, on ``app.state.services``."""

    settings: Settings
    db: async_sessionmaker[AsyncSession]
    hosts: LibvirtHosts
    agents: AgentDirectory
    executor: Executor
    inventory: Inventory
    jobs: JobService
    auth: AuthService
    executions: ExecutionService
