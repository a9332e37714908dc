"""When a run's first status poll goes out (issue 15: a trivial command cost three or four
polls, the first always too early): when the guest's recent commands were still running."""

from __future__ import annotations

from vmexec.execution.runs import EXIT_SAMPLES, FIRST_POLL_MAX, Guest


def guest() -> Guest:
    # The platform and cleanup play no part in the timing of polls.
    return Guest(platform=None, run_dir="/tmp", cleanup=None)  # type: ignore[arg-type]


def test_a_guest_not_seen_yet_is_polled_at_once() -> None:
    assert guest().first_poll() == 0.0


def test_the_first_poll_comes_when_recent_commands_were_still_running() -> None:
    g = guest()
    for last_running in (0.012, 0.009, 0.015):
        g.ended(first_poll=g.first_poll(), last_running=last_running)
    assert g.first_poll() == 0.009


def test_a_first_poll_that_finds_the_end_comes_sooner_next_time() -> None:
    g = guest()
    g.ended(first_poll=0.0, last_running=0.010)
    assert g.first_poll() == 0.010
    g.ended(first_poll=0.010, last_running=None)  # ended before it: how long before, unknown
    assert g.first_poll() == 0.005
    g.ended(first_poll=0.005, last_running=None)
    assert g.first_poll() == 0.0025


def test_long_commands_do_not_delay_the_first_poll_of_a_quick_one_for_long() -> None:
    g = guest()
    for _ in range(EXIT_SAMPLES):
        g.ended(first_poll=g.first_poll(), last_running=3.0)
    assert g.first_poll() == FIRST_POLL_MAX


def test_only_recent_runs_count() -> None:
    g = guest()
    g.ended(first_poll=0.0, last_running=0.001)
    for _ in range(EXIT_SAMPLES):
        g.ended(first_poll=g.first_poll(), last_running=0.010)
    assert g.first_poll() == 0.010
