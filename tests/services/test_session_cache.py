"""The session cache (issue 15): a session check needs no database round trip, and whatever
ends a session is refused at once all the same; on a real SQLite database, in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, event
from sqlalchemy.ext.asyncio import AsyncEngine

from vmexec.db.migrate import upgrade
from vmexec.db.models import Session
from vmexec.db.session import create_engine, create_sessionmaker
from vmexec.services.accounts import AccountService
from vmexec.services.auth import AuthService, InvalidSession, token_hash
from vmexec.services.session_cache import CachedSession, SessionCache
from vmexec.zstack.inventories import AccountType
from vmexec.zstack.passwords import sha512_hex

PASSWORD = sha512_hex("s3cret")


class Clock:
    """A clock the test moves (the cache's ``clock``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Setup:
    engine: AsyncEngine
    auth: AuthService
    accounts: AccountService
    clock: Clock
    statements: list[str]


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    engine = create_engine(f"sqlite:///{tmp_path / 'vmexec.db'}")
    await upgrade(engine)
    db = create_sessionmaker(engine)
    clock = Clock()
    auth = AuthService(db, session_timeout=timedelta(hours=1),
                       sessions=SessionCache(ttl=2.0, clock=clock))
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        await auth.ensure_admin("s3cret")
        yield Setup(engine, auth, AccountService(db, auth.passwords, sessions=auth.sessions),
                    clock, statements)
    finally:
        auth.close()
        await engine.dispose()


async def test_a_checked_session_is_checked_again_without_the_database(setup: Setup) -> None:
    session = await setup.auth.login("admin", PASSWORD)
    await setup.auth.authenticate(session.uuid)
    setup.statements.clear()
    again = await setup.auth.authenticate(session.uuid)
    assert await setup.auth.is_valid(session.uuid)
    assert setup.statements == []
    assert (again.account_uuid, again.account_name, again.admin) == (
        session.account_uuid, "admin", True)


async def test_a_logged_out_session_is_refused_at_once(setup: Setup) -> None:
    session = await setup.auth.login("admin", PASSWORD)
    await setup.auth.authenticate(session.uuid)
    await setup.auth.logout(session.uuid)
    with pytest.raises(InvalidSession):
        await setup.auth.authenticate(session.uuid)
    assert not await setup.auth.is_valid(session.uuid)


async def test_a_password_change_ends_the_other_sessions_at_once(setup: Setup) -> None:
    kept = await setup.auth.login("admin", PASSWORD)
    other = await setup.auth.login("admin", PASSWORD)
    for s in (kept, other):
        await setup.auth.authenticate(s.uuid)
    await setup.auth.change_password(kept, kept.account_uuid,
                                     password_sha512=sha512_hex("n3w"),
                                     old_password_sha512=PASSWORD)
    with pytest.raises(InvalidSession):
        await setup.auth.authenticate(other.uuid)
    assert (await setup.auth.authenticate(kept.uuid)).account_name == "admin"


async def test_account_changes_by_an_admin_apply_at_once(setup: Setup) -> None:
    account = await setup.accounts.create(name="alice", password_sha512=PASSWORD,
                                          type=AccountType.NORMAL)
    first = await setup.auth.login("alice", PASSWORD)
    await setup.auth.authenticate(first.uuid)
    await setup.accounts.update(account.uuid, name="alice2")
    assert (await setup.auth.authenticate(first.uuid)).account_name == "alice2"

    await setup.accounts.update(account.uuid, password_sha512=sha512_hex("other"))
    with pytest.raises(InvalidSession):
        await setup.auth.authenticate(first.uuid)

    second = await setup.auth.login("alice2", sha512_hex("other"))
    await setup.auth.authenticate(second.uuid)
    await setup.accounts.delete(account.uuid)
    with pytest.raises(InvalidSession):
        await setup.auth.authenticate(second.uuid)


async def test_an_expired_session_is_refused_from_the_cache(setup: Setup) -> None:
    auth = AuthService(create_sessionmaker(setup.engine), session_timeout=timedelta(seconds=1),
                       sessions=SessionCache(ttl=3600))
    try:
        session = await auth.login("admin", PASSWORD)
        await auth.authenticate(session.uuid)
        await asyncio.sleep(1.1)
        with pytest.raises(InvalidSession):
            await auth.authenticate(session.uuid)
    finally:
        auth.close()


async def test_a_session_ended_by_another_process_is_refused_after_the_ttl(
        setup: Setup) -> None:
    session = await setup.auth.login("admin", PASSWORD)
    await setup.auth.authenticate(session.uuid)
    # Another server on the same database ends it: this one learns it from the database.
    async with create_sessionmaker(setup.engine)() as db:
        await db.execute(delete(Session).where(Session.token_hash == token_hash(session.uuid)))
        await db.commit()
    setup.clock.now += 2.0
    with pytest.raises(InvalidSession):
        await setup.auth.authenticate(session.uuid)


async def test_a_check_that_read_before_a_logout_does_not_keep_the_session(
        setup: Setup) -> None:
    session = await setup.auth.login("admin", PASSWORD)
    revision = setup.auth.sessions.revision
    # A check read the session (not cached yet), a logout ended it meanwhile: the check's
    # late put must not make it valid again.
    await setup.auth.logout(session.uuid)
    late = CachedSession(account_uuid=session.account_uuid, account_name="admin",
                         account_type="SystemAdmin", user_uuid=session.user_uuid,
                         create_date=session.create_date, expired_date=session.expired_date,
                         read_at=setup.clock())
    setup.auth.sessions.put(token_hash(session.uuid), late, revision=revision)
    with pytest.raises(InvalidSession):
        await setup.auth.authenticate(session.uuid)
