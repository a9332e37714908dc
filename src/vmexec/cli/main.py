"""The ``vmexec`` command: wires the sub-command modules together, nothing else."""

from __future__ import annotations

from typing import Annotated

import typer

import vmexec
from vmexec.cli import client, lab, serve

app = typer.Typer(
    name="vmexec",
    help="Run commands inside KVM/QEMU guest VMs through the QEMU guest agent.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"vmexec {vmexec.__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option(
        "--version", help="Print vmexec's version and exit.", is_eager=True,
        callback=_print_version)] = False) -> None:
    """Run commands inside KVM/QEMU guest VMs through the QEMU guest agent."""


app.add_typer(lab.app, name="lab")
serve.register(app)
client.register(app)

if __name__ == "__main__":
    app()
