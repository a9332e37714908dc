"""The lab's guest image: a Debian cloud kernel and a small initramfs that boots to qemu-ga.

The initramfs holds busybox (with applet links), qemu-ga, bash, a minimal python3, the six
virtio modules the agent's port needs, a ``vmuser`` account and the init scripts shipped in
``vmexec/lab/init/``. Everything comes from Debian packages: the kernel is downloaded with
apt-get, userland is copied from the host's installed packages together with the shared
libraries ``ldd`` lists.

Builds are cached under ``images/<key>/`` in the lab cache, where ``key`` hashes the package
versions, the init scripts and :data:`BUILDER_VERSION`; a build happens only when one changes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import lzma
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from vmexec.lab import cpio, debs, paths

log = logging.getLogger(__name__)

#: Bump when the builder's output changes for the same inputs.
BUILDER_VERSION = 1

#: Load order matters: each module needs the ones before it.
VIRTIO_MODULES = ("virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
                  "virtio_pci", "virtio_console")

#: Host packages whose files go into the image (their libraries' packages are added).
HOST_PACKAGES = ["busybox-static", "qemu-guest-agent", "bash-static", "coreutils",
                 "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib"]

#: Dynamically linked host programs copied into the image, with their libraries.
#: coreutils' nohup because Debian's busybox has no nohup applet.
PROGRAMS = ("/usr/sbin/qemu-ga", "/usr/bin/python3.11", "/usr/bin/nohup")
#: Statically linked programs, by guest path. bash is the default shell of every command:
#: a dynamically linked bash costs ~100 ms per start in a TCG guest, a static one ~10 ms.
STATIC_PROGRAMS = {"usr/bin/bash": "/usr/bin/bash-static"}

PYTHON_VERSION = "3.11"
#: Pure-python modules from libpython3.11-stdlib added to the minimal stdlib.
PYTHON_EXTRAS = ("json", "shlex.py", "shutil.py", "getpass.py")
#: Extension modules of the minimal stdlib left out: they need OpenSSL (~5 MB).
PYTHON_SKIP = re.compile(r"lib-dynload/_(ssl|hashlib)\.")

INIT_FILES = {"init": ("init", 0o755), "inittab": ("etc/inittab", 0o644),
              "vmexec-agent": ("usr/sbin/vmexec-agent", 0o755),
              "shutdown": ("usr/sbin/shutdown", 0o755)}

VMUSER_UID = 1000
ETC_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"
                  f"vmuser:x:{VMUSER_UID}:{VMUSER_UID}:vmexec lab user:/home/vmuser:/bin/sh\n"
                  "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": f"root:x:0:\nvmuser:x:{VMUSER_UID}:\nnogroup:x:65534:\n",
    # Locked passwords: root switches users without one, nobody logs in.
    "etc/shadow": "root:*:19000:0:99999:7:::\nvmuser:!:19000:0:99999:7:::\n"
                  "nobody:*:19000:0:99999:7:::\n",
    "etc/shells": "/bin/sh\n/bin/bash\n/usr/bin/bash\n",
    "etc/nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files\n",
    "etc/hostname": "localhost\n",
    "etc/profile": "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
}


class ImageError(RuntimeError):
    """The image could not be built (missing host package, download or packing failure)."""


@dataclass(frozen=True)
class Image:
    """A built image: boot it with ``kernel`` + ``initrd``."""

    key: str
    dir: Path
    kernel: Path
    initrd: Path
    kernel_version: str
    packages: dict[str, str] = field(default_factory=dict)
    #: True when this call found the image in the cache.
    cached: bool = False
    build_seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {"key": self.key, "dir": str(self.dir), "kernel": str(self.kernel),
                "initrd": str(self.initrd), "initrd_bytes": self.initrd.stat().st_size,
                "kernel_version": self.kernel_version, "cached": self.cached,
                "build_seconds": round(self.build_seconds, 2), "packages": self.packages}


@dataclass(frozen=True)
class _Inputs:
    kernel_package: str
    kernel_version: str
    files: dict[str, str]  # guest path -> host path
    packages: dict[str, str]
    init_scripts: dict[str, bytes]

    def key(self) -> str:
        digest = hashlib.sha256()
        digest.update(f"builder={BUILDER_VERSION}\n".encode())
        # The builder's own code is an input too: a fix here must not reuse a stale image.
        for module in ("image.py", "cpio.py"):
            digest.update(hashlib.sha256(Path(__file__).with_name(module).read_bytes()).digest())
        digest.update(f"kernel={self.kernel_package}={self.kernel_version}\n".encode())
        for name, version in sorted(self.packages.items()):
            digest.update(f"pkg={name}={version}\n".encode())
        for guest in sorted(self.files):
            digest.update(f"file={guest}\n".encode())
        for name, data in sorted(self.init_scripts.items()):
            digest.update(f"init={name}\n".encode() + hashlib.sha256(data).digest())
        return digest.hexdigest()[:20]


def _ldd(program: str) -> list[str]:
    proc = subprocess.run(["ldd", program], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ImageError(f"ldd {program} failed: {proc.stderr.strip()}")
    return re.findall(r"(/\S+) \(0x", proc.stdout)


def _guest_path(host: str) -> str:
    # Resolve the directory only (usr-merge: /lib -> /usr/lib) and keep the name ldd asked for:
    # the file content is the symlink's target.
    directory, name = os.path.split(host)
    return os.path.join(os.path.realpath(directory), name).lstrip("/")


def _python_files() -> list[str]:
    out = subprocess.run(["dpkg-query", "-L", f"libpython{PYTHON_VERSION}-minimal"],
                         capture_output=True, text=True, check=False).stdout
    stdlib = f"/usr/lib/python{PYTHON_VERSION}"
    files = [p for p in out.splitlines()
             if p.startswith(stdlib + "/") and os.path.isfile(p) and not PYTHON_SKIP.search(p)]
    for extra in PYTHON_EXTRAS:
        path = Path(stdlib, extra)
        files.extend(str(p) for p in ([path] if path.is_file() else sorted(path.rglob("*.py"))))
    # Compiled bytecode next to each source: compiling at import time is slow under TCG.
    pycs = []
    for source in files:
        if source.endswith(".py"):
            directory, name = os.path.split(source)
            pyc = os.path.join(directory, "__pycache__",
                               name[:-3] + f".cpython-{PYTHON_VERSION.replace('.', '')}.pyc")
            if os.path.isfile(pyc):
                pycs.append(pyc)
    return files + pycs


def _collect_inputs() -> _Inputs:
    try:
        kernel_package, kernel_version = debs.resolve_kernel(paths.cache_root() / "kernel.json")
    except debs.DebError as exc:
        cached = _newest_cached_kernel()
        if cached is None:
            raise ImageError(f"cannot resolve the cloud kernel: {exc}") from None
        log.warning("cannot resolve the cloud kernel (%s); using cached %s", exc, cached)
        kernel_package, kernel_version = cached

    files: dict[str, str] = {"usr/bin/busybox": "/usr/bin/busybox", **STATIC_PROGRAMS}
    for program in PROGRAMS:
        for host in [program, *_ldd(program)]:
            files[_guest_path(host)] = host
    for host in _python_files():
        files[_guest_path(host)] = host
    try:
        packages = debs.installed_versions(HOST_PACKAGES)
        # dpkg knows a library by the path its package ships, before or after usr-merge.
        libs = [Path(p) for g, h in files.items() if ".so" in g for p in (h, "/" + g)]
        owners = [p for p in debs.owning_packages(libs) if p not in packages]
        packages.update(debs.installed_versions(owners) if owners else {})
    except debs.DebError as exc:
        raise ImageError(str(exc)) from None

    init_dir = resources.files("vmexec.lab") / "init"
    scripts = {name: (init_dir / name).read_bytes() for name in INIT_FILES}
    return _Inputs(kernel_package, kernel_version, files, packages, scripts)


def _newest_cached_kernel() -> tuple[str, str] | None:
    found = sorted(paths.debs_dir().glob("linux-image-*-cloud-amd64_*_amd64.deb"),
                   key=lambda p: p.stat().st_mtime)
    if not found:
        return None
    package, version, _ = found[-1].name.split("_")
    return package, version.replace("%3a", ":")


@contextmanager
def _build_lock() -> Iterator[None]:
    # Tests and the CLI may build at the same time; the second one waits and then hits the cache.
    paths.images_dir().mkdir(parents=True, exist_ok=True)
    with open(paths.images_dir() / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _image_from_manifest(directory: Path, *, cached: bool) -> Image:
    manifest = json.loads((directory / "manifest.json").read_text())
    return Image(key=manifest["key"], dir=directory, kernel=directory / "vmlinuz",
                 initrd=directory / "initrd.gz", kernel_version=manifest["kernel_version"],
                 packages=manifest["packages"], cached=cached,
                 build_seconds=manifest["build_seconds"])


def build_image(*, force: bool = False) -> Image:
    """Return the lab image for the current inputs, building it when it is not cached.

    Raises:
        ImageError: a host package is missing, the kernel cannot be downloaded, or packing failed.
    """
    inputs = _collect_inputs()
    key = inputs.key()
    target = paths.images_dir() / key
    with _build_lock():
        if not force and (target / "manifest.json").is_file():
            return _image_from_manifest(target, cached=True)
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=paths.images_dir()))
        try:
            _build(inputs, work)
            manifest = {"key": key, "kernel_version": inputs.kernel_version,
                        "kernel_package": inputs.kernel_package, "packages": inputs.packages,
                        "builder_version": BUILDER_VERSION,
                        "build_seconds": round(time.monotonic() - started, 2)}
            (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            if target.exists():
                shutil.rmtree(target)
            work.chmod(0o755)
            work.rename(target)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        _prune(keep=target)
    log.info("built lab image %s in %.1f s", key, time.monotonic() - started)
    return _image_from_manifest(target, cached=False)


#: Older images kept besides the current one: stopped lab domains may still name them until
#: the next ``lab up`` redefines them.
KEEP_OLD_IMAGES = 2


def _prune(keep: Path) -> None:
    old = sorted((d for d in paths.images_dir().iterdir()
                  if d.is_dir() and d != keep and (d / "manifest.json").is_file()),
                 key=lambda d: d.stat().st_mtime, reverse=True)
    for directory in old[KEEP_OLD_IMAGES:]:
        shutil.rmtree(directory, ignore_errors=True)


def _build(inputs: _Inputs, out: Path) -> None:
    deb = debs.download(inputs.kernel_package, inputs.kernel_version, paths.debs_dir())
    kernel_dir = out / "kernel-src"
    wanted = re.compile(r"^boot/vmlinuz-|/(" + "|".join(VIRTIO_MODULES) + r")\.ko(\.xz)?$")
    try:
        extracted = debs.extract_members(deb, wanted, kernel_dir)
    except debs.DebError as exc:
        raise ImageError(str(exc)) from None
    root = out / "root"
    _make_skeleton(root)
    _add_kernel(extracted, root, out)
    shutil.rmtree(kernel_dir)
    _add_files(inputs.files, root)
    _add_busybox_links(root)
    for name, (dest, mode) in INIT_FILES.items():
        target = root / dest
        target.write_bytes(inputs.init_scripts[name])
        target.chmod(mode)
    for rel, text in ETC_FILES.items():
        (root / rel).write_text(text)
    (root / "etc/shadow").chmod(0o600)
    vmuser = cpio.Owner(VMUSER_UID, VMUSER_UID)
    cpio.write_initramfs(root, out / "initrd.gz",
                         owners={"home/vmuser": vmuser},
                         devices=(cpio.CharDevice("dev/console", 5, 1),
                                  cpio.CharDevice("dev/null", 1, 3, 0o666)))
    shutil.rmtree(root)


def _make_skeleton(root: Path) -> None:
    for d in ("usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "usr/local/bin", "usr/local/sbin",
              "etc", "proc", "sys", "dev", "run", "var/lib", "var/log", "root", "home/vmuser",
              "usr/lib/modules/vmexec", "mnt"):
        (root / d).mkdir(parents=True, exist_ok=True)
    # usr-merged layout, like the host the binaries come from.
    for link in ("bin", "sbin", "lib", "lib64"):
        (root / link).symlink_to(f"usr/{link}")
    (root / "var/run").symlink_to("../run")
    for sticky in ("tmp", "var/tmp"):
        (root / sticky).mkdir(parents=True, exist_ok=True)
        (root / sticky).chmod(0o1777)
    (root / "root").chmod(0o700)
    (root / "usr/bin/python3").symlink_to(f"python{PYTHON_VERSION}")
    # Python looks for lib-dynload to find its exec_prefix, and warns on stderr without it.
    (root / f"usr/lib/python{PYTHON_VERSION}/lib-dynload").mkdir(parents=True)


def _add_kernel(extracted: list[Path], root: Path, out: Path) -> None:
    modules = root / "usr/lib/modules/vmexec"
    kernel = None
    for path in extracted:
        if path.name.startswith("vmlinuz-"):
            kernel = path
        elif path.name.endswith(".ko.xz"):
            # busybox insmod cannot read compressed modules; modinfo/depmod are not there.
            (modules / path.name[:-3]).write_bytes(lzma.decompress(path.read_bytes()))
        else:
            shutil.copyfile(path, modules / path.name)
    missing = [m for m in VIRTIO_MODULES if not (modules / f"{m}.ko").is_file()]
    if kernel is None or missing:
        raise ImageError(f"kernel package lacks vmlinuz or modules {missing}")
    shutil.copyfile(kernel, out / "vmlinuz")


def _add_files(files: dict[str, str], root: Path) -> None:
    for guest, host in sorted(files.items()):
        target = root / guest
        target.parent.mkdir(parents=True, exist_ok=True)
        # copy2 keeps mtimes, which python checks its .pyc files against.
        shutil.copy2(os.path.realpath(host), target)


def _add_busybox_links(root: Path) -> None:
    proc = subprocess.run(["/usr/bin/busybox", "--list-full"], capture_output=True, text=True,
                          check=True)
    for applet in proc.stdout.split():
        # Applets live in bin/, sbin/, usr/bin/, usr/sbin/: all under usr/ once merged.
        rel = applet if applet.startswith("usr/") else f"usr/{applet}"
        link = root / rel
        if link.exists() or link.is_symlink():
            continue  # a real program (bash) wins over the applet
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/usr/bin/busybox")
