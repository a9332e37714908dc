"""Throttling of password guessing: failed logins counted per account name and per client address.

Once ``max_failures`` failures of one account (or from one address) fall within ``window``
seconds, further attempts are refused without checking the password — they cost no argon2
work — until the oldest of those failures is ``window`` old. Refused attempts are not counted,
so the rightful user gets in once the window has passed, however long a guesser keeps trying.

Addresses are counted as given, but IPv6 ones by their /64 network: one host commonly holds
a whole /64, and would otherwise have more addresses to guess from than any limit.

An attempt counts as a failure from the moment it is admitted until it succeeds: concurrent
guesses cannot all slip in before the first one is recorded. A success clears the account's
failures, not the address's (a guesser must not reset its address by logging in to an
account of its own between guesses).

State is in memory (a restart forgets it) and bounded: at most ``max_keys`` accounts and as
many addresses are tracked; expired ones are dropped first, then the oldest.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


def address_key(address: str) -> str:
    """What failures from ``address`` are counted under: the address, or an IPv6 address's
    /64 network."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed.ipv4_mapped if isinstance(parsed, ipaddress.IPv6Address) else parsed)


class LoginThrottled(Exception):
    """Too many failed logins; the next attempt is admitted in ``retry_after`` seconds."""

    def __init__(self, retry_after: float, reason: str) -> None:
        super().__init__(f"{reason}; retry in {math.ceil(retry_after)}s")
        self.retry_after = retry_after
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ThrottleLimits:
    max_failures_per_account: int = 5
    max_failures_per_address: int = 20
    #: Seconds a failure counts for.
    window: float = 300.0
    max_keys: int = 10_000


class _Failures:
    """Failure times per key, the newest ``limit`` only (more are never needed)."""

    def __init__(self, limit: int, window: float, max_keys: int) -> None:
        self._limit = limit
        self._window = window
        self._max_keys = max_keys
        self._times: dict[str, deque[float]] = {}

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        times = self._times.get(key)
        if times is None or len(times) < self._limit:
            return 0.0
        return max(0.0, times[0] + self._window - now)

    def add(self, key: str, now: float) -> None:
        times = self._times.pop(key, None)
        if times is None:
            times = deque(maxlen=self._limit)
            self._make_room(now)
        times.append(now)
        self._times[key] = times  # re-inserted: the dict's order is the order of last use

    def remove(self, key: str, at: float) -> None:
        times = self._times.get(key)
        if times is not None and at in times:
            times.remove(at)

    def clear(self, key: str) -> None:
        self._times.pop(key, None)

    def _make_room(self, now: float) -> None:
        if len(self._times) < self._max_keys:
            return
        for key in [k for k, t in self._times.items() if not t or t[-1] + self._window <= now]:
            del self._times[key]
        while len(self._times) >= self._max_keys:
            del self._times[next(iter(self._times))]


@dataclass(slots=True)
class LoginAttempt:
    """An admitted attempt, counted as a failure until :meth:`succeeded` is called."""

    _throttle: LoginThrottle
    account: str
    address: str | None
    at: float
    _done: bool = field(default=False)

    def succeeded(self) -> None:
        """The password was right: forget the account's failures and this attempt."""
        if not self._done:
            self._done = True
            self._throttle._succeeded(self)

    def failed(self) -> None:
        """The password was wrong: the attempt stays counted (and in :attr:`failures`)."""
        if not self._done:
            self._done = True
            self._throttle.failures += 1


class LoginThrottle:
    """Admits or refuses login attempts (see the module doc). Not thread-safe: use it from
    one event loop."""

    def __init__(self, limits: ThrottleLimits | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or ThrottleLimits()
        self._clock = clock
        self._accounts = _Failures(self.limits.max_failures_per_account, self.limits.window,
                                   self.limits.max_keys)
        self._addresses = _Failures(self.limits.max_failures_per_address, self.limits.window,
                                    self.limits.max_keys)
        #: Attempts with a wrong password since start (for metrics).
        self.failures = 0
        #: Attempts refused unchecked since start, by what was throttled (for metrics).
        self.refusals = {"account": 0, "address": 0}

    def retry_after(self, account: str, address: str | None) -> float:
        """Seconds until an attempt on ``account`` from ``address`` is admitted (0: now)."""
        now = self._clock()
        return max(self._accounts.retry_after(account, now),
                   self._addresses.retry_after(address_key(address), now) if address else 0.0)

    def admit(self, account: str, address: str | None) -> LoginAttempt:
        """Admit an attempt to log in to ``account`` from ``address`` (None: unknown).

        Raises LoginThrottled when the account or the address failed too often lately.
        """
        now = self._clock()
        address = address_key(address) if address else None
        by_account = self._accounts.retry_after(account, now)
        by_address = self._addresses.retry_after(address, now) if address else 0.0
        if by_account or by_address:
            throttled = "account" if by_account >= by_address else "address"
            self.refusals[throttled] += 1
            reason = ("too many failed logins for this account" if throttled == "account"
                      else "too many failed logins from this address")
            raise LoginThrottled(max(by_account, by_address), reason)
        self._accounts.add(account, now)
        if address:
            self._addresses.add(address, now)
        return LoginAttempt(self, account, address, now)

    def _succeeded(self, attempt: LoginAttempt) -> None:
        self._accounts.clear(attempt.account)
        if attempt.address:
            self._addresses.remove(attempt.address, attempt.at)
