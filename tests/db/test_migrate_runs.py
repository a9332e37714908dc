"""Migration 0005: the run tables come with the upgrade and go with the downgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from sqlalchemy import Connection

from vmexec.db.migrate import alembic_config, upgrade
from vmexec.db.session import create_engine


def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master "
                                                 "WHERE type = 'table'")}
    conn.close()
    return names


async def test_runs_tables_up_and_down(tmp_path: Path) -> None:
    db = tmp_path / "vmexec.db"
    engine = create_engine(f"sqlite:///{db}")
    try:
        await upgrade(engine, "0004_executions")
        assert not {"runs", "run_targets"} & _tables(db)
        await upgrade(engine)
        assert {"runs", "run_targets"} <= _tables(db)

        def down(connection: Connection) -> None:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0004_executions")

        async with engine.begin() as connection:
            await connection.run_sync(down)
        assert not {"runs", "run_targets"} & _tables(db)
        assert "executions" in _tables(db)
    finally:
        await engine.dispose()
