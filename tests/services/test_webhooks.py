"""The webhook destination policy and URL redaction (issue 10, B12). Names are resolved by
the machine's real resolver (``localhost`` only: nothing leaves the machine)."""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import ValidationError

from vmexec.config import Settings
from vmexec.services.webhooks import (
    DestinationPolicy,
    WebhookRefused,
    check,
    parse_destination,
    redact,
)

DEFAULT = DestinationPolicy()


@pytest.mark.parametrize(("address", "why"), [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"), ("64:ff9b::7f00:1", "loopback"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("169.254.169.254", "metadata"), ("fd00:ec2::254", "metadata"),
    ("100.100.100.200", "metadata"), ("::ffff:169.254.169.254", "metadata"),
    ("169.254.3.4", "link-local"), ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("255.255.255.255", "broadcast"),
])
def test_refused_by_default(address: str, why: str) -> None:
    refusal = DEFAULT.refusal(ipaddress.ip_address(address))
    assert refusal is not None and why in refusal


@pytest.mark.parametrize("address", ["93.184.216.34", "10.1.2.3", "192.168.1.1",
                                     "2001:db8::1", "fd12::1"])
def test_other_addresses_are_allowed_by_default(address: str) -> None:
    assert DEFAULT.refusal(ipaddress.ip_address(address)) is None


def test_allow_and_deny_lists() -> None:
    policy = DestinationPolicy.from_settings(allow=["127.0.0.1/32", "10.9.0.0/16"],
                                             deny=["10.0.0.0/8"])
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("127.0.0.2")) is not None
    assert policy.refusal(ipaddress.ip_address("10.9.1.1")) is None
    assert "webhook_deny" in str(policy.refusal(ipaddress.ip_address("10.1.1.1")))
    assert policy.refusal(ipaddress.ip_address("169.254.169.254")) is not None


async def test_names_are_judged_by_what_they_resolve_to() -> None:
    with pytest.raises(WebhookRefused, match=r"localhost resolves to 127\.0\.0\.1, a loopback"):
        await check("http://localhost:9/cb", DEFAULT)
    by_name = DestinationPolicy.from_settings(allow=["LOCALHOST."])
    destination = await check("https://u%40x:p%3Aw@localhost:8443/cb?q=1", by_name)
    assert destination.addresses[0] == ipaddress.ip_address("127.0.0.1")
    # Sent to the address that was checked, with the URL's name as Host and TLS name.
    assert destination.pinned_url(destination.addresses[0]) == "https://127.0.0.1:8443/cb?q=1"
    assert destination.host_header == "localhost:8443"
    assert destination.credentials == ("u@x", "p:w")


@pytest.mark.parametrize("url", ["ftp://x/y", "not a url", "http://", "http://[::1/"])
async def test_urls_that_cannot_be_used(url: str) -> None:
    with pytest.raises(WebhookRefused):
        await check(url, DEFAULT)


@pytest.mark.parametrize(("url", "shown"), [
    ("http://user:pw@host:81/p?token=t", "http://***@host:81/p?***"),
    ("https://host/p", "https://host/p"),
    ("http://user@[::1]:8/x#frag", "http://***@[::1]:8/x"),
])
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_settings_refuse_bad_entries() -> None:
    assert parse_destination("Hooks.Example.com") == "hooks.example.com"
    with pytest.raises(ValidationError, match="webhook_allow"):
        Settings(webhook_allow=["not a host!"])
    with pytest.raises(ValidationError, match="webhook_deny"):
        Settings(webhook_deny=["hooks.example.com"])  # names cannot be denied reliably
    assert Settings(webhook_allow=["127.0.0.1/32", "hooks.example.com"]).webhook_allow
