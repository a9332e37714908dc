"""The error-path VMs: no agent channel, agent never started, guest-exec blocked, shut off."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import libvirt
import pytest

from vmexec.lab import Lab, LabVm

from .guest import agent

pytestmark = pytest.mark.vm

DomainOf = Callable[[LabVm], libvirt.virDomain]


def test_all_variants_exist(lab: Lab, lab_variants: dict[str, LabVm]) -> None:
    assert sorted(lab_variants) == ["noagent", "nochannel", "noexec", "stopped"]
    assert {kind: vm.name for kind, vm in lab_variants.items()} == {
        kind: f"{lab.prefix}-{kind}" for kind in lab_variants}


def test_nochannel_has_no_agent_configured(lab_variants: dict[str, LabVm],
                                           domain_of: DomainOf) -> None:
    vm = lab_variants["nochannel"]
    dom = domain_of(vm)
    assert vm.state == "running"
    assert "org.qemu.guest_agent.0" not in dom.XMLDesc(0)
    with pytest.raises(libvirt.libvirtError) as caught:
        agent(dom, "guest-ping", timeout=5)
    assert "not configured" in caught.value.get_error_message()


def test_noagent_boots_but_its_agent_never_answers(lab_variants: dict[str, LabVm],
                                                   domain_of: DomainOf) -> None:
    vm = lab_variants["noagent"]
    dom = domain_of(vm)
    assert vm.state == "running"
    assert "org.qemu.guest_agent.0" in dom.XMLDesc(0)
    # The guest did boot (its init printed this), it just never started qemu-ga.
    assert "agent disabled" in Path(vm.console_log).read_text()
    with pytest.raises(libvirt.libvirtError) as caught:
        agent(dom, "guest-ping", timeout=3)
    assert caught.value.get_error_code() in (libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
                                             libvirt.VIR_ERR_OPERATION_TIMEOUT)


def test_noexec_answers_but_guest_exec_is_disabled(lab_variants: dict[str, LabVm],
                                                   domain_of: DomainOf) -> None:
    dom = domain_of(lab_variants["noexec"])
    assert agent(dom, "guest-ping") == {}
    for command, args in (("guest-exec", {"path": "/bin/true"}),
                          ("guest-exec-status", {"pid": 1})):
        with pytest.raises(libvirt.libvirtError) as caught:
            agent(dom, command, **args)
        assert "has been disabled" in caught.value.get_error_message()


def test_stopped_is_defined_and_shut_off(lab_variants: dict[str, LabVm],
                                         domain_of: DomainOf) -> None:
    vm = lab_variants["stopped"]
    dom = domain_of(vm)
    assert vm.state == "shutoff"
    assert dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
    assert dom.isPersistent()
