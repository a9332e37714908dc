"""audit: one row per state-changing API call

Revision ID: 0007_audit
Revises: 0004_executions (the head of main when merged; re-chain after 0005/0006)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_audit"
down_revision: str | Sequence[str] | None = "0006_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Migrations are frozen history: the table is spelled out, not taken from the models.
    op.create_table(
        "audit",
        sa.Column("uuid", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("account_uuid", sa.String(32), nullable=True, index=True),
        sa.Column("account_name", sa.String(255), nullable=True),
        sa.Column("credential", sa.String(128), nullable=True),
        sa.Column("client_address", sa.String(64), nullable=True),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("route", sa.String(255), nullable=False),
        sa.Column("api_name", sa.String(128), nullable=True),
        sa.Column("resource_uuid", sa.String(64), nullable=True, index=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(32), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit")
