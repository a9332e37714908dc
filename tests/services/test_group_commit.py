"""Group commit on a real SQLite database: what is queued while a transaction runs goes in the
next one; waiters resume after their commit; a bad statement fails only its own caller."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vmexec.db.models import Account, utcnow
from vmexec.services.group_commit import GroupCommit


def _account(n: int) -> object:
    now = utcnow()
    return insert(Account).values(uuid=f"{n:032x}", name=f"a{n}", password_hash="x",
                                  create_date=now, last_op_date=now)


async def _names(db: async_sessionmaker[AsyncSession]) -> list[str]:
    async with db() as session:
        return list((await session.scalars(select(Account.name).order_by(Account.name))).all())


async def test_concurrent_writes_share_transactions(
        db: async_sessionmaker[AsyncSession]) -> None:
    writes = GroupCommit(db)
    await asyncio.gather(*(writes.commit(_account(n)) for n in range(200)))
    assert len(await _names(db)) == 200
    # 200 waiters, far fewer transactions: everything queued during one goes in the next.
    assert writes.transactions < 20


async def test_a_waiter_resumes_once_its_write_is_committed(
        db: async_sessionmaker[AsyncSession]) -> None:
    writes = GroupCommit(db)
    await writes.commit(_account(1))
    assert await _names(db) == ["a1"]
    writes.submit(_account(2))
    await writes.commit()  # a barrier: what was queued before is committed
    assert await _names(db) == ["a1", "a2"]


async def test_a_bad_statement_fails_only_its_caller(
        db: async_sessionmaker[AsyncSession]) -> None:
    writes = GroupCommit(db)
    await writes.commit(_account(1))
    results = await asyncio.gather(writes.commit(_account(2)), writes.commit(_account(1)),
                                   writes.commit(_account(3)), return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], IntegrityError)
    assert await _names(db) == ["a1", "a2", "a3"]


async def test_statements_of_one_call_commit_together_or_not_at_all(
        db: async_sessionmaker[AsyncSession]) -> None:
    writes = GroupCommit(db)
    with pytest.raises(IntegrityError):
        await writes.commit(_account(5), _account(5))
    assert await _names(db) == []
    await writes.commit(text("SELECT 1"))
    await writes.aclose()
