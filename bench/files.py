"""Measure 6: a file into and out of a lab VM through the API (``PUT``/``GET
…/vm-instances/{uuid}/files``) against a raw ``guest-file-write`` / ``guest-file-read`` loop
through libvirt-python (the same transport, the same piece sizes: a write request stays
within what qemu-ga takes, a read reply within libvirt's limits), and how much the server's
RSS grows while it streams.

The lab VMs keep their root file system in RAM (about 100 MiB of it), so the default size is
64 MiB, not the issue's 100 MiB; each file is deleted after its round.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import libvirt
import libvirt_qemu

from vmexec.execution.files import WRITE_CHUNK
from vmexec.execution.guestfiles import READ_CHUNK
from vmexec.lab import LabVm

from . import api
from .server import ApiServer, PeakSampler, worst_growth_kib

MIB = 1024 * 1024
FILES_PATH = "/zstack/v1/vm-instances/{}/files"
RAW_PATH = "/tmp/vmexec-bench-raw.bin"
API_PATH = "/tmp/vmexec-bench-api.bin"
#: Seconds one agent call may take.
CALL_TIMEOUT = 60


@dataclass(frozen=True, slots=True)
class FilesConfig:
    mib: int = 64
    repeats: int = 2
    #: Bytes the bench's client sends at a time (what the server gets per body read varies).
    send_piece: int = 1024 * 1024


@dataclass
class FilesResult:
    config: FilesConfig
    #: Seconds per repeat of each way: raw and API, upload and download.
    raw_up: list[float] = field(default_factory=list)
    raw_down: list[float] = field(default_factory=list)
    api_up: list[float] = field(default_factory=list)
    api_down: list[float] = field(default_factory=list)
    idle_kib: list[int] = field(default_factory=list)
    peak_kib: list[int] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.config.mib * MIB

    @property
    def growth_kib(self) -> int:
        return worst_growth_kib(self.peak_kib, self.idle_kib)

    def mib_per_s(self, seconds: list[float]) -> float:
        """Throughput of the best repeat (MiB/s)."""
        return self.config.mib / min(seconds)


class RawFiles:
    """guest-file-open/write/read/close through libvirt-python: the baseline."""

    def __init__(self, uri: str, domain_uuid: str) -> None:
        self._conn = libvirt.open(uri)
        self._dom = self._conn.lookupByUUIDString(domain_uuid)

    def call(self, command: str, arguments: dict[str, Any]) -> Any:
        request = json.dumps({"execute": command, "arguments": arguments})
        reply = libvirt_qemu.qemuAgentCommand(self._dom, request, CALL_TIMEOUT, 0)
        return json.loads(reply)["return"]

    def upload(self, path: str, data: bytes) -> None:
        handle = self.call("guest-file-open", {"path": path, "mode": "w"})
        try:
            for offset in range(0, len(data), WRITE_CHUNK):
                piece = data[offset:offset + WRITE_CHUNK]
                self.call("guest-file-write", {"handle": handle,
                                               "buf-b64": base64.b64encode(piece).decode()})
        finally:
            self.call("guest-file-close", {"handle": handle})

    def download(self, path: str) -> str:
        """The file's sha256 (hex)."""
        digest = hashlib.sha256()
        handle = self.call("guest-file-open", {"path": path, "mode": "r"})
        try:
            while True:
                reply = self.call("guest-file-read", {"handle": handle, "count": READ_CHUNK})
                digest.update(base64.b64decode(reply.get("buf-b64", "")))
                if reply.get("eof") or not reply.get("count"):
                    break
        finally:
            self.call("guest-file-close", {"handle": handle})
        return digest.hexdigest()

    def close(self) -> None:
        self._conn.close()


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset:offset + size]


def measure(vm: LabVm, server: ApiServer, config: FilesConfig) -> FilesResult:
    """Raises when a file does not come back as it went."""
    result = FilesResult(config)
    data = os.urandom(result.size)
    expected = hashlib.sha256(data).hexdigest()
    raw = RawFiles(vm.uri, vm.libvirt_uuid)
    with httpx.Client(base_url=server.url, headers=server.auth, timeout=600) as client:
        api.exec_sync(client, vm.uuid, "echo warm")
        try:
            for _ in range(config.repeats):
                started = time.perf_counter()
                raw.upload(RAW_PATH, data)
                result.raw_up.append(time.perf_counter() - started)
                started = time.perf_counter()
                got = raw.download(RAW_PATH)
                result.raw_down.append(time.perf_counter() - started)
                api.exec_sync(client, vm.uuid, f"rm -f {RAW_PATH}")
                if got != expected:
                    raise RuntimeError("the raw loop's file came back different")

                result.idle_kib.append(server.memory().rss_kib)
                with PeakSampler(server.pid) as peak:
                    started = time.perf_counter()
                    reply = client.put(FILES_PATH.format(vm.uuid), params={"path": API_PATH},
                                       content=_pieces(data, config.send_piece),
                                       headers={"Content-Length": str(len(data))})
                    result.api_up.append(time.perf_counter() - started)
                    if reply.status_code != 200:
                        raise RuntimeError(f"PUT file: {reply.status_code} {reply.text[:300]}")
                    digest = hashlib.sha256()
                    started = time.perf_counter()
                    with client.stream("GET", FILES_PATH.format(vm.uuid),
                                       params={"path": API_PATH}) as response:
                        if response.status_code != 200:
                            raise RuntimeError(f"GET file: {response.status_code}")
                        for piece in response.iter_bytes():
                            digest.update(piece)
                    result.api_down.append(time.perf_counter() - started)
                result.peak_kib.append(peak.peak_kib)
                api.exec_sync(client, vm.uuid, f"rm -f {API_PATH}")
                if digest.hexdigest() != expected:
                    raise RuntimeError("the API's file came back different")
        finally:
            raw.close()
            api.exec_sync(client, vm.uuid, f"rm -f {RAW_PATH} {API_PATH}")
    return result
