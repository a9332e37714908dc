"""``vmexec serve``: the ZStack-compatible HTTP API."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve() -> None:
        """Serve the ZStack-compatible API."""
        raise typer.Exit(1)
