"""The hosts vmexec manages and the VMs on them, kept current from the hypervisors.

Hosts are libvirt URIs (``qemu:///system``, ``qemu+ssh://user@ip:port/system``, ...) or
agent-socket directories (``unix:///dir``, see :mod:`vmexec.hypervisor.sockets`). VMs are
discovered from them and kept current three ways: lifecycle events (a changed VM is re-read at
once), a periodic full resync, and an immediate resync when a lookup misses, so a VM defined a
moment ago is found without waiting.

The hypervisor is the truth about which VMs exist and their state; the database keeps what it
does not know (first-seen and last-change dates, the per-VM agent switch). An in-memory copy of
both tables serves lookups and queries, so resolving a VM for an exec costs no I/O.

The parts, each a module:

- :mod:`.service`: :class:`Inventory`, the façade routes call;
- :mod:`.visibility`: :class:`Viewer`, which VMs an account sees;
- :mod:`.vms`: VM lookups, the agent switch, the live agent probe;
- :mod:`.hosts`: AddKVMHost, QueryHost, DeleteHost;
- :mod:`.sync`: resyncs, lifecycle events, per-host locks;
- :mod:`.store`: the records in memory, written through to the database;
- :mod:`.records`: the records and their ZStack views and query replies;
- :mod:`.source`: :class:`HostSource`, the seam to the hypervisors, implemented by
  :mod:`.libvirt_source` and :mod:`.socket_source`, chosen by URI in :mod:`.sources`.
"""

from vmexec.services.inventory.service import HostStatusView, Inventory
from vmexec.services.inventory.source import HostSource, SeenVm, SourceFactory
from vmexec.services.inventory.sources import HostSources
from vmexec.services.inventory.visibility import Viewer, vm_visible
from vmexec.services.inventory.vms import VmRef

__all__ = ["HostSource", "HostSources", "HostStatusView", "Inventory", "SeenVm", "SourceFactory",
           "Viewer", "VmRef", "vm_visible"]
