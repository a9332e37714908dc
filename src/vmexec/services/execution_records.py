"""Execution records as the API shows them: QueryGuestVmCommandExecution (evaluated in SQL),
and the inventory of one execution with its output.

The query fields are :data:`vmexec.zstack.inventories.EXECUTION_FIELDS`, each mapped to its
column in :data:`COLUMNS`; :func:`values` gives a record's fields in the query's terms (the
form the in-memory evaluator would compare), :func:`inventory` its wire JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from vmexec.db.models import Execution
from vmexec.services.inventory.records import query_reply
from vmexec.services.inventory.visibility import Viewer, vm_visible
from vmexec.services.sql_query import Column, SqlQuery, boolean_text
from vmexec.zstack.inventories import EXECUTION_FIELDS
from vmexec.zstack.query import FieldKind, Query, QueryResult

#: ZStack-style class name of the inventory (the reply's ``schema`` map).
EXECUTION_INVENTORY = "org.zstack.header.vm.GuestVmCommandExecutionInventory"

_S, _N, _D = FieldKind.STRING, FieldKind.NUMBER, FieldKind.DATE

#: Each query field's column.
COLUMNS: Mapping[str, Column] = {
    "uuid": Column(Execution.uuid, _S),
    "vmInstanceUuid": Column(Execution.vm_uuid, _S),
    "runUuid": Column(Execution.run_uuid, _S),
    "accountUuid": Column(Execution.account_uuid, _S),
    "command": Column(Execution.command, _S),
    "platform": Column(Execution.platform, _S),
    "shell": Column(Execution.shell, _S),
    "state": Column(Execution.state, _S),
    "exitCode": Column(Execution.exit_code, _N),
    "signal": Column(Execution.signal, _N),
    "errorCode": Column(Execution.error_code, _S),
    "errorDetails": Column(Execution.error_details, _S),
    "createDate": Column(Execution.requested_at, _D),
    "startDate": Column(Execution.started_at, _D),
    "finishDate": Column(Execution.finished_at, _D),
    "durationMs": Column(Execution.duration_ms, _N),
    "stdoutBytes": Column(Execution.stdout_bytes, _N),
    "stderrBytes": Column(Execution.stderr_bytes, _N),
    "stdoutTruncated": Column(boolean_text(Execution.stdout_truncated), _S),
    "stderrTruncated": Column(boolean_text(Execution.stderr_truncated), _S),
}
assert COLUMNS.keys() == EXECUTION_FIELDS.keys()
assert all(COLUMNS[k].kind is f.kind for k, f in EXECUTION_FIELDS.items())

#: Without a sort, and among equals: oldest first (the uuid breaks ties of one instant).
DEFAULT_ORDER = (Execution.requested_at.asc(), Execution.uuid.asc())


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


def values(record: Execution) -> dict[str, Any]:
    """The record's query fields, typed as the query compares them."""
    return {
        "uuid": record.uuid, "vmInstanceUuid": record.vm_uuid, "runUuid": record.run_uuid,
        "accountUuid": record.account_uuid, "command": record.command,
        "platform": record.platform, "shell": record.shell, "state": record.state,
        "exitCode": record.exit_code, "signal": record.signal,
        "errorCode": record.error_code, "errorDetails": record.error_details,
        "createDate": record.requested_at, "startDate": record.started_at,
        "finishDate": record.finished_at, "durationMs": record.duration_ms,
        "stdoutBytes": record.stdout_bytes, "stderrBytes": record.stderr_bytes,
        "stdoutTruncated": _flag(record.stdout_truncated),
        "stderrTruncated": _flag(record.stderr_truncated),
    }


def _wire_flags(record: Mapping[str, Any]) -> dict[str, Any]:
    # Booleans are queried as text, sent as JSON booleans.
    return {k: (v == "true" if k.endswith("Truncated") and v is not None else v)
            for k, v in record.items()}


def sql_query(db: AsyncSession) -> SqlQuery:
    return SqlQuery(COLUMNS, db.get_bind().dialect.name, default_order=DEFAULT_ORDER)


def readable(viewer: Viewer) -> ColumnElement[bool]:
    """The executions ``viewer`` may read: an admin all; any other account those it started
    on VMs it owns (a VM given to another account takes its history with it)."""
    if viewer.admin:
        return true()
    return and_(Execution.account_uuid == viewer.account_uuid,
                vm_visible(viewer, Execution.vm_uuid))


async def query(db: AsyncSession, query: Query, *, viewer: Viewer) -> dict[str, Any]:
    """QueryGuestVmCommandExecution's reply over the executions ``viewer`` may read (see
    :func:`readable`). Raises QueryError."""
    builder = sql_query(db)
    visible = readable(viewer)
    where = [visible, *builder.where(query)]
    total: int | None = None
    if query.count or query.reply_with_count:
        total = int(await db.scalar(
            select(func.count()).select_from(Execution).where(*where)) or 0)
    records: list[dict[str, Any]] = []
    if not query.count:
        rows = (await db.scalars(builder.page(select(Execution).where(visible), query))).all()
        records = [values(r) for r in rows]
        if query.fields is not None:
            records = [{f: r.get(f) for f in query.fields} for r in records]
        records = [_wire_flags(r) for r in records]
    result = QueryResult(records=records, total=total, matched=total or 0)
    return query_reply(query, result, EXECUTION_INVENTORY)


def inventory(record: Execution) -> dict[str, Any]:
    """The wire inventory of one execution (no output), for replies."""
    reply = query_reply(Query(), QueryResult(records=[_wire_flags(values(record))],
                                             total=None), EXECUTION_INVENTORY)
    return dict(reply["inventories"][0])
