"""The lab: N agent VMs (plus the error-path variants) on the local libvirtd, from one image.

    lab = Lab()                       # domains vmexec-lab-1..N, state in the lab cache
    vms = lab.up(3)                   # idempotent: running VMs are reused, more are added
    variants = lab.variants()         # {"nochannel": LabVm, "noagent": ..., ...}
    lab.down()                        # removes the domains, then daemons the lab started

A ``Lab`` with another ``prefix`` is an independent instance (its own domains and console
logs), which is how a test exercises ``down`` without touching the session's VMs.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import libvirt

from vmexec.hypervisor import kvm
from vmexec.lab import domain, guests, libvirtd, paths
from vmexec.lab.image import Image, build_image

log = logging.getLogger(__name__)

#: Boot under TCG takes 3-9 s alone; several VMs on 2 busy cores take longer.
BOOT_TIMEOUT = 180.0
PROBE_APPEND = "quiet panic=-1 vmexec.probe=1"
PROBE_MARKER = "vmexec-lab: probe ok"
#: Console lines (printed by lab/init) that show a VM without an answering agent has booted.
BOOTED_MARKERS: dict[domain.Kind, str] = {"nochannel": "vmexec-lab: init started",
                                          "noagent": "vmexec-lab: agent disabled"}


class LabError(RuntimeError):
    """The lab could not be brought up or torn down (the message says which VM and why)."""


@dataclass(frozen=True)
class LabVm:
    """One lab domain, as ``lab up`` / ``lab status`` report it."""

    #: libvirt UUID without dashes (32 hex digits), the form vmexec's API uses.
    uuid: str
    #: libvirt's UUID string, with dashes.
    libvirt_uuid: str
    name: str
    #: libvirt state word: "running", "shutoff", ...
    state: str
    uri: str
    #: "agent" or a variant: "nochannel", "noagent", "noexec", "stopped".
    kind: str
    console_log: str
    #: "kvm" or "tcg".
    accel: str
    #: Seconds until the agent answered during this `up` (0 when reused or not waited for).
    ready_seconds: float = field(default=0.0, compare=False)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class DownReport:
    """What ``Lab.down`` removed."""

    domains: list[str]
    daemons: list[str]
    remaining: list[str]

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class Lab:
    """Lab VMs named ``<prefix>-1..N`` and ``<prefix>-<variant>`` on libvirt ``uri``."""

    def __init__(self, prefix: str = paths.DEFAULT_PREFIX, *, uri: str = libvirtd.URI,
                 state_dir: Path | None = None, memory_mib: int = 256,
                 boot_timeout: float = BOOT_TIMEOUT,
                 progress: Callable[[str], None] | None = None) -> None:
        self.prefix = prefix
        self.uri = uri
        self.state_dir = state_dir or paths.lab_state_dir(prefix)
        self.memory_mib = memory_mib
        self.boot_timeout = boot_timeout
        self._progress = progress or (lambda message: log.info("%s", message))

    # -- public API --------------------------------------------------------------------------

    def image(self) -> Image:
        """The guest image, built when not cached.

        Raises:
            ImageError: see :func:`vmexec.lab.image.build_image`.
        """
        started = time.monotonic()
        image = build_image()
        how = "cached" if image.cached else "built"
        self._progress(f"image {image.key} {how} ({time.monotonic() - started:.1f} s)")
        return image

    def up(self, n: int, variants: Iterable[domain.Kind] | bool = ()) -> list[LabVm]:
        """Make ``<prefix>-1..n`` run with answering agents (and the given variants exist).

        Running VMs are reused (restarted, keeping their UUID, when booted from an older
        image), missing ones defined, stopped ones started, all in parallel.
        ``variants=True`` means all of :data:`domain.VARIANTS`. Returns the agent VMs in
        order, then the variants.

        Raises:
            LabError: libvirtd, the image or a VM failed (which VM and its console tail).
        """
        kinds: tuple[domain.Kind, ...] = (
            domain.VARIANTS if variants is True else tuple(variants or ()))
        unknown = [k for k in kinds if k not in domain.VARIANTS]
        if n < 0 or unknown:
            raise LabError(f"bad request: n={n}, unknown variants {unknown}")
        wanted: list[tuple[str, domain.Kind]] = [(f"{self.prefix}-{i}", "agent")
                                                 for i in range(1, n + 1)]
        wanted += [(f"{self.prefix}-{kind}", kind) for kind in kinds]
        with self._lock():
            image = self.image()
            accel = self._accel(image)
            conn = self._connect(start=True)
            try:
                return self._up(conn, image, accel, wanted)
            finally:
                conn.close()

    def variants(self, kinds: Iterable[domain.Kind] = domain.VARIANTS) -> dict[str, LabVm]:
        """The variant VMs (created on demand), by kind.

        Raises:
            LabError: as :meth:`up`.
        """
        return {vm.kind: vm for vm in self.up(0, variants=tuple(kinds))}

    def status(self) -> list[LabVm]:
        """Every domain of this lab instance, as it is now (empty when libvirtd is not up)."""
        if not libvirtd.answers(self.uri):
            return []
        conn = self._connect(start=False)
        try:
            return [self._vm(d) for d in guests.lab_domains(conn, self.prefix)]
        finally:
            conn.close()

    def down(self, *, names: Iterable[str] | None = None,
             stop_daemons: bool = True) -> DownReport:
        """Remove the domains of this lab instance (only ``names`` when given) and their
        console logs; then, when ``stop_daemons`` and no domain runs any more (of any lab or
        anyone), stop the daemons the lab started. Nothing to remove is not an error.

        Raises:
            LabError: a domain could not be removed.
        """
        only = None if names is None else set(names)
        removed: list[str] = []
        remaining: list[str] = []
        with self._lock():
            others = 0
            if libvirtd.answers(self.uri):
                conn = self._connect(start=False)
                try:
                    doomed = [d for d in guests.lab_domains(conn, self.prefix)
                              if only is None or d.name in only]
                    for lab_domain in doomed:
                        self._progress(f"removing {lab_domain.name}")
                    # In parallel: libvirt waits up to seconds for each QEMU to exit.
                    with ThreadPoolExecutor(max_workers=max(1, len(doomed))) as pool:
                        results = list(pool.map(self._remove, doomed))
                    removed = [name for name in results if name]
                    failed = [d.name for d, name in zip(doomed, results, strict=True) if not name]
                    if failed:
                        raise LabError(f"cannot remove {', '.join(failed)}")
                    remaining = [d.name for d in guests.lab_domains(conn, self.prefix)
                                 if only is None or d.name in only]
                    others = len(conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE))
                finally:
                    conn.close()
            for name in removed if only is not None else []:
                self._console_log(name).unlink(missing_ok=True)
            consoles = self.state_dir / "console"
            if only is None:
                shutil.rmtree(consoles, ignore_errors=True)
            elif consoles.is_dir() and not any(consoles.iterdir()):
                consoles.rmdir()
            daemons: list[str] = []
            if stop_daemons and others == 0:
                daemons = libvirtd.stop_started()
                for daemon in daemons:
                    self._progress(f"stopped {daemon}")
            elif stop_daemons and libvirtd.started_daemons():
                self._progress(f"libvirtd keeps running: {others} other domain(s) run")
        return DownReport(removed, daemons, remaining)

    # -- internals ---------------------------------------------------------------------------

    @contextmanager
    def _lock(self) -> Iterator[None]:
        # One up/down at a time per lab instance (CLI and a test session may race).
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _accel(self, image: Image) -> kvm.Accel:
        probe = kvm.ProbeGuest(image.kernel, image.initrd, PROBE_APPEND, PROBE_MARKER)
        try:
            accel = kvm.detect_accel(probe)
        except kvm.AccelError as exc:
            raise LabError(str(exc)) from None
        self._progress(f"accelerator: {accel}")
        return accel

    def _connect(self, *, start: bool) -> libvirt.virConnect:
        try:
            if start and libvirtd.ensure_libvirtd(self.uri):
                self._progress("started virtlogd and libvirtd")
            return libvirt.open(self.uri)
        except (libvirtd.LibvirtdError, libvirt.libvirtError) as exc:
            raise LabError(f"libvirt at {self.uri}: {exc}") from None

    def _remove(self, lab_domain: guests.LabDomain) -> str:
        # Returns the name when removed, "" when libvirt refused (logged).
        try:
            guests.remove(lab_domain.dom)
        except guests.GuestError as exc:
            log.warning("%s", exc)
            return ""
        return lab_domain.name

    def _console_log(self, name: str) -> Path:
        return self.state_dir / "console" / f"{name}.log"

    def _up(self, conn: libvirt.virConnect, image: Image, accel: kvm.Accel,
            wanted: list[tuple[str, domain.Kind]]) -> list[LabVm]:
        existing = {d.name: d for d in guests.lab_domains(conn, self.prefix)}
        doms: dict[str, libvirt.virDomain] = {}
        for name, kind in wanted:
            current = existing.get(name)
            if current is not None and guests.state(current.dom) == "running":
                if current.mark.image_key == image.key:
                    doms[name] = current.dom  # reused as it is
                    continue
                # Booted from an older image: restart it (same UUID) so tests see this one.
                self._progress(f"restarting {name}: image changed")
                try:
                    current.dom.destroy()
                except libvirt.libvirtError as exc:
                    raise LabError(f"cannot restart {name}: {exc}") from None
            spec = domain.DomainSpec(
                name=name, prefix=self.prefix, kind=kind, domain_type=kvm.domain_type(accel),
                kernel=image.kernel, initrd=image.initrd, console_log=self._console_log(name),
                image_key=image.key, memory_mib=self.memory_mib,
                uuid=current.dom.UUIDString() if current else None)
            try:
                doms[name] = guests.define(conn, spec)
            except guests.GuestError as exc:
                raise LabError(str(exc)) from None
            self._progress(f"{'redefined' if current else 'defined'} {name}")

        ready: dict[str, float] = {}
        errors: list[str] = []

        def bring_up(name: str, kind: domain.Kind) -> None:
            dom = doms[name]
            try:
                if kind == "stopped":
                    if dom.isActive():
                        dom.destroy()
                    return
                was_running = guests.state(dom) == "running"
                guests.start(dom)
                console = self._console_log(name)
                if kind in BOOTED_MARKERS:
                    waited = guests.wait_console(dom, console, BOOTED_MARKERS[kind],
                                                 self.boot_timeout)
                else:
                    waited = guests.wait_agent(dom, console, self.boot_timeout)
                if not was_running:
                    ready[name] = waited
                    self._progress(f"{name}: ready after {waited:.1f} s")
            except (guests.GuestError, libvirt.libvirtError) as exc:
                errors.append(str(exc))

        with ThreadPoolExecutor(max_workers=max(1, len(wanted))) as pool:
            for future in [pool.submit(bring_up, name, kind) for name, kind in wanted]:
                future.result()
        if errors:
            raise LabError("; ".join(errors))
        return [self._vm(guests.LabDomain(doms[name], domain.LabMark(self.prefix, kind, "")),
                         ready.get(name, 0.0))
                for name, kind in wanted]

    def _vm(self, lab_domain: guests.LabDomain, ready_seconds: float = 0.0) -> LabVm:
        dom = lab_domain.dom
        libvirt_uuid = str(dom.UUIDString())
        domain_type = "kvm" if "type='kvm'" in dom.XMLDesc(0) else "qemu"
        return LabVm(uuid=libvirt_uuid.replace("-", ""), libvirt_uuid=libvirt_uuid,
                     name=lab_domain.name, state=guests.state(dom), uri=self.uri,
                     kind=lab_domain.mark.kind, console_log=str(self._console_log(dom.name())),
                     accel="kvm" if domain_type == "kvm" else "tcg",
                     ready_seconds=round(ready_seconds, 2))
