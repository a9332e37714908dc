"""``vmexec lab ...``: real guest VMs for development, tests and the demo."""

from __future__ import annotations

import typer

app = typer.Typer(help="Real guest VMs under libvirt for development, tests and the demo.",
                  no_args_is_help=True)
