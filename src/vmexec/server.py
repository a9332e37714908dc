"""The composition root: settings → database → hypervisors → agents → engine → services → app.

Everything long-lived is built here, in one place, when the app starts, and closed in reverse
order when it stops. :mod:`vmexec.api.app` only assembles routes; the services know nothing of
each other's construction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from vmexec.agent.directory import AgentDirectory
from vmexec.api import errors
from vmexec.api.app import assemble
from vmexec.api.services import Services
from vmexec.config import Settings
from vmexec.db.migrate import upgrade
from vmexec.db.session import create_engine, create_sessionmaker
from vmexec.execution.engine import Executor
from vmexec.hypervisor.libvirt_host import LibvirtHosts
from vmexec.hypervisor.uris import HostUriPolicy
from vmexec.services.auth import AuthService
from vmexec.services.executions import ExecutionService
from vmexec.services.inventory import HostSources, Inventory
from vmexec.services.jobs import JobReply, JobService, WebhookPolicy
from vmexec.zstack.exec import API as EXEC_API

log = logging.getLogger(__name__)

#: Builds the executor (tests pass a subclass that does not need a guest).
ExecutorFactory = Callable[[AgentDirectory], Executor]
#: Builds the inventory from ``db=, sources=, agents=, local_host_uri=`` keywords.
InventoryFactory = Callable[..., Inventory]


def error_reply(exc: BaseException) -> JobReply:
    """A job's reply for an exception: the API's one error mapping."""
    failure = errors.to_failure(exc)
    return JobReply(failure.status, failure.body())


@contextlib.asynccontextmanager
async def running_services(settings: Settings, *, executor: ExecutorFactory = Executor,
                           inventory: InventoryFactory = Inventory
                           ) -> AsyncIterator[Services]:
    """Build, start and (on exit) stop everything a server runs."""
    # Every host URI passes this policy before anything opens it: AddKVMHost's, the local
    # libvirt_uri's (not registered when refused), and those stored in the database.
    uri_policy = HostUriPolicy.of(settings.host_transports, settings.host_uri_parameters)
    async with contextlib.AsyncExitStack() as stack:
        engine = create_engine(settings.db)
        stack.push_async_callback(engine.dispose)
        await upgrade(engine)
        db = create_sessionmaker(engine)
        hosts = LibvirtHosts(policy=uri_policy)
        stack.callback(hosts.close)
        agents = AgentDirectory(hosts)
        stack.push_async_callback(agents.aclose)
        runner = executor(agents)
        stack.push_async_callback(runner.aclose)
        vms = inventory(db=db, sources=HostSources(hosts, policy=uri_policy), agents=agents,
                        local_host_uri=settings.libvirt_uri)
        jobs = JobService(
            db, retention=timedelta(seconds=settings.job_retention), error_reply=error_reply,
            webhook=WebhookPolicy(attempts=settings.webhook_attempts,
                                  timeout=settings.webhook_timeout,
                                  backoff=settings.webhook_backoff))
        auth = AuthService(db, session_timeout=timedelta(seconds=settings.session_timeout))
        executions = ExecutionService(runner, vms, jobs, error_reply)
        services = Services(settings=settings, db=db, inventory=vms, jobs=jobs, auth=auth,
                            executions=executions)
        await auth.ensure_admin(settings.admin_password.get_secret_value())
        await vms.start()
        stack.push_async_callback(vms.aclose)
        # Jobs stop before the inventory and agents they use (callbacks run in reverse).
        stack.push_async_callback(jobs.aclose)
        jobs.register(EXEC_API, executions.resume)
        resumed = await jobs.resume_unfinished()
        if resumed:
            log.info("resumed %d unfinished jobs", resumed)
        cleanup = asyncio.create_task(_purge_expired(services))
        stack.push_async_callback(_cancel, cleanup)
        yield services


def create_app(settings: Settings, *, executor: ExecutorFactory = Executor,
               inventory: InventoryFactory = Inventory) -> FastAPI:
    """The vmexec server for ``settings``. Nothing is opened until the app starts."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_services(settings, executor=executor,
                                    inventory=inventory) as services:
            app.state.services = services
            yield

    return assemble(lifespan)


async def _purge_expired(services: Services) -> None:
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


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
