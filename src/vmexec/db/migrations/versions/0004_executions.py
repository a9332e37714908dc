"""executions: wire state, run, shell, stored output sizes and retention; execution_output

Existing records get their state from their outcome; their output was never kept (only in the
job's reply), so they have none stored.

Revision ID: 0004_executions
Revises: 0003_session_token_hash
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_executions"
down_revision: str | Sequence[str] | None = "0003_session_token_hash"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Migrations are frozen history: the states are spelled out, not taken from the code.
_STATE_OF_OUTCOME = """CASE
    WHEN outcome = 'running' THEN 'Running'
    WHEN outcome = 'timed_out' THEN 'TimedOut'
    WHEN outcome = 'cancelled' THEN 'Cancelled'
    WHEN outcome = 'exited' AND exit_code = 0 THEN 'Succeeded'
    ELSE 'Failed' END"""


def upgrade() -> None:
    with op.batch_alter_table("executions") as table:
        table.add_column(sa.Column("state", sa.String(16), nullable=False,
                                   server_default="Failed"))
        table.add_column(sa.Column("run_uuid", sa.String(32), nullable=True))
        table.add_column(sa.Column("shell", sa.String(16), nullable=True))
        table.add_column(sa.Column("stdout_stored", sa.BigInteger(), nullable=False,
                                   server_default="0"))
        table.add_column(sa.Column("stderr_stored", sa.BigInteger(), nullable=False,
                                   server_default="0"))
        table.add_column(sa.Column("duration_ms", sa.BigInteger(), nullable=True))
        table.add_column(sa.Column("output_expires_at", sa.DateTime(timezone=True),
                                   nullable=True))
        table.add_column(sa.Column("reply_status", sa.Integer(), nullable=True))
        table.add_column(sa.Column("reply", sa.JSON(), nullable=True))
        table.create_index("ix_executions_state", ["state"])
        table.create_index("ix_executions_run_uuid", ["run_uuid"])
        table.create_index("ix_executions_output_expires_at", ["output_expires_at"])
    op.execute(f"UPDATE executions SET state = {_STATE_OF_OUTCOME}")
    op.create_table(
        "execution_output",
        sa.Column("execution_uuid", sa.String(32),
                  sa.ForeignKey("executions.uuid", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("stream", sa.String(8), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("execution_output")
    with op.batch_alter_table("executions") as table:
        table.drop_index("ix_executions_output_expires_at")
        table.drop_index("ix_executions_run_uuid")
        table.drop_index("ix_executions_state")
        for column in ("reply", "reply_status", "output_expires_at", "duration_ms",
                       "stderr_stored", "stdout_stored", "shell", "run_uuid", "state"):
            table.drop_column(column)
