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


def test_vmexec_serve(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "serve.db"
    env = {**os.environ, "VMEXEC_ADMIN_PASSWORD": "cli-secret"}
    process = subprocess.Popen(
        [sys.executable, "-m", "vmexec.cli.main", "serve", "--host", "127.0.0.1",
         "--port", str(port), "--db", f"sqlite:///{db}", "--log-level", "info"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = ""
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, "vmexec serve exited"
                assert time.monotonic() < deadline, "vmexec serve did not come up"
                time.sleep(0.2)
        assert health.json()["status"] == "ok"
        login = httpx.put(f"{url}/zstack/v1/accounts/login", json={"logInByAccount": {
            "accountName": "admin", "password": sha512_hex("cli-secret")}})
        assert login.status_code == 200, login.text
        assert db.exists()
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    # uvicorn shuts down cleanly, then re-raises the signal it caught as its exit status.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
