"""Running ZStack queries (:mod:`vmexec.zstack.query`) without stalling the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from vmexec.zstack.query import Query, QueryResult, evaluate

#: Records above which even a query without conditions (sorting, paging) runs in a thread.
OFF_LOOP_RECORDS = 2000


async def evaluate_off_loop(query: Query, records: Sequence[Mapping[str, Any]]) -> QueryResult:
    """:func:`~vmexec.zstack.query.evaluate` in a worker thread, unless it is trivially cheap.

    A condition's cost grows with the length of the values it reads (a LIKE scans the whole
    text), which the client does not see, so any query with conditions leaves the loop; the
    thread hop costs far less than the HTTP round trip. ``records`` must not change while this
    runs (callers pass a fresh list of fresh dicts).
    """
    if not query.conditions and len(records) <= OFF_LOOP_RECORDS:
        return evaluate(query, records)
    return await asyncio.to_thread(evaluate, query, records)
