"""output watches: a reader on one node asks the node running an execution to follow its
output at the live pace

Revision ID: 0012_output_watches
Revises: 0011_node_heartbeats
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_output_watches"
down_revision: str | Sequence[str] | None = "0011_node_heartbeats"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "output_watches",
        sa.Column("execution_uuid", sa.String(32), primary_key=True),
        sa.Column("watched_until", sa.DateTime(timezone=True), nullable=False))
    op.create_index("ix_output_watches_watched_until", "output_watches", ["watched_until"])


def downgrade() -> None:
    op.drop_index("ix_output_watches_watched_until", "output_watches")
    op.drop_table("output_watches")
