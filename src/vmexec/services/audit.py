"""The audit trail of state-changing API calls: recorded off the request path, queryable.

:meth:`AuditTrail.record` only queues the entry; a writer task stores what was queued within
:data:`WRITE_INTERVAL` in one transaction (a group commit), so an audited call costs its client
nothing and a stream of calls costs two transactions a second, not one each (the API's own
writes share SQLite's one connection with it: a commit after every call slowed the next one).
:meth:`AuditTrail.flush` stores everything recorded so far at once; a query flushes first, so it
sees the calls before it. A crash loses at most the last interval's entries.

If the database cannot be written, the writer logs it and retries a second later; at most
:data:`MAX_PENDING` entries wait (the oldest are dropped beyond, with an error in the log). A
batch the database refuses for its data (which the length cuts below should make impossible)
is logged and dropped rather than retried for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, case, delete, func, insert, select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vmexec.db.models import utcnow
from vmexec.db.models_audit import AuditRow
from vmexec.services.sql_query import Column, SqlQuery
from vmexec.zstack.ids import new_uuid
from vmexec.zstack.inventories import AUDIT_FIELDS
from vmexec.zstack.query import FieldKind, Query, QueryResult

log = logging.getLogger(__name__)

#: Seconds entries wait to be stored together.
WRITE_INTERVAL = 0.5
#: Entries that may wait for the database before the oldest are dropped.
MAX_PENDING = 10_000
#: Seconds a query waits for earlier entries to be stored before it answers anyway.
FLUSH_TIMEOUT = 5.0
_RETRY_AFTER = 1.0


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One state-changing API call (see :class:`~vmexec.db.models_audit.AuditRow`)."""

    method: str
    route: str
    status: int
    duration_ms: int
    api_name: str | None = None
    account_uuid: str | None = None
    account_name: str | None = None
    credential: str | None = None
    client_address: str | None = None
    resource_uuid: str | None = None
    error_code: str | None = None
    #: When the call was answered.
    created_at: datetime = field(default_factory=utcnow)


_ENTRY_FIELDS = tuple(f.name for f in fields(AuditEntry))
#: The longest text each column takes: longer values are cut, so that no value a client chose
#: can make a batch fail on a database that enforces lengths (PostgreSQL) and hold the others.
_LENGTHS = {column.name: column.type.length for column in AuditRow.__table__.columns
            if isinstance(column.type, String) and column.type.length}


def _clipped(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value[:_LENGTHS[key]] if isinstance(value, str) and key in _LENGTHS
            else value for key, value in values.items()}


_S, _N, _D = FieldKind.STRING, FieldKind.NUMBER, FieldKind.DATE
#: AuditInventory's fields in SQL (queries are evaluated by the database).
COLUMNS: dict[str, Column] = {
    "uuid": Column(AuditRow.uuid, _S), "accountUuid": Column(AuditRow.account_uuid, _S),
    "accountName": Column(AuditRow.account_name, _S),
    "credential": Column(AuditRow.credential, _S),
    "clientAddress": Column(AuditRow.client_address, _S),
    "method": Column(AuditRow.method, _S), "route": Column(AuditRow.route, _S),
    "apiName": Column(AuditRow.api_name, _S),
    "resourceUuid": Column(AuditRow.resource_uuid, _S),
    "status": Column(AuditRow.status, _N), "errorCode": Column(AuditRow.error_code, _S),
    "success": Column(case((AuditRow.status.between(200, 299), "true"), else_="false"), _S),
    "durationMs": Column(AuditRow.duration_ms, _N),
    "createDate": Column(AuditRow.created_at, _D),
}
assert COLUMNS.keys() == AUDIT_FIELDS.keys()
assert all(COLUMNS[k].kind is f.kind for k, f in AUDIT_FIELDS.items())
#: Without a sort, and among equals: oldest first (the uuid breaks ties of one instant).
DEFAULT_ORDER = (AuditRow.created_at.asc(), AuditRow.uuid.asc())


def _values(row: AuditRow) -> dict[str, Any]:
    """An entry as the query language sees it: AuditInventory's fields, typed."""
    return {
        "uuid": row.uuid, "accountUuid": row.account_uuid, "accountName": row.account_name,
        "credential": row.credential, "clientAddress": row.client_address,
        "method": row.method, "route": row.route, "apiName": row.api_name,
        "resourceUuid": row.resource_uuid, "status": row.status, "errorCode": row.error_code,
        "success": "true" if 200 <= row.status < 300 else "false",
        "durationMs": row.duration_ms, "createDate": row.created_at,
    }


class AuditTrail:
    """Records and queries audit entries; :meth:`start` the writer, :meth:`aclose` it."""

    def __init__(self, db: async_sessionmaker[AsyncSession], *,
                 retention: timedelta = timedelta(days=90),
                 interval: float = WRITE_INTERVAL) -> None:
        self._db = db
        self._retention = retention
        self._interval = interval
        self._pending: deque[dict[str, Any]] = deque()
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._stored = asyncio.Event()
        self._recorded = 0  # entries recorded so far
        self._written = 0   # of those, stored or dropped
        self._writer: asyncio.Task[None] | None = None
        self._dropping = False

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="audit-writer")

    def record(self, entry: AuditEntry) -> None:
        """Queue ``entry`` to be stored; never blocks, never raises."""
        if len(self._pending) >= MAX_PENDING:
            self._pending.popleft()
            self._written += 1
            if not self._dropping:  # once per outage, not once per call
                self._dropping = True
                log.error("audit entries cannot be stored (the database?): %d wait, the "
                          "oldest are being dropped", MAX_PENDING)
        # Not dataclasses.asdict: it deep-copies every value, ten times the cost of this.
        values = {name: getattr(entry, name) for name in _ENTRY_FIELDS}
        self._pending.append(_clipped({"uuid": new_uuid(), **values}))
        self._recorded += 1
        self._wake.set()

    async def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Wait until every entry recorded so far is stored; False if ``timeout`` passed."""
        target = self._recorded
        self._urgent.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self._written < target:
                    self._stored.clear()
                    await self._stored.wait()
        return self._written >= target

    async def query(self, query: Query, uuid: str | None = None) -> QueryResult:
        """QueryAudit, evaluated in SQL (after a flush). Raises QueryError."""
        await self.flush()
        if uuid is not None:
            query = query.with_uuid(uuid)
        async with self._db() as db:
            builder = SqlQuery(COLUMNS, db.get_bind().dialect.name,
                               default_order=DEFAULT_ORDER)
            total: int | None = None
            if query.count or query.reply_with_count:
                total = int(await db.scalar(select(func.count()).select_from(AuditRow).where(
                    *builder.where(query))) or 0)
            records: list[dict[str, Any]] = []
            if not query.count:
                rows = (await db.scalars(builder.page(select(AuditRow), query))).all()
                records = [_values(row) for row in rows]
        if query.fields is not None:
            records = [{f: r.get(f) for f in query.fields} for r in records]
        return QueryResult(records=records, total=total, matched=total or 0)

    async def purge_expired(self) -> int:
        """Delete entries older than the retention; returns how many."""
        async with self._db() as db:
            result = await db.execute(
                delete(AuditRow).where(AuditRow.created_at <= utcnow() - self._retention))
            await db.commit()
            return int(getattr(result, "rowcount", 0) or 0)

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._urgent.wait()  # a flush cuts the wait short
            self._wake.clear()
            self._urgent.clear()
            while self._pending:
                if not await self._write_batch():
                    await asyncio.sleep(_RETRY_AFTER)

    async def _write_batch(self) -> bool:
        batch = list(self._pending)
        self._pending.clear()
        try:
            async with self._db() as db:
                await db.execute(insert(AuditRow), batch)
                await db.commit()
        except (DataError, IntegrityError):
            # The entries themselves are refused: retrying would hold every later one.
            log.exception("the database refused %d audit entries; they are lost", len(batch))
            self._written += len(batch)
            self._stored.set()
            return True
        except BaseException as exc:
            # Back in front of what came meanwhile, within the bound.
            self._pending.extendleft(reversed(batch))
            while len(self._pending) > MAX_PENDING:
                self._pending.popleft()
                self._written += 1
            if not isinstance(exc, Exception):
                raise
            log.exception("storing %d audit entries failed; retrying", len(batch))
            return False
        self._written += len(batch)
        self._dropping = False
        self._stored.set()
        return True

    async def aclose(self) -> None:
        """Store what is queued (one attempt), then stop the writer."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if self._pending:
            await self._write_batch()
