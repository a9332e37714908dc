"""VM owners (issue 13): a Normal account sees, queries and runs commands on the VMs it owns;
another account's VM is answered exactly as an unknown UUID is. Owners are kept across
resyncs and restarts; ChangeResourceOwner is for admins."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fakes.hosts import MemoryHosts, seen
from fixtures.server import RunningServer, ServerFactory

from api.accounts_helpers import create_account, error_code, give, ok
from api.conftest import LOCAL, VMS, with_sources
from api.doubles import FakeGuest, ScriptedExecutor
from vmexec.agent.directory import AgentDirectory

VM = "/zstack/v1/vm-instances"
UNKNOWN = "ab" * 16
MINE, THEIRS, ADMINS = (seen("mine", "1" * 32), seen("theirs", "2" * 32),
                        seen("admins", "3" * 32))


@pytest.fixture
def hosts() -> MemoryHosts:
    hosts = MemoryHosts()
    hosts.add(LOCAL, MINE, THEIRS, ADMINS)
    return hosts


@pytest.fixture
def start(server_factory: ServerFactory, hosts: MemoryHosts) -> Callable[[], RunningServer]:
    guest = FakeGuest()

    def executor(agents: AgentDirectory) -> ScriptedExecutor:
        return ScriptedExecutor(agents, guest)

    def start() -> RunningServer:
        return server_factory(executor=executor, inventory=with_sources(hosts),
                              libvirt_uri=LOCAL)
    return start


def _exec(client: httpx.Client, auth: dict[str, str], vm_uuid: str) -> httpx.Response:
    return client.put(f"{VM}/commands/exec", headers=auth, json={"params": {
        "vmInstanceUuid": vm_uuid, "platform": "Linux", "command": "echo hi"}})


def _names(reply: httpx.Response) -> list[str]:
    return [vm["name"] for vm in ok(reply)["inventories"]]  # type: ignore[union-attr]


def _same_refusal(other: httpx.Response, unknown: httpx.Response, uuid: str) -> None:
    # Nothing in the answer tells another account's VM from a UUID that names nothing.
    assert other.status_code == unknown.status_code
    assert other.json() == {"error": {**unknown.json()["error"], "details": unknown.json()[
        "error"]["details"].replace(UNKNOWN, uuid)}}


def test_a_normal_account_sees_and_uses_its_own_vms_only(start) -> None:
    server: RunningServer = start()
    alice, bob = create_account(server, "alice"), create_account(server, "bob")
    give(server, alice.uuid, MINE.uuid)
    give(server, bob.uuid, THEIRS.uuid)
    with server.client(authenticated=False) as client:
        assert _names(client.get(VM, headers=alice.auth)) == ["mine"]
        assert sorted(_names(client.get(VM, headers=server.auth))) == ["admins", "mine",
                                                                      "theirs"]
        assert ok(client.get(VM, headers=alice.auth, params={"count": "true"}))["total"] == 1
        assert _names(client.get(VM, headers=alice.auth, params={"q": "name=theirs"})) == []
        assert _names(client.get(f"{VM}/{MINE.uuid}", headers=alice.auth)) == ["mine"]
        assert _names(client.get(f"{VM}/{THEIRS.uuid}", headers=alice.auth)) == []
        assert ok(client.get(f"{VM}/{MINE.uuid}/qga", headers=alice.auth))["enable"] is True
        assert ok(client.get(f"{VM}/{MINE.uuid}/guest-tools-infos", headers=alice.auth))
        ran = _exec(client, alice.auth, MINE.uuid)
        assert ok(ran)["stdout"] == "hi\n"
        for path in ("{}/qga", "{}/guest-tools-infos"):
            other = client.get(f"{VM}/{path.format(THEIRS.uuid)}", headers=alice.auth)
            unknown = client.get(f"{VM}/{path.format(UNKNOWN)}", headers=alice.auth)
            assert error_code(other) == "SYS.1007"
            _same_refusal(other, unknown, THEIRS.uuid)
        for vm_uuid in (THEIRS.uuid, ADMINS.uuid):
            other = _exec(client, alice.auth, vm_uuid)
            assert error_code(other) == "SYS.1007"
            _same_refusal(other, _exec(client, alice.auth, UNKNOWN), vm_uuid)
        # The VMs a Normal account does not own are not for it to switch either.
        assert error_code(client.put(f"{VM}/{MINE.uuid}/actions", headers=alice.auth, json={
            "setVmQga": {"enable": False}})) == "ID.1002"


def test_owners_are_kept_across_resyncs_and_restarts(start, hosts: MemoryHosts) -> None:
    server: RunningServer = start()
    alice = create_account(server, "alice")
    give(server, alice.uuid, MINE.uuid)
    # The VM changes on its host; a lookup that misses resyncs every host.
    hosts.hosts[LOCAL].put(seen("mine", MINE.uuid, state="Stopped", cpu_num=4))
    with server.client(authenticated=False) as client:
        assert _names(client.get(VM, headers=alice.auth, params={"q": "name=nothing"})) == []
        [vm] = ok(client.get(VM, headers=alice.auth))["inventories"]  # type: ignore[misc]
        assert (vm["name"], vm["state"], vm["cpuNum"]) == ("mine", "Stopped", 4)
    server.stop()
    hosts.hosts[LOCAL].put(seen("mine-renamed", MINE.uuid))
    again: RunningServer = start()
    with again.client(authenticated=False) as client:
        session = again.login("alice", alice.password)
        assert _names(client.get(VM, headers={"Authorization": f"OAuth {session}"})) == [
            "mine-renamed"]


def test_change_resource_owner(start) -> None:
    server: RunningServer = start()
    alice, bob = create_account(server, "alice"), create_account(server, "bob")
    with server.client(authenticated=False) as client:
        reply = client.post(f"/zstack/v1/account/{alice.uuid}/resources", headers=server.auth,
                            json={"params": {"resourceUuid": MINE.uuid.upper()}})
        inventory: dict[str, Any] = ok(reply)["inventory"]  # type: ignore[assignment]
        assert (inventory["accountUuid"], inventory["resourceUuid"],
                inventory["resourceType"]) == (alice.uuid, MINE.uuid, "VmInstanceVO")
        assert _names(client.get(VM, headers=alice.auth)) == ["mine"]
        refs = client.get("/zstack/v1/accounts/resources/refs", headers=server.auth,
                          params={"q": f"resourceUuid={MINE.uuid}"})
        assert [r["accountUuid"] for r in ok(refs)["inventories"]] == [alice.uuid]  # type: ignore[union-attr]
        # Given to bob: alice no longer sees it.
        give(server, bob.uuid, MINE.uuid)
        assert _names(client.get(VM, headers=alice.auth)) == []
        assert _names(client.get(VM, headers=bob.auth)) == ["mine"]
        for account, vm in ((UNKNOWN, MINE.uuid), (alice.uuid, UNKNOWN)):
            assert error_code(client.post(
                f"/zstack/v1/account/{account}/resources", headers=server.auth,
                json={"params": {"resourceUuid": vm}})) == "SYS.1007"
        assert error_code(client.post(
            f"/zstack/v1/account/{bob.uuid}/resources", headers=bob.auth,
            json={"params": {"resourceUuid": THEIRS.uuid}})) == "ID.1002"
        # Deleting bob gives his VMs back to admin: a new account does not inherit them.
        ok(client.delete(f"/zstack/v1/accounts/{bob.uuid}", headers=server.auth))
        carol = create_account(server, "carol")
        assert _names(client.get(VM, headers=carol.auth)) == []
        refs = ok(client.get("/zstack/v1/accounts/resources/refs", headers=server.auth))
        admin_uuid = ok(client.get("/zstack/v1/accounts", headers=server.auth, params={
            "q": "name=admin"}))["inventories"][0]["uuid"]  # type: ignore[index]
        assert {r["accountUuid"] for r in refs["inventories"]} == {admin_uuid}  # type: ignore[union-attr]
        assert ok(client.get("/zstack/v1/accounts/resources/refs",
                             headers=carol.auth))["inventories"] == []
        assert len(_names(client.get(VM, headers=server.auth))) == 3
    assert len(VMS) == 3
