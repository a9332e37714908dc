"""Which :class:`~.source.HostSource` reads a host URI: ``unix:///dir`` is an agent-socket
directory, anything else with a scheme is a libvirt URI."""

from __future__ import annotations

from vmexec.hypervisor.libvirt_host import LibvirtHosts
from vmexec.hypervisor.sockets import is_socket_dir_uri
from vmexec.hypervisor.uris import HostUriPolicy, HostUriRefused
from vmexec.services.errors import InvalidValue
from vmexec.services.inventory.libvirt_source import LibvirtSource
from vmexec.services.inventory.socket_source import SocketDirSource
from vmexec.services.inventory.source import HostSource


class HostSources:
    """The :data:`~.source.SourceFactory` of a server: ``sources(uri)`` opens a source.

    libvirt sources share the connections (and thread pool) of ``libvirt``. With a ``policy``
    (:mod:`vmexec.hypervisor.uris`), a URI it refuses is never opened: a libvirt URI can run
    programs on this machine.
    """

    def __init__(self, libvirt: LibvirtHosts, *, policy: HostUriPolicy | None = None) -> None:
        self._libvirt = libvirt
        self._policy = policy

    def __call__(self, uri: str) -> HostSource:
        """Raises:
            InvalidValue: ``uri`` is malformed, or the policy refuses it.
        """
        if self._policy is not None:
            try:
                self._policy.check(uri)
            except HostUriRefused as exc:
                raise InvalidValue(str(exc)) from None
        if is_socket_dir_uri(uri):
            try:
                return SocketDirSource(uri)
            except ValueError as exc:
                raise InvalidValue(str(exc)) from None
        if "://" not in uri:
            raise InvalidValue(
                f"not a libvirt URI: {uri!r} (e.g. qemu+ssh://root@10.0.0.5/system)")
        return LibvirtSource(self._libvirt.get(uri))
