"""Settings: defaults < TOML config file < VMEXEC_* environment < explicit values."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmexec.config import Settings, async_db_url


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VMEXEC_DB", "VMEXEC_PORT", "VMEXEC_CONFIG", "VMEXEC_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.port == 8080 and settings.host == "127.0.0.1"
    assert settings.db.startswith("sqlite+aiosqlite:///") and settings.db.endswith("vmexec.db")
    assert settings.admin_password.get_secret_value() == "password"
    assert (settings.session_timeout, settings.post_wait) == (7200, 5)
    assert settings.job_retention == 7 * 86400
    # argon2id as RFC 9106 recommends (tests' servers use a cheaper one: fixtures/server.py)
    assert (settings.password_hash_time_cost, settings.password_hash_memory_kib) == (3, 65536)


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "vmexec.toml"
    config.write_text('port = 9000\npost_wait = 2.5\nsession_timeout = 60\n'
                      'db = "sqlite:////srv/vmexec.db"\n')
    monkeypatch.setenv("VMEXEC_CONFIG", str(config))
    monkeypatch.setenv("VMEXEC_POST_WAIT", "1")
    settings = Settings(session_timeout=30)
    assert settings.port == 9000                   # from the file
    assert settings.post_wait == 1                 # the environment beats the file
    assert settings.session_timeout == 30          # an explicit value beats both
    assert settings.db == "sqlite+aiosqlite:////srv/vmexec.db"
    monkeypatch.delenv("VMEXEC_CONFIG")
    assert Settings(config_file=config).port == 9000  # `vmexec serve --config FILE`


@pytest.mark.parametrize(("given", "used"), [
    ("postgresql://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
    ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
    ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
])
def test_database_urls_get_their_async_driver(given: str, used: str) -> None:
    assert async_db_url(given) == used


def test_invalid_values_are_refused() -> None:
    with pytest.raises(ValueError, match="session_timeout"):
        Settings(session_timeout=0)
