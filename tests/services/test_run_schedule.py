"""The run schedule: targets handed out in order, maxErrors, skip, cancel, the run's state."""

from __future__ import annotations

import pytest

from vmexec.services.run_schedule import Schedule, Target
from vmexec.zstack.runs import RunState, TargetState

S = TargetState


def _targets(n: int) -> list[Target]:
    return [Target(i, f"{i:032x}", f"vm-{i}") for i in range(n)]


def test_targets_are_handed_out_in_order_then_none() -> None:
    schedule = Schedule(_targets(3), max_errors=0)
    assert [schedule.next(), schedule.next()] == _targets(2)
    assert schedule.running == 2 and schedule.counts[S.PENDING] == 1
    assert schedule.outcome() is RunState.RUNNING
    schedule.ended(S.SUCCEEDED)
    assert schedule.next() == _targets(3)[2]
    assert schedule.next() is None
    schedule.ended(S.SUCCEEDED)
    schedule.ended(S.SUCCEEDED)
    assert schedule.done and schedule.outcome() is RunState.SUCCEEDED
    assert schedule.counts[S.SUCCEEDED] == 3


def test_the_failure_beyond_max_errors_stops_the_run() -> None:
    schedule = Schedule(_targets(5), max_errors=1)
    schedule.next(), schedule.next()
    assert schedule.ended(S.FAILED) is False  # one failure is tolerated
    assert schedule.next() is not None
    assert schedule.ended(S.TIMED_OUT) is True  # the second stops it
    assert schedule.stopped and schedule.next() is None
    assert schedule.counts[S.SKIPPED] == 2 and schedule.counts[S.PENDING] == 0
    assert schedule.ended(S.SUCCEEDED) is False  # the one still running ends normally
    assert schedule.done and schedule.outcome() is RunState.FAILED


def test_a_target_prepared_when_the_run_stopped_is_skipped() -> None:
    schedule = Schedule(_targets(2), max_errors=0)
    first, second = schedule.next(), schedule.next()
    assert first and second
    assert schedule.ended(S.FAILED)
    schedule.skipped()  # the second saw the stop before it started
    assert schedule.counts == {**{s: 0 for s in S}, S.FAILED: 1, S.SKIPPED: 1}
    assert schedule.outcome() is RunState.FAILED


def test_cancel_skips_the_pending_and_the_run_ends_cancelled() -> None:
    schedule = Schedule(_targets(4), max_errors=0)
    schedule.next()
    assert schedule.cancel() is True
    assert schedule.cancel() is False  # once
    assert schedule.next() is None and schedule.counts[S.SKIPPED] == 3
    assert schedule.outcome() is RunState.RUNNING  # one still runs
    schedule.ended(S.CANCELLED)
    assert schedule.outcome() is RunState.CANCELLED


def test_a_resumed_schedule_counts_what_ended_before() -> None:
    # After a restart: two ended (one failed), one recovered as running, one pending.
    schedule = Schedule(_targets(1), max_errors=1, ended=[S.SUCCEEDED, S.FAILED], running=1)
    assert schedule.failures == 1 and not schedule.stopped
    assert schedule.ended(S.FAILED) is True
    assert schedule.counts[S.SKIPPED] == 1


def test_a_resumed_schedule_past_max_errors_starts_nothing() -> None:
    schedule = Schedule(_targets(2), max_errors=0, ended=[S.FAILED])
    assert schedule.stopped and schedule.next() is None
    assert schedule.done and schedule.outcome() is RunState.FAILED


@pytest.mark.parametrize("state", [S.PENDING, S.RUNNING, S.SKIPPED])
def test_a_started_target_cannot_end_pending_running_or_skipped(state: TargetState) -> None:
    schedule = Schedule(_targets(1), max_errors=0)
    schedule.next()
    with pytest.raises(ValueError, match="cannot end"):
        schedule.ended(state)
