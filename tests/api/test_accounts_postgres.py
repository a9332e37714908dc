"""Accounts, owners and access keys on PostgreSQL (a throwaway cluster): migration 0006, the
owner kept across a restart, an account's keys and sessions ending with it."""

from __future__ import annotations

import pytest
from fixtures.server import RunningServer
from fixtures.zstack_sdk import URL_PREFIX, signed_headers

from api.accounts_helpers import create_account, create_key, error_code, give, ok
from api.conftest import VM_1

pytestmark = pytest.mark.slow


def test_accounts_on_postgresql(start_scripted, postgres_url: str) -> None:
    first: RunningServer = start_scripted(db=postgres_url)
    alice = create_account(first, "alice")
    give(first, alice.uuid, VM_1.uuid)
    key = create_key(first, alice.uuid)
    first.stop()
    again: RunningServer = start_scripted(db=postgres_url)
    with again.client(authenticated=False) as client:
        signed = signed_headers("GET", "/vm-instances", key.key_id, key.secret)
        seen = ok(client.get(URL_PREFIX + "/vm-instances", headers=signed))["inventories"]
        assert [vm["uuid"] for vm in seen] == [VM_1.uuid]  # type: ignore[union-attr]
        session = again.login("alice", alice.password)
        ok(client.delete(f"{URL_PREFIX}/accounts/{alice.uuid}", headers=again.auth))
        assert error_code(client.get(URL_PREFIX + "/vm-instances", headers=signed_headers(
            "GET", "/vm-instances", key.key_id, key.secret))) == "ID.1001"
        assert error_code(client.get(URL_PREFIX + "/vm-instances", headers={
            "Authorization": f"OAuth {session}"})) == "ID.1001"
