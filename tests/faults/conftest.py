"""Fault-suite wiring: a lab instance of its own (so pausing, freezing and destroying VMs never
touches the shared ``vmexec-lab-*`` VMs), and a record of which fault cases ran, printed at the
end of the session."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from vmexec.lab import Lab, LabVm
from vmexec.lab.paths import DEFAULT_PREFIX

#: Cases run in this session, one line each, for the terminal summary.
CASES: list[str] = []


def _progress(message: str) -> None:
    print(f"fault lab: {message}", file=sys.stderr)


@pytest.fixture(scope="session")
def fault_lab() -> Iterator[Lab]:
    """Lab ``<prefix>-faults``: VMs 1 and 2 are paused, frozen and see libvirtd restart; VM 3
    is destroyed (and removed after each test that does so). With CI=true the session removes
    them all at its end."""
    base = os.environ.get("VMEXEC_LAB_PREFIX") or DEFAULT_PREFIX
    lab = Lab(f"{base}-faults", progress=_progress)
    yield lab
    if os.environ.get("CI", "").lower() == "true":
        lab.down(stop_daemons=False)


@pytest.fixture(scope="session")
def fault_vms(fault_lab: Lab) -> list[LabVm]:
    """Two running VMs of the fault lab, agents answering."""
    return fault_lab.up(2)


@pytest.fixture
def record_case() -> Iterator[list[str]]:
    """Append a line per fault case run; printed now (-s / -rA) and in the summary."""
    lines: list[str] = []
    yield lines
    for line in lines:
        print(f"fault case: {line}")
        CASES.append(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if CASES:
        terminalreporter.section("fault cases run")
        for line in CASES:
            terminalreporter.write_line(line)
