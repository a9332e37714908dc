"""ZStack access keys: CreateAccessKey, QueryAccessKey, DeleteAccessKey, ChangeAccessKeyState,
and the check of a request signed with one.

A signed request carries ``Authorization: ZStack <AccessKeyID>:<signature>`` and a ``Date``
header; the signature is what ZStack's Java SDK computes (``ZSClient.Api.
calculateAccessKeySignature`` in zstackio/zstack, sdk/src/main/java/org/zstack/sdk/
ZSClient.java)::

    base64(HMAC-SHA1(AccessKeySecret, METHOD + "\\n" + DATE + "\\n" + "/v1" + PATH))

where DATE is the ``Date`` header exactly as sent (the SDK writes ``EEE, dd MMM yyyy HH:mm:ss
VV``, e.g. ``Tue, 01 Dec 2026 09:30:00 Z`` or ``... Asia/Shanghai``) and PATH is the API's
path as the SDK's RestInfo has it, without the ``/zstack`` context path and without the query
string (the SDK appends ``"/v1" + path`` to the string to sign, and for query APIs ``path`` is
the bare resource path, the ``q=`` conditions going in the query string only). So the server
signs the request path with its leading ``/zstack`` removed: ``/v1/vm-instances/...``.

A request is refused (``InvalidSignature``, answered ``ID.1001`` as an invalid session is) when
the key is unknown or disabled, the Date is missing, unreadable or more than
:data:`MAX_CLOCK_SKEW` away from the server's clock, or the signature does not match.

Secrets are needed to check signatures, so they are stored encrypted with the server's key
(:class:`~vmexec.services.secrets.SecretBox`), and shown only once, in CreateAccessKey's reply.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vmexec.db.models import AccessKey, Account, utcnow
from vmexec.services.accounts import AccountNotFound
from vmexec.services.auth import AuthSession, InvalidSession
from vmexec.services.errors import Conflict, InvalidValue, NotFound
from vmexec.services.inventory.records import to_wire
from vmexec.services.secrets import SecretBox, SecretUnreadable
from vmexec.zstack.classes import schema_map
from vmexec.zstack.ids import new_uuid
from vmexec.zstack.inventories import ACCESS_KEY_FIELDS, AccessKeyState
from vmexec.zstack.query import Query, evaluate

log = logging.getLogger(__name__)

ACCESS_KEY_INVENTORY = "org.zstack.accessKey.AccessKeyInventory"
#: How far a signed request's Date may be from the server's clock (ZStack's window).
MAX_CLOCK_SKEW = timedelta(minutes=15)
#: The ``Authorization`` scheme of signed requests.
SCHEME = "ZStack"
#: The context path ZStack's REST API lives under; the SDK signs the path after it.
CONTEXT_PATH = "/zstack"
_GENERATED_ID_CHARS = 20
_GENERATED_SECRET_CHARS = 40
_ALPHANUMERIC = string.ascii_letters + string.digits
_KEY_TEXT = re.compile(r"^[A-Za-z0-9_\-+/=.]{8,128}$")


class AccessKeyNotFound(NotFound):
    kind = "AccessKeyVO"


class AccessKeyExists(Conflict):
    pass


class InvalidSignature(InvalidSession):
    """A signed request that does not authenticate (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class AccessKeyInfo:
    uuid: str
    account_uuid: str
    user_uuid: str
    access_key_id: str
    state: str
    create_date: datetime
    last_op_date: datetime
    description: str | None = None

    @classmethod
    def of(cls, row: AccessKey) -> AccessKeyInfo:
        return cls(uuid=row.uuid, account_uuid=row.account_uuid, user_uuid=row.user_uuid,
                   access_key_id=row.access_key_id, state=row.state,
                   create_date=row.create_date, last_op_date=row.last_op_date,
                   description=row.description)

    def values(self) -> dict[str, Any]:
        """AccessKeyInventory's fields with typed values (no secret)."""
        values = {"uuid": self.uuid, "description": self.description,
                  "accountUuid": self.account_uuid, "userUuid": self.user_uuid,
                  "AccessKeyID": self.access_key_id, "state": self.state,
                  "createDate": self.create_date, "lastOpDate": self.last_op_date}
        assert values.keys() == ACCESS_KEY_FIELDS.keys()
        return values

    def inventory(self, secret: str | None = None) -> dict[str, Any]:
        """AccessKeyInventory's JSON; ``AccessKeySecret`` only when given (at creation)."""
        wire = to_wire(self.values())
        if secret is not None:
            wire["AccessKeySecret"] = secret
        return wire


def string_to_sign(method: str, date: str, path: str) -> str:
    """What ZStack's Java SDK signs for a request (see the module docstring): ``path`` is the
    request's path (``/zstack/v1/...``)."""
    if path.startswith(CONTEXT_PATH + "/"):
        path = path[len(CONTEXT_PATH):]
    return f"{method.upper()}\n{date}\n{path}"


def sign(secret: str, method: str, date: str, path: str) -> str:
    """The signature ZStack's Java SDK sends for this request."""
    digest = hmac.new(secret.encode(), string_to_sign(method, date, path).encode(),
                      hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


_MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_SDK_DATE = re.compile(
    r"^[A-Za-z]{3}, (\d{1,2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) (\S+)$")
_OFFSET = re.compile(r"^(?:UTC|GMT|UT)?([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)


def _zone(text: str) -> tzinfo | None:
    # Java's VV: a region ("Asia/Shanghai"), "Z", an offset ("+08:00"), or a prefixed offset.
    if text.upper() in ("Z", "UTC", "GMT", "UT"):
        return UTC
    if match := _OFFSET.match(text):
        sign_, hours, minutes = match.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        return timezone(-delta if sign_ == "-" else delta)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse_sdk_date(text: str) -> datetime | None:
    """The ``Date`` header of a signed request (``EEE, dd MMM yyyy HH:mm:ss VV``, the
    SDK's form; RFC 1123's ``GMT`` is one of its zones), or None when unreadable."""
    match = _SDK_DATE.match(text.strip())
    if match is None:
        return None
    day, month, year, hour, minute, second, zone_text = match.groups()
    zone = _zone(zone_text)
    month_number = _MONTHS.get(month.lower())
    if zone is None or month_number is None:
        return None
    try:
        return datetime(int(year), month_number, int(day), int(hour), int(minute), int(second),
                        tzinfo=zone)
    except ValueError:
        return None


def _key_text(value: str | None, field: str, length: int) -> str:
    if value is None:
        return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))
    if not _KEY_TEXT.match(value):
        raise InvalidValue(f"{field} must be 8-128 characters of letters, digits and _-+/=.")
    return value


class AccessKeyService:
    """See the module docstring. ``box`` encrypts the secrets at rest."""

    def __init__(self, db: async_sessionmaker[AsyncSession], box: SecretBox) -> None:
        self._db = db
        self._box = box

    async def create(self, *, account_uuid: str, user_uuid: str | None = None,
                     access_key_id: str | None = None, secret: str | None = None,
                     description: str | None = None) -> tuple[AccessKeyInfo, str]:
        """CreateAccessKey; returns the key and its secret (given, or generated).

        Raises: AccountNotFound, AccessKeyExists (the ID is taken),
        InvalidValue (a malformed ID or secret).
        """
        key_id = _key_text(access_key_id, "AccessKeyID", _GENERATED_ID_CHARS)
        key_secret = _key_text(secret, "AccessKeySecret", _GENERATED_SECRET_CHARS)
        account_uuid = account_uuid.strip().lower()
        now = utcnow()
        row = AccessKey(uuid=new_uuid(), account_uuid=account_uuid,
                        user_uuid=(user_uuid or account_uuid).strip().lower(),
                        access_key_id=key_id, secret=self._box.encrypt(key_secret),
                        state=AccessKeyState.ENABLED.value, description=description,
                        create_date=now, last_op_date=now)
        try:
            async with self._db() as db, db.begin():
                if await db.get(Account, account_uuid) is None:
                    raise AccountNotFound(account_uuid)
                db.add(row)
        except IntegrityError:
            raise AccessKeyExists(f"an access key with AccessKeyID {key_id!r} exists "
                                  "already") from None
        log.info("created access key %s of account %s", key_id, account_uuid)
        return AccessKeyInfo.of(row), key_secret

    async def query(self, query: Query, uuid: str | None = None, *,
                    account_uuid: str | None = None) -> dict[str, Any]:
        """QueryAccessKey's reply; only the keys of ``account_uuid`` unless it is None."""
        if uuid is not None:
            query = query.with_uuid(uuid.strip().lower())
        statement = select(AccessKey).order_by(AccessKey.create_date)
        if account_uuid is not None:
            statement = statement.where(AccessKey.account_uuid == account_uuid)
        async with self._db() as db:
            rows = (await db.scalars(statement)).all()
        result = evaluate(query, [AccessKeyInfo.of(row).values() for row in rows])
        reply: dict[str, Any] = {}
        if not query.count:
            reply["inventories"] = [to_wire(record) for record in result.records]
        if result.total is not None:
            reply["total"] = result.total
        reply["schema"] = schema_map("inventories", ACCESS_KEY_INVENTORY,
                                     reply.get("inventories"))
        return reply

    async def delete(self, uuid: str, *, account_uuid: str | None = None) -> None:
        """DeleteAccessKey (of ``account_uuid`` unless None): requests signed with it are
        refused from now on. An unknown key is no error (ZStack's deletes are idempotent)."""
        statement = delete(AccessKey).where(AccessKey.uuid == uuid.strip().lower())
        if account_uuid is not None:
            statement = statement.where(AccessKey.account_uuid == account_uuid)
        async with self._db() as db, db.begin():
            await db.execute(statement)

    async def set_state(self, uuid: str, state: AccessKeyState, *,
                        account_uuid: str | None = None) -> AccessKeyInfo:
        """ChangeAccessKeyState (a key of ``account_uuid`` unless None). Raises
        AccessKeyNotFound."""
        condition = AccessKey.uuid == uuid.strip().lower()
        if account_uuid is not None:
            condition = condition & (AccessKey.account_uuid == account_uuid)
        async with self._db() as db, db.begin():
            await db.execute(update(AccessKey).where(condition).values(
                state=state.value, last_op_date=utcnow()))
            row = await db.scalar(select(AccessKey).where(condition))
            if row is None:
                raise AccessKeyNotFound(uuid)
            return AccessKeyInfo.of(row)

    async def authenticate(self, credentials: str, *, method: str, path: str,
                           date: str | None, now: datetime | None = None) -> AuthSession:
        """Whom a signed request acts as. ``credentials``: the ``Authorization`` header's
        value after ``ZStack ``; ``path``: the request's path; ``date``: its ``Date`` header.

        Raises :class:`InvalidSignature` (see the module docstring); the reason is logged,
        the answer says only which check failed, never the expected signature.
        """
        key_id, colon, signature = credentials.strip().partition(":")
        if not colon or not key_id or not signature:
            raise InvalidSignature("the header 'Authorization' must be 'ZStack "
                                   "<AccessKeyID>:<signature>'")
        if date is None:
            raise InvalidSignature("a request signed with an access key needs a 'Date' header")
        sent = parse_sdk_date(date)
        if sent is None:
            raise InvalidSignature(f"the 'Date' header {date!r} is not 'EEE, dd MMM yyyy "
                                   "HH:mm:ss zone'")
        now = now or utcnow()
        if abs(now - sent) > MAX_CLOCK_SKEW:
            raise InvalidSignature(
                f"the 'Date' header is more than {MAX_CLOCK_SKEW.seconds // 60} minutes away "
                "from the server's clock: check the client's clock")
        async with self._db() as db:
            found = (await db.execute(
                select(AccessKey, Account.name, Account.type)
                .join(Account, Account.uuid == AccessKey.account_uuid)
                .where(AccessKey.access_key_id == key_id))).first()
        # The same answer for an unknown key and a wrong signature: nothing tells which IDs
        # exist.
        refused = InvalidSignature("the access key is unknown or the signature does not match")
        if found is None:
            raise refused
        key, account_name, account_type = found
        try:
            secret = self._box.decrypt(key.secret)
        except SecretUnreadable:
            log.error("access key %s cannot be used: its secret does not decrypt with this "
                      "server's secret_key (was it changed?)", key_id)
            raise refused from None
        expected = sign(secret, method, date, path)
        if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
            raise refused
        if key.state != AccessKeyState.ENABLED:
            raise InvalidSignature(f"the access key {key_id} is disabled")
        return AuthSession(uuid="", account_uuid=key.account_uuid, account_name=account_name,
                           user_uuid=key.user_uuid, create_date=key.create_date,
                           expired_date=now + MAX_CLOCK_SKEW, account_type=account_type,
                           access_key_uuid=key.uuid)
