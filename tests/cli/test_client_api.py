"""The Python client the CLI drives (``vmexec.client``), used directly: typed results and errors,
``202`` + polling of ``/api-jobs``, and the sync facade."""

from __future__ import annotations

import pytest
from fixtures.server import RunningServer

from vmexec.client import (
    ApiError,
    AsyncClient,
    Client,
    CommandTimedOut,
    ConnectionFailed,
    NotLoggedIn,
    VmNotFound,
)
from vmexec.lab import LabVm

pytestmark = pytest.mark.vm


async def test_exec_is_polled_when_the_server_answers_202(server: RunningServer,
                                                          lab_vms: list[LabVm]) -> None:
    # exec_wait=0: the server answers 202 at once, whatever the command.
    async with AsyncClient(server.url, exec_wait=0) as client:
        await client.login("admin", "password")
        vm = await client.find_vm(lab_vms[0].name)
        result = await client.exec(vm.uuid, "sleep 2; echo done; exit 5", timeout=30)
    assert (result.stdout, result.exit_code, result.timed_out) == ("done\n", 5, False)
    assert result.duration_ms is not None and result.duration_ms >= 2000
    assert result.vm_instance is not None and result.vm_instance.uuid == vm.uuid


async def test_a_polled_timeout_is_command_timed_out_with_the_partial_output(
        server: RunningServer, lab_vms: list[LabVm]) -> None:
    async with AsyncClient(server.url, session=server.session, exec_wait=0) as client:
        with pytest.raises(CommandTimedOut) as caught:
            await client.exec(lab_vms[0].uuid, "echo so far; sleep 30", timeout=1)
    error = caught.value
    assert (error.status, error.code) == (503, "VM.EXEC.1001")
    assert error.partial.stdout == "so far\n" and error.partial.timed_out
    assert error.partial.shell_status == 124


async def test_errors_are_typed_with_the_zstack_fields(server: RunningServer) -> None:
    async with AsyncClient(server.url) as client:
        with pytest.raises(NotLoggedIn):
            await client.query_vms()
        with pytest.raises(ApiError) as caught:
            await client.login("admin", "wrong")
        assert (caught.value.status, caught.value.code) == (503, "ID.1000")
        assert caught.value.description and caught.value.raw["code"] == "ID.1000"
        await client.login("admin", "password")
        with pytest.raises(VmNotFound):
            await client.find_vm("no-such-vm")
        with pytest.raises(VmNotFound):
            await client.get_vm("0" * 32)
        with pytest.raises(ApiError) as caught:
            await client.exec("0" * 32, "true")
        assert caught.value.code == "SYS.1007"
        assert await client.validate_session()
        await client.logout()
        assert client.session is None
    async with AsyncClient("http://127.0.0.1:9", session="0" * 32) as client:
        with pytest.raises(ConnectionFailed):
            await client.query_vms()


def test_the_sync_facade(server: RunningServer, lab_vms: list[LabVm]) -> None:
    with Client(server.url) as client:
        session = client.login("admin", "password")
        assert client.session == session.uuid
        names = {vm.name for vm in client.query_vms("name~=vmexec-lab-%")}
        assert {vm.name for vm in lab_vms} <= names
        vm = client.find_vm(lab_vms[1].name)
        assert client.get_vm(vm.uuid).name == vm.name
        result = client.exec(vm.uuid, "hostname")
        assert (result.stdout, result.exit_code) == (f"{vm.name}\n", 0)
        assert [h.name for h in client.query_hosts("name=localhost")] == ["localhost"]
