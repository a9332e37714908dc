"""Helpers of the API tests on a lab VM's files (test_binary_output_vm, test_files_vm): the
directory they work in, a command run through the API, a digest."""

from __future__ import annotations

import hashlib
from typing import Any

from fixtures.server import RunningServer

from vmexec.api.routes.exec import PATH as EXEC
from vmexec.lab import LabVm

#: Where these tests put files in the guests (removed at the end).
WORKDIR = "/tmp/vmexec-bytes-test"


def run(server: RunningServer, vm: LabVm, script: str, **params: Any) -> dict[str, Any]:
    with server.client() as client:
        reply = client.put(EXEC, json={"params": {
            "vmInstanceUuid": vm.uuid, "platform": "Linux", "command": script,
            "commandTimeout": 60, **params}}, timeout=120)
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
