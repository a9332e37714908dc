"""LoginThrottle with a clock of the test's own (issue 10, B10)."""

from __future__ import annotations

import pytest

from vmexec.services.login_throttle import LoginThrottle, LoginThrottled, ThrottleLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _throttle(clock: Clock, **limits: float) -> LoginThrottle:
    values = {"max_failures_per_account": 3, "max_failures_per_address": 5, "window": 60.0,
              **limits}
    return LoginThrottle(ThrottleLimits(**values), clock=clock)  # type: ignore[arg-type]


def test_an_account_is_refused_until_its_oldest_failure_leaves_the_window() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    for _ in range(3):
        throttle.admit("admin", "10.0.0.1")
        clock.now += 10   # failures at 1000, 1010, 1020
    with pytest.raises(LoginThrottled) as refused:
        throttle.admit("admin", "10.0.0.2")
    assert refused.value.retry_after == pytest.approx(1000 + 60 - clock.now)
    assert "for this account" in refused.value.reason
    clock.now = 1060.0
    throttle.admit("admin", "10.0.0.2").succeeded()   # the oldest failure has left


def test_refused_attempts_do_not_extend_the_lockout() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    for _ in range(3):
        throttle.admit("admin", None)
    for _ in range(50):
        clock.now += 1
        with pytest.raises(LoginThrottled):
            throttle.admit("admin", None)
    clock.now = 1060.0
    throttle.admit("admin", None)


def test_success_clears_the_account_not_the_address() -> None:
    clock = Clock()
    throttle = _throttle(clock, max_failures_per_address=3, max_failures_per_account=10)
    throttle.admit("victim", "10.0.0.9")
    throttle.admit("victim", "10.0.0.9")
    throttle.admit("mine", "10.0.0.9").succeeded()   # the guesser's own account
    throttle.admit("victim", "10.0.0.9")
    with pytest.raises(LoginThrottled) as refused:
        throttle.admit("victim", "10.0.0.9")
    assert "from this address" in refused.value.reason
    # The right password of an account forgets that account's failures.
    throttle = _throttle(clock)
    for _ in range(2):
        throttle.admit("admin", "10.0.0.1")
    throttle.admit("admin", "10.0.0.1").succeeded()
    for _ in range(3):
        throttle.admit("admin", "10.0.0.1")


def test_attempts_in_flight_count_as_failures() -> None:
    throttle = _throttle(Clock())
    pending = [throttle.admit("admin", None) for _ in range(3)]
    with pytest.raises(LoginThrottled):
        throttle.admit("admin", None)
    pending[0].succeeded()
    throttle.admit("admin", None)


def test_the_number_of_tracked_keys_is_bounded() -> None:
    clock = Clock()
    throttle = _throttle(clock, max_keys=100, max_failures_per_address=10**6)
    for i in range(1000):
        throttle.admit(f"user{i}", "10.0.0.1")
    assert len(throttle._accounts._times) <= 100


def test_ipv6_addresses_count_by_their_64_network() -> None:
    throttle = _throttle(Clock(), max_failures_per_address=2, max_failures_per_account=100)
    throttle.admit("a", "2001:db8:1:2::1")
    throttle.admit("b", "2001:db8:1:2:ffff::9")
    with pytest.raises(LoginThrottled):
        throttle.admit("c", "2001:db8:1:2::77")
    throttle.admit("d", "2001:db8:1:3::1")  # another /64
    throttle.admit("e", "::ffff:10.0.0.1")  # IPv4-mapped: the IPv4 address itself
    throttle.admit("f", "10.0.0.1")
    with pytest.raises(LoginThrottled):
        throttle.admit("g", "10.0.0.1")
