"""The guest image: built from Debian packages, cached by its inputs, holding what tests need."""

from __future__ import annotations

import gzip
import subprocess

from vmexec.lab import image
from vmexec.lab.image import build_image

MiB = 1024 * 1024


def _members(initrd: bytes) -> set[str]:
    # cpio(1) itself reads the archive: checks the format, not just our own writer.
    listing = subprocess.run(["cpio", "-it", "--quiet"], input=gzip.decompress(initrd),
                             capture_output=True, check=True)
    return set(listing.stdout.decode().split())


def test_image_builds_and_second_call_is_a_cache_hit() -> None:
    first = build_image()
    second = build_image()
    assert second.cached
    assert (second.key, second.kernel, second.initrd) == (first.key, first.kernel, first.initrd)
    assert first.kernel.stat().st_size > MiB
    assert second.packages["qemu-guest-agent"]
    assert second.kernel_version


def test_initramfs_holds_agent_shells_python_modules_and_user() -> None:
    built = build_image()
    data = built.initrd.read_bytes()
    assert len(data) < 20 * MiB, "image grew: keep it small"
    members = _members(data)
    for path in ("init", "etc/inittab", "usr/sbin/vmexec-agent", "usr/sbin/qemu-ga",
                 "usr/bin/busybox", "usr/bin/bash", "usr/bin/python3", "usr/bin/python3.11",
                 "usr/lib/python3.11/os.py", "usr/lib/python3.11/json/__init__.py",
                 "usr/lib64/ld-linux-x86-64.so.2", "usr/bin/nohup", "home/vmuser", "tmp",
                 "dev/console"):
        assert path in members, path
    for module in image.VIRTIO_MODULES:
        assert f"usr/lib/modules/vmexec/{module}.ko" in members
    for applet in ("setsid", "su", "grep", "sleep", "kill", "ps", "head", "cat", "rm", "mkdir",
                   "env", "id", "hostname", "timeout"):
        assert f"usr/bin/{applet}" in members or f"usr/sbin/{applet}" in members, applet


def test_image_key_follows_the_inputs() -> None:
    # Same inputs, same key; the key is what the cache directory is named by.
    assert build_image().dir.name == build_image().key
