"""Migration 0003: sessions kept in clear are dropped, their table keys on the token's hash
(issue 10, B9)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from vmexec.db.migrate import upgrade
from vmexec.db.session import create_engine


def _contents(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in directory.iterdir())


async def _upgrade(url: str, revision: str = "head") -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine, revision)
    finally:
        await engine.dispose()


async def test_sessions_stored_in_clear_are_dropped(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    await _upgrade(f"sqlite:///{db}", "0002_inventory")
    token = "0123456789abcdef0123456789abcdef"
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO accounts VALUES ('a', 'admin', 'hash', '2026-01-01', "
                     "'2026-01-01')")
        conn.execute("INSERT INTO sessions VALUES (?, 'a', 'a', '2026-01-01', '2099-01-01')",
                     (token,))
    conn.close()
    await _upgrade(f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(sessions)")]
        sessions = conn.execute("SELECT count(*) FROM sessions").fetchone()[0]
        accounts = conn.execute("SELECT name FROM accounts").fetchall()
    conn.close()
    assert columns[0] == "token_hash" and "uuid" not in columns
    assert sessions == 0 and accounts == [("admin",)]
    assert token.encode() not in _contents(tmp_path)


async def test_executions_get_a_state_from_their_outcome(tmp_path: Path) -> None:
    # Migration 0004 (issue 11): records from before keep their data and get the wire state.
    db = tmp_path / "old.db"
    await _upgrade(f"sqlite:///{db}", "0003_session_token_hash")
    rows = [("1" * 32, "exited", 0), ("2" * 32, "exited", 3), ("3" * 32, "timed_out", None),
            ("4" * 32, "failed", None), ("5" * 32, "running", None)]
    with sqlite3.connect(db) as conn:
        for uuid, outcome, exit_code in rows:
            conn.execute(
                "INSERT INTO executions (uuid, account_uuid, account_name, vm_uuid, platform, "
                "command, timeout_seconds, outcome, exit_code, requested_at) VALUES "
                "(?, 'a', 'admin', 'v', 'Linux', 'true', 60, ?, ?, '2026-01-01')",
                (uuid, outcome, exit_code))
    conn.close()
    await _upgrade(f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        states = dict(conn.execute("SELECT uuid, state FROM executions").fetchall())
        stored = conn.execute("SELECT sum(stdout_stored + stderr_stored) FROM executions")
        total = stored.fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert states == {"1" * 32: "Succeeded", "2" * 32: "Failed", "3" * 32: "TimedOut",
                      "4" * 32: "Failed", "5" * 32: "Running"}
    assert total == 0 and "execution_output" in tables

