"""How status polls are spaced after one found the run running (issue 15: on an idle machine
a slow guest's round trip, 4 to 8 ms under TCG, was added to every trivial command's latency;
issue 16: under load, polls sent back to back were most of the engine's work)."""

from __future__ import annotations

import pytest

from vmexec.execution.waiting import FEW_RUNS, next_status_poll


def test_a_few_runs_poll_at_their_own_pace_after_the_reply() -> None:
    # Sent at 10.000, answered at 10.008 (a slow guest's round trip): the next poll comes
    # the interval after the reply, not a round trip after it.
    assert next_status_poll(10.0, 10.008, 0.002, in_flight=1) == pytest.approx(10.010)
    assert next_status_poll(10.0, 10.008, 0.002, in_flight=FEW_RUNS) == pytest.approx(10.010)


def test_many_runs_wait_at_least_a_round_trip_between_polls() -> None:
    assert next_status_poll(10.0, 10.008, 0.002, in_flight=FEW_RUNS + 1) == pytest.approx(
        10.016)
    # The interval still wins when it is the longer.
    assert next_status_poll(10.0, 10.001, 0.050, in_flight=500) == pytest.approx(10.051)
