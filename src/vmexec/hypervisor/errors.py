"""Errors of the hypervisor layer; ``libvirtError`` never leaves :mod:`vmexec.hypervisor`.

Exception tree::

    HypervisorError
     ├── HostUnreachable      libvirtd cannot be reached (connection refused, closed, ...)
     ├── DomainNotFound       no domain with that UUID/name on the host
     ├── DomainNotRunning     the operation needs a running domain (and it is shut off)
     ├── DomainPaused         the domain is paused: it exists and will run again once resumed
     ├── AgentNotConfigured   the domain has no guest-agent channel
     ├── AgentNotResponding   the channel exists but the agent does not answer
     ├── AgentReplyError      the agent answered with an error (message kept)
     └── OperationFailed      any other libvirt failure
"""

from __future__ import annotations


class HypervisorError(Exception):
    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: libvirt's error code (``VIR_ERR_*``) when known.
        self.code = code


class HostUnreachable(HypervisorError):
    pass


class DomainNotFound(HypervisorError):
    pass


class DomainNotRunning(HypervisorError):
    pass


class DomainPaused(HypervisorError):
    pass


class AgentNotConfigured(HypervisorError):
    pass


class AgentNotResponding(HypervisorError):
    pass


class AgentReplyError(HypervisorError):
    pass


class OperationFailed(HypervisorError):
    pass
