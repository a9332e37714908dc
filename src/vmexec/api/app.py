"""The app factory: ``create_app(settings)`` builds the FastAPI app; its lifespan builds the
services (database, migrations, hypervisors, agents, engine, inventory, jobs, sessions) and
tears them down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

from fastapi import FastAPI

import vmexec
from vmexec.agent.directory import AgentDirectory
from vmexec.api import errors
from vmexec.api.routes import exec as exec_routes
from vmexec.api.routes import health, hosts, jobs, sessions, vms
from vmexec.api.services import Services
from vmexec.config import Settings
from vmexec.db.migrate import upgrade
from vmexec.db.session import create_engine, create_sessionmaker
from vmexec.execution.engine import Executor
from vmexec.hypervisor.libvirt_host import LibvirtHosts
from vmexec.services.auth import AuthService
from vmexec.services.executions import ExecutionService
from vmexec.services.inventory import Inventory
from vmexec.services.jobs import JobReply, JobService, WebhookPolicy

log = logging.getLogger(__name__)

#: Builds the executor (tests pass a subclass that does not need a guest).
ExecutorFactory = Callable[[AgentDirectory], Executor]
#: Builds the inventory from ``db=, hosts=, agents=, settings=`` keywords.
InventoryFactory = Callable[..., Inventory]


def _error_reply(exc: BaseException) -> JobReply:
    error = errors.to_failure(exc)
    return JobReply(error.status, error.body())


async def _cleanup(services: Services) -> None:
    # Expired job results and sessions are deleted in the background, never on a request path.
    while True:
        try:
            jobs_purged = await services.jobs.purge_expired()
            sessions_purged = await services.auth.purge_expired()
            if jobs_purged or sessions_purged:
                log.info("purged %d expired jobs, %d expired sessions", jobs_purged,
                         sessions_purged)
        except Exception:
            log.exception("purging expired data failed; retrying later")
        await asyncio.sleep(services.settings.cleanup_interval)


def create_app(settings: Settings, *, executor: ExecutorFactory = Executor,
               inventory: InventoryFactory = Inventory) -> FastAPI:
    """The vmexec API app for ``settings``. Nothing is opened until the app starts."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            engine = create_engine(settings.db)
            stack.push_async_callback(engine.dispose)
            await upgrade(engine)
            db = create_sessionmaker(engine)
            hosts = LibvirtHosts()
            stack.callback(hosts.close)
            agents = AgentDirectory(hosts)
            stack.push_async_callback(agents.aclose)
            runner = executor(agents)
            stack.push_async_callback(runner.aclose)
            services = Services(
                settings=settings, db=db, hosts=hosts, agents=agents, executor=runner,
                inventory=inventory(db=db, hosts=hosts, agents=agents, settings=settings),
                jobs=JobService(
                    db, retention=timedelta(seconds=settings.job_retention),
                    error_reply=_error_reply,
                    webhook=WebhookPolicy(attempts=settings.webhook_attempts,
                                          timeout=settings.webhook_timeout,
                                          backoff=settings.webhook_backoff)),
                auth=AuthService(db, session_timeout=timedelta(seconds=settings.session_timeout)),
                executions=ExecutionService(runner),
            )
            await services.auth.ensure_admin(settings.admin_password.get_secret_value())
            await services.inventory.start()
            stack.push_async_callback(services.inventory.aclose)
            # Jobs stop before the inventory and agents they use (callbacks run in reverse).
            stack.push_async_callback(services.jobs.aclose)
            services.jobs.register(exec_routes.API, exec_routes.resumer(services))
            app.state.services = services
            resumed = await services.jobs.resume_unfinished()
            if resumed:
                log.info("resumed %d unfinished jobs", resumed)
            cleanup = asyncio.create_task(_cleanup(services))
            stack.push_async_callback(_cancel, cleanup)
            yield

    app = FastAPI(
        title="vmexec",
        version=getattr(vmexec, "__version__", "0"),
        summary="Run commands inside KVM/QEMU guests through the QEMU guest agent, "
                "with ZStack's REST API.",
        lifespan=lifespan,
    )
    errors.install_error_handlers(app)
    for module in (health, sessions, jobs, exec_routes, vms, hosts):
        app.include_router(module.router)
    return app


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
