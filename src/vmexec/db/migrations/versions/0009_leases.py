"""leases: which node runs an API job, until when, and the job's advertised deadline

Several nodes share one database. A running job (and a job whose webhook is still to be
delivered) is owned by one node (``owner_node``) until ``lease_expires``, which the owner
renews; a peer claims a job whose lease expired and finishes it. ``deadline`` is when the
``apiTimeout`` the job's ``202`` announced runs out. Jobs from before have no owner: the
first node to look claims them.

Revision ID: 0009_leases
Revises: see PREVIOUS below
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

#: The revision this one follows: re-chained here, and only here, when revisions are merged.
PREVIOUS = "0007_audit"

revision: str = "0009_leases"
down_revision: str | Sequence[str] | None = PREVIOUS
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Migrations are frozen history: columns are spelled out, not taken from the models.
    # Plain ADD COLUMNs (nullable), no batch copy of the table.
    op.add_column("api_jobs", sa.Column("owner_node", sa.String(128), nullable=True))
    op.add_column("api_jobs", sa.Column("lease_expires", sa.DateTime(timezone=True),
                                        nullable=True))
    op.add_column("api_jobs", sa.Column("deadline", sa.DateTime(timezone=True),
                                        nullable=True))
    # The reaper's question: which unfinished jobs have an expired lease.
    op.create_index("ix_api_jobs_lease_expires", "api_jobs", ["lease_expires"])


def downgrade() -> None:
    op.drop_index("ix_api_jobs_lease_expires", "api_jobs")
    op.drop_column("api_jobs", "deadline")
    op.drop_column("api_jobs", "lease_expires")
    op.drop_column("api_jobs", "owner_node")
