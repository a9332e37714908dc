"""maxConcurrency / maxErrors: counts and percentages, resolved against the target count."""

from __future__ import annotations

import pytest

from vmexec.zstack.runs import (
    LimitError,
    check_limits,
    resolve_concurrency,
    resolve_max_errors,
)


@pytest.mark.parametrize(("value", "targets", "expected"), [
    (10, 3, 3), (1, 100, 1), ("5", 100, 5), ("10%", 5, 1), ("10%", 100, 10), ("15%", 10, 2),
    ("100%", 7, 7), (" 50 % ", 3, 2),
])
def test_concurrency(value: int | str, targets: int, expected: int) -> None:
    assert resolve_concurrency(value, targets) == expected


@pytest.mark.parametrize(("value", "targets", "expected"), [
    (0, 3, 0), (2, 100, 2), (5, 3, 3), ("10%", 5, 0), ("10%", 100, 10), ("15%", 10, 1),
    ("0%", 10, 0), ("100%", 4, 4),
])
def test_max_errors(value: int | str, targets: int, expected: int) -> None:
    assert resolve_max_errors(value, targets) == expected


@pytest.mark.parametrize(("concurrency", "errors", "words"), [
    (0, 0, "maxConcurrency must be at least 1"),
    (-3, 0, "maxConcurrency must be at least 1"),
    ("0%", 0, "maxConcurrency must be a percentage from 1%"),
    ("150%", 0, "to 100%"),
    ("ten", 0, "maxConcurrency must be a number or a percentage"),
    (True, 0, "maxConcurrency must be a number"),
    (1, -1, "maxErrors must be at least 0"),
    (1, "101%", "maxErrors must be a percentage from 0%"),
    (1, "5%%", "maxErrors must be a number or a percentage"),
])
def test_bad_limits(concurrency: int | str, errors: int | str, words: str) -> None:
    with pytest.raises(LimitError, match=words):
        check_limits(concurrency, errors)
