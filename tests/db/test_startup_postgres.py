"""Issue 12, start-up, in one process: what several nodes starting at the same instant on one
empty PostgreSQL database do first (each with its own engine, as separate processes would):
migrate, then create the ``admin`` account. Before: ``alembic_version``'s type created twice
(no lock around migrations), then ``accounts_name_key`` (the account read, then inserted)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from fixtures.postgres import PostgresServer
from nodes.cluster import psql

from vmexec.db.migrate import upgrade
from vmexec.db.session import create_engine, create_sessionmaker
from vmexec.services.auth import AuthService
from vmexec.services.passwords import PasswordChecker

pytestmark = pytest.mark.slow

NODES = 4
#: A guard against a hang (before: concurrent migrations never all ended), not a speed check.
GUARD_SECONDS = 90


async def test_nodes_migrating_at_once_all_succeed(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    engines = [create_engine(url) for _ in range(NODES)]
    try:
        # Every node's outcome, the failures included (one failing must not leave the others
        # running past the test).
        async with asyncio.timeout(GUARD_SECONDS):
            outcomes = await asyncio.gather(*(upgrade(engine) for engine in engines),
                                            return_exceptions=True)
        assert [o for o in outcomes if o is not None] == []
    finally:
        for engine in engines:
            await engine.dispose()
    assert len(psql(url, "SELECT version_num FROM alembic_version")) == 1


async def test_nodes_creating_the_admin_account_at_once_all_succeed(
        postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    engines = [create_engine(url) for _ in range(NODES)]
    services = [AuthService(create_sessionmaker(engine), session_timeout=timedelta(hours=1),
                            passwords=PasswordChecker(concurrency=1, queue=8))
                for engine in engines]
    try:
        async with asyncio.timeout(GUARD_SECONDS):
            outcomes = await asyncio.gather(
                *(auth.ensure_admin("password") for auth in services), return_exceptions=True)
        assert [o for o in outcomes if o is not None] == []
        assert all(auth.default_password_in_use for auth in services)
    finally:
        for auth in services:
            auth.close()
        for engine in engines:
            await engine.dispose()
    assert psql(url, "SELECT name, type FROM accounts") == [["admin", "SystemAdmin"]]
