"""Core tables: accounts, sessions, async API jobs and the execution record.

Times are stored as timezone-aware UTC (:class:`UtcDateTime`), whatever the database.
UUIDs are ZStack's form: 32 lowercase hex characters.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from vmexec.db.base import Base

UUID_LEN = 32
#: Hex SHA-256.
TOKEN_HASH_LEN = 64


class UtcDateTime(TypeDecorator[datetime]):
    """A datetime that comes back timezone-aware UTC (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UtcDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Account(Base):
    __tablename__ = "accounts"

    uuid: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    #: argon2 hash of the SHA-512 hex digest clients send as the password.
    password_hash: Mapped[str] = mapped_column(String(255))
    #: ZStack's account type: ``SystemAdmin`` (may do anything) or ``Normal``.
    type: Mapped[str] = mapped_column(String(32), default="Normal", server_default="Normal")
    description: Mapped[str | None] = mapped_column(Text)
    create_date: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_op_date: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Session(Base):
    """A login session. The client's token (the session "uuid" it sends in ``Authorization:
    OAuth <uuid>``) is never stored: only its SHA-256, so that a copy of the database lets
    nobody in."""

    __tablename__ = "sessions"

    #: Hex SHA-256 of the session token (:func:`vmexec.services.auth.token_hash`).
    token_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LEN), primary_key=True)
    account_uuid: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("accounts.uuid", ondelete="CASCADE"), index=True)
    user_uuid: Mapped[str] = mapped_column(String(UUID_LEN))
    create_date: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expired_date: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class AccessKey(Base):
    """A ZStack access key: requests signed with its secret act as its account. The secret is
    needed to check signatures, so it is kept encrypted (:mod:`vmexec.services.secrets`)."""

    __tablename__ = "access_keys"

    uuid: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    account_uuid: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("accounts.uuid", ondelete="CASCADE"), index=True)
    user_uuid: Mapped[str] = mapped_column(String(UUID_LEN))
    #: ZStack's ``AccessKeyID``, what a signed request names.
    access_key_id: Mapped[str] = mapped_column(String(128), unique=True)
    #: The encrypted ``AccessKeySecret`` (a Fernet token).
    secret: Mapped[str] = mapped_column(Text)
    #: Enabled | Disabled
    state: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(Text)
    create_date: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_op_date: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Job(Base):
    """An API call whose reply is kept: ``running`` until ``status``/``result`` are set."""

    __tablename__ = "api_jobs"

    uuid: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    api: Mapped[str] = mapped_column(String(128))
    account_uuid: Mapped[str] = mapped_column(String(UUID_LEN), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)  # running | done
    #: What is needed to resume the job after a restart (API-specific JSON).
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: HTTP status and JSON body of the reply, once done.
    status: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    webhook: Mapped[str | None] = mapped_column(Text)
    #: pending | delivered | failed (null without a webhook).
    webhook_state: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    #: The node that runs the job (or delivers its webhook) while ``lease_expires`` is ahead;
    #: once it is past, any node may claim the job (:mod:`vmexec.services.leases`).
    owner_node: Mapped[str | None] = mapped_column(String(128))
    lease_expires: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    #: When the ``apiTimeout`` the job's ``202`` announced runs out (null: none announced).
    deadline: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Execution(Base):
    """One command on one VM (an ExecuteGuestVmCommand call, or a run's target): who ran what
    on which VM, and how it ended. Its output is in :class:`ExecutionOutput`."""

    __tablename__ = "executions"

    #: The job UUID, which is also the engine's run id.
    uuid: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    account_uuid: Mapped[str] = mapped_column(String(UUID_LEN), index=True)
    account_name: Mapped[str] = mapped_column(String(255))
    vm_uuid: Mapped[str] = mapped_column(String(UUID_LEN), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    command: Mapped[str] = mapped_column(Text)
    timeout_seconds: Mapped[int] = mapped_column(Integer)
    #: running | exited | timed_out | cancelled | failed (the engine's view)
    outcome: Mapped[str] = mapped_column(String(16), index=True)
    #: The wire state (:class:`vmexec.zstack.exec.ExecutionState`).
    state: Mapped[str] = mapped_column(String(16), index=True)
    #: The run this execution is a target of, if any.
    run_uuid: Mapped[str | None] = mapped_column(String(UUID_LEN), index=True)
    shell: Mapped[str | None] = mapped_column(String(16))
    #: Bytes of each stream kept in ``execution_output`` (at most ``output_cap`` together).
    stdout_stored: Mapped[int] = mapped_column(BigInteger, default=0)
    stderr_stored: Mapped[int] = mapped_column(BigInteger, default=0)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    #: When the record and its output are purged (``execution_retention`` after the request).
    output_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    #: The reply's HTTP status and body without the output text (added back from the stored
    #: output), so that an execution's ``result`` outlives its job and exists for runs too.
    reply_status: Mapped[int | None] = mapped_column(Integer)
    reply: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    signal: Mapped[int | None] = mapped_column(Integer)
    stdout_bytes: Mapped[int | None] = mapped_column(BigInteger)
    stderr_bytes: Mapped[int | None] = mapped_column(BigInteger)
    stdout_truncated: Mapped[bool | None]
    stderr_truncated: Mapped[bool | None]
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_details: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_executions_requested_at", "requested_at"),)


class ExecutionOutput(Base):
    """One chunk of an execution's output, in the order the guest wrote it (both streams)."""

    __tablename__ = "execution_output"

    execution_uuid: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("executions.uuid", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: stdout | stderr
    stream: Mapped[str] = mapped_column(String(8))
    #: Byte offset of the chunk's first byte in the execution's combined output (both streams).
    offset: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class OutputWatch(Base):
    """Someone on another node reads an execution's output as it comes, until
    ``watched_until``: the node running it then follows its output at the live pace (the
    reader's node renews the row while it polls; a row past its time means nothing)."""

    __tablename__ = "output_watches"

    execution_uuid: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    watched_until: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
