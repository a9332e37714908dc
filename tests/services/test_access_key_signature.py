"""The pieces of a signed request (issue 13): the SDK's Date form in every zone notation Java's
``VV`` prints, and the string the SDK signs (the path after ``/zstack``, no query string)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from fixtures.zstack_sdk import sdk_date, signed_headers

from vmexec.services.access_keys import parse_sdk_date, sign, string_to_sign

MOMENT = datetime(2026, 12, 1, 9, 30, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("Tue, 01 Dec 2026 09:30:00 Z", MOMENT),
    ("Tue, 01 Dec 2026 09:30:00 GMT", MOMENT),
    ("Tue, 01 Dec 2026 09:30:00 UTC", MOMENT),
    ("Tue, 01 Dec 2026 17:30:00 Asia/Shanghai", MOMENT),
    ("Tue, 01 Dec 2026 04:30:00 America/New_York", MOMENT),
    ("Tue, 01 Dec 2026 11:30:00 +02:00", MOMENT),
    ("Tue, 01 Dec 2026 11:30:00 UTC+02:00", MOMENT),
    ("tue, 01 dec 2026 09:30:00 z", MOMENT),
])
def test_the_sdk_date_in_every_zone_notation(text: str, expected: datetime) -> None:
    parsed = parse_sdk_date(text)
    assert parsed is not None and parsed == expected


@pytest.mark.parametrize("text", [
    "", "yesterday", "Tue, 01 Dec 2026 09:30:00", "Tue, 01 Dec 2026 09:30:00 Mars/Olympus",
    "Tue, 32 Dec 2026 09:30:00 Z", "Tue, 01 Foo 2026 09:30:00 Z", "2026-12-01T09:30:00Z",
])
def test_unreadable_dates(text: str) -> None:
    assert parse_sdk_date(text) is None


def test_the_test_signer_writes_dates_the_server_reads() -> None:
    for zone in ("Z", "Asia/Shanghai", "Europe/Paris", "UTC"):
        assert parse_sdk_date(sdk_date(MOMENT, zone)) == MOMENT


def test_the_string_to_sign_is_the_sdks() -> None:
    date = "Tue, 01 Dec 2026 09:30:00 Z"
    assert string_to_sign("put", date, "/zstack/v1/vm-instances/commands/exec") == (
        "PUT\nTue, 01 Dec 2026 09:30:00 Z\n/v1/vm-instances/commands/exec")
    # The server's signature is the one the SDK (as redone in fixtures/zstack_sdk.py) sends.
    sent = signed_headers("GET", "/vm-instances", "KeyId0001", "SecretValue01", date=date)
    assert sent["Authorization"] == "ZStack KeyId0001:" + sign(
        "SecretValue01", "GET", date, "/zstack/v1/vm-instances")


def test_a_fixed_offset_is_its_offset() -> None:
    parsed = parse_sdk_date("Tue, 01 Dec 2026 09:30:00 -05:30")
    assert parsed is not None
    assert parsed.utcoffset() == -timedelta(hours=5, minutes=30)
    assert parsed.tzinfo is not None and isinstance(parsed.tzinfo, timezone)
