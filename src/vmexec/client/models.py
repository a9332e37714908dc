"""Typed views of the server's replies. Each keeps the reply's JSON object in ``raw`` (with every
field, including ones this client does not know), so nothing the server sends is lost."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The status of a command stopped at its timeout, as coreutils ``timeout`` exits.
TIMED_OUT_STATUS = 124


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class Session:
    """LogInByAccount's ``inventory``: ``uuid`` goes in ``Authorization: OAuth <uuid>``."""

    uuid: str
    account_uuid: str | None = None
    user_uuid: str | None = None
    expired_date: str | None = None
    create_date: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, inv: Mapping[str, Any]) -> Session:
        return cls(uuid=str(inv["uuid"]), account_uuid=_str(inv.get("accountUuid")),
                   user_uuid=_str(inv.get("userUuid")),
                   expired_date=_str(inv.get("expiredDate")),
                   create_date=_str(inv.get("createDate")), raw=dict(inv))


@dataclass(frozen=True)
class Account:
    """UpdateAccount's ``inventory`` (ZStack's AccountInventory)."""

    uuid: str
    name: str | None = None
    type: str | None = None
    create_date: str | None = None
    last_op_date: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, inv: Mapping[str, Any]) -> Account:
        return cls(uuid=str(inv["uuid"]), name=_str(inv.get("name")), type=_str(inv.get("type")),
                   create_date=_str(inv.get("createDate")),
                   last_op_date=_str(inv.get("lastOpDate")), raw=dict(inv))


@dataclass(frozen=True)
class VmInstance:
    """The VmInstanceInventory fields a client usually needs (``raw`` has them all)."""

    uuid: str
    name: str | None = None
    state: str | None = None
    host_uuid: str | None = None
    platform: str | None = None
    cpu_num: int | None = None
    #: Bytes.
    memory_size: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, inv: Mapping[str, Any]) -> VmInstance:
        return cls(uuid=str(inv.get("uuid", "")), name=_str(inv.get("name")),
                   state=_str(inv.get("state")), host_uuid=_str(inv.get("hostUuid")),
                   platform=_str(inv.get("platform")), cpu_num=_int(inv.get("cpuNum")),
                   memory_size=_int(inv.get("memorySize")), raw=dict(inv))


@dataclass(frozen=True)
class Host:
    """The HostInventory fields a client usually needs (``raw`` has them all)."""

    uuid: str
    name: str | None = None
    status: str | None = None
    state: str | None = None
    management_ip: str | None = None
    #: vmexec extension: how the server reaches the host.
    libvirt_uri: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, inv: Mapping[str, Any]) -> Host:
        return cls(uuid=str(inv.get("uuid", "")), name=_str(inv.get("name")),
                   status=_str(inv.get("status")), state=_str(inv.get("state")),
                   management_ip=_str(inv.get("managementIp")),
                   libvirt_uri=_str(inv.get("libvirtUri")), raw=dict(inv))


@dataclass(frozen=True)
class ExecResult:
    """ExecuteGuestVmCommand's result: ZStack's ``stream`` and ``vmInstance``, and vmexec's
    extensions (exit code, separate streams, truncation, timeout, duration)."""

    stdout: str = ""
    stderr: str = ""
    #: None when the command was killed by a signal (see ``signal``) or timed out.
    exit_code: int | None = None
    signal: int | None = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timed_out: bool = False
    duration_ms: int | None = None
    #: ZStack's ``"standardStream: ..., errorStream: ..."``.
    stream: str = ""
    vm_instance: VmInstance | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def stdout_data(self) -> bytes:
        """stdout's exact bytes (``stdoutBase64`` when the server sent it, else the text)."""
        return exact_bytes(self.raw, "stdout")

    @property
    def stderr_data(self) -> bytes:
        return exact_bytes(self.raw, "stderr")

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> ExecResult:
        vm = body.get("vmInstance")
        return cls(
            stdout=str(body.get("stdout") or ""), stderr=str(body.get("stderr") or ""),
            exit_code=_int(body.get("exitCode")), signal=_int(body.get("signal")),
            stdout_truncated=bool(body.get("stdoutTruncated")),
            stderr_truncated=bool(body.get("stderrTruncated")),
            timed_out=bool(body.get("timedOut")), duration_ms=_int(body.get("durationMs")),
            stream=str(body.get("stream") or ""),
            vm_instance=VmInstance.from_wire(vm) if isinstance(vm, Mapping) else None,
            raw=dict(body))

    @property
    def shell_status(self) -> int:
        """The status a shell would report: the exit code, 128+N when killed by signal N,
        124 on timeout (as coreutils ``timeout``)."""
        if self.timed_out:
            return TIMED_OUT_STATUS
        if self.signal is not None:
            return 128 + self.signal
        return self.exit_code if self.exit_code is not None else 1


def exact_bytes(body: Mapping[str, Any], stream: str) -> bytes:
    """The exact bytes of ``stream`` in a reply or inventory: its ``<stream>Base64`` when
    there is one (output that is not UTF-8), else its text."""
    encoded = body.get(f"{stream}Base64")
    if isinstance(encoded, str):
        return base64.b64decode(encoded)
    return str(body.get(stream) or "").encode()


def _bool(value: Any) -> bool:
    return bool(value) if isinstance(value, bool) else False


@dataclass(frozen=True)
class Execution:
    """QueryGuestVmCommandExecution's inventory: one command in one VM (a single exec, or one
    target of a run). ``stdout``/``stderr`` are set by ``get_execution`` only (None in
    queries). ``state`` is ``Running``, ``Succeeded``, ``Failed``, ``TimedOut`` or
    ``Cancelled``."""

    uuid: str
    vm_instance_uuid: str | None = None
    run_uuid: str | None = None
    account_uuid: str | None = None
    command: str | None = None
    platform: str | None = None
    shell: str | None = None
    state: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    error_code: str | None = None
    error_details: str | None = None
    create_date: str | None = None
    start_date: str | None = None
    finish_date: str | None = None
    duration_ms: int | None = None
    stdout_bytes: int | None = None
    stderr_bytes: int | None = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    stdout: str | None = None
    stderr: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, inv: Mapping[str, Any]) -> Execution:
        return cls(
            uuid=str(inv.get("uuid", "")), vm_instance_uuid=_str(inv.get("vmInstanceUuid")),
            run_uuid=_str(inv.get("runUuid")), account_uuid=_str(inv.get("accountUuid")),
            command=_str(inv.get("command")), platform=_str(inv.get("platform")),
            shell=_str(inv.get("shell")), state=_str(inv.get("state")),
            exit_code=_int(inv.get("exitCode")), signal=_int(inv.get("signal")),
            error_code=_str(inv.get("errorCode")), error_details=_str(inv.get("errorDetails")),
            create_date=_str(inv.get("createDate")), start_date=_str(inv.get("startDate")),
            finish_date=_str(inv.get("finishDate")), duration_ms=_int(inv.get("durationMs")),
            stdout_bytes=_int(inv.get("stdoutBytes")), stderr_bytes=_int(inv.get("stderrBytes")),
            stdout_truncated=_bool(inv.get("stdoutTruncated")),
            stderr_truncated=_bool(inv.get("stderrTruncated")),
            stdout=_str(inv.get("stdout")), stderr=_str(inv.get("stderr")), raw=dict(inv))

    @property
    def stdout_data(self) -> bytes:
        """stdout's exact bytes as stored (``get_execution`` only; see :func:`exact_bytes`)."""
        return exact_bytes(self.raw, "stdout")

    @property
    def stderr_data(self) -> bytes:
        return exact_bytes(self.raw, "stderr")

    @property
    def running(self) -> bool:
        return self.state == "Running"


@dataclass(frozen=True)
class RunTarget:
    """One VM of a run: ``state`` is ``Pending``, ``Running``, ``Succeeded``, ``Failed``,
    ``TimedOut``, ``Cancelled`` or ``Skipped``; ``execution_uuid`` is None until it starts."""

    vm_instance_uuid: str
    vm_instance_name: str | None = None
    state: str | None = None
    execution_uuid: str | None = None
    exit_code: int | None = None
    error_code: str | None = None
    stdout_bytes: int | None = None
    stderr_bytes: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, inv: Mapping[str, Any]) -> RunTarget:
        return cls(vm_instance_uuid=str(inv.get("vmInstanceUuid", "")),
                   vm_instance_name=_str(inv.get("vmInstanceName")),
                   state=_str(inv.get("state")), execution_uuid=_str(inv.get("executionUuid")),
                   exit_code=_int(inv.get("exitCode")), error_code=_str(inv.get("errorCode")),
                   stdout_bytes=_int(inv.get("stdoutBytes")),
                   stderr_bytes=_int(inv.get("stderrBytes")), raw=dict(inv))

    @property
    def name(self) -> str:
        """The VM's name, else its uuid."""
        return self.vm_instance_name or self.vm_instance_uuid


@dataclass(frozen=True)
class Run:
    """A run (one command over many VMs): ``state`` is ``Running``, ``Succeeded``, ``Failed``
    or ``Cancelled``; ``counts`` maps a target state to how many targets are in it;
    ``targets`` is set by ``get_run`` only (empty in queries)."""

    uuid: str
    account_uuid: str | None = None
    command: str | None = None
    state: str | None = None
    max_concurrency: int | None = None
    max_errors: int | None = None
    create_date: str | None = None
    start_date: str | None = None
    finish_date: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    targets: tuple[RunTarget, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, inv: Mapping[str, Any]) -> Run:
        counts = inv.get("targetCounts")
        targets = inv.get("targets")
        return cls(
            uuid=str(inv.get("uuid", "")), account_uuid=_str(inv.get("accountUuid")),
            command=_str(inv.get("command")), state=_str(inv.get("state")),
            max_concurrency=_int(inv.get("maxConcurrency")),
            max_errors=_int(inv.get("maxErrors")), create_date=_str(inv.get("createDate")),
            start_date=_str(inv.get("startDate")), finish_date=_str(inv.get("finishDate")),
            counts={str(k): n for k, v in counts.items() if (n := _int(v)) is not None}
            if isinstance(counts, Mapping) else {},
            targets=tuple(RunTarget.from_wire(t) for t in targets if isinstance(t, Mapping))
            if isinstance(targets, list) else (),
            raw=dict(inv))

    @property
    def total(self) -> int:
        """How many targets the run has."""
        return sum(self.counts.values()) if self.counts else len(self.targets)

    @property
    def running(self) -> bool:
        return self.state == "Running"
