"""Metrics after real commands on a lab VM (issue 13, "What to show": after a few commands the
counters and histograms move as expected, parsed with prometheus-client's own parser)."""

from __future__ import annotations

import httpx
import pytest
from fixtures.server import RunningServer, ServerFactory, sha512_hex

from api.test_exec import EXEC, error_of
from api.test_metrics import Samples, scrape, value
from vmexec.lab import LabVm

pytestmark = pytest.mark.vm


def test_metrics_move_with_commands_on_a_real_vm(server_factory: ServerFactory,
                                                 lab_vms: list[LabVm],
                                                 lab_variants: dict[str, LabVm]) -> None:
    server: RunningServer = server_factory(libvirt_uri=lab_vms[0].uri)
    vm = lab_vms[0]
    before = scrape(server)
    assert value(before, "vmexec_hosts", status="Connected") >= 1
    assert value(before, "vmexec_vms", state="Running") >= len(lab_vms)

    def run(command: str, on: LabVm = vm, **params: object) -> httpx.Response:
        with server.client() as client:
            return client.put(EXEC, json={"params": {
                "vmInstanceUuid": on.uuid, "platform": "Linux", "command": command, **params}})
    replies = [run("echo hi").json(), run("printf ab; printf cde >&2; exit 3").json()]
    assert [r["exitCode"] for r in replies] == [0, 3]
    replies.append(error_of(run("sleep 30", commandTimeout=1), 503, "VM.EXEC.1001")["opaque"])
    # guest-exec disabled in that VM's agent: a vmexec error, and the agent's refusal counted.
    error_of(run("echo hi", on=lab_variants["noexec"]), 503, "VM.EXEC.1005")
    refused = httpx.put(f"{server.url}/zstack/v1/accounts/login", json={"logInByAccount": {
        "accountName": "admin", "password": sha512_hex("not the password")}})
    error_of(refused, 503, "ID.1000")
    after = scrape(server)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)
    assert moved("vmexec_executions_total", state="Succeeded", error_code="") == 1
    assert moved("vmexec_executions_total", state="Failed", error_code="") == 1
    assert moved("vmexec_executions_total", state="TimedOut", error_code="") == 1
    assert moved("vmexec_executions_total", state="Failed", error_code="VM.EXEC.1005") == 1
    assert value(after, "vmexec_executions_in_flight") == 0
    assert moved("vmexec_execution_duration_seconds_count") == 4
    assert moved("vmexec_execution_engine_duration_seconds_count") == 3  # not the refused one
    # The timed-out command ran at least its timeout, in the guest and through the API.
    assert moved("vmexec_execution_engine_duration_seconds_sum") >= 1.0
    assert moved("vmexec_execution_duration_seconds_sum") >= 1.0
    assert _bucket_moved(before, after, "vmexec_execution_duration_seconds", "+Inf") == 4
    # What the commands wrote, as their replies show it (the killed shell may say so).
    for stream in ("stdout", "stderr"):
        written = sum(len(r[stream].encode()) for r in replies)
        assert moved("vmexec_execution_output_bytes_total", stream=stream) == written
    assert replies[0]["stdout"] == "hi\n" and replies[1]["stderr"] == "cde"
    # Every command went to the agent as guest-exec, and its status was polled.
    assert moved("vmexec_agent_calls_total", method="guest-exec", error="") >= 3
    assert moved("vmexec_agent_calls_total", method="guest-exec-status", error="") >= 3
    assert moved("vmexec_agent_call_duration_seconds_count", method="guest-exec") >= 3
    assert moved("vmexec_agent_call_duration_seconds_sum", method="guest-exec") > 0
    assert moved("vmexec_api_calls_total", method="PUT", route=EXEC, status="200") == 2
    assert moved("vmexec_api_calls_total", method="PUT", route=EXEC, status="503") == 2
    refusals = {labels: n for (name, labels), n in after.items()
                if name == "vmexec_agent_calls_total" and ("error", "AgentCommandDisabled")
                in labels and n - before.get((name, labels), 0) > 0}
    assert refusals, "the agent's refusal of guest-exec was not counted"
    assert moved("vmexec_login_failures_total") == 1


def _bucket_moved(before: Samples, after: Samples, histogram: str, le: str) -> float:
    name = f"{histogram}_bucket"
    return value(after, name, le=le) - value(before, name, le=le)
