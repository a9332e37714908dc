"""``/health`` says what is wrong; ``/health/live`` and ``/health/ready`` for load balancers
(issue 13, operators' view)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fakes.hosts import MemoryHosts
from fixtures.postgres import PostgresServer, _bin_dir
from fixtures.server import RunningServer, ServerFactory

from api.conftest import LOCAL, VMS, with_sources
from api.doubles import ScriptedExecutor
from vmexec.agent.directory import AgentDirectory


def get(server: RunningServer, path: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", timeout=30)


def test_live_and_ready_when_all_is_well(server: RunningServer) -> None:
    assert get(server, "/health/live").json() == {"status": "ok"}
    assert get(server, "/health/ready").json() == {"status": "ok"}
    health = get(server, "/health").json()
    assert health["status"] == "ok" and health["database"] == "ok"
    assert health["hosts"] == [{"uuid": health["hosts"][0]["uuid"], "name": "localhost",
                                "status": "Connected", "reachable": True}]


def start_over(factory: ServerFactory, hosts: MemoryHosts) -> RunningServer:
    def executor(agents: AgentDirectory) -> ScriptedExecutor:
        return ScriptedExecutor(agents)
    return factory(executor=executor, inventory=with_sources(hosts), libvirt_uri=LOCAL)


def test_health_names_an_unreachable_host(server_factory: ServerFactory) -> None:
    hosts = MemoryHosts()
    host = hosts.add(LOCAL, *VMS)
    start_over(server_factory, hosts).stop()
    host.go_down()  # between two runs: the restarted server finds it unreachable
    server = start_over(server_factory, hosts)
    health = get(server, "/health").json()
    assert health["status"] == "ok"  # the server serves: a host down is a problem, not a failure
    [shown] = health["hosts"]
    assert shown["name"] == "localhost" and shown["reachable"] is False
    assert shown["status"] == "Disconnected"
    assert any("localhost" in w and "Disconnected" in w for w in health["warnings"])
    assert get(server, "/health/ready").status_code == 200


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test alone: the test stops it."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.fail("PostgreSQL is not installed: scripts/bootstrap.sh installs it")
    directory = Path(tempfile.mkdtemp(prefix="vmexec-pg-health-"))
    server = PostgresServer(bin_dir, directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.slow
def test_ready_fails_while_live_holds_when_the_database_is_gone(
        start_scripted: Callable[..., RunningServer], own_postgres: PostgresServer) -> None:
    server = start_scripted(db=own_postgres.create_database())
    assert get(server, "/health/ready").status_code == 200
    own_postgres.stop()
    ready = get(server, "/health/ready")
    assert ready.status_code == 503
    assert ready.json()["database"].startswith("unreachable")
    live = get(server, "/health/live")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    health = get(server, "/health")
    assert health.status_code == 503 and health.json()["status"] == "error"
    assert health.json()["hosts"][0]["name"] == "localhost"  # still says what it knows
