"""sessions: keep the SHA-256 of the session token instead of the token itself

Existing sessions are dropped: their tokens were stored in clear, and whoever could read the
database file could use them. Clients log in again.

Revision ID: 0003_session_token_hash
Revises: 0002_inventory
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_session_token_hash"
down_revision: str | Sequence[str] | None = "0002_inventory"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sessions(key: sa.Column[str]) -> None:
    # Migrations are frozen history: the table is spelled out, not taken from the models.
    op.create_table(
        "sessions",
        key,
        sa.Column("account_uuid", sa.String(32),
                  sa.ForeignKey("accounts.uuid", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("user_uuid", sa.String(32), nullable=False),
        sa.Column("create_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expired_date", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def upgrade() -> None:
    op.drop_table("sessions")
    _sessions(sa.Column("token_hash", sa.String(64), primary_key=True))


def downgrade() -> None:
    op.drop_table("sessions")
    _sessions(sa.Column("uuid", sa.String(32), primary_key=True))
