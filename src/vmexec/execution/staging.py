"""Input too large for one agent request goes to the run's files in the guest first.

A ``guest-exec`` request of about 240 KiB or more reaches qemu-ga broken or not at all, so no
request exceeds :data:`SAFE_REQUEST_BYTES`: stdin, then the environment, then the script move
into run files (written in pieces with ``guest-file-write``) until the launch fits.
"""

from __future__ import annotations

from collections.abc import Sequence

from vmexec.agent import errors as agent_errors
from vmexec.agent.client import exec_request_size
from vmexec.agent.protocol import SAFE_REQUEST_BYTES
from vmexec.execution import errors
from vmexec.execution.faults import CALL_TIMEOUT
from vmexec.execution.guest_helpers import start_helper
from vmexec.execution.guestfiles import RunFiles
from vmexec.execution.runs import Run


async def stage_input(run: Run) -> tuple[str, ...]:
    """Move inputs (stdin, then environment, then the script) into the run's files while
    the launch request would be too large for the agent, and write those files; the kinds
    of input moved.

    Raises:
        InvalidExecRequest: even so the request would not fit.
        OutputNotStored: the guest could not store the input.
        AgentError: writing failed (staging may be repeated).
    """
    guest, request = run.guest, run.request
    staged: list[str] = []

    def request_bytes() -> int:
        launch = guest.platform.launch(request, run.run_id, run_dir=guest.run_dir,
                                       interpreter=guest.interpreter, staged=staged)
        if _size_bound(launch.args, launch.input_data) <= SAFE_REQUEST_BYTES:
            return 0  # surely fits: not worth encoding the request to measure it
        return exec_request_size(launch.path, launch.args, input_data=launch.input_data,
                                 capture_output=launch.capture_output)

    for kind in guest.platform.stageable:
        if request_bytes() <= SAFE_REQUEST_BYTES:
            break
        if guest.platform.staged_input(request, kind):
            staged.append(kind)
    if (size := request_bytes()) > SAFE_REQUEST_BYTES:
        raise errors.InvalidExecRequest(
            f"the command and its input take {size} bytes in the guest agent request; "
            f"a {request.platform.value} guest takes at most {SAFE_REQUEST_BYTES}")
    if staged:
        run.attempted = True  # its files are in the guest from now on
        files = RunFiles(run.agent, guest.platform, run.run_id, guest.run_dir)
        for kind in staged:
            await _write_input(run, files, kind, guest.platform.staged_input(request, kind))
    return tuple(staged)


#: Bytes of a ``guest-exec`` request besides its arguments' strings (command name, keys, path).
_REQUEST_FRAME_BYTES = 512


def _size_bound(args: Sequence[str], input_data: bytes | None) -> int:
    """An upper bound of the request's JSON size: a code point takes at most 12 bytes in
    JSON (a character beyond the BMP is two ``\\uXXXX`` escapes), and input goes as base64."""
    strings = sum(12 * len(arg) + 4 for arg in args)
    return _REQUEST_FRAME_BYTES + strings + 4 * (len(input_data or b"") + 2) // 3


async def _write_input(run: Run, files: RunFiles, kind: str, data: bytes) -> None:
    """Raises: OutputNotStored."""
    for attempt in range(2):
        try:
            if await files.write(kind, data):
                return
            break  # the guest took only part of it: its disk is full
        except agent_errors.AgentCommandDisabled:
            raise
        except agent_errors.AgentCommandError:
            mkdir = run.guest.platform.make_run_dir(run.guest.run_dir)
            if attempt or mkdir is None:
                break
            await start_helper(run, mkdir, wait=CALL_TIMEOUT)  # a guest's first run
    raise errors.OutputNotStored(
        f"the guest could not store the command's input ({kind}, {len(data)} bytes) in "
        f"{run.guest.run_dir}: the command did not run", ran=False)
