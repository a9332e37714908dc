"""Guests that differ from the lab's default, made so on a real lab VM for the test's length:
no bash, and no writable /var/lib/vmexec."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fixtures.engine import new_executor, sh, target_of

from vmexec.execution.engine import Executor
from vmexec.execution.errors import GuestSetupError, SetupReason
from vmexec.execution.models import ExecRequest, Shell

pytestmark = pytest.mark.vm


@pytest.fixture
async def fresh_executor() -> AsyncIterator[Executor]:
    """An executor that has learned nothing about any guest yet."""
    async with new_executor(pool_size=4) as executor:
        yield executor


async def test_guest_without_bash_gets_plain_sh(executor: Executor, fresh_executor: Executor,
                                                lab_vms) -> None:
    vm = target_of(lab_vms[2])
    await sh(executor, vm, "mv /usr/bin/bash /usr/bin/bash.hidden")
    try:
        result = await fresh_executor.run(vm, ExecRequest('echo "${BASH_VERSION:-no bash}"'))
        assert result.stdout.text == "no bash\n"
        with pytest.raises(GuestSetupError) as info:
            await fresh_executor.run(vm, ExecRequest("true", shell=Shell.BASH))
        assert info.value.reason is SetupReason.INTERPRETER_MISSING
    finally:
        await sh(executor, vm, "mv /usr/bin/bash.hidden /usr/bin/bash")


async def test_unwritable_run_dir_falls_back(executor: Executor, fresh_executor: Executor,
                                             lab_vms) -> None:
    vm = target_of(lab_vms[2])
    # A file where the run directory should be: mkdir fails, as on a read-only /var.
    await sh(executor, vm, "mv /var/lib/vmexec /var/lib/vmexec.saved && : >/var/lib/vmexec")
    try:
        result = await fresh_executor.run(vm, ExecRequest("echo fine; echo err >&2; exit 2"))
        assert (result.stdout.text, result.stderr.text, result.exit_code) == (
            "fine\n", "err\n", 2)
        listing = await sh(executor, vm, f"ls /run/vmexec | grep -c {result.run_id} || true")
        assert listing != "0\n"  # its files are in the next directory of the list
    finally:
        await sh(executor, vm, "rm -f /var/lib/vmexec && mv /var/lib/vmexec.saved "
                               "/var/lib/vmexec")
