"""The audit trail: one row per state-changing API call (who, from where, what, result).

Never a request body: bodies carry passwords, stdin, environments and webhook credentials.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vmexec.db.base import Base
from vmexec.db.models import UUID_LEN, UtcDateTime


class AuditRow(Base):
    __tablename__ = "audit"

    uuid: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    #: When the call was answered.
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    account_uuid: Mapped[str | None] = mapped_column(String(UUID_LEN), index=True)
    account_name: Mapped[str | None] = mapped_column(String(255))
    #: Which credential the call used, never the credential itself: ``session:<the first 16
    #: hex digits of the token's SHA-256>`` (the ``sessions`` table's key starts with them),
    #: ``accesskey:<the access key's uuid>``.
    credential: Mapped[str | None] = mapped_column(String(128))
    client_address: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    #: The route's template (``/zstack/v1/hosts/{uuid}``), never the raw path.
    route: Mapped[str] = mapped_column(String(255))
    #: ZStack's API name (the OpenAPI operation id), e.g. ``ExecuteGuestVmCommand``.
    api_name: Mapped[str | None] = mapped_column(String(128))
    #: The resource the call was about (the path's UUID, or the one the route named).
    resource_uuid: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[int] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(32))
    duration_ms: Mapped[int] = mapped_column(Integer)
