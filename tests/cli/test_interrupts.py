"""Ctrl-C while a job runs (``vmexec.cli.interrupts.CtrlC``), with real SIGINTs sent to this
process: before submitting it stops at once; the first press once submitting cancels the job
(only after the submitting request returned); the second detaches."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from vmexec.cli.interrupts import CtrlC, Interrupted


async def press_ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.sleep(0.05)  # the loop reads the signal and runs the handler


async def test_a_press_before_submitting_stops_the_work_and_cancels_nothing() -> None:
    cancels: list[str] = []

    async def cancel() -> None:
        cancels.append("cancel")

    ctrl_c = CtrlC(cancel, what="job")

    async def work() -> None:
        await press_ctrl_c()
        await asyncio.sleep(30)

    with pytest.raises(Interrupted) as caught:
        await ctrl_c.guard(work())
    assert not caught.value.detached
    assert cancels == []


async def test_the_first_press_cancels_once_submitted_and_the_work_sees_the_end() -> None:
    events: list[str] = []
    cancelled = asyncio.Event()

    async def cancel() -> None:
        events.append("cancel")
        cancelled.set()

    ctrl_c = CtrlC(cancel, what="job")

    async def work() -> str:
        ctrl_c.submitting = True
        await press_ctrl_c()  # while the submitting request is under way
        events.append("submitted")
        ctrl_c.submitted.set()
        await cancelled.wait()  # following the job to its (cancelled) end
        return "ended"

    assert await ctrl_c.guard(work()) == "ended"
    assert events == ["submitted", "cancel"]
    assert ctrl_c.cancelled and ctrl_c.presses == 1


async def test_the_second_press_detaches_while_the_cancel_is_slow(
        capsys: pytest.CaptureFixture[str]) -> None:
    async def slow_cancel() -> None:
        await asyncio.sleep(30)

    ctrl_c = CtrlC(slow_cancel, what="execution X")

    async def work() -> None:
        ctrl_c.submitting = True
        ctrl_c.submitted.set()
        await press_ctrl_c()
        await press_ctrl_c()
        await asyncio.sleep(30)

    with pytest.raises(Interrupted) as caught:
        await ctrl_c.guard(work())
    assert caught.value.detached
    assert "cancelling execution X in the guest (Ctrl-C again to detach)" in capsys.readouterr().err


async def test_the_handler_is_removed_afterwards() -> None:
    async def cancel() -> None:
        return None

    async def work() -> int:
        return 1

    assert await CtrlC(cancel, what="job").guard(work()) == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
