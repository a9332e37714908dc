"""Where webhooks may go, and how their URLs appear in logs and replies.

A webhook (``X-Web-Hook``) makes the server POST a command's output to a URL of the caller's
choice. Unchecked, that lets any session reach what only the server can reach: its own API,
services bound to loopback, the cloud's metadata service (credentials) on link-local
addresses. So a destination is refused when any address its host name resolves to is

- loopback (``127.0.0.0/8``, ``::1``), unspecified (``0.0.0.0/8``, ``::``: Linux delivers
  those to loopback), link-local (``169.254.0.0/16``, ``fe80::/10``), multicast or broadcast;
- a cloud metadata address (``169.254.169.254``, ``fd00:ec2::254``, ``100.100.100.200``);
- in the operator's ``webhook_deny`` networks (e.g. private ranges),

unless the operator allows it in ``webhook_allow``: a network that contains the address, or
the URL's host name itself. IPv4 addresses embedded in IPv6 ones (``::ffff:127.0.0.1``,
NAT64 ``64:ff9b::/96``) are judged as the IPv4 address.

The check runs when the webhook is given (refused up front) and again at each delivery, where
the request then goes to the very address that was checked (the ``Host`` header and TLS name
stay the URL's): a name that resolves elsewhere by then (DNS rebinding) gains nothing.

Credentials in a URL (``https://user:pw@host/``) are used for delivery and never logged or
returned: :func:`redact` is the only form of a URL that leaves this module.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import SplitResult, unquote, urlsplit

from vmexec.config import IPNetwork, parse_destination, parse_network
from vmexec.services.errors import InvalidValue

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_nets = ipaddress.ip_network
#: Refused unless allowed: (network, why).
DEFAULT_DENY: Final[tuple[tuple[IPNetwork, str], ...]] = (
    (_nets("169.254.169.254/32"), "a cloud metadata address"),
    (_nets("fd00:ec2::254/128"), "a cloud metadata address"),
    (_nets("100.100.100.200/32"), "a cloud metadata address"),
    (_nets("127.0.0.0/8"), "a loopback address"),
    (_nets("::1/128"), "a loopback address"),
    (_nets("0.0.0.0/8"), "an unspecified address (reaches this machine)"),
    (_nets("::/128"), "an unspecified address (reaches this machine)"),
    (_nets("169.254.0.0/16"), "a link-local address"),
    (_nets("fe80::/10"), "a link-local address"),
    (_nets("224.0.0.0/4"), "a multicast address"),
    (_nets("ff00::/8"), "a multicast address"),
    (_nets("255.255.255.255/32"), "the broadcast address"),
)
_NAT64 = _nets("64:ff9b::/96")


class WebhookRefused(InvalidValue):
    """The webhook's destination is not allowed, or its URL cannot be used (``message``
    shows the URL redacted)."""


def redact(url: str) -> str:
    """``url`` fit for logs and replies: credentials and the query string replaced by
    ``***`` (a query may carry a token as well)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return SplitResult(parts.scheme, netloc, parts.path, "***" if parts.query else "",
                       "").geturl()


def _unwrapped(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (mapped or NAT64), else the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    """Which webhook destinations are allowed (see the module doc)."""

    allow_networks: tuple[IPNetwork, ...] = ()
    allow_names: frozenset[str] = frozenset()
    deny: tuple[tuple[IPNetwork, str], ...] = field(default=DEFAULT_DENY)

    @classmethod
    def from_settings(cls, allow: Iterable[str] = (), deny: Iterable[str] = ()
                      ) -> DestinationPolicy:
        """The policy for ``webhook_allow`` / ``webhook_deny`` entries. Raises ValueError."""
        parsed = [parse_destination(entry) for entry in allow]
        return cls(
            allow_networks=tuple(p for p in parsed if not isinstance(p, str)),
            allow_names=frozenset(p for p in parsed if isinstance(p, str)),
            deny=DEFAULT_DENY + tuple((parse_network(e), "in webhook_deny") for e in deny))

    def refusal(self, address: IPAddress) -> str | None:
        """Why ``address`` is refused, or None when it is allowed."""
        for candidate in {address, _unwrapped(address)}:
            if any(candidate in network for network in self.allow_networks
                   if network.version == candidate.version):
                return None
        judged = _unwrapped(address)
        for network, why in self.deny:
            if network.version == judged.version and judged in network:
                return why
        return None


@dataclass(frozen=True, slots=True)
class Destination:
    """A checked webhook URL: the addresses to connect to (in order) and what to send."""

    url: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]

    def pinned_url(self, address: IPAddress) -> str:
        """The URL with its host replaced by ``address``, without credentials (they go in
        an ``Authorization`` header: :attr:`credentials`)."""
        parts = urlsplit(self.url)
        host = f"[{address}]" if address.version == 6 else str(address)
        return SplitResult(parts.scheme, f"{host}:{self.port}", parts.path, parts.query,
                           "").geturl()

    @property
    def credentials(self) -> tuple[str, str] | None:
        """``(user, password)`` from the URL, for HTTP basic authentication, if it has any."""
        parts = urlsplit(self.url)
        if parts.username is None:
            return None
        return unquote(parts.username), unquote(parts.password or "")

    @property
    def host_header(self) -> str:
        parts = urlsplit(self.url)
        default = 443 if parts.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def _split(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an http(s) URL. Raises WebhookRefused."""
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise WebhookRefused(f"X-Web-Hook[{redact(url)}] is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise WebhookRefused(f"X-Web-Hook[{redact(url)}] is not an http(s) URL")
    return parts.scheme, host.lower().rstrip("."), port or (443 if parts.scheme == "https"
                                                             else 80)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        # A scoped IPv6 address ("fe80::1%eth0") is judged without its scope.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


async def check(url: str, policy: DestinationPolicy) -> Destination:
    """Resolve ``url``'s host and check every address it has. Raises WebhookRefused (the
    message names the reason, the URL redacted)."""
    _scheme, host, port = _split(url)
    try:
        addresses = await _resolve(host, port)
    except OSError as exc:
        raise WebhookRefused(f"X-Web-Hook[{redact(url)}]: the host {host} cannot be "
                             f"resolved ({exc.strerror or exc})") from None
    if not addresses:
        raise WebhookRefused(f"X-Web-Hook[{redact(url)}]: the host {host} has no address")
    if host not in policy.allow_names:
        for address in addresses:
            why = policy.refusal(address)
            if why is not None:
                where = (f"{host} is {why}" if host == str(address)
                         else f"{host} resolves to {address}, {why}")
                raise WebhookRefused(f"X-Web-Hook[{redact(url)}] is refused: {where}; an "
                                     "operator may allow it with the setting webhook_allow")
    return Destination(url=url, host=host, port=port, addresses=tuple(addresses))

