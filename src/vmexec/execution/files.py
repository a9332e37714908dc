"""Files in and out of a guest through the agent's ``guest-file-*`` commands.

An upload goes to a temporary file in the destination's directory, written in pieces of
:data:`WRITE_CHUNK` bytes (one ``guest-file-write`` each: requests beyond
:data:`~vmexec.agent.protocol.SAFE_REQUEST_BYTES` break qemu-ga); once the last piece is in,
one ``guest-exec`` of ``/bin/sh`` sets its mode and owner and renames it over the destination
(atomic within a directory). Whatever stops an upload before (an error, a client that went
away, a cancel) removes the temporary file: the destination is the old file or the new one,
never half of one.

A download reads :data:`READ_CHUNK` bytes per ``guest-file-read`` (libvirt refuses agent
replies over 10 MiB and RPC strings over 4 MiB; 2 MiB is 2.7 MiB of base64), one piece at a
time as the reader takes them: neither direction holds more than one piece in memory.

Linux guests only for now: Windows guests get :class:`GuestFileError` (``UNSUPPORTED``).
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import re
import secrets
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from vmexec.agent import errors as agent_errors
from vmexec.agent.client import FileChunk, GuestAgent
from vmexec.execution import errors
from vmexec.execution.errors import FileProblem
from vmexec.execution.faults import CALL_TIMEOUT, unavailable
from vmexec.execution.guestfiles import READ_CHUNK as READ_CHUNK
from vmexec.execution.models import Platform

#: Bytes per ``guest-file-write``: 90 KiB is 120 KiB of base64, within SAFE_REQUEST_BYTES
#: (128 KiB) with room for the request's JSON (a TCG guest writes about as many calls a
#: second whatever their size: larger pieces are faster).
WRITE_CHUNK = 90 * 1024
#: The largest file copied either way (a bound on a guest's disk, not on vmexec's memory:
#: files stream through in pieces).
MAX_FILE_BYTES = 16 * 1024 ** 3
#: Seconds the guest may take to rename, chmod, chown or remove a file.
FINISH_TIMEOUT = 30.0
#: ``mode``: octal permission bits.
MODE_PATTERN = re.compile(r"^[0-7]{3,4}$")
#: ``owner``: user[:group], names or ids (no shell characters reach the guest anyway: they
#: are arguments, never parsed by a shell).
OWNER_PATTERN = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]*(:[A-Za-z0-9._][A-Za-z0-9._-]*)?$")

# Puts the uploaded temporary file in place: $1 temp, $2 destination, $3 mode (empty: the
# old file's, else 644), $4 owner (empty: unchanged). Exit 21 when the destination is a
# directory (mv would move the file into it).
_FINISH = r"""
[ -d "$2" ] && { rm -f -- "$1"; echo "is a directory" >&2; exit 21; }
mode=$3
[ -z "$mode" ] && [ -e "$2" ] && mode=$(stat -c %a -- "$2" 2>/dev/null)
chmod "${mode:-644}" -- "$1" || { rm -f -- "$1"; exit 1; }
if [ -n "$4" ]; then chown -- "$4" "$1" || { rm -f -- "$1"; exit 1; }; fi
mv -f -- "$1" "$2" || { rm -f -- "$1"; exit 1; }
"""
_IS_DIRECTORY_STATUS = 21
T = TypeVar("T")


#: The guest's strerror texts (qemu-ga puts them in its error's desc) and what they mean.
_ERRNO_TEXTS: tuple[tuple[str, FileProblem], ...] = (
    ("no such file or directory", FileProblem.NOT_FOUND),
    ("not a directory", FileProblem.NOT_FOUND),
    ("permission denied", FileProblem.PERMISSION_DENIED),
    ("operation not permitted", FileProblem.PERMISSION_DENIED),
    ("read-only file system", FileProblem.PERMISSION_DENIED),
    ("no space left on device", FileProblem.DISK_FULL),
    ("disk quota exceeded", FileProblem.DISK_FULL),
    ("file too large", FileProblem.DISK_FULL),
    ("is a directory", FileProblem.IS_DIRECTORY),
)


def problem_of(text: str) -> FileProblem:
    """What a guest's error text says went wrong (FAILED when it says nothing known)."""
    lowered = text.lower()
    for needle, problem in _ERRNO_TEXTS:
        if needle in lowered:
            return problem
    return FileProblem.FAILED


def check_path(path: str, platform: Platform = Platform.LINUX) -> str:
    """``path`` if it names a file by an absolute path. Raises InvalidExecRequest,
    GuestFileError (UNSUPPORTED: a Windows guest)."""
    if platform is not Platform.LINUX:
        raise errors.GuestFileError(
            f"copying files is supported for Linux guests only, not {platform.value}",
            FileProblem.UNSUPPORTED)
    if not path.startswith("/"):
        raise errors.InvalidExecRequest(f"path[{path}] is not absolute (it must start with /)")
    if "\0" in path:
        raise errors.InvalidExecRequest("path has a NUL character")
    if path.endswith("/") or posixpath.basename(path) in ("", ".", ".."):
        raise errors.InvalidExecRequest(f"path[{path}] names a directory, not a file")
    return path


def _file_error(exc: agent_errors.AgentError, path: str, doing: str) -> errors.ExecError:
    """The error for an agent failure while ``doing`` something to ``path``."""
    if not isinstance(exc, agent_errors.AgentCommandError) or isinstance(
            exc, agent_errors.AgentCommandDisabled):
        return unavailable(exc)
    problem = problem_of(exc.message)
    return errors.GuestFileError(f"{doing} {path} in the guest failed: {exc.message}", problem)


@dataclass(frozen=True, slots=True)
class Download:
    """A file being read from a guest: its size when the guest knows it (a file in /proc has
    none), and its bytes, piece by piece (the handle is closed when they end or the iterator
    is closed)."""

    size: int | None
    chunks: AsyncIterator[bytes]


class GuestFiles:
    """Copies files into and out of one guest through its agent."""

    def __init__(self, agent: GuestAgent, platform: Platform = Platform.LINUX) -> None:
        self.agent = agent
        self.platform = platform

    async def upload(self, path: str, body: AsyncIterator[bytes], *, mode: str | None = None,
                     owner: str | None = None) -> int:
        """Write ``body`` to ``path`` (replacing it when it exists) and return its size.

        Raises:
            InvalidExecRequest: the path is not absolute, or the mode or owner is malformed.
            GuestFileError: the guest could not write it (no such directory, permission
                denied, disk full, the path is a directory, more than MAX_FILE_BYTES).
            GuestUnavailable, ExecDisabled: the agent cannot be used.
        """
        check_path(path, self.platform)
        if mode is not None and not MODE_PATTERN.match(mode):
            raise errors.InvalidExecRequest(f"mode[{mode}] is not octal permission bits, "
                                            "e.g. 0644")
        if owner is not None and not OWNER_PATTERN.match(owner):
            raise errors.InvalidExecRequest(f"owner[{owner}] is not user or user:group")
        await self._require_exec()
        await self._refuse_directory(path)
        directory, name = posixpath.split(path)
        temp = posixpath.join(directory, f".{name}.vmexec-{secrets.token_hex(6)}.part")
        try:
            handle = await self.agent.file_open(temp, "w", timeout=CALL_TIMEOUT)
        except agent_errors.AgentError as exc:
            raise _file_error(exc, path, "creating a file beside") from None
        written = 0
        placed = False
        try:
            try:
                written = await self._write_all(handle, body, path)
            except BaseException:
                await _shielded(self._close_quietly(handle))  # the first error is the one
                raise
            await self._close(handle, path)
            await self._finish(temp, path, mode, owner)
            placed = True
        finally:
            if not placed:
                # Shielded: a cancelled upload (the client went away) removes it too.
                await _shielded(self._remove(temp))
        return written

    async def _write_all(self, handle: int, body: AsyncIterator[bytes], path: str) -> int:
        pending = bytearray()
        written = 0

        async def put(piece: bytes) -> None:
            nonlocal written
            try:
                count = await self.agent.file_write(handle, piece, timeout=CALL_TIMEOUT)
            except agent_errors.AgentError as exc:
                raise _file_error(exc, path, "writing") from None
            if count < len(piece):
                raise errors.GuestFileError(
                    f"the guest took {written + count} of the bytes of {path}: its disk is "
                    "full", FileProblem.DISK_FULL)
            written += count

        async for data in body:
            pending += data
            if written + len(pending) > MAX_FILE_BYTES:
                raise errors.GuestFileError(f"the file is larger than {MAX_FILE_BYTES} bytes, "
                                            "the most vmexec copies", FileProblem.TOO_LARGE)
            while len(pending) >= WRITE_CHUNK:
                await put(bytes(pending[:WRITE_CHUNK]))
                del pending[:WRITE_CHUNK]
        if pending:
            await put(bytes(pending))
        return written

    async def _close(self, handle: int, path: str) -> None:
        """Close a written file: its last bytes reach the disk here (a full disk shows)."""
        try:
            await _shielded(self.agent.file_close(handle, timeout=CALL_TIMEOUT))
        except agent_errors.AgentError as exc:
            raise _file_error(exc, path, "writing") from None

    async def _require_exec(self) -> None:
        """ExecDisabled unless the agent runs commands: putting the file in place (and
        removing it after a failure) takes one, and a file that can be neither is not begun."""
        try:
            info = await self.agent.info(timeout=CALL_TIMEOUT)
        except agent_errors.AgentError as exc:
            raise unavailable(exc) from None
        if not info.enabled("guest-exec"):
            raise errors.ExecDisabled("the guest agent does not allow guest-exec, which puts "
                                      "an uploaded file in place: nothing was written")

    async def _refuse_directory(self, path: str) -> None:
        """GuestFileError (IS_DIRECTORY) when ``path`` is a directory: it can be opened but
        not read. Anything else is for the upload to find out."""
        try:
            handle = await self.agent.file_open(path, "r", timeout=CALL_TIMEOUT)
        except agent_errors.AgentCommandError:
            return  # not there (a new file), or not readable: the upload tells
        except agent_errors.AgentError as exc:
            raise unavailable(exc) from None
        try:
            await self.agent.file_read(handle, 1, timeout=CALL_TIMEOUT)
        except agent_errors.AgentCommandError as exc:
            if problem_of(exc.message) is FileProblem.IS_DIRECTORY:
                raise errors.GuestFileError(f"{path} is a directory in the guest",
                                            FileProblem.IS_DIRECTORY) from None
        except agent_errors.AgentError as exc:
            raise unavailable(exc) from None
        finally:
            with contextlib.suppress(agent_errors.AgentError):
                await self.agent.file_close(handle, timeout=CALL_TIMEOUT)

    async def _run(self, script: str, *args: str) -> tuple[int, str]:
        """Run ``/bin/sh -c script sh args...`` in the guest; its exit status and stderr."""
        pid = await self.agent.exec("/bin/sh", ["-c", script, "sh", *args],
                                    timeout=CALL_TIMEOUT)
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + FINISH_TIMEOUT, 0.005
        while True:
            status = await self.agent.exec_status(pid, timeout=CALL_TIMEOUT)
            if status.exited:
                code = status.exit_code if status.exit_code is not None else 128
                return code, status.stderr.decode(errors="replace").strip()
            if loop.time() > deadline:
                raise errors.GuestFileError(
                    f"the guest did not finish {script.split()[0]} within {FINISH_TIMEOUT:g} s",
                    FileProblem.FAILED)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def _finish(self, temp: str, path: str, mode: str | None, owner: str | None) -> None:
        try:
            code, message = await self._run(_FINISH, temp, path, mode or "", owner or "")
        except agent_errors.AgentError as exc:
            raise _file_error(exc, path, "putting in place") from None
        if code == _IS_DIRECTORY_STATUS:
            raise errors.GuestFileError(f"{path} is a directory in the guest",
                                        FileProblem.IS_DIRECTORY)
        if code != 0:
            raise errors.GuestFileError(
                f"putting {path} in place in the guest failed (status {code}): {message}",
                problem_of(message))

    async def _remove(self, temp: str) -> None:
        with contextlib.suppress(agent_errors.AgentError, errors.ExecError):
            await self._run('rm -f -- "$1"', temp)

    async def download(self, path: str) -> Download:
        """Open ``path`` for reading; its first piece is read here, so that a directory or an
        unreadable file is an error before any byte goes out.

        Raises:
            InvalidExecRequest: the path is not absolute.
            GuestFileError: no such file, permission denied, a directory, too large.
            GuestUnavailable, ExecDisabled: the agent cannot be used.
        """
        check_path(path, self.platform)
        try:
            handle = await self.agent.file_open(path, "r", timeout=CALL_TIMEOUT)
        except agent_errors.AgentError as exc:
            raise _file_error(exc, path, "opening") from None
        try:
            # The first read before the size: a directory opens, but fails here (EISDIR).
            first = await self.agent.file_read(handle, READ_CHUNK, timeout=CALL_TIMEOUT)
            if first.eof:
                size = len(first.data)
            else:
                size = await self.agent.file_seek(handle, 0, 2, timeout=CALL_TIMEOUT)
                await self.agent.file_seek(handle, len(first.data), 0, timeout=CALL_TIMEOUT)
            if size > MAX_FILE_BYTES:
                raise errors.GuestFileError(
                    f"{path} has {size} bytes, more than {MAX_FILE_BYTES}, the most vmexec "
                    "copies", FileProblem.TOO_LARGE)
        except agent_errors.AgentError as exc:
            await _shielded(self._close_quietly(handle))
            raise _file_error(exc, path, "reading") from None
        except BaseException:
            await _shielded(self._close_quietly(handle))
            raise
        # A file that says it is empty may have content all the same (/proc): no length then.
        known = size if size > 0 else None
        return Download(known, self._pieces(handle, path, first.data, first.eof, known))

    async def _pieces(self, handle: int, path: str, first: bytes, eof: bool,
                      size: int | None) -> AsyncIterator[bytes]:
        # The next piece is read from the guest while this one goes to the client: at most
        # two pieces in memory, and neither side waits for the other.
        sent = 0
        ahead: asyncio.Future[FileChunk] | None = None
        try:
            data = first
            while True:
                if size is not None:
                    data = data[:size - sent]  # as many as announced, if it grew meanwhile
                sent += len(data)
                if not (eof or not data or (size is not None and sent >= size)):
                    ahead = asyncio.ensure_future(
                        self.agent.file_read(handle, READ_CHUNK, timeout=CALL_TIMEOUT))
                if data:
                    yield data
                if ahead is None:
                    break
                try:
                    chunk = await ahead
                except agent_errors.AgentError as exc:
                    raise _file_error(exc, path, "reading") from None
                finally:
                    ahead = None
                data, eof = chunk.data, chunk.eof
        finally:
            if ahead is not None:  # the reader went away: let the read end, then close
                with contextlib.suppress(BaseException):
                    await _shielded(_settled(ahead))
            await _shielded(self._close_quietly(handle))
        if size is not None and sent < size:
            raise errors.GuestFileError(f"{path} shrank while it was read: {sent} of {size} "
                                        "bytes", FileProblem.FAILED)

    async def _close_quietly(self, handle: int) -> None:
        with contextlib.suppress(agent_errors.AgentError):
            await self.agent.file_close(handle, timeout=CALL_TIMEOUT)


async def _settled(future: asyncio.Future[Any]) -> None:
    """Wait until ``future`` is done, whatever its outcome."""
    with contextlib.suppress(BaseException):
        await future


#: Cleanups running on after a cancel (kept so that they are not collected mid-way).
_SHIELDED: set[asyncio.Future[Any]] = set()


async def _shielded(work: Coroutine[Any, Any, T]) -> T:
    """Await ``work`` to its end even if the caller is cancelled meanwhile (the caller's
    cancel still raises; the work goes on)."""
    task = asyncio.ensure_future(work)
    _SHIELDED.add(task)
    task.add_done_callback(_SHIELDED.discard)
    return await asyncio.shield(task)
