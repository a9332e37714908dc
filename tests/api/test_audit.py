"""The audit trail (issue 13, operators' view): every state-changing API call is recorded —
who, from where, what, the result, when — and queryable by admins, never with a secret."""

from __future__ import annotations

import re
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures.server import RunningServer, sha512_hex

from api.accounts_helpers import create_account
from api.conftest import VM_1
from api.test_exec import EXEC, body, error_of
from vmexec.services.auth import token_hash

AUDITS = "/zstack/v1/audits"
SAFE = {"GET", "HEAD", "OPTIONS"}


def audits(server: RunningServer, *query: str, session: str | None = None
           ) -> list[dict[str, Any]]:
    params = [("q", q) for q in query]
    reply = httpx.get(f"{server.url}{AUDITS}", params=params,
                      headers={"Authorization": f"OAuth {session or server.session}"})
    assert reply.status_code == 200, reply.text
    inventories: list[dict[str, Any]] = reply.json()["inventories"]
    return inventories


def state_changing_operations(server: RunningServer) -> list[tuple[str, str, str]]:
    """(method, path template, operationId) of every API that may change state, from the
    server's own OpenAPI document: a new route is covered without changing this test."""
    document = httpx.get(f"{server.url}/openapi.json").json()
    return [(method.upper(), path, operation["operationId"])
            for path, operations in document["paths"].items()
            for method, operation in operations.items() if method.upper() not in SAFE]


def test_every_state_changing_route_leaves_an_audit_row(start_scripted) -> None:
    server: RunningServer = start_scripted()
    operations = state_changing_operations(server)
    assert {("PUT", EXEC), ("POST", "/zstack/v1/hosts/kvm"),
            ("PUT", "/zstack/v1/accounts/login")} <= {(m, p) for m, p, _ in operations}
    earlier = {row["uuid"] for row in audits(server)}  # the fixture's login and SetVmQga
    answered: dict[tuple[str, str], tuple[int, str]] = {}
    for method, path, _ in operations:
        resource = uuid.uuid4().hex
        concrete = re.sub(r"\{[^}]+\}", resource, path)
        reply = httpx.request(method, f"{server.url}{concrete}", json={},
                              headers=server.auth, timeout=60)
        answered[method, path] = reply.status_code, resource
    for method, path, operation_id in operations:
        status, resource = answered[method, path]
        rows = [row for row in audits(server, f"route={path}", f"method={method}")
                if row["uuid"] not in earlier]
        assert len(rows) == 1, (method, path, rows)
        [row] = rows
        assert row["status"] == status and row["apiName"] == operation_id
        assert row["clientAddress"] == "127.0.0.1"
        if "{session_uuid}" in path:  # a session token: never recorded
            assert "resourceUuid" not in row
        elif "{" in path:
            assert row["resourceUuid"] == resource, row
    # Reads are not audited.
    assert not audits(server, "method=GET")


def test_an_audit_row_says_who_from_where_what_and_the_result(start_scripted) -> None:
    server: RunningServer = start_scripted()
    started = datetime.now(UTC).replace(microsecond=0)
    with server.client() as client:
        assert client.put(EXEC, json=body("echo hi")).status_code == 200
        error_of(client.put(EXEC, json=body("raise unavailable")), 503, "VM.EXEC.1003")
    error_of(httpx.put(f"{server.url}{EXEC}", json=body(),
                       headers={"Authorization": "OAuth " + "0" * 32}), 503, "ID.1001")
    rows = audits(server, f"route={EXEC}")
    by_status = sorted(rows, key=lambda r: (r["status"], r.get("errorCode", "")))
    ok, refused, failed = by_status
    assert ok["method"] == "PUT" and ok["apiName"] == "ExecuteGuestVmCommand"
    assert ok["accountName"] == "admin" and ok["accountUuid"]
    assert ok["credential"] == f"session:{token_hash(server.session)[:16]}"
    assert ok["clientAddress"] == "127.0.0.1" and ok["resourceUuid"] == VM_1.uuid
    assert ok["status"] == 200 and ok["success"] == "true" and "errorCode" not in ok
    assert failed["status"] == 503 and failed["errorCode"] == "VM.EXEC.1003"
    assert failed["accountName"] == "admin"
    # A refused session: answered before the body was read, audited all the same.
    assert refused["errorCode"] == "ID.1001" and "accountName" not in refused
    assert "credential" not in refused and refused["success"] == "false"
    for row in rows:
        assert _date(row["createDate"]) >= started


def _date(text: str) -> datetime:
    return datetime.strptime(text, "%b %d, %Y %I:%M:%S %p").replace(tzinfo=UTC)


def test_logins_and_logouts_are_audited_without_secrets(start_scripted,
                                                        tmp_path: Path) -> None:
    server: RunningServer = start_scripted(admin_password="Audit-Pw-1")
    wrong = httpx.put(f"{server.url}/zstack/v1/accounts/login", json={"logInByAccount": {
        "accountName": "admin", "password": sha512_hex("guess")}})
    error_of(wrong, 503, "ID.1000")
    token = server.login()
    assert httpx.delete(f"{server.url}/zstack/v1/accounts/sessions/{token}").status_code == 200
    logins = audits(server, "apiName=LogInByAccount", "accountName=admin")
    assert sorted(r["status"] for r in logins) == [200, 200, 503]  # the fixture's login too
    [logout] = audits(server, "apiName=LogOut")
    assert logout["status"] == 200
    everything = str(audits(server))
    for secret in (token, server.session, sha512_hex("guess"), sha512_hex("Audit-Pw-1"),
                   "Audit-Pw-1"):
        assert secret not in everything
    database = Path(server.settings.db.split("///", 1)[1])
    with sqlite3.connect(database) as db:
        stored = str(db.execute("SELECT * FROM audit").fetchall())
    db.close()
    assert token not in stored and sha512_hex("guess") not in stored


def test_the_query_language_applies(start_scripted) -> None:
    server: RunningServer = start_scripted()
    with server.client() as client:
        for _ in range(3):
            assert client.put(EXEC, json=body("echo hi")).status_code == 200
        error_of(client.put(EXEC, json=body("raise lost")), 503, "VM.EXEC.1007")
        reply = client.get(AUDITS, params=[("q", "status>=400"), ("q", f"route={EXEC}")])
        assert [r["errorCode"] for r in reply.json()["inventories"]] == ["VM.EXEC.1007"]
        reply = client.get(AUDITS, params={"q": "errorCode is null", "count": "true"})
        assert reply.json() == {"total": 5}  # 3 commands, the fixture's login and SetVmQga
        newest = client.get(AUDITS, params={"sort": "-createDate", "limit": "1"}).json()
        assert newest["inventories"][0]["errorCode"] == "VM.EXEC.1007"
        error_of(client.get(AUDITS, params={"q": "password=x"}), 503, "SYS.1007")
        uuid_ = newest["inventories"][0]["uuid"]
        one = client.get(f"{AUDITS}/{uuid_}").json()["inventories"]
        assert [r["uuid"] for r in one] == [uuid_]


def test_only_admins_read_the_audit_trail(start_scripted) -> None:
    server: RunningServer = start_scripted()
    error_of(httpx.get(f"{server.url}{AUDITS}"), 400, "SYS.1007")
    bob = create_account(server, "bob")
    reply = httpx.get(f"{server.url}{AUDITS}", headers=bob.auth)
    error_of(reply, 503, "ID.1002")


def test_entries_of_the_last_moments_survive_a_shutdown(start_scripted) -> None:
    first: RunningServer = start_scripted()
    with first.client() as client:
        assert client.put(EXEC, json=body("echo hi")).status_code == 200
    first.stop()  # at once: the entry was still waiting to be stored with others
    second: RunningServer = start_scripted()  # the same database
    rows = audits(second, f"route={EXEC}")
    assert [(r["status"], r["resourceUuid"]) for r in rows] == [(200, VM_1.uuid)]


@pytest.mark.slow
def test_the_audit_trail_on_postgresql(start_scripted, postgres_url: str) -> None:
    server: RunningServer = start_scripted(db=postgres_url)
    long_name = "n" * 255  # the longest account name a login takes
    refused = httpx.put(f"{server.url}/zstack/v1/accounts/login", json={"logInByAccount": {
        "accountName": long_name, "password": sha512_hex("x")}})
    error_of(refused, 503, "ID.1000")
    with server.client() as client:
        assert client.put(EXEC, json=body("echo hi")).status_code == 200
        error_of(client.put(EXEC, json=body(vm="x" * 5000)), 503, "SYS.1007")
    [login] = audits(server, f"accountName={long_name}")
    assert login["status"] == 503 and login["errorCode"] == "ID.1000"
    rows = audits(server, f"route={EXEC}")
    assert sorted((r["status"], r.get("resourceUuid")) for r in rows) == [
        (200, VM_1.uuid), (503, None)]
