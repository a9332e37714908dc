"""What request handlers may use: the server's long-lived services, one set per app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

if TYPE_CHECKING:
    from vmexec.config import Settings
    from vmexec.services.access_keys import AccessKeyService
    from vmexec.services.accounts import AccountService
    from vmexec.services.audit import AuditTrail
    from vmexec.services.auth import AuthService
    from vmexec.services.executions import ExecutionService
    from vmexec.services.files import FileService
    from vmexec.services.inventory import Inventory
    from vmexec.services.jobs import JobService
    from vmexec.services.runs import RunService
    from vmexec.services.telemetry import Metrics


@dataclass(frozen=True, slots=True)
class Services:
    """Built by :mod:`vmexec.server`, on ``app.state.services``."""

    settings: Settings
    #: For ``/health``'s database check only; services keep their own handle.
    db: async_sessionmaker[AsyncSession]
    inventory: Inventory
    jobs: JobService
    auth: AuthService
    executions: ExecutionService
    runs: RunService
    accounts: AccountService
    access_keys: AccessKeyService
    metrics: Metrics
    audit: AuditTrail
    files: FileService
