"""Domain facts read from libvirt domain XML (pure parsing; live domains in test_domains.py)."""

from __future__ import annotations

import pytest

from vmexec.hypervisor.domains import DomainEvent, DomainState, dashed, parse_domain_xml

LINUX = """
<domain type='kvm'>
  <name>vm_1</name>
  <uuid>6f1e8a3c-0b7d-4c3e-9a51-2d4f6e8a0b1c</uuid>
  <description>  lab guest  </description>
  <memory unit='KiB'>1048576</memory>
  <currentMemory unit='KiB'>524288</currentMemory>
  <vcpu placement='static' current='2'>4</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
  <devices>
    <channel type='unix'>
      <source mode='bind' path='/run/x.sock'/>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>
  </devices>
</domain>
"""

WINDOWS = """
<domain type='kvm' xmlns:x='http://example.com'>
  <name>win</name>
  <uuid>00000000-0000-0000-0000-0000000000ff</uuid>
  <title>Windows box</title>
  <metadata>
    <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
      <libosinfo:os id="http://microsoft.com/win/10"/>
    </libosinfo:libosinfo>
  </metadata>
  <memory unit='GiB'>4</memory>
  <vcpu>2</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>
  </devices>
</domain>
"""


def test_linux_domain_with_agent_channel() -> None:
    facts = parse_domain_xml(LINUX, DomainState.RUNNING)
    assert facts.uuid == "6f1e8a3c0b7d4c3e9a512d4f6e8a0b1c"
    assert facts.name == "vm_1"
    assert facts.description == "lab guest"
    assert facts.state is DomainState.RUNNING
    assert facts.vcpus == 2  # the current count, not the maximum
    assert facts.memory_bytes == 512 * 1024 * 1024  # currentMemory wins over memory
    assert facts.architecture == "x86_64"
    assert facts.platform == "Linux"
    assert facts.has_agent_channel is True


def test_windows_domain_without_agent_channel() -> None:
    facts = parse_domain_xml(WINDOWS, DomainState.SHUTOFF)
    assert facts.uuid == "000000000000000000000000000000ff"
    assert facts.description == "Windows box"
    assert facts.vcpus == 2
    assert facts.memory_bytes == 4 * 1024 ** 3
    assert facts.platform == "Windows"
    assert facts.has_agent_channel is False


def test_hyperv_features_hint_windows() -> None:
    xml = ("<domain><name>w</name><uuid>00000000-0000-0000-0000-000000000001</uuid>"
           "<features><hyperv mode='custom'><relaxed state='on'/></hyperv></features>"
           "<memory>1024</memory></domain>")
    facts = parse_domain_xml(xml, DomainState.RUNNING)
    assert facts.platform == "Windows"
    assert facts.memory_bytes == 1024 * 1024  # no unit: KiB
    assert facts.vcpus == 0
    assert facts.architecture is None


@pytest.mark.parametrize("xml", ["<domain><name>x</name></domain>", "<network/>", "<<"])
def test_not_a_domain(xml: str) -> None:
    with pytest.raises(ValueError, match="not a domain XML"):
        parse_domain_xml(xml, DomainState.RUNNING)


def test_unknown_libvirt_numbers_do_not_raise() -> None:
    assert DomainState.of(99) is DomainState.NOSTATE
    assert DomainEvent.of(42) is DomainEvent.UNKNOWN
    assert DomainEvent.of(5) is DomainEvent.STOPPED


def test_dashed_uuid() -> None:
    assert dashed("6F1E8A3C0B7D4C3E9A512D4F6E8A0B1C") == "6f1e8a3c-0b7d-4c3e-9a51-2d4f6e8a0b1c"
    with pytest.raises(ValueError):
        dashed("nope")
