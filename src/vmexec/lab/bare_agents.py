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
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal

from vmexec.lab.cpu_group import CpuGroup

QEMU_GA = "/usr/sbin/qemu-ga"
#: Where the engine keeps a Linux guest's run files first (linux/platform.py RUN_DIRS).
LINUX_RUN_DIR = "/var/lib/vmexec"
#: Where a bare agent's runs keep their files (with ``private_run_dir``). On some hosts
#: creating a file on the disk costs far more CPU than in a guest (here 0.4 to 0.6 ms on the
#: host's ext4, 0.01 ms on tmpfs): a fleet bench on ``disk`` measures that, not vmexec.
RunDirFs = Literal["disk", "tmpfs"]
#: Size limit of each agent's tmpfs (pages are used only as files are written).
TMPFS_SIZE = "64m"
READY_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0


def _log_file(path: Path) -> BinaryIO:
    # A tiny local file, opened once per agent at start-up: not worth a thread.
    return open(path, "wb")


def _make_mount_point() -> None:
    # The private run directories' mount point (empty, never written: the mounts hide it), on
    # a fresh host where no guest-side run made it yet; once per fleet, not per agent.
    Path(LINUX_RUN_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)


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
                 private_run_dir: bool | None = None, run_dir_fs: RunDirFs = "disk",
                 nice: int = 0, cpu_weight: int | None = None) -> None:
        """``private_run_dir``: give each agent its own ``/var/lib/vmexec`` (a mount
        namespace; needs root and ``unshare``); None: when this process can. ``run_dir_fs``
        (with ``private_run_dir``): a directory of the host's disk, or a tmpfs of its own
        (``tmpfs``: for benches, where the host disk's cost of creating a file would stand
        for every guest's; see :data:`RunDirFs`). ``nice``: run the agents (and so the
        commands they start) at a lower priority, as guests on vCPUs of their own would not
        take the CPU from the client under test. ``cpu_weight``: put every agent (and what
        it runs) into one CPU cgroup of this weight (100 = one ordinary process's share):
        the fleet as a whole, not each of its processes, competes with the client (see
        :mod:`.cpu_group`; raises :class:`CpuGroupError` where the host has no cgroup)."""
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        if private_run_dir is None:
            private_run_dir = os.geteuid() == 0 and shutil.which("unshare") is not None
        self.private_run_dir = private_run_dir
        self.run_dir_fs = run_dir_fs
        self.nice = nice
        self.cpu_weight = cpu_weight
        self._cpu_group: CpuGroup | None = None
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
            if self.cpu_weight is not None:
                self._cpu_group = CpuGroup(self._dir.name, self.cpu_weight)
            if self.private_run_dir:
                _make_mount_point()
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
            if self.run_dir_fs == "tmpfs":
                mount = ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=700",
                         "vmexec-bare-agent", LINUX_RUN_DIR]
            else:
                run_dir = state_dir / "run"
                run_dir.mkdir(mode=0o700)
                mount = ["mount", "--bind", str(run_dir), LINUX_RUN_DIR]
            argv = ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                    'eval "$1" && shift && exec "$@"', "vmexec-bare-agent",
                    shlex.join(mount), *argv]
        with _log_file(base / f"agent-{i}.log") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    preexec_fn=self._in_child
                                    if self.nice or self._cpu_group else None)
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
        if self.run_dir_fs == "tmpfs":  # seen through the running agent's mount namespace
            return Path(f"/proc/{self.processes[i].pid}/root{LINUX_RUN_DIR}")
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

    def _in_child(self) -> None:
        if self.nice:
            os.nice(self.nice)
        if self._cpu_group is not None:
            self._cpu_group.join()

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
        if self._cpu_group is not None:
            self._cpu_group.remove()
            self._cpu_group = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
