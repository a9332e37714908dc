"""Where the CLI keeps its login: ``<user config dir>/vmexec/session.json`` (mode 0600).

The file holds the server URL and the session UUID that ``vmexec login`` got. ``VMEXEC_SERVER``
and ``VMEXEC_SESSION`` override what it holds (for scripts and CI that never log in).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import platformdirs

DEFAULT_SERVER = "http://127.0.0.1:8080"
SERVER_ENV = "VMEXEC_SERVER"
SESSION_ENV = "VMEXEC_SESSION"


class ConfigError(Exception):
    """The session file cannot be read or written (the message names it)."""


def session_file() -> Path:
    """``$XDG_CONFIG_HOME/vmexec/session.json`` (``~/.config/...`` by default) on Linux."""
    return Path(platformdirs.user_config_dir("vmexec", appauthor=False)) / "session.json"


@dataclass(frozen=True)
class Login:
    """The server to talk to and the session to use there (None: not logged in)."""

    server: str = DEFAULT_SERVER
    session: str | None = None
    account: str | None = None

    @classmethod
    def stored(cls) -> Login:
        """What the session file holds (defaults when there is none). Raises ConfigError."""
        path = session_file()
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"cannot read {path}: not a JSON object")
        return cls(server=str(data.get("server") or DEFAULT_SERVER),
                   session=data.get("session") or None, account=data.get("account") or None)

    @classmethod
    def current(cls) -> Login:
        """The stored login with the environment's overrides applied. Raises ConfigError."""
        stored = cls.stored()
        return cls(server=os.environ.get(SERVER_ENV) or stored.server,
                   session=os.environ.get(SESSION_ENV) or stored.session,
                   account=stored.account)

    def save(self) -> Path:
        """Write this login to the session file, readable by the user only. Raises ConfigError."""
        path = session_file()
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Created 0600 before anything is written: the session is a credential.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                os.fchmod(f.fileno(), 0o600)
                json.dump(asdict(self), f, indent=2)
                f.write("\n")
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ConfigError(f"cannot write {path}: {exc}") from None
        return path
