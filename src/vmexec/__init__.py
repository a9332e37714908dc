"""vmexec: run commands inside KVM/QEMU guest VMs through the QEMU guest agent.

Request flow, one way: api → execution (exec service) → agent (guest-agent client)
→ agent.transport (libvirt | unix socket) → guest.
"""

__version__ = "0.1.0"
