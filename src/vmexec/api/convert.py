"""ExecuteGuestVmCommand's request on the wire -> the engine's request."""

from __future__ import annotations

from vmexec.api.schemas.exec import DEFAULT_COMMAND_TIMEOUT, CommandParams
from vmexec.execution.models import AGENT_OUTPUT_CAP, ExecRequest, Platform, Shell


def exec_request(params: CommandParams) -> ExecRequest:
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
