"""``vmexec lab ...``: real guest VMs for development, tests and the demo.

Results are JSON on stdout (for scripts and the demo); progress goes to stderr.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from vmexec.cli.server_extra import missing

if TYPE_CHECKING:
    from vmexec.lab import Lab

app = typer.Typer(help="Real guest VMs under libvirt for development, tests and the demo.",
                  no_args_is_help=True)

Prefix = Annotated[str, typer.Option(help="Lab instance: domains are named PREFIX-1..N.")]


def _progress(message: str) -> None:
    print(f"lab: {message}", file=sys.stderr, flush=True)


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2))


def _lab(prefix: str) -> Lab:
    # Imported when a command runs: the lab needs libvirt-python (the server extra).
    try:
        from vmexec.lab import Lab
    except ImportError as exc:
        missing(exc)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="lab: %(levelname)s %(message)s")
    return Lab(prefix, progress=_progress)


@contextmanager
def _failures() -> Iterator[None]:
    """The lab's own failures as one line on stderr and exit status 1."""
    from vmexec.lab import LabError
    from vmexec.lab.image import ImageError

    try:
        yield
    except (LabError, ImageError) as exc:
        _progress(f"error: {exc}")
        raise typer.Exit(1) from None


@app.command()
def up(vms: Annotated[int, typer.Option(min=0, help="How many agent VMs to run.")] = 3,
       variants: Annotated[bool, typer.Option(
           help="Also create the error-path VMs: nochannel, noagent, noexec, stopped.")] = False,
       prefix: Prefix = "vmexec-lab") -> None:
    """Start VMS lab VMs with answering agents (reusing running ones); print them as JSON."""
    started = time.monotonic()
    lab = _lab(prefix)
    with _failures():
        result = lab.up(vms, variants=variants)
    _progress(f"{len(result)} VM(s) ready in {time.monotonic() - started:.1f} s")
    _print_json([vm.to_json() for vm in result])


@app.command()
def status(prefix: Prefix = "vmexec-lab") -> None:
    """Print every lab VM that exists, as JSON (an empty list when there is none)."""
    _print_json([vm.to_json() for vm in _lab(prefix).status()])


@app.command()
def down(prefix: Prefix = "vmexec-lab") -> None:
    """Remove the lab's VMs, console logs, and the libvirtd/virtlogd it started."""
    lab = _lab(prefix)
    with _failures():
        report = lab.down()
    _print_json(report.to_json())
    if report.remaining:
        raise typer.Exit(1)


@app.command()
def image(force: Annotated[bool, typer.Option(help="Rebuild even when cached.")] = False) -> None:
    """Build the guest image (or find it in the cache) and print its paths as JSON."""
    _lab("vmexec-lab")  # the server extra is there
    from vmexec.lab.image import build_image

    with _failures():
        built = build_image(force=force)
    _print_json(built.to_json())
