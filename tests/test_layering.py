"""The package layering holds: import-linter's contracts (pyproject.toml), and the client and
CLI load nothing of the server, so `pip install vmexec` (without the server extra) works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: What a client-only install does not have.
SERVER_MODULES = ("fastapi", "starlette", "sqlalchemy", "libvirt", "uvicorn", "alembic",
                  "argon2", "pydantic_settings", "vmexec.api", "vmexec.services",
                  "vmexec.execution", "vmexec.agent", "vmexec.hypervisor", "vmexec.db",
                  "vmexec.server", "vmexec.lab", "vmexec.config")


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_client_and_cli_import_nothing_of_the_server() -> None:
    probe = (
        "import sys, vmexec.client, vmexec.cli.main\n"
        f"loaded = [m for m in {SERVER_MODULES!r} if m in sys.modules]\n"
        "print(','.join(loaded))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == ""
