"""What the service layer raises for a caller's mistake or an unreachable resource.

Services know nothing of HTTP or ZStack codes; :mod:`vmexec.api.errors` maps each of these to
ZStack's answer in one place. Exception tree::

    ServiceError
     ├── NotFound            a resource named in a request does not exist
     │    ├── VmNotFound
     │    └── ExecutionNotFound   (also another account's)
     ├── Conflict            the resource exists already
     │    └── HostExists
     ├── InvalidValue        a value the service cannot take (a malformed host URI, ...)
     └── HostUnreachable     the host does not answer (AddKVMHost)
"""

from __future__ import annotations


class ServiceError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    """``kind`` is ZStack's resource type (``VmInstanceVO``), ``uuid`` as the caller gave it."""

    kind = "resource"

    def __init__(self, uuid: str) -> None:
        super().__init__(f"resource[uuid:{uuid}, type:{self.kind}] is not found")
        self.uuid = uuid


class VmNotFound(NotFound):
    kind = "VmInstanceVO"


class ExecutionNotFound(NotFound):
    kind = "GuestVmCommandExecutionVO"


class Conflict(ServiceError):
    pass


class HostExists(Conflict):
    pass


class InvalidValue(ServiceError):
    pass


class HostUnreachable(ServiceError):
    pass
