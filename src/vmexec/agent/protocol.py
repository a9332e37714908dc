"""Wire framing of the QEMU guest-agent protocol (QMP-like JSON lines).

Every command is one JSON object followed by ``\\n``; every reply is one JSON line.
``guest-sync-delimited`` makes the agent put a 0xFF byte before its reply, so a client that lost
track (a timeout, a half-read reply, an agent restarted in the guest) can drop everything up to
that byte and the reply carrying its own id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from vmexec.agent.errors import AgentCommandDisabled, AgentCommandError, AgentProtocolError

#: Sent before a resync: the agent drops any half-received command when it reads 0xFF.
DELIMITER = b"\xff"
#: Requests larger than this are not sent: through libvirt, a request of about 240 KiB of JSON
#: or more arrives broken or not at all (measured with qemu-ga 7.2: "QMP input member ... is
#: unexpected", or no answer), and the agent connection stalls for seconds. Half that is safe.
SAFE_REQUEST_BYTES = 128 * 1024


def request_size(command: str, arguments: Mapping[str, Any] | None = None) -> int:
    """Bytes of the request for ``command`` on the wire (see :data:`SAFE_REQUEST_BYTES`)."""
    return len(encode_command(command, arguments))


def encode_command(command: str, arguments: Mapping[str, Any] | None = None) -> bytes:
    message: dict[str, Any] = {"execute": command}
    if arguments:
        message["arguments"] = dict(arguments)
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode_reply(line: bytes | str, command: str) -> Any:
    """Return the ``return`` member of a reply line.

    Raises:
        AgentCommandDisabled: the agent refused the command as disabled or unknown.
        AgentCommandError: the agent answered with another error.
        AgentProtocolError: the line is not a reply object.
    """
    try:
        reply = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AgentProtocolError(f"reply is not JSON: {line[:200]!r}", command=command) from exc
    if not isinstance(reply, dict):
        raise AgentProtocolError(f"reply is not an object: {reply!r}", command=command)
    if "return" in reply:
        return reply["return"]
    error = reply.get("error")
    if isinstance(error, dict):
        raise command_error(str(error.get("desc", "")), command,
                            error_class=str(error.get("class", "GenericError")), reply=reply)
    raise AgentProtocolError(f"reply has neither return nor error: {reply!r}", command=command)


def command_error(desc: str, command: str, *, error_class: str = "GenericError",
                  reply: Any = None) -> AgentCommandError:
    """The typed error for an agent's error reply (shared by every transport)."""
    lowered = desc.lower()
    # qemu-ga says "Command X has been disabled" for blocked commands and
    # "The command X has not been found" for unknown ones: both mean "not available here".
    if error_class == "CommandNotFound" or "has been disabled" in lowered or (
            "not been found" in lowered):
        return AgentCommandDisabled(desc, command=command, error_class=error_class, reply=reply)
    return AgentCommandError(desc, command=command, error_class=error_class, reply=reply)
