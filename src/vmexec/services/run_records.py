"""Run records as the API shows them: QueryGuestVmCommandRun (evaluated in SQL) and the wire
inventory of a run, with its counts per target state.

The query fields are :data:`vmexec.zstack.inventories.RUN_FIELDS`, each mapped to its column
in :data:`COLUMNS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from vmexec.db.models_runs import Run, RunTarget
from vmexec.services.inventory.records import query_reply, to_wire
from vmexec.services.sql_query import Column, SqlQuery
from vmexec.zstack.inventories import RUN_FIELDS
from vmexec.zstack.query import FieldKind, Query, QueryResult
from vmexec.zstack.runs import TargetState

#: ZStack-style class name of the inventory (the reply's ``schema`` map).
RUN_INVENTORY = "org.zstack.header.vm.GuestVmCommandRunInventory"

_S, _N, _D = FieldKind.STRING, FieldKind.NUMBER, FieldKind.DATE

COLUMNS: Mapping[str, Column] = {
    "uuid": Column(Run.uuid, _S), "accountUuid": Column(Run.account_uuid, _S),
    "command": Column(Run.command, _S), "platform": Column(Run.platform, _S),
    "state": Column(Run.state, _S), "maxConcurrency": Column(Run.max_concurrency, _N),
    "maxErrors": Column(Run.max_errors, _N), "targetCount": Column(Run.target_count, _N),
    "createDate": Column(Run.create_date, _D), "startDate": Column(Run.start_date, _D),
    "finishDate": Column(Run.finish_date, _D),
}
assert COLUMNS.keys() == RUN_FIELDS.keys()
assert all(COLUMNS[k].kind is f.kind for k, f in RUN_FIELDS.items())

#: Without a sort, and among equals: oldest first.
DEFAULT_ORDER = (Run.create_date.asc(), Run.uuid.asc())


def values(run: Run) -> dict[str, Any]:
    """The run's query fields, typed as the query compares them."""
    return {
        "uuid": run.uuid, "accountUuid": run.account_uuid, "command": run.command,
        "platform": run.platform, "state": run.state, "maxConcurrency": run.max_concurrency,
        "maxErrors": run.max_errors, "targetCount": run.target_count,
        "createDate": run.create_date, "startDate": run.start_date,
        "finishDate": run.finish_date,
    }


async def counts(db: AsyncSession, uuids: Iterable[str]) -> dict[str, dict[str, int]]:
    """Targets per state of each run (every state, zeros included)."""
    wanted = list(uuids)
    result = {uuid: {str(state): 0 for state in TargetState} for uuid in wanted}
    if wanted:
        rows = (await db.execute(
            select(RunTarget.run_uuid, RunTarget.state, func.count())
            .where(RunTarget.run_uuid.in_(wanted))
            .group_by(RunTarget.run_uuid, RunTarget.state))).all()
        for run_uuid, state, count in rows:
            result[run_uuid][state] = count
    return result


async def inventory(db: AsyncSession, run: Run) -> dict[str, Any]:
    """The run's wire inventory with ``targetCounts``."""
    return {**to_wire(values(run)), "targetCounts": (await counts(db, [run.uuid]))[run.uuid]}


async def query(db: AsyncSession, query: Query, *, account_uuid: str | None) -> dict[str, Any]:
    """QueryGuestVmCommandRun's reply over the runs of ``account_uuid`` (all with None); each
    inventory has ``targetCounts`` unless ``fields`` leaves it out. Raises QueryError."""
    builder = SqlQuery(COLUMNS, db.get_bind().dialect.name, default_order=DEFAULT_ORDER)
    visible: ColumnElement[bool] = (
        true() if account_uuid is None else Run.account_uuid == account_uuid)
    where = [visible, *builder.where(query)]
    total: int | None = None
    if query.count or query.reply_with_count:
        total = int(await db.scalar(select(func.count()).select_from(Run).where(*where)) or 0)
    records: list[dict[str, Any]] = []
    if not query.count:
        runs = (await db.scalars(builder.page(select(Run).where(visible), query))).all()
        records = [values(r) for r in runs]
        if query.fields is not None:
            records = [{f: r.get(f) for f in query.fields} for r in records]
    reply = query_reply(query, QueryResult(records=records, total=total, matched=total or 0),
                        RUN_INVENTORY)
    if query.fields is None and not query.count:
        per_run = await counts(db, [r.uuid for r in runs])
        for wire, run in zip(reply["inventories"], runs, strict=True):
            wire["targetCounts"] = per_run[run.uuid]
    return reply
