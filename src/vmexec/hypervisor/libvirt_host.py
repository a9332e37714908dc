"""libvirt hosts used from asyncio: one connection per host URI, blocking calls in a bounded pool.

Everything libvirt-specific that more than one layer needs lives here: opening and reopening
connections (libvirtd restarts), running calls off the event loop, and translating
``libvirt.libvirtError`` into :mod:`vmexec.hypervisor.errors`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import libvirt

from vmexec.hypervisor import errors
from vmexec.hypervisor.uris import HostUriPolicy, HostUriRefused

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Threads shared by every host: bounds how many blocking libvirt calls run at once.
DEFAULT_POOL_SIZE = 32
#: Seconds closing the connections may take when the server stops.
CLOSE_TIMEOUT = 5.0


def _silence_libvirt_stderr() -> None:
    # libvirt prints every error to stderr by default; we raise them instead.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


_silence_libvirt_stderr()


def translate(exc: libvirt.libvirtError, what: str = "") -> errors.HypervisorError:
    """Map a libvirt error to the hypervisor error a caller can act on."""
    code = exc.get_error_code()
    message = exc.get_error_message() or str(exc)
    if what:
        message = f"{what}: {message}"
    lowered = message.lower()
    if code in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_INVALID_DOMAIN):
        return errors.DomainNotFound(message, code=code)
    if code in (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_NO_CONNECT,
                libvirt.VIR_ERR_AUTH_FAILED, libvirt.VIR_ERR_AUTH_UNAVAILABLE,
                libvirt.VIR_ERR_AUTH_CANCELLED):
        return errors.HostUnreachable(message, code=code)
    if "not running" in lowered or "domain is not active" in lowered:
        return errors.DomainNotRunning(message, code=code)
    if "agent is not configured" in lowered:
        return errors.AgentNotConfigured(message, code=code)
    if code in (libvirt.VIR_ERR_AGENT_UNRESPONSIVE, libvirt.VIR_ERR_AGENT_UNSYNCED):
        return errors.AgentNotResponding(message, code=code)
    if code == getattr(libvirt, "VIR_ERR_AGENT_COMMAND_TIMEOUT", -1):
        return errors.AgentNotResponding(message, code=code)
    if "unable to execute qemu agent command" in lowered or code == getattr(
            libvirt, "VIR_ERR_AGENT_COMMAND_FAILED", -1):
        return errors.AgentReplyError(message, code=code)
    return errors.OperationFailed(message, code=code)


class LibvirtHost:
    """One libvirt connection, opened lazily, reopened when libvirtd went away, and closed by
    :meth:`close_if_idle` when unused (a node reaches hosts it does not own only to run
    commands: their connections, SSH sessions for ``qemu+ssh``, should not stay open)."""

    def __init__(self, uri: str, pool: ThreadPoolExecutor) -> None:
        self.uri = uri
        self._pool = pool
        self._conn: libvirt.virConnect | None = None
        self._lock = threading.Lock()
        self._in_flight = 0
        self._last_used = time.monotonic()

    @property
    def connected(self) -> bool:
        """Whether the connection is open now."""
        return self._conn is not None

    def close_if_idle(self, idle: float) -> bool:
        """Close the connection if no call ran for ``idle`` seconds and none runs now (the
        next call reopens it); returns whether it closed one. Blocking: call it in a
        thread."""
        with self._lock:
            conn = self._conn
            if (conn is None or self._in_flight
                    or time.monotonic() - self._last_used < idle):
                return False
            self._conn = None
        try:
            conn.close()
        except libvirt.libvirtError:
            pass
        return True

    def _connection(self) -> libvirt.virConnect:
        # Runs in a pool thread. isAlive() notices a restarted libvirtd, so the next call
        # reconnects instead of failing; a call already sent is never retried (not idempotent).
        # Counted in flight from here until _run's end, so close_if_idle leaves it open.
        with self._lock:
            self._in_flight += 1
            try:
                return self._open_locked()
            except BaseException:
                self._in_flight -= 1
                raise

    def _open_locked(self) -> libvirt.virConnect:
        conn = self._conn
        if conn is not None:
            try:
                if conn.isAlive():
                    return conn
            except libvirt.libvirtError:
                pass
            self._conn = None
            try:
                conn.close()
            except libvirt.libvirtError:
                pass
        try:
            self._conn = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            raise errors.HostUnreachable(
                f"cannot connect to libvirt at {self.uri}: {exc.get_error_message()}",
                code=exc.get_error_code()) from None
        return self._conn

    def _run(self, fn: Callable[[libvirt.virConnect], T], what: str) -> T:
        conn = self._connection()
        try:
            return fn(conn)
        except libvirt.libvirtError as exc:
            raise translate(exc, what) from None
        finally:
            with self._lock:
                self._in_flight -= 1
                self._last_used = time.monotonic()

    async def call(self, fn: Callable[[libvirt.virConnect], T], what: str = "") -> T:
        """Run ``fn(connection)`` in the pool; libvirt errors come out translated.

        Raises:
            HypervisorError: the translated libvirt failure.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._run, fn, what)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except libvirt.libvirtError:
                    pass
                self._conn = None


class RefusedHost(LibvirtHost):
    """A host whose URI the policy refuses: every call fails, nothing is ever opened."""

    def __init__(self, uri: str, pool: ThreadPoolExecutor, reason: str) -> None:
        super().__init__(uri, pool)
        self.reason = reason

    def _run(self, fn: Callable[[libvirt.virConnect], T], what: str) -> T:
        raise errors.HostUnreachable(f"not connecting to {self.uri}: {self.reason}")


class LibvirtHosts:
    """The set of libvirt hosts the process talks to, sharing one bounded thread pool.

    With a ``policy``, a URI it refuses is never opened (e.g. a host stored before the policy
    was narrowed): its calls fail with ``HostUnreachable``.
    """

    def __init__(self, pool_size: int = DEFAULT_POOL_SIZE, *,
                 policy: HostUriPolicy | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="libvirt")
        self._hosts: dict[str, LibvirtHost] = {}
        self._policy = policy

    def get(self, uri: str) -> LibvirtHost:
        host = self._hosts.get(uri)
        if host is None:
            host = self._hosts[uri] = self._new_host(uri)
        return host

    def _new_host(self, uri: str) -> LibvirtHost:
        if self._policy is not None:
            try:
                self._policy.check(uri)
            except HostUriRefused as exc:
                log.warning("refusing to connect to host %s: %s", uri, exc)
                return RefusedHost(uri, self._pool, str(exc))
        return LibvirtHost(uri, self._pool)

    def connections(self) -> int:
        """How many hosts this process has a (shared) connection open to now."""
        return sum(host.connected for host in list(self._hosts.values()))

    async def close_idle(self, idle: float) -> int:
        """Close the connections no call used for ``idle`` seconds; returns how many."""
        hosts = list(self._hosts.values())
        closed = await asyncio.get_running_loop().run_in_executor(
            self._pool, lambda: sum(host.close_if_idle(idle) for host in hosts))
        if closed:
            log.debug("closed %d idle libvirt connections", closed)
        return closed

    def close(self) -> None:
        """Close every connection, waiting at most :data:`CLOSE_TIMEOUT` for them: closing
        one to a host gone from the network (half-open TCP) waits for libvirt's keepalive to
        give up, and a server stopping does not wait for that (the process ends anyway)."""
        hosts = list(self._hosts.values())
        self._hosts.clear()

        def close_all() -> None:
            for host in hosts:
                host.close()
        closing = threading.Thread(target=close_all, name="libvirt-close", daemon=True)
        closing.start()
        closing.join(CLOSE_TIMEOUT)
        if closing.is_alive():
            log.warning("libvirt connections did not close within %g s; left to the process's "
                        "end", CLOSE_TIMEOUT)
        self._pool.shutdown(wait=False, cancel_futures=True)
