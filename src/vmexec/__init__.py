"""vmexec: run commands inside KVM/QEMU guest VMs through the QEMU guest agent.

A request flows one way, and the packages say so: ``api`` (routes, wire schemas, the one error
mapping) → ``services`` (exec jobs, sessions, inventory) → ``execution`` (the exec engine) →
``agent`` (the guest-agent client) → ``agent.transport`` (libvirt | unix socket) → the guest.
``hypervisor`` and ``db`` sit below; ``zstack`` is ZStack's wire format, pure, shared by server
and ``client``; ``server`` is the composition root; ``cli`` drives the client; ``lab`` makes
test VMs. The layering is checked by import-linter (pyproject.toml).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    #: The installed distribution's version (pyproject.toml's), one source of truth.
    __version__ = version("vmexec")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
