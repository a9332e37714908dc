"""Accounts, as ZStack has them: CreateAccount, QueryAccount, UpdateAccount (by an admin),
DeleteAccount.

Who may call what is the API's decision (admins, see :mod:`vmexec.api.deps`); this service
keeps the rules of the data: names are unique, passwords arrive as SHA-512 hex digests (as
ZStack clients send them) and are stored as argon2 hashes, and the ``admin`` account can be
neither deleted nor renamed (it is the one recreated at start). An account's sessions and
access keys end with it (the database cascades), and its sessions end when an admin sets its
password.

Raises (besides what the database raises) :mod:`vmexec.services.errors`: ``AccountNotFound``,
``AccountExists``, ``InvalidValue``; and :class:`~vmexec.services.auth.LoginRefused` when the
password hasher is saturated.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vmexec.db.models import AccessKey, Account, Session, utcnow
from vmexec.services.auth import ADMIN_ACCOUNT, AccountInfo, LoginRefused
from vmexec.services.errors import Conflict, InvalidValue, NotFound
from vmexec.services.inventory.records import to_wire
from vmexec.services.passwords import PasswordCheckBusy, PasswordChecker
from vmexec.services.session_cache import SessionCache
from vmexec.zstack.classes import schema_map
from vmexec.zstack.ids import is_uuid, new_uuid
from vmexec.zstack.inventories import ACCOUNT_FIELDS, AccountType
from vmexec.zstack.query import Query, evaluate

log = logging.getLogger(__name__)

ACCOUNT_INVENTORY = "org.zstack.header.identity.AccountInventory"
_SHA512_HEX = re.compile(r"^[0-9a-f]{128}$")


class AccountNotFound(NotFound):
    kind = "AccountVO"


class AccountExists(Conflict):
    pass


def account_values(account: AccountInfo) -> dict[str, Any]:
    """AccountInventory's fields with typed values (for queries)."""
    values = {"uuid": account.uuid, "name": account.name, "description": account.description,
              "type": account.type, "createDate": account.create_date,
              "lastOpDate": account.last_op_date}
    assert values.keys() == ACCOUNT_FIELDS.keys()
    return values


def account_inventory(account: AccountInfo) -> dict[str, Any]:
    """AccountInventory's JSON."""
    return to_wire(account_values(account))


def password_digest(password_sha512: str) -> str:
    """The normalized SHA-512 hex digest a client sent. Raises InvalidValue."""
    digest = password_sha512.strip().lower()
    if not _SHA512_HEX.match(digest):
        raise InvalidValue("password must be the SHA-512 hex digest of the password (128 hex "
                           "characters), as ZStack clients send it")
    return digest


class AccountService:
    """See the module docstring; ``passwords`` is the server's one argon2 hasher,
    ``sessions`` its session cache (:attr:`vmexec.services.auth.AuthService.sessions`): what
    ends or renames an account's sessions here forgets them there."""

    def __init__(self, db: async_sessionmaker[AsyncSession], passwords: PasswordChecker, *,
                 sessions: SessionCache) -> None:
        self._db = db
        self._passwords = passwords
        self._sessions = sessions

    async def _hash(self, password_sha512: str) -> str:
        try:
            return await self._passwords.hash(password_digest(password_sha512))
        except PasswordCheckBusy as exc:
            raise LoginRefused(str(exc), exc.retry_after) from None

    async def create(self, *, name: str, password_sha512: str, type: AccountType,
                     description: str | None = None,
                     uuid: str | None = None) -> AccountInfo:
        """CreateAccount. Raises AccountExists (the name or UUID is taken), InvalidValue."""
        if uuid is not None and not is_uuid(uuid):
            raise InvalidValue(f"resourceUuid must be 32 hex digits, got {uuid!r}")
        name = _name(name)
        password_hash = await self._hash(password_sha512)
        row = Account(uuid=(uuid or new_uuid()).lower(), name=name,
                      password_hash=password_hash, type=str(type), description=description,
                      create_date=utcnow(), last_op_date=utcnow())
        try:
            async with self._db() as db, db.begin():
                db.add(row)
        except IntegrityError:
            raise AccountExists(f"an account named {name!r} (or with that UUID) exists "
                                "already") from None
        log.info("created the %s account %r", row.type, name)
        return AccountInfo.of(row)

    async def get(self, uuid: str) -> AccountInfo:
        """Raises AccountNotFound."""
        async with self._db() as db:
            row = await db.get(Account, uuid.strip().lower())
        if row is None:
            raise AccountNotFound(uuid)
        return AccountInfo.of(row)

    async def admin_uuid(self) -> str:
        """The UUID of the ``admin`` account (created at start, never deleted)."""
        async with self._db() as db:
            uuid = await db.scalar(select(Account.uuid).where(Account.name == ADMIN_ACCOUNT))
        if uuid is None:
            raise AccountNotFound(ADMIN_ACCOUNT)
        return uuid

    async def query(self, query: Query, uuid: str | None = None) -> dict[str, Any]:
        """QueryAccount's reply: ``inventories``, ``total`` when asked, and ``schema``."""
        if uuid is not None:
            query = query.with_uuid(uuid.strip().lower())
        async with self._db() as db:
            rows = (await db.scalars(select(Account).order_by(Account.create_date))).all()
        # Accounts are few (people, not machines): evaluated in place.
        result = evaluate(query, [account_values(AccountInfo.of(row)) for row in rows])
        reply: dict[str, Any] = {}
        if not query.count:
            reply["inventories"] = [to_wire(record) for record in result.records]
        if result.total is not None:
            reply["total"] = result.total
        reply["schema"] = schema_map("inventories", ACCOUNT_INVENTORY, reply.get("inventories"))
        return reply

    async def check_rename(self, uuid: str, name: str) -> None:
        """Whether :meth:`update` may give the account ``name`` (checked before a password
        change that comes with it). Raises AccountNotFound, AccountExists, InvalidValue."""
        account = await self.get(uuid)
        if name == account.name:
            return
        if account.name == ADMIN_ACCOUNT:
            raise InvalidValue(f"the account {ADMIN_ACCOUNT!r} cannot be renamed")
        async with self._db() as db:
            taken = await db.scalar(select(Account.uuid).where(Account.name == _name(name)))
        if taken is not None:
            raise AccountExists(f"an account named {name!r} exists already")

    async def update(self, uuid: str, *, name: str | None = None,
                     description: str | None = None,
                     password_sha512: str | None = None) -> AccountInfo:
        """UpdateAccount by an admin: a new name, description or password (no old password
        needed; every session of the account ends). Raises AccountNotFound, AccountExists,
        InvalidValue (renaming ``admin``)."""
        account = await self.get(uuid)
        values: dict[str, Any] = {}
        if name is not None and name != account.name:
            if account.name == ADMIN_ACCOUNT:
                raise InvalidValue(f"the account {ADMIN_ACCOUNT!r} cannot be renamed")
            values["name"] = _name(name)
        if description is not None:
            values["description"] = description
        if password_sha512 is not None:
            values["password_hash"] = await self._hash(password_sha512)
        if not values:
            return account
        values["last_op_date"] = utcnow()
        try:
            async with self._db() as db, db.begin():
                await db.execute(update(Account).where(Account.uuid == account.uuid)
                                 .values(**values))
                if password_sha512 is not None:
                    await db.execute(delete(Session).where(
                        Session.account_uuid == account.uuid))
        except IntegrityError:
            raise AccountExists(f"an account named {name!r} exists already") from None
        # A new name shows in the sessions' checks; a new password ended them.
        self._sessions.forget_account(account.uuid)
        if password_sha512 is not None:
            log.info("password of account %r set by an admin; its sessions ended", account.name)
        return await self.get(account.uuid)

    async def delete(self, uuid: str) -> AccountInfo | None:
        """DeleteAccount: its sessions and access keys end at once (in the same transaction).
        Returns the account deleted, ``None`` when there was none (deleting is idempotent, as
        in ZStack). Raises InvalidValue for the ``admin`` account."""
        async with self._db() as db, db.begin():
            row = await db.get(Account, uuid.strip().lower())
            if row is None:
                return None
            if row.name == ADMIN_ACCOUNT:
                raise InvalidValue(f"the account {ADMIN_ACCOUNT!r} cannot be deleted")
            account = AccountInfo.of(row)
            # The foreign keys cascade to sessions and access keys; said here as well, so
            # that no database setting can leave a session of a deleted account behind.
            await db.execute(delete(Session).where(Session.account_uuid == account.uuid))
            await db.execute(delete(AccessKey).where(AccessKey.account_uuid == account.uuid))
            await db.delete(row)
        # After the commit: a check that read the sessions before it must not keep them.
        self._sessions.forget_account(account.uuid)
        log.info("deleted the account %r; its sessions and access keys ended", account.name)
        return account


def _name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidValue("an account name must not be empty")
    return name
