"""When a run's first status poll goes out (issue 15: a trivial command cost three or four
polls, the first always too early): at the moment the guest's recent commands ended."""

from __future__ import annotations

from vmexec.execution.runs import EXIT_SAMPLES, FIRST_POLL_MAX, FIRST_POLL_SHARE, Guest


def guest() -> Guest:
    # The platform and cleanup play no part in the timing of polls.
    return Guest(platform=None, run_dir="/tmp", cleanup=None)  # type: ignore[arg-type]


def test_a_guest_not_seen_yet_is_polled_at_once() -> None:
    assert guest().first_poll() == 0.0


def test_the_first_poll_comes_just_before_the_quickest_recent_end() -> None:
    g = guest()
    g.exits.extend([0.012, 0.009, 0.015])
    assert g.first_poll() == FIRST_POLL_SHARE * 0.009


def test_long_commands_do_not_delay_the_first_poll_of_a_quick_one_for_long() -> None:
    g = guest()
    g.exits.extend([3.0] * EXIT_SAMPLES)
    assert g.first_poll() == FIRST_POLL_MAX


def test_only_recent_ends_count() -> None:
    g = guest()
    g.exits.append(0.001)
    g.exits.extend([0.010] * EXIT_SAMPLES)
    assert g.first_poll() == FIRST_POLL_SHARE * 0.010
