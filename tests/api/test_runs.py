"""Runs over real HTTP with a scripted engine and in-memory hosts (no guest needed): targets,
limits, maxErrors, states, counts, events, bad inputs, restart. The same behaviours on real
lab VMs are in test_runs_vm.py."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fakes.hosts import MemoryHosts, seen
from fixtures.server import RunningServer, ServerFactory

from api.conftest import LOCAL, with_sources
from api.doubles import FakeGuest, ScriptedExecutor
from api.run_helpers import RUNS, events, get_run, run_body, start_run, wait_run, wait_until
from api.test_exec import error_of
from api.test_exec_async import JOBS, LOOPBACK_WEBHOOKS, WebhookReceiver, poll
from vmexec.agent.directory import AgentDirectory

WEB = [seen(f"web-{i}", f"{i:032x}") for i in (3, 1, 2)]
DB = seen("db-1", "d" * 32)
DOWN = seen("web-down", "e" * 32, state="Stopped")
WEB_UUIDS = sorted((vm.uuid for vm in WEB), key=lambda u: int(u, 16))  # web-1, web-2, web-3


def start_server(factory: ServerFactory, guest: FakeGuest, **settings: Any) -> RunningServer:
    def executor(agents: AgentDirectory) -> ScriptedExecutor:
        return ScriptedExecutor(agents, guest)
    hosts = MemoryHosts()
    hosts.add(LOCAL, *WEB, DB, DOWN)
    return factory(executor=executor, inventory=with_sources(hosts), libvirt_uri=LOCAL,
                   **settings)


@pytest.fixture
def guest() -> FakeGuest:
    return FakeGuest()


@pytest.fixture
def start(server_factory: ServerFactory, guest: FakeGuest) -> Callable[..., RunningServer]:
    return lambda **settings: start_server(server_factory, guest, **settings)


@pytest.fixture
def server(start: Callable[..., RunningServer]) -> RunningServer:
    return start()


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client(timeout=60) as client:
        yield client


def _rows(server: RunningServer, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    path = server.settings.db.split("///", 1)[1]
    with sqlite3.connect(path) as db:
        rows = db.execute(sql, args).fetchall()
    db.close()
    return rows


# --- a run ---------------------------------------------------------------------------------
def test_a_run_runs_the_command_on_every_target(client: httpx.Client, guest: FakeGuest,
                                                server: RunningServer) -> None:
    uuid = start_run(client, "echo hi", uuids=WEB_UUIDS, maxConcurrency=2)
    inventory = wait_run(client, uuid)
    assert inventory["uuid"] == uuid
    assert inventory["state"] == "Succeeded"
    assert inventory["targetCount"] == 3 and inventory["maxConcurrency"] == 2
    assert inventory["targetCounts"]["Succeeded"] == 3
    assert inventory["command"] == "echo hi"
    run = get_run(client, uuid)
    targets = run["targets"]
    assert [t["vmInstanceName"] for t in targets] == ["web-1", "web-2", "web-3"]
    assert all(t["state"] == "Succeeded" and t["exitCode"] == 0 for t in targets)
    assert all(t["stdoutBytes"] == 3 for t in targets)
    executions = [t["executionUuid"] for t in targets]
    assert sorted(executions) == sorted(guest.runs)  # each started once, under its own uuid
    # Each target's execution is an execution of the run, with its output.
    recorded = _rows(server, "SELECT uuid, run_uuid, vm_uuid, state FROM executions")
    assert {(e, uuid, t["vmInstanceUuid"], "Succeeded")
            for e, t in zip(executions, targets, strict=True)} == set(recorded)


def test_x_job_uuid_names_the_run(client: httpx.Client) -> None:
    job = "0123456789abcdef0123456789abcdef"
    assert start_run(client, "echo hi", uuids=WEB_UUIDS[:1],
                     headers={"X-Job-UUID": job}) == job
    assert wait_run(client, job)["state"] == "Succeeded"
    reply = client.post(RUNS, json=run_body("echo hi", uuids=WEB_UUIDS[:1]),
                        headers={"X-Job-UUID": job})
    error_of(reply, 503, "SYS.1007")


def test_conditions_select_the_vms_by_query(client: httpx.Client, guest: FakeGuest) -> None:
    uuid = start_run(client, "echo hi", conditions=["name~=web-%", "state=Running"])
    assert wait_run(client, uuid)["targetCount"] == 3
    # By name; db-1 and the stopped web-down are not selected.
    assert [t["vmInstanceUuid"] for t in get_run(client, uuid)["targets"]] == WEB_UUIDS
    assert len(guest.runs) == 3


def test_a_vm_listed_twice_runs_twice(client: httpx.Client, guest: FakeGuest) -> None:
    uuid = start_run(client, "echo hi", uuids=[DB.uuid, DB.uuid])
    assert wait_run(client, uuid)["targetCounts"]["Succeeded"] == 2
    assert len(guest.runs) == 2


# --- maxErrors ------------------------------------------------------------------------------
def test_max_errors_0_skips_the_rest_after_the_first_failure(client: httpx.Client,
                                                            guest: FakeGuest) -> None:
    uuid = start_run(client, "exit 3", uuids=WEB_UUIDS, maxConcurrency=1, maxErrors=0)
    inventory = wait_run(client, uuid)
    assert inventory["state"] == "Failed"
    targets = get_run(client, uuid)["targets"]
    assert [t["state"] for t in targets] == ["Failed", "Skipped", "Skipped"]
    assert targets[0]["exitCode"] == 3
    assert "executionUuid" not in targets[1]
    assert len(guest.runs) == 1
    counts = inventory["targetCounts"]
    assert (counts["Failed"], counts["Skipped"], counts["Pending"]) == (1, 2, 0)


def test_max_errors_as_a_percentage_of_the_targets(client: httpx.Client) -> None:
    # 50% of 4 targets: 2 failures are tolerated, the third stops the run.
    uuid = start_run(client, "exit 1", uuids=[*WEB_UUIDS, DB.uuid], maxConcurrency=1,
                     maxErrors="50%")
    inventory = wait_run(client, uuid)
    assert inventory["maxErrors"] == 2
    assert [t["state"] for t in get_run(client, uuid)["targets"]] == [
        "Failed", "Failed", "Failed", "Skipped"]


def test_failures_within_max_errors_let_the_run_go_on(client: httpx.Client) -> None:
    uuid = start_run(client, "exit 1", uuids=WEB_UUIDS, maxConcurrency=1, maxErrors=5)
    inventory = wait_run(client, uuid)
    assert inventory["state"] == "Failed"  # not every target succeeded
    assert inventory["targetCounts"]["Failed"] == 3


def test_a_target_that_cannot_run_is_a_failure(client: httpx.Client) -> None:
    uuid = start_run(client, "echo hi", uuids=[DOWN.uuid, *WEB_UUIDS], maxConcurrency=1,
                     maxErrors=0)
    assert wait_run(client, uuid)["state"] == "Failed"
    targets = get_run(client, uuid)["targets"]
    assert targets[0]["state"] == "Failed"
    assert targets[0]["errorCode"] == "VM.EXEC.1002"
    assert [t["state"] for t in targets[1:]] == ["Skipped"] * 3


def test_max_concurrency_as_a_percentage(client: httpx.Client) -> None:
    uuid = start_run(client, "echo hi", uuids=WEB_UUIDS, maxConcurrency="50%")
    assert wait_run(client, uuid)["maxConcurrency"] == 2  # rounded up


def test_at_most_max_concurrency_targets_run_at_once(client: httpx.Client,
                                                     server: RunningServer) -> None:
    uuid = start_run(client, "sleep 0.3", uuids=[*WEB_UUIDS, DB.uuid, *WEB_UUIDS],
                     maxConcurrency=2)
    seen_running = set()
    while (run := get_run(client, uuid))["state"] == "Running":
        seen_running.add(run["targetCounts"]["Running"])
        time.sleep(0.02)
    assert max(seen_running) <= 2
    assert run["targetCounts"]["Succeeded"] == 7


# --- bad inputs: an error, and nothing started ------------------------------------------------
@pytest.mark.parametrize(("options", "status", "words"), [
    ({"uuids": [WEB_UUIDS[0], "f" * 32]}, 503, "is not found"),
    ({"uuids": WEB_UUIDS, "maxConcurrency": 0}, 503, "maxConcurrency"),
    ({"uuids": WEB_UUIDS, "maxConcurrency": "0%"}, 503, "maxConcurrency"),
    ({"uuids": WEB_UUIDS, "maxConcurrency": "150%"}, 503, "maxConcurrency"),
    ({"uuids": WEB_UUIDS, "maxErrors": "101%"}, 503, "maxErrors"),
    ({"uuids": WEB_UUIDS, "maxErrors": -1}, 503, "maxErrors"),
    ({"uuids": WEB_UUIDS, "maxErrors": "lots"}, 503, "maxErrors"),
    ({"uuids": WEB_UUIDS, "maxConcurrency": True}, 400, "maxConcurrency"),
    ({"conditions": ["colour=red"]}, 503, "unknown field"),
    ({"conditions": ["name"]}, 503, "should match pattern"),
    ({"conditions": ["name is nul"]}, 503, "should match pattern"),
    ({"conditions": ["name=nothing-by-this-name"]}, 503, "no VM matches"),
    ({"conditions": []}, 503, "conditions"),
    ({"uuids": []}, 503, "at least one target"),
    ({}, 503, "exactly one"),
    ({"uuids": WEB_UUIDS, "conditions": ["name=web-1"]}, 503, "exactly one"),
])
def test_bad_inputs_are_errors_and_start_nothing(client: httpx.Client, guest: FakeGuest,
                                                 server: RunningServer, options: dict[str, Any],
                                                 status: int, words: str) -> None:
    reply = client.post(RUNS, json=run_body("echo hi", **options))
    error = error_of(reply, status, "SYS.1007")
    assert words in error["details"], error
    assert guest.runs == []
    assert _rows(server, "SELECT count(*) FROM runs") == [(0,)]
    assert _rows(server, "SELECT count(*) FROM api_jobs") == [(0,)]


def test_too_many_targets_are_refused(client: httpx.Client) -> None:
    reply = client.post(RUNS, json=run_body("echo hi", uuids=[DB.uuid] * 10_001))
    error_of(reply, 503, "SYS.1007")


def test_an_unknown_run_is_not_found(client: httpx.Client) -> None:
    missing = "f" * 32
    error_of(client.get(f"{RUNS}/{missing}"), 404, "SYS.1003")
    error_of(client.get(f"{RUNS}/{missing}/events"), 404, "SYS.1003")
    error_of(client.put(f"{RUNS}/{missing}/actions", json={"cancelGuestVmCommandRun": {}}),
             404, "SYS.1003")


# --- events -----------------------------------------------------------------------------------
def test_events_come_in_order_and_end_with_the_run(client: httpx.Client) -> None:
    uuid = start_run(client, "echo one\nsleep 0.2\necho two", uuids=WEB_UUIDS,
                     maxConcurrency=2)
    received = events(client, uuid)
    _check_event_order(received, WEB_UUIDS)
    # A client that comes after the end gets the same story, from the database.
    again = events(client, uuid)
    _check_event_order(again, WEB_UUIDS)
    assert [(k, d) for k, d, _ in again if k != "output"] == [
        (k, d) for k, d, _ in received if k != "output"] or len(again) == len(received)


def _check_event_order(received: list[tuple[str, dict[str, Any], float]],
                       vms: list[str]) -> None:
    kinds = [k for k, _, _ in received]
    assert kinds[-1] == "runFinished"
    assert received[-1][1]["inventory"]["state"] == "Succeeded"
    for vm in vms:
        mine = [(k, d) for k, d, _ in received if d.get("vmInstanceUuid") == vm]
        assert (mine[0][0], mine[-1][0]) == ("targetStarted", "targetFinished")
        assert "".join(d["text"] for k, d in mine if k == "output") == "one\ntwo\n"
        execution = mine[0][1]["executionUuid"]
        assert all(d["executionUuid"] == execution for _, d in mine)
        assert mine[-1][1]["state"] == "Succeeded" and mine[-1][1]["exitCode"] == 0


# --- restart ----------------------------------------------------------------------------------
def test_a_restart_mid_run_loses_no_target_and_starts_none_twice(
        start: Callable[..., RunningServer], guest: FakeGuest) -> None:
    first = start()
    with first.client() as client:
        uuid = start_run(client, "echo a\nsleep 1\necho b", uuids=[*WEB_UUIDS, DB.uuid],
                         maxConcurrency=2)
        wait_until(lambda: len(guest.runs) == 2, what="two targets started")
    first.stop()  # two targets "run in the guest", two are pending
    started_before = list(guest.runs)
    second = start()
    with httpx.Client(base_url=second.url, headers=first.auth, timeout=60) as client:
        inventory = wait_run(client, uuid)
        targets = get_run(client, uuid)["targets"]
    assert inventory["state"] == "Succeeded", inventory
    assert inventory["targetCounts"]["Succeeded"] == 4
    executions = [t["executionUuid"] for t in targets]
    assert len(set(executions)) == 4
    # The two that had started were collected, not launched again; the others launched once.
    assert sorted(guest.runs) == sorted(executions)
    assert set(started_before) <= set(executions)


def test_the_job_of_a_run_answers_like_the_run(client: httpx.Client) -> None:
    uuid = start_run(client, "echo hi", uuids=WEB_UUIDS[:1])
    reply = poll(client, JOBS + uuid)
    assert reply.status_code == 200
    assert reply.json()["inventory"]["uuid"] == uuid


# --- history ----------------------------------------------------------------------------------
def test_runs_are_queried_in_sql_with_zstack_semantics(client: httpx.Client) -> None:
    ok = start_run(client, "echo hi", uuids=WEB_UUIDS)
    failed = start_run(client, "exit 1", uuids=WEB_UUIDS[:1])
    wait_run(client, ok), wait_run(client, failed)
    reply = client.get(RUNS, params={"q": "state=Failed"})
    assert reply.status_code == 200, reply.text
    [run] = reply.json()["inventories"]
    assert run["uuid"] == failed and run["targetCounts"]["Failed"] == 1
    reply = client.get(RUNS, params=[("q", "command~=echo%"), ("q", "targetCount>=3")])
    assert [r["uuid"] for r in reply.json()["inventories"]] == [ok]
    reply = client.get(RUNS, params={"sort": "-createDate", "replyWithCount": "true",
                                     "fields": "uuid,state"})
    body = reply.json()
    assert body["total"] == 2
    assert body["inventories"] == [{"uuid": failed, "state": "Failed"},
                                   {"uuid": ok, "state": "Succeeded"}]
    assert client.get(RUNS, params={"count": "true"}).json()["total"] == 2
    error_of(client.get(RUNS, params={"q": "colour=red"}), 503, "SYS.1007")
    error_of(client.get(RUNS, params={"q": "state"}), 400, "SYS.1007")


# --- cancel -----------------------------------------------------------------------------------
def test_cancel_stops_what_runs_and_skips_the_rest(client: httpx.Client,
                                                   guest: FakeGuest) -> None:
    uuid = start_run(client, "echo started\nsleep 30\necho never", uuids=WEB_UUIDS,
                     maxConcurrency=2)
    wait_until(lambda: len(guest.runs) == 2, what="two targets started")
    reply = client.put(f"{RUNS}/{uuid}/actions", json={"cancelGuestVmCommandRun": {}})
    assert reply.status_code == 200, reply.text
    inventory = reply.json()["inventory"]
    assert inventory["state"] == "Cancelled"
    counts = inventory["targetCounts"]
    assert (counts["Cancelled"], counts["Skipped"], counts["Running"]) == (2, 1, 0)
    targets = get_run(client, uuid)["targets"]
    assert [t["state"] for t in targets] == ["Cancelled", "Cancelled", "Skipped"]
    assert len(guest.runs) == 2  # the third never started
    assert wait_run(client, uuid)["state"] == "Cancelled"
    # Idempotent: a second cancel of the ended run changes nothing.
    again = client.put(f"{RUNS}/{uuid}/actions", json={"cancelGuestVmCommandRun": {}})
    assert again.status_code == 200 and again.json()["inventory"] == inventory


@pytest.mark.parametrize("body", [{}, {"cancelGuestVmCommandRun": {}, "rebootVmInstance": {}},
                                  {"cancelGuestVmCommand": {}}])
def test_a_run_action_names_exactly_the_cancel(client: httpx.Client,
                                               body: dict[str, Any]) -> None:
    uuid = start_run(client, "echo hi", uuids=WEB_UUIDS[:1])
    wait_run(client, uuid)
    error_of(client.put(f"{RUNS}/{uuid}/actions", json=body), 400, "SYS.1007")


def test_retention_purges_ended_runs_and_their_targets(start: Callable[..., RunningServer]
                                                       ) -> None:
    server = start(execution_retention=1.0, cleanup_interval=0.2)
    with server.client() as client:
        uuid = start_run(client, "echo gone", uuids=WEB_UUIDS)
        wait_run(client, uuid)
        wait_until(lambda: client.get(f"{RUNS}/{uuid}").status_code == 404, timeout=20,
                   what="the run purged")
    assert _rows(server, "SELECT count(*) FROM run_targets WHERE run_uuid = ?", uuid) == [(0,)]


def test_a_resumed_run_takes_ended_executions_and_starts_only_pending_targets(
        start: Callable[..., RunningServer], guest: FakeGuest) -> None:
    # A crash between two commits, made on the database of a stopped server: target 0's
    # execution had ended (committed) but not its target row; target 2 had not started.
    first = start()
    with first.client() as client:
        uuid = start_run(client, "echo hi", uuids=WEB_UUIDS, maxConcurrency=1)
        wait_run(client, uuid)
    first.stop()
    for sql in ("UPDATE run_targets SET state = 'Running', exit_code = NULL WHERE seq = 0",
                "UPDATE run_targets SET state = 'Pending', execution_uuid = NULL, "
                "exit_code = NULL WHERE seq = 2",
                "UPDATE runs SET state = 'Running', finish_date = NULL",
                "UPDATE api_jobs SET state = 'running', status = NULL, result = NULL"):
        _rows(first, sql)
    ran_before = len(guest.runs)
    second = start()
    with httpx.Client(base_url=second.url, headers=first.auth, timeout=60) as client:
        inventory = wait_run(client, uuid)
        targets = get_run(client, uuid)["targets"]
    assert inventory["state"] == "Succeeded"
    assert [(t["state"], t.get("exitCode")) for t in targets] == [("Succeeded", 0)] * 3
    assert len(guest.runs) == ran_before + 1  # only the pending one was launched
    assert targets[2]["executionUuid"] == guest.runs[-1]


def test_a_reader_that_comes_mid_run_gets_the_story_so_far_then_the_rest(
        client: httpx.Client, guest: FakeGuest) -> None:
    uuid = start_run(client, "echo one\nsleep 0.5\necho two", uuids=WEB_UUIDS,
                     maxConcurrency=1)
    wait_until(lambda: len(guest.runs) == 2, what="the second target started")
    received = events(client, uuid)
    _check_event_order(received, WEB_UUIDS)
    started = [d["vmInstanceUuid"] for k, d, _ in received if k == "targetStarted"]
    assert started == WEB_UUIDS


def test_a_webhook_gets_the_runs_inventory(start: Callable[..., RunningServer]) -> None:
    receiver = WebhookReceiver()
    try:
        server = start(webhook_allow=LOOPBACK_WEBHOOKS)
        with server.client() as client:
            uuid = start_run(client, "echo hi", uuids=WEB_UUIDS,
                             headers={"X-Web-Hook": receiver.url})
            assert receiver.arrived.wait(20)
            inventory = wait_run(client, uuid)
        headers, delivered = receiver.received[0]
        assert headers["X-Job-UUID"] == uuid and headers["X-Job-Success"] == "true"
        assert delivered == {"inventory": inventory}
    finally:
        receiver.close()
