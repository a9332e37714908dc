"""UpdateAccount (``PUT /zstack/v1/accounts/{uuid}``): an account changes its own password;
its other sessions end (issue 10, B11)."""

from __future__ import annotations

import re
import sqlite3

import httpx
import pytest
from fixtures.server import RunningServer, ServerFactory, sha512_hex

from api.test_sessions import AUTHENTICATED, ZSTACK_DATE

LOGIN = "/zstack/v1/accounts/login"


def _login(client: httpx.Client, password: str) -> httpx.Response:
    return client.put(LOGIN, json={"logInByAccount": {"accountName": "admin",
                                                      "password": sha512_hex(password)}})


def _account_uuid(server: RunningServer) -> str:
    with server.client(authenticated=False) as client:
        reply = _login(client, server.settings.admin_password.get_secret_value())
    return str(reply.json()["inventory"]["accountUuid"])


def _update(client: httpx.Client, uuid: str, session: str, **fields: str) -> httpx.Response:
    return client.put(f"/zstack/v1/accounts/{uuid}", json={"updateAccount": fields},
                      headers={"Authorization": f"OAuth {session}"})


def _error_code(reply: httpx.Response) -> str:
    assert reply.status_code == 503, reply.text
    return str(reply.json()["error"]["code"])


def test_update_account_changes_the_password_and_ends_other_sessions(start_scripted) -> None:
    server: RunningServer = start_scripted()
    uuid = _account_uuid(server)
    caller, other = server.login(), server.login()
    with server.client(authenticated=False) as client:
        reply = _update(client, uuid, caller, password=sha512_hex("n3w secret"),
                        oldPassword=sha512_hex("password"))
        assert reply.status_code == 200, reply.text
        inventory = reply.json()["inventory"]
        assert set(inventory) == {"uuid", "name", "type", "createDate", "lastOpDate"}
        assert (inventory["uuid"], inventory["name"], inventory["type"]) == (
            uuid, "admin", "SystemAdmin")
        assert ZSTACK_DATE.match(inventory["lastOpDate"]), inventory
        # Every other session of the account ended; the caller's goes on.
        for ended in (other, server.session):
            assert _error_code(client.get(AUTHENTICATED, headers={
                "Authorization": f"OAuth {ended}"})) == "ID.1001"
        assert client.get(AUTHENTICATED, headers={
            "Authorization": f"OAuth {caller}"}).status_code == 404
        assert _error_code(_login(client, "password")) == "ID.1000"
        assert _login(client, "n3w secret").status_code == 200


def test_a_wrong_or_missing_old_password_is_refused(start_scripted) -> None:
    server: RunningServer = start_scripted()
    uuid = _account_uuid(server)
    with server.client(authenticated=False) as client:
        wrong = _update(client, uuid, server.session, password=sha512_hex("x"),
                        oldPassword=sha512_hex("not it"))
        assert _error_code(wrong) == "SYS.1007"
        assert "old password" in wrong.json()["error"]["details"]
        missing = _update(client, uuid, server.session, password=sha512_hex("x"))
        assert _error_code(missing) == "SYS.1007"
        assert "oldPassword" in missing.json()["error"]["details"]
        # Nothing changed: the old password still logs in, the session still works.
        assert _login(client, "password").status_code == 200
        assert client.get(AUTHENTICATED, headers={
            "Authorization": f"OAuth {server.session}"}).status_code == 404


def test_update_account_refuses_what_it_cannot_do(start_scripted) -> None:
    server: RunningServer = start_scripted()
    uuid = _account_uuid(server)
    old = sha512_hex("password")
    with server.client(authenticated=False) as client:
        # An unknown account (an admin may update others: tests/api/test_account_admin.py).
        assert _error_code(_update(client, "f" * 32, server.session,
                                   password=sha512_hex("x"), oldPassword=old)) == "SYS.1007"
        # A clear-text password would lock the account out: ZStack clients send SHA-512 hex.
        plain = _update(client, uuid, server.session, password="hunter2", oldPassword=old)
        assert _error_code(plain) == "SYS.1007"
        assert re.search(r"SHA-512", plain.json()["error"]["details"])
        assert _error_code(_update(client, uuid, server.session, name="root",
                                   password=sha512_hex("x"), oldPassword=old)) == "SYS.1007"
        no_session = client.put(f"/zstack/v1/accounts/{uuid}", json={"updateAccount": {
            "password": sha512_hex("x"), "oldPassword": old}})
        assert no_session.status_code == 400
        assert _login(client, "password").status_code == 200


def test_wrong_old_passwords_count_as_failed_logins(start_scripted) -> None:
    server: RunningServer = start_scripted(login_max_failures_per_account=2)
    uuid = _account_uuid(server)
    with server.client(authenticated=False) as client:
        for _ in range(2):
            assert _error_code(_update(client, uuid, server.session, password=sha512_hex("x"),
                                       oldPassword=sha512_hex("guess"))) == "SYS.1007"
        throttled = _update(client, uuid, server.session, password=sha512_hex("x"),
                            oldPassword=sha512_hex("password"))
        assert _error_code(throttled) == "ID.1008"
        assert int(throttled.headers["Retry-After"]) >= 1


def _stored_hash(server: RunningServer, account: str) -> str:
    db_file = server.settings.db.split("///", 1)[1]
    with sqlite3.connect(db_file) as conn:
        (stored,) = conn.execute("SELECT password_hash FROM accounts WHERE name = ?",
                                 (account,)).fetchone()
    conn.close()
    return str(stored)


@pytest.mark.parametrize(("cost", "parameters"), [
    ({}, "m=65536,t=3,p=4"),  # the defaults: RFC 9106's recommendation
    ({"password_hash_time_cost": 2, "password_hash_memory_kib": 2048}, "m=2048,t=2,p=4"),
])
def test_the_hash_cost_settings_make_the_stored_hashes(
        server_factory: ServerFactory, cost: dict[str, int], parameters: str) -> None:
    defaults = {"password_hash_time_cost": 3, "password_hash_memory_kib": 64 * 1024}
    server = server_factory(**{**defaults, **cost})
    assert _stored_hash(server, "admin").startswith(f"$argon2id$v=19${parameters}$")
    server.login()  # and the hash is checked with the parameters it keeps
