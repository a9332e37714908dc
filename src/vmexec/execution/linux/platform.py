"""How a command runs in a Linux guest.

Two launch forms, both started by one ``guest-exec`` and both keeping the run's output and
status in files ``<run dir>/<run id>.{out,err,rc,pid}`` in the guest — so a lost agent reply or a
restart of vmexec loses nothing, and a background process that keeps the command's stdout open
holds a file, not the agent's pipe, so a finished command is reported finished:

* **direct** (the common case): the interpreter itself (``bash``, else ``/bin/sh``) is the
  process the agent starts; a one-line prelude of shell builtins (``prelude.sh``) redirects its
  output to the run files, records its pid and installs an EXIT trap (``exit-bash.sh`` /
  ``exit-sh.sh``) that writes the status, then the script follows on the same line.  No extra
  process: a trivial command costs what ``sh -c`` costs, and the agent reports the exact exit
  code or signal.
* **supervised** (a ``#!`` script, or run as another user): a small ``sh`` supervisor
  (``supervisor.sh``) writes the script to a file, checks the interpreter / user, and runs it
  as a child (``dispatch.sh``).

Setup failures are reported inline, before the redirection, as ``VMEXEC1 setup <reason>``.
Timeouts are enforced by ``kill.sh`` (started by vmexec at the deadline) and, should vmexec be
gone, by ``watchdog.sh`` (started by vmexec once a run lasts long enough): both kill the run's
process and every process carrying its ``VMEXEC_RUN_ID`` environment marker, TERM then KILL.

The scripts are files of this package; every value reaches them as a positional parameter
(never pasted into their text), so they read as the shell runs them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Sequence
from importlib import resources

from vmexec.execution.errors import InvalidExecRequest
from vmexec.execution.models import ExecRequest, Shell
from vmexec.execution.platform import (
    KILL_GRACE,
    GuestPlatform,
    KillReason,
    Launch,
    check_run_id,
)

#: Where runs keep their files, in order of preference (the first that is writable wins).
RUN_DIRS = ("/var/lib/vmexec", "/run/vmexec", "/tmp/vmexec")
#: Every kind of file a run may leave in its run directory (output, status, pid, staged input,
#: the marker of a kill).
RUN_FILE_KINDS = ("out", "err", "rc", "pid", "sh", "in", "env", *(r.value for r in KillReason))
#: Output up to this many bytes per stream travels inline (bash guests, text without NUL);
#: ``exit-bash.sh`` reads one byte more.
INLINE_MAX = 64 * 1024

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: The scripts' own variables start with this: the user's environment must not change them.
_RESERVED_PREFIX = "__vmexec_"
_RESERVED_ENV = {"IFS", "VMEXEC_RUN_ID"}
_USER = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.@-]{0,63}$")
#: A run directory goes unquoted into the status line: an absolute path of safe characters.
_RUN_DIR = re.compile(r"^(/[A-Za-z0-9._-]+)+$")
#: Linux refuses to start a program whose environment holds a string longer than this
#: (MAX_ARG_STRLEN: 32 pages, the NUL included).
MAX_ENV_ENTRY_BYTES = 32 * 4096 - 1
#: The prelude's letter for each input that is in the run's files already (``$4``).
_STAGED_FLAGS = {"env": "e", "in": "i", "sh": "s"}


def _script(name: str) -> str:
    """The script ``name`` without its comment lines (they explain it here, not in the guest)."""
    text = (resources.files("vmexec.execution.linux") / name).read_text(encoding="utf-8")
    return "".join(line for line in text.splitlines(keepends=True)
                   if not line.lstrip().startswith("#"))


def _one_line(*names: str) -> str:
    """The scripts ``names`` as one line: comment lines dropped, the others joined by spaces
    (each of their lines ends where a newline may become a space)."""
    lines = (line.strip() for name in names for line in _script(name).splitlines())
    return " ".join(line for line in lines if line)


_PRELUDE_SH = _one_line("prelude.sh", "exit-sh.sh")
_PRELUDE_BASH = _one_line("prelude.sh", "exit-bash.sh")
_SUPERVISED = "\n".join((_script("supervisor.sh"), _PRELUDE_SH, _script("dispatch.sh")))
KILL = _script("kill.sh")
WATCHDOG = _script("watchdog.sh")
CLEANUP = _script("cleanup.sh")
FIND = _script("find.sh")


def check_run_dir(run_dir: str) -> str:
    """Raises: InvalidExecRequest (not an absolute path of letters, digits, ``._-``)."""
    if not _RUN_DIR.match(run_dir) or "/../" in f"{run_dir}/" or "/./" in f"{run_dir}/":
        raise InvalidExecRequest(f"run directory must be an absolute path of letters, digits "
                                 f"and ._- only, not {run_dir!r}")
    return run_dir


def _env_entries(request: ExecRequest) -> list[str]:
    """Raises: InvalidExecRequest (a bad name, a NUL byte, a value Linux cannot pass on)."""
    entries = []
    for name, value in request.env.items():
        if (not _ENV_NAME.match(name) or name in _RESERVED_ENV
                or name.startswith(_RESERVED_PREFIX)):
            raise InvalidExecRequest(f"invalid environment variable name {name!r}")
        if "\0" in value:
            raise InvalidExecRequest(f"environment variable {name} contains a NUL byte")
        entry = f"{name}={value}"
        if len(entry.encode()) > MAX_ENV_ENTRY_BYTES:
            raise InvalidExecRequest(
                f"environment variable {name} is {len(entry.encode())} bytes as NAME=VALUE; "
                f"Linux passes at most {MAX_ENV_ENTRY_BYTES} bytes per variable to a program")
        entries.append(entry)
    return entries


def _shell_quoted(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


class LinuxPlatform(GuestPlatform):
    run_dirs = RUN_DIRS
    stageable = ("in", "env", "sh")

    def staged_input(self, request: ExecRequest, kind: str) -> bytes:
        """``in``: stdin; ``env``: a script of ``export NAME='value'`` lines the prelude
        sources; ``sh``: the script, run by the supervised form."""
        if kind == "in":
            return request.stdin or b""
        if kind == "env":
            _env_entries(request)  # the same checks as on the command line
            return "".join(f"export {name}={_shell_quoted(value)}\n"
                           for name, value in request.env.items()).encode()
        if kind == "sh":
            return request.command.encode()
        raise ValueError(f"not a stageable input: {kind}")

    def make_run_dir(self, run_dir: str) -> Launch:
        return Launch("/bin/sh", ["-c", 'mkdir -m 700 -p -- "$1"', "vmexec-mkdir",
                                  check_run_dir(run_dir)])

    def launch(self, request: ExecRequest, run_id: str, *, run_dir: str,
               interpreter: str, staged: Collection[str] = ()) -> Launch:
        """``interpreter``: the guest's ``bash`` or ``/bin/sh`` for the direct form.

        Raises:
            InvalidExecRequest: a value the guest cannot take (NUL bytes, bad names).
        """
        check_run_dir(run_dir)
        if request.shell in (Shell.CMD, Shell.POWERSHELL):
            raise InvalidExecRequest(f"shell {request.shell.value} is for Windows guests")
        if request.run_as is not None and not _USER.match(request.run_as):
            raise InvalidExecRequest(f"invalid user name {request.run_as!r}")
        for what, text in (("command", request.command),
                           ("working directory", request.working_directory or "")):
            if "\0" in text:
                raise InvalidExecRequest(f"{what} contains a NUL byte")
        # The prelude's parameters: the run's file prefix, working directory, the inputs in
        # files, environment.
        env = _env_entries(request)
        flags = "".join(_STAGED_FLAGS[kind] for kind in sorted(staged))
        params = [f"{run_dir}/{check_run_id(run_id)}", request.working_directory or "", flags,
                  *([] if "env" in staged else env)]
        stdin = None if "in" in staged else request.stdin
        shebang = request.command.startswith("#!")
        if not shebang and not request.run_as and "sh" not in staged:
            shell = {Shell.SH: "/bin/sh", Shell.BASH: "bash"}.get(request.shell, interpreter)
            prelude = _PRELUDE_BASH if shell == "bash" else _PRELUDE_SH
            # $0 is "bash"/"sh" so error messages read as they would for `bash -c`.
            return Launch(shell, ["-c", f"{prelude} {request.command}",
                                  shell.rsplit("/", 1)[-1], *params], stdin)
        interp = "" if shebang else {Shell.SH: "/bin/sh", Shell.BASH: "bash"}.get(
            request.shell, interpreter)
        script = "" if "sh" in staged else request.command
        return Launch("/bin/sh", ["-c", _SUPERVISED, "sh", script, interp,
                                  request.run_as or "", *params], stdin)

    def kill(self, run_id: str, pid: int | None, run_dir: str, *,
             why: KillReason = KillReason.TIMEOUT) -> Launch:
        return Launch("/bin/sh", ["-c", KILL, "vmexec-kill", check_run_id(run_id),
                                  str(pid or ""), check_run_dir(run_dir), str(KILL_GRACE),
                                  why.value])

    def watchdog(self, run_id: str, pid: int, run_dir: str, seconds: float) -> Launch:
        return Launch("/bin/sh", ["-c", WATCHDOG, "vmexec-watchdog", check_run_id(run_id),
                                  str(pid), check_run_dir(run_dir), str(KILL_GRACE),
                                  str(max(1, math.ceil(seconds))), KILL], capture_output=False)

    def find_run(self, run_id: str, run_dir: str) -> Launch:
        check_run_id(run_id)
        return Launch("/bin/sh", ["-c", FIND, "vmexec-find", check_run_dir(run_dir),
                                  run_id[:-1], run_id[-1]])

    def remove(self, run_dir: str, run_ids: Sequence[str]) -> Launch:
        check_run_dir(run_dir)
        return Launch("rm", ["-f", "--", *(f"{run_dir}/{check_run_id(run_id)}.{kind}"
                                           for run_id in run_ids for kind in RUN_FILE_KINDS)])

    def cleanup(self, run_dir: str, run_ids: Sequence[str], retention: float | None) -> Launch:
        minutes = "" if retention is None else str(max(1, math.ceil(retention / 60)))
        return Launch("/bin/sh", ["-c", CLEANUP, "vmexec-cleanup", check_run_dir(run_dir),
                                  minutes, " ".join(RUN_FILE_KINDS), *map(check_run_id, run_ids)])
