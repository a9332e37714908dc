"""ExecuteGuestVmCommand on the wire: the request body, the result, the async reply."""

from __future__ import annotations

import enum
from typing import Annotated, Any

from pydantic import Field

from vmexec.api.schemas.common import Int, WireModel
from vmexec.execution.models import (
    AGENT_OUTPUT_CAP,
    MAX_COMMAND_CHARS,
    MAX_ENV_BYTES,
    MAX_STDIN_BYTES,
    MAX_TIMEOUT_SECONDS,
)
from vmexec.zstack.exec import Platform, Shell

DEFAULT_COMMAND_TIMEOUT = 60
#: Room for every field but ``command``, ``stdin`` and ``env`` (tags, directory, ...).
OTHER_FIELDS_BYTES = 64 * 1024
#: The largest valid ExecuteGuestVmCommand body, in bytes: JSON escapes a control character
#: in 6 bytes (``\u0001``) and a character outside the BMP in 12 (two ``\uXXXX``), so a
#: command of MAX_COMMAND_CHARS characters takes at most 12 bytes each, and stdin and the
#: environment (at most MAX_STDIN_BYTES / MAX_ENV_BYTES of UTF-8) at most 6 per byte, with
#: the environment's quotes, colons and commas (4 per variable, each at least 2 bytes).
#: About 12.8 MiB.
MAX_BODY_BYTES = (OTHER_FIELDS_BYTES + 12 * MAX_COMMAND_CHARS + 6 * MAX_STDIN_BYTES
                  + 6 * MAX_ENV_BYTES + 2 * MAX_ENV_BYTES)

Tags = list[str]


class OutputEncoding(enum.StrEnum):
    """``params.outputEncoding``: ``text`` (the default) adds a stream's exact bytes
    (``stdoutBase64``/``stderrBase64``) only when it is not UTF-8; ``base64`` always."""

    TEXT = "text"
    BASE64 = "base64"


class CommandParams(WireModel):
    """What to run and how: shared by ExecuteGuestVmCommand and runs (many VMs)."""

    platform: Platform
    command: str = Field(min_length=1, max_length=MAX_COMMAND_CHARS,
                         description="A script, run by the guest's shell.",
                         examples=["hostname"])
    command_timeout: Annotated[Int, Field(ge=1, le=MAX_TIMEOUT_SECONDS)] | None = Field(
        default=None, description=f"Seconds (default {DEFAULT_COMMAND_TIMEOUT}); the command "
                                  "is killed when they pass.")
    # ZStack's SDKs send the tags (and requestIp) inside params; the REST form at top level.
    system_tags: Tags | None = None
    user_tags: Tags | None = None
    # --- vmexec extensions (ignored by ZStack) -------------------------------------------------
    stdin: str | None = Field(default=None, description="Text fed to the command's stdin.")
    stdin_base64: str | None = Field(
        default=None, description="Bytes fed to the command's stdin, as base64 (instead of "
                                  "``stdin``: any bytes, not only text).")
    output_encoding: OutputEncoding | None = Field(
        default=None, description="``base64``: the reply has ``stdoutBase64`` and "
                                  "``stderrBase64`` always, not only for output that is not "
                                  "UTF-8.")
    env: dict[str, str] | None = Field(default=None, description="Extra environment variables.")
    working_directory: str | None = Field(default=None, description="Directory to run in.")
    run_as: str | None = Field(default=None, description="Guest user to run the command as.")
    shell: Shell | None = Field(
        default=None, description="Interpreter (default: bash or sh on Linux, cmd on Windows).")
    max_output_bytes: Annotated[Int, Field(ge=1, le=AGENT_OUTPUT_CAP)] | None = Field(
        default=None, description="Bytes of output kept per stream (the rest is dropped).")


class ExecuteGuestVmCommandParams(CommandParams):
    vm_instance_uuid: str = Field(description="The VM instance UUID (32 hex).",
                                  examples=["fc022ba201c135d8809c5e02bf6bf156"])


class ExecuteGuestVmCommandRequest(WireModel):
    params: ExecuteGuestVmCommandParams
    system_tags: Tags | None = None
    user_tags: Tags | None = None


class ExecuteGuestVmCommandReply(WireModel):
    """The result. ``stream`` is ZStack's; the other output fields are vmexec extensions."""

    success: bool = True
    stream: str = Field(examples=["standardStream: hello world, errorStream: 1/0 is not a "
                                  "goodScript"])
    vm_instance: dict[str, Any] = Field(description="VmInstanceInventory of the VM.")
    exit_code: int | None = None
    signal: int | None = None
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool
    duration_ms: int
    stdout_base64: str | None = Field(
        default=None, description="stdout's exact bytes, when they are not UTF-8 (``stdout`` "
                                  "then has U+FFFD for the bytes that are not) or on request")
    stderr_base64: str | None = None


class AsyncReply(WireModel):
    """``202``: not done within the wait window; poll ``location``."""

    location: str = Field(examples=["http://127.0.0.1:8080/zstack/v1/api-jobs/"
                                    "8e5b4f1a2c3d4e5f6a7b8c9d0e1f2a3b"])
    api_timeout: int = Field(description="Milliseconds the API may take.")
