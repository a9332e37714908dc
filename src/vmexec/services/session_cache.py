"""Live sessions in memory, so that a request's session check costs no database round trip.

Every API call checks its session; before this cache that was a SELECT (and its thread hops to
SQLite) on every call, a good part of what the API adds to a command. An entry is the session
as the database last showed it (its account's name and type with it):

- **Revocations in this process apply at once.** Whatever ends sessions here (LogOut, a
  password change, UpdateAccount, DeleteAccount) forgets them after it committed; a check that
  read the database before such a revocation and answers after it does not put its entry back
  (:attr:`SessionCache.revision`: any revocation between a read and its ``put`` voids the put).
- **Expiry** is checked against the entry's ``expired_date`` at every use, as the database
  would be; renewals write the new date to the database and the entry together.
- **Other processes** (several servers on one PostgreSQL database) revoke sessions only in
  the database: an entry is trusted for at most ``ttl`` seconds (:data:`DEFAULT_TTL`) after it
  was read, then read again. So a session ended by another server is refused here within
  ``ttl``; one ended by this server, at once.

Bounded: at most ``size`` entries, the least recently read dropped first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

#: Seconds an entry is trusted without reading the database again (see the module doc).
DEFAULT_TTL = 2.0
#: Entries kept at most.
DEFAULT_SIZE = 10_000


@dataclass(slots=True)
class CachedSession:
    """A session row and its account, as last read (``expired_date`` as last renewed)."""

    account_uuid: str
    account_name: str
    account_type: str
    user_uuid: str
    create_date: datetime
    expired_date: datetime
    #: The clock's time when the database last showed this session.
    read_at: float


class SessionCache:
    """Sessions by token hash (see the module doc). One per server; not thread-safe (the
    event loop's)."""

    def __init__(self, *, ttl: float = DEFAULT_TTL, size: int = DEFAULT_SIZE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._size = size
        self.clock = clock
        self._entries: OrderedDict[str, CachedSession] = OrderedDict()
        #: Counts revocations: a read of the database that saw another revision than the
        #: current one may have seen a session that is revoked since.
        self.revision = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token_hash: str) -> CachedSession | None:
        """The entry of ``token_hash`` if it was read within ``ttl`` (else None: read the
        database). Its expiry is the caller's to check."""
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        if self.clock() - entry.read_at >= self.ttl:
            del self._entries[token_hash]
            return None
        return entry

    def put(self, token_hash: str, entry: CachedSession, *, revision: int) -> None:
        """Keep ``entry``, read from the database at ``revision`` (:attr:`revision` before
        the read): not when a revocation came since, which it may not show."""
        if revision != self.revision or self.ttl <= 0:
            return
        self._entries[token_hash] = entry
        self._entries.move_to_end(token_hash)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def forget(self, token_hash: str) -> None:
        """The session ended (or may have): the next check reads the database."""
        self.revision += 1
        self._entries.pop(token_hash, None)

    def forget_account(self, account_uuid: str, *, keep: str | None = None) -> None:
        """Every session of the account ended or changed (its name, its password), but for
        the one of token hash ``keep``."""
        self.revision += 1
        for token_hash in [h for h, e in self._entries.items()
                           if e.account_uuid == account_uuid and h != keep]:
            del self._entries[token_hash]
