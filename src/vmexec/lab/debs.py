"""Debian packages as image inputs: the cloud kernel (downloaded) and host-installed packages.

The kernel is not installed on the host: it is fetched with ``apt-get download`` into the lab's
.deb cache and unpacked from there. Userland (busybox, qemu-ga, bash, python) is copied from the
host's installed packages, whose versions go into the image's cache key.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from pathlib import Path

#: The metapackage whose single ``linux-image-*`` dependency names the current cloud kernel.
KERNEL_METAPACKAGE = "linux-image-cloud-amd64"


class DebError(RuntimeError):
    """A Debian package could not be resolved, downloaded or read."""


def _run(args: list[str], what: str, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise DebError(f"{what}: {exc}") from None
    if proc.returncode != 0:
        raise DebError(f"{what}: {' '.join(args)} exited {proc.returncode}: "
                       f"{proc.stderr.strip()[-500:]}")
    return proc.stdout


def _candidate(package: str) -> str | None:
    out = _run(["apt-cache", "policy", package], f"apt-cache policy {package}")
    match = re.search(r"^\s*Candidate:\s*(\S+)", out, re.MULTILINE)
    if match is None or match.group(1) == "(none)":
        return None
    return match.group(1)


def _apt_update() -> None:
    _run(["apt-get", "update", "-q"], "apt-get update")


def _lists_stamp() -> str:
    # Changes whenever apt-get update fetched new package lists.
    lists = Path("/var/lib/apt/lists")
    try:
        stamps = [p.stat().st_mtime_ns for p in lists.glob("*_Packages*")]
    except OSError:
        return ""
    return f"{len(stamps)}:{max(stamps, default=0)}"


def _resolve_uncached() -> tuple[str, str]:
    out = _run(["apt-cache", "depends", KERNEL_METAPACKAGE], "apt-cache depends")
    match = re.search(r"Depends:\s*(linux-image-\S+-cloud-amd64)", out)
    if match is None:
        raise DebError(f"{KERNEL_METAPACKAGE} has no linux-image-*-cloud-amd64 dependency")
    package = match.group(1)
    version = _candidate(package)
    if version is None:
        raise DebError(f"no installable version of {package}")
    return package, version


def resolve_kernel(cache: Path | None = None) -> tuple[str, str]:
    """The cloud kernel package to use and its version, e.g. ``("linux-image-6.1.0-56-cloud-amd64",
    "6.1.192-2")``: the dependency of the ``linux-image-cloud-amd64`` metapackage.

    apt-cache takes seconds, so the answer is kept in ``cache`` (a JSON file) until the package
    lists change. Runs ``apt-get update`` once when the lists do not know the metapackage.

    Raises:
        DebError: apt does not know the metapackage or its dependency.
    """
    stamp = _lists_stamp()
    if cache is not None and stamp:
        try:
            saved = json.loads(cache.read_text())
            if saved.get("stamp") == stamp:
                return str(saved["package"]), str(saved["version"])
        except (OSError, ValueError, KeyError):
            pass
    try:
        package, version = _resolve_uncached()
    except DebError:
        _apt_update()
        stamp = _lists_stamp()
        package, version = _resolve_uncached()
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"stamp": stamp, "package": package, "version": version}))
    return package, version


def download(package: str, version: str, dest: Path) -> Path:
    """``dest/<package>_<version>_amd64.deb``, downloaded with apt-get unless already cached.

    Raises:
        DebError: the download failed.
    """
    dest.mkdir(parents=True, exist_ok=True)
    # apt-get names files with ':' in the epoch escaped as %3a.
    filename = f"{package}_{version.replace(':', '%3a')}_amd64.deb"
    path = dest / filename
    if path.is_file():
        return path
    _run(["apt-get", "download", "-q", f"{package}={version}"], f"download {package}", cwd=dest)
    if not path.is_file():
        found = sorted(dest.glob(f"{package}_*.deb"))
        raise DebError(f"apt-get download {package} left no {filename} (found {found})")
    return path


def installed_versions(packages: list[str]) -> dict[str, str]:
    """Installed versions of host packages.

    Raises:
        DebError: one of them is not installed.
    """
    out = _run(["dpkg-query", "-W", "-f", "${Package}:${Architecture} ${Version} ${Status}\n",
                *packages], "dpkg-query")
    versions: dict[str, str] = {}
    for line in out.splitlines():
        name, version, *status = line.split()
        if status[-1:] == ["installed"]:
            versions[name.split(":")[0]] = version
    missing = [p for p in packages if p.split(":")[0] not in versions]
    if missing:
        raise DebError(f"host packages not installed: {', '.join(missing)} "
                       "(run scripts/bootstrap.sh)")
    return versions


def owning_packages(paths: list[Path]) -> list[str]:
    """Names of the installed packages that own ``paths`` (paths no package owns are skipped)."""
    proc = subprocess.run(["dpkg-query", "-S", *map(str, paths)], capture_output=True,
                          text=True, check=False)
    names: set[str] = set()
    for line in proc.stdout.splitlines():
        owners, _, _ = line.partition(": ")
        # "diversion by ..." lines have no package list before ': '.
        if owners.startswith("diversion"):
            continue
        for owner in owners.split(", "):
            names.add(owner.strip().split(":")[0])
    return sorted(names)


def extract_members(deb: Path, wanted: re.Pattern[str], dest: Path) -> list[Path]:
    """Unpack the members of ``deb``'s data archive whose path matches ``wanted`` into ``dest``.

    Streams ``dpkg-deb --fsys-tarfile`` through tar: only the few files the image needs are
    written, not the kernel's ~100 MB of modules.

    Raises:
        DebError: dpkg-deb or tar failed.
    """
    dest.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    extracted: list[Path] = []
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                name = member.name.lstrip("./")
                if member.isfile() and wanted.search(name):
                    target = dest / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    src = tar.extractfile(member)
                    assert src is not None
                    target.write_bytes(src.read())
                    extracted.append(target)
    except tarfile.TarError as exc:
        proc.kill()
        raise DebError(f"cannot read {deb}: {exc}") from None
    finally:
        proc.stdout.close()
        _, err = proc.communicate()
    if proc.returncode != 0:
        raise DebError(f"dpkg-deb --fsys-tarfile {deb} failed: {err.decode(errors='replace')}")
    return extracted
