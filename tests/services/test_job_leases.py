"""Job leases between two nodes (two JobServices, each with its own engine) on one real
PostgreSQL database: a node that lost its job stores no reply and sends no webhook; a start
takes only expired leases; a clean stop hands its jobs over; the claim is atomic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest
from fixtures.postgres import PostgresServer
from nodes.cluster import WebhookReceiver, psql
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vmexec.db.migrate import upgrade
from vmexec.db.session import create_engine, create_sessionmaker
from vmexec.server import error_reply
from vmexec.services.jobs import JobReply, JobService, WebhookPolicy
from vmexec.services.leases import NodeLease
from vmexec.services.webhooks import DestinationPolicy

pytestmark = pytest.mark.slow

API = "TestApi"
ACCOUNT = "a" * 32
HOOKS = WebhookPolicy(attempts=1, timeout=5,
                      destinations=DestinationPolicy.from_settings(["127.0.0.1/32"]))

Node = Callable[..., JobService]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hooks = WebhookReceiver()
    yield hooks
    hooks.close()


async def _eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    """``check()``'s first truthy value (a guard against a hang, not a speed check)."""
    for _ in range(int(timeout / 0.05)):
        if value := await check():
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout:g}s")


@pytest.fixture
async def database(postgres_server: PostgresServer) -> str:
    url = postgres_server.create_database()
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    return url


@pytest.fixture
async def node(database: str) -> AsyncIterator[Node]:
    """``node(name, lease=seconds)``: a JobService of its own (own engine) on the database."""
    made: list[tuple[JobService, Any]] = []

    def make(name: str, lease: float = 30.0) -> JobService:
        engine = create_engine(database)
        db: async_sessionmaker[AsyncSession] = create_sessionmaker(engine)
        jobs = JobService(db, retention=timedelta(days=1), error_reply=error_reply,
                          webhook=HOOKS, lease=NodeLease(name, lease), exclusive=False)
        made.append((jobs, engine))
        return jobs

    yield make
    for jobs, engine in made:
        await jobs.aclose()
        await engine.dispose()


def _reply(text: str) -> JobReply:
    return JobReply(200, {"success": True, "text": text})


def _resumer(text: str, calls: list[str]) -> Callable[[str, Mapping[str, Any]],
                                                       Any]:
    async def resume(uuid: str, stored: Mapping[str, Any]) -> JobReply:
        calls.append(uuid)
        return _reply(text)
    return resume


async def _start(jobs: JobService, uuid: str, gate: asyncio.Event, *,
                 webhook: str | None = None) -> asyncio.Task[JobReply]:
    async def work() -> JobReply:
        await gate.wait()
        return _reply("from the first owner")
    return await jobs.start(uuid=uuid, api=API, account_uuid=ACCOUNT, request={}, work=work,
                            webhook=webhook)


async def test_a_node_that_lost_its_job_stores_and_sends_nothing(
        node: Node, database: str, receiver: WebhookReceiver) -> None:
    first = node("first", lease=0.5)  # silent: it never renews (no keeper started)
    second = node("second")
    calls: list[str] = []
    second.register(API, _resumer("from the peer", calls))
    gate = asyncio.Event()
    job = "1" * 32
    task = await _start(first, job, gate, webhook=receiver.url)
    await asyncio.sleep(0.6)  # the lease runs out (first is stalled)
    assert await second.resume_unfinished() == 1
    await _eventually(lambda: second.reply(job, ACCOUNT))
    gate.set()  # first comes back and finishes its work: too late
    await task
    await second.aclose()  # its deliveries end
    await first.aclose()
    reply = await second.reply(job, ACCOUNT)
    assert reply is not None and reply.body["text"] == "from the peer"
    assert calls == [job]
    assert receiver.count(job) == 1 and receiver.bodies[job]["text"] == "from the peer"
    assert psql(database, f"SELECT owner_node, webhook_state FROM api_jobs WHERE uuid = "
                          f"'{job}'") == [["second", "delivered"]]


async def test_a_node_that_lost_its_job_stores_nothing_even_before_its_peer(
        node: Node, database: str, receiver: WebhookReceiver) -> None:
    # The stalled owner wakes up and finishes while its peer still collects the result: the
    # job is the peer's, so the first store is refused and only the peer's reply counts.
    first = node("first", lease=0.5)
    second = node("second")
    collected = asyncio.Event()

    async def resume(uuid: str, stored: Mapping[str, Any]) -> JobReply:
        await collected.wait()
        return _reply("from the peer")

    second.register(API, resume)
    gate = asyncio.Event()
    job = "4" * 32
    task = await _start(first, job, gate, webhook=receiver.url)
    await asyncio.sleep(0.6)
    assert await second.resume_unfinished() == 1
    gate.set()
    await task  # first's work ended, its store refused
    assert await second.reply(job, ACCOUNT) is None
    collected.set()
    reply = await _eventually(lambda: second.reply(job, ACCOUNT))
    assert reply.body["text"] == "from the peer"
    await second.aclose()
    await first.aclose()
    assert receiver.count(job) == 1 and receiver.bodies[job]["text"] == "from the peer"


async def test_a_start_takes_no_job_of_a_live_peer(node: Node) -> None:
    live = node("live")
    await live.resume_unfinished()  # renews its leases from now on
    gate = asyncio.Event()
    task = await _start(live, "2" * 32, gate)
    restarted = node("restarted")
    calls: list[str] = []
    restarted.register(API, _resumer("stolen", calls))
    assert await restarted.resume_unfinished() == 0
    gate.set()
    assert (await task).body["text"] == "from the first owner"
    assert calls == []


async def test_a_clean_stop_hands_the_jobs_over_at_once(node: Node) -> None:
    leaving = node("leaving", lease=3600)
    staying = node("staying")
    calls: list[str] = []
    staying.register(API, _resumer("finished by the peer", calls))
    job = "3" * 32
    await _start(leaving, job, asyncio.Event())
    assert await staying.resume_unfinished() == 0  # an hour-long lease
    await leaving.aclose()
    await leaving.release()
    assert await staying.resume_unfinished() == 1
    reply = await _eventually(lambda: staying.reply(job, ACCOUNT))
    assert reply.body["text"] == "finished by the peer" and calls == [job]


async def test_of_nodes_claiming_at_once_each_job_goes_to_one(node: Node) -> None:
    gone = node("gone", lease=0.2)
    jobs = [f"{i:032x}" for i in range(1, 61)]
    for job in jobs:
        await _start(gone, job, asyncio.Event())
    await asyncio.sleep(0.3)
    claimers = [node(f"claimer-{i}") for i in range(4)]
    calls: list[list[str]] = [[] for _ in claimers]
    for claimer, seen in zip(claimers, calls, strict=True):
        claimer.register(API, _resumer("claimed", seen))
    counts = await asyncio.gather(*(c.resume_unfinished() for c in claimers))
    assert sum(counts) == len(jobs)
    async def idle() -> bool:
        return all(claimer.running == 0 for claimer in claimers)

    await _eventually(idle)
    claimed = [job for seen in calls for job in seen]
    assert sorted(claimed) == sorted(jobs)  # every job once


async def test_a_node_restarted_with_its_node_id_takes_its_jobs_back_at_once(
        node: Node) -> None:
    crashed = node("fixed-id", lease=3600)
    job = "5" * 32
    await _start(crashed, job, asyncio.Event())
    await crashed.aclose()  # its process ends without releasing (as a kill -9 would)
    peer = node("peer")
    assert await peer.resume_unfinished() == 0  # an hour-long lease: not the peer's yet
    restarted = node("fixed-id", lease=3600)
    calls: list[str] = []
    restarted.register(API, _resumer("taken back", calls))
    assert await restarted.resume_unfinished() == 1
    reply = await _eventually(lambda: restarted.reply(job, ACCOUNT))
    assert reply.body["text"] == "taken back" and calls == [job]
