"""The file copy's limits and its reading of the guest's errors (pure; the copy itself is
tested on lab VMs in tests/api/test_files_vm.py)."""

from __future__ import annotations

import base64
import json

import pytest

from vmexec.agent.protocol import SAFE_REQUEST_BYTES, request_size
from vmexec.execution import errors
from vmexec.execution.errors import FileProblem
from vmexec.execution.files import (
    MAX_FILE_BYTES,
    READ_CHUNK,
    WRITE_CHUNK,
    check_path,
    problem_of,
)
from vmexec.execution.models import Platform

#: libvirt's limits on one agent reply (qemuAgent: 10 MiB) and on one RPC string (4 MiB,
#: VIR_NET_MESSAGE_STRING_MAX): a read's reply must stay within both.
LIBVIRT_AGENT_REPLY_MAX = 10 * 1024 * 1024
LIBVIRT_RPC_STRING_MAX = 4 * 1024 * 1024


def test_a_write_piece_is_one_safe_agent_request() -> None:
    largest = request_size("guest-file-write", {
        "handle": 2 ** 63 - 1, "buf-b64": base64.b64encode(b"\xff" * WRITE_CHUNK).decode()})
    assert largest <= SAFE_REQUEST_BYTES


def test_a_read_piece_fits_libvirts_reply_limits() -> None:
    reply = json.dumps({"return": {"count": READ_CHUNK, "eof": False,
                                   "buf-b64": base64.b64encode(b"\xff" * READ_CHUNK).decode()}})
    assert len(reply) <= LIBVIRT_RPC_STRING_MAX <= LIBVIRT_AGENT_REPLY_MAX


def test_the_largest_file_is_many_pieces() -> None:
    assert MAX_FILE_BYTES == 16 * 1024 ** 3
    assert MAX_FILE_BYTES // WRITE_CHUNK > 100_000 and MAX_FILE_BYTES % READ_CHUNK == 0


@pytest.mark.parametrize(("message", "problem"), [
    ("failed to open file '/x/y' (mode: 'w'): No such file or directory", FileProblem.NOT_FOUND),
    ("failed to open file '/etc/passwd/x' (mode: 'w'): Not a directory", FileProblem.NOT_FOUND),
    ("failed to open file '/proc/x' (mode: 'r'): Permission denied",
     FileProblem.PERMISSION_DENIED),
    ("failed to open file '/x' (mode: 'w'): Read-only file system",
     FileProblem.PERMISSION_DENIED),
    ("failed to write to file: No space left on device", FileProblem.DISK_FULL),
    ("failed to read file: Is a directory", FileProblem.IS_DIRECTORY),
    ("failed to seek file: Invalid argument", FileProblem.FAILED),
])
def test_the_guests_error_text_says_the_problem(message: str, problem: FileProblem) -> None:
    assert problem_of(message) is problem


@pytest.mark.parametrize("path", ["tmp/x", "", "./x", "~/x", "C:\\x"])
def test_a_path_that_is_not_absolute_is_refused(path: str) -> None:
    with pytest.raises(errors.InvalidExecRequest, match="not absolute"):
        check_path(path)


@pytest.mark.parametrize("path", ["/tmp/", "/", "/tmp/..", "/tmp/."])
def test_a_path_that_names_a_directory_is_refused(path: str) -> None:
    with pytest.raises(errors.InvalidExecRequest, match="directory"):
        check_path(path)


def test_a_nul_is_refused_and_windows_is_said_to_be_unsupported() -> None:
    with pytest.raises(errors.InvalidExecRequest, match="NUL"):
        check_path("/tmp/a\0b")
    with pytest.raises(errors.GuestFileError) as raised:
        check_path("C:\\x", Platform.WINDOWS)
    assert raised.value.problem is FileProblem.UNSUPPORTED
    assert check_path("/tmp/a b:c") == "/tmp/a b:c"
