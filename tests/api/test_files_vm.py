"""Files copied into and out of guests on real lab VMs (PUT/GET
/zstack/v1/vm-instances/{uuid}/files): byte-exact both ways, a temporary file renamed when
complete (an interrupted upload leaves nothing), the guest's errors as ZStack errors."""

from __future__ import annotations

import os
import socket

import httpx
import pytest
from fixtures.server import RunningServer

from api.guest_helpers import WORKDIR, run, sha256
from vmexec.execution.files import MAX_FILE_BYTES, WRITE_CHUNK
from vmexec.execution.guestfiles import READ_CHUNK
from vmexec.lab import LabVm

pytestmark = pytest.mark.vm

FILES = "/zstack/v1/vm-instances/{}/files"


# --- files -----------------------------------------------------------------------------------
def put(lab_api: RunningServer, lab_vm: LabVm, path: str, data: bytes,
        **params: str) -> httpx.Response:
    with lab_api.client() as client:
        return client.put(FILES.format(lab_vm.uuid), params={"path": path, **params},
                          content=data, timeout=300)


def get(lab_api: RunningServer, lab_vm: LabVm, path: str) -> httpx.Response:
    with lab_api.client() as client:
        return client.get(FILES.format(lab_vm.uuid), params={"path": path}, timeout=300)


def error_code(reply: httpx.Response) -> str:
    assert reply.status_code == 503, reply.text
    return str(reply.json()["error"]["code"])


def test_a_file_goes_in_and_out_exactly(lab_api: RunningServer, lab_vm: LabVm) -> None:
    # More than two read pieces and not a multiple of either piece size.
    data = os.urandom(2 * READ_CHUNK + 3 * WRITE_CHUNK + 7)
    path = f"{WORKDIR}/file.bin"
    reply = put(lab_api, lab_vm, path, data)
    assert reply.status_code == 200, reply.text
    assert reply.json()["inventory"] == {"vmInstanceUuid": lab_vm.uuid, "path": path,
                                         "size": len(data)}
    in_guest = run(lab_api, lab_vm, f"sha256sum {path} | cut -d' ' -f1; stat -c %a {path}; "
                               f"ls -a {WORKDIR}")
    digest, mode, *listing = in_guest["stdout"].split()
    assert digest == sha256(data) and mode == "644"
    assert not [name for name in listing if name.endswith(".part")], listing
    back = get(lab_api, lab_vm, path)
    assert back.status_code == 200
    assert back.headers["content-length"] == str(len(data))
    assert sha256(back.content) == sha256(data)


def test_mode_and_owner_are_applied_and_an_empty_file_is_a_file(lab_api: RunningServer,
                                                                lab_vm: LabVm) -> None:
    path = f"{WORKDIR}/empty"
    reply = put(lab_api, lab_vm, path, b"", mode="0750", owner="1234:5678")
    assert reply.status_code == 200, reply.text
    stat = run(lab_api, lab_vm, f"stat -c '%a %u %g %s' {path}")["stdout"].strip()
    assert stat == "750 1234 5678 0"
    assert get(lab_api, lab_vm, path).content == b""
    # Replaced without a mode: it keeps the old file's.
    assert put(lab_api, lab_vm, path, b"new").status_code == 200
    assert run(lab_api, lab_vm, f"stat -c %a {path}")["stdout"].strip() == "750"


def test_a_file_that_says_it_is_empty_comes_back_whole(lab_api: RunningServer,
                                                        lab_vm: LabVm) -> None:
    back = get(lab_api, lab_vm, "/proc/self/status")  # its size is 0 to stat and seek
    assert back.status_code == 200
    assert b"Name:" in back.content
    assert back.headers["content-length"] == str(len(back.content))


def test_an_interrupted_upload_leaves_nothing(lab_api: RunningServer, lab_vm: LabVm) -> None:
    path = f"{WORKDIR}/interrupted"
    host, port = lab_api.url.removeprefix("http://").split(":")
    session = lab_api.login()
    head = (f"PUT {FILES.format(lab_vm.uuid)}?path={path} HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: OAuth {session}\r\nContent-Length: {4 * 1024 * 1024}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head + os.urandom(600 * 1024))  # several pieces reach the guest
        # The client goes away in the middle of the body.
    listing = ""
    for _ in range(100):  # until the server noticed and removed the temporary file
        listing = run(lab_api, lab_vm, f"ls -a {WORKDIR}")["stdout"]
        if ".part" not in listing:
            break
    assert ".part" not in listing and "interrupted" not in listing, listing


def test_a_path_that_is_not_absolute_is_refused(lab_api: RunningServer, lab_vm: LabVm) -> None:
    for reply in (put(lab_api, lab_vm, "tmp/x", b"x"), get(lab_api, lab_vm, "tmp/x")):
        assert error_code(reply) == "SYS.1007"
        assert "not absolute" in reply.json()["error"]["details"]


def test_no_such_directory_or_file(lab_api: RunningServer, lab_vm: LabVm) -> None:
    assert error_code(put(lab_api, lab_vm, f"{WORKDIR}/missing/x", b"x")) == "VM.EXEC.1020"
    assert error_code(get(lab_api, lab_vm, f"{WORKDIR}/missing")) == "VM.EXEC.1020"


def test_a_directory_is_not_a_file(lab_api: RunningServer, lab_vm: LabVm) -> None:
    reply = put(lab_api, lab_vm, WORKDIR, b"x")
    assert error_code(reply) == "VM.EXEC.1023", reply.text
    assert error_code(get(lab_api, lab_vm, WORKDIR)) == "VM.EXEC.1023"
    assert run(lab_api, lab_vm, f"test -d {WORKDIR} && echo dir")["stdout"] == "dir\n"


def test_permission_denied(lab_api: RunningServer, lab_vm: LabVm) -> None:
    # Even root may not create files in /proc's process directories, nor read a
    # write-only file.
    reply = put(lab_api, lab_vm, "/proc/sys/vm/vmexec-test", b"x")
    assert error_code(reply) in ("VM.EXEC.1021", "VM.EXEC.1020"), reply.text
    assert error_code(get(lab_api, lab_vm, "/proc/sys/vm/compact_memory")) == "VM.EXEC.1021"


def test_a_full_disk_is_said_and_leaves_nothing(lab_api: RunningServer, lab_vm: LabVm) -> None:
    small = f"{WORKDIR}/small"
    run(lab_api, lab_vm, f"mkdir -p {small} && mount -t tmpfs -o size=256k tmpfs {small}")
    try:
        reply = put(lab_api, lab_vm, f"{small}/big", os.urandom(1024 * 1024))
        assert error_code(reply) == "VM.EXEC.1022", reply.text
        assert run(lab_api, lab_vm, f"ls -a {small}")["stdout"].split() == [".", ".."]
    finally:
        run(lab_api, lab_vm, f"umount {small}")


def test_a_declared_body_over_the_limit_is_refused_unread(lab_api: RunningServer,
                                                          lab_vm: LabVm) -> None:
    host, port = lab_api.url.removeprefix("http://").split(":")
    head = (f"PUT {FILES.format(lab_vm.uuid)}?path={WORKDIR}/huge HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: OAuth {lab_api.login()}\r\n"
            f"Content-Length: {MAX_FILE_BYTES + 1}\r\n\r\n").encode()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head + b"x")
        answer = b""
        while chunk := sock.recv(65536):  # the server closes after its answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b'"code":"SYS.1007"' in answer and str(MAX_FILE_BYTES).encode() in answer


def test_an_agent_without_guest_exec_takes_no_upload_but_gives_files(
        lab_api: RunningServer, lab_variants: dict[str, LabVm]) -> None:
    noexec = lab_variants["noexec"]
    reply = put(lab_api, noexec, "/tmp/never", b"x")
    assert error_code(reply) == "VM.EXEC.1005", reply.text
    assert "nothing was written" in reply.json()["error"]["details"]
    back = get(lab_api, noexec, "/proc/version")
    assert back.status_code == 200 and back.content.startswith(b"Linux version")
