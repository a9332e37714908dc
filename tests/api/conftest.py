"""Fixtures for the API tests that need no guest: a real server over test doubles."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fixtures.server import RunningServer, ServerFactory

from api.doubles import FakeGuest, ScriptedExecutor, StaticInventory, StaticVm
from vmexec.agent.directory import AgentDirectory

#: The seed's example VM.
VM_1 = StaticVm(uuid="fc022ba201c135d8809c5e02bf6bf156", name="vm_1")
STOPPED = StaticVm(uuid="0" * 31 + "2", name="stopped", state="Stopped")
NO_QGA = StaticVm(uuid="0" * 31 + "3", name="no-qga", qga_enabled=False)
VMS = [VM_1, STOPPED, NO_QGA]


def scripted(factory: ServerFactory, guest: FakeGuest) -> Callable[..., RunningServer]:
    """``start(**settings)``: a real server whose engine and inventory are test doubles."""
    def start(**values: object) -> RunningServer:
        def executor(agents: AgentDirectory) -> ScriptedExecutor:
            return ScriptedExecutor(agents, guest)
        return factory(executor=executor, inventory=lambda **_: StaticInventory(VMS), **values)
    return start


@pytest.fixture
def fake_guest() -> FakeGuest:
    return FakeGuest()


@pytest.fixture
def start_scripted(server_factory: ServerFactory,
                   fake_guest: FakeGuest) -> Callable[..., RunningServer]:
    """A scripted server of this test (for settings of its own, restarts, ...)."""
    return scripted(server_factory, fake_guest)


@pytest.fixture(scope="module")
def server(module_server_factory: ServerFactory) -> RunningServer:
    """A scripted server shared by the test module."""
    return scripted(module_server_factory, FakeGuest())()
