"""The lab: real guest VMs (libvirt + QEMU + qemu-ga) for development, tests and the demo.

Public API: :class:`Lab`, :class:`LabVm`, :class:`LabError`; image building in
:mod:`vmexec.lab.image`; host-side bare agents for load tests in :mod:`vmexec.lab.bare_agents`.
"""

from vmexec.lab.lab import DownReport, Lab, LabError, LabVm

__all__ = ["DownReport", "Lab", "LabError", "LabVm"]
