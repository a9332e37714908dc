"""node heartbeats: which nodes are alive, so that hosts are shared out among them

Revision ID: 0011_node_heartbeats
Revises: 0010_host_leases
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_node_heartbeats"
down_revision: str | Sequence[str] | None = "0010_host_leases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "node_heartbeats",
        sa.Column("node_id", sa.String(64), primary_key=True),
        sa.Column("lease_expires", sa.DateTime(timezone=True), nullable=False))


def downgrade() -> None:
    op.drop_table("node_heartbeats")
