"""Writes that a transaction carries: statements, and rows of statements built once.

Building an ORM UPDATE per row costs more than running it, and each statement is a round trip
to the database (SQLite's runs in a thread of its own). :class:`Rows` is one row's parameters
for a statement built once with bind parameters; :func:`execute_writes` sends the rows of one
statement as one ``executemany``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True, slots=True)
class Rows:
    """One row's ``params`` for ``statement`` (the same statement object for every row)."""

    statement: Executable
    params: Mapping[str, Any]


Write = Executable | Rows


async def execute_writes(db: AsyncSession, writes: Sequence[Write]) -> None:
    """Execute ``writes`` in ``db``'s transaction (not committed). The rows of one statement
    go as one ``executemany`` before the next plain statement, so plain statements keep their
    order relative to everything before them; rows of different statements between two plain
    statements must not depend on each other's order."""
    batches: dict[int, tuple[Executable, list[Mapping[str, Any]]]] = {}

    async def flush() -> None:
        for statement, rows in batches.values():
            await db.execute(statement, rows)
        batches.clear()

    for write in writes:
        if isinstance(write, Rows):
            batch = batches.setdefault(id(write.statement), (write.statement, []))
            batch[1].append(write.params)
        else:
            await flush()
            await db.execute(write)
    await flush()
