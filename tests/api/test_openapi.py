"""The OpenAPI document says what the server really accepts (C15): schemathesis found ``q=``
empty and ``{}`` on ``/actions`` valid by the schema and refused by the server."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fixtures.server import RunningServer

from api.conftest import VM_1
from api.openapi_document import openapi_document


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return openapi_document()


def _parameter(spec: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    [parameter] = [p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == name]
    return dict(parameter["schema"])


@pytest.mark.parametrize("path", ["/zstack/v1/vm-instances", "/zstack/v1/hosts"])
def test_query_parameters_say_what_the_parser_reads(spec: dict[str, Any], path: str) -> None:
    q = _parameter(spec, path, "q")
    assert (q["type"], q["maxItems"]) == ("array", 20)
    item = q["items"]
    assert (item["minLength"], item["maxLength"]) == (1, 1024)
    for text in ("", "name", "=x", "1a=x", "name is nul"):
        assert re.search(item["pattern"], text) is None, text
    for text in ("name=vm_1", "uuid~=%%!", "cpuNum>=2", "description is null", " a.b!?=x"):
        assert re.search(item["pattern"], text), text
    assert re.search(_parameter(spec, path, "limit")["pattern"], "ten") is None
    assert re.search(_parameter(spec, path, "fields")["pattern"], " , ") is None


def test_an_action_body_names_exactly_the_known_action(spec: dict[str, Any]) -> None:
    body = spec["components"]["schemas"]["VmActionRequest"]
    assert body["required"] == ["setVmQga"]
    assert body["additionalProperties"] is False
    assert body["properties"]["setVmQga"] == {"$ref": "#/components/schemas/SetVmQgaParams"}


def test_unknown_fields_and_body_limits_are_documented(spec: dict[str, Any]) -> None:
    description = spec["info"]["description"]
    assert "Unknown fields" in description and "ignored" in description
    assert "64 KiB" in description and "413" in description


def test_unknown_fields_are_ignored_except_in_an_action_body(server: RunningServer) -> None:
    # Decided per route (C15): ZStack's servers ignore unknown fields, so vmexec does; an
    # action body's keys are the actions, so an unknown one there is refused.
    with server.client() as client:
        reply = client.put("/zstack/v1/vm-instances/commands/exec", json={
            "params": {"vmInstanceUuid": VM_1.uuid, "platform": "Linux", "command": "echo hi",
                       "someFutureField": {"x": 1}},
            "apiVersion": "5.0"})
        assert reply.status_code == 200, reply.text
        assert reply.json()["stdout"] == "hi\n"
        reply = client.put(f"/zstack/v1/vm-instances/{VM_1.uuid}/actions",
                           json={"setVmQga": {"enable": True}, "rebootVmInstance": {}})
        assert reply.status_code == 400, reply.text
        assert "one action per request" in reply.json()["error"]["details"]


def test_the_execution_apis_are_documented(spec: dict[str, Any]) -> None:
    executions = "/zstack/v1/vm-instances/commands/executions"
    output = spec["paths"][f"{executions}/{{uuid}}/output"]["get"]
    assert "text/event-stream" in output["responses"]["200"]["content"]
    assert output["responses"]["404"]
    [header] = [p for p in output["parameters"] if p["in"] == "header"]
    assert header["name"] == "Last-Event-ID"
    assert re.search(header["schema"]["pattern"], "12") and not re.search(
        header["schema"]["pattern"], "x")
    assert _parameter(spec, executions, "q")["maxItems"] == 20
    body = spec["components"]["schemas"]["ExecutionActionRequest"]
    assert body["required"] == ["cancelGuestVmCommand"]
    assert body["additionalProperties"] is False
    inventory = spec["components"]["schemas"]["GuestVmCommandExecutionInventory"]
    assert {"uuid", "vmInstanceUuid", "runUuid", "state", "exitCode", "stdoutBytes",
            "createDate"} <= set(inventory["properties"])
