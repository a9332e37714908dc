"""A real ``vmexec serve`` subprocess on a free loopback port with a temporary SQLite database,
logged in as admin, and the server process's memory as the kernel reports it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from vmexec.zstack.passwords import sha512_hex

ADMIN = "admin"
PASSWORD = "password"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


class ServerError(RuntimeError):
    """The server did not start (the message carries the tail of its log)."""


@dataclass(frozen=True, slots=True)
class Memory:
    """``VmRSS`` (now) and ``VmHWM`` (peak since start or the last reset), KiB."""

    rss_kib: int
    hwm_kib: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def vmexec_command() -> list[str]:
    """The ``vmexec`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("vmexec")
    if script.exists():
        return [str(script)]
    found = shutil.which("vmexec")
    if found is None:
        raise ServerError("the vmexec command is not installed (run make bootstrap)")
    return [found]


def read_memory(pid: int) -> Memory:
    """Raises OSError when the process is gone."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return Memory(values["VmRSS"], values["VmHWM"])


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux ``clear_refs`` 5); False when the
    kernel does not allow it (then only the sampled peak counts)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def worst_growth_kib(peak_kib: list[int], idle_kib: list[int]) -> int:
    """The largest RSS growth of any repeat: its peak minus the idle RSS just before it."""
    return max(p - i for p, i in zip(peak_kib, idle_kib, strict=True))


class PeakSampler:
    """Samples a process's VmRSS every ``interval`` seconds in a thread while in the block,
    and resets its VmHWM on entry, so :attr:`peak_kib` is the peak of the block."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.pid = pid
        self.interval = interval
        self.sampled_kib = 0
        self.hwm_kib = 0
        self._hwm_reset = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    @property
    def peak_kib(self) -> int:
        return max(self.sampled_kib, self.hwm_kib)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.sampled_kib = max(self.sampled_kib, read_memory(self.pid).rss_kib)
            except OSError:
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self._hwm_reset = reset_peak(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._hwm_reset:  # else VmHWM is the peak since start, not of this block
            try:
                self.hwm_kib = read_memory(self.pid).hwm_kib
            except OSError:
                pass


class ApiServer:
    """``with ApiServer() as server:`` — ``server.url``, ``server.auth`` (headers),
    ``server.pid``, ``server.memory()``. The server is always stopped on exit."""

    def __init__(self, *, log_level: str = "warning") -> None:
        self.log_level = log_level
        self.url = ""
        self.session = ""
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"OAuth {self.session}"}

    def memory(self) -> Memory:
        return read_memory(self.pid)

    def __enter__(self) -> ApiServer:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            print(f"vmexec serve log (tail):\n{self.log()}", file=sys.stderr)
        self.stop()

    def _start(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="vmexec-bench."))
        port = free_port()
        # A reproducible server: defaults only, whatever VMEXEC_* the caller's shell has.
        env = {k: v for k, v in os.environ.items() if not k.startswith("VMEXEC_")}
        env["VMEXEC_ADMIN_PASSWORD"] = PASSWORD
        with open(self._dir / "server.log", "wb") as log:
            self._proc = subprocess.Popen(
                [*vmexec_command(), "serve", "--host", "127.0.0.1", "--port", str(port),
                 "--db", f"sqlite+aiosqlite:///{self._dir / 'vmexec.db'}",
                 "--log-level", self.log_level],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._proc.poll() is not None:
                raise ServerError(f"vmexec serve exited {self._proc.returncode}: {self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"vmexec serve not up after {START_TIMEOUT:.0f} s: "
                                  f"{self.log()}")
            time.sleep(0.1)
        reply = httpx.put(f"{self.url}/zstack/v1/accounts/login", timeout=30, json={
            "logInByAccount": {"accountName": ADMIN, "password": sha512_hex(PASSWORD)}})
        if reply.status_code != 200:
            raise ServerError(f"login refused: {reply.status_code} {reply.text}")
        self.session = str(reply.json()["inventory"]["uuid"])

    def log(self, tail: int = 2000) -> str:
        if self._dir is None:
            return ""
        try:
            return (self._dir / "server.log").read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM (graceful shutdown), SIGKILL after STOP_TIMEOUT; removes the temp dir."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
