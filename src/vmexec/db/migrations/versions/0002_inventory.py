"""inventory: hosts and the VMs discovered on them

Revision ID: 0002_inventory
Revises: 0001_core
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_inventory"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _uuid(name: str, *args: sa.ForeignKey, primary_key: bool = False,
          nullable: bool | None = None, index: bool = False) -> sa.Column[str]:
    # Migrations are frozen history: no helpers shared with other revisions.
    if nullable is None:
        nullable = not primary_key  # SQLAlchemy's own default
    return sa.Column(name, sa.String(32), *args, primary_key=primary_key, nullable=nullable,
                     index=index)


def _date(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "hosts",
        _uuid("uuid", primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("uri", sa.String(1024), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("management_ip", sa.String(255), nullable=True),
        sa.Column("username", sa.String(255), nullable=True),
        sa.Column("ssh_port", sa.Integer(), nullable=True),
        _uuid("zone_uuid", nullable=True),
        _uuid("cluster_uuid", nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        _date("create_date"),
        _date("last_op_date"),
    )
    op.create_table(
        "vms",
        _uuid("uuid", primary_key=True),
        _uuid("host_uuid", sa.ForeignKey("hosts.uuid", ondelete="CASCADE"), nullable=False,
              index=True),
        _uuid("last_host_uuid", nullable=True),
        sa.Column("name", sa.String(255), nullable=False, index=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("architecture", sa.String(32), nullable=True),
        sa.Column("cpu_num", sa.Integer(), nullable=False),
        sa.Column("memory_size", sa.BigInteger(), nullable=False),
        sa.Column("has_agent_channel", sa.Boolean(), nullable=False),
        sa.Column("socket_path", sa.String(1024), nullable=True),
        sa.Column("qga_enabled", sa.Boolean(), nullable=False),
        _date("create_date"),
        _date("last_op_date"),
    )


def downgrade() -> None:
    op.drop_table("vms")
    op.drop_table("hosts")
