"""Which target of a run starts next, and when a run stops: pure bookkeeping, no I/O.

:class:`Schedule` hands out pending targets in order, one per call, to the run's workers (at
most ``maxConcurrency`` of them, so that is how many run at once). It counts how targets end;
once more than ``max_errors`` have failed, or the run is cancelled, it hands out no more and
the pending ones are skipped. The caller records every change; the schedule only decides.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass

from vmexec.zstack.runs import RunState, TargetState


@dataclass(frozen=True, slots=True)
class Target:
    """One VM of a run, by its place in the run."""

    seq: int
    vm_uuid: str
    vm_name: str


class Schedule:
    """The pending targets of one run and the tally of how the others ended."""

    def __init__(self, pending: Iterable[Target], *, max_errors: int,
                 ended: Iterable[TargetState] = (), running: int = 0) -> None:
        self._pending = deque(pending)
        self._max_errors = max_errors
        self._counts: Counter[TargetState] = Counter(ended)
        self._counts[TargetState.PENDING] = len(self._pending)
        self._counts[TargetState.RUNNING] = running
        self._cancelled = False
        self._stopped = False
        if self.failures > max_errors:
            self._stop()

    # --- what the workers ask ------------------------------------------------------------------
    def next(self) -> Target | None:
        """The next target to start (now counted as running), or None: none left, or the run
        stopped."""
        if self._stopped or not self._pending:
            return None
        self._move(TargetState.PENDING, TargetState.RUNNING)
        return self._pending.popleft()

    def skipped(self) -> None:
        """A target handed out by :meth:`next` did not start after all (the run stopped while
        it was being prepared): it counts as skipped."""
        self._move(TargetState.RUNNING, TargetState.SKIPPED)

    def ended(self, state: TargetState) -> bool:
        """A running target ended in ``state``. True when this stopped the run (the failure
        that exceeds ``max_errors``): the caller then records the pending ones as skipped."""
        if not state.ended or state is TargetState.SKIPPED:
            raise ValueError(f"a started target cannot end {state}")
        self._move(TargetState.RUNNING, state)
        if not self._stopped and self.failures > self._max_errors:
            self._stop()
            return True
        return False

    def cancel(self) -> bool:
        """Start nothing more; the pending targets are skipped. False if already cancelled."""
        if self._cancelled:
            return False
        self._cancelled = True
        self._stop()
        return True

    # --- what it tells -------------------------------------------------------------------------
    @property
    def stopped(self) -> bool:
        """No further target starts (errors exceeded, or cancelled)."""
        return self._stopped

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def failures(self) -> int:
        return sum(n for state, n in self._counts.items() if state.failed)

    @property
    def running(self) -> int:
        return self._counts[TargetState.RUNNING]

    @property
    def counts(self) -> dict[TargetState, int]:
        """Targets per state (every state, zeros included)."""
        return {state: self._counts[state] for state in TargetState}

    @property
    def done(self) -> bool:
        return not self._pending and self.running == 0

    def outcome(self) -> RunState:
        """The run's state: Running until every target ended; then Cancelled if cancelled,
        Succeeded if every target succeeded, else Failed."""
        if not self.done:
            return RunState.RUNNING
        if self._cancelled:
            return RunState.CANCELLED
        total = sum(self._counts.values())
        if self._counts[TargetState.SUCCEEDED] == total:
            return RunState.SUCCEEDED
        return RunState.FAILED

    def _stop(self) -> None:
        self._stopped = True
        self._counts[TargetState.SKIPPED] += len(self._pending)
        self._counts[TargetState.PENDING] = 0
        self._pending.clear()

    def _move(self, source: TargetState, destination: TargetState) -> None:
        self._counts[source] -= 1
        self._counts[destination] += 1
