"""Which host URIs vmexec may connect to: parsed, then allowed explicitly.

A libvirt URI is more than an address: ``qemu+ext:///system?command=/path/prog`` runs a program
on the machine that opens it, ``?socket=`` / ``?keyfile=`` / ``?pkipath=`` name local files,
``?name=`` makes the *remote* libvirtd open any URI of the client's choosing. A URI that reaches
vmexec from a client (AddKVMHost) or from configuration is therefore parsed and allowed only in
these forms:

- ``local``  ``qemu:///system`` or ``qemu:///session``: this machine's libvirt;
- ``ssh``    ``qemu+ssh://[user@]host[:port]/system``: libvirt over SSH, the server's key;
- ``tls``    ``qemu+tls://host[:port]/system``;
- ``tcp``    ``qemu+tcp://host[:port]/system`` (unencrypted: trusted networks only);
- ``unix``   ``unix:///dir``: a directory of guest-agent sockets (:mod:`.sockets`).

Hosts are DNS names or IP addresses (no option-like ``-names``), users are plain login names,
and the query may only hold parameters that name no program or file: ``no_tty`` and
``no_verify`` (``0``/``1``, ssh; ``no_verify`` also tls) and ``mode`` (``auto``, ``direct``,
``legacy``). An operator may allow more parameter names (``extra_parameters``, e.g.
``keyfile``) and narrow the transports (``transports``). Percent-escapes, ``;``, fragments,
spaces and control characters are refused outright, so the URI libvirt reads is the one checked.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: Longest URI accepted (the database column holds 1024 characters).
MAX_URI_CHARS = 1024


class Transport(enum.StrEnum):
    LOCAL = "local"
    SSH = "ssh"
    TLS = "tls"
    TCP = "tcp"
    SOCKET_DIR = "unix"


#: The transports that leave this machine.
REMOTE_TRANSPORTS = frozenset({Transport.SSH, Transport.TLS, Transport.TCP})

_SCHEMES: Mapping[str, Transport] = {
    "qemu": Transport.LOCAL, "qemu+ssh": Transport.SSH, "qemu+tls": Transport.TLS,
    "qemu+tcp": Transport.TCP,
}
_PATHS = ("/system", "/session")
_FLAG = re.compile(r"[01]")
#: Parameters that name no program or file, with the values they may take, per transport.
_SAFE_PARAMETERS: Mapping[Transport, Mapping[str, re.Pattern[str]]] = {
    Transport.LOCAL: {"mode": re.compile(r"auto|direct|legacy")},
    Transport.SSH: {"no_tty": _FLAG, "no_verify": _FLAG,
                    "mode": re.compile(r"auto|direct|legacy")},
    Transport.TLS: {"no_verify": _FLAG},
    Transport.TCP: {},
}
# libvirt URIs: letters, digits and the few delimiters a valid URI of the forms above needs.
_LIBVIRT_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?\[\]@&=+,]*")
_LIBVIRT_URI = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+]*)://"
    r"(?:(?P<user>[^@/?]*)@)?"
    r"(?P<host>\[[^\]/?@]*\]|[^:/?@\[\]]*)"
    r"(?::(?P<port>[^/?]*))?"
    r"(?P<path>/[^?]*)?"
    r"(?:\?(?P<query>.*))?")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PARAMETER_NAME = re.compile(r"[a-z][a-z0-9_]*")


class HostUriRefused(ValueError):
    """A host URI that is malformed or not allowed; the message says which part and why."""


@dataclass(frozen=True, slots=True)
class HostUri:
    """A checked host URI: ``host`` is empty for local ones, ``path`` the directory for
    ``unix`` ones."""

    uri: str
    transport: Transport
    host: str = ""
    user: str | None = None
    port: int | None = None
    path: str = ""
    parameters: tuple[tuple[str, str], ...] = ()

    @property
    def remote(self) -> bool:
        return self.transport in REMOTE_TRANSPORTS


@dataclass(frozen=True, slots=True)
class HostUriPolicy:
    """What an operator allows: the transports, and parameter names beyond the safe ones."""

    transports: frozenset[Transport] = field(default_factory=lambda: frozenset(Transport))
    extra_parameters: frozenset[str] = frozenset()

    @classmethod
    def of(cls, transports: Iterable[str], extra_parameters: Iterable[str] = ()
           ) -> HostUriPolicy:
        """The policy from setting values. Raises ``ValueError`` for an unknown transport."""
        return cls(frozenset(Transport(t) for t in transports), frozenset(extra_parameters))

    def check(self, uri: str) -> HostUri:
        """``uri`` parsed, if this policy allows it.

        Raises:
            HostUriRefused: malformed, or a transport, host, path or parameter not allowed.
        """
        parsed = parse_host_uri(uri, self.extra_parameters)
        if parsed.transport not in self.transports:
            allowed = ", ".join(sorted(self.transports)) or "none"
            raise HostUriRefused(
                f"host URI {uri!r}: the {parsed.transport} transport is not allowed on this "
                f"server (allowed: {allowed}; setting host_transports)")
        return parsed


def parse_host_uri(uri: str, extra_parameters: Iterable[str] = ()) -> HostUri:
    """Parse ``uri`` as one of the forms in the module docstring.

    ``extra_parameters`` are query parameter names allowed besides the safe ones.

    Raises:
        HostUriRefused: anything else, with the reason.
    """
    if len(uri) > MAX_URI_CHARS:
        raise HostUriRefused(f"host URI is {len(uri)} characters long; at most "
                             f"{MAX_URI_CHARS} are allowed")
    if "://" not in uri:
        raise HostUriRefused(f"not a libvirt URI: {uri!r} (e.g. qemu+ssh://root@10.0.0.5/system, "
                             "or unix:///DIR for a directory of agent sockets)")
    if uri.startswith("unix://"):
        return _socket_dir(uri)
    return _libvirt(uri, frozenset(extra_parameters))


def _socket_dir(uri: str) -> HostUri:
    path = uri[len("unix://"):]
    if not path.startswith("/"):
        raise HostUriRefused(f"agent-socket directory must be an absolute path: {uri!r} "
                             "(want unix:///DIR)")
    if not path.isprintable() or "?" in path or "#" in path:
        raise HostUriRefused(f"agent-socket directory URI {uri!r} may hold no query, fragment "
                             "or control characters")
    return HostUri(uri=uri, transport=Transport.SOCKET_DIR, path=path)


def _libvirt(uri: str, extra_parameters: frozenset[str]) -> HostUri:
    if not _LIBVIRT_CHARS.fullmatch(uri):
        bad = sorted({ch for ch in uri if not _LIBVIRT_CHARS.fullmatch(ch)})
        raise HostUriRefused(
            f"host URI {uri!r} holds characters vmexec does not accept in libvirt URIs: "
            f"{''.join(bad)!r} (no percent-escapes, ';', '#', spaces or control characters)")
    match = _LIBVIRT_URI.fullmatch(uri)
    if match is None:
        raise HostUriRefused(f"not a libvirt URI: {uri!r} (e.g. qemu+ssh://root@10.0.0.5/system)")
    scheme = match["scheme"]
    transport = _SCHEMES.get(scheme)
    if transport is None:
        raise HostUriRefused(
            f"host URI {uri!r}: {scheme}:// is not supported; vmexec connects with "
            "qemu:///system, qemu+ssh://, qemu+tls://, qemu+tcp:// or unix:///DIR")
    host, user, port = match["host"], match["user"], match["port"]
    if transport is Transport.LOCAL:
        if host or user is not None or port is not None:
            raise HostUriRefused(f"host URI {uri!r}: qemu://HOST/ means TLS to HOST; write "
                                 "qemu+tls://HOST/system, or qemu:///system for this machine")
    else:
        if not host:
            raise HostUriRefused(f"host URI {uri!r} names no host")
        _check_host(uri, host)
        if user is not None and not _USER.fullmatch(user):
            raise HostUriRefused(f"host URI {uri!r}: {user!r} is not a valid user name")
    path = match["path"] or ""
    if path not in _PATHS:
        raise HostUriRefused(f"host URI {uri!r}: the path must be /system or /session, "
                             f"not {path or 'empty'!r}")
    return HostUri(uri=uri, transport=transport, host=host, user=user,
                   port=_port(uri, port), path=path,
                   parameters=_parameters(uri, transport, match["query"], extra_parameters))


def _check_host(uri: str, host: str) -> None:
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise HostUriRefused(f"host URI {uri!r}: {host!r} is not an IPv6 address") from None
        return
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise HostUriRefused(f"host URI {uri!r}: {host!r} is not a valid host name or address")


def _port(uri: str, port: str | None) -> int | None:
    if port is None:
        return None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise HostUriRefused(f"host URI {uri!r}: port {port!r} is not 1-65535")
    return int(port)


def _parameters(uri: str, transport: Transport, query: str | None,
                extra_parameters: frozenset[str]) -> tuple[tuple[str, str], ...]:
    if not query:
        return ()
    safe = _SAFE_PARAMETERS[transport]
    seen: dict[str, str] = {}
    for item in query.split("&"):
        name, equals, value = item.partition("=")
        if not equals or not _PARAMETER_NAME.fullmatch(name):
            raise HostUriRefused(f"host URI {uri!r}: {item!r} is not a name=value parameter")
        if name in seen:
            raise HostUriRefused(f"host URI {uri!r}: parameter {name!r} is given twice")
        rule = safe.get(name)
        if rule is not None:
            if not rule.fullmatch(value):
                raise HostUriRefused(f"host URI {uri!r}: {value!r} is not a valid value of "
                                     f"{name!r}")
        elif name not in extra_parameters:
            allowed = ", ".join(sorted({*safe, *extra_parameters})) or "none"
            raise HostUriRefused(
                f"host URI {uri!r}: parameter {name!r} is not allowed (it may name a program, "
                f"socket or file on the vmexec host; allowed for {transport}: {allowed}; an "
                "operator can allow more names with the setting host_uri_parameters)")
        seen[name] = value
    return tuple(seen.items())
