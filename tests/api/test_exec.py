"""ExecuteGuestVmCommand over real HTTP, with a scripted engine: reply shape, validation and
every error path with its status and code. (On real VMs: test_exec_vm.py.)"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from fixtures.server import RunningServer

from api.conftest import NO_QGA, STOPPED, VM_1

EXEC = "/zstack/v1/vm-instances/commands/exec"


def body(command: str = "echo hi", *, vm: str = VM_1.uuid, **params: Any) -> dict[str, Any]:
    return {"params": {"vmInstanceUuid": vm, "platform": "Linux", "command": command,
                       **params}}


def error_of(reply: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    error: dict[str, Any] = reply.json()["error"]
    assert error["code"] == code, error
    assert error["description"] and error.get("details")
    return error


@pytest.fixture
def client(server: RunningServer):
    with server.client() as client:
        yield client


def test_the_seed_request_and_reply(client: httpx.Client) -> None:
    """The seed's curl body; its failing script is a success with the exit code."""
    reply = client.put(EXEC, headers={"Content-Type": "application/json;charset=UTF-8"},
                       json={"params": {"vmInstanceUuid": VM_1.uuid, "platform": "Linux",
                                        "command": "echo hello world\n"
                                                   "echo 1/0 is not a goodScript >&2\n"
                                                   "exit 1",
                                        "commandTimeout": 1},
                             "systemTags": ["<systemTags>"], "userTags": ["<userTags>"]})
    assert reply.status_code == 200, reply.text
    result = reply.json()
    assert result["stream"] == "standardStream: hello world, errorStream: 1/0 is not a goodScript"
    assert result["vmInstance"]["uuid"] == VM_1.uuid
    assert result["vmInstance"]["name"] == "vm_1"
    assert result["success"] is True
    assert result["exitCode"] == 1
    assert result["stdout"] == "hello world\n" and result["stderr"] == "1/0 is not a goodScript\n"
    assert result["stdoutTruncated"] is False and result["stderrTruncated"] is False
    assert result["timedOut"] is False
    assert isinstance(result["durationMs"], int)
    assert "signal" not in result and "error" not in result  # null fields are left out


def test_tags_inside_params_as_the_sdks_send_them(client: httpx.Client) -> None:
    reply = client.post(EXEC, json=body(systemTags=["a"], userTags=["b"], requestIp="1.2.3.4",
                                        commandTimeout=10))
    assert reply.status_code == 200, reply.text


def test_extension_params_reach_the_engine(client: httpx.Client) -> None:
    reply = client.put(EXEC, json=body("cat\necho x", stdin="from stdin\n",
                                       env={"A": "1"}, workingDirectory="/tmp", runAs="root",
                                       shell="sh", maxOutputBytes=5))
    result = reply.json()
    assert reply.status_code == 200, reply.text
    assert result["stdout"] == "from " and result["stdoutTruncated"] is True


def test_signal_is_reported(client: httpx.Client) -> None:
    result = client.put(EXEC, json=body("kill 9")).json()
    assert result["signal"] == 9 and "exitCode" not in result


def test_x_json_schema_adds_the_schema_map(client: httpx.Client) -> None:
    reply = client.put(EXEC, json=body(), headers={"X-JSON-Schema": "true"})
    assert reply.json()["schema"] == {"vmInstance": "org.zstack.header.vm.VmInstanceInventory"}
    assert "schema" not in client.put(EXEC, json=body()).json()


@pytest.mark.parametrize(("params", "field"), [
    ({"vmInstanceUuid": None}, "vmInstanceUuid"),
    ({"platform": None}, "platform"),
    ({"command": None}, "command"),
    ({"platform": "Solaris"}, "platform"),
    ({"platform": "linux"}, "platform"),
    ({"command": ""}, "command"),
    ({"command": "x" * 65_537}, "command"),
    ({"commandTimeout": 0}, "commandTimeout"),
    ({"commandTimeout": 86_401}, "commandTimeout"),
    ({"commandTimeout": -5}, "commandTimeout"),
    ({"maxOutputBytes": 0}, "maxOutputBytes"),
    ({"shell": "zsh"}, "shell"),
])
def test_bad_values_are_sys_1007(client: httpx.Client, params: dict[str, Any],
                                 field: str) -> None:
    request = body()
    for name, value in params.items():
        if value is None:
            del request["params"][name]
        else:
            request["params"][name] = value
    error = error_of(client.put(EXEC, json=request), 503, "SYS.1007")
    assert field in error["details"]


def test_limits_are_inclusive(client: httpx.Client) -> None:
    for params in ({"command": "x" * 65_536}, {"commandTimeout": 86_400},
                   {"commandTimeout": 1}):
        assert client.put(EXEC, json=body(**params)).status_code == 200


def test_unknown_vm_is_sys_1007(client: httpx.Client) -> None:
    error = error_of(client.put(EXEC, json=body(vm="f" * 32)), 503, "SYS.1007")
    assert "f" * 32 in error["details"]


def test_missing_params_object_is_sys_1007(client: httpx.Client) -> None:
    error_of(client.put(EXEC, json={"systemTags": []}), 503, "SYS.1007")


@pytest.mark.parametrize("request_body", [
    {"params": {"vmInstanceUuid": VM_1.uuid, "platform": "Linux", "command": 5}},
    {"params": {"vmInstanceUuid": VM_1.uuid, "platform": "Linux", "command": "x",
                "commandTimeout": "soon"}},
    {"params": {"vmInstanceUuid": VM_1.uuid, "platform": "Linux", "command": "x",
                "commandTimeout": True}},
    {"params": {"vmInstanceUuid": VM_1.uuid, "platform": "Linux", "command": "x",
                "commandTimeout": 1.5}},
    {"params": {"vmInstanceUuid": VM_1.uuid, "platform": "Linux", "command": "x",
                "env": ["A=1"]}},
    {"params": "not an object"},
    {"params": {"vmInstanceUuid": VM_1.uuid, "platform": "Linux", "command": "x"},
     "systemTags": "x"},
    [1, 2],
])
def test_wrong_types_are_400(client: httpx.Client, request_body: Any) -> None:
    error_of(client.put(EXEC, json=request_body), 400, "SYS.1007")


@pytest.mark.parametrize("raw", [b"{nope", b"", b"null", b'{"params": {'])
def test_malformed_json_is_400(client: httpx.Client, raw: bytes) -> None:
    reply = client.put(EXEC, content=raw, headers={"Content-Type": "application/json"})
    error_of(reply, 400, "SYS.1007")


def test_stopped_vm_is_refused(client: httpx.Client) -> None:
    error = error_of(client.put(EXEC, json=body(vm=STOPPED.uuid)), 503, "VM.EXEC.1002")
    assert "Stopped" in error["details"]


def test_vm_with_agent_disabled_is_refused(client: httpx.Client) -> None:
    error = error_of(client.put(EXEC, json=body(vm=NO_QGA.uuid)), 503, "VM.EXEC.1004")
    assert "SetVmQga" in error["details"]


@pytest.mark.parametrize(("kind", "code"), [
    ("invalid", "SYS.1007"),
    ("unavailable", "VM.EXEC.1003"),
    ("stopped", "VM.EXEC.1002"),
    ("disabled", "VM.EXEC.1005"),
    ("setup", "VM.EXEC.1006"),
    ("lost", "VM.EXEC.1007"),
    ("nospace", "VM.EXEC.1009"),
])
def test_engine_errors_map_to_documented_codes(client: httpx.Client, kind: str,
                                               code: str) -> None:
    error_of(client.put(EXEC, json=body(f"raise {kind}")), 503, code)


def test_timeout_is_503_with_partial_output(client: httpx.Client) -> None:
    reply = client.put(EXEC, json=body("echo before\nsleep 5\necho after", commandTimeout=1))
    error = error_of(reply, 503, "VM.EXEC.1001")
    assert error["opaque"]["stdout"] == "before\n"
    assert error["opaque"]["timedOut"] is True
    assert error["opaque"]["stream"] == "standardStream: before, errorStream: "


def test_unknown_paths_and_methods_answer_in_zstack_format(client: httpx.Client) -> None:
    error_of(client.get("/zstack/v1/no-such-api"), 404, "SYS.1008")
    error_of(client.get("/nothing/here"), 404, "SYS.1008")
    error_of(client.delete(EXEC), 405, "SYS.1008")


def test_exec_needs_a_session(server: RunningServer) -> None:
    with server.client(authenticated=False) as anonymous:
        error_of(anonymous.put(EXEC, json=body()), 400, "SYS.1007")
        error_of(anonymous.put(EXEC, json=body(), headers={"Authorization": "OAuth " + "1" * 32}),
                 503, "ID.1001")


def test_never_204_health_and_docs_without_auth(server: RunningServer) -> None:
    with server.client(authenticated=False) as anonymous:
        assert anonymous.get("/health").json()["status"] == "ok"
        assert anonymous.get("/docs").status_code == 200
        spec = anonymous.get("/openapi.json").json()
    assert EXEC in spec["paths"]
    statuses = {status for path in spec["paths"].values() for op in path.values()
                for status in op.get("responses", {})}
    assert "204" not in statuses


def test_stdin_as_base64_reaches_the_command_and_comes_back_exactly(
        client: httpx.Client) -> None:
    data = bytes(range(256))
    reply = client.put(EXEC, json=body("cat", stdinBase64=base64.b64encode(data).decode()))
    assert reply.status_code == 200, reply.text
    assert base64.b64decode(reply.json()["stdoutBase64"]) == data
    assert "stderrBase64" not in reply.json()


@pytest.mark.parametrize(("params", "says"), [
    ({"stdin": "a", "stdinBase64": "YQ=="}, "not both"),
    ({"stdinBase64": "not base64!"}, "not base64"),
    ({"stdinBase64": "é"}, "not base64"),
    ({"outputEncoding": "hex"}, "outputEncoding"),
])
def test_bad_stdin_or_output_encoding_is_sys_1007(client: httpx.Client, params: dict[str, Any],
                                                  says: str) -> None:
    error = error_of(client.put(EXEC, json=body("cat", **params)), 503, "SYS.1007")
    assert says in error["details"], error
