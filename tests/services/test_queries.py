"""Queries with conditions are evaluated in the runner's own threads, never on the loop."""

from __future__ import annotations

import threading

from vmexec.services.queries import QueryRunner
from vmexec.zstack.query import FieldKind, evaluate, parse_query

SCHEMA = {"name": FieldKind.STRING}


class Spy:
    """A value that notes which thread reads it (a LIKE reads values as text)."""

    def __init__(self, text: str, seen: set[str]) -> None:
        self.text = text
        self.seen = seen

    def __str__(self) -> str:
        self.seen.add(threading.current_thread().name)
        return self.text


async def test_conditions_are_evaluated_in_the_runners_threads() -> None:
    seen: set[str] = set()
    records = [{"name": Spy(f"vm-{i}", seen)} for i in range(10)]
    runner = QueryRunner(threads=1)
    try:
        query = parse_query([("q", "name~=vm-1%")], SCHEMA)
        result = await runner.evaluate(query, records)
        assert result == evaluate(query, records)
        assert [str(r["name"]) for r in result.records] == ["vm-1"]
        assert result.matched == 1
        seen.clear()
        await runner.evaluate(query, records)
        assert len(seen) == 1 and next(iter(seen)).startswith("query")
    finally:
        runner.close()

