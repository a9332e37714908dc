"""Lab VMs: they boot, their agents answer through libvirt, and the guest has what tests need."""

from __future__ import annotations

from collections.abc import Callable

import libvirt
import pytest

from vmexec.lab import Lab, LabVm

from .guest import agent, run, sh

pytestmark = pytest.mark.vm

DomainOf = Callable[[LabVm], libvirt.virDomain]


def test_three_vms_run_with_distinct_uuids(lab: Lab, lab_vms: list[LabVm]) -> None:
    assert [vm.name for vm in lab_vms] == [f"{lab.prefix}-{i}" for i in (1, 2, 3)]
    assert {vm.state for vm in lab_vms} == {"running"}
    assert len({vm.uuid for vm in lab_vms}) == 3
    for vm in lab_vms:
        assert len(vm.uuid) == 32 and vm.uuid == vm.libvirt_uuid.replace("-", "")
        assert vm.uri == "qemu:///system"
        assert vm.accel in ("kvm", "tcg")


def test_domains_are_built_as_specified(lab_vms: list[LabVm], domain_of: DomainOf) -> None:
    xml = domain_of(lab_vms[0]).XMLDesc(0)
    assert "org.qemu.guest_agent.0" in xml
    assert "<serial type='file'>" in xml
    assert "<disk" not in xml and "<interface" not in xml
    assert "<on_crash>destroy</on_crash>" in xml
    assert f"<domain type='{'kvm' if lab_vms[0].accel == 'kvm' else 'qemu'}'" in xml


def test_agents_answer_guest_ping(lab_vms: list[LabVm], domain_of: DomainOf) -> None:
    for vm in lab_vms:
        assert agent(domain_of(vm), "guest-ping") == {}


def test_hostname_is_the_vm_name(lab_vms: list[LabVm], domain_of: DomainOf) -> None:
    for vm in lab_vms:
        result = run(domain_of(vm), "/bin/hostname")
        assert (result.exit_code, result.stdout) == (0, f"{vm.name}\n")


def test_bash_and_python3_run(lab_vms: list[LabVm], domain_of: DomainOf) -> None:
    dom = domain_of(lab_vms[0])
    bash = run(dom, "/bin/bash", "-c", 'echo "bash ${BASH_VERSINFO[0]}"')
    assert (bash.exit_code, bash.stdout) == (0, "bash 5\n")
    py = run(dom, "/usr/bin/python3", "-c", "import sys, os, json; print(json.dumps([1]))")
    assert (py.exit_code, py.stdout, py.stderr) == (0, "[1]\n", "")


@pytest.mark.parametrize("shebang", ["#!/usr/bin/env python3", "#!/usr/bin/python3"])
def test_python_scripts_run_by_shebang(lab_vms: list[LabVm], domain_of: DomainOf,
                                       shebang: str) -> None:
    script = f"{shebang}\nimport os\nprint('uid', os.getuid())\n"
    result = sh(domain_of(lab_vms[1]),
                f"f=$(mktemp /tmp/py.XXXXXX) && printf '%s' \"{script}\" > $f && chmod +x $f "
                "&& $f; rc=$?; rm -f $f; exit $rc")
    assert (result.exit_code, result.stdout) == (0, "uid 0\n")


def test_non_root_user_and_writable_tmp(lab_vms: list[LabVm], domain_of: DomainOf) -> None:
    result = sh(domain_of(lab_vms[2]),
                "su vmuser -c 'id -u; echo $HOME; touch /tmp/by-vmuser && stat -c %U "
                "/tmp/by-vmuser; rm /tmp/by-vmuser'")
    assert (result.exit_code, result.stdout) == (0, "1000\n/home/vmuser\nvmuser\n")


def test_agent_environment_and_tools(lab_vms: list[LabVm], domain_of: DomainOf) -> None:
    tools = ("setsid su grep sleep kill ps head cat rm mkdir env id hostname timeout nohup "
             "bash python3")
    result = sh(domain_of(lab_vms[0]), f'echo "$PATH"; for t in {tools}; do command -v $t; done')
    lines = result.stdout.splitlines()
    assert lines[0] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert len(lines) == 1 + len(tools.split()), result.stdout


def test_up_again_returns_the_same_vms(lab: Lab, lab_vms: list[LabVm]) -> None:
    again = lab.up(len(lab_vms))
    assert [vm.uuid for vm in again] == [vm.uuid for vm in lab_vms]
    assert {vm.uuid for vm in lab_vms} <= {vm.uuid for vm in lab.status()}
