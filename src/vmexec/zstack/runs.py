"""Runs on the wire: their states, API names, and the ``maxConcurrency`` / ``maxErrors`` limits.

A limit is a count (``10``) or a percentage of the run's targets (``"10%"``), as in AWS SSM's
``MaxConcurrency`` / ``MaxErrors``; it is resolved once, against the number of targets, when the
run starts. A concurrency percentage rounds up (``"10%"`` of 5 targets is 1: a run always
makes progress); an error percentage rounds down (``"10%"`` of 5 targets is 0: the first
failure stops the run), so neither ever allows more than the percentage says.
"""

from __future__ import annotations

import enum
import math
import re

#: The job API names of runs (the API a run's job is recorded under, and the others).
API = "StartGuestVmCommandRun"
CANCEL_ACTION = "cancelGuestVmCommandRun"

#: The most targets one run may have: a run's targets are resolved and recorded at once, so
#: this bounds the work and memory one request can ask for.
MAX_TARGETS = 10_000
DEFAULT_MAX_CONCURRENCY = 50
DEFAULT_MAX_ERRORS = 0


class RunState(enum.StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


class TargetState(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"
    CANCELLED = "Cancelled"
    SKIPPED = "Skipped"

    @property
    def ended(self) -> bool:
        return self not in (TargetState.PENDING, TargetState.RUNNING)

    @property
    def failed(self) -> bool:
        """Counts against ``maxErrors``: it ran (or was to run) and did not succeed."""
        return self in (TargetState.FAILED, TargetState.TIMED_OUT, TargetState.CANCELLED)


class LimitError(ValueError):
    """A limit that cannot be read or is out of its range (the message says which)."""


_PERCENT = re.compile(r"^\s*(\d{1,3})\s*%\s*$")
_COUNT = re.compile(r"^\s*(\d{1,9})\s*$")


def _parse(name: str, value: int | str, *, minimum: int) -> tuple[int, bool]:
    """``(number, is_percentage)``. Raises LimitError."""
    if isinstance(value, bool):
        raise LimitError(f"{name} must be a number or a percentage such as \"10%\", got {value}")
    if isinstance(value, int):
        number, percent = value, False
    elif match := _PERCENT.match(value):
        number, percent = int(match.group(1)), True
    elif match := _COUNT.match(value):
        number, percent = int(match.group(1)), False
    else:
        raise LimitError(f"{name} must be a number or a percentage such as \"10%\", "
                         f"got {value!r}")
    if percent and not minimum <= number <= 100:
        raise LimitError(f"{name} must be a percentage from {minimum}% to 100%, got {value!r}")
    if not percent and number < minimum:
        raise LimitError(f"{name} must be at least {minimum}, got {value!r}")
    return number, percent


def check_limits(max_concurrency: int | str, max_errors: int | str) -> None:
    """Check the limits' syntax and ranges before any target is resolved. Raises LimitError."""
    _parse("maxConcurrency", max_concurrency, minimum=1)
    _parse("maxErrors", max_errors, minimum=0)


def resolve_concurrency(value: int | str, targets: int) -> int:
    """How many targets may run at once. Raises LimitError."""
    number, percent = _parse("maxConcurrency", value, minimum=1)
    if percent:
        number = math.ceil(targets * number / 100)
    return max(1, min(number, targets))


def resolve_max_errors(value: int | str, targets: int) -> int:
    """How many failed targets the run tolerates (one more stops it). Raises LimitError."""
    number, percent = _parse("maxErrors", value, minimum=0)
    if percent:
        number = math.floor(targets * number / 100)
    return min(number, targets)
