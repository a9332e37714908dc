"""``vmexec serve`` as a user starts it: a real process on a free port, then a clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fixtures.server import free_port, sha512_hex

SERVE = [sys.executable, "-m", "vmexec.cli.main", "serve"]


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("VMEXEC_ADMIN_PASSWORD", "VMEXEC_ALLOW_DEFAULT_PASSWORD",
                        "VMEXEC_CONFIG", "VMEXEC_HOST")}
    return {**env, **values}


def _wait_healthy(process: subprocess.Popen[bytes], url: str) -> httpx.Response:
    deadline = time.monotonic() + 60
    while True:
        try:
            return httpx.get(f"{url}/health", timeout=2)
        except httpx.TransportError:
            assert process.poll() is None, "vmexec serve exited"
            assert time.monotonic() < deadline, "vmexec serve did not come up"
            time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> str:
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=30)[0].decode()
    # uvicorn shuts down cleanly, then re-raises the signal it caught as its exit status.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    return output


def test_vmexec_serve(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "serve.db"
    process = subprocess.Popen(
        [*SERVE, "--host", "127.0.0.1", "--port", str(port), "--db", f"sqlite:///{db}",
         "--log-level", "info"],
        env=_env(VMEXEC_ADMIN_PASSWORD="cli-secret"), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        health = _wait_healthy(process, url)
        assert health.json()["status"] == "ok"
        assert health.json()["defaultPassword"] is False
        login = httpx.put(f"{url}/zstack/v1/accounts/login", json={"logInByAccount": {
            "accountName": "admin", "password": sha512_hex("cli-secret")}})
        assert login.status_code == 200, login.text
        assert db.exists()
    finally:
        output = _stop(process)
    assert "default password" not in output


# --- issue 10: B11 (the default password is not silent), B9 (no tokens in logs) ------------
def test_serve_warns_about_the_default_password_and_logs_no_session_token(
        tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [*SERVE, "--host", "127.0.0.1", "--port", str(port),
         "--db", f"sqlite:///{tmp_path / 'serve.db'}", "--log-level", "info"],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        assert _wait_healthy(process, url).json()["defaultPassword"] is True
        login = httpx.put(f"{url}/zstack/v1/accounts/login", json={"logInByAccount": {
            "accountName": "admin", "password": sha512_hex("password")}})
        token = login.json()["inventory"]["uuid"]
        # ZStack's ValidateSession and LogOut carry the token in the path.
        valid = httpx.get(f"{url}/zstack/v1/accounts/sessions/{token}/valid")
        assert valid.json() == {"valid": True}
        assert httpx.delete(f"{url}/zstack/v1/accounts/sessions/{token}").status_code == 200
    finally:
        output = _stop(process)
    assert "still has the default password" in output
    assert "/zstack/v1/accounts/sessions/***/valid" in output  # the access log is on ...
    assert token not in output                                # ... and shows no token


def test_serve_refuses_a_public_address_with_the_default_password(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [*SERVE, "--host", "0.0.0.0", "--port", str(free_port()),
         "--db", f"sqlite:///{tmp_path / 'serve.db'}"],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:  # it listens: the refusal is missing
            process.kill()
            process.communicate()
    assert process.returncode == 2, (out, err)
    message = err.decode()
    assert "refusing to listen on 0.0.0.0" in message
    assert "--allow-default-password" in message and "vmexec passwd" in message
