"""The hosts vmexec manages and the VMs on them, kept current from the hypervisors.

Hosts are libvirt URIs (``qemu:///system``, ``qemu+ssh://user@ip:port/system``, ...) or
agent-socket directories (``unix:///dir``, see :mod:`vmexec.hypervisor.sockets`). VMs are
discovered from them and kept current three ways: lifecycle events (a changed VM is re-read at
once), a periodic full resync, and an immediate resync when a lookup misses, so a VM defined a
moment ago is found without waiting.

The hypervisor is the truth about which VMs exist and their state; the database keeps what it
does not know (first-seen and last-change dates, the per-VM agent switch), and is what several
nodes on one PostgreSQL share: each host has one owning node (a lease on its row) that lists and
watches it and writes its VMs, and every node keeps an in-memory view of both tables, refreshed
when a peer announces a change (``LISTEN/NOTIFY``), so resolving a VM for an exec costs no I/O.
See docs/nodes.md.

The parts, each a module:

- :mod:`.service`: :class:`Inventory`, the façade routes call;
- :mod:`.visibility`: :class:`Viewer`, which VMs an account sees;
- :mod:`.vms`: VM lookups, the agent switch, the live agent probe;
- :mod:`.hosts`: AddKVMHost, QueryHost, DeleteHost;
- :mod:`.sync`: resyncs, lifecycle events, per-host locks, the hosts this node owns;
- :mod:`.store`: the records in the database (upserts, host leases) and this node's view;
- :mod:`.listener`: peers' changes heard through PostgreSQL ``LISTEN``;
- :mod:`.peers`: a lookup that misses has the owners of peers' hosts resync;
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
