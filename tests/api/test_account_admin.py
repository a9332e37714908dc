"""CreateAccount, QueryAccount, UpdateAccount, DeleteAccount (issue 13): accounts have ZStack's
types; an admin manages them, any account changes its own password; sessions and access keys
end when the account is deleted or an admin sets its password."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
from argon2 import PasswordHasher
from fixtures.server import RunningServer, sha512_hex
from fixtures.zstack_sdk import URL_PREFIX, signed_headers

from api.accounts_helpers import create_account, create_key, error_code, ok
from api.conftest import NO_QGA, STOPPED, VM_1, VMS

ACCOUNTS = "/zstack/v1/accounts"
VALID = "/zstack/v1/vm-instances"


def _update(client: httpx.Client, uuid: str, auth: dict[str, str],
            **fields: str) -> httpx.Response:
    return client.put(f"{ACCOUNTS}/{uuid}", json={"updateAccount": fields}, headers=auth)


def test_an_account_made_by_hand_is_no_admin(start_scripted) -> None:
    # The finding: an account inserted into the database by hand ran commands as root on
    # every VM. Such an account is now a Normal one that owns nothing.
    server: RunningServer = start_scripted()
    db_file = Path(server.settings.db.split("///", 1)[1])
    with sqlite3.connect(db_file) as conn:
        conn.execute(
            "INSERT INTO accounts (uuid, name, password_hash, create_date, last_op_date) "
            "VALUES (?, 'mallory', ?, '2026-01-01 00:00:00.000000', "
            "'2026-01-01 00:00:00.000000')",
            ("ab" * 16, PasswordHasher().hash(sha512_hex("mallory's"))))
    conn.close()
    session = server.login("mallory", "mallory's")
    auth = {"Authorization": f"OAuth {session}"}
    with server.client(authenticated=False) as client:
        assert ok(client.get(VALID, headers=auth))["inventories"] == []
        ran = client.put(f"{VALID}/commands/exec", headers=auth, json={"params": {
            "vmInstanceUuid": VM_1.uuid, "platform": "Linux", "command": "echo root"}})
        assert error_code(ran) == "SYS.1007"
        assert "echo root" not in ran.text
        assert error_code(client.get("/zstack/v1/hosts", headers=auth)) == "ID.1002"
        assert error_code(client.put(f"{VALID}/{VM_1.uuid}/actions", headers=auth,
                                     json={"setVmQga": {"enable": False}})) == "ID.1002"
        # Admin still sees every VM.
        assert len(ok(client.get(VALID, headers=server.auth))["inventories"]) == len(VMS)  # type: ignore[arg-type]


def test_create_and_query_accounts(start_scripted) -> None:
    server: RunningServer = start_scripted()
    alice = create_account(server, "alice", description="on call")
    admin2 = create_account(server, "root2", type="SystemAdmin")
    with server.client() as client:
        listed = ok(client.get(ACCOUNTS))["inventories"]
        assert isinstance(listed, list)
        by_name = {a["name"]: a for a in listed}
        assert set(by_name) == {"admin", "alice", "root2"}
        assert by_name["admin"]["type"] == "SystemAdmin"
        assert by_name["alice"]["type"] == "Normal"
        assert by_name["alice"]["description"] == "on call"
        assert set(by_name["alice"]) == {"uuid", "name", "description", "type", "createDate",
                                         "lastOpDate"}
        assert "password" not in str(listed).lower()
        normal = ok(client.get(ACCOUNTS, params={"q": "type=Normal"}))["inventories"]
        assert [a["uuid"] for a in normal] == [alice.uuid]  # type: ignore[union-attr]
        one = ok(client.get(f"{ACCOUNTS}/{admin2.uuid}"))["inventories"]
        assert [a["name"] for a in one] == ["root2"]  # type: ignore[union-attr]
        for refused in (
                {"name": "alice", "password": sha512_hex("x")},               # taken
                {"name": "carol", "password": "clear text"},                  # not SHA-512
                {"name": "carol", "password": sha512_hex("x"), "type": "God"},
                {"name": "carol", "password": sha512_hex("x"), "resourceUuid": "nope"}):
            reply = client.post(ACCOUNTS, json={"params": refused})
            assert error_code(reply) == "SYS.1007", refused
    # A created SystemAdmin is an admin; alice is not.
    with server.client(authenticated=False) as client:
        assert ok(client.get("/zstack/v1/hosts", headers=admin2.auth))
        assert error_code(client.get(ACCOUNTS, headers=alice.auth)) == "ID.1002"
        assert error_code(client.post(ACCOUNTS, headers=alice.auth, json={"params": {
            "name": "eve", "password": sha512_hex("x"), "type": "SystemAdmin"}})) == "ID.1002"


def test_an_admin_sets_a_password_and_the_sessions_of_the_account_end(start_scripted) -> None:
    server: RunningServer = start_scripted()
    alice = create_account(server, "alice")
    other = server.login("alice", alice.password)
    with server.client(authenticated=False) as client:
        ok(_update(client, alice.uuid, server.auth, password=sha512_hex("new one")))
        for ended in (alice.session, other):
            assert error_code(client.get(VALID, headers={
                "Authorization": f"OAuth {ended}"})) == "ID.1001"
        assert server.login("alice", "new one")
        assert error_code(client.put(f"{ACCOUNTS}/login", json={"logInByAccount": {
            "accountName": "alice", "password": sha512_hex(alice.password)}})) == "ID.1000"
        # The admin's own session goes on.
        assert ok(client.get(VALID, headers=server.auth))


def test_a_normal_account_changes_its_own_password_only(start_scripted) -> None:
    server: RunningServer = start_scripted()
    alice, bob = create_account(server, "alice"), create_account(server, "bob")
    other = server.login("alice", alice.password)
    old = sha512_hex(alice.password)
    with server.client(authenticated=False) as client:
        for denied in ({"description": "x"}, {"name": "alice2"},
                       {"name": "alice2", "password": sha512_hex("n"), "oldPassword": old}):
            assert error_code(_update(client, alice.uuid, alice.auth, **denied)) == "ID.1002"
        assert error_code(_update(client, bob.uuid, alice.auth,
                                  password=sha512_hex("n"))) == "ID.1002"
        assert error_code(_update(client, alice.uuid, alice.auth,
                                  password=sha512_hex("n"))) == "SYS.1007"  # no oldPassword
        inventory = ok(_update(client, alice.uuid, alice.auth, password=sha512_hex("n"),
                               oldPassword=old, name="alice"))["inventory"]
        assert inventory["type"] == "Normal"  # type: ignore[index]
        assert ok(client.get(VALID, headers=alice.auth))  # the caller's session stays
        assert error_code(client.get(VALID, headers={
            "Authorization": f"OAuth {other}"})) == "ID.1001"
        assert server.login("alice", "n")


def test_an_admin_renames_and_describes_accounts(start_scripted) -> None:
    server: RunningServer = start_scripted()
    alice = create_account(server, "alice")
    create_account(server, "bob")
    admin_uuid = ok(httpx.put(f"{server.url}{ACCOUNTS}/login", json={"logInByAccount": {
        "accountName": "admin", "password": sha512_hex("password")}}))["inventory"]
    with server.client(authenticated=False) as client:
        renamed = ok(_update(client, alice.uuid, server.auth, name="alicia",
                             description="renamed"))["inventory"]
        assert (renamed["name"], renamed["description"]) == ("alicia", "renamed")  # type: ignore[index]
        assert server.login("alicia", alice.password)
        assert error_code(_update(client, alice.uuid, server.auth, name="bob")) == "SYS.1007"
        own = str(admin_uuid["accountUuid"])  # type: ignore[index]
        # Renaming admin would make the next start create another admin: refused, and the
        # password that came with it is not changed either.
        assert error_code(_update(client, own, server.auth, name="root",
                                  password=sha512_hex("x"),
                                  oldPassword=sha512_hex("password"))) == "SYS.1007"
        assert server.login("admin", "password")
        assert error_code(_update(client, "f" * 32, server.auth,
                                  description="x")) == "SYS.1007"


def test_deleting_an_account_ends_its_sessions_and_keys_at_once(start_scripted) -> None:
    server: RunningServer = start_scripted()
    alice = create_account(server, "alice")
    key = create_key(server, alice.uuid)
    api = f"/vm-instances/{STOPPED.uuid}/qga"
    with server.client(authenticated=False) as client:
        signed = signed_headers("GET", "/vm-instances", key.key_id, key.secret)
        assert ok(client.get(URL_PREFIX + "/vm-instances", headers=signed))
        assert error_code(client.delete(f"{ACCOUNTS}/{alice.uuid}",
                                        headers=alice.auth)) == "ID.1002"
        ok(client.delete(f"{ACCOUNTS}/{alice.uuid}", headers=server.auth))
        assert error_code(client.get(VALID, headers=alice.auth)) == "ID.1001"
        assert error_code(client.get(URL_PREFIX + api, headers=signed_headers(
            "GET", api, key.key_id, key.secret))) == "ID.1001"
        assert error_code(client.put(f"{ACCOUNTS}/login", json={"logInByAccount": {
            "accountName": "alice", "password": sha512_hex(alice.password)}})) == "ID.1000"
        assert ok(client.get(f"{ACCOUNTS}/{alice.uuid}", headers=server.auth))[
            "inventories"] == []
        assert ok(client.get("/zstack/v1/accesskeys", headers=server.auth))["inventories"] == []
        # Idempotent; and admin itself cannot be deleted.
        ok(client.delete(f"{ACCOUNTS}/{alice.uuid}", headers=server.auth))
        admin = ok(client.get(ACCOUNTS, headers=server.auth, params={"q": "name=admin"}))
        admin_uuid = admin["inventories"][0]["uuid"]  # type: ignore[index]
        assert error_code(client.delete(f"{ACCOUNTS}/{admin_uuid}",
                                        headers=server.auth)) == "SYS.1007"
        assert ok(client.get(VALID, headers=server.auth))
        assert NO_QGA.uuid  # the module's VMs are untouched
