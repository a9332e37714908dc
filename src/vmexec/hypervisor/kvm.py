"""Does KVM really work here? The one place that decides ``kvm`` vs ``qemu`` (TCG) domains.

``/dev/kvm`` existing is not enough: under nested virtualisation it may be present while guests
hang in early boot (after "Probing EDD" with the default CPU model) or abort (``-cpu host``).
So a small guest is booted with ``qemu-system-x86_64 -accel kvm``; KVM works when the guest
prints its marker on the serial console within a few seconds. The answer is cached per host
boot (keyed by ``/proc/sys/kernel/random/boot_id``), so the probe costs once per boot.

``VMEXEC_ACCEL=kvm|tcg`` overrides detection.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

Accel = Literal["kvm", "tcg"]

ENV_OVERRIDE = "VMEXEC_ACCEL"
KVM_DEVICE = Path("/dev/kvm")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
QEMU = "qemu-system-x86_64"
#: A guest that reaches userspace under working KVM does it in 1-2 s; TCG is not involved.
PROBE_TIMEOUT = 10.0


class AccelError(ValueError):
    """``VMEXEC_ACCEL`` holds something other than ``kvm`` or ``tcg``."""


@dataclass(frozen=True)
class ProbeGuest:
    """A guest to boot for the probe: it must print ``marker`` on ttyS0, then may power off."""

    kernel: Path
    initrd: Path
    append: str
    marker: str


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vmexec" / "kvm-probe.json"


def _boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def kvm_works(guest: ProbeGuest, timeout: float = PROBE_TIMEOUT) -> bool:
    """Boot ``guest`` under KVM (uncached) and report whether it reached its marker in time.

    Never raises for a failing guest or a missing QEMU: both mean "KVM does not work".
    """
    if not KVM_DEVICE.exists():
        return False
    with tempfile.TemporaryDirectory(prefix="vmexec-kvm-probe.") as tmp:
        console = Path(tmp) / "console.log"
        args = [QEMU, "-accel", "kvm", "-m", "128", "-display", "none", "-nodefaults",
                "-no-user-config", "-serial", f"file:{console}", "-kernel", str(guest.kernel),
                "-initrd", str(guest.initrd), "-append", f"console=ttyS0 {guest.append}",
                "-no-reboot"]
        try:
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except OSError as exc:
            log.warning("KVM probe: cannot run %s: %s", QEMU, exc)
            return False
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # The nested-KVM failure mode: the guest hangs in early boot, QEMU never exits.
            proc.kill()
            _, err = proc.communicate()
        text = console.read_text(errors="replace") if console.exists() else ""
    works = guest.marker in text
    if not works:
        log.info("KVM probe failed (qemu rc=%s): %s", proc.returncode,
                 err.decode(errors="replace").strip()[-300:])
    return works


def detect_accel(guest: ProbeGuest) -> Accel:
    """``kvm`` when KVM really works on this host, else ``tcg``.

    Order: ``VMEXEC_ACCEL``; no ``/dev/kvm`` means tcg; the answer cached for this host boot;
    otherwise probe with ``guest`` and cache the result.

    Raises:
        AccelError: ``VMEXEC_ACCEL`` is set to something else than ``kvm`` or ``tcg``.
    """
    override = os.environ.get(ENV_OVERRIDE, "").strip().lower()
    if override:
        if override not in ("kvm", "tcg"):
            raise AccelError(f"{ENV_OVERRIDE} must be 'kvm' or 'tcg', not {override!r}")
        return "kvm" if override == "kvm" else "tcg"
    if not KVM_DEVICE.exists():
        return "tcg"
    boot_id = _boot_id()
    cache = _cache_file()
    try:
        cached = json.loads(cache.read_text())
        if boot_id and cached.get("boot_id") == boot_id:
            return "kvm" if cached.get("kvm") else "tcg"
    except (OSError, ValueError):
        pass
    works = kvm_works(guest)
    log.info("KVM probe: KVM %s", "works" if works else "does not work; using TCG")
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"boot_id": boot_id, "kvm": works}) + "\n")
    return "kvm" if works else "tcg"


def domain_type(accel: Accel) -> str:
    """The libvirt ``<domain type=...>`` for ``accel``: ``kvm`` or ``qemu`` (TCG)."""
    return "kvm" if accel == "kvm" else "qemu"
