"""core: accounts, sessions, async API jobs, executions

Revision ID: 0001_core
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_core"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _uuid(name: str, *args: sa.ForeignKey, primary_key: bool = False,
          nullable: bool | None = None, index: bool = False) -> sa.Column[str]:
    # Migrations are frozen history: no helpers shared with other revisions.
    if nullable is None:
        nullable = not primary_key  # SQLAlchemy's own default: a primary key is NOT NULL
    return sa.Column(name, sa.String(32), *args, primary_key=primary_key, nullable=nullable,
                     index=index)


def _date(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "accounts",
        _uuid("uuid", primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        _date("create_date"),
        _date("last_op_date"),
    )
    op.create_table(
        "sessions",
        _uuid("uuid", primary_key=True),
        _uuid("account_uuid", sa.ForeignKey("accounts.uuid", ondelete="CASCADE"),
              nullable=False, index=True),
        _uuid("user_uuid", nullable=False),
        _date("create_date"),
        sa.Column("expired_date", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    op.create_table(
        "api_jobs",
        _uuid("uuid", primary_key=True),
        sa.Column("api", sa.String(128), nullable=False),
        _uuid("account_uuid", nullable=False, index=True),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("webhook", sa.Text(), nullable=True),
        sa.Column("webhook_state", sa.String(16), nullable=True),
        _date("created_at"),
        _date("finished_at", nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    op.create_table(
        "executions",
        _uuid("uuid", primary_key=True),
        _uuid("account_uuid", nullable=False, index=True),
        sa.Column("account_name", sa.String(255), nullable=False),
        _uuid("vm_uuid", nullable=False, index=True),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False, index=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("signal", sa.Integer(), nullable=True),
        sa.Column("stdout_bytes", sa.BigInteger(), nullable=True),
        sa.Column("stderr_bytes", sa.BigInteger(), nullable=True),
        sa.Column("stdout_truncated", sa.Boolean(), nullable=True),
        sa.Column("stderr_truncated", sa.Boolean(), nullable=True),
        sa.Column("error_code", sa.String(32), nullable=True),
        sa.Column("error_details", sa.Text(), nullable=True),
        _date("requested_at"),
        _date("started_at", nullable=True),
        _date("finished_at", nullable=True),
    )
    op.create_index("ix_executions_requested_at", "executions", ["requested_at"])


def downgrade() -> None:
    op.drop_table("executions")
    op.drop_table("api_jobs")
    op.drop_table("sessions")
    op.drop_table("accounts")
