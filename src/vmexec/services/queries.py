"""Running ZStack queries (:mod:`vmexec.zstack.query`) without stalling the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vmexec.zstack.query import Query, QueryResult, evaluate

#: Records above which even a query without conditions (sorting, paging) leaves the loop.
OFF_LOOP_RECORDS = 2000
#: Threads evaluating queries at once; more queries wait their turn, so a flood of heavy
#: queries cannot take every thread of the loop's default pool (socket scans use it).
QUERY_THREADS = 2


class QueryRunner:
    """Evaluates queries in threads of its own (see :meth:`evaluate`); :meth:`close` them."""

    def __init__(self, threads: int = QUERY_THREADS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="query")

    async def evaluate(self, query: Query, records: Sequence[Mapping[str, Any]]) -> QueryResult:
        """:func:`~vmexec.zstack.query.evaluate`, in a worker thread unless trivially cheap.

        A condition's cost grows with the length of the values it reads (a LIKE scans the
        whole text), which the client does not see, so any query with conditions leaves the
        loop; the thread hop costs far less than the HTTP round trip. ``records`` must not
        change while this runs (callers pass a fresh list of fresh dicts).
        """
        if not query.conditions and len(records) <= OFF_LOOP_RECORDS:
            return evaluate(query, records)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, evaluate, query, records)

    def close(self) -> None:
        """Stop the threads (an evaluation under way finishes; queued ones are dropped)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
