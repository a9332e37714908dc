"""Bytes in, bytes out, on real lab VMs: exec output and stdin byte-exact (issue 15's 3,000
random bytes that came back as 5,397), in the reply, the execution record and its events."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
from fixtures.server import RunningServer

from api.guest_helpers import WORKDIR, run, sha256
from api.test_exec import EXEC, body
from vmexec.lab import LabVm

pytestmark = pytest.mark.vm

def exact_stdout(result: dict[str, Any]) -> bytes:
    return base64.b64decode(result["stdoutBase64"]) if "stdoutBase64" in result \
        else str(result["stdout"]).encode()


# --- exec: output and stdin ----------------------------------------------------------------------
def test_random_bytes_on_stdout_come_back_exactly(lab_api: RunningServer, lab_vm: LabVm) -> None:
    # Issue 15: 3,000 random bytes came back as 5,397 (decoded, U+FFFD, re-encoded).
    data = os.urandom(3000)
    run(lab_api, lab_vm, f"cat > {WORKDIR}/random", stdinBase64=base64.b64encode(data).decode())
    result = run(lab_api, lab_vm, f"cat {WORKDIR}/random")
    assert result["exitCode"] == 0
    assert "stdoutBase64" in result and "stderrBase64" not in result
    assert sha256(base64.b64decode(result["stdoutBase64"])) == sha256(data)
    # The text is still there for ZStack's clients (U+FFFD for what is not UTF-8).
    assert result["stdout"] == data.decode(errors="replace")


def test_stdin_as_base64_reaches_the_command_exactly(lab_api: RunningServer, lab_vm: LabVm) -> None:
    data = os.urandom(200_000)  # more than one agent request: staged through a run file
    result = run(lab_api, lab_vm, "cat", stdinBase64=base64.b64encode(data).decode())
    assert sha256(exact_stdout(result)) == sha256(data)


def test_utf8_output_has_base64_only_on_request(lab_api: RunningServer, lab_vm: LabVm) -> None:
    plain = run(lab_api, lab_vm, "printf 'héllo'")
    assert plain["stdout"] == "héllo" and "stdoutBase64" not in plain
    asked = run(lab_api, lab_vm, "printf 'héllo'; printf x >&2", outputEncoding="base64")
    assert base64.b64decode(asked["stdoutBase64"]) == "héllo".encode()
    assert base64.b64decode(asked["stderrBase64"]) == b"x"


def test_the_execution_record_and_its_events_are_byte_exact(lab_api: RunningServer,
                                                            lab_vm: LabVm) -> None:
    data = os.urandom(5000)
    run(lab_api, lab_vm, f"cat > {WORKDIR}/random5k", stdinBase64=base64.b64encode(data).decode())
    with lab_api.client() as client:
        reply = client.put(EXEC, json=body(f"cat {WORKDIR}/random5k", vm=lab_vm.uuid),
                           headers={"X-Job-UUID": "b" * 32}, timeout=120)
        assert reply.status_code == 200, reply.text
        record = client.get("/zstack/v1/vm-instances/commands/executions/" + "b" * 32)
        inventory = record.json()["inventories"][0]
        assert base64.b64decode(inventory["stdoutBase64"]) == data
        asked = client.get("/zstack/v1/vm-instances/commands/executions/" + "b" * 32,
                           params={"outputEncoding": "base64"}).json()["inventories"][0]
        assert base64.b64decode(asked["stderrBase64"]) == b""
        events = client.get(f"/zstack/v1/vm-instances/commands/executions/{'b' * 32}/output")
    chunks = b""
    kind = None
    for line in events.text.splitlines():
        if line.startswith("event:"):
            kind = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and kind == "stdout":
            event = json.loads(line.split(":", 1)[1])
            chunks += base64.b64decode(event["base64"]) if "base64" in event \
                else event["text"].encode()
    assert chunks == data
