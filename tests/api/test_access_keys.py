"""Access keys (issue 13): requests signed exactly as ZStack's Java SDK signs them act as the
key's account; a bad signature, a disabled or deleted key, a stale Date are refused with
``ID.1001``; the secret is kept encrypted and shown once."""

from __future__ import annotations

import os
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fixtures.server import RunningServer
from fixtures.zstack_sdk import URL_PREFIX, sdk_date, signed_headers

from api.accounts_helpers import (
    create_account,
    create_key,
    error_code,
    give,
    ok,
    set_key_state,
)
from api.conftest import STOPPED, VM_1

EXEC = "/vm-instances/commands/exec"


def _exec_body(vm_uuid: str, command: str = "echo signed") -> dict[str, object]:
    return {"params": {"vmInstanceUuid": vm_uuid, "platform": "Linux", "command": command}}


@pytest.mark.parametrize("zone", ["Z", "Asia/Shanghai", "America/New_York", "UTC"])
def test_a_request_signed_as_the_java_sdk_signs_runs_a_command(start_scripted,
                                                               zone: str) -> None:
    server: RunningServer = start_scripted()
    alice = create_account(server, "alice")
    give(server, alice.uuid, VM_1.uuid)
    key = create_key(server, alice.uuid)
    with server.client(authenticated=False) as client:
        reply = client.put(URL_PREFIX + EXEC, json=_exec_body(VM_1.uuid), headers=signed_headers(
            "PUT", EXEC, key.key_id, key.secret, date=sdk_date(zone=zone)))
        assert ok(reply)["stdout"] == "signed\n"
        # A query API signs its bare path; the conditions are in the query string only.
        reply = client.get(URL_PREFIX + "/vm-instances", params={"q": "name~=%"},
                           headers=signed_headers("GET", "/vm-instances", key.key_id,
                                                  key.secret))
        # The key acts as alice: her VM only.
        assert [vm["uuid"] for vm in ok(reply)["inventories"]] == [VM_1.uuid]  # type: ignore[union-attr]


def test_the_async_job_is_polled_with_the_key(start_scripted) -> None:
    server: RunningServer = start_scripted()
    key = create_key(server, create_account(server, "alice", type="SystemAdmin").uuid)
    with server.client(authenticated=False) as client:
        started = client.post(URL_PREFIX + EXEC, json=_exec_body(VM_1.uuid),
                              headers={"Prefer": "respond-async",
                                       **signed_headers("POST", EXEC, key.key_id, key.secret)})
        assert started.status_code == 202, started.text
        job = started.json()["location"].split("/")[-1]
        api = f"/api-jobs/{job}"
        for _ in range(100):
            polled = client.get(URL_PREFIX + api,
                                headers=signed_headers("GET", api, key.key_id, key.secret))
            if polled.status_code != 202:
                break
            time.sleep(0.05)
        assert ok(polled)["stdout"] == "signed\n"


def test_refusals_are_invalid_sessions(start_scripted) -> None:
    server: RunningServer = start_scripted()
    key = create_key(server, create_account(server, "alice", type="SystemAdmin").uuid)
    api = f"/vm-instances/{VM_1.uuid}/qga"
    url = URL_PREFIX + api
    with server.client(authenticated=False) as client:
        assert ok(client.get(url, headers=signed_headers("GET", api, key.key_id, key.secret)))
        refused = {
            "bad signature": signed_headers("GET", api, key.key_id, key.secret + "x"),
            "signed for another path": signed_headers("GET", "/vm-instances", key.key_id,
                                                      key.secret),
            "signed for another method": signed_headers("PUT", api, key.key_id, key.secret),
            "unknown key": signed_headers("GET", api, "NoSuchKeyId1", key.secret),
            "stale Date": signed_headers(
                "GET", api, key.key_id, key.secret,
                date=sdk_date(datetime.now(UTC) - timedelta(minutes=16))),
            "future Date": signed_headers(
                "GET", api, key.key_id, key.secret,
                date=sdk_date(datetime.now(UTC) + timedelta(minutes=16))),
            "unreadable Date": signed_headers("GET", api, key.key_id, key.secret,
                                              date="yesterday"),
        }
        no_date = signed_headers("GET", api, key.key_id, key.secret)
        del no_date["Date"]
        refused["no Date"] = no_date
        for why, headers in refused.items():
            reply = client.get(url, headers=headers)
            assert error_code(reply) == "ID.1001", why
            assert key.secret not in reply.text, why
        # A Date within the window, either way, is accepted.
        within = sdk_date(datetime.now(UTC) - timedelta(minutes=14))
        assert ok(client.get(url, headers=signed_headers("GET", api, key.key_id, key.secret,
                                                         date=within)))
        # Disabled: refused; enabled again: accepted; deleted: refused at once.
        set_key_state(server, key.uuid, "disable")
        reply = client.get(url, headers=signed_headers("GET", api, key.key_id, key.secret))
        assert error_code(reply) == "ID.1001"
        assert "disabled" in reply.json()["error"]["details"]
        set_key_state(server, key.uuid, "enable")
        assert ok(client.get(url, headers=signed_headers("GET", api, key.key_id, key.secret)))
        ok(client.delete(f"/zstack/v1/accesskeys/{key.uuid}", headers=server.auth))
        reply = client.get(url, headers=signed_headers("GET", api, key.key_id, key.secret))
        assert error_code(reply) == "ID.1001"


def test_a_signed_body_is_refused_before_it_is_read(start_scripted) -> None:
    # The body limit checks credentials before reading a body: a signed request too.
    server: RunningServer = start_scripted()
    key = create_key(server, create_account(server, "alice", type="SystemAdmin").uuid)
    with server.client(authenticated=False) as client:
        headers = signed_headers("PUT", EXEC, key.key_id, key.secret + "x")
        reply = client.put(URL_PREFIX + EXEC, headers=headers, content=b"x" * (1 << 20))
        assert error_code(reply) == "ID.1001"


def test_keys_given_or_generated_and_the_secret_shown_once(start_scripted,
                                                          tmp_path: Path) -> None:
    server: RunningServer = start_scripted(secret_key_file=tmp_path / "keys" / "secret.key")
    alice = create_account(server, "alice")
    given = create_key(server, alice.uuid, AccessKeyID="AliceKeyId01",
                       AccessKeySecret="AliceSecretValue0123456789", description="ci")
    generated = create_key(server, alice.uuid)
    assert (given.key_id, given.secret) == ("AliceKeyId01", "AliceSecretValue0123456789")
    assert len(generated.key_id) == 20 and len(generated.secret) == 40
    with server.client() as client:
        listed = ok(client.get("/zstack/v1/accesskeys", params={"q": f"accountUuid={alice.uuid}"}))
        inventories = listed["inventories"]
        assert isinstance(inventories, list)
        assert {k["AccessKeyID"] for k in inventories} == {given.key_id, generated.key_id}
        assert all("AccessKeySecret" not in k and k["state"] == "Enabled" for k in inventories)
        assert set(inventories[0]) >= {"uuid", "accountUuid", "userUuid", "AccessKeyID",
                                       "state", "createDate", "lastOpDate"}
        # A taken AccessKeyID is refused.
        taken = client.post("/zstack/v1/accesskeys", json={"params": {
            "accountUuid": alice.uuid, "AccessKeyID": "AliceKeyId01"}})
        assert error_code(taken) == "SYS.1007"
    # The secret is not in the database in clear; the generated key file is owner-only.
    db_file = Path(server.settings.db.split("///", 1)[1])
    stored = b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))
    assert given.secret.encode() not in stored and generated.secret.encode() not in stored
    key_file = tmp_path / "keys" / "secret.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


def test_keys_survive_a_restart_with_the_same_secret_key(start_scripted,
                                                          tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    server: RunningServer = start_scripted(secret_key_file=key_file)
    key = create_key(server, create_account(server, "alice", type="SystemAdmin").uuid)
    server.stop()
    again: RunningServer = start_scripted(secret_key_file=key_file)
    api = f"/vm-instances/{VM_1.uuid}/qga"
    with again.client(authenticated=False) as client:
        assert ok(client.get(URL_PREFIX + api,
                             headers=signed_headers("GET", api, key.key_id, key.secret)))
    again.stop()
    # Another secret_key cannot read the stored secret: the key no longer authenticates.
    other: RunningServer = start_scripted(secret_key="another key, at least 32 characters!")
    with other.client(authenticated=False) as client:
        assert error_code(client.get(URL_PREFIX + api, headers=signed_headers(
            "GET", api, key.key_id, key.secret))) == "ID.1001"


def test_a_normal_account_manages_its_own_keys_only(start_scripted) -> None:
    server: RunningServer = start_scripted()
    alice, bob = create_account(server, "alice"), create_account(server, "bob")
    alices = create_key(server, alice.uuid, auth=alice.auth)
    bobs = create_key(server, bob.uuid)
    with server.client(authenticated=False) as client:
        denied = client.post("/zstack/v1/accesskeys", headers=alice.auth,
                             json={"params": {"accountUuid": bob.uuid}})
        assert error_code(denied) == "ID.1002"
        listed = ok(client.get("/zstack/v1/accesskeys", headers=alice.auth))["inventories"]
        assert [k["uuid"] for k in listed] == [alices.uuid]  # type: ignore[union-attr]
        assert ok(client.get(f"/zstack/v1/accesskeys/{bobs.uuid}",
                             headers=alice.auth))["inventories"] == []
        change = client.put(f"/zstack/v1/accesskeys/{bobs.uuid}/actions", headers=alice.auth,
                            json={"changeAccessKeyState": {"stateEvent": "disable"}})
        assert error_code(change) == error_code(client.put(
            f"/zstack/v1/accesskeys/{'0' * 32}/actions", headers=alice.auth,
            json={"changeAccessKeyState": {"stateEvent": "disable"}})) == "SYS.1007"
        ok(client.delete(f"/zstack/v1/accesskeys/{bobs.uuid}", headers=alice.auth))
        # Bob's key is untouched: it still works.
        api = f"/vm-instances/{STOPPED.uuid}/qga"
        give(server, bob.uuid, STOPPED.uuid)
        assert ok(client.get(URL_PREFIX + api,
                             headers=signed_headers("GET", api, bobs.key_id, bobs.secret)))
