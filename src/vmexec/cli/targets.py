"""Which VMs ``vmexec exec`` runs on: names, uuids and shell-style globs (``'web-*'``), matched
on the client against the VMs the server lists (pure selection; the listing is the caller's).

A name or uuid must name exactly one VM (as for a single exec); a glob must match at least one
VM name. Every VM is selected once, in the order the arguments name them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from vmexec.client import VmInstance
from vmexec.zstack.ids import is_uuid

_GLOB_CHARS = frozenset("*?[")


class TargetError(Exception):
    """An argument names no VM, or a name several (the message says which)."""


def is_glob(ref: str) -> bool:
    """Whether ``ref`` is a pattern (has ``*``, ``?`` or ``[``) rather than a name."""
    return not _GLOB_CHARS.isdisjoint(ref)


def is_run(refs: Sequence[str], conditions: Sequence[str]) -> bool:
    """Whether the targets make a run (several VMs, a glob or conditions) rather than a
    single exec: the command line decides, not how many VMs match."""
    return len(refs) != 1 or bool(conditions) or is_glob(refs[0])


def select(refs: Sequence[str], vms: Sequence[VmInstance], *,
           filtered: bool = False) -> list[VmInstance]:
    """The VMs of ``vms`` that ``refs`` name (uuid, name or glob on names), each once.
    ``filtered``: ``vms`` are those matching the user's conditions (said in errors).

    Raises TargetError.
    """
    among = " among the VMs matching the conditions" if filtered else ""
    chosen: dict[str, VmInstance] = {}
    for ref in refs:
        if is_glob(ref):
            matched = [vm for vm in vms if vm.name is not None
                       and fnmatch.fnmatchcase(vm.name, ref)]
            if not matched:
                raise TargetError(f"no VM name matches {ref!r}{among}")
        else:
            matched = [vm for vm in vms if is_uuid(ref) and vm.uuid == ref.lower()]
            matched = matched or [vm for vm in vms if vm.name == ref]
            if not matched:
                raise TargetError(f"no VM has the uuid or name {ref!r}{among}")
            if len(matched) > 1:
                uuids = ", ".join(vm.uuid for vm in matched)
                raise TargetError(f"{len(matched)} VMs are named {ref!r} ({uuids}): "
                                  "give a uuid instead")
        for vm in matched:
            chosen.setdefault(vm.uuid, vm)
    return list(chosen.values())
