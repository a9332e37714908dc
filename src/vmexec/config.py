"""Server settings: defaults < config file (TOML) < ``VMEXEC_*`` env vars < explicit arguments.

The config file is named by the ``config_file`` argument or ``VMEXEC_CONFIG``; its top-level
keys are the field names below (``db = "postgresql://..."``, ``session_timeout = 3600``, ...).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

CONFIG_ENV = "VMEXEC_CONFIG"
#: How hosts may be reached (:mod:`vmexec.hypervisor.uris` checks URIs against these).
HostTransport = Literal["local", "ssh", "tls", "tcp", "unix"]
ALL_HOST_TRANSPORTS: list[HostTransport] = ["local", "ssh", "tls", "tcp", "unix"]


def default_db_url() -> str:
    """An SQLite file in the user's data directory (created on first use)."""
    data = Path(platformdirs.user_data_dir("vmexec", appauthor=False))
    return f"sqlite+aiosqlite:///{data / 'vmexec.db'}"


def async_db_url(url: str) -> str:
    """Give a plain ``postgresql://`` / ``sqlite://`` URL its asyncio driver."""
    for plain, driver in (("postgresql://", "postgresql+asyncpg://"),
                          ("postgres://", "postgresql+asyncpg://"),
                          ("sqlite://", "sqlite+aiosqlite://")):
        if url.startswith(plain):
            return driver + url[len(plain):]
    return url


class _TomlFileSource(PydanticBaseSettingsSource):
    """Values from the TOML file named by ``config_file`` (argument) or ``$VMEXEC_CONFIG``."""

    def __init__(self, settings_cls: type[BaseSettings], path: str | None) -> None:
        super().__init__(settings_cls)
        self._values: dict[str, Any] = {}
        if path:
            with open(path, "rb") as f:
                self._values = tomllib.load(f)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._values.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    """Everything configurable about a vmexec server. Raises ``ValidationError`` when invalid."""

    model_config = SettingsConfigDict(env_prefix="VMEXEC_", extra="ignore")

    config_file: Path | None = Field(default=None, description="TOML file with these settings")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    db: str = Field(default_factory=default_db_url,
                    description="SQLAlchemy URL: sqlite+aiosqlite:///FILE or postgresql://...")
    admin_password: SecretStr = Field(
        default=SecretStr("password"),
        description="password of the 'admin' account created at first start (change it!)")
    session_timeout: float = Field(default=7200.0, gt=0, description="seconds; renewed on use")
    post_wait: float = Field(default=5.0, ge=0,
                             description="seconds a POST exec waits before answering 202")
    job_retention: float = Field(default=7 * 86400.0, gt=0,
                                 description="seconds async job results are kept")
    cleanup_interval: float = Field(default=3600.0, gt=0,
                                    description="seconds between purges of expired data")
    webhook_attempts: int = Field(default=5, ge=1, le=20)
    webhook_timeout: float = Field(default=10.0, gt=0, description="seconds per delivery")
    webhook_backoff: float = Field(default=1.0, ge=0,
                                   description="seconds before the 2nd attempt, doubling")
    host_transports: list[HostTransport] = Field(
        default_factory=lambda: list(ALL_HOST_TRANSPORTS),
        description="how hosts may be reached (AddKVMHost and libvirt_uri): local "
                    "(qemu:///system), ssh, tls, tcp, unix (agent-socket directories); "
                    "[\"local\", \"unix\"] keeps every connection on this machine")
    host_uri_parameters: list[str] = Field(
        default_factory=list,
        description="libvirt URI parameters allowed besides no_tty, no_verify and mode, e.g. "
                    "[\"keyfile\"]; parameters such as command, socket, netcat, keyfile, "
                    "pkipath name programs or files on this machine: allow them only if "
                    "everyone who can log in as admin may use them")
    libvirt_uri: str = Field(default="qemu:///system",
                             description="the local libvirt, registered as a host at start "
                                         "(it must pass the host URI policy above)")

    @field_validator("db")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return async_db_url(value)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = None
        if isinstance(init_settings, InitSettingsSource):
            path = init_settings.init_kwargs.get("config_file")
        path = path or os.environ.get(CONFIG_ENV)
        return (init_settings, env_settings,
                _TomlFileSource(settings_cls, str(path) if path else None))
