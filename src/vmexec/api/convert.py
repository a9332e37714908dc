"""ExecuteGuestVmCommand's request on the wire -> the engine's request."""

from __future__ import annotations

import base64

from vmexec.api.errors import invalid_argument
from vmexec.api.schemas.exec import DEFAULT_COMMAND_TIMEOUT, CommandParams, OutputEncoding
from vmexec.execution.models import AGENT_OUTPUT_CAP, ExecRequest, Platform, Shell


def stdin_of(params: CommandParams) -> bytes | None:
    """The command's stdin: ``stdin`` (text) or ``stdinBase64`` (bytes). Raises ApiFailure
    (SYS.1007) for both at once and for base64 that is not."""
    if params.stdin_base64 is None:
        return params.stdin.encode() if params.stdin is not None else None
    if params.stdin is not None:
        raise invalid_argument("give stdin or stdinBase64, not both")
    try:
        return base64.b64decode(params.stdin_base64, validate=True)
    except ValueError as exc:  # binascii.Error, or characters that are not ASCII
        raise invalid_argument(f"stdinBase64 is not base64: {exc}") from None


def exec_request(params: CommandParams) -> ExecRequest:
    """The engine request for validated wire ``params``. Raises ApiFailure (SYS.1007)."""
    return ExecRequest(
        command=params.command,
        platform=Platform(params.platform),
        timeout=float(params.command_timeout or DEFAULT_COMMAND_TIMEOUT),
        stdin=stdin_of(params),
        env=dict(params.env or {}),
        working_directory=params.working_directory,
        run_as=params.run_as,
        shell=Shell(params.shell) if params.shell else Shell.DEFAULT,
        max_output_bytes=params.max_output_bytes or AGENT_OUTPUT_CAP,
        output_base64=params.output_encoding is OutputEncoding.BASE64,
    )
