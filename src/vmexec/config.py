"""Server settings: defaults < config file (TOML) < ``VMEXEC_*`` env vars < explicit arguments.

The config file is named by the ``config_file`` argument or ``VMEXEC_CONFIG``; its top-level
keys are the field names below (``db = "postgresql://..."``, ``session_timeout = 3600``, ...).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
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


def default_secret_key_file() -> Path:
    """Where a generated ``secret_key`` is kept: ``secret.key`` in the user's data directory."""
    return Path(platformdirs.user_data_dir("vmexec", appauthor=False)) / "secret.key"


def default_node_id() -> str:
    """This process's node id: host name, process id and a random suffix (unique per process,
    also across containers that reuse process ids)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def async_db_url(url: str) -> str:
    """Give a plain ``postgresql://`` / ``sqlite://`` URL its asyncio driver."""
    for plain, driver in (("postgresql://", "postgresql+asyncpg://"),
                          ("postgres://", "postgresql+asyncpg://"),
                          ("sqlite://", "sqlite+aiosqlite://")):
        if url.startswith(plain):
            return driver + url[len(plain):]
    return url


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(entry: str) -> IPNetwork:
    """A network of a ``webhook_deny`` entry (an address is a network of one). Raises
    ValueError naming the entry."""
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{entry!r} is not a network such as 10.0.0.0/8 or fd00::/8") from None


def parse_destination(entry: str) -> IPNetwork | str:
    """A ``webhook_allow`` entry: a network, or a host name (lowercase). Raises ValueError
    naming the entry."""
    text = entry.strip()
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        pass
    name = text.lower().rstrip(".")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(
            label and len(label) <= 63 and label.replace("-", "").isalnum()
            and label.isascii() for label in labels):
        raise ValueError(f"{entry!r} is neither a network (127.0.0.1/32) nor a host name "
                         "(hooks.example.com)")
    return name


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the server to this machine (``127.0.0.0/8``,
    ``::1``, ``localhost``); ``0.0.0.0``, ``::`` and any other address or name do not."""
    if host.strip().lower().rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip().strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


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
    secret_key: SecretStr | None = Field(
        default=None, min_length=32,
        description="encrypts the access key secrets stored in the database (at least 32 "
                    "characters); unset: one is generated at the first start into "
                    "secret_key_file (mode 0600). Changing it makes existing access keys "
                    "unusable")
    secret_key_file: Path = Field(
        default_factory=default_secret_key_file,
        description="where the generated secret_key is kept when secret_key is unset")
    allow_default_password: bool = Field(
        default=False,
        description="listen on a non-loopback address although 'admin' still has the "
                    "default password (refused otherwise)")
    login_max_failures_per_account: int = Field(
        default=5, ge=1, description="failed logins of one account within login_failure_window "
                                     "after which its logins are refused until the window passes")
    login_max_failures_per_address: int = Field(
        default=20, ge=1, description="the same, per client address")
    login_failure_window: float = Field(default=300.0, gt=0,
                                        description="seconds a failed login counts for")
    password_check_concurrency: int = Field(
        default=1, ge=1, le=64,
        description="argon2 password checks run at once (each takes a core for tens of ms)")
    password_check_queue: int = Field(
        default=32, ge=0, description="password checks that may wait for one; more are "
                                      "refused at once (retry in 1 s)")
    password_hash_time_cost: int = Field(
        default=3, ge=1, le=64,
        description="argon2id passes per password hash (RFC 9106's recommendation: 3)")
    password_hash_memory_kib: int = Field(
        default=64 * 1024, ge=1024, le=4 * 1024 * 1024,
        description="argon2id memory per password hash, KiB (RFC 9106's recommendation: "
                    "64 MiB); a hash keeps the parameters it was made with")
    session_timeout: float = Field(default=7200.0, gt=0, description="seconds; renewed on use")
    post_wait: float = Field(default=5.0, ge=0,
                             description="seconds a POST exec waits before answering 202")
    job_retention: float = Field(default=7 * 86400.0, gt=0,
                                 description="seconds async job results are kept")
    output_cap: int = Field(
        default=16 * 1024 * 1024, ge=0,
        description="bytes of output kept per execution (stdout and stderr together); more "
                    "is dropped and the execution marked truncated")
    execution_retention: float = Field(
        default=30 * 86400.0, gt=0,
        description="seconds execution records and their output are kept")
    guest_file_retention: float = Field(
        default=7 * 86400.0, ge=2 * 86400.0,
        description="seconds a run's files may stay in a guest when their cleanup was lost "
                    "(e.g. vmexec restarted); the next cleanup in that directory removes them. "
                    "At least 2 days: a command may run for 1")
    cleanup_interval: float = Field(default=3600.0, gt=0,
                                    description="seconds between purges of expired data")
    webhook_attempts: int = Field(default=5, ge=1, le=20)
    webhook_timeout: float = Field(default=10.0, gt=0, description="seconds per delivery")
    webhook_backoff: float = Field(default=1.0, ge=0,
                                   description="seconds before the 2nd attempt, doubling")
    webhook_allow: list[str] = Field(
        default_factory=list,
        description="webhook destinations allowed although refused by default (loopback, "
                    "link-local, cloud metadata) or by webhook_deny: networks "
                    "('127.0.0.1/32', 'fd00::/8') or host names ('hooks.example.com')")
    webhook_deny: list[str] = Field(
        default_factory=list,
        description="networks refused as webhook destinations beside the default ones, "
                    "e.g. private ranges ('10.0.0.0/8')")
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
    metrics_token: SecretStr | None = Field(
        default=None,
        description="bearer token that GET /metrics requires from clients that are not on "
                    "this machine (loopback, without proxy headers, needs none); unset: "
                    "/metrics answers loopback clients only")
    audit_retention: float = Field(default=90 * 86400.0, gt=0,
                                   description="seconds audit entries are kept")
    node_id: str = Field(
        default_factory=default_node_id, min_length=1, max_length=128,
        description="this node's name among the nodes sharing the database (the owner of the "
                    "jobs it runs and the hosts it watches); default: host name, process id "
                    "and a random suffix. Two "
                    "live processes must never share one; a fixed one lets a restarted node "
                    "take back its own jobs at once instead of after their lease")
    job_lease: float = Field(
        default=30.0, ge=2.0, le=3600.0,
        description="seconds a node owns a running job without renewing it (it renews every "
                    "third of it); a peer finishes the jobs of a node silent that long")
    libvirt_uri: str = Field(default="qemu:///system",
                             description="the local libvirt, registered as a host at start "
                                         "(it must pass the host URI policy above)")
    libvirt_idle_close: float = Field(
        default=60.0, gt=0,
        description="seconds a libvirt connection no call used stays open (a node connects "
                    "to the hosts it does not own only to run commands on their VMs)")
    host_lease: float = Field(
        default=15.0, ge=1.0,
        description="seconds a node owns a host (watches and resyncs it) without renewing; "
                    "a peer takes the host over once this expired (the owner died)")

    @field_validator("db")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return async_db_url(value)

    @field_validator("webhook_allow")
    @classmethod
    def _allowed_destinations(cls, value: list[str]) -> list[str]:
        for entry in value:
            parse_destination(entry)  # raises ValueError naming the bad entry
        return value

    @field_validator("webhook_deny")
    @classmethod
    def _denied_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            parse_network(entry)
        return value

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
