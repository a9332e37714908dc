"""Who sees which VM: the one rule every API that names or lists VMs applies.

A VM has an owner account (ChangeResourceOwner; ``None`` is the ``admin`` account). An admin
(a ``SystemAdmin`` account) sees every VM; any other account sees the VMs it owns, and for it
the others do not exist: looking one up fails exactly as an unknown UUID does, and queries
leave them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select, true

from vmexec.db.models_inventory import VmRow


@dataclass(frozen=True, slots=True)
class Viewer:
    """The account a request acts as, as far as VM visibility goes."""

    account_uuid: str
    #: A ``SystemAdmin`` account: sees every VM.
    admin: bool

    def sees(self, owner_account_uuid: str | None) -> bool:
        """Whether a VM owned by ``owner_account_uuid`` (``None``: admin's) is visible."""
        return self.admin or owner_account_uuid == self.account_uuid


def vm_visible(viewer: Viewer, vm_uuid: Any) -> ColumnElement[bool]:
    """The SQL condition "the VM named by column ``vm_uuid`` is visible to ``viewer``", for
    records that name VMs (executions, run targets): ``.where(vm_visible(viewer,
    Execution.vm_uuid))``. Reads the owners the inventory writes through to ``vms``."""
    if viewer.admin:
        return true()
    owned = select(VmRow.uuid).where(VmRow.owner_account_uuid == viewer.account_uuid)
    condition: ColumnElement[bool] = vm_uuid.in_(owned.scalar_subquery())
    return condition
