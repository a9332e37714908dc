"""Libvirt domain XML for lab guests, and the metadata that marks a domain as the lab's.

Every lab domain carries ``<metadata><lab:lab xmlns:lab=NAMESPACE prefix=... kind=.../>``:
``lab down`` removes exactly the domains whose metadata names its prefix, never others.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

NAMESPACE = "urn:x-vmexec:lab:1"
NS_PREFIX = "lab"

#: ``agent`` VMs are the ones tests run commands in; the rest exist for the API's error paths.
Kind = Literal["agent", "nochannel", "noagent", "noexec", "stopped"]
VARIANTS: tuple[Kind, ...] = ("nochannel", "noagent", "noexec", "stopped")
#: qemu-ga commands blocked in the ``noexec`` variant.
NOEXEC_BLOCKED = "guest-exec,guest-exec-status"
AGENT_CHANNEL = "org.qemu.guest_agent.0"
QEMU_BINARY = "/usr/bin/qemu-system-x86_64"


@dataclass(frozen=True)
class DomainSpec:
    """Everything that goes into one lab domain's XML."""

    name: str
    prefix: str
    kind: Kind
    domain_type: str  # "kvm" or "qemu" (TCG), from vmexec.hypervisor.kvm
    kernel: Path
    initrd: Path
    console_log: Path
    image_key: str
    memory_mib: int = 256
    uuid: str | None = None  # keep a domain's UUID when redefining it

    @property
    def has_channel(self) -> bool:
        return self.kind != "nochannel"

    @property
    def cmdline(self) -> str:
        # quiet: every console byte costs under TCG; the init's own markers still print.
        args = ["console=ttyS0", "quiet", "panic=-1", f"vmexec.hostname={self.name}"]
        if self.kind == "noagent":
            args.append("vmexec.agent=off")
        elif self.kind == "noexec":
            args.append(f"vmexec.agent_block={NOEXEC_BLOCKED}")
        return " ".join(args)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def domain_xml(spec: DomainSpec) -> str:
    """The libvirt XML of ``spec``: direct kernel boot, no disk, no NIC, serial console to file."""
    dom = ET.Element("domain", type=spec.domain_type)
    _sub(dom, "name", spec.name)
    if spec.uuid:
        _sub(dom, "uuid", spec.uuid)
    metadata = _sub(dom, "metadata")
    metadata.append(metadata_element(spec.prefix, spec.kind, spec.image_key))
    _sub(dom, "memory", str(spec.memory_mib), unit="MiB")
    _sub(dom, "vcpu", "1")
    os_ = _sub(dom, "os")
    _sub(os_, "type", "hvm", arch="x86_64", machine="pc")
    _sub(os_, "kernel", str(spec.kernel))
    _sub(os_, "initrd", str(spec.initrd))
    _sub(os_, "cmdline", spec.cmdline)
    features = _sub(dom, "features")
    _sub(features, "acpi")
    _sub(dom, "on_poweroff", "destroy")
    # A guest reboot or panic (panic=-1 reboots) stops the domain instead of looping;
    # `lab up` starts it again.
    _sub(dom, "on_reboot", "destroy")
    _sub(dom, "on_crash", "destroy")
    devices = _sub(dom, "devices")
    _sub(devices, "emulator", QEMU_BINARY)
    serial = _sub(devices, "serial", type="file")
    _sub(serial, "source", path=str(spec.console_log), append="off")
    _sub(serial, "target", port="0")
    if spec.has_channel:
        channel = _sub(devices, "channel", type="unix")
        _sub(channel, "target", type="virtio", name=AGENT_CHANNEL)
    # Nothing else: libvirt would add a USB controller and a balloon by default.
    _sub(devices, "controller", type="usb", model="none")
    _sub(devices, "memballoon", model="none")
    return ET.tostring(dom, encoding="unicode")


def metadata_element(prefix: str, kind: Kind, image_key: str) -> ET.Element:
    """``<lab:lab prefix= kind= image=/>`` in the lab namespace."""
    ET.register_namespace(NS_PREFIX, NAMESPACE)
    return ET.Element(f"{{{NAMESPACE}}}lab", prefix=prefix, kind=kind, image=image_key)


@dataclass(frozen=True)
class LabMark:
    """What the lab metadata of a domain says."""

    prefix: str
    kind: Kind
    image_key: str


def parse_metadata(xml: str) -> LabMark | None:
    """The lab mark in a ``<lab:lab>`` element as libvirt's ``metadata()`` returns it, or None."""
    try:
        element = ET.fromstring(xml)
    except ET.ParseError:
        return None
    prefix = element.get("prefix")
    kind = next((k for k in ("agent", *VARIANTS) if k == element.get("kind")), None)
    if not prefix or kind is None:
        return None
    return LabMark(prefix, kind, element.get("image", ""))
