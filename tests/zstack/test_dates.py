"""ZStack's date form, written and read back."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from vmexec.zstack.dates import format_date, parse_date


@pytest.fixture
def utc_local_time() -> Iterator[None]:
    # format_date writes the server's local time; pin it so the expected strings are fixed.
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.mark.usefixtures("utc_local_time")
@pytest.mark.parametrize(("value", "text"), [
    (datetime(2024, 10, 17, 5, 43, 35, tzinfo=UTC), "Oct 17, 2024 5:43:35 AM"),
    (datetime(2019, 10, 9, 19, 37, 57, tzinfo=UTC), "Oct 9, 2019 7:37:57 PM"),
    (datetime(2024, 1, 1, 0, 0, 5, tzinfo=UTC), "Jan 1, 2024 12:00:05 AM"),
    (datetime(2024, 12, 31, 12, 30, 0, tzinfo=UTC), "Dec 31, 2024 12:30:00 PM"),
    (datetime(2024, 10, 17, 5, 43, 35), "Oct 17, 2024 5:43:35 AM"),  # naive = UTC
])
def test_format_matches_zstack(value: datetime, text: str) -> None:
    assert format_date(value) == text
    assert parse_date(text) == value.replace(tzinfo=UTC)


@pytest.mark.usefixtures("utc_local_time")
def test_parse_accepts_iso_and_plain_forms() -> None:
    expected = datetime(2024, 10, 17, 5, 43, 35, tzinfo=UTC)
    assert parse_date("2024-10-17T05:43:35Z") == expected
    assert parse_date("2024-10-17 05:43:35") == expected
    assert parse_date(" oct 17, 2024 5:43:35 am ") == expected
    assert parse_date("2024-10-17") == datetime(2024, 10, 17, tzinfo=UTC)


@pytest.mark.parametrize("text", ["yesterday", "Foo 17, 2024 5:43:35 AM",
                                  "Oct 17, 2024 13:43:35 PM", "1729143815"])
def test_parse_rejects_other_forms(text: str) -> None:
    with pytest.raises(ValueError, match="not a date"):
        parse_date(text)
