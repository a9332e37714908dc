#!/usr/bin/env bash
# Installs what vmexec needs on a Debian 12 host, idempotently:
# Debian packages (libvirt, QEMU, guest-image inputs, chromium) and a venv in .venv/ with vmexec in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
  qemu-system-x86 qemu-utils libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
  libvirt-dev pkg-config gcc python3-dev python3-venv
  busybox-static bash-static dash cpio xz-utils qemu-guest-agent curl openssh-server openssh-client
  iproute2 netcat-openbsd  # network namespaces of the qemu+ssh tests; nc: libvirt's ssh proxy fallback
  postgresql
  python3.11-minimal libpython3.11-stdlib  # python3 in the lab guest image
  chromium fonts-dejavu-core  # the web console's browser tests (Playwright drives it)
)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp=.venv/.vmexec-installed
if [[ ! -x .venv/bin/python || ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  echo "bootstrap: preparing .venv (Python packages from PyPI)" >&2
  [[ -x .venv/bin/python ]] || python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[server,dev]'
  touch "$stamp"
fi
