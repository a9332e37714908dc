"""Alembic migrations, applied programmatically at server start (``upgrade``).

Several nodes may start at the same instant on one PostgreSQL database: the migrations run
under a transaction-level advisory lock (:data:`MIGRATION_LOCK`), so one node migrates while
the others wait, then find the schema current and do nothing. SQLite has one writer anyway
(and one node: see the README), so it needs no lock.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"
#: The key of the PostgreSQL advisory lock taken around migrations: any fixed 64-bit number
#: that no other application on the database uses ("vmexec" in ASCII).
MIGRATION_LOCK = 0x766D65786563


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config for vmexec's migrations (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database behind ``engine`` to ``revision``, in one transaction.

    Raises: whatever the database raises (the transaction is rolled back).
    """
    def run(connection: Connection) -> None:
        config = alembic_config()
        # env.py uses this connection instead of opening its own.
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Released with the transaction: held exactly as long as the migration runs.
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                     {"key": MIGRATION_LOCK})
        await connection.run_sync(run)
