"""The composition root: settings → database → hypervisors → agents → engine → services → app.

Everything long-lived is built here, in one place, when the app starts, and closed in reverse
order when it stops. :mod:`vmexec.api.app` only assembles routes; the services know nothing of
each other's construction.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import vmexec
from vmexec.agent.directory import AgentDirectory
from vmexec.api import errors
from vmexec.api.app import assemble
from vmexec.api.log_format import configure_logging
from vmexec.api.services import Services
from vmexec.config import Settings, is_loopback
from vmexec.db.migrate import upgrade
from vmexec.db.session import create_engine, create_sessionmaker
from vmexec.execution.engine import Executor
from vmexec.hypervisor.libvirt_host import LibvirtHosts
from vmexec.hypervisor.uris import HostUriPolicy
from vmexec.services.access_keys import AccessKeyService
from vmexec.services.accounts import AccountService
from vmexec.services.audit import AuditTrail
from vmexec.services.auth import ADMIN_ACCOUNT, DEFAULT_PASSWORD_WARNING, AuthService
from vmexec.services.executions import ExecutionService
from vmexec.services.files import FileService
from vmexec.services.inventory import HostSources, Inventory
from vmexec.services.jobs import JobReply, JobService, WebhookPolicy
from vmexec.services.leases import NodeLease
from vmexec.services.login_throttle import LoginThrottle, ThrottleLimits
from vmexec.services.passwords import PasswordChecker
from vmexec.services.runs import RunService
from vmexec.services.secrets import SecretBox, load_or_create_key
from vmexec.services.telemetry import Metrics
from vmexec.services.webhooks import DestinationPolicy
from vmexec.zstack.exec import API as EXEC_API
from vmexec.zstack.runs import API as RUN_API

log = logging.getLogger(__name__)

__all__ = ["UnsafeStart", "configure_logging", "create_app", "preflight", "running_services"]

#: Builds the executor (tests pass a subclass that does not need a guest).
ExecutorFactory = Callable[[AgentDirectory], Executor]
#: Builds the inventory from ``db=, sources=, agents=, local_host_uri=, node_id=,
#: host_lease=`` keywords.
InventoryFactory = Callable[..., Inventory]


class UnsafeStart(RuntimeError):
    """The server must not start as configured (the message says why and what to do)."""


def check_default_password(settings: Settings, in_use: bool) -> None:
    """Warn when ``admin`` has the default password; refuse it on a non-loopback address
    unless ``allow_default_password``. Raises UnsafeStart."""
    if not in_use:
        return
    log.warning(DEFAULT_PASSWORD_WARNING)
    if not is_loopback(settings.host) and not settings.allow_default_password:
        raise UnsafeStart(
            f"refusing to listen on {settings.host}: the account {ADMIN_ACCOUNT!r} still has "
            "the default password. Change it first (`vmexec serve` on 127.0.0.1, then "
            "`vmexec passwd`), or set admin_password before the first start, or allow it "
            "explicitly with --allow-default-password (VMEXEC_ALLOW_DEFAULT_PASSWORD=true)")


def auth_service(settings: Settings, db: async_sessionmaker[AsyncSession]) -> AuthService:
    """The sessions and accounts service as ``settings`` configure it."""
    return AuthService(
        db, session_timeout=timedelta(seconds=settings.session_timeout),
        passwords=PasswordChecker(time_cost=settings.password_hash_time_cost,
                                  memory_kib=settings.password_hash_memory_kib,
                                  concurrency=settings.password_check_concurrency,
                                  queue=settings.password_check_queue),
        throttle=LoginThrottle(ThrottleLimits(
            max_failures_per_account=settings.login_max_failures_per_account,
            max_failures_per_address=settings.login_max_failures_per_address,
            window=settings.login_failure_window)))


async def preflight(settings: Settings) -> None:
    """What a start checks before listening: the database opens and migrates, and the
    default password is not exposed. Raises UnsafeStart, and what the database raises."""
    engine = create_engine(settings.db)
    try:
        await upgrade(engine)
        auth = auth_service(settings, create_sessionmaker(engine))
        try:
            await auth.ensure_admin(settings.admin_password.get_secret_value())
        finally:
            auth.close()
    finally:
        await engine.dispose()
    check_default_password(settings, auth.default_password_in_use)


def secret_box(settings: Settings) -> SecretBox:
    """What encrypts secrets at rest: ``secret_key``, else the key of ``secret_key_file``
    (generated there, mode 0600, at the first start). Raises OSError, ValueError."""
    if settings.secret_key is not None:
        return SecretBox(settings.secret_key.get_secret_value())
    return SecretBox(load_or_create_key(settings.secret_key_file))


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
        metrics = Metrics(vmexec.__version__)
        agents = AgentDirectory(hosts, observe=metrics.agent_call)
        stack.push_async_callback(agents.aclose)
        runner = executor(agents)
        runner.file_retention = settings.guest_file_retention
        stack.push_async_callback(runner.aclose)
        vms = inventory(db=db, sources=HostSources(hosts, policy=uri_policy), agents=agents,
                        local_host_uri=settings.libvirt_uri, node_id=settings.node_id,
                        host_lease=settings.host_lease,
                        connection_idle=settings.libvirt_idle_close)
        jobs = JobService(
            db, retention=timedelta(seconds=settings.job_retention), error_reply=error_reply,
            webhook=WebhookPolicy(
                attempts=settings.webhook_attempts, timeout=settings.webhook_timeout,
                backoff=settings.webhook_backoff,
                destinations=DestinationPolicy.from_settings(settings.webhook_allow,
                                                             settings.webhook_deny)),
            lease=NodeLease(settings.node_id, settings.job_lease),
            # SQLite serves one node (README): what it finds unfinished at start is its own.
            exclusive=engine.dialect.name == "sqlite")
        auth = auth_service(settings, db)
        stack.callback(auth.close)
        executions = ExecutionService(
            runner, vms, jobs, error_reply, db=db, output_cap=settings.output_cap,
            retention=timedelta(seconds=settings.execution_retention), metrics=metrics)
        stack.push_async_callback(executions.output.aclose)
        metrics.watch(inventory=vms, jobs=jobs, throttle=auth.throttle,
                      output=executions.output)
        runs = RunService(db, executions, vms, jobs, error_reply,
                          retention=timedelta(seconds=settings.execution_retention),
                          metrics=metrics)
        audit = AuditTrail(db, retention=timedelta(seconds=settings.audit_retention))
        audit.start()
        stack.push_async_callback(audit.aclose)
        services = Services(settings=settings, db=db, inventory=vms, jobs=jobs, auth=auth,
                            executions=executions, runs=runs,
                            accounts=AccountService(db, auth.passwords,
                                                     sessions=auth.sessions),
                            access_keys=AccessKeyService(db, secret_box(settings)),
                            metrics=metrics, audit=audit, files=FileService(runner, vms))
        await auth.ensure_admin(settings.admin_password.get_secret_value())
        check_default_password(settings, auth.default_password_in_use)
        await vms.start()
        stack.push_async_callback(vms.aclose)
        # Jobs stop before the inventory and agents they use (callbacks run in reverse).
        # Runs' queued target writes are committed after the jobs stopped; then the leases
        # go to the peers, with nothing more to be written here.
        stack.push_async_callback(jobs.release)
        stack.push_async_callback(runs.aclose)
        stack.push_async_callback(jobs.aclose)
        jobs.register(EXEC_API, executions.resume, executions.job_reply)
        jobs.register(RUN_API, runs.resume)
        resumed = await jobs.resume_unfinished()
        if resumed:
            log.info("resumed %d unfinished jobs", resumed)
        cleanup = asyncio.create_task(_purge_expired(services))
        stack.push_async_callback(_cancel, cleanup)
        yield services


def create_app(settings: Settings, *, executor: ExecutorFactory = Executor,
               inventory: InventoryFactory = Inventory, freeze_gc: bool = False) -> FastAPI:
    """The vmexec server for ``settings``. Nothing is opened until the app starts.

    ``freeze_gc`` (the process is this server's alone, as in ``vmexec serve``): once started,
    move every object made so far out of the garbage collector's reach. The modules, models
    and services live as long as the process; without it each full collection walks them
    all again (about 0.1 s each, the event loop stopped, and a tenth of the server's CPU
    in a run over 200 VMs).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_services(settings, executor=executor,
                                    inventory=inventory) as services:
            if freeze_gc:
                gc.collect()
                gc.freeze()
            app.state.services = services
            app.state.ready = True  # /health/ready: start-up finished
            try:
                yield
            finally:
                app.state.ready = False  # shutting down: take no new work

    return assemble(lifespan)


async def _purge_expired(services: Services) -> None:
    # Expired job results and sessions are deleted in the background, never on a request path.
    while True:
        try:
            jobs_purged = await services.jobs.purge_expired()
            sessions_purged = await services.auth.purge_expired()
            executions_purged = await services.executions.purge_expired()
            runs_purged = await services.runs.purge_expired()
            audit_purged = await services.audit.purge_expired()
            if jobs_purged or sessions_purged or executions_purged or runs_purged or audit_purged:
                log.info("purged %d expired jobs, %d expired sessions, %d expired executions, "
                         "%d expired runs, %d audit entries", jobs_purged, sessions_purged,
                         executions_purged, runs_purged, audit_purged)
        except Exception:
            log.exception("purging expired data failed; retrying later")
        await asyncio.sleep(services.settings.cleanup_interval)


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
