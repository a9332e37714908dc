"""``GET /metrics`` (issue 13, operators' view): who may read it, what it counts without a VM.

Parsed with prometheus-client's own parser. The VM test (real agent round trips, engine times)
is tests/api/test_metrics_vm.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from fakes.hosts import MemoryHosts
from fixtures.server import RunningServer, sha512_hex
from prometheus_client.parser import text_string_to_metric_families

from api.conftest import LOCAL, VMS, with_sources
from api.doubles import ScriptedExecutor
from api.test_exec import EXEC, body, error_of
from vmexec.agent.directory import AgentDirectory
from vmexec.config import Settings
from vmexec.server import create_app

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
TOKEN = "s3cret-scrape-token"


def samples(text: str) -> Samples:
    """Every sample of an exposition, by name and labels."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def scrape(server: RunningServer, **headers: str) -> Samples:
    reply = httpx.get(f"{server.url}/metrics", headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    return samples(reply.text)


def test_loopback_reads_metrics_without_a_token(server: RunningServer) -> None:
    found = scrape(server)
    assert value(found, "vmexec_hosts", status="Connected") == 1
    assert value(found, "vmexec_vms", state="Running") == 2  # vm_1 and no-qga
    assert value(found, "vmexec_vms", state="Stopped") == 1
    assert any(name == "vmexec_build_info" for name, _ in found)


def test_a_proxied_request_needs_the_token(server: RunningServer) -> None:
    # A proxy on this machine connects from loopback on behalf of anyone: its headers say so.
    reply = httpx.get(f"{server.url}/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    error = error_of(reply, 403, "ID.1002")
    assert "metrics_token" in error["details"]
    reply = httpx.get(f"{server.url}/metrics", headers={"Forwarded": "for=203.0.113.9"})
    error_of(reply, 403, "ID.1002")


def test_the_token_opens_metrics_to_proxied_clients(start_scripted) -> None:
    server: RunningServer = start_scripted(metrics_token=TOKEN)
    proxied = {"X-Forwarded-For": "203.0.113.9"}
    assert scrape(server, **proxied, Authorization=f"Bearer {TOKEN}")
    for wrong in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", TOKEN, f"OAuth {server.session}"):
        reply = httpx.get(f"{server.url}/metrics", headers={**proxied, "Authorization": wrong})
        error_of(reply, 403, "ID.1002")


@contextlib.asynccontextmanager
async def remote_client(tmp_path: Path, address: str, **settings: object
                        ) -> AsyncIterator[httpx.AsyncClient]:
    """The app, started, and a client whose requests come from ``address`` (not loopback:
    the tests talk over loopback only, so the app is called in-process, as uvicorn would)."""
    hosts = MemoryHosts()
    hosts.add(LOCAL, *VMS)

    def executor(agents: AgentDirectory) -> ScriptedExecutor:
        return ScriptedExecutor(agents)
    app = create_app(Settings(db=f"sqlite:///{tmp_path / 'remote.db'}", libvirt_uri=LOCAL,
                              **settings),  # type: ignore[arg-type]
                     executor=executor, inventory=with_sources(hosts))
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url="http://vmexec.example") as client:
        yield client


async def test_a_remote_client_needs_the_token(tmp_path: Path) -> None:
    async with remote_client(tmp_path, "192.0.2.7") as client:
        error_of(await client.get("/metrics"), 403, "ID.1002")
    async with remote_client(tmp_path, "192.0.2.7", metrics_token=TOKEN) as client:
        error_of(await client.get("/metrics"), 403, "ID.1002")
        reply = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert reply.status_code == 200, reply.text
        assert samples(reply.text)
    async with remote_client(tmp_path, "::1") as client:  # IPv6 loopback
        assert (await client.get("/metrics")).status_code == 200


def test_commands_move_the_execution_metrics(start_scripted: Callable[..., RunningServer]
                                             ) -> None:
    server = start_scripted()
    before = scrape(server)
    with server.client() as client:
        assert client.put(EXEC, json=body("echo hi")).status_code == 200
        assert client.put(EXEC, json=body("echo oops >&2\nexit 3")).status_code == 200
        error_of(client.put(EXEC, json=body("raise unavailable")), 503, "VM.EXEC.1003")
        error_of(client.put(EXEC, json=body("sleep 5", commandTimeout=1)), 503,
                 "VM.EXEC.1001")
    after = scrape(server)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)
    assert moved("vmexec_executions_total", state="Succeeded", error_code="") == 1
    assert moved("vmexec_executions_total", state="Failed", error_code="") == 1
    assert moved("vmexec_executions_total", state="Failed", error_code="VM.EXEC.1003") == 1
    assert moved("vmexec_executions_total", state="TimedOut", error_code="") == 1
    assert moved("vmexec_execution_duration_seconds_count") == 4
    assert moved("vmexec_execution_duration_seconds_sum") > 0
    # The command that never ran has no engine time.
    assert moved("vmexec_execution_engine_duration_seconds_count") == 3
    assert moved("vmexec_execution_output_bytes_total", stream="stdout") == len("hi\n")
    assert moved("vmexec_execution_output_bytes_total", stream="stderr") == len("oops\n")
    assert value(after, "vmexec_executions_in_flight") == 0
    assert moved("vmexec_api_calls_total", method="PUT", route=EXEC, status="200") == 2
    assert moved("vmexec_api_calls_total", method="PUT", route=EXEC, status="503") == 2
    assert moved("vmexec_api_call_duration_seconds_count", method="PUT", route=EXEC) == 4


def test_each_app_counts_its_own(start_scripted: Callable[..., RunningServer],
                                 tmp_path: Path) -> None:
    busy, idle = start_scripted(), start_scripted(db=f"sqlite:///{tmp_path / 'idle.db'}")
    with busy.client() as client:
        assert client.put(EXEC, json=body("echo hi")).status_code == 200
    assert value(scrape(busy), "vmexec_executions_total", state="Succeeded", error_code="") == 1
    assert value(scrape(idle), "vmexec_executions_total", state="Succeeded", error_code="") == 0


def test_failed_and_throttled_logins_are_counted(start_scripted) -> None:
    server: RunningServer = start_scripted(login_max_failures_per_account=2)
    for _ in range(3):
        reply = httpx.put(f"{server.url}/zstack/v1/accounts/login", json={"logInByAccount": {
            "accountName": "admin", "password": sha512_hex("wrong")}})
        assert reply.status_code == 503
    found = scrape(server)
    assert value(found, "vmexec_login_failures_total") == 2
    assert value(found, "vmexec_login_throttled_total", by="account") == 1
    assert value(found, "vmexec_login_throttled_total", by="address") == 0


@pytest.mark.parametrize("path", ["/health", "/health/live", "/health/ready"])
def test_probes_are_counted_under_their_own_route(
        server: RunningServer, path: str) -> None:
    httpx.get(f"{server.url}{path}")
    found = scrape(server)
    assert value(found, "vmexec_api_calls_total", method="GET", route=path, status="200") >= 1
