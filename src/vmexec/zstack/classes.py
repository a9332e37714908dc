"""ZStack server class names, and the ``schema`` map of typed replies the SDKs read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: ZStack server class names the SDKs map to their own classes (``SourceClassMap``).
VM_INSTANCE_INVENTORY = "org.zstack.header.vm.VmInstanceInventory"
VM_NIC_INVENTORY = "org.zstack.header.vm.VmNicInventory"
VOLUME_INVENTORY = "org.zstack.header.volume.VolumeInventory"
KVM_HOST_INVENTORY = "org.zstack.kvm.KVMHostInventory"

#: Typed lists inside an inventory, by the inventory's class: field -> element class.
NESTED: Mapping[str, Mapping[str, str]] = {
    VM_INSTANCE_INVENTORY: {"vmNics": VM_NIC_INVENTORY, "allVolumes": VOLUME_INVENTORY},
}

#: Top-level fields of ExecuteGuestVmCommand's reply that hold typed objects.
EXEC_REPLY_TYPED_FIELDS: Mapping[str, str] = {"vmInstance": VM_INSTANCE_INVENTORY}


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


def with_schema(body: Mapping[str, Any], typed_fields: Mapping[str, str]) -> dict[str, Any]:
    """``body`` plus the ``schema`` map of its ``typed_fields`` (field -> class), when any."""
    schema: dict[str, str] = {}
    for field, class_name in typed_fields.items():
        schema.update(schema_map(field, class_name, body.get(field)))
    return {**body, "schema": schema} if schema else dict(body)


def wants_schema(headers: Mapping[str, str]) -> bool:
    """Whether the client asked for the ``schema`` map (``X-JSON-Schema: true``, the SDKs).
    ``headers`` must look names up case-insensitively (as HTTP libraries' header maps do)."""
    return headers.get("x-json-schema", "").strip().lower() == "true"
