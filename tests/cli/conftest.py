"""Fixtures of the CLI tests: a real server on loopback (``fixtures.server``) that manages the
session's lab VMs, and CLIs (``cli.runner.Cli``) pointed at it.

- ``server``: one real server per test module (temp SQLite; lab VMs visible).
- ``cli``: a fresh, logged-out CLI with a config dir of its own.
- ``logged_in``: a CLI that ran ``vmexec login`` once for the module.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.server import RunningServer, ServerFactory

from cli.runner import Cli
from vmexec.lab import LabVm


@pytest.fixture(scope="module")
def server(module_server_factory: ServerFactory, lab_vms: list[LabVm]) -> RunningServer:
    return module_server_factory()


@pytest.fixture
def cli(server: RunningServer, tmp_path: Path) -> Cli:
    return Cli(server.url, tmp_path / "config")


@pytest.fixture(scope="module")
def logged_in(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    cli = Cli(server.url, tmp_path_factory.mktemp("config"))
    cli.login()
    return cli
