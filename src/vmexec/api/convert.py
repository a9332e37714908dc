"""ExecuteGuestVmCommand: wire schemas <-> the engine's internal types."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from pydantic.alias_generators import to_camel

from vmexec.api.schemas.exec import (
    DEFAULT_COMMAND_TIMEOUT,
    ExecuteGuestVmCommandParams,
    ExecuteGuestVmCommandReply,
)
from vmexec.execution.models import (
    AGENT_OUTPUT_CAP,
    ExecRequest,
    ExecResult,
    Platform,
    Shell,
)


def exec_request(params: ExecuteGuestVmCommandParams) -> ExecRequest:
    """The engine request for validated wire ``params``."""
    return ExecRequest(
        command=params.command,
        platform=Platform(params.platform),
        timeout=float(params.command_timeout or DEFAULT_COMMAND_TIMEOUT),
        stdin=params.stdin.encode() if params.stdin is not None else None,
        env=dict(params.env or {}),
        working_directory=params.working_directory,
        run_as=params.run_as,
        shell=Shell(params.shell) if params.shell else Shell.DEFAULT,
        max_output_bytes=params.max_output_bytes or AGENT_OUTPUT_CAP,
    )


def request_to_json(request: ExecRequest) -> dict[str, Any]:
    """``request`` as JSON, kept with the job so that it can be resumed after a restart."""
    return {
        "command": request.command, "platform": str(request.platform),
        "timeout": request.timeout,
        "stdin": base64.b64encode(request.stdin).decode() if request.stdin is not None else None,
        "env": dict(request.env), "workingDirectory": request.working_directory,
        "runAs": request.run_as, "shell": str(request.shell),
        "maxOutputBytes": request.max_output_bytes,
    }


def request_from_json(data: Mapping[str, Any]) -> ExecRequest:
    """The inverse of :func:`request_to_json`."""
    stdin = data.get("stdin")
    return ExecRequest(
        command=data["command"], platform=Platform(data["platform"]),
        timeout=float(data["timeout"]),
        stdin=base64.b64decode(stdin) if stdin is not None else None,
        env=dict(data.get("env") or {}), working_directory=data.get("workingDirectory"),
        run_as=data.get("runAs"), shell=Shell(data.get("shell") or Shell.DEFAULT),
        max_output_bytes=int(data.get("maxOutputBytes") or AGENT_OUTPUT_CAP),
    )


def _chomp(text: str) -> str:
    # ZStack's stream drops the one line end a command's output normally ends with.
    for end in ("\r\n", "\n"):
        if text.endswith(end):
            return text[: -len(end)]
    return text


def stream_text(stdout: str, stderr: str) -> str:
    """ZStack's ``stream`` field: ``"standardStream: <stdout>, errorStream: <stderr>"``."""
    return f"standardStream: {_chomp(stdout)}, errorStream: {_chomp(stderr)}"


def _output_fields(result: ExecResult) -> dict[str, Any]:
    stdout, stderr = result.stdout.text, result.stderr.text
    return {"stream": stream_text(stdout, stderr), "exit_code": result.exit_code,
            "signal": result.signal, "stdout": stdout, "stderr": stderr,
            "stdout_truncated": result.stdout.truncated,
            "stderr_truncated": result.stderr.truncated,
            "timed_out": result.timed_out, "duration_ms": result.duration_ms}


def result_reply(result: ExecResult, inventory: Mapping[str, Any]) -> ExecuteGuestVmCommandReply:
    """The ``200`` reply for a command that ran (whatever its exit code)."""
    return ExecuteGuestVmCommandReply(success=True, vm_instance=dict(inventory),
                                      **_output_fields(result))


def partial_output(result: ExecResult) -> dict[str, Any]:
    """What a timed-out command wrote before it was stopped: the error's ``opaque``, in the
    reply's camelCase field names."""
    return {to_camel(k): v for k, v in _output_fields(result).items() if v is not None}
