"""Executions over real HTTP with the scripted engine (issue 11): every single exec is an
execution with its output kept; QueryGuestVmCommandExecution; one execution with its output;
the live output as Server-Sent Events (byte offsets, Last-Event-ID, the result); accounts;
bad input; the DB cost of a single exec; the output cap; retention; restarts.

The same behaviour on real guests: tests/api/test_executions_vm.py.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures.server import RunningServer
from httpx_sse import ServerSentEvent, connect_sse
from sqlalchemy import event

from api.accounts_helpers import create_account, give
from api.conftest import NO_QGA, VM_1
from api.doubles import FakeGuest
from api.test_exec import EXEC, body, error_of
from api.test_exec_async import poll

EXECUTIONS = "/zstack/v1/vm-instances/commands/executions"


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def run(client: httpx.Client, command: str, **params: Any) -> str:
    """Run ``command`` (PUT, waits for the end); the execution's uuid."""
    job = uuid.uuid4().hex
    reply = client.put(EXEC, json=body(command, **params), headers={"X-Job-UUID": job})
    assert reply.status_code in (200, 503), reply.text
    return job


def start(client: httpx.Client, command: str, **params: Any) -> str:
    """Start ``command`` without waiting; the execution's uuid."""
    job = uuid.uuid4().hex
    reply = client.post(EXEC, json=body(command, **params),
                        headers={"X-Job-UUID": job, "Prefer": "respond-async"})
    assert reply.status_code == 202, reply.text
    return job


def execution(client: httpx.Client, execution_uuid: str) -> dict[str, Any]:
    reply = client.get(f"{EXECUTIONS}/{execution_uuid}")
    assert reply.status_code == 200, reply.text
    [inventory] = reply.json()["inventories"]
    return dict(inventory)


def events(client: httpx.Client, execution_uuid: str,
           last_event_id: str | None = None) -> Iterator[ServerSentEvent]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    with connect_sse(client, "GET", f"{EXECUTIONS}/{execution_uuid}/output",
                     headers=headers) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        yield from source.iter_sse()


def replay(client: httpx.Client, execution_uuid: str,
           last_event_id: str | None = None) -> tuple[list[ServerSentEvent], dict[str, Any]]:
    """The output events of an execution, and its result."""
    output: list[ServerSentEvent] = []
    for sse in events(client, execution_uuid, last_event_id):
        if sse.event == "result":
            return output, dict(sse.json())
        output.append(sse)
    raise AssertionError("the stream ended without a result")


def text(output: list[ServerSentEvent], stream: str | None = None) -> str:
    return "".join(e.json()["text"] for e in output if stream in (None, e.event))


# --- a single exec is an execution ----------------------------------------------------------
def test_a_single_exec_is_an_execution_with_its_output(client: httpx.Client) -> None:
    job = uuid.uuid4().hex
    reply = client.put(EXEC, json=body("echo out\necho err >&2\nexit 3"),
                       headers={"X-Job-UUID": job})
    assert reply.status_code == 200 and reply.json()["stdout"] == "out\n"  # unchanged
    found = execution(client, job)
    assert found["uuid"] == job and found["vmInstanceUuid"] == VM_1.uuid
    assert (found["state"], found["exitCode"]) == ("Failed", 3)
    assert (found["stdout"], found["stderr"]) == ("out\n", "err\n")
    assert (found["stdoutBytes"], found["stderrBytes"]) == (4, 4)
    assert found["stdoutTruncated"] is False and found["command"].startswith("echo out")
    assert found["platform"] == "Linux" and found["shell"] == "default"
    assert {"createDate", "startDate", "finishDate", "durationMs"} <= found.keys()
    assert execution(client, run(client, "echo fine"))["state"] == "Succeeded"


def test_failures_timeouts_and_refusals_have_their_state(client: httpx.Client) -> None:
    timed_out = run(client, "echo a\nsleep 5", commandTimeout=1)
    found = execution(client, timed_out)
    assert (found["state"], found["errorCode"], found["stdout"]) == ("TimedOut",
                                                                     "VM.EXEC.1001", "a\n")
    refused = execution(client, run(client, "echo hi", vm=NO_QGA.uuid))
    assert (refused["state"], refused["errorCode"]) == ("Failed", "VM.EXEC.1004")
    assert refused["stdout"] == "" and "errorDetails" in refused
    signalled = execution(client, run(client, "kill 9"))
    assert (signalled["state"], signalled["signal"]) == ("Failed", 9)


# --- QueryGuestVmCommandExecution -----------------------------------------------------------
def test_query_filters_sorts_pages_and_counts(client: httpx.Client) -> None:
    marker = uuid.uuid4().hex[:8]
    before = client.get(EXECUTIONS, params={"count": "true"}).json()["total"]
    first = run(client, f"echo {marker} one")
    second = run(client, f"echo {marker} two\nexit 1")
    third = run(client, f"echo {marker} three", vm=NO_QGA.uuid)

    def uuids(*conditions: str, **params: str) -> list[str]:
        reply = client.get(EXECUTIONS, params=[("q", c) for c in conditions]
                           + list(params.items()))
        assert reply.status_code == 200, reply.text
        return [i["uuid"] for i in reply.json()["inventories"]]

    mine = f"command~=%{marker}%"
    assert uuids(mine) == [first, second, third]  # oldest first
    assert uuids(mine, "state=Failed") == [second, third]
    assert uuids(mine, "state?=Succeeded,Failed", "exitCode!=0") == [second]
    assert uuids(mine, f"vmInstanceUuid={NO_QGA.uuid}") == [third]
    assert uuids(mine, "errorCode is null") == [first, second]
    assert uuids(mine, sort="-createDate", limit="2") == [third, second]
    assert uuids(mine, sort="-createDate", start="2") == [first]
    # Dates in any form the query reads (ISO-8601 here); the wire's have whole seconds.
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert uuids(mine, f"createDate>{hour_ago}") == [first, second, third]
    assert uuids(mine, f"createDate<{hour_ago}") == []
    assert uuids(mine, f"finishDate>{hour_ago}", "startDate is null") == [third]
    assert client.get(EXECUTIONS, params={"count": "true"}).json()["total"] == before + 3
    counted = client.get(EXECUTIONS, params={"q": mine, "replyWithCount": "true",
                                             "fields": "uuid,state", "limit": "1"}).json()
    assert counted["total"] == 3 and counted["inventories"] == [{"uuid": first,
                                                                 "state": "Succeeded"}]
    assert "stdout" not in client.get(EXECUTIONS, params={"q": mine}).json()["inventories"][0]


@pytest.mark.parametrize(("params", "status", "code"), [
    ({"q": "nosuchfield=1"}, 503, "SYS.1007"),
    ({"q": "exitCode=x"}, 503, "SYS.1007"),
    ({"q": "createDate~=2026%"}, 503, "SYS.1007"),
    ({"q": "state"}, 400, "SYS.1007"),
    ({"sort": "+stdout"}, 503, "SYS.1007"),
    ({"limit": "ten"}, 400, "SYS.1007"),
])
def test_bad_queries_are_zstack_errors(client: httpx.Client, params: dict[str, str],
                                       status: int, code: str) -> None:
    reply = client.get(EXECUTIONS, params=params)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["description"]


def test_another_accounts_executions_are_not_found(start_scripted, tmp_path: Path) -> None:
    server = start_scripted()
    alice = create_account(server, "alice")
    give(server, alice.uuid, VM_1.uuid)  # a Normal account runs on its own VMs only
    with server.client() as admin, httpx.Client(
            base_url=server.url, timeout=60, headers=alice.auth) as other:
        admins = run(admin, "echo secret")
        alices = run(other, "echo hers")
        assert [i["uuid"] for i in other.get(EXECUTIONS).json()["inventories"]] == [alices]
        assert other.get(EXECUTIONS, params={"count": "true"}).json()["total"] == 1
        for reply in (other.get(f"{EXECUTIONS}/{admins}"),
                      other.get(f"{EXECUTIONS}/{admins}/output"),
                      other.put(f"{EXECUTIONS}/{admins}/actions",
                                json={"cancelGuestVmCommand": {}})):
            error_of(reply, 404, "SYS.1003")
            assert "secret" not in reply.text
        # An admin sees every account's executions.
        assert {i["uuid"] for i in admin.get(EXECUTIONS).json()["inventories"]} >= {admins,
                                                                                     alices}
        assert execution(admin, alices)["stdout"] == "hers\n"
        # The VM given to another account takes its history with it (issue 13: a Normal
        # account reads the executions of its own VMs only).
        bob = create_account(server, "bob")
        give(server, bob.uuid, VM_1.uuid)
        assert other.get(EXECUTIONS).json()["inventories"] == []
        error_of(other.get(f"{EXECUTIONS}/{alices}"), 404, "SYS.1003")
        with httpx.Client(base_url=server.url, timeout=60, headers=bob.auth) as new_owner:
            # ... and shows it to nobody else but admins: bob did not run it.
            assert new_owner.get(EXECUTIONS).json()["inventories"] == []


# --- live output ----------------------------------------------------------------------------
def test_output_streams_live_before_the_command_ends(client: httpx.Client) -> None:
    job = start(client, "echo a\nsleep 2\necho b")
    seen: list[tuple[str, Any]] = []
    for sse in events(client, job):
        if sse.event == "result":
            seen.append(("result", sse.json()))
            break
        # While the first chunk is read, the command is still running: its job is not done.
        done = client.get(f"/zstack/v1/api-jobs/{job}").status_code != 202
        seen.append((sse.json()["text"], done))
    assert seen[0] == ("a\n", False)
    assert seen[1][0] == "b\n"
    assert seen[2][0] == "result" and seen[2][1]["status"] == 200
    assert seen[2][1]["body"]["stdout"] == "a\nb\n"


def test_event_ids_are_byte_offsets_and_last_event_id_resumes_exactly(
        client: httpx.Client) -> None:
    job = start(client, "echo é1\necho x >&2\nsleep 1\necho ü2\necho y >&2")
    first = next(events(client, job))
    assert (first.event, first.json()["text"], first.id) == ("stdout", "é1\n", "4")
    rest, result = replay(client, job, first.id)
    whole = [first, *rest]
    assert text(whole, "stdout") == "é1\nü2\n" and text(whole, "stderr") == "x\ny\n"
    assert [int(e.id) for e in whole] == [4, 6, 10, 12]
    assert result["body"]["stdout"] == "é1\nü2\n"
    # Resuming from any event's id gives exactly the bytes after it, once.
    for i, sse in enumerate(whole):
        after, _ = replay(client, job, sse.id)
        assert [(e.event, e.data, e.id) for e in after] == [
            (e.event, e.data, e.id) for e in whole[i + 1:]]


def test_after_the_end_a_reader_gets_everything_and_the_result(client: httpx.Client) -> None:
    job = run(client, "echo one\necho two >&2\nexit 4")
    output, result = replay(client, job)
    assert [(e.event, e.json()["text"]) for e in output] == [("stdout", "one\n"),
                                                              ("stderr", "two\n")]
    assert result["status"] == 200
    assert result["body"] == client.get(f"/zstack/v1/api-jobs/{job}").json()
    assert replay(client, job, "8") == ([], result)  # resumed at the end: the result only


def test_the_result_of_a_failure_is_the_jobs_error(client: httpx.Client) -> None:
    job = run(client, "echo a\nsleep 5", commandTimeout=1)
    output, result = replay(client, job)
    assert text(output) == "a\n"
    assert result["status"] == 503
    assert result["body"] == client.get(f"/zstack/v1/api-jobs/{job}").json()
    assert result["body"]["error"]["opaque"]["stdout"] == "a\n"


# --- bad input ------------------------------------------------------------------------------
def test_bad_input_is_a_zstack_error(client: httpx.Client) -> None:
    job = run(client, "echo hi")
    unknown = uuid.uuid4().hex
    error_of(client.get(f"{EXECUTIONS}/{unknown}"), 404, "SYS.1003")
    error_of(client.get(f"{EXECUTIONS}/{unknown}/output"), 404, "SYS.1003")
    error_of(client.put(f"{EXECUTIONS}/{unknown}/actions", json={"cancelGuestVmCommand": {}}),
             404, "SYS.1003")
    error_of(client.get(f"{EXECUTIONS}/not-a-uuid"), 503, "SYS.1007")
    error_of(client.get(f"{EXECUTIONS}/{job}/output", headers={"Last-Event-ID": "x"}), 400,
             "SYS.1007")
    error_of(client.get(f"{EXECUTIONS}/{job}/output", headers={"Last-Event-ID": "-1"}), 400,
             "SYS.1007")
    error_of(client.put(f"{EXECUTIONS}/{job}/actions", json={"stopIt": {}}), 400, "SYS.1007")
    error_of(client.put(f"{EXECUTIONS}/{job}/actions", json={}), 400, "SYS.1007")
    error_of(client.put(f"{EXECUTIONS}/{job}/actions",
                        json={"cancelGuestVmCommand": {}, "stopIt": {}}), 400, "SYS.1007")
    # Cancelling an execution that has ended answers it as it is.
    reply = client.put(f"{EXECUTIONS}/{job}/actions", json={"cancelGuestVmCommand": {}})
    assert reply.status_code == 200, reply.text
    assert reply.json()["inventory"]["state"] == "Succeeded"


# --- what it costs, what is kept ------------------------------------------------------------
class Transactions:
    """Counts the committed transactions that wrote to the exec tables."""

    TABLES = ("api_jobs", "executions", "execution_output")

    def __init__(self, server: RunningServer) -> None:
        self.engine = server.app.state.services.db.kw["bind"].sync_engine
        self.count = 0
        self.output_rows = 0
        self._writing: set[int] = set()
        self._lock = threading.Lock()
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "commit", self._commit)

    def _statement(self, conn: Any, cursor: Any, statement: str, parameters: Any,
                   context: Any, executemany: bool) -> None:
        head = statement.lstrip().split("(")[0].upper()
        if head.startswith(("INSERT", "UPDATE", "DELETE")) and any(
                f" {t.upper()}" in f" {head} " or f"{t.upper()} " in head for t in self.TABLES):
            with self._lock:
                self._writing.add(id(conn.connection))
                if "EXECUTION_OUTPUT" in head:
                    self.output_rows += 1

    def _commit(self, conn: Any) -> None:
        with self._lock:
            if id(conn.connection) in self._writing:
                self._writing.discard(id(conn.connection))
                self.count += 1

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "commit", self._commit)


def test_a_quick_exec_stores_its_output_in_the_transaction_of_its_end(
        start_scripted) -> None:
    server = start_scripted()
    with server.client() as client:
        run(client, "echo warm-up")
        transactions = Transactions(server)
        try:
            job = run(client, "echo hi\necho there >&2")
        finally:
            transactions.close()
        assert execution(client, job)["stdout"] == "hi\n"
    # One transaction at the start (job + execution), one at the end (reply + record end +
    # output rows): as before executions kept their output.
    assert transactions.count == 2
    assert transactions.output_rows == 1


def test_a_long_command_writes_its_output_while_it_runs(start_scripted) -> None:
    server = start_scripted()
    db = Path(server.settings.db.split("///", 1)[1])
    with server.client() as client:
        job = start(client, "echo a\nsleep 2\necho b")
        first = next(events(client, job))
        assert first.json()["text"] == "a\n"
        deadline = time.monotonic() + 10
        while not _output_rows(db, job):  # written within the batch interval, not at the end
            assert time.monotonic() < deadline, "no output written while the command ran"
            time.sleep(0.05)
        assert client.get(f"/zstack/v1/api-jobs/{job}").status_code == 202
        poll(client, f"/zstack/v1/api-jobs/{job}")
        assert [r[1] for r in _output_rows(db, job)] == [b"a\n", b"b\n"]


def _output_rows(db: Path, job: str) -> list[tuple[int, bytes]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT seq, data FROM execution_output WHERE execution_uuid = ? "
                            "ORDER BY seq", (job,)).fetchall()
    conn.close()
    return [(int(s), bytes(d)) for s, d in rows]


def test_output_beyond_the_cap_is_dropped_and_marked(start_scripted) -> None:
    server = start_scripted(output_cap=6)
    with server.client() as client:
        job = run(client, "echo abcd\necho efgh >&2\necho ijkl")
        found = execution(client, job)
        assert (found["stdout"], found["stderr"]) == ("abcd\n", "e")
        assert found["stdoutTruncated"] is True and found["stderrTruncated"] is True
        assert (found["stdoutBytes"], found["stderrBytes"]) == (10, 5)
        output, result = replay(client, job)
        assert [e.id for e in output] == ["5", "6"]
        # The job's reply is the command's whole output, as before.
        assert result["body"]["stdout"] == "abcd\nijkl\n"


def test_retention_purges_executions_and_their_output(start_scripted) -> None:
    server = start_scripted(execution_retention=1.0, cleanup_interval=0.2)
    db = Path(server.settings.db.split("///", 1)[1])
    with server.client() as client:
        job = run(client, "echo gone")
        assert _output_rows(db, job)
        deadline = time.monotonic() + 20
        while client.get(f"{EXECUTIONS}/{job}").status_code != 404:
            assert time.monotonic() < deadline, "the execution was not purged"
            time.sleep(0.1)
        assert _output_rows(db, job) == []
        error_of(client.get(f"{EXECUTIONS}/{job}/output"), 404, "SYS.1003")


def test_an_execution_resumed_after_a_restart_keeps_its_output(
        start_scripted, fake_guest: FakeGuest) -> None:
    server = start_scripted()
    with server.client() as client:
        job = start(client, "echo a\nsleep 30\necho b", commandTimeout=60)
    fake_guest.wait_started(job)
    server.stop()
    again = start_scripted()  # resumes the job: the guest's result, by its run id
    with again.client() as client:
        poll(client, f"/zstack/v1/api-jobs/{job}")
        found = execution(client, job)
        assert (found["state"], found["stdout"]) == ("Succeeded", "a\nb\n")
        output, result = replay(client, job)
        assert text(output) == "a\nb\n" and result["status"] == 200


def test_the_result_event_is_json(client: httpx.Client) -> None:
    job = run(client, "echo hi")
    [*_, last] = events(client, job)
    assert last.event == "result" and json.loads(last.data)["body"]["stdout"] == "hi\n"


# --- cancel ---------------------------------------------------------------------------------
def test_cancel_stops_the_command_with_its_output_so_far(client: httpx.Client) -> None:
    job = start(client, "echo before\nsleep 60\necho after")
    first = next(events(client, job))  # it runs: its first output is out
    assert first.json()["text"] == "before\n"
    reply = client.put(f"{EXECUTIONS}/{job}/actions", json={"cancelGuestVmCommand": {}})
    assert reply.status_code == 200, reply.text
    inventory = reply.json()["inventory"]
    assert (inventory["state"], inventory["errorCode"]) == ("Cancelled", "VM.EXEC.1010")
    assert execution(client, job)["stdout"] == "before\n"
    job_reply = poll(client, f"/zstack/v1/api-jobs/{job}")
    error = error_of(job_reply, 503, "VM.EXEC.1010")
    assert error["opaque"]["stdout"] == "before\n"
    output, result = replay(client, job)
    assert text(output) == "before\n" and result["body"] == job_reply.json()
    # Idempotent: a second cancel answers the same, changes nothing.
    again = client.put(f"{EXECUTIONS}/{job}/actions", json={"cancelGuestVmCommand": {}})
    assert again.status_code == 200 and again.json()["inventory"] == inventory
    assert [i["uuid"] for i in client.get(EXECUTIONS, params={
        "q": ["state=Cancelled", f"uuid={job}"]}).json()["inventories"]] == [job]


def test_a_command_without_output_streams_only_its_result(client: httpx.Client) -> None:
    job = run(client, "exit 0")
    [only] = list(events(client, job))
    assert (only.event, only.id) == ("result", "0")
    assert only.json()["body"]["stdout"] == "" and only.json()["status"] == 200
