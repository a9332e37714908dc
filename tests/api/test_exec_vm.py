"""ExecuteGuestVmCommand end to end on real lab VMs (libvirt + QEMU + qemu-ga): the seed's curl
request (real ``curl``, after a login), sync and async replies, error paths, a restart."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from typing import Any

import httpx
import pytest
from fixtures.server import RunningServer, ServerFactory, sha512_hex

from api.test_exec import EXEC, body, error_of
from api.test_exec_async import JOBS, accepted, poll
from vmexec.lab import LabVm

pytestmark = pytest.mark.vm


def curl(*args: str) -> dict[str, Any]:
    """Run curl; returns the JSON reply with its status as ``_status``."""
    proc = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True,
                          text=True, timeout=120, check=True)
    text, _, status = proc.stdout.rpartition("\n")
    reply: dict[str, Any] = json.loads(text)
    reply["_status"] = int(status)
    return reply


@pytest.fixture
def real_server(server_factory: ServerFactory, lab_vms: list[LabVm]) -> RunningServer:
    """vmexec with the real engine and inventory, over the lab's libvirt."""
    return server_factory(libvirt_uri=lab_vms[0].uri, post_wait=1.0)


def test_the_seed_curl_request_after_a_login(real_server: RunningServer,
                                             lab_vms: list[LabVm]) -> None:
    host = real_server.url.removeprefix("http://")
    login = curl("-X", "PUT", f"http://{host}/zstack/v1/accounts/login",
                 "-H", "Content-Type: application/json;charset=UTF-8",
                 "-d", json.dumps({"logInByAccount": {"accountName": "admin",
                                                      "password": sha512_hex("password")}}))
    assert login["_status"] == 200, login
    session = login["inventory"]["uuid"]
    vm = lab_vms[0]
    # The seed's request, as written, with its placeholders filled in.
    reply = curl(
        "-X", "PUT", f"http://{host}/zstack/v1/vm-instances/commands/exec",
        "-H", f"Authorization: OAuth {session}",
        "-H", "Content-Type: application/json;charset=UTF-8",
        "-d", '{"params":{"vmInstanceUuid":"<vmInstanceUuid>","platform":"Linux",'
              '"command":"hostname","commandTimeout":1},"systemTags":["<systemTags>"],'
              '"userTags":["<userTags>"]}'.replace("<vmInstanceUuid>", vm.uuid))
    assert reply["_status"] == 200, reply
    assert reply["stream"] == f"standardStream: {vm.name}, errorStream: "
    assert reply["vmInstance"]["uuid"] == vm.uuid
    assert reply["vmInstance"]["name"] == vm.name
    assert reply["vmInstance"]["state"] == "Running"
    assert reply["success"] is True and reply["exitCode"] == 0
    assert reply["stdout"] == f"{vm.name}\n" and reply["stderr"] == ""
    assert "error" not in reply


def test_the_seed_failing_script_is_a_success_with_its_exit_code(
        real_server: RunningServer, lab_vms: list[LabVm]) -> None:
    script = "echo hello world\necho '1/0 is not a goodScript' >&2\nexit 1"
    with real_server.client() as client:
        reply = client.put(EXEC, json=body(script, vm=lab_vms[1].uuid, commandTimeout=10))
    assert reply.status_code == 200, reply.text
    result = reply.json()
    assert result["stream"] == "standardStream: hello world, errorStream: 1/0 is not a goodScript"
    assert result["exitCode"] == 1


def test_post_short_is_200_long_is_202_then_the_result(real_server: RunningServer,
                                                       lab_vms: list[LabVm]) -> None:
    vm = lab_vms[2]
    with real_server.client() as client:
        short = client.post(EXEC, json=body("echo quick", vm=vm.uuid))
        assert short.status_code == 200, short.text
        assert short.json()["stdout"] == "quick\n"
        location = accepted(client.post(EXEC, json=body("sleep 3; echo slow", vm=vm.uuid)))
        assert client.get(location).status_code == 202
        result = poll(client, location)
    assert result.status_code == 200, result.text
    assert result.json()["stdout"] == "slow\n"
    assert result.json()["vmInstance"]["uuid"] == vm.uuid


def test_extension_params_on_a_real_guest(real_server: RunningServer,
                                          lab_vms: list[LabVm]) -> None:
    with real_server.client() as client:
        reply = client.put(EXEC, json=body(
            'read line; echo "$line|$GREETING|$(pwd)"', vm=lab_vms[0].uuid,
            stdin="from stdin\n", env={"GREETING": "hi"}, workingDirectory="/tmp"))
    assert reply.status_code == 200, reply.text
    assert reply.json()["stdout"] == "from stdin|hi|/tmp\n"


def test_timeout_on_a_real_guest_is_503_with_partial_output(real_server: RunningServer,
                                                            lab_vms: list[LabVm]) -> None:
    with real_server.client() as client:
        reply = client.put(EXEC, json=body("echo started; sleep 60", vm=lab_vms[0].uuid,
                                           commandTimeout=2))
    error = error_of(reply, 503, "VM.EXEC.1001")
    assert error["opaque"]["stdout"] == "started\n"
    assert error["opaque"]["timedOut"] is True


@pytest.mark.parametrize(("variant", "code"), [
    ("stopped", "VM.EXEC.1002"),
    ("nochannel", "VM.EXEC.1003"),
    ("noagent", "VM.EXEC.1003"),
    ("noexec", "VM.EXEC.1005"),
])
def test_vms_that_cannot_run_commands(real_server: RunningServer,
                                      lab_variants: dict[str, LabVm], variant: str,
                                      code: str) -> None:
    with real_server.client() as client:
        reply = client.put(EXEC, json=body("echo never", vm=lab_variants[variant].uuid,
                                           commandTimeout=10))
    error_of(reply, 503, code)


def test_set_vm_qga_false_refuses_exec(real_server: RunningServer,
                                       lab_vms: list[LabVm]) -> None:
    vm = lab_vms[1]
    actions = f"/zstack/v1/vm-instances/{vm.uuid}/actions"
    with real_server.client() as client:
        assert client.put(actions, json={"setVmQga": {"enable": False}}).status_code == 200
        error = error_of(client.put(EXEC, json=body("echo x", vm=vm.uuid)), 503, "VM.EXEC.1004")
        assert "SetVmQga" in error["details"]
        assert client.put(actions, json={"setVmQga": {"enable": True}}).status_code == 200
        assert client.put(EXEC, json=body("echo x", vm=vm.uuid)).status_code == 200


def test_a_running_job_survives_a_restart_of_vmexec(server_factory: ServerFactory,
                                                    lab_vms: list[LabVm]) -> None:
    vm = lab_vms[2]
    first = server_factory(libvirt_uri=vm.uri)
    with first.client() as client:
        location = accepted(client.post(EXEC, json=body("sleep 4; echo survived", vm=vm.uuid),
                                        headers={"Prefer": "respond-async"}))
    time.sleep(1.5)  # the command is running in the guest now
    first.stop()
    second = server_factory(libvirt_uri=vm.uri)  # same database
    job = location.rsplit("/", 1)[1]
    with httpx.Client(base_url=second.url, headers=first.auth, timeout=60) as client:
        result = poll(client, JOBS + job, timeout=60)
    assert result.status_code == 200, result.text
    assert result.json()["stdout"] == "survived\n"
    assert result.json()["exitCode"] == 0


def test_real_executions_are_recorded(real_server: RunningServer,
                                      lab_vms: list[LabVm]) -> None:
    vm = lab_vms[0]
    with real_server.client() as client:
        job = "1234567890abcdef1234567890abcdef"
        reply = client.put(EXEC, json=body("printf 12345; exit 7", vm=vm.uuid),
                           headers={"X-Job-UUID": job})
        assert reply.status_code == 200, reply.text
    path = real_server.settings.db.split("///", 1)[1]
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT account_name, vm_uuid, command, outcome, exit_code, "
                         "stdout_bytes, stderr_bytes FROM executions WHERE uuid = ?",
                         (job,)).fetchone()
    assert row == ("admin", vm.uuid, "printf 12345; exit 7", "exited", 7, 5, 0)


def test_large_stdin_and_environment_on_a_real_guest(real_server: RunningServer,
                                                     lab_vms: list[LabVm]) -> None:
    # Issue 10, A7: accepted input never wedges the agent connection.
    stdin = "0123456789abcdef" * 65536  # 1 MiB
    env = {name: name * 100_000 for name in ("A", "B", "C", "D")}  # 400 kB
    vm = lab_vms[0].uuid
    with real_server.client() as client:
        reply = client.put(EXEC, json=body(
            'wc -c; printf %s "$A$B$C$D" | wc -c', vm=vm, stdin=stdin, env=env))
        assert reply.status_code == 200, reply.text
        assert reply.json()["stdout"].split() == ["1048576", "400000"]
        too_big = error_of(client.put(EXEC, json=body("true", vm=vm, env={"BIG": "x" * 400_000})),
                           503, "SYS.1007")
        assert "at most 131071 bytes per variable" in too_big["details"]
        after = client.put(EXEC, json=body("echo after", vm=vm))
        assert (after.status_code, after.json()["stdout"]) == (200, "after\n")
