"""``vmexec serve``: the ZStack-compatible HTTP API."""

from __future__ import annotations

import asyncio
import enum
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from vmexec.cli.server_extra import missing


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


#: Seconds open requests get to finish at shutdown; jobs still running are resumed at restart.
GRACEFUL_SHUTDOWN = 5
#: Seconds an idle keep-alive connection stays open. Longer than clients' own idle expiry
#: (httpx 5 s, OkHttp 5 min is capped by this): a server closing a connection at the moment a
#: client reuses it makes that request fail with a connection reset.
KEEP_ALIVE = 75


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: Annotated[str | None, typer.Option(help="Address to listen on [127.0.0.1]")] = None,
        port: Annotated[int | None, typer.Option(help="Port to listen on [8080]")] = None,
        db: Annotated[str | None, typer.Option(
            help="Database URL: sqlite:///FILE or postgresql://USER:PASS@HOST/DB "
                 "[an SQLite file in the user's data directory]")] = None,
        config: Annotated[Path | None, typer.Option(
            help="TOML file with settings (also $VMEXEC_CONFIG); VMEXEC_* env vars win "
                 "over it, options over both", exists=True, dir_okay=False)] = None,
        log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
        log_format: Annotated[LogFormat, typer.Option(
            help="text: readable lines; json: one JSON object per line (a line per API call "
                 "and per execution, with their fields)")] = LogFormat.TEXT,
        allow_default_password: Annotated[bool | None, typer.Option(
            "--allow-default-password",
            help="Listen on a non-loopback address even though 'admin' still has the default "
                 "password (refused otherwise)", show_default=False)] = None,
    ) -> None:
        """Serve the ZStack-compatible API (ExecuteGuestVmCommand, sessions, VMs, hosts)."""
        # Imported here: `vmexec --help` stays fast, and the client-only install (without
        # the server extra) still has every other command.
        try:
            import uvicorn

            from vmexec.config import Settings, is_loopback
            from vmexec.server import UnsafeStart, configure_logging, create_app, preflight
        except ImportError as exc:
            missing(exc)

        overrides: dict[str, Any] = {"host": host, "port": port, "db": db,
                                     "config_file": config,
                                     "allow_default_password": allow_default_password}
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
        configure_logging(log_level, log_format.value)
        if not is_loopback(settings.host) and not settings.allow_default_password:
            # Checked before uvicorn starts, so that the refusal is one clear line, not a
            # failed application startup with a traceback.
            try:
                asyncio.run(preflight(settings))
            except UnsafeStart as exc:
                print(f"error: {exc}", file=sys.stderr, flush=True)
                raise typer.Exit(2) from None
        uvicorn.run(create_app(settings, freeze_gc=True), host=settings.host, port=settings.port,
                    log_level=log_level.lower(), timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
                    proxy_headers=False, timeout_keep_alive=KEEP_ALIVE,
                    # vmexec's own handler formats uvicorn's lines too; its line per API
                    # call (vmexec.api) replaces uvicorn's access log.
                    log_config=None, access_log=False)
