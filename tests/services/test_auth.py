"""AuthService on a real SQLite database, in-process: unknown accounts cost a real argon2
verification, and password checks run a bounded number at a time (issue 10, B10)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from vmexec.db.migrate import upgrade
from vmexec.db.session import create_engine, create_sessionmaker
from vmexec.services.auth import AuthService, InvalidCredentials, LoginRefused
from vmexec.services.login_throttle import LoginThrottle, ThrottleLimits
from vmexec.services.passwords import PasswordChecker
from vmexec.zstack.passwords import sha512_hex


class CountingHasher(PasswordHasher):
    """argon2-cffi's own hasher, counting the verifications it really does (and, with
    ``hold``, keeping each one busy that long, to see how many overlap)."""

    def __init__(self, hold: float = 0.0) -> None:
        super().__init__()
        self.hold = hold
        self.verified: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self._lock:
            self.verified.append(hash if isinstance(hash, str) else hash.decode())
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            if self.hold:
                time.sleep(self.hold)
            return super().verify(hash, password)
        finally:
            with self._lock:
                self.running -= 1


async def _service(tmp_path: Path, hasher: PasswordHasher, **checker: int
                   ) -> AsyncIterator[AuthService]:
    engine = create_engine(f"sqlite:///{tmp_path / 'auth.db'}")
    await upgrade(engine)
    auth = AuthService(create_sessionmaker(engine), session_timeout=timedelta(hours=1),
                       passwords=PasswordChecker(hasher, **checker),
                       throttle=LoginThrottle(ThrottleLimits(max_failures_per_account=1000,
                                                             max_failures_per_address=1000)))
    try:
        await auth.ensure_admin("s3cret")
        yield auth
    finally:
        auth.close()
        await engine.dispose()


@pytest.fixture
async def counted(tmp_path: Path) -> AsyncIterator[tuple[AuthService, CountingHasher]]:
    hasher = CountingHasher()
    async for auth in _service(tmp_path, hasher):
        yield auth, hasher


async def test_an_unknown_account_costs_a_real_verification(
        counted: tuple[AuthService, CountingHasher]) -> None:
    auth, hasher = counted
    hasher.verified.clear()
    with pytest.raises(InvalidCredentials):
        await auth.login("nobody", sha512_hex("s3cret"))
    assert len(hasher.verified) == 1
    dummy = hasher.verified[0]
    # A real argon2 hash with the hasher's own parameters: it costs what a real check costs.
    assert dummy.startswith("$argon2id$") and not hasher.check_needs_rehash(dummy)
    with pytest.raises(InvalidCredentials):
        await auth.login("admin", sha512_hex("wrong"))
    assert len(hasher.verified) == 2
    assert hasher.verified[1] != dummy  # admin's own hash this time
    session = await auth.login("admin", sha512_hex("s3cret"))
    assert len(hasher.verified) == 3
    assert await auth.is_valid(session.uuid)


async def test_password_checks_run_a_bounded_number_at_a_time(tmp_path: Path) -> None:
    hasher = CountingHasher(hold=0.2)
    async for auth in _service(tmp_path, hasher, concurrency=2, queue=100):
        hasher.most_at_once = 0
        outcomes = await asyncio.gather(
            *(auth.login("admin", sha512_hex("guess")) for _ in range(8)),
            return_exceptions=True)
        assert all(isinstance(o, InvalidCredentials) for o in outcomes), outcomes
        assert hasher.most_at_once == 2


async def test_checks_beyond_the_queue_are_refused_at_once(tmp_path: Path) -> None:
    hasher = CountingHasher(hold=0.3)
    async for auth in _service(tmp_path, hasher, concurrency=1, queue=2):
        hasher.verified.clear()
        outcomes = await asyncio.gather(
            *(auth.login("admin", sha512_hex("guess")) for _ in range(6)),
            return_exceptions=True)
        refused = [o for o in outcomes if isinstance(o, LoginRefused)]
        # One running, two waiting; the other three are refused without any argon2 work.
        assert len(refused) == 3 and len(hasher.verified) == 3
        assert all(r.retry_after == 1 for r in refused)
        # Refused attempts are not failures: the right password still gets in afterwards.
        assert (await auth.login("admin", sha512_hex("s3cret"))).account_name == "admin"
