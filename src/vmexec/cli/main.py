"""The ``vmexec`` command: wires the sub-command modules together, nothing else."""

from __future__ import annotations

import typer

from vmexec.cli import client, lab, serve

app = typer.Typer(
    name="vmexec",
    help="Run commands inside KVM/QEMU guest VMs through the QEMU guest agent.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(lab.app, name="lab")
serve.register(app)
client.register(app)

if __name__ == "__main__":
    app()
