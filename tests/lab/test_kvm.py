"""KVM detection: the env override, and a real probe result cached per host boot."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from vmexec.hypervisor import kvm
from vmexec.lab.image import build_image
from vmexec.lab.lab import PROBE_APPEND, PROBE_MARKER


def _probe() -> kvm.ProbeGuest:
    built = build_image()
    return kvm.ProbeGuest(built.kernel, built.initrd, PROBE_APPEND, PROBE_MARKER)


@pytest.mark.parametrize(("value", "accel"), [("kvm", "kvm"), ("tcg", "tcg"), ("TCG", "tcg")])
def test_env_override_wins(monkeypatch: pytest.MonkeyPatch, value: str, accel: str) -> None:
    monkeypatch.setenv(kvm.ENV_OVERRIDE, value)
    assert kvm.detect_accel(_probe()) == accel


def test_bad_override_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(kvm.ENV_OVERRIDE, "xen")
    with pytest.raises(kvm.AccelError):
        kvm.detect_accel(_probe())


def test_domain_type() -> None:
    assert (kvm.domain_type("kvm"), kvm.domain_type("tcg")) == ("kvm", "qemu")


@pytest.mark.slow
def test_detection_is_cached_for_this_boot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(kvm.ENV_OVERRIDE, raising=False)
    probe = _probe()
    first = kvm.detect_accel(probe)  # probes at most once per host boot (<= ~10 s)
    started = time.monotonic()
    assert kvm.detect_accel(probe) == first
    assert time.monotonic() - started < 1.0


@pytest.mark.slow
def test_tcg_boots_the_probe_guest_to_its_marker() -> None:
    # The probe's guest side works: the same boot under TCG reaches the marker, so a failing
    # KVM probe means KVM, not the image.
    probe = _probe()
    with tempfile.TemporaryDirectory() as tmp:
        console = Path(tmp) / "console.log"
        subprocess.run([kvm.QEMU, "-accel", "tcg", "-m", "128", "-display", "none",
                        "-nodefaults", "-serial", f"file:{console}", "-kernel", str(probe.kernel),
                        "-initrd", str(probe.initrd), "-append",
                        f"console=ttyS0 {probe.append}", "-no-reboot"],
                       timeout=60, check=True, capture_output=True)
        assert PROBE_MARKER in console.read_text(errors="replace")
