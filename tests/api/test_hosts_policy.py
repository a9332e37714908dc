"""AddKVMHost cannot be used to run programs on the vmexec host (B8): host URIs pass the host
URI policy before anything connects, hosts stored with a refused URI are never opened, the
operator's settings widen or narrow the policy, and only an admin adds or deletes hosts."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fixtures.server import RunningServer, ServerFactory, login, sha512_hex
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from vmexec.config import Settings
from vmexec.db.models import Account
from vmexec.db.models_inventory import KIND_LIBVIRT, HostRow

HOSTS = "/zstack/v1/hosts"
ADD = "/zstack/v1/hosts/kvm"


def add_host(client: httpx.Client, **params: Any) -> httpx.Response:
    params.setdefault("name", "test-host")
    return client.post(ADD, json={"params": params})


def assert_error(reply: httpx.Response, code: str, fragment: str) -> None:
    assert reply.status_code == 503, reply.text
    error = reply.json()["error"]
    assert error["code"] == code, error
    assert fragment in error["details"], error


@pytest.fixture
def program(tmp_path: Path) -> tuple[Path, Path]:
    """A program that leaves a marker file when something runs it."""
    marker = tmp_path / "ran"
    script = tmp_path / "program.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, marker


@pytest.mark.parametrize("uri", [
    "qemu+ext:///system?command={program}",
    "qemu+ssh://root@127.0.0.1:1/system?command={program}&no_tty=1",
    "qemu:///system?socket=/nonexistent.sock&command={program}",
])
def test_a_host_uri_cannot_run_a_program(vmexec_server: RunningServer,
                                         program: tuple[Path, Path], uri: str) -> None:
    script, marker = program
    with vmexec_server.client() as client:
        reply = add_host(client, libvirtUri=uri.format(program=script))
        assert_error(reply, "SYS.1007", "is not")
        assert not marker.exists(), "the program ran on the vmexec host"
        assert all(str(script) not in h["libvirtUri"]
                   for h in client.get(HOSTS).json()["inventories"])


def test_ssh_fields_cannot_smuggle_parameters(vmexec_server: RunningServer,
                                              program: tuple[Path, Path]) -> None:
    script, marker = program
    with vmexec_server.client() as client:
        reply = add_host(client, managementIp="127.0.0.1", sshPort=1,
                         username=f"a@127.0.0.1:1/system?command={script}&x=")
        assert_error(reply, "SYS.1007", "is not allowed")
        reply = add_host(client, username="root", sshPort=1,
                         managementIp=f"127.0.0.1/system?command={script}&x=")
        assert_error(reply, "SYS.1007", "parameter 'command' is not allowed")
    assert not marker.exists()


def test_a_stored_host_with_a_refused_uri_is_never_opened(
        server_factory: ServerFactory, tmp_path: Path, program: tuple[Path, Path]) -> None:
    # A host added before the policy existed (or before an operator narrowed it).
    script, marker = program
    db_file = tmp_path / "stored.db"
    server_factory(db_file=db_file).stop()  # creates the schema
    engine = create_engine(f"sqlite:///{db_file}")
    with Session(engine) as session, session.begin():
        session.add(HostRow(uuid="cd" * 16, name="planted", kind=KIND_LIBVIRT,
                            uri=f"qemu+ext:///system?command={script}", state="Enabled",
                            status="Connected"))
    engine.dispose()
    server = server_factory(db_file=db_file)
    with server.client() as client:
        [host] = client.get(HOSTS, params={"q": f"uuid={'cd' * 16}"}).json()["inventories"]
        assert host["status"] == "Disconnected"
        assert not marker.exists(), "the stored URI was opened"
        # The admin can still delete it.
        assert client.delete(f"{HOSTS}/{'cd' * 16}").status_code == 200
        assert client.get(HOSTS, params={"q": f"uuid={'cd' * 16}"}).json()["inventories"] == []
    assert not marker.exists()


def test_operator_policy_keeps_connections_on_this_machine(
        server_factory: ServerFactory) -> None:
    server = server_factory(host_transports=["local", "unix"])
    with server.client() as client:
        for uri in ("qemu+tcp://127.0.0.1:1/system", "qemu+tls://127.0.0.1:1/system"):
            assert_error(add_host(client, libvirtUri=uri), "SYS.1007",
                         "transport is not allowed on this server")
        assert_error(add_host(client, managementIp="127.0.0.1", username="root", sshPort=1),
                     "SYS.1007", "the ssh transport is not allowed")
        # Local ones still pass the policy (and then fail to answer).
        assert_error(add_host(client, libvirtUri="unix:///nonexistent/vmexec"), "SYS.1006",
                     "cannot read agent-socket directory")


def test_operator_can_allow_a_parameter(server_factory: ServerFactory) -> None:
    uri = "qemu+ssh://root@127.0.0.1:1/system?keyfile=/nonexistent/id&no_tty=1"
    with server_factory().client() as client:
        assert_error(add_host(client, libvirtUri=uri), "SYS.1007", "parameter 'keyfile'")
    with server_factory(host_uri_parameters=["keyfile"]).client() as client:
        # Past the policy: ssh to port 1 of the loopback is refused at once.
        assert_error(add_host(client, libvirtUri=uri), "SYS.1006", "cannot connect to host")


def test_the_local_libvirt_uri_setting_passes_the_same_policy(
        server_factory: ServerFactory, tmp_path: Path, program: tuple[Path, Path]) -> None:
    # Refused at the first start: not registered (a warning says why), never opened.
    script, marker = program
    for db, settings in (("a.db", {"libvirt_uri": f"qemu+ext:///system?command={script}"}),
                         ("b.db", {"host_transports": ["unix"]})):
        server = server_factory(db_file=tmp_path / db, **settings)
        with server.client() as client:
            assert client.get(HOSTS).json()["inventories"] == []
    assert not marker.exists()
    with pytest.raises(ValueError, match="host_transports"):
        Settings(host_transports=["local", "ext"])


def _add_account(db_file: Path, name: str, password: str) -> None:
    # A second account, as the accounts API will create them: a real row, argon2 hash.
    engine = create_engine(f"sqlite:///{db_file}")
    with Session(engine) as session, session.begin():
        session.add(Account(uuid=sha512_hex(name)[:32], name=name,
                            password_hash=PasswordHasher().hash(sha512_hex(password))))
    engine.dispose()


def test_only_an_admin_adds_or_deletes_hosts(server_factory: ServerFactory,
                                             tmp_path: Path) -> None:
    db_file = tmp_path / "accounts.db"
    server = server_factory(db_file=db_file)
    _add_account(db_file, "alice", "alice-password")
    alice = login(server.url, "alice", "alice-password")
    with httpx.Client(base_url=server.url, timeout=60,
                      headers={"Authorization": f"OAuth {alice}"}) as client:
        assert_error(add_host(client, libvirtUri="unix:///tmp"), "ID.1002", "not an admin")
        assert_error(client.delete(f"{HOSTS}/{'ef' * 16}"), "ID.1002", "not an admin")
        # Host APIs are for admins, reading too (issue 13).
        assert_error(client.get(HOSTS), "ID.1002", "not an admin")
    with server.client() as admin:
        assert admin.delete(f"{HOSTS}/{'ef' * 16}").status_code == 200
