"""A libvirt host in a sandbox without systemd or dbus: ``virtlogd -d`` and ``libvirtd -d``.

:func:`ensure_libvirtd` reuses a libvirtd that already answers on ``qemu:///system`` and claims
nothing then; otherwise it prepares what the daemons need (directories, the compiled-in
``libvirt-qemu`` user and ``kvm`` group, a ``qemu.conf`` that runs QEMU as root without
namespaces, cgroups or a security driver) and starts them. What it started is recorded (pid and
process start time, so a reused pid is never mistaken for ours) in the lab's daemon state dir;
:func:`stop_started` stops exactly that and removes the sockets and files those daemons left.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import libvirt

from vmexec.lab import paths

log = logging.getLogger(__name__)

# libvirt prints every error to stderr by default; the lab raises or logs them instead.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

URI = "qemu:///system"
QEMU_CONF = Path("/etc/libvirt/qemu.conf")
#: First line of a qemu.conf the lab wrote; any other qemu.conf is the admin's and left alone.
QEMU_CONF_MARK = "# Written by vmexec lab (src/vmexec/lab/libvirtd.py); safe to delete."
QEMU_CONF_TEXT = f"""{QEMU_CONF_MARK}
# QEMU runs as root with no per-domain security labels, namespaces or cgroups: the sandbox has
# no systemd/dbus to provide them, and the lab's images live in root's cache.
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
namespaces = []
cgroup_controllers = []
"""
RUN_DIR = Path("/var/run/libvirt")
DIRS = (RUN_DIR, Path("/var/log/libvirt/qemu"), Path("/var/lib/libvirt/qemu"),
        Path("/var/cache/libvirt/qemu"), Path("/etc/libvirt/qemu"))
#: Files the daemons create and may leave behind after SIGTERM.
DAEMON_FILES = {
    "virtlogd": (Path("/var/run/virtlogd.pid"), RUN_DIR / "virtlogd-sock",
                 RUN_DIR / "virtlogd-admin-sock"),
    "libvirtd": (Path("/var/run/libvirtd.pid"), RUN_DIR / "libvirt-sock",
                 RUN_DIR / "libvirt-sock-ro", RUN_DIR / "libvirt-admin-sock"),
}
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class LibvirtdError(RuntimeError):
    """libvirtd or virtlogd could not be prepared, started or reached."""


@dataclass(frozen=True)
class Started:
    """A daemon process the lab started: ``starttime`` guards against pid reuse."""

    name: str
    pid: int
    starttime: int


def _state_file() -> Path:
    return paths.daemons_state_dir() / "daemons.json"


@contextmanager
def _lock() -> Iterator[None]:
    directory = paths.daemons_state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat of a live process; None when gone or a zombie.

    A zombie counts as gone: a daemon killed hard lingers as one where nothing reaps it
    (containers whose PID 1 is not an init), keeping its pid and name.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in field 2 may contain spaces: split after its closing ')'.
    fields = stat.rpartition(")")[2].split()
    return None if fields[0] in ("Z", "X") else fields


def _starttime(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return None if fields is None else int(fields[19])  # field 22: starttime


def _alive(started: Started) -> bool:
    return _starttime(started.pid) == started.starttime


def _load() -> dict[str, Started]:
    try:
        raw = json.loads(_state_file().read_text())
    except (OSError, ValueError):
        return {}
    return {name: Started(name, int(d["pid"]), int(d["starttime"]))
            for name, d in raw.get("daemons", {}).items()}


def _save(started: dict[str, Started], *, wrote_qemu_conf: bool) -> None:
    data = {"daemons": {s.name: {"pid": s.pid, "starttime": s.starttime}
                        for s in started.values()},
            "wrote_qemu_conf": wrote_qemu_conf}
    _state_file().write_text(json.dumps(data, indent=2) + "\n")


def _flag(name: str) -> bool:
    try:
        return bool(json.loads(_state_file().read_text()).get(name))
    except (OSError, ValueError):
        return False


def answers(uri: str = URI) -> bool:
    """True when a libvirtd accepts connections on ``uri``."""
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError:
        return False
    conn.close()
    return True


def _run(args: list[str]) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LibvirtdError(f"{' '.join(args)} failed: {proc.stderr.strip()}")


def _ensure_account() -> None:
    # libvirtd refuses to start when its compiled-in QEMU user/group do not exist, even though
    # qemu.conf overrides them with root.
    for group in ("kvm", "libvirt-qemu"):
        if subprocess.run(["getent", "group", group], capture_output=True).returncode != 0:
            _run(["groupadd", "-r", group])
    if subprocess.run(["getent", "passwd", "libvirt-qemu"], capture_output=True).returncode != 0:
        _run(["useradd", "-r", "-g", "kvm", "-d", "/var/lib/libvirt", "-s", "/usr/sbin/nologin",
              "libvirt-qemu"])


def _ensure_qemu_conf() -> bool:
    """Write qemu.conf when absent or ours; returns whether the file is ours."""
    if QEMU_CONF.exists():
        if not QEMU_CONF.read_text().startswith(QEMU_CONF_MARK):
            log.warning("%s was not written by the lab; leaving it as it is", QEMU_CONF)
            return False
    QEMU_CONF.write_text(QEMU_CONF_TEXT)
    return True


def _pid_from(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _start_daemon(name: str) -> Started:
    env = dict(os.environ)
    # Without systemd the daemons would log nowhere; a file helps when a domain will not start.
    env["LIBVIRT_LOG_OUTPUTS"] = f"3:file:/var/log/libvirt/{name}.log"
    proc = subprocess.run([f"/usr/sbin/{name}", "-d"], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                          cwd="/", check=False)
    if proc.returncode != 0:
        raise LibvirtdError(f"{name} -d exited {proc.returncode}: {proc.stderr.decode().strip()}")
    pidfile = DAEMON_FILES[name][0]
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        pid = _pid_from(pidfile)
        starttime = _starttime(pid) if pid else None
        if pid and starttime is not None:
            return Started(name, pid, starttime)
        time.sleep(0.05)
    raise LibvirtdError(f"{name} started but wrote no live pid to {pidfile}")


def _running_from_pidfile(name: str) -> bool:
    # A pid file left by a killed daemon may name a pid reused by something else.
    pid = _pid_from(DAEMON_FILES[name][0])
    if pid is None or _proc_stat(pid) is None:
        return False
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == name
    except OSError:
        return False


def ensure_libvirtd(uri: str = URI) -> bool:
    """Make sure a libvirtd answers on ``uri``; returns True when the lab started it now.

    Raises:
        LibvirtdError: preparing or starting the daemons failed, or libvirtd does not answer.
    """
    if answers(uri):
        return False
    with _lock():
        if answers(uri):
            return False
        started = {name: s for name, s in _load().items() if _alive(s)}
        for directory in DIRS:
            directory.mkdir(parents=True, exist_ok=True)
        _ensure_account()
        wrote = _ensure_qemu_conf() or _flag("wrote_qemu_conf")
        for name in ("virtlogd", "libvirtd"):
            if name in started or _running_from_pidfile(name):
                continue  # running already: ours from before, or someone else's to reuse
            log.info("starting %s", name)
            started[name] = _start_daemon(name)
            _save(started, wrote_qemu_conf=wrote)
        deadline = time.monotonic() + START_TIMEOUT
        while not answers(uri):
            if time.monotonic() > deadline:
                raise LibvirtdError(f"libvirtd does not answer on {uri} after {START_TIMEOUT:.0f}"
                                    " s; see /var/log/libvirt/libvirtd.log")
            time.sleep(0.1)
        _save(started, wrote_qemu_conf=wrote)
        return True


def restart_libvirtd(uri: str = URI, *, down_seconds: float = 0.0) -> None:
    """Stop the lab's libvirtd (running domains keep running), leave it down
    ``down_seconds``, and start it again as :func:`ensure_libvirtd` does: what a host
    upgrade or a crash-and-restart does to vmexec's connections. libvirtd runs afterwards.

    Raises:
        LibvirtdError: the running libvirtd is not one the lab started (it is left alone),
            or it could not be started again.
    """
    ensure_libvirtd(uri)
    with _lock():
        ours = _load().get("libvirtd")
        if ours is None or not _alive(ours):
            raise LibvirtdError("the running libvirtd was not started by the lab: restart it "
                                "the way it was started")
        log.info("restarting libvirtd (pid %d)", ours.pid)
        _stop(ours)
    time.sleep(down_seconds)
    ensure_libvirtd(uri)


def started_daemons() -> list[Started]:
    """The daemons the lab started that are still running."""
    return [s for s in _load().values() if _alive(s)]


def _stop(started: Started) -> None:
    try:
        os.kill(started.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while _alive(started):
        if time.monotonic() > deadline:
            log.warning("%s (pid %d) ignored SIGTERM; killing it", started.name, started.pid)
            os.kill(started.pid, signal.SIGKILL)
            deadline = time.monotonic() + STOP_TIMEOUT
        time.sleep(0.05)


def _prune_empty_dirs(root: Path) -> None:
    # The per-driver run directories libvirtd made; only empty ones go, so state of a daemon
    # the lab did not start (or anything unexpected) stays.
    if not root.is_dir():
        return
    for dirpath, _dirnames, _filenames in sorted(os.walk(root), key=lambda w: -len(w[0])):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


def stop_started() -> list[str]:
    """Stop the daemons the lab started (libvirtd first), remove their sockets, pid files and
    empty run directories, and the qemu.conf the lab wrote. Daemons the lab did not start are
    left alone, and so is everything of theirs.

    Returns the names of the daemons stopped.
    """
    stopped: list[str] = []
    with _lock():
        recorded = _load()
        for name in ("libvirtd", "virtlogd"):
            started = recorded.get(name)
            if started is None:
                continue
            if _alive(started):
                log.info("stopping %s (pid %d)", name, started.pid)
                _stop(started)
                stopped.append(name)
            # Only files of a daemon the lab ran, and only once it is gone.
            for leftover in DAEMON_FILES[name]:
                leftover.unlink(missing_ok=True)
        if recorded and _flag("wrote_qemu_conf") and QEMU_CONF.exists() and \
                QEMU_CONF.read_text().startswith(QEMU_CONF_MARK):
            QEMU_CONF.unlink()
        if "libvirtd" in recorded:
            _prune_empty_dirs(RUN_DIR)
        _state_file().unlink(missing_ok=True)
    return stopped
