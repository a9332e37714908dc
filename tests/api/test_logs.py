"""Structured logs (issue 13, operators' view): one line per API call and one per execution,
JSON with ``--log-format json``, readable text by default, and never a secret: not a password
(clear or as its SHA-512), a session token, an access key's signature, webhook credentials."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fixtures.server import RunningServer, free_port, sha512_hex

from api.test_exec import EXEC, body
from api.test_exec_async import LOOPBACK_WEBHOOKS, WebhookReceiver
from vmexec.server import configure_logging

PASSWORD = "Clear-Text-Passw0rd"
ACCESS_KEY_HEADER = "ZStack AKIDVMEXECTEST00001:c2lnbmF0dXJlLW5vdC10by1iZS1sb2dnZWQ="
HOOK_PASSWORD = "hook-s3cret-pw"
VMEXEC = [sys.executable, "-c", "from vmexec.cli.main import app; app()"]


def secrets_of(session: str) -> list[str]:
    return [PASSWORD, sha512_hex(PASSWORD), session, ACCESS_KEY_HEADER.split(":")[1],
            HOOK_PASSWORD]


def calls_with_secrets(url: str, hook: str) -> str:
    """API calls that carry every kind of secret; returns the session token used."""
    login = httpx.put(f"{url}/zstack/v1/accounts/login", json={"logInByAccount": {
        "accountName": "admin", "password": sha512_hex(PASSWORD)}})
    assert login.status_code == 200, login.text
    session = str(login.json()["inventory"]["uuid"])
    wrong = httpx.put(f"{url}/zstack/v1/accounts/login", json={"logInByAccount": {
        "accountName": "admin", "password": sha512_hex(PASSWORD + "x")}})
    assert wrong.status_code == 503
    auth = {"Authorization": f"OAuth {session}"}
    assert httpx.get(f"{url}/zstack/v1/vm-instances", headers=auth).status_code == 200
    signed = httpx.get(f"{url}/zstack/v1/vm-instances",
                       headers={"Authorization": ACCESS_KEY_HEADER,
                                "Date": "Tue, 01 Dec 2026 09:30:00 Z"})
    assert signed.status_code in (200, 400, 503)
    httpx.post(f"{url}{EXEC}", json=body("echo hi"), headers={**auth, "X-Web-Hook": hook})
    valid = httpx.get(f"{url}/zstack/v1/accounts/sessions/{session}/valid")
    assert valid.json()["valid"] is True
    return session


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def hook_url(receiver: WebhookReceiver) -> str:
    return receiver.url.replace("http://", f"http://hookuser:{HOOK_PASSWORD}@")


def test_serve_logs_json_lines_without_secrets(tmp_path: Path,
                                               receiver: WebhookReceiver) -> None:
    port = free_port()
    sockets = tmp_path / "agents"
    sockets.mkdir()
    env = {**os.environ, "VMEXEC_ADMIN_PASSWORD": PASSWORD,
           "VMEXEC_LIBVIRT_URI": f"unix://{sockets}", "VMEXEC_HOST_TRANSPORTS": '["unix"]',
           "VMEXEC_WEBHOOK_ALLOW": json.dumps(LOOPBACK_WEBHOOKS)}
    # DEBUG: the most the server ever writes.
    process = subprocess.Popen(
        [*VMEXEC, "serve", "--port", str(port), "--db", f"sqlite:///{tmp_path / 'v.db'}",
         "--log-format", "json", "--log-level", "debug"],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        session = calls_with_secrets(url, hook_url(receiver))
        assert httpx.delete(f"{url}/zstack/v1/accounts/sessions/{session}").status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    api = [r for r in records if r.get("event") == "api"]
    login = [r for r in api if r["route"] == "/zstack/v1/accounts/login"]
    assert [(r["method"], r["status"], r["account"]) for r in login] == [
        ("PUT", 200, "admin"), ("PUT", 503, "admin")]
    assert login[1]["errorCode"] == "ID.1000"
    query = next(r for r in api if r["route"] == "/zstack/v1/vm-instances"
                 and r["status"] == 200)
    assert query["account"] == "admin" and query["client"] == "127.0.0.1"
    assert isinstance(query["durationMs"], float | int)
    logout = next(r for r in api if r["method"] == "DELETE")
    assert logout["route"] == "/zstack/v1/accounts/sessions/{session_uuid}"
    everything = out + err
    for secret in secrets_of(session):
        assert secret not in everything, f"{secret!r} was logged"


def _wait_ready(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            if httpx.get(f"{url}/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("vmexec serve did not become ready")


def lines_when(buffer: io.StringIO, ready: Callable[[list[str]], bool]) -> list[str]:
    """The buffer's lines once ``ready`` holds: the server writes a call's line after it sent
    the answer, from its own thread."""
    deadline = time.monotonic() + 30
    while not ready(lines := buffer.getvalue().splitlines()):
        assert time.monotonic() < deadline, lines
        time.sleep(0.02)
    return lines


@pytest.fixture
def captured() -> Iterator[Callable[[str], io.StringIO]]:
    """``capture(format)``: the server's log lines, as ``vmexec serve`` formats them, into a
    buffer (the root logger's handlers are restored afterwards)."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level

    def capture(log_format: str) -> io.StringIO:
        buffer = io.StringIO()
        configure_logging("info", log_format, buffer)  # type: ignore[arg-type]
        return buffer
    yield capture
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved:
        root.addHandler(handler)
    root.setLevel(level)


def test_an_execution_is_one_json_line_with_its_fields(
        start_scripted: Callable[..., RunningServer], receiver: WebhookReceiver,
        captured: Callable[[str], io.StringIO]) -> None:
    server = start_scripted(admin_password=PASSWORD, webhook_allow=LOOPBACK_WEBHOOKS)
    buffer = captured("json")
    session = calls_with_secrets(server.url, hook_url(receiver))
    assert receiver.arrived.wait(30)  # delivered, with the credentials as basic auth
    with server.client() as client:
        reply = client.put(EXEC, json=body("echo out\necho errs >&2\nexit 4"),
                           headers={"X-Job-UUID": "ab" * 16})
        assert reply.json()["exitCode"] == 4
    lines = lines_when(buffer, lambda lines: sum(
        '"event": "execution"' in line for line in lines) == 2 and any(
        f'"route": "{EXEC}"' in line and '"status": 200' in line for line in lines) and any(
        '"logger": "httpx"' in line for line in lines))  # the webhook's delivery, logged
    records = [json.loads(line) for line in lines]
    executions = [r for r in records if r.get("event") == "execution"]
    assert len(executions) == 2
    line = executions[-1]
    assert line | {"durationMs": 0, "engineMs": 0, "accountUuid": ""} == {
        **line, "execution": "ab" * 16, "vm": body()["params"]["vmInstanceUuid"],
        "account": "admin", "state": "Failed", "exitCode": 4, "errorCode": None,
        "stdoutBytes": len("out\n"), "stderrBytes": len("errs\n"), "run": None,
        "durationMs": 0, "engineMs": 0, "accountUuid": ""}
    assert line["logger"] == "vmexec.execution" and line["level"] == "INFO"
    for secret in secrets_of(session):
        assert secret not in buffer.getvalue(), f"{secret!r} was logged"


def test_text_lines_are_readable(start_scripted: Callable[..., RunningServer],
                                 captured: Callable[[str], io.StringIO]) -> None:
    server = start_scripted()
    buffer = captured("text")
    with server.client() as client:
        assert client.put(EXEC, json=body("echo hi")).status_code == 200
    call = f" vmexec.api: PUT {EXEC} 200 "
    lines = lines_when(buffer, lambda lines: any(call in line for line in lines))
    api = next(line for line in lines if call in line)
    assert "account=admin" in api and "client=127.0.0.1" in api
    execution = next(line for line in lines if " vmexec.execution: " in line)
    assert "state=Succeeded" in execution and "exitCode=0" in execution
    assert not any(line.lstrip().startswith("{") for line in lines)
