"""Runs: one command on many VMs, at most ``maxConcurrency`` at once, stopping once more than
``maxErrors`` targets failed (as AWS SSM's Run Command).

A run is an async API job whose uuid is the run's. :meth:`RunService.start` resolves the
targets once and records the run, its targets (``Pending``) and the job in one transaction.
Then ``maxConcurrency`` workers take the pending targets in order. A target starts with one
commit of its row (``Running`` + its execution's uuid) together with the execution's record,
and only then is the command launched (:meth:`ExecutionService.execute`), so that after a
restart a ``Running`` target is collected from the guest (:meth:`ExecutionService.recover`),
never launched twice, and a ``Pending`` one was never launched at all. Target changes of all
runs are group-committed (:mod:`vmexec.services.group_commit`): a transaction carries every
change queued while the previous one ran, not one each.

Raises :class:`RunNotFound` for an unknown run or another account's (and, from :meth:`start`,
what target resolution raises: see :mod:`vmexec.services.run_targets`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Executable, Table, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vmexec.db.models import Execution, utcnow
from vmexec.db.models_runs import Run, RunTarget
from vmexec.execution.models import ExecRequest
from vmexec.services import run_records
from vmexec.services.errors import InvalidValue, NotFound
from vmexec.services.executions import (
    RECORD,
    Caller,
    ExecutionService,
    Finished,
    request_from_json,
    request_to_json,
)
from vmexec.services.group_commit import GroupCommit, Rows
from vmexec.services.inventory import Inventory
from vmexec.services.jobs import DuplicateJob, ErrorReply, JobReply, JobService
from vmexec.services.run_events import (
    RunEvent,
    RunFeed,
    replayed,
    run_finished,
    target_finished,
    target_started,
    with_output,
)
from vmexec.services.run_schedule import Schedule, Target
from vmexec.services.run_targets import TargetSpec, resolve_targets
from vmexec.services.telemetry import Metrics
from vmexec.zstack.exec import ExecutionState
from vmexec.zstack.ids import new_uuid
from vmexec.zstack.query import Query
from vmexec.zstack.runs import (
    API,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_ERRORS,
    LimitError,
    RunState,
    TargetState,
    check_limits,
    resolve_concurrency,
    resolve_max_errors,
)

log = logging.getLogger(__name__)

#: Target rows per INSERT when a run is recorded (SQLite allows 32,766 parameters a
#: statement, PostgreSQL 65,535; a target row has 5).
INSERT_BATCH = 1000
#: How often the events of a run driven elsewhere are read from the database.
POLL_SECONDS = 0.5
#: How long a cancel waits for the run to end before it answers.
CANCEL_WAIT_SECONDS = 20.0


class RunNotFound(NotFound):
    kind = "GuestVmCommandRunVO"


@dataclass(frozen=True, slots=True)
class RunRequest:
    """What the client asks a run for."""

    request: ExecRequest
    targets: TargetSpec
    max_concurrency: int | str = DEFAULT_MAX_CONCURRENCY
    max_errors: int | str = DEFAULT_MAX_ERRORS


@dataclass(eq=False, slots=True)
class _LiveRun:
    """A run this process drives."""

    uuid: str
    caller: Caller
    request: ExecRequest
    max_concurrency: int
    schedule: Schedule
    feed: RunFeed
    #: Started targets by execution uuid, until they end.
    running: dict[str, Target] = field(default_factory=dict)
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class RunService:
    """Starts, drives, resumes, cancels and reports runs (see the module docstring)."""

    def __init__(self, db: async_sessionmaker[AsyncSession], executions: ExecutionService,
                 inventory: Inventory, jobs: JobService, failure: ErrorReply, *,
                 retention: timedelta = timedelta(days=30),
                 metrics: Metrics | None = None) -> None:
        self._db = db
        self._metrics = metrics or Metrics()
        self._retention = retention
        self._executions = executions
        self._inventory = inventory
        self._jobs = jobs
        self._failure = failure
        self._writes = GroupCommit(db)
        self._live: dict[str, _LiveRun] = {}

    # --- start ------------------------------------------------------------------------------
    async def start(self, caller: Caller, run: RunRequest, *, uuid: str,
                    webhook: str | None = None) -> asyncio.Task[JobReply]:
        """Resolve the targets and start run ``uuid``; the task yields the job's reply (the
        run's inventory) once the run has ended.

        Raises: ``InvalidValue`` (limits, empty or too many targets), ``VmNotFound``,
        ``QueryError``, ``DuplicateJob``; nothing has started then.
        """
        try:
            check_limits(run.max_concurrency, run.max_errors)
        except LimitError as exc:
            raise InvalidValue(str(exc)) from None
        targets = await resolve_targets(self._inventory, run.targets, caller.viewer)
        count = len(targets)
        concurrency = resolve_concurrency(run.max_concurrency, count)
        max_errors = resolve_max_errors(run.max_errors, count)
        if uuid in self._live:
            raise DuplicateJob(f"job[uuid:{uuid}] exists already; X-Job-UUID must be new for "
                               "every call")
        live = _LiveRun(uuid, caller, run.request, concurrency,
                        Schedule(targets, max_errors=max_errors), RunFeed())
        self._live[uuid] = live
        now = utcnow()
        stored = {"request": request_to_json(run.request), "targets": run.targets.to_json(),
                  "maxConcurrency": run.max_concurrency, "maxErrors": run.max_errors}
        writes: list[Executable] = [insert(Run).values(
            uuid=uuid, account_uuid=caller.account_uuid, account_name=caller.account_name,
            command=run.request.command, platform=str(run.request.platform), request=stored,
            max_concurrency=concurrency, max_errors=max_errors, target_count=count,
            state=RunState.RUNNING, create_date=now, start_date=now)]
        for first in range(0, count, INSERT_BATCH):
            writes.append(insert(RunTarget).values([
                {"run_uuid": uuid, "seq": t.seq, "vm_uuid": t.vm_uuid, "vm_name": t.vm_name,
                 "state": TargetState.PENDING}
                for t in targets[first:first + INSERT_BATCH]]))
        try:
            task = await self._jobs.start(
                uuid=uuid, api=API, account_uuid=caller.account_uuid, webhook=webhook,
                request={"runUuid": uuid}, work=lambda: self._drive(live, ()), writes=writes)
        except BaseException:
            self._live.pop(uuid, None)
            raise
        self._metrics.run_started()
        return task

    # --- resume -----------------------------------------------------------------------------
    async def resume(self, job_uuid: str, stored: Mapping[str, Any]) -> JobReply:
        """Finish run ``job_uuid`` found running at start: targets that had started are
        collected from their guests (never launched again), pending ones are started."""
        uuid = str(stored["runUuid"])
        async with self._db() as db:
            run = await db.get(Run, uuid)
            rows = (await db.execute(
                select(RunTarget, Execution.state, Execution.exit_code, Execution.error_code)
                .outerjoin(Execution, Execution.uuid == RunTarget.execution_uuid)
                .where(RunTarget.run_uuid == uuid).order_by(RunTarget.seq))).all()
        if run is None:
            return self._failure(RunNotFound(uuid))
        if run.state != RunState.RUNNING:
            return JobReply(200, {"inventory": await self._inventory_of(run)})
        caller = Caller(run.account_uuid, run.account_name)
        request = request_from_json(run.request["request"])
        pending, ended, recovering, events = [], [], [], []
        for target, state, exit_code, error_code in rows:
            ref = Target(target.seq, target.vm_uuid, target.vm_name)
            if target.state == TargetState.PENDING:
                pending.append(ref)
                continue
            if target.state == TargetState.RUNNING and target.execution_uuid is not None:
                events.append(target_started(ref.vm_uuid, ref.vm_name, target.execution_uuid))
                if state is None or state == ExecutionState.RUNNING:
                    # (No record at all cannot happen: it is committed with the target's
                    # start. Collected all the same, the guest decides.)
                    recovering.append((ref, target.execution_uuid))
                    continue
                # The execution's end was committed, the target's was not yet: take it.
                self._writes.submit(_target_end(uuid, ref.seq, TargetState(state), exit_code,
                                                error_code))
                target.state, target.exit_code, target.error_code = state, exit_code, error_code
            elif target.execution_uuid is not None:
                events.append(target_started(ref.vm_uuid, ref.vm_name, target.execution_uuid))
            ended.append(TargetState(target.state))
            if target.state != TargetState.SKIPPED:
                events.append(target_finished(ref.vm_uuid, target.execution_uuid, target.state,
                                              target.exit_code, target.error_code))
        schedule = Schedule(pending, max_errors=run.max_errors, ended=ended,
                            running=len(recovering))
        live = _LiveRun(uuid, caller, request, run.max_concurrency, schedule, RunFeed(events))
        self._live[uuid] = live
        if schedule.stopped and pending:
            self._writes.submit(_skip_pending(uuid))
        return await self._drive(live, recovering)

    # --- driving a run ----------------------------------------------------------------------
    async def _drive(self, live: _LiveRun,
                     recovering: Sequence[tuple[Target, str]]) -> JobReply:
        try:
            async with asyncio.TaskGroup() as workers:
                for target, execution in recovering:
                    workers.create_task(self._work(live, (target, execution)))
                for _ in range(max(0, live.max_concurrency - len(recovering))):
                    workers.create_task(self._work(live, None))
            state = live.schedule.outcome()
            skipped = live.schedule.counts[TargetState.SKIPPED]
            for _ in range(skipped):
                self._metrics.run_target_finished(TargetState.SKIPPED)
            self._metrics.run_finished(state)
            await self._writes.commit(update(Run).where(Run.uuid == live.uuid).values(
                state=state, finish_date=utcnow()))
            inventory = await self._inventory_of_uuid(live.uuid)
            live.feed.publish(run_finished(inventory))
            return JobReply(200, {"inventory": inventory})
        finally:
            live.feed.close()
            live.ended.set()
            self._live.pop(live.uuid, None)

    async def _work(self, live: _LiveRun, recovered: tuple[Target, str] | None) -> None:
        """One worker: finish the target it recovers, if any, then start pending targets one
        after the other until none is left or the run stops."""
        if recovered is not None:
            target, execution = recovered
            live.running[execution] = target
            finished = await self._guarded(live, execution, self._executions.recover(
                target.vm_uuid, live.request, uuid=execution, commit=self._writes.commit))
            self._ended(live, target, execution, finished)
        while (pending := live.schedule.next()) is not None:
            await self._run_target(live, pending)

    async def _run_target(self, live: _LiveRun, target: Target) -> None:
        try:
            vm = await self._inventory.resolve(target.vm_uuid)
        except Exception as exc:  # the VM is gone since the run started
            error = self._failure(exc).body.get("error", {}).get("code")
            if live.schedule.stopped:
                live.schedule.skipped()  # its row is Pending: the run's skip covers it
                return
            self._ended(live, target, None, None, error_code=error)
            return
        if live.schedule.stopped:
            live.schedule.skipped()
            return
        execution = new_uuid()
        # No await between the check above and queueing this: a stop's skip of the pending
        # rows is queued after it, so it never overwrites a target that starts.
        try:
            await self._writes.commit(
                Rows(_STARTED, {"b_run": live.uuid, "b_seq": target.seq, "b_state": "Running",
                                "b_execution": execution}),
                Rows(RECORD, self._executions.record_values(
                    live.caller, target.vm_uuid, live.request, uuid=execution,
                    run_uuid=live.uuid)))
        except Exception as exc:  # the database failed: not started, the run goes on
            log.exception("run %s: the start of target %d failed", live.uuid, target.seq)
            self._ended(live, target, None, exc)
            return
        live.running[execution] = target
        live.feed.publish(target_started(target.vm_uuid, target.vm_name, execution))
        if live.schedule.cancelled:
            # Cancelled while this start was being committed: recorded, not started, so it
            # never starts (it ends Cancelled).
            await self._cancel_execution(live, execution)
        finished = await self._guarded(live, execution, self._executions.execute(
            vm, live.request, uuid=execution, commit=self._writes.commit))
        self._ended(live, target, execution, finished)

    async def _guarded(self, live: _LiveRun, execution: str,
                       run: Awaitable[Finished]) -> Finished | BaseException:
        """The execution's end, or the exception that escaped it (a database failure): the
        target then ends Failed, and the run goes on."""
        try:
            return await run
        except Exception as exc:
            log.exception("run %s: execution %s failed unexpectedly", live.uuid, execution)
            return exc

    def _ended(self, live: _LiveRun, target: Target, execution: str | None,
               finished: Finished | BaseException | None, *,
               error_code: str | None = None) -> None:
        if execution is not None:
            live.running.pop(execution, None)
        exit_code = None
        if isinstance(finished, Finished):
            state = TargetState(finished.state)
            exit_code, error_code = finished.exit_code, finished.error_code
        else:
            state = TargetState.FAILED
            if isinstance(finished, BaseException):
                error_code = self._failure(finished).body.get("error", {}).get("code")
        stopped = live.schedule.ended(state)
        self._metrics.run_target_finished(state)
        self._writes.submit(_target_end(live.uuid, target.seq, state, exit_code, error_code))
        if stopped:
            self._writes.submit(_skip_pending(live.uuid))
        live.feed.publish(target_finished(target.vm_uuid, execution, state, exit_code,
                                          error_code))

    # --- cancel -----------------------------------------------------------------------------
    async def cancel(self, caller: Caller, uuid: str) -> dict[str, Any]:
        """Skip the run's pending targets and cancel its running ones; waits (at most
        :data:`CANCEL_WAIT_SECONDS`) for the run to end and returns its inventory. A run that
        has ended is left as it is. Raises RunNotFound."""
        run = await self._get(caller, uuid)
        live = self._live.get(run.uuid)
        if live is not None:
            if live.schedule.cancel():
                # Queued now, so after every start already queued (see _run_target).
                self._writes.submit(_skip_pending(live.uuid))
                await asyncio.gather(*(self._cancel_execution(live, execution)
                                       for execution in list(live.running)))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CANCEL_WAIT_SECONDS):
                    await live.ended.wait()
        await self._writes.commit()
        return await self._inventory_of_uuid(run.uuid)

    async def _cancel_execution(self, live: _LiveRun, execution: str) -> None:
        try:
            await self._executions.cancel(live.caller, execution)
        except Exception:
            log.exception("run %s: cancelling execution %s failed", live.uuid, execution)

    # --- reading ----------------------------------------------------------------------------
    async def get(self, caller: Caller, uuid: str) -> dict[str, Any]:
        """The run's inventory with ``targetCounts`` and ``targets``. Raises RunNotFound."""
        run = await self._get(caller, uuid)
        async with self._db() as db:
            rows = (await db.execute(
                select(RunTarget, Execution.stdout_bytes, Execution.stderr_bytes)
                .outerjoin(Execution, Execution.uuid == RunTarget.execution_uuid)
                .where(RunTarget.run_uuid == run.uuid).order_by(RunTarget.seq))).all()
        inventory = await self._inventory_of(run)
        inventory["targets"] = [_target_wire(t, out, err) for t, out, err in rows]
        return inventory

    async def events(self, caller: Caller, uuid: str) -> AsyncIterator[RunEvent]:
        """The run's events with its targets' output, live while it runs here, from the
        database otherwise (polled while the run is not driven here yet or by another
        process); ends with ``runFinished``. Raises RunNotFound (before the first event)."""
        run = await self._get(caller, uuid)
        live = self._live.get(run.uuid)
        if live is not None:
            source = live.feed.follow()
        elif run.state != RunState.RUNNING:
            source = replayed(await self._stored_events(run))
        else:
            source = self._polled(run)
        return with_output(source, lambda execution: self._executions.output.follow(execution))

    async def _polled(self, run: Run) -> AsyncIterator[RunEvent]:
        """The events of a running run that this process does not drive (yet: it may be
        resumed here in a moment), from the database every :data:`POLL_SECONDS`, switching
        to the live feed once there is one; each event once."""
        seen: set[tuple[str, str | None]] = set()

        def new(event: RunEvent) -> bool:
            key = (event.kind, event.data.get("executionUuid") or
                   event.data.get("vmInstanceUuid"))
            if key in seen:
                return False
            seen.add(key)
            return True

        while True:
            live = self._live.get(run.uuid)
            if live is not None:
                async for event in live.feed.follow():
                    if new(event):
                        yield event
                return
            for event in await self._stored_events(run):
                if new(event):
                    yield event
            if run.state != RunState.RUNNING:
                return
            await asyncio.sleep(POLL_SECONDS)
            async with self._db() as db:
                fresh = await db.get(Run, run.uuid, populate_existing=True)
            if fresh is None:  # purged meanwhile
                return
            run = fresh

    async def _stored_events(self, run: Run) -> list[RunEvent]:
        async with self._db() as db:
            targets = (await db.scalars(select(RunTarget).where(RunTarget.run_uuid == run.uuid)
                                        .order_by(RunTarget.seq))).all()
        events = []
        for target in targets:
            if target.execution_uuid is not None:
                events.append(target_started(target.vm_uuid, target.vm_name,
                                             target.execution_uuid))
            if TargetState(target.state).ended and target.state != TargetState.SKIPPED:
                events.append(target_finished(target.vm_uuid, target.execution_uuid,
                                              target.state, target.exit_code,
                                              target.error_code))
        if run.state != RunState.RUNNING:
            events.append(run_finished(await self._inventory_of(run)))
        return events

    async def _get(self, caller: Caller, uuid: str) -> Run:
        async with self._db() as db:
            run = await db.get(Run, uuid.lower())
        if run is None or not (caller.admin or run.account_uuid == caller.account_uuid):
            raise RunNotFound(uuid)
        return run

    async def _inventory_of_uuid(self, uuid: str) -> dict[str, Any]:
        async with self._db() as db:
            run = await db.get(Run, uuid)
        assert run is not None, "runs are only deleted once ended and expired"
        return await self._inventory_of(run)

    async def _inventory_of(self, run: Run) -> dict[str, Any]:
        async with self._db() as db:
            return await run_records.inventory(db, run)

    async def query(self, caller: Caller, query: Query) -> dict[str, Any]:
        """QueryGuestVmCommandRun's reply: the caller's runs (an admin's: all). Raises
        QueryError."""
        async with self._db() as db:
            return await run_records.query(
                db, query, account_uuid=None if caller.admin else caller.account_uuid)

    async def purge_expired(self) -> int:
        """Delete runs (and their targets) that ended more than the retention ago, as their
        executions are; returns how many."""
        ended_before = utcnow() - self._retention
        expired = select(Run.uuid).where(Run.state != RunState.RUNNING,
                                         Run.finish_date <= ended_before)
        async with self._db() as db:
            # The targets explicitly, not by the cascade alone: a database without foreign key
            # enforcement would keep them.
            await db.execute(delete(RunTarget).where(RunTarget.run_uuid.in_(expired)))
            result = await db.execute(delete(Run).where(Run.uuid.in_(expired)))
            await db.commit()
            return int(getattr(result, "rowcount", 0) or 0)

    async def aclose(self) -> None:
        """Commit the target changes still queued."""
        await self._writes.aclose()


def _target_wire(target: RunTarget, stdout_bytes: int | None,
                 stderr_bytes: int | None) -> dict[str, Any]:
    values = {
        "vmInstanceUuid": target.vm_uuid, "vmInstanceName": target.vm_name,
        "state": target.state, "executionUuid": target.execution_uuid,
        "exitCode": target.exit_code, "errorCode": target.error_code,
        "stdoutBytes": stdout_bytes, "stderrBytes": stderr_bytes,
    }
    return {k: v for k, v in values.items() if v is not None}


_TARGETS = cast(Table, RunTarget.__table__)
#: A target's start and end, one row each in a group's executemany (built once: building an
#: UPDATE per target costs more than running it).
_STARTED = (update(_TARGETS)
            .where(_TARGETS.c.run_uuid == bindparam("b_run"), _TARGETS.c.seq == bindparam("b_seq"))
            .values(state=bindparam("b_state"), execution_uuid=bindparam("b_execution")))
_ENDED = (update(_TARGETS)
          .where(_TARGETS.c.run_uuid == bindparam("b_run"), _TARGETS.c.seq == bindparam("b_seq"))
          .values(state=bindparam("b_state"), exit_code=bindparam("b_exit"),
                  error_code=bindparam("b_error")))


def _target_end(run_uuid: str, seq: int, state: TargetState, exit_code: int | None,
                error_code: str | None) -> Rows:
    return Rows(_ENDED, {"b_run": run_uuid, "b_seq": seq, "b_state": str(state),
                         "b_exit": exit_code, "b_error": error_code})


def _skip_pending(run_uuid: str) -> Executable:
    return (update(RunTarget)
            .where(RunTarget.run_uuid == run_uuid, RunTarget.state == TargetState.PENDING)
            .values(state=TargetState.SKIPPED))
