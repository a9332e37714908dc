"""Async API jobs: an API call whose reply (HTTP status + JSON body) is kept in the database.

A job runs as an asyncio task. Callers wait for it as long as their window allows; whoever is
still interested later polls :meth:`JobService.reply` (on any node: it reads the database; a
job past the ``apiTimeout`` its ``202`` announced answers ``SYS.1001``). Replies are kept
``retention`` long and survive a restart. Several nodes may share the database: each job is
owned by the node that runs it, under a lease (:mod:`vmexec.services.leases`); the jobs of a
node that died or stopped are finished by a peer (or the node's next start) through the
resumer registered for their API, which collects a command's result and never runs it again.
A reply is stored, and its webhook sent, only by the job's owner: each once.

With a webhook URL the reply is also POSTed there (with ZStack's ``X-Job-UUID`` /
``X-Job-Success`` headers), retried with backoff a bounded number of times, to destinations
the :class:`~vmexec.services.webhooks.DestinationPolicy` allows (checked when the job starts
and again at each attempt). A webhook URL is kept, credentials included, only until its
delivery ends (the database is owner-only); logs show it redacted.

Exception tree::

    JobError
     ├── DuplicateJob   a job with that UUID exists already
     └── JobNotFound    no such job (never existed, expired, or another account's)
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, cast

import httpx
from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vmexec.db.models import Job, utcnow
from vmexec.db.outages import until_written
from vmexec.db.writes import Write, execute_writes
from vmexec.services import leases
from vmexec.services.leases import NodeLease
from vmexec.services.webhooks import DestinationPolicy, WebhookRefused, check, redact
from vmexec.zstack.errors import Code, ErrorCode

log = logging.getLogger(__name__)

#: How long past its announced ``apiTimeout`` a running job still answers ``202 {}``: its
#: owner's own timeout starts a moment after the job's, and its reply is on its way.
DEADLINE_SLACK_SECONDS = 10.0

#: The jobs' table, for Core statements on the hot path.
_JOBS = cast(Table, Job.__table__)


class JobState(enum.StrEnum):
    RUNNING = "running"
    DONE = "done"


#: A job's INSERT and the UPDATE that stores its reply, built once: the parameters go with
#: each execution (building a statement with its values costs more than running it).
_INSERT = insert(_JOBS)
_STORE = update(_JOBS).where(leases.OWNED_BOUND, _JOBS.c.state == JobState.RUNNING).values(
    state=JobState.DONE, status=bindparam("b_status"),
    result=bindparam("b_result", type_=_JOBS.c.result.type),
    finished_at=bindparam("b_finished", type_=_JOBS.c.finished_at.type))


class JobError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DuplicateJob(JobError):
    pass


class JobNotFound(JobError):
    pass


class LazyText(Protocol):
    """Text a reply's ``body`` leaves out (null in place), filled in when it is written: a
    command's output (:class:`vmexec.services.reply_output.ReplyOutput`)."""

    @property
    def size(self) -> int: ...

    def fill(self, body: Mapping[str, Any]) -> dict[str, Any]: ...

    def json_chunks(self, body: Mapping[str, Any]) -> Iterator[bytes]: ...

    def json_size(self, body: Mapping[str, Any]) -> int: ...


@dataclass(frozen=True, slots=True)
class JobReply:
    """What the API answers: an HTTP status and a JSON body (with ``output``: the body
    without that text, :meth:`whole` with it)."""

    status: int
    body: dict[str, Any]
    #: Writes that belong with this reply (e.g. the execution record's end), committed in the
    #: transaction that stores it.
    writes: tuple[Write, ...] = field(default=(), compare=False)
    #: What the job keeps of ``body`` when not all of it (an execution's output is stored
    #: once, with the execution: its text is left out here, and put back by the ``Reader``
    #: of the job's API).
    stored: dict[str, Any] | None = field(default=None, compare=False)
    #: The text ``body`` leaves out, if any.
    output: LazyText | None = field(default=None, compare=False)

    def whole(self) -> dict[str, Any]:
        """The whole body (the text ``output`` holds put in: built in memory)."""
        return self.body if self.output is None else self.output.fill(self.body)

    @property
    def success(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    attempts: int = 5
    timeout: float = 10.0
    #: Seconds before the second attempt; doubles for each further one.
    backoff: float = 1.0
    destinations: DestinationPolicy = field(default_factory=DestinationPolicy)


#: Produces a job's reply (must not raise: failures are replies too).
Work = Callable[[], Awaitable[JobReply]]
#: Finishes a job found running at start: ``(job uuid, its stored request) -> reply``.
Resumer = Callable[[str, Mapping[str, Any]], Awaitable[JobReply]]
#: Turns an exception that escaped a job's work into its reply (the API's error mapping).
ErrorReply = Callable[[BaseException], JobReply]
#: The whole reply of a done job of an API from what the job kept of it (``JobReply.stored``):
#: ``(job uuid, kept reply) -> reply``.
Reader = Callable[[str, JobReply], Awaitable[JobReply]]


class JobService:
    """Starts, stores, resumes and expires jobs. One per server; safe for concurrent use."""

    def __init__(self, db: async_sessionmaker[AsyncSession], *, retention: timedelta,
                 error_reply: ErrorReply, webhook: WebhookPolicy | None = None,
                 http: httpx.AsyncClient | None = None, lease: NodeLease | None = None,
                 exclusive: bool = True) -> None:
        """``lease``: this node's id and lease length (default: a single node's);
        ``exclusive``: no other node uses the database (SQLite), so every unfinished job
        found at start was this node's previous process's and is resumed at once."""
        self._db = db
        self._lease = lease or NodeLease(f"{id(self):x}")
        self._exclusive = exclusive
        #: The task running each unfinished job this node owns (its work, then its webhook).
        self._owned: dict[str, asyncio.Task[Any]] = {}
        self._keeper: asyncio.Task[None] | None = None
        self._retention = retention
        self._error_reply = error_reply
        self._webhook = webhook or WebhookPolicy()
        # No redirects, no proxies from the environment: a request goes to the address the
        # destination policy checked, nowhere else.
        self._http = http or httpx.AsyncClient(follow_redirects=False, trust_env=False)
        self._resumers: dict[str, Resumer] = {}
        self._readers: dict[str, Reader] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def node(self) -> str:
        """This node's id."""
        return self._lease.node

    @property
    def retention(self) -> timedelta:
        """How long replies are kept."""
        return self._retention

    @property
    def running(self) -> int:
        """Tasks of this process running now: jobs and webhook deliveries (for metrics)."""
        return len(self._tasks)

    def register(self, api: str, resume: Resumer, read: Reader | None = None) -> None:
        """Say how to finish jobs of ``api`` that were running when vmexec stopped, and how
        to read the replies of its jobs whose replies are kept in part (``stored``)."""
        self._resumers[api] = resume
        if read is not None:
            self._readers[api] = read

    async def start(self, *, uuid: str, api: str, account_uuid: str,
                    request: Mapping[str, Any], work: Work, webhook: str | None = None,
                    writes: Sequence[Write] = (),
                    timeout: float | None = None) -> asyncio.Task[JobReply]:
        """Record job ``uuid`` (with ``writes``, in one transaction), owned by this node, and
        start ``work`` in the background; the task yields the reply once it is stored.
        ``timeout``: the seconds of the ``apiTimeout`` announced to the client. Raises
        :class:`DuplicateJob` when ``uuid`` is taken,
        :class:`~vmexec.services.webhooks.WebhookRefused` when the policy does not allow
        ``webhook``'s destination (nothing is recorded then)."""
        if webhook is not None:
            await check(webhook, self._webhook.destinations)
        now = utcnow()
        async with self._db() as db:
            try:
                # Core statements of the table: the ORM's unit of work, or even its bulk path
                # for an entity's statement, costs several times more here.
                await db.execute(_INSERT, dict(
                    uuid=uuid, api=api, account_uuid=account_uuid, state=JobState.RUNNING,
                    request=dict(request), webhook=webhook,
                    webhook_state="pending" if webhook else None,
                    created_at=now, expires_at=now + self._retention,
                    owner_node=self._lease.node, lease_expires=self._lease.until(now),
                    deadline=None if timeout is None else now + timedelta(seconds=timeout)))
                await execute_writes(db, writes)
                await db.commit()
            except IntegrityError:
                raise DuplicateJob(f"job[uuid:{uuid}] exists already; X-Job-UUID must be "
                                   "new for every call") from None
        return self._spawn(self._run(uuid, work, webhook), owned=uuid)

    def _spawn(self, coro: Awaitable[Any], *, owned: str | None = None) -> asyncio.Task[Any]:
        """Run ``coro`` as a task; ``owned``: the job it finishes (cancelled if a peer takes
        the job over)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if owned is not None:
            self._owned[owned] = task
            task.add_done_callback(lambda _: self._disown(owned, task))
        return task

    def _disown(self, uuid: str, task: asyncio.Task[Any]) -> None:
        if self._owned.get(uuid) is task:
            del self._owned[uuid]

    async def _run(self, uuid: str, work: Work, webhook: str | None) -> JobReply:
        try:
            reply = await work()
        except asyncio.CancelledError:
            raise  # shutdown: the job stays running and is resumed at the next start
        except Exception as exc:
            log.exception("job %s failed unexpectedly", uuid)
            reply = self._error_reply(exc)
        # Through a database outage: the reply (and the command's record and output in it)
        # exists only here until it commits.
        stored = await until_written(functools.partial(self._store, uuid, reply),
                                     what=f"storing the reply of job {uuid}")
        if stored and webhook:
            # Owned still (the store said so): the delivery takes the job's place.
            self._spawn(self._deliver(uuid, webhook, reply, checked=True), owned=uuid)
        elif self._owned.get(uuid) is asyncio.current_task():
            del self._owned[uuid]  # finished: a renewal must not count it as lost
        return reply

    async def _store(self, uuid: str, reply: JobReply) -> bool:
        """Keep the job's reply (with its writes) if this node still owns the job; False when
        it does not (a peer took it over: it stores its own, nothing is written here) or the
        job was purged meanwhile (retention shorter than the job: the writes are kept). One
        UPDATE, no read first: this is on every command's hot path."""
        async with self._db() as db:
            result = await db.execute(_STORE, dict(
                b_uuid=uuid, b_node=self._lease.node, b_status=reply.status,
                b_result=reply.whole() if reply.stored is None else reply.stored,
                b_finished=utcnow()))
            if getattr(result, "rowcount", 1):
                await execute_writes(db, reply.writes)
                await db.commit()
                return True
            owner = (await db.execute(select(Job.owner_node, Job.state)
                                      .where(Job.uuid == uuid))).first()
            if owner is not None and (owner.owner_node, owner.state) == (
                    self._lease.node, JobState.DONE):
                # Stored by an earlier try whose commit went through but whose answer was lost
                # with the connection.
                await db.rollback()
                return True
            if owner is not None:
                await db.rollback()
                log.warning("job %s is no longer this node's (owner %s, %s): its reply is not "
                            "stored here", uuid, owner.owner_node, owner.state)
                return False
            await execute_writes(db, reply.writes)
            await db.commit()
            return False

    async def reply(self, uuid: str, account_uuid: str) -> JobReply | None:
        """The reply of job ``uuid``, or None while it runs. Raises :class:`JobNotFound`."""
        async with self._db() as db:
            job = await db.get(Job, uuid.lower())
        if job is None or job.account_uuid != account_uuid or job.expires_at <= utcnow():
            raise JobNotFound(f"job[uuid:{uuid}] is not found or has expired")
        return await self._reply_of(job)

    async def _reply_of(self, job: Job) -> JobReply | None:
        """The whole reply of ``job``, None while it runs."""
        if job.state != JobState.DONE or job.status is None or job.result is None:
            if job.deadline is not None and utcnow() > job.deadline + timedelta(
                    seconds=DEADLINE_SLACK_SECONDS):
                return _past_deadline(job)
            return None
        return await self._whole(job.uuid, job.api, JobReply(job.status, job.result))

    async def _whole(self, uuid: str, api: str, kept: JobReply) -> JobReply:
        """The whole reply of a job from what the job kept of it (its API's reader puts back
        the output it left out)."""
        read = self._readers.get(api)
        return kept if read is None else await read(uuid, kept)

    # --- webhook ------------------------------------------------------------------------------
    async def _deliver(self, uuid: str, url: str, reply: JobReply, *, checked: bool) -> None:
        """POST the reply to ``url`` until it is acknowledged or the attempts run out, while
        this node owns the job (``checked``: it was just found owned)."""
        headers = {"X-Job-UUID": uuid, "X-Job-Success": "true" if reply.success else "false"}
        shown = redact(url)
        delay = self._webhook.backoff
        state = "failed"
        for attempt in range(1, self._webhook.attempts + 1):
            if not checked and not await self._still_owned(uuid):
                log.warning("webhook for job %s: the job is no longer this node's, not sent",
                            uuid)
                return
            checked = False
            try:
                status = await self._post(url, reply.whole(), headers)
                if 200 <= status < 300:
                    state = "delivered"
                    break
                log.warning("webhook %s for job %s answered %s (attempt %d)", shown, uuid,
                            status, attempt)
            except WebhookRefused as exc:
                # The name resolves elsewhere than when the job started: give up at once.
                log.warning("webhook for job %s not delivered: %s", uuid, exc.message)
                break
            except httpx.HTTPError as exc:
                log.warning("webhook %s for job %s failed: %s (attempt %d)", shown, uuid,
                            type(exc).__name__, attempt)
            if attempt < self._webhook.attempts:
                await asyncio.sleep(delay)
                delay *= 2
        async with self._db() as db:
            # Delivery is over: the credentials in the URL are of no further use here.
            await db.execute(update(Job).where(leases.owned(uuid, self._lease)).values(
                webhook_state=state, webhook=shown))
            await db.commit()
        if self._owned.get(uuid) is asyncio.current_task():
            del self._owned[uuid]

    async def _still_owned(self, uuid: str) -> bool:
        async with self._db() as db:
            owned = await leases.still_owned(db, uuid, self._lease)
            await db.commit()
            return owned

    async def _post(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> int:
        """One delivery attempt, to an address the policy allows now (the next one when one
        cannot be connected to); the reply's status. Raises WebhookRefused, httpx.HTTPError."""
        destination = await check(url, self._webhook.destinations)
        credentials = destination.credentials
        auth = httpx.BasicAuth(*credentials) if credentials else httpx.USE_CLIENT_DEFAULT
        for i, address in enumerate(destination.addresses):
            try:
                response = await self._http.post(
                    destination.pinned_url(address), json=body, auth=auth,
                    headers={**headers, "Host": destination.host_header},
                    extensions={"sni_hostname": destination.host},
                    timeout=self._webhook.timeout)
            except httpx.ConnectError:
                if i + 1 == len(destination.addresses):
                    raise
                continue
            return response.status_code
        raise AssertionError("a checked destination has at least one address")

    # --- start / stop / expiry ----------------------------------------------------------------
    async def resume_unfinished(self) -> int:
        """Take over the unfinished jobs that no live node owns, finishing each in the
        background (a running job through its API's resumer, a webhook by redelivery), and
        keep doing so, and renewing this node's leases, until :meth:`aclose`. At start: with
        ``exclusive``, every unfinished job; else those whose lease expired, and those of this
        node id's previous process. Returns how many jobs were resumed now."""
        resumed = await self._take_over(everything=self._exclusive, own=True)
        if self._keeper is None:
            self._keeper = asyncio.create_task(self._keep_leases())
        return resumed

    async def _take_over(self, *, everything: bool = False, own: bool = False) -> int:
        async with self._db() as db:
            claimed = await leases.claim(db, self._lease, everything=everything, own=own)
            await db.commit()
        resumed = 0
        for job in claimed:
            if job.uuid in self._owned:
                continue  # running here already (claimed with ``own``)
            if job.state == JobState.RUNNING:
                resume = self._resumers.get(job.api)
                if resume is None:
                    log.error("job %s of API %s cannot be resumed: no resumer", job.uuid,
                              job.api)
                    continue
                log.info("resuming job %s (%s) on node %s", job.uuid, job.api, self.node)
                self._spawn(self._run(job.uuid, functools.partial(resume, job.uuid,
                                                                  job.request), job.webhook),
                            owned=job.uuid)
                resumed += 1
            elif job.webhook and job.status is not None and job.result is not None:
                reply = await self._whole(job.uuid, job.api, JobReply(job.status, job.result))
                self._spawn(self._deliver(job.uuid, job.webhook, reply, checked=True),
                            owned=job.uuid)
        return resumed

    async def _keep_leases(self) -> None:
        """Renew this node's leases and take over expired ones, for ever (until cancelled)."""
        loop = asyncio.get_running_loop()
        renewed_at = loop.time()
        while True:
            await asyncio.sleep(self._lease.look_every)
            try:
                if loop.time() - renewed_at >= self._lease.renew_every:
                    await self._renew()
                    renewed_at = loop.time()
                resumed = await self._take_over()
                if resumed:
                    log.info("took over %d jobs whose node stopped renewing them", resumed)
            except Exception:
                log.exception("renewing or taking over job leases failed; retrying")

    async def _renew(self) -> None:
        mine = set(self._owned)
        async with self._db() as db:
            renewed = await leases.renew(db, self._lease)
            missing = mine - renewed
            # Missing: finished here a moment ago (its task about to let go of it), or taken
            # over by a peer. Only the latter is stopped; the question is rarely asked.
            lost = await leases.owned_by_others(db, missing, self._lease) if missing else set()
            await db.commit()
        for uuid in lost:
            task = self._owned.pop(uuid, None)
            if task is not None:
                # A peer took the job over (this node was silent longer than its lease): it
                # finishes the job; this node stops, and stores and sends nothing.
                log.warning("job %s was taken over by another node; stopping it here", uuid)
                task.cancel()

    async def purge_expired(self) -> int:
        """Delete jobs past their retention; returns how many."""
        async with self._db() as db:
            result = await db.execute(delete(Job).where(Job.expires_at <= utcnow()))
            await db.commit()
            return int(getattr(result, "rowcount", 0) or 0)

    async def release(self) -> None:
        """Let this node's leases expire now, so that a peer takes its unfinished jobs over
        at once (after :meth:`aclose`, when nothing more is written for them here)."""
        try:
            async with self._db() as db:
                released = await leases.release(db, self._lease)
                await db.commit()
        except Exception:  # the peers take them over once the leases expire
            log.exception("releasing this node's job leases failed")
            return
        if released:
            log.info("released %d unfinished jobs to the other nodes", released)

    async def aclose(self) -> None:
        """Stop every job task (running jobs stay ``running`` in the database, to be resumed
        by this node's next start or a peer: :meth:`release`) and close the webhook
        client."""
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._http.aclose()


def _past_deadline(job: Job) -> JobReply:
    """The reply of a job still running past the ``apiTimeout`` its ``202`` announced (ZStack
    answers an API that outlives its timeout with ``SYS.1001``)."""
    assert job.deadline is not None
    announced = (job.deadline - job.created_at).total_seconds()
    error = ErrorCode.of(
        Code.SYS_TIMEOUT,
        f"job[uuid:{job.uuid}] did not finish within its apiTimeout of {announced:g}s (the "
        "node running it may have stopped; if its result is collected later, the "
        "execution's history has it)")
    return JobReply(503, {"error": error.to_json()})
