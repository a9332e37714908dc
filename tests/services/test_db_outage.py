"""A database outage while commands end (issue 10's "nothing lost"): the job's reply, which
carries the command's record and output, and a run's queued target writes wait in memory and
are written once the database is back. PostgreSQL is really stopped and started again (a
server of this test's own, so that the other tests keep theirs), as a restart or a failover
looks to its clients.

Before: the write failed once and was dropped: the job stayed ``running`` with its result
lost, and the run's writes were logged as failed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from fixtures.postgres import PostgresServer
from sqlalchemy import exc as sa_exc
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vmexec.db.migrate import upgrade
from vmexec.db.models import utcnow
from vmexec.db.models_inventory import NodeHeartbeatRow
from vmexec.db.outages import is_outage
from vmexec.db.session import create_engine, create_sessionmaker
from vmexec.server import error_reply
from vmexec.services.group_commit import GroupCommit
from vmexec.services.jobs import JobReply, JobService, WebhookPolicy
from vmexec.services.leases import NodeLease
from vmexec.services.webhooks import DestinationPolicy

pytestmark = pytest.mark.slow

ACCOUNT = "a" * 32
#: Long enough for several tries to fail while the database is away (not a speed check).
OUTAGE = 2.0


@pytest.fixture
async def postgres(own_postgres: PostgresServer) -> tuple[PostgresServer, str]:
    url = own_postgres.create_database()
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    return own_postgres, url


@pytest.fixture
async def db(postgres: tuple[PostgresServer, str]
             ) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(postgres[1])
    yield create_sessionmaker(engine)
    await engine.dispose()


async def _outage(server: PostgresServer) -> None:
    await asyncio.to_thread(server.stop, fast=True)


async def test_a_jobs_reply_outlasts_a_database_restart(
        postgres: tuple[PostgresServer, str], db: async_sessionmaker[AsyncSession]) -> None:
    server, _ = postgres
    jobs = JobService(db, retention=timedelta(days=1), error_reply=error_reply,
                      webhook=WebhookPolicy(attempts=1, timeout=5,
                                            destinations=DestinationPolicy.from_settings([])),
                      lease=NodeLease("node", 300), exclusive=True)
    command_ended = asyncio.Event()

    async def work() -> JobReply:
        await command_ended.wait()
        return JobReply(200, {"success": True, "stdout": "kept\n"})

    job = "1" * 32
    task = await jobs.start(uuid=job, api="TestApi", account_uuid=ACCOUNT, request={},
                            work=work)
    try:
        await _outage(server)
        command_ended.set()  # the result is in, the database is not
        await asyncio.sleep(OUTAGE)
        assert not task.done()  # still trying (before: failed, the result dropped)
        await asyncio.to_thread(server.start)
        reply = await asyncio.wait_for(task, 60)
        assert reply.body["stdout"] == "kept\n"
        stored = await jobs.reply(job, ACCOUNT)
        assert stored is not None and stored.body["stdout"] == "kept\n"
    finally:
        await jobs.aclose()


async def test_queued_writes_outlast_a_database_restart(
        postgres: tuple[PostgresServer, str], db: async_sessionmaker[AsyncSession]) -> None:
    server, _ = postgres
    writes = GroupCommit(db)
    await _outage(server)
    committed = asyncio.ensure_future(writes.commit(insert(NodeHeartbeatRow).values(
        node_id="written-late", lease_expires=utcnow())))
    await asyncio.sleep(OUTAGE)
    assert not committed.done()
    await asyncio.to_thread(server.start)
    await asyncio.wait_for(committed, 60)
    async with db() as session:
        assert await session.scalar(select(NodeHeartbeatRow.node_id)) == "written-late"
    await writes.aclose()


@pytest.mark.parametrize(("error", "outage"), [
    (ConnectionRefusedError(111, "Connect call failed"), True),  # PostgreSQL down (asyncpg)
    (sa_exc.TimeoutError("QueuePool limit of size 1 overflow 0 reached"), True),
    (sa_exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked")),
     True),
    (sa_exc.OperationalError("INSERT", {}, sqlite3.OperationalError(
        "database or disk is full")), True),
    # SQLite's bad statements are OperationalErrors too: raised at once, never retried.
    (sa_exc.OperationalError("INSERT", {}, sqlite3.OperationalError("no such table: x")),
     False),
    (sa_exc.OperationalError("SELEC", {}, sqlite3.OperationalError(
        'near "SELEC": syntax error')), False),
    (sa_exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed")),
     False),
])
def test_what_counts_as_the_database_being_away(error: Exception, outage: bool) -> None:
    assert is_outage(error) is outage
