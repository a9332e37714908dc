"""Blocking libvirt operations on lab domains: list, define, start, wait for the agent, remove.

The lab is a tool, so these call libvirt directly (from worker threads when run in parallel);
``libvirtError`` is turned into :class:`GuestError` here and does not leave the lab.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import libvirt
import libvirt_qemu

from vmexec.lab import domain

STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: "nostate",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "pmsuspended",
}
PING = json.dumps({"execute": "guest-ping"})


class GuestError(RuntimeError):
    """A lab domain could not be defined, started, reached or removed."""


@dataclass(frozen=True)
class LabDomain:
    """A libvirt domain that carries the lab's mark."""

    dom: libvirt.virDomain
    mark: domain.LabMark

    @property
    def name(self) -> str:
        return str(self.dom.name())


def mark_of(dom: libvirt.virDomain) -> domain.LabMark | None:
    """The lab mark of ``dom``, or None when the domain is not the lab's."""
    try:
        xml = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, domain.NAMESPACE, 0)
    except libvirt.libvirtError:
        return None  # no lab metadata: someone else's domain
    return domain.parse_metadata(xml)


def lab_domains(conn: libvirt.virConnect, prefix: str | None) -> list[LabDomain]:
    """Lab domains of the lab instance ``prefix`` (all lab instances when None), by name."""
    found = []
    for dom in conn.listAllDomains(0):
        mark = mark_of(dom)
        if mark is not None and (prefix is None or mark.prefix == prefix):
            found.append(LabDomain(dom, mark))
    return sorted(found, key=lambda d: d.name)


def state(dom: libvirt.virDomain) -> str:
    """libvirt's state of ``dom`` as a word (``running``, ``shutoff``, ...)."""
    code, _reason = dom.state()
    return STATES.get(code, "unknown")


def define(conn: libvirt.virConnect, spec: domain.DomainSpec) -> libvirt.virDomain:
    """Define (or redefine, keeping its UUID) the persistent domain of ``spec``.

    Raises:
        GuestError: libvirt rejected the XML.
    """
    spec.console_log.parent.mkdir(parents=True, exist_ok=True)
    try:
        return conn.defineXML(domain.domain_xml(spec))
    except libvirt.libvirtError as exc:
        raise GuestError(f"cannot define {spec.name}: {exc.get_error_message()}") from None


def start(dom: libvirt.virDomain) -> None:
    """Start ``dom`` unless it runs; a paused or crashed domain is destroyed and started anew.

    Raises:
        GuestError: libvirt could not start it.
    """
    try:
        current = state(dom)
        if current == "running":
            return
        if dom.isActive():
            dom.destroy()
        dom.create()
    except libvirt.libvirtError as exc:
        raise GuestError(f"cannot start {dom.name()}: {exc.get_error_message()}") from None


def ping(dom: libvirt.virDomain, timeout: int = 2) -> bool:
    """True when the guest agent of ``dom`` answers ``guest-ping`` within ``timeout`` seconds."""
    try:
        libvirt_qemu.qemuAgentCommand(dom, PING, timeout, 0)
    except libvirt.libvirtError:
        return False
    return True


def wait_agent(dom: libvirt.virDomain, console_log: Path, timeout: float) -> float:
    """Wait until the agent of ``dom`` answers; returns the seconds waited.

    Raises:
        GuestError: no answer within ``timeout`` s, or the domain stopped (message carries the
            end of the console log).
    """
    started = time.monotonic()
    deadline = started + timeout
    while True:
        if ping(dom):
            return time.monotonic() - started
        try:
            running = dom.isActive()
        except libvirt.libvirtError:
            running = False
        if not running or time.monotonic() > deadline:
            why = "stopped" if not running else f"did not answer within {timeout:.0f} s"
            raise GuestError(f"agent of {dom.name()} {why}; console:\n{_tail(console_log)}")
        # libvirt fails fast while the guest has not opened its end of the channel.
        time.sleep(0.2)


def wait_console(dom: libvirt.virDomain, console_log: Path, marker: str, timeout: float) -> float:
    """Wait until ``marker`` appears in the console log of ``dom``; returns the seconds waited.

    For VMs whose agent never answers: this shows they booted all the same.

    Raises:
        GuestError: the marker did not appear within ``timeout`` s, or the domain stopped.
    """
    started = time.monotonic()
    while True:
        try:
            if marker in console_log.read_text(errors="replace"):
                return time.monotonic() - started
        except FileNotFoundError:
            pass
        if not dom.isActive() or time.monotonic() - started > timeout:
            raise GuestError(f"{dom.name()} did not print {marker!r} within {timeout:.0f} s; "
                             f"console:\n{_tail(console_log)}")
        time.sleep(0.2)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"({exc})"
    return "\n".join(text.splitlines()[-lines:])


def remove(dom: libvirt.virDomain) -> None:
    """Stop ``dom`` if it runs and undefine it; a domain already gone is fine.

    Raises:
        GuestError: libvirt refused.
    """
    try:
        if dom.isActive():
            dom.destroy()
        dom.undefine()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return
        raise GuestError(f"cannot remove {dom.name()}: {exc.get_error_message()}") from None
