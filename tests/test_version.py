"""``vmexec --version``: the installed distribution's version, the one pyproject.toml sets."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"


def test_vmexec_version_prints_the_package_version() -> None:
    done = subprocess.run([sys.executable, "-c", "from vmexec.cli.main import app; app()",
                           "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    expected = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    assert done.stdout == f"vmexec {expected}\n"
    assert version("vmexec") == expected
