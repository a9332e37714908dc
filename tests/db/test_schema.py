"""The migrations build exactly the schema the models declare: a table, column or index a
model gained without its migration (or the other way round) fails here, not on a user's
upgraded database."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

# Every model module, so that each registers its tables on Base.
import vmexec.db.models
import vmexec.db.models_audit
import vmexec.db.models_inventory
import vmexec.db.models_runs  # noqa: F401
from vmexec.db.base import Base
from vmexec.db.migrate import upgrade
from vmexec.db.session import create_engine


def _differences(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


async def test_the_migrated_schema_is_the_models_schema(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'schema.db'}")
    try:
        await upgrade(engine)
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
    finally:
        await engine.dispose()
