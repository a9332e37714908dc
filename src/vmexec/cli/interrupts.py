"""Ctrl-C while a command runs in guests: the first press cancels it there, the second detaches.

The work (submit, then follow to the end) runs as a task of its own under :meth:`CtrlC.guard`:

- a press before anything was sent to the server stops the work: nothing runs anywhere;
- the first press once the work began submitting cancels the job on the server (right after
  the submitting request returned, when it is still under way: the job's uuid is chosen by the
  client, so it is known before), and the work goes on following it to its (cancelled) end;
- the next press detaches: the work stops here, the job goes on (being cancelled) there.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from vmexec.client import ClientError

T = TypeVar("T")


class Interrupted(Exception):
    """The work was stopped by Ctrl-C: before it submitted anything, or by a detach
    (``detached``: the job goes on on the server)."""

    def __init__(self, *, detached: bool) -> None:
        self.detached = detached
        super().__init__("detached" if detached else "interrupted")


def note(message: str) -> None:
    """A short line for the user on stderr, between the command's own output."""
    sys.stderr.flush()
    print(f"vmexec: {message}", file=sys.stderr, flush=True)


class CtrlC:
    """Ctrl-C handling for one job; ``cancel`` cancels it on the server; ``what`` names it
    (``execution UUID``, ``run UUID``: a detach tells how to follow it by its last word)."""

    def __init__(self, cancel: Callable[[], Awaitable[object]], *, what: str) -> None:
        self._cancel = cancel
        self._what = what
        self.presses = 0
        #: Set by the work when it starts sending the job's submitting request.
        self.submitting = False
        #: Set by the work once the submitting request succeeded.
        self.submitted = asyncio.Event()
        self._cancel_task: asyncio.Task[None] | None = None

    @property
    def cancelled(self) -> bool:
        """Whether a cancel of the job was asked for."""
        return self._cancel_task is not None

    async def guard(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` with this Ctrl-C handling. Raises Interrupted, and what ``work``
        raises."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(work)
        detached = False

        def on_sigint() -> None:
            nonlocal detached
            self.presses += 1
            if self.presses == 1 and self.submitting:
                note(f"cancelling {self._what} in the guest (Ctrl-C again to detach)")
                self._cancel_task = loop.create_task(self._cancel_when_submitted())
                return
            detached = self.submitting
            task.cancel()

        loop.add_signal_handler(signal.SIGINT, on_sigint)
        try:
            await asyncio.wait({task})
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            # The job ended (or we detach): a cancel still waiting on its reply is moot here.
            if self._cancel_task is not None and not self._cancel_task.done():
                self._cancel_task.cancel()
        if task.cancelled():
            if detached:
                note(f"detached from {self._what} (its cancel may still be under way). "
                     f"Follow it with:\n    vmexec logs {self._what.rsplit(' ', 1)[-1]} -f")
            raise Interrupted(detached=detached)
        return task.result()

    async def _cancel_when_submitted(self) -> None:
        await self.submitted.wait()
        try:
            await self._cancel()
        except ClientError as exc:
            note(f"could not cancel {self._what}: {exc}")
