"""The SQLite database file is the owner's only, and its errors show no statement parameters
(issue 10, B9): it holds password hashes, session hashes and webhook credentials."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from vmexec.config import Settings
from vmexec.db.migrate import upgrade
from vmexec.db.session import create_engine


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The umask most systems run with (files 0644, directories 0755 unless told)."""
    old = os.umask(0o022)
    yield
    os.umask(old)


async def _open_and_migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)  # writes: the WAL and shared-memory files appear
    finally:
        await engine.dispose()


async def test_a_new_database_and_its_directory_are_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "new" / "dir" / "vmexec.db"
    await _open_and_migrate(f"sqlite:///{db}")
    assert _mode(db.parent) == 0o700
    files = list(db.parent.iterdir())
    assert db in files
    for file in files:
        assert _mode(file) == 0o600, file


async def test_the_default_database_path_is_owner_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VMEXEC_DB", raising=False)
    monkeypatch.delenv("VMEXEC_CONFIG", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    url = Settings().db
    db = tmp_path / "data" / "vmexec" / "vmexec.db"
    assert url.endswith(str(db))
    await _open_and_migrate(url)
    assert _mode(db.parent) == 0o700
    assert _mode(db) == 0o600


async def test_an_existing_database_open_to_others_is_narrowed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "shared.db"
    await _open_and_migrate(f"sqlite:///{db}")
    db.chmod(0o644)
    await _open_and_migrate(f"sqlite:///{db}")
    assert _mode(db) == 0o600
    assert "readable by others" in caplog.text


async def test_database_errors_do_not_show_statement_parameters(tmp_path: Path) -> None:
    """Error messages reach logs and SYS.1000 replies: a secret bound to a failing statement
    must not be in them."""
    engine = create_engine(f"sqlite:///{tmp_path / 'errors.db'}")
    try:
        await upgrade(engine)
        insert = text("INSERT INTO api_jobs (uuid, api, account_uuid, state, request, webhook, "
                      "created_at, expires_at) VALUES ('j', 'a', 'x', 'running', '{}', :hook, "
                      "'2026-01-01', '2026-01-02')")
        hook = {"hook": "http://user:s3cret-pw@hooks.example.com/"}
        async with engine.begin() as conn:
            await conn.execute(insert, hook)
        with pytest.raises(IntegrityError) as failed:
            async with engine.begin() as conn:
                await conn.execute(insert, hook)  # the same job UUID again
    finally:
        await engine.dispose()
    assert "UNIQUE constraint failed" in str(failed.value)
    assert "s3cret-pw" not in str(failed.value)
