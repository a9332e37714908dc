"""When a run's first status poll goes out (issue 15: a trivial command cost three or four
polls, the first always too early): when the agent would look just as the guest's recent
commands ended.

The learning once took the *sending* time of the last poll that found a run running as the
end's bound: a first poll sent at once always found the run running, so the bound stayed at
zero and every run paid a poll too early. It now learns the middle of the polls (when the agent
looked) and the middle of the interval in which the run ended."""

from __future__ import annotations

import pytest

from vmexec.execution.runs import EXIT_SAMPLES, FIRST_POLL_MAX, Guest


def guest() -> Guest:
    # The platform and cleanup play no part in the timing of polls.
    return Guest(platform=None, run_dir="/tmp", cleanup=None)  # type: ignore[arg-type]


def test_a_guest_not_seen_yet_is_polled_at_once() -> None:
    assert guest().first_poll() == 0.0


def test_a_run_found_running_at_once_still_teaches_when_it_ended() -> None:
    # The old rule's trap: the first poll went out at 0 and found it running at 1 ms; the run
    # ended between that look and the next (at 21 ms). The next first poll is not at 0.
    g = guest()
    g.polled(0.0, 0.002)
    g.ended(running_at=0.001, ended_at=0.021)
    assert g.first_poll() == pytest.approx(0.011 - 0.001)


def test_the_first_poll_is_sent_half_a_round_trip_before_the_expected_end() -> None:
    g = guest()
    for _ in range(4):
        g.polled(0.0, 0.004)
    g.ended(running_at=0.008, ended_at=0.012)
    assert g.first_poll() == pytest.approx(0.010 - 0.002)


def test_a_first_poll_that_finds_the_end_comes_sooner_next_time() -> None:
    g = guest()
    g.ended(running_at=None, ended_at=0.010)  # ended before it: how long before, unknown
    assert g.first_poll() == pytest.approx(0.005)
    g.ended(running_at=None, ended_at=0.005)
    assert g.first_poll() == pytest.approx(0.0025)


def test_early_ends_weigh_more_than_late_ones() -> None:
    # Being early costs a round trip and the poll spacing; being late costs only the lateness.
    g = guest()
    for end in (0.010, 0.011, 0.012, 0.030):
        g.ended(running_at=end, ended_at=end)
    assert g.first_poll() == pytest.approx(0.011)


def test_long_commands_do_not_delay_the_first_poll_of_a_quick_one_for_long() -> None:
    g = guest()
    for _ in range(EXIT_SAMPLES):
        g.ended(running_at=3.0, ended_at=3.1)
    assert g.first_poll() == FIRST_POLL_MAX


def test_only_recent_runs_count() -> None:
    g = guest()
    g.ended(running_at=None, ended_at=0.0)
    for _ in range(EXIT_SAMPLES):
        g.ended(running_at=0.010, ended_at=0.010)
    assert g.first_poll() == pytest.approx(0.010)
