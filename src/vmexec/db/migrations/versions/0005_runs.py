"""runs: one command on many VMs, and the targets of each run

Revision ID: 0005_runs
Revises: 0004_executions
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_runs"
down_revision: str | Sequence[str] | None = "0004_executions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _uuid(name: str, *args: sa.ForeignKey, primary_key: bool = False,
          nullable: bool = False, index: bool = False) -> sa.Column[str]:
    # Migrations are frozen history: no helpers shared with other revisions.
    return sa.Column(name, sa.String(32), *args, primary_key=primary_key, nullable=nullable,
                     index=index)


def _date(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "runs",
        _uuid("uuid", primary_key=True),
        _uuid("account_uuid", index=True),
        sa.Column("account_name", sa.String(255), nullable=False),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("max_concurrency", sa.Integer(), nullable=False),
        sa.Column("max_errors", sa.Integer(), nullable=False),
        sa.Column("target_count", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        _date("create_date", nullable=False),
        _date("start_date", nullable=True),
        _date("finish_date", nullable=True),
    )
    op.create_index("ix_runs_create_date", "runs", ["create_date"])
    op.create_table(
        "run_targets",
        _uuid("run_uuid", sa.ForeignKey("runs.uuid", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        _uuid("vm_uuid"),
        sa.Column("vm_name", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _uuid("execution_uuid", nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("error_code", sa.String(32), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("run_targets")
    op.drop_index("ix_runs_create_date", table_name="runs")
    op.drop_table("runs")
