"""SQLite sessions end their own transactions: the pool does not roll a returned connection
back once more (a thread hop to aiosqlite's worker per session; issue 15)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import text

from vmexec.db.migrate import upgrade
from vmexec.db.session import create_engine, create_sessionmaker


async def test_a_returned_connection_is_not_rolled_back_again(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'vmexec.db'}")
    await upgrade(engine)
    # What the pool asks of the driver when a connection comes back (counted on this
    # engine's dialect: a spy on SQLAlchemy's call, nothing of vmexec's replaced).
    dialect = engine.sync_engine.dialect
    pool_rollbacks: list[Any] = []
    driver_rollback = dialect.do_rollback

    def do_rollback(connection: Any) -> None:
        pool_rollbacks.append(connection)
        driver_rollback(connection)

    dialect.do_rollback = do_rollback  # type: ignore[method-assign]
    db = create_sessionmaker(engine)
    try:
        async with db() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER)"))
            await session.execute(text("INSERT INTO t VALUES (1)"))
            await session.commit()
        assert pool_rollbacks == []
        # A session that does not commit still rolls its own transaction back.
        async with db() as session:
            await session.execute(text("INSERT INTO t VALUES (2)"))
        async with db() as session:
            assert (await session.execute(text("SELECT count(*) FROM t"))).scalar() == 1
    finally:
        await engine.dispose()
