"""``vmexec cp SRC DST``: a file into or out of a VM's guest, as ``scp`` names them.

``VM:/abs/path`` is a file in a guest (VM: a name or uuid), anything else a local path, ``-``
our stdin or stdout. A local directory as the destination takes the guest file's name; a
guest path ending in ``/`` takes the local file's. A download goes to a temporary file beside
the destination, renamed when complete (as the server does in the guest), so a failed copy
leaves nothing. A progress bar on stderr when it is a terminal.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from vmexec.cli.client_run import EXIT_USAGE, fail, run
from vmexec.client import AsyncClient
from vmexec.client.client import Progress as ProgressCallback


@dataclass(frozen=True)
class Remote:
    vm: str
    path: str


def parse_location(text: str) -> Remote | str:
    """``VM:/path`` as a Remote; a local path (or ``-``) as it is. A ``:`` after a ``/`` is
    part of a local path (``./a:b``), as in scp."""
    vm, colon, path = text.partition(":")
    if not colon or "/" in vm or not vm:
        return text
    return Remote(vm, path)


@contextlib.contextmanager
def _progress(label: str) -> Iterator[ProgressCallback | None]:
    """A progress bar on stderr when it is a terminal: its update function (else None)."""
    if not sys.stderr.isatty():
        yield None
        return
    bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TimeRemainingColumn(),
                   console=Console(file=sys.stderr), transient=True)
    with bar:
        task = bar.add_task(label, total=None)

        def report(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)
        yield report


def _upload(source: str, remote: Remote, mode: str | None, owner: str | None) -> int:
    path = remote.path
    if path.endswith("/"):
        if source == "-":
            fail("cp - VM:DIR/: name the file in the guest", EXIT_USAGE)
        path += Path(source).name
    try:
        stream: BinaryIO = (sys.stdin.buffer if source == "-"
                            else open(source, "rb"))
    except OSError as exc:
        fail(f"{source}: {exc.strerror}", EXIT_USAGE)

    async def action(client: AsyncClient) -> int:
        vm = await client.find_vm(remote.vm)
        with _progress(posixpath.basename(path)) as report:
            return await client.push(vm.uuid, path, stream, mode=mode, owner=owner,
                                     progress=report)

    try:
        return run(action)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def _download(remote: Remote, target: str) -> int:
    if target == "-":
        async def to_stdout(client: AsyncClient) -> int:
            vm = await client.find_vm(remote.vm)
            done = await client.pull_to(vm.uuid, remote.path, sys.stdout.buffer)
            sys.stdout.buffer.flush()
            return done
        return run(to_stdout)
    destination = Path(target)
    if destination.is_dir():
        destination = destination / posixpath.basename(remote.path)
    try:
        handle, temp = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part",
                                        dir=destination.parent)
    except OSError as exc:
        fail(f"{destination.parent}: {exc.strerror}", EXIT_USAGE)
    placed = False
    try:
        with os.fdopen(handle, "wb") as out:
            async def action(client: AsyncClient) -> int:
                vm = await client.find_vm(remote.vm)
                with _progress(destination.name) as report:
                    return await client.pull_to(vm.uuid, remote.path, out, progress=report)
            done = run(action)
        os.chmod(temp, 0o666 & ~_umask())
        os.replace(temp, destination)
        placed = True
        return done
    finally:
        if not placed:
            with contextlib.suppress(OSError):
                os.unlink(temp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def cp(
    source: Annotated[str, typer.Argument(metavar="SRC", help="VM:/path, a local file, or -")],
    destination: Annotated[str, typer.Argument(metavar="DST",
                                               help="VM:/path, a local file or directory, "
                                                    "or -")],
    mode: Annotated[str | None, typer.Option(
        help="Into a guest: the file's mode, octal (default: the replaced file's, else "
             "0644).")] = None,
    owner: Annotated[str | None, typer.Option(
        help="Into a guest: user[:group] to own the file (default: root).")] = None,
) -> None:
    """Copy a file into or out of a VM's guest: `vmexec cp ./app.tar web-1:/opt/app.tar`,
    `vmexec cp web-1:/var/log/syslog .`; `-` is stdin or stdout."""
    src, dst = parse_location(source), parse_location(destination)
    if isinstance(src, Remote) == isinstance(dst, Remote):
        fail("copy between a VM and here: one of SRC and DST is VM:/path, the other local",
             EXIT_USAGE)
    if isinstance(dst, Remote):
        assert isinstance(src, str)
        _upload(src, dst, mode, owner)
    else:
        assert isinstance(src, Remote) and isinstance(dst, str)
        if mode is not None or owner is not None:
            fail("--mode and --owner are for a copy into a guest", EXIT_USAGE)
        _download(src, dst)
