"""Accounts and sessions, as ZStack has them: log in with the SHA-512 hex of the password,
get a session UUID that expires unless used.

Exception tree::

    AuthError
     ├── InvalidCredentials   wrong account name or password
     └── InvalidSession       the session is unknown or expired
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vmexec.db.models import Account, Session, utcnow
from vmexec.zstack.ids import new_uuid
from vmexec.zstack.passwords import sha512_hex

log = logging.getLogger(__name__)

ADMIN_ACCOUNT = "admin"

#: Renew a session's expiry at most this often: a DB write per request is not worth it.
#: (Short session timeouts renew at a tenth of the timeout instead.)
_RENEW_GRANULARITY = timedelta(seconds=30)


class AuthError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidCredentials(AuthError):
    pass


class InvalidSession(AuthError):
    pass


@dataclass(frozen=True, slots=True)
class AuthSession:
    """A valid session and whom it belongs to."""

    uuid: str
    account_uuid: str
    account_name: str
    user_uuid: str
    create_date: datetime
    expired_date: datetime


class AuthService:
    """Logs in, validates and logs out sessions; creates the ``admin`` account at first start."""

    def __init__(self, db: async_sessionmaker[AsyncSession], *,
                 session_timeout: timedelta) -> None:
        self._db = db
        self._timeout = session_timeout
        self._renew_after = min(_RENEW_GRANULARITY, session_timeout / 10)
        self._hasher = PasswordHasher()

    async def _hash(self, digest: str) -> str:
        # argon2 is deliberately slow (tens of ms): keep it off the event loop.
        return await asyncio.to_thread(self._hasher.hash, digest)

    async def _verify(self, stored: str, digest: str) -> bool:
        def verify() -> bool:
            try:
                return self._hasher.verify(stored, digest)
            except (VerificationError, InvalidHashError):
                return False
        return await asyncio.to_thread(verify)

    async def ensure_admin(self, password: str) -> None:
        """Create the ``admin`` account with ``password`` (clear text) if it does not exist."""
        async with self._db() as db:
            if await db.scalar(select(Account.uuid).where(Account.name == ADMIN_ACCOUNT)):
                return
            db.add(Account(uuid=new_uuid(), name=ADMIN_ACCOUNT,
                           password_hash=await self._hash(sha512_hex(password))))
            await db.commit()
            log.info("created the %r account", ADMIN_ACCOUNT)

    async def login(self, account_name: str, password_sha512: str) -> AuthSession:
        """Open a session for the account. Raises :class:`InvalidCredentials`."""
        digest = password_sha512.strip().lower()
        async with self._db() as db:
            account = await db.scalar(select(Account).where(Account.name == account_name))
            if account is None or not await self._verify(account.password_hash, digest):
                raise InvalidCredentials("wrong account name or password")
            now = utcnow()
            row = Session(uuid=new_uuid(), account_uuid=account.uuid, user_uuid=account.uuid,
                          create_date=now, expired_date=now + self._timeout)
            db.add(row)
            await db.commit()
            return _auth_session(row, account.name)

    async def _load(self, db: AsyncSession, session_uuid: str) -> tuple[Session, str] | None:
        found = (await db.execute(
            select(Session, Account.name).join(Account, Account.uuid == Session.account_uuid)
            .where(Session.uuid == session_uuid.lower()))).first()
        if found is None or found[0].expired_date <= utcnow():
            return None
        return found[0], found[1]

    async def authenticate(self, session_uuid: str) -> AuthSession:
        """The live session ``session_uuid``, its expiry pushed back. Raises
        :class:`InvalidSession`."""
        async with self._db() as db:
            found = await self._load(db, session_uuid)
            if found is None:
                raise InvalidSession(f"session[uuid:{session_uuid}] is invalid or expired")
            row, account_name = found
            renewed = utcnow() + self._timeout
            if renewed - row.expired_date >= self._renew_after:
                row.expired_date = renewed
                await db.commit()
            return _auth_session(row, account_name)

    async def is_valid(self, session_uuid: str) -> bool:
        """Whether the session exists and has not expired (does not renew it)."""
        async with self._db() as db:
            return await self._load(db, session_uuid) is not None

    async def logout(self, session_uuid: str) -> None:
        """End the session; unknown sessions are ignored, as ZStack does."""
        async with self._db() as db:
            await db.execute(delete(Session).where(Session.uuid == session_uuid.lower()))
            await db.commit()

    async def purge_expired(self) -> int:
        """Delete expired sessions; returns how many."""
        async with self._db() as db:
            result = await db.execute(delete(Session).where(Session.expired_date <= utcnow()))
            await db.commit()
            return int(getattr(result, "rowcount", 0) or 0)


def _auth_session(row: Session, account_name: str) -> AuthSession:
    return AuthSession(uuid=row.uuid, account_uuid=row.account_uuid, account_name=account_name,
                       user_uuid=row.user_uuid, create_date=row.create_date,
                       expired_date=row.expired_date)
