"""Bare guest agents: real ``qemu-ga`` processes on unix sockets, without any VM.

FOR CONTROL-PLANE LOAD TESTS ONLY. These agents run on the HOST: a command they execute runs
on the host machine, as the user that started them. A result from a bare agent is never
evidence that anything ran inside a VM; functional tests use the lab's VMs (:class:`Lab`).

    async with BareAgents(20) as agents:
        for sock in agents.sockets: ...    # each a qemu-ga in unix-listen mode
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

QEMU_GA = "/usr/sbin/qemu-ga"
#: Where the engine keeps a Linux guest's run files first (linux/platform.py RUN_DIRS).
LINUX_RUN_DIR = "/var/lib/vmexec"
READY_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0


def _log_file(path: Path) -> BinaryIO:
    # A tiny local file, opened once per agent at start-up: not worth a thread.
    return open(path, "wb")


class BareAgentsError(RuntimeError):
    """A bare agent did not start or did not accept connections in time."""


class BareAgents:
    """Async context manager running ``count`` host ``qemu-ga -m unix-listen`` processes.

    FOR CONTROL-PLANE LOAD TESTS ONLY: the agents run on the HOST, never in a VM, so nothing
    they do is evidence of running in a VM. Each agent has its own socket, state dir and pid
    file in a temporary directory; leaving the context kills them all and removes it.
    """

    def __init__(self, count: int, *, qemu_ga: str = QEMU_GA,
                 ready_timeout: float = READY_TIMEOUT,
                 private_run_dir: bool | None = None, nice: int = 0) -> None:
        """``private_run_dir``: give each agent its own ``/var/lib/vmexec`` (a mount
        namespace; needs root and ``unshare``); None: when this process can. ``nice``: run
        the agents (and so the commands they start) at a lower priority, as guests on vCPUs
        of their own would not take the CPU from the client under test."""
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        if private_run_dir is None:
            private_run_dir = os.geteuid() == 0 and shutil.which("unshare") is not None
        self.private_run_dir = private_run_dir
        self.nice = nice
        self.count = count
        self.qemu_ga = qemu_ga
        self.ready_timeout = ready_timeout
        #: One unix socket per agent, valid inside the ``async with`` block.
        self.sockets: list[Path] = []
        #: Plain processes, not asyncio's: its child watcher keeps a thread per child, and
        #: the fleet benches start thousands of agents.
        self.processes: list[subprocess.Popen[bytes]] = []
        self._dir: Path | None = None

    async def __aenter__(self) -> BareAgents:
        """Start the agents and wait until every socket accepts a connection.

        Raises:
            BareAgentsError: an agent exited or its socket did not accept in time.
            OSError: qemu-ga could not be executed.
        """
        self._dir = Path(tempfile.mkdtemp(prefix="vmexec-bare-agents."))
        try:
            if not os.access(self.qemu_ga, os.X_OK):
                raise FileNotFoundError(f"no executable qemu-ga at {self.qemu_ga}")
            for i in range(self.count):
                self._spawn(self._dir, i)
            await asyncio.gather(*(self._wait_ready(i) for i in range(self.count)))
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    def _spawn(self, base: Path, i: int) -> None:
        state_dir = base / f"agent-{i}"
        state_dir.mkdir()
        sock = base / f"agent-{i}.sock"
        # Own pid file: the default /var/run/qemu-ga.pid is locked by the first agent.
        argv = [self.qemu_ga, "-m", "unix-listen", "-p", str(sock), "-t", str(state_dir),
                "-f", str(base / f"agent-{i}.pid")]
        if self.private_run_dir:
            # Each guest has a file system of its own: here a mount namespace in which the
            # agent's commands see a directory of their own as /var/lib/vmexec. Without it
            # every agent's runs create and delete their files in one host directory, and
            # its lock, not vmexec, bounds the throughput measured.
            run_dir = state_dir / "run"
            run_dir.mkdir(mode=0o700)
            # The mount point (empty, never written: the mounts hide it) on a fresh host,
            # where no guest-side run made it yet.
            Path(LINUX_RUN_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
            argv = ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                    'mount --bind "$1" "$2" && shift 2 && exec "$@"', "vmexec-bare-agent",
                    str(run_dir), LINUX_RUN_DIR, *argv]
        with _log_file(base / f"agent-{i}.log") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    preexec_fn=self._lower_priority if self.nice else None)
        self.processes.append(proc)
        self.sockets.append(sock)

    async def _wait_ready(self, i: int) -> None:
        proc, sock = self.processes[i], self.sockets[i]
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if proc.poll() is not None:
                raise BareAgentsError(f"qemu-ga #{i} exited {proc.returncode}: {self._log(i)}")
            try:
                _, writer = await asyncio.open_unix_connection(str(sock))
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise BareAgentsError(f"qemu-ga #{i} did not accept on {sock} within "
                                          f"{self.ready_timeout:.0f} s: {self._log(i)}") from None
                await asyncio.sleep(0.02)
                continue
            writer.close()
            await writer.wait_closed()
            return

    def run_dir(self, i: int) -> Path:
        """Agent ``i``'s own ``/var/lib/vmexec`` as this host sees it (with
        ``private_run_dir``): what its commands wrote there."""
        if self._dir is None or not self.private_run_dir:
            raise BareAgentsError("the agents have no run directories of their own")
        return self._dir / f"agent-{i}" / "run"

    def _log(self, i: int) -> str:
        assert self._dir is not None
        try:
            return (self._dir / f"agent-{i}.log").read_text(errors="replace").strip()[-500:]
        except OSError:
            return ""

    def exited(self) -> list[int]:
        """The agents that are no longer running (none should be, inside the block)."""
        return [i for i, proc in enumerate(self.processes) if proc.poll() is not None]

    def _lower_priority(self) -> None:
        os.nice(self.nice)

    async def aclose(self) -> None:
        """Kill every agent (SIGTERM, then SIGKILL) and remove the temporary directory."""
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(proc.poll() is None for proc in self.processes):
            if time.monotonic() > deadline:
                for proc in self.processes:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                break
            await asyncio.sleep(0.05)
        self.processes.clear()
        self.sockets.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
