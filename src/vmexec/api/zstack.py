"""Small ZStack wire conventions: UUIDs, the ``schema`` map of typed replies.

Dates: :func:`vmexec.api.zstack_dates.format_date`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_UUID_RE = re.compile(r"^[0-9a-fA-F]{32}$")

#: ZStack server class names the SDKs map to their own classes (``SourceClassMap``).
VM_INSTANCE_INVENTORY = "org.zstack.header.vm.VmInstanceInventory"
VM_NIC_INVENTORY = "org.zstack.header.vm.VmNicInventory"
VOLUME_INVENTORY = "org.zstack.header.volume.VolumeInventory"
HOST_INVENTORY = "org.zstack.header.host.HostInventory"
KVM_HOST_INVENTORY = "org.zstack.kvm.KVMHostInventory"
SESSION_INVENTORY = "org.zstack.header.identity.SessionInventory"

#: Typed lists inside an inventory, by the inventory's class: field -> element class.
NESTED: Mapping[str, Mapping[str, str]] = {
    VM_INSTANCE_INVENTORY: {"vmNics": VM_NIC_INVENTORY, "allVolumes": VOLUME_INVENTORY},
}


def is_uuid(value: str) -> bool:
    """Whether ``value`` is a ZStack UUID (32 hex characters; case is not checked)."""
    return bool(_UUID_RE.match(value))


def normalize_uuid(value: str) -> str:
    """``value`` in ZStack's form: dashes dropped, lowercase. Does not validate."""
    return value.replace("-", "").lower()


def schema_map(path: str, class_name: str, value: Any) -> dict[str, str]:
    """The ``schema`` entries for ``value`` found at JSON ``path`` and of ZStack class
    ``class_name``: a list gives ``path[i]`` per element; known typed sub-lists follow their
    parent (the SDKs need parents before children and throw on a path that is null, so only
    present values are listed)."""
    entries: dict[str, str] = {}
    if value is None:
        return entries
    if isinstance(value, list):
        for i, item in enumerate(value):
            entries.update(schema_map(f"{path}[{i}]", class_name, item))
        return entries
    entries[path] = class_name
    if isinstance(value, Mapping):
        for field, element_class in NESTED.get(class_name, {}).items():
            entries.update(schema_map(f"{path}.{field}", element_class, value.get(field)))
    return entries


def wants_schema(headers: Mapping[str, str]) -> bool:
    """Whether the client asked for the ``schema`` map (``X-JSON-Schema: true``, the SDKs)."""
    return headers.get("x-json-schema", "").strip().lower() == "true"
