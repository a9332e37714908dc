"""Run tables: one command on many VMs (``runs``) and its targets (``run_targets``).

A run is an async API job (its uuid is the job's); each target becomes an execution (see
:class:`vmexec.db.models.Execution`) once it starts. The counts per target state are computed
from ``run_targets``, never stored twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vmexec.db.base import Base
from vmexec.db.models import UUID_LEN, UtcDateTime, utcnow


class Run(Base):
    """One command sent to many VMs, with its concurrency and error limits."""

    __tablename__ = "runs"

    uuid: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    account_uuid: Mapped[str] = mapped_column(String(UUID_LEN), index=True)
    account_name: Mapped[str] = mapped_column(String(255))
    command: Mapped[str] = mapped_column(Text)
    platform: Mapped[str] = mapped_column(String(16))
    #: The engine request (``request_to_json``) and the targets as the client gave them.
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    max_concurrency: Mapped[int] = mapped_column(Integer)
    #: Failures tolerated (a percentage is resolved against ``target_count`` at start).
    max_errors: Mapped[int] = mapped_column(Integer)
    target_count: Mapped[int] = mapped_column(Integer)
    #: Running | Succeeded | Failed | Cancelled
    state: Mapped[str] = mapped_column(String(16), index=True)
    create_date: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    start_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finish_date: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_runs_create_date", "create_date"),)


class RunTarget(Base):
    """One VM of a run; ``execution_uuid`` is set in the transaction that starts it."""

    __tablename__ = "run_targets"

    run_uuid: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("runs.uuid", ondelete="CASCADE"), primary_key=True)
    #: The target's place in the run (the order targets start in).
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    vm_uuid: Mapped[str] = mapped_column(String(UUID_LEN))
    vm_name: Mapped[str] = mapped_column(String(255))
    #: Pending | Running | Succeeded | Failed | TimedOut | Cancelled | Skipped
    state: Mapped[str] = mapped_column(String(16))
    execution_uuid: Mapped[str | None] = mapped_column(String(UUID_LEN))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(32))
