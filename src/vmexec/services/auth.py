"""Accounts and sessions, as ZStack has them: log in with the SHA-512 hex of the password,
get a session token (ZStack calls it the session UUID) that expires unless used.

Only the SHA-256 of a token is stored (:func:`token_hash`): tokens are 128 random bits, so a
plain hash is enough, and a copy of the database lets nobody in. Password checks go through a
:class:`~vmexec.services.passwords.PasswordChecker` (argon2, bounded, off the event loop) and a
:class:`~vmexec.services.login_throttle.LoginThrottle` (failed logins per account and address).

Exception tree::

    AuthError
     ├── InvalidCredentials    wrong account name or password
     ├── InvalidSession        the session is unknown or expired
     ├── LoginRefused          too many failed logins, or too many at once: ``retry_after``
     ├── PermissionDenied      the session may not do this (update another account)
     └── InvalidAccountUpdate  a bad UpdateAccount (wrong old password, missing field, ...)
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vmexec.db.models import Account, Session, utcnow
from vmexec.db.seeds import insert_unless_present
from vmexec.services.login_throttle import LoginThrottle, LoginThrottled
from vmexec.services.passwords import PasswordCheckBusy, PasswordChecker
from vmexec.services.session_cache import CachedSession, SessionCache
from vmexec.zstack.ids import new_uuid
from vmexec.zstack.inventories import AccountType
from vmexec.zstack.passwords import sha512_hex

log = logging.getLogger(__name__)
#: The accounts table, for Core statements.
_ACCOUNTS = cast(Table, Account.__table__)

ADMIN_ACCOUNT = "admin"
#: The password the ``admin`` account gets when none is configured.
DEFAULT_PASSWORD = "password"
#: Logged at every start while ``admin`` has the default password, and shown by ``/health``.
DEFAULT_PASSWORD_WARNING = (
    f"the account {ADMIN_ACCOUNT!r} still has the default password: anyone who can reach this "
    "server can run commands in its VMs; change it with `vmexec passwd`")
#: ZStack's account types.
SYSTEM_ADMIN = AccountType.SYSTEM_ADMIN.value
NORMAL = AccountType.NORMAL.value

#: Renew a session's expiry at most this often: a DB write per request is not worth it.
#: (Short session timeouts renew at a tenth of the timeout instead.)
_RENEW_GRANULARITY = timedelta(seconds=30)
_SHA512_HEX = re.compile(r"^[0-9a-f]{128}$")


class AuthError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidCredentials(AuthError):
    pass


class InvalidSession(AuthError):
    pass


class LoginRefused(AuthError):
    """The password was not checked: retry in ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermissionDenied(AuthError):
    pass


class InvalidAccountUpdate(AuthError):
    pass


@dataclass(frozen=True, slots=True)
class AuthSession:
    """Whom a request acts as: a valid session (``uuid`` is the client's token), or a request
    signed with an access key (``access_key_uuid`` set, ``uuid`` empty: there is no token)."""

    uuid: str
    account_uuid: str
    account_name: str
    user_uuid: str
    create_date: datetime
    expired_date: datetime
    #: ZStack's account type (:class:`~vmexec.zstack.inventories.AccountType`).
    account_type: str = NORMAL
    access_key_uuid: str | None = None

    @property
    def admin(self) -> bool:
        """Whether the account is an administrator (``SystemAdmin``): it may do anything."""
        return self.account_type == SYSTEM_ADMIN


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """What ZStack's AccountInventory shows of an account."""

    uuid: str
    name: str
    type: str
    create_date: datetime
    last_op_date: datetime
    description: str | None = None

    @classmethod
    def of(cls, row: Account) -> AccountInfo:
        return cls(uuid=row.uuid, name=row.name, type=row.type, create_date=row.create_date,
                   last_op_date=row.last_op_date, description=row.description)


def token_hash(token: str) -> str:
    """What is stored of a session token: the hex SHA-256 of its normalized form."""
    return hashlib.sha256(token.strip().lower().encode()).hexdigest()


def _digest(password_sha512: str) -> str:
    return password_sha512.strip().lower()


class AuthService:
    """Logs in, validates and logs out sessions, changes passwords; creates the ``admin``
    account at first start."""

    def __init__(self, db: async_sessionmaker[AsyncSession], *,
                 session_timeout: timedelta, passwords: PasswordChecker | None = None,
                 throttle: LoginThrottle | None = None,
                 sessions: SessionCache | None = None) -> None:
        self._db = db
        #: Live sessions in memory (see :mod:`vmexec.services.session_cache`): whatever ends
        #: sessions in this process must forget them there too.
        self.sessions = sessions if sessions is not None else SessionCache()
        self._timeout = session_timeout
        self._renew_after = min(_RENEW_GRANULARITY, session_timeout / 10)
        self.passwords = passwords or PasswordChecker()
        self.throttle = throttle or LoginThrottle()
        #: Whether ``admin`` has the default password (known after :meth:`ensure_admin`).
        self.default_password_in_use = False

    async def ensure_admin(self, password: str) -> None:
        """Create the ``admin`` account with ``password`` (clear text) if it does not exist,
        and find out whether it has the default password (:attr:`default_password_in_use`)."""
        async with self._db() as db:
            stored = await db.scalar(
                select(Account.password_hash).where(Account.name == ADMIN_ACCOUNT))
        if stored is None:
            hashed = await self.passwords.hash(sha512_hex(password))
            async with self._db() as db:
                # Another node starting at the same instant may create it first: then its
                # row stands, and ours is not written.
                created = await db.execute(insert_unless_present(db, _ACCOUNTS, {
                    "uuid": new_uuid(), "name": ADMIN_ACCOUNT, "password_hash": hashed,
                    "type": SYSTEM_ADMIN, "create_date": utcnow(), "last_op_date": utcnow()}))
                stored = await db.scalar(
                    select(Account.password_hash).where(Account.name == ADMIN_ACCOUNT))
                await db.commit()
            if getattr(created, "rowcount", 0):
                log.info("created the %r account", ADMIN_ACCOUNT)
            assert stored is not None, "inserted, or inserted by another node"
        self.default_password_in_use = await self.passwords.verify(
            stored, sha512_hex(DEFAULT_PASSWORD))
        await self.passwords.dummy_hash()

    async def _check_password(self, account_name: str, stored: str | None, digest: str,
                              address: str | None) -> bool:
        """Whether ``digest`` is the account's password (``stored`` None: no such account),
        through the throttle. Raises LoginRefused."""
        try:
            attempt = self.throttle.admit(account_name, address)
        except LoginThrottled as exc:
            # DEBUG: a guesser must not flood the log; the lockout itself is logged below.
            log.debug("login to %r from %s refused: %s", account_name, address or "?",
                      exc.reason)
            raise LoginRefused(str(exc), exc.retry_after) from None
        try:
            right = await self.passwords.verify(stored, digest)
        except PasswordCheckBusy as exc:
            attempt.succeeded()  # not checked: not a failure either
            raise LoginRefused(str(exc), exc.retry_after) from None
        if right:
            attempt.succeeded()
            return True
        attempt.failed()
        locked = self.throttle.retry_after(account_name, address)
        if locked:
            log.warning("failed login to %r from %s; logins to it or from there are refused "
                        "for %.0fs after too many failures", account_name, address or "?",
                        locked)
        else:
            log.info("failed login to %r from %s", account_name, address or "?")
        return False

    async def login(self, account_name: str, password_sha512: str, *,
                    address: str | None = None) -> AuthSession:
        """Open a session for the account; ``address`` is the client's (for the throttle).
        Raises :class:`InvalidCredentials`, :class:`LoginRefused`."""
        # No database connection is held during the password check: SQLite has one, and
        # every request needs it.
        async with self._db() as db:
            account = await db.scalar(select(Account).where(Account.name == account_name))
        # An unknown account costs the same argon2 work as a wrong password.
        stored = account.password_hash if account is not None else None
        if not await self._check_password(account_name, stored, _digest(password_sha512),
                                          address) or account is None:
            raise InvalidCredentials("wrong account name or password")
        token = new_uuid()
        now = utcnow()
        row = Session(token_hash=token_hash(token), account_uuid=account.uuid,
                      user_uuid=account.uuid, create_date=now, expired_date=now + self._timeout)
        async with self._db() as db:
            db.add(row)
            await db.commit()
        return _auth_session(token, row, account.name, account.type)

    async def _load(self, db: AsyncSession, token: str) -> tuple[Session, str, str] | None:
        found = (await db.execute(
            select(Session, Account.name, Account.type)
            .join(Account, Account.uuid == Session.account_uuid)
            .where(Session.token_hash == token_hash(token)))).first()
        if found is None or found[0].expired_date <= utcnow():
            return None
        return found[0], found[1], found[2]

    async def _live(self, token: str) -> tuple[str, CachedSession] | None:
        """The token's hash and its session if live: from the cache, else from the database
        (then cached). An expired session is forgotten."""
        hashed = token_hash(token)
        entry = self.sessions.get(hashed)
        if entry is None:
            revision = self.sessions.revision
            async with self._db() as db:
                found = await self._load(db, token)
            if found is None:
                return None
            row, account_name, account_type = found
            entry = CachedSession(
                account_uuid=row.account_uuid, account_name=account_name,
                account_type=account_type, user_uuid=row.user_uuid,
                create_date=row.create_date, expired_date=row.expired_date,
                read_at=self.sessions.clock())
            self.sessions.put(hashed, entry, revision=revision)
        elif entry.expired_date <= utcnow():
            self.sessions.forget(hashed)
            return None
        return hashed, entry

    async def authenticate(self, token: str) -> AuthSession:
        """The live session of ``token``, its expiry pushed back. Raises
        :class:`InvalidSession`."""
        # The token is not repeated in the error: error details end up in logs and job
        # records.
        invalid = InvalidSession("the session is invalid or expired")
        live = await self._live(token)
        if live is None:
            raise invalid
        hashed, entry = live
        renewed = utcnow() + self._timeout
        if renewed - entry.expired_date >= self._renew_after:
            async with self._db() as db:
                result = await db.execute(update(Session).where(Session.token_hash == hashed)
                                          .values(expired_date=renewed))
                await db.commit()
            if not getattr(result, "rowcount", 1):  # ended meanwhile (by another process)
                self.sessions.forget(hashed)
                raise invalid
            entry.expired_date = renewed
        return AuthSession(uuid=token.strip().lower(), account_uuid=entry.account_uuid,
                           account_name=entry.account_name, user_uuid=entry.user_uuid,
                           create_date=entry.create_date, expired_date=entry.expired_date,
                           account_type=entry.account_type)

    async def is_valid(self, token: str) -> bool:
        """Whether the session exists and has not expired (does not renew it)."""
        return await self._live(token) is not None

    async def logout(self, token: str) -> None:
        """End the session; unknown sessions are ignored, as ZStack does."""
        async with self._db() as db:
            await db.execute(delete(Session).where(Session.token_hash == token_hash(token)))
            await db.commit()
        self.sessions.forget(token_hash(token))

    async def change_password(self, session: AuthSession, account_uuid: str, *,
                              password_sha512: str, old_password_sha512: str | None,
                              address: str | None = None) -> AccountInfo:
        """UpdateAccount's password change: an account changes its own password, giving the
        old one. Every other session of the account ends; ``session`` stays valid.

        Raises :class:`PermissionDenied` (another account), :class:`InvalidAccountUpdate`
        (no or wrong old password, a password that is not a SHA-512 hex digest),
        :class:`LoginRefused` (too many wrong old passwords).
        """
        if account_uuid.lower() != session.account_uuid:
            raise PermissionDenied(f"the session's account may only update itself, not "
                                   f"account[uuid:{account_uuid}]")
        new = _digest(password_sha512)
        if not _SHA512_HEX.match(new):
            raise InvalidAccountUpdate("password must be the SHA-512 hex digest of the new "
                                       "password (128 hex characters), as ZStack clients send")
        if old_password_sha512 is None:
            raise InvalidAccountUpdate("oldPassword is required to change the password")
        async with self._db() as db:
            account = await db.get(Account, session.account_uuid)
        if account is None:
            raise InvalidSession("the session's account does not exist any more")
        if not await self._check_password(account.name, account.password_hash,
                                          _digest(old_password_sha512), address):
            raise InvalidAccountUpdate(
                "old password is not equal to the original password, cannot update the "
                f"password of account[uuid:{account.uuid}]")
        try:
            password_hash = await self.passwords.hash(new)
        except PasswordCheckBusy as exc:
            raise LoginRefused(str(exc), exc.retry_after) from None
        async with self._db() as db:
            now = utcnow()
            await db.execute(update(Account).where(Account.uuid == account.uuid).values(
                password_hash=password_hash, last_op_date=now))
            await db.execute(delete(Session).where(
                Session.account_uuid == account.uuid,
                Session.token_hash != token_hash(session.uuid)))
            await db.commit()
        self.sessions.forget_account(account.uuid, keep=token_hash(session.uuid))
        log.info("password of account %r changed; its other sessions ended", account.name)
        if account.name == ADMIN_ACCOUNT:
            self.default_password_in_use = new == sha512_hex(DEFAULT_PASSWORD)
        return AccountInfo(uuid=account.uuid, name=account.name, type=account.type,
                           create_date=account.create_date, last_op_date=now,
                           description=account.description)

    async def purge_expired(self) -> int:
        """Delete expired sessions; returns how many."""
        async with self._db() as db:
            result = await db.execute(delete(Session).where(Session.expired_date <= utcnow()))
            await db.commit()
            return int(getattr(result, "rowcount", 0) or 0)

    def close(self) -> None:
        """Stop the password checker's threads."""
        self.passwords.close()


def _auth_session(token: str, row: Session, account_name: str,
                  account_type: str) -> AuthSession:
    return AuthSession(uuid=token.strip().lower(), account_uuid=row.account_uuid,
                       account_name=account_name, user_uuid=row.user_uuid,
                       create_date=row.create_date, expired_date=row.expired_date,
                       account_type=account_type)
