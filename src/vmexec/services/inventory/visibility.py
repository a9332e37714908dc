"""Who sees which VM: the one rule every API that names or lists VMs applies.

A VM has an owner account (ChangeResourceOwner; ``None`` is the ``admin`` account). An admin
(a ``SystemAdmin`` account) sees every VM; any other account sees the VMs it owns, and for it
the others do not exist: looking one up fails exactly as an unknown UUID does, and queries
leave them out.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Viewer:
    """The account a request acts as, as far as VM visibility goes."""

    account_uuid: str
    #: A ``SystemAdmin`` account: sees every VM.
    admin: bool

    def sees(self, owner_account_uuid: str | None) -> bool:
        """Whether a VM owned by ``owner_account_uuid`` (``None``: admin's) is visible."""
        return self.admin or owner_account_uuid == self.account_uuid
