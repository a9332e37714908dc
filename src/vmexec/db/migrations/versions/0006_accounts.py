"""accounts: types and descriptions, VM owners, access keys

Accounts get ZStack's ``type`` (``SystemAdmin`` for the ``admin`` account created at the first
start, ``Normal`` for any other) and a ``description``; every VM gets an owner account
(``owner_account_uuid``; null is the ``admin`` account, so existing VMs stay admin's); access
keys (``access_keys``) keep their secret encrypted with the server's ``secret_key``.

Revision ID: 0006_accounts
Revises: see PREVIOUS below
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

#: The revision this one follows: re-chained here, and only here, when revisions are merged.
PREVIOUS = "0005_runs"

revision: str = "0006_accounts"
down_revision: str | Sequence[str] | None = PREVIOUS
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Migrations are frozen history: tables and columns are spelled out, not taken from models.
    # Plain ADD COLUMNs, not a batch (SQLite's copy-and-rename): dropping the old accounts
    # table would cascade to its sessions.
    op.add_column("accounts", sa.Column("type", sa.String(32), nullable=False,
                                        server_default="Normal"))
    op.add_column("accounts", sa.Column("description", sa.Text(), nullable=True))
    op.execute("UPDATE accounts SET type = 'SystemAdmin' WHERE name = 'admin'")
    # No foreign key: deleting an account gives its VMs back to admin (null) in the service.
    op.add_column("vms", sa.Column("owner_account_uuid", sa.String(32), nullable=True))
    op.create_index("ix_vms_owner_account_uuid", "vms", ["owner_account_uuid"])
    op.create_table(
        "access_keys",
        sa.Column("uuid", sa.String(32), primary_key=True),
        sa.Column("account_uuid", sa.String(32),
                  sa.ForeignKey("accounts.uuid", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("user_uuid", sa.String(32), nullable=False),
        sa.Column("access_key_id", sa.String(128), nullable=False, unique=True),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("create_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_op_date", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("access_keys")
    op.drop_index("ix_vms_owner_account_uuid", "vms")
    op.drop_column("vms", "owner_account_uuid")
    op.drop_column("accounts", "description")
    op.drop_column("accounts", "type")
