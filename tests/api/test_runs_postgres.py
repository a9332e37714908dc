"""Runs on PostgreSQL (a throwaway cluster): the group commit's executemany rows, the run
query in SQL, counts, a restart mid-run."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fixtures.server import RunningServer, ServerFactory

from api.doubles import FakeGuest
from api.run_helpers import RUNS, get_run, start_run, wait_run, wait_until
from api.test_runs import DB, WEB_UUIDS, start_server

pytestmark = pytest.mark.slow


@pytest.fixture
def start(server_factory: ServerFactory, fake_guest: FakeGuest,
          postgres_url: str) -> Callable[..., RunningServer]:
    return lambda: start_server(server_factory, fake_guest, db=postgres_url)


def test_runs_on_postgresql(start: Callable[..., RunningServer], fake_guest: FakeGuest) -> None:
    first = start()
    assert first.settings.db.startswith("postgresql+asyncpg://")
    with first.client() as client:
        failed = start_run(client, "exit 2", uuids=WEB_UUIDS, maxConcurrency=1, maxErrors=0)
        assert wait_run(client, failed)["state"] == "Failed"
        assert [t["state"] for t in get_run(client, failed)["targets"]] == [
            "Failed", "Skipped", "Skipped"]
        running = start_run(client, "echo a\nsleep 1\necho b", uuids=[*WEB_UUIDS, DB.uuid],
                            maxConcurrency=2)
        wait_until(lambda: len(fake_guest.runs) == 3, what="two targets of the run started")
    first.stop()
    second = start()
    with httpx.Client(base_url=second.url, headers=first.auth, timeout=60) as client:
        inventory = wait_run(client, running)
        assert inventory["targetCounts"]["Succeeded"] == 4
        assert len(fake_guest.runs) == 1 + 4  # none launched twice
        reply = client.get(RUNS, params={"q": "command~=exit%", "replyWithCount": "true"})
        assert reply.json()["total"] == 1
        assert reply.json()["inventories"][0]["targetCounts"]["Skipped"] == 2
