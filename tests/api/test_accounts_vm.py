"""Accounts on real lab VMs (libvirt + QEMU + qemu-ga), issue 13: a Normal account logged in
sees only the VMs it owns and runs commands on them; another account's VM is refused as an
unknown one; an access key signed as ZStack's Java SDK signs runs a command."""

from __future__ import annotations

import pytest
from fixtures.server import RunningServer, ServerFactory
from fixtures.zstack_sdk import URL_PREFIX, signed_headers

from api.accounts_helpers import create_account, create_key, error_code, give, ok
from vmexec.lab import LabVm

pytestmark = pytest.mark.vm

EXEC = "/vm-instances/commands/exec"


def _exec_body(vm: LabVm, command: str = "hostname") -> dict[str, object]:
    return {"params": {"vmInstanceUuid": vm.uuid, "platform": "Linux", "command": command}}


@pytest.fixture
def lab_server(server_factory: ServerFactory, lab_vms: list[LabVm]) -> RunningServer:
    return server_factory(libvirt_uri=lab_vms[0].uri)


def test_a_normal_account_sees_and_runs_on_its_own_vms_only(lab_server: RunningServer,
                                                            lab_vms: list[LabVm]) -> None:
    mine, theirs = lab_vms[0], lab_vms[1]
    alice = create_account(lab_server, "alice")
    give(lab_server, alice.uuid, mine.uuid)
    with lab_server.client(authenticated=False) as client:
        seen = ok(client.get(f"{URL_PREFIX}/vm-instances", headers=alice.auth))["inventories"]
        assert [vm["uuid"] for vm in seen] == [mine.uuid]  # type: ignore[union-attr]
        # The admin sees the other lab VMs.
        everything = ok(client.get(f"{URL_PREFIX}/vm-instances", headers=lab_server.auth))
        assert theirs.uuid in {vm["uuid"] for vm in everything["inventories"]}  # type: ignore[union-attr]
        ran = ok(client.put(URL_PREFIX + EXEC, headers=alice.auth, json=_exec_body(mine)))
        assert ran["stdout"] == f"{mine.name}\n"
        refused = client.put(URL_PREFIX + EXEC, headers=alice.auth,
                             json=_exec_body(theirs, "touch /tmp/alice-was-here"))
        unknown = client.put(URL_PREFIX + EXEC, headers=alice.auth, json={"params": {
            "vmInstanceUuid": "ab" * 16, "platform": "Linux", "command": "hostname"}})
        assert error_code(refused) == error_code(unknown) == "SYS.1007"
        assert refused.json()["error"]["details"] == unknown.json()["error"]["details"].replace(
            "ab" * 16, theirs.uuid)
        # Nothing ran there: the admin finds no trace of it.
        checked = ok(client.put(URL_PREFIX + EXEC, headers=lab_server.auth, json=_exec_body(
            theirs, "test -e /tmp/alice-was-here && echo yes || echo no")))
        assert checked["stdout"] == "no\n"


def test_an_access_key_signed_as_the_java_sdk_signs_runs_a_command(
        lab_server: RunningServer, lab_vms: list[LabVm]) -> None:
    vm = lab_vms[0]
    alice = create_account(lab_server, "alice")
    give(lab_server, alice.uuid, vm.uuid)
    key = create_key(lab_server, alice.uuid, auth=alice.auth)
    with lab_server.client(authenticated=False) as client:
        reply = client.put(URL_PREFIX + EXEC, json=_exec_body(vm, "id -un; hostname"),
                           headers=signed_headers("PUT", EXEC, key.key_id, key.secret))
        body = ok(reply)
        assert body["stdout"] == f"root\n{vm.name}\n"
        assert body["exitCode"] == 0
        bad = client.put(URL_PREFIX + EXEC, json=_exec_body(vm),
                         headers=signed_headers("PUT", EXEC, key.key_id, "not the secret"))
        assert error_code(bad) == "ID.1001"
