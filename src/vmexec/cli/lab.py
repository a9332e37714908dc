"""``vmexec lab ...``: real guest VMs for development, tests and the demo.

Results are JSON on stdout (for scripts and the demo); progress goes to stderr.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Annotated

import typer

from vmexec.lab import Lab, LabError
from vmexec.lab.image import ImageError

app = typer.Typer(help="Real guest VMs under libvirt for development, tests and the demo.",
                  no_args_is_help=True)

Prefix = Annotated[str, typer.Option(help="Lab instance: domains are named PREFIX-1..N.")]


def _progress(message: str) -> None:
    print(f"lab: {message}", file=sys.stderr, flush=True)


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2))


def _lab(prefix: str) -> Lab:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="lab: %(levelname)s %(message)s")
    return Lab(prefix, progress=_progress)


@app.command()
def up(vms: Annotated[int, typer.Option(min=0, help="How many agent VMs to run.")] = 3,
       variants: Annotated[bool, typer.Option(
           help="Also create the error-path VMs: nochannel, noagent, noexec, stopped.")] = False,
       prefix: Prefix = "vmexec-lab") -> None:
    """Start VMS lab VMs with answering agents (reusing running ones); print them as JSON."""
    started = time.monotonic()
    try:
        result = _lab(prefix).up(vms, variants=variants)
    except (LabError, ImageError) as exc:
        _progress(f"error: {exc}")
        raise typer.Exit(1) from None
    _progress(f"{len(result)} VM(s) ready in {time.monotonic() - started:.1f} s")
    _print_json([vm.to_json() for vm in result])


@app.command()
def status(prefix: Prefix = "vmexec-lab") -> None:
    """Print every lab VM that exists, as JSON (an empty list when there is none)."""
    _print_json([vm.to_json() for vm in _lab(prefix).status()])


@app.command()
def down(prefix: Prefix = "vmexec-lab") -> None:
    """Remove the lab's VMs, console logs, and the libvirtd/virtlogd it started."""
    try:
        report = _lab(prefix).down()
    except LabError as exc:
        _progress(f"error: {exc}")
        raise typer.Exit(1) from None
    _print_json(report.to_json())
    if report.remaining:
        raise typer.Exit(1)


@app.command()
def image(force: Annotated[bool, typer.Option(help="Rebuild even when cached.")] = False) -> None:
    """Build the guest image (or find it in the cache) and print its paths as JSON."""
    from vmexec.lab.image import build_image

    try:
        built = build_image(force=force)
    except ImageError as exc:
        _progress(f"error: {exc}")
        raise typer.Exit(1) from None
    _print_json(built.to_json())
