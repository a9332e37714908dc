"""The same server on PostgreSQL (a throwaway cluster): migrations, sessions, jobs across a
restart, duplicate job UUIDs and the execution record."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest
from fixtures.postgres import PostgresServer
from fixtures.server import RunningServer

from api.doubles import FakeGuest
from api.test_exec import EXEC, body, error_of
from api.test_exec_async import JOBS, accepted, poll

pytestmark = pytest.mark.slow


def psql(url: str, query: str) -> list[list[str]]:
    out = subprocess.run(["psql", url, "-AtF", "|", "-c", query], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return [line.split("|") for line in out.splitlines()]


def test_the_api_on_postgresql(start_scripted, fake_guest: FakeGuest,
                               postgres_url: str) -> None:
    first: RunningServer = start_scripted(db=postgres_url)
    assert first.settings.db.startswith("postgresql+asyncpg://")
    job = uuid.uuid4().hex
    with first.client() as client:
        done = client.put(EXEC, json=body("echo on pg\nexit 4"), headers={"X-Job-UUID": job})
        assert done.status_code == 200 and done.json()["exitCode"] == 4
        error_of(client.put(EXEC, json=body(), headers={"X-Job-UUID": job}), 503, "SYS.1007")
        running = accepted(client.post(EXEC, json=body("echo a\nsleep 60\necho b"),
                                       headers={"Prefer": "respond-async"}))
    fake_guest.wait_started(running.rsplit("/", 1)[1])
    first.stop()

    second: RunningServer = start_scripted(db=postgres_url)  # migrations again: a no-op
    with second.client() as client:
        assert client.get(JOBS + job).json()["stdout"] == "on pg\n"
        resumed = poll(client, JOBS + running.rsplit("/", 1)[1])
        assert resumed.status_code == 200 and resumed.json()["stdout"] == "a\nb\n"
        session = first.session  # sessions live in the database too
        assert client.get(f"/zstack/v1/accounts/sessions/{session}/valid").json() == {
            "valid": True}
    assert psql(postgres_url, "SELECT count(*) FROM accounts") == [["1"]]
    assert psql(postgres_url, f"SELECT outcome, exit_code, stdout_bytes FROM executions "
                              f"WHERE uuid = '{job}'") == [["exited", "4", "6"]]
    assert psql(postgres_url, "SELECT version_num FROM alembic_version")[0][0].startswith("00")


def test_executions_on_postgresql(start_scripted, postgres_url: str) -> None:
    # Issue 11: output rows (bytea), the SQL query (LIKE, COLLATE "C") and the event stream.
    from api.test_executions import EXECUTIONS, execution, replay, run, text
    server: RunningServer = start_scripted(db=postgres_url)
    with server.client() as client:
        job = run(client, "echo 50%_done\\\necho err >&2\nexit 2")
        found = execution(client, job)
        assert (found["state"], found["stdout"], found["stderr"]) == (
            "Failed", "50%_done\\\n", "err\n")
        for condition, hit in (("command~=echo 50%", True), ("command~=ECHO%", False),
                               ("command~=%done\\%", True), ("exitCode>1", True)):
            inventories = client.get(EXECUTIONS, params={"q": [condition, f"uuid={job}"]})
            assert (len(inventories.json()["inventories"]) == 1) is hit, condition
        output, result = replay(client, job)
        assert text(output) == "50%_done\\\nerr\n" and result["body"]["exitCode"] == 2
    assert psql(postgres_url, f"SELECT count(*) FROM execution_output "
                              f"WHERE execution_uuid = '{job}'") == [["2"]]


def test_a_database_restart_mid_command_loses_nothing(
        start_scripted, fake_guest: FakeGuest, own_postgres: PostgresServer) -> None:
    # PostgreSQL stops while a command runs and comes back after it ended: meanwhile calls
    # that need the database get a clear retryable error (before: 503 SYS.1000, an internal
    # error with a traceback in the log); the command's result is stored once it is back
    # (before: dropped, the job 202 until its deadline).
    server: RunningServer = start_scripted(db=own_postgres.create_database())
    with server.client() as client:
        location = accepted(client.post(EXEC, json=body("echo before\nsleep 3\necho after"),
                                        headers={"Prefer": "respond-async"}))
        fake_guest.wait_started(location.rsplit("/", 1)[1])
        own_postgres.stop(fast=True)
        away = client.get("/zstack/v1/vm-instances/commands/executions")
        error_of(away, 503, "SYS.1006")
        assert away.headers["Retry-After"] == "2"
        time.sleep(4)  # the command ends while the database is away
        own_postgres.start()
        done = poll(client, location, timeout=60)
        assert done.status_code == 200, done.text
        assert done.json()["stdout"] == "before\nafter\n"
        [execution] = client.get("/zstack/v1/vm-instances/commands/executions",
                                 params={"q": f"uuid={location.rsplit('/', 1)[1]}"}
                                 ).json()["inventories"]
        assert execution["state"] == "Succeeded"
