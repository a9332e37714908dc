"""A run's targets, resolved once when it starts: listed VMs, or the VMs a query selects.

Raises (:mod:`vmexec.services.errors`, :mod:`vmexec.zstack.query`): ``VmNotFound`` for a listed
VM that does not exist, ``QueryError`` for a condition that cannot be read, ``InvalidValue``
for an empty target set or more than :data:`~vmexec.zstack.runs.MAX_TARGETS` targets; nothing
has started then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vmexec.services.errors import InvalidValue
from vmexec.services.inventory import Inventory, Viewer
from vmexec.services.run_schedule import Target
from vmexec.zstack.inventories import VM_INSTANCE_FIELDS, kinds
from vmexec.zstack.query import Query, parse_condition
from vmexec.zstack.runs import MAX_TARGETS

_VM_KINDS = kinds(VM_INSTANCE_FIELDS)


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """Exactly one of: the VMs by UUID (each entry a target, in order), or QueryVmInstance
    conditions (every VM matching all of them, by name)."""

    vm_uuids: tuple[str, ...] | None = None
    conditions: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        if self.vm_uuids is not None:
            return {"vmInstanceUuids": list(self.vm_uuids)}
        return {"conditions": list(self.conditions or ())}


async def resolve_targets(inventory: Inventory, spec: TargetSpec,
                          viewer: Viewer) -> list[Target]:
    """The targets of ``spec`` among the VMs ``viewer`` sees, in the order they start (see
    the module docstring): another account's VM is as unknown as a UUID no VM has."""
    if (spec.vm_uuids is None) == (spec.conditions is None):
        raise InvalidValue("targets must have exactly one of 'vmInstanceUuids' and "
                           "'conditions'")
    if spec.vm_uuids is not None:
        if not spec.vm_uuids:
            raise InvalidValue("targets.vmInstanceUuids is empty: a run needs at least one "
                               "target")
        return await _listed(inventory, spec.vm_uuids, viewer)
    conditions = spec.conditions or ()
    if not conditions:
        # Not "every VM": a run on the whole fleet is asked for explicitly (e.g. "uuid not
        # null"), never by leaving the conditions out.
        raise InvalidValue("targets.conditions is empty: give at least one condition")
    targets = await _selected(inventory, conditions, viewer)
    if not targets:
        raise InvalidValue(f"no VM matches the conditions {list(conditions)}: a run needs at "
                           "least one target")
    return targets


async def _listed(inventory: Inventory, uuids: Sequence[str],
                  viewer: Viewer) -> list[Target]:
    if len(uuids) > MAX_TARGETS:
        raise InvalidValue(f"vmInstanceUuids lists {len(uuids)} VMs; a run may have at most "
                           f"{MAX_TARGETS} targets")
    targets = []
    for seq, uuid in enumerate(uuids):
        vm = await inventory.resolve(uuid, visible_to=viewer)  # VmNotFound: the first unknown
        targets.append(Target(seq, vm.uuid, vm.name))
    return targets


async def _selected(inventory: Inventory, conditions: Sequence[str],
                    viewer: Viewer) -> list[Target]:
    # One more than allowed, to tell "exactly the limit" from "over it".
    query = Query(conditions=tuple(parse_condition(c, _VM_KINDS) for c in conditions),
                  limit=MAX_TARGETS + 1, sort_by="name", fields=("uuid", "name"))
    found = (await inventory.query_vms(query, visible_to=viewer))["inventories"]
    if len(found) > MAX_TARGETS:
        raise InvalidValue(f"the conditions {list(conditions)} select more than {MAX_TARGETS} "
                           f"VMs; a run may have at most {MAX_TARGETS} targets")
    return [Target(seq, vm["uuid"], vm["name"]) for seq, vm in enumerate(found)]
