"""Password hashing and checking with argon2, off the event loop and a bounded number at a time.

argon2 is slow on purpose (tens of milliseconds and 64 MiB each). Run on the event loop it
stalls every request; run on an unbounded pool, a flood of logins takes every core from the
commands. So checks run on a pool of ``concurrency`` threads of their own, at most ``queue``
more wait for one, and further ones are refused at once (:class:`PasswordCheckBusy`) instead of
piling up.

A check of an account that does not exist costs the same as a wrong password: it verifies
against a dummy hash, so the reply time does not tell which accounts exist.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

T = TypeVar("T")

#: Seconds a caller refused for a full queue is told to wait: checks take tens of ms.
BUSY_RETRY_AFTER = 1.0


class PasswordCheckBusy(Exception):
    """Too many password checks are waiting already; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: float = BUSY_RETRY_AFTER) -> None:
        super().__init__(f"too many logins at once; retry in {retry_after:g}s")
        self.retry_after = retry_after


class PasswordChecker:
    """Hashes and verifies passwords (the SHA-512 hex digests ZStack clients send).

    ``hasher`` is argon2-cffi's ``PasswordHasher`` (tests pass a subclass that counts calls);
    without one, argon2id with ``time_cost`` passes over ``memory_kib`` KiB (argon2-cffi's
    defaults, RFC 9106's recommendation). A stored hash keeps the parameters it was made with,
    and is checked with them.
    """

    def __init__(self, hasher: PasswordHasher | None = None, *, time_cost: int = 3,
                 memory_kib: int = 64 * 1024, concurrency: int = 1, queue: int = 32) -> None:
        self.hasher = hasher or PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        self._pool = ThreadPoolExecutor(max_workers=concurrency,
                                        thread_name_prefix="vmexec-argon2")
        self._slots = asyncio.Semaphore(concurrency)
        self._max_waiting = queue
        self._waiting = 0
        self._dummy: str | None = None

    async def _run(self, work: Callable[..., T], *args: str) -> T:
        if self._slots.locked() and self._waiting >= self._max_waiting:
            raise PasswordCheckBusy()
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)
        finally:
            self._slots.release()

    async def hash(self, digest: str) -> str:
        """The argon2 hash to store for ``digest``. Raises PasswordCheckBusy."""
        return await self._run(self.hasher.hash, digest)

    async def verify(self, stored: str | None, digest: str) -> bool:
        """Whether ``digest`` matches the ``stored`` hash; ``None`` (no such account) costs a
        verification against a dummy hash and is False. Raises PasswordCheckBusy."""
        if stored is None:
            await self._run(self._verify, await self.dummy_hash(), digest)
            return False
        return await self._run(self._verify, stored, digest)

    async def dummy_hash(self) -> str:
        """A hash of a random secret, made once (at start, so that the first check of an
        unknown account costs no more than the others). Raises PasswordCheckBusy."""
        if self._dummy is None:
            # Same parameters as real hashes, so a dummy check costs what a real one does.
            self._dummy = await self.hash(secrets.token_hex(64))
        return self._dummy

    def _verify(self, stored: str, digest: str) -> bool:
        try:
            return self.hasher.verify(stored, digest)
        except (VerificationError, InvalidHashError):
            return False

    def close(self) -> None:
        """Stop the pool's threads (checks in progress finish)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
