"""Several ``vmexec serve`` processes on one PostgreSQL database, as an operator runs them.

- :class:`Node`: one real ``vmexec serve`` process on a free loopback port, with its own node
  id; ``kill()`` is ``kill -9``, ``stop()`` a clean SIGTERM stop.
- :class:`WebhookReceiver`: a real HTTP server on loopback that counts the POSTs it gets by
  their ``X-Job-UUID`` (and answers 200).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from fixtures.server import CHEAP_PASSWORD_HASHES, free_port, login

SERVE = [sys.executable, "-m", "vmexec.cli.main", "serve"]
#: A fixed secret key: the nodes must share it (it encrypts access keys in the database).
SECRET_KEY = "nodes-test-secret-key-0123456789abcdef"
READY_TIMEOUT = 90.0
EXEC = "/zstack/v1/vm-instances/commands/exec"
JOBS = "/zstack/v1/api-jobs/"
RUNS = "/zstack/v1/vm-instances/commands/runs"


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VMEXEC_")}
    cheap = {f"VMEXEC_{k.upper()}": str(v) for k, v in CHEAP_PASSWORD_HASHES.items()}
    return {**env, **cheap, **values}


class Node:
    """One ``vmexec serve`` process (started by :meth:`start`)."""

    def __init__(self, name: str, db: str, *, libvirt_uri: str, lease: float = 6.0,
                 log_dir: Path, **settings: str) -> None:
        self.name = name
        self.db = db
        self.libvirt_uri = libvirt_uri
        self.lease = lease
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._session: str | None = None

    def start(self) -> Node:
        """Start the process (without waiting for it: :meth:`wait_ready`)."""
        self._session = None
        env = _env(VMEXEC_DB=self.db, VMEXEC_NODE_ID=self.name,
                   VMEXEC_JOB_LEASE=str(self.lease), VMEXEC_LIBVIRT_URI=self.libvirt_uri,
                   VMEXEC_SECRET_KEY=SECRET_KEY,
                   VMEXEC_WEBHOOK_ALLOW=json.dumps(["127.0.0.1/32"]),
                   **{f"VMEXEC_{k.upper()}": v for k, v in self.settings.items()})
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*SERVE, "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "info"],
                env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self) -> Node:
        """Wait until ``/health/ready`` answers 200. Raises AssertionError (with the log)
        when the process exits or does not get ready."""
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"node {self.name} exited {self.process.returncode}:\n"
                                     + self.log())
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"node {self.name} did not get ready:\n" + self.log())
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    @property
    def session(self) -> str:
        if self._session is None:
            self._session = login(self.url)
        return self._session

    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout,
                            headers={"Authorization": f"OAuth {self.session}"})

    def metric(self, name: str) -> float:
        """The value of an unlabelled metric of this node (its ``/metrics``, from loopback)."""
        text = httpx.get(f"{self.url}/metrics", timeout=30).text
        for line in text.splitlines():
            if line.startswith((f"{name} ", f"{name}_total ")):
                return float(line.split()[1])
        raise AssertionError(f"no metric {name} on node {self.name}")

    def kill(self) -> None:
        """``kill -9``: no shutdown at all."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        """A clean stop (SIGTERM); fails when the process does not end cleanly."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"node {self.name} did not stop:\n" + self.log()) from None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Cluster:
    """Nodes on one database; every node still running is killed at the end."""

    def __init__(self, db: str, log_dir: Path) -> None:
        self.db = db
        self.log_dir = log_dir
        self.nodes: list[Node] = []

    def node(self, name: str, **options: Any) -> Node:
        node = Node(name, self.db, log_dir=self.log_dir, **options)
        self.nodes.append(node)
        return node

    def close(self) -> None:
        for node in self.nodes:
            if node.alive:
                assert node.process is not None
                node.process.kill()
                node.process.wait(30)


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 counting POSTs by ``X-Job-UUID``."""

    def __init__(self) -> None:
        self.posts: collections.Counter[str] = collections.Counter()
        self.bodies: dict[str, Any] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                job = self.headers.get("X-Job-UUID") or "?"
                with receiver._lock:
                    receiver.posts[job] += 1
                    receiver.bodies[job] = body
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def count(self, job: str) -> int:
        with self._lock:
            return self.posts[job]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it is truthy; its value. A guard against a hang, not a speed
    check: fails with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g}s"
        time.sleep(0.2)


def psql(url: str, query: str) -> list[list[str]]:
    out = subprocess.run(["psql", url, "-AtF", "|", "-c", query], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return [line.split("|") for line in out.splitlines()]


def short_tempdir() -> Iterator[Path]:
    """A directory with a short path (unix socket paths are limited to 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="vmx-") as name:
        yield Path(name)


class AgentsInBackground:
    """:class:`~vmexec.lab.bare_agents.BareAgents` kept running by an event loop of their own
    (a thread), for a test that is not async. HOST processes: control-plane tests only."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.sockets: list[Path] = []
        self._ready = threading.Event()
        self._stop: Any = None
        self._loop: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import asyncio

        from vmexec.lab.bare_agents import BareAgents

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                async with BareAgents(self.count) as agents:
                    self.sockets = list(agents.sockets)
                    self._ready.set()
                    await self._stop.wait()
            except BaseException as exc:
                self._error = exc
                self._ready.set()

        asyncio.run(main())

    def __enter__(self) -> AgentsInBackground:
        self._thread.start()
        self._ready.wait(120)
        if self._error is not None:
            raise self._error
        assert self.sockets, "the bare agents did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)

    @property
    def directory(self) -> Path:
        return self.sockets[0].parent
