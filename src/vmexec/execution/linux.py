"""How a command runs in a Linux guest.

Two launch forms, both started by one ``guest-exec`` and both keeping the run's output and
status in files ``<run dir>/<run id>.{out,err,rc,pid}`` in the guest — so a lost agent reply or a
restart of vmexec loses nothing, and a background process that keeps the command's stdout open
holds a file, not the agent's pipe, so a finished command is reported finished:

* **direct** (the common case): the interpreter itself (``bash``, else ``/bin/sh``) is the
  process the agent starts; a one-line prelude of shell builtins redirects its output to the run
  files, records its pid and installs an EXIT trap that writes the status, then the script
  follows on the same line.  No extra process: a trivial command costs what ``sh -c`` costs, and
  the agent reports the exact exit code or signal.
* **supervised** (a ``#!`` script, or run as another user): a small ``sh`` supervisor writes the
  script to a file, checks the interpreter / user, and runs it as a child.

Setup failures are reported inline, before the redirection, as ``VMEXEC1 setup <reason>``.
Timeouts are enforced by :data:`KILL` (started by vmexec at the deadline) and, should vmexec be
gone, by :data:`WATCHDOG` (started by vmexec once a run lasts long enough): both kill the run's
process and every process carrying its ``VMEXEC_RUN_ID`` environment marker, TERM then KILL.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from vmexec.execution.errors import InvalidExecRequest
from vmexec.execution.models import ExecRequest, Shell
from vmexec.execution.platform import KILL_GRACE, GuestPlatform, Launch, check_run_id

#: Where runs keep their files, in order of preference (the first that is writable wins).
RUN_DIRS = ("/var/lib/vmexec", "/run/vmexec", "/tmp/vmexec")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_USER = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.@-]{0,63}$")
_RESERVED_ENV = {"IFS", "VMEXEC_RUN_ID"}

# $1 = working directory, then NAME=VALUE entries.  {f} is the run's file prefix: a fixed
# directory and a hex run id, so it is safe to paste into the shell text.
_SETUP = (
    "[ -d {d} ] || mkdir -m 700 -p {d} 2>/dev/null"
    " || {{ echo 'VMEXEC1 setup run-dir-unwritable'; exit 0; }};"
    ' if [ -n "$1" ]; then cd -- "$1" 2>/dev/null || {{ echo'
    " 'VMEXEC1 setup working-directory-missing'; echo \"working directory $1 does not exist"
    ' in the guest" >&2; exit 0; }}; fi; shift;'
    ' for __vmexec_kv; do export "$__vmexec_kv"; done; unset __vmexec_kv; set --;'
    " export VMEXEC_RUN_ID={id}; echo $$ >{f}.pid;"
    # fds 9 and 8 keep the agent's pipes for the status (and small output); the command
    # itself writes to the run files.
    " exec 9>&1 8>&2 >{f}.out 2>{f}.err;"
    # sh and dash skip the EXIT trap when a signal kills them, bash runs it with $? = 0:
    # turn the usual signals into an exit with the conventional status instead.
    " trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM;"
)
# On exit: the status to the .rc file (durable) and to the agent (fast), with a flag per stream:
# 0 empty, 1 in the file, 2 inline too. sh can only test emptiness; bash's `read -d "" -n N`
# also tells "the whole file, under N bytes, no NUL" (it fails at EOF), so small text output
# travels inline and costs no guest-file round trips.
_EXIT_SH = (
    " trap '__vmexec_rc=$? __vmexec_o=o0 __vmexec_e=e0;"
    " [ -s {f}.out ] && __vmexec_o=o1; [ -s {f}.err ] && __vmexec_e=e1;"
    " printf \"%s exited {d}\\n\" $__vmexec_rc >{f}.rc;"
    " printf \"VMEXEC1 %s exited {d} %s%s\\n\" $__vmexec_rc $__vmexec_o $__vmexec_e"
    " 2>/dev/null >&9' EXIT; "
)
_EXIT_BASH = (
    " trap '__vmexec_rc=$? __vmexec_o=o0 __vmexec_e=e0 __vmexec_so= __vmexec_se=; LC_ALL=C;"
    " if [ -s {f}.out ]; then __vmexec_o=o1; if IFS= read -r -d \"\" -n {n} __vmexec_so"
    " <{f}.out; then __vmexec_so=; else __vmexec_o=o2; fi; fi;"
    " if [ -s {f}.err ]; then __vmexec_e=e1; if IFS= read -r -d \"\" -n {n} __vmexec_se"
    " <{f}.err; then __vmexec_se=; else __vmexec_e=e2; fi; fi;"
    " printf \"%s exited {d}\\n\" $__vmexec_rc >{f}.rc;"
    " printf \"VMEXEC1 %s exited {d} %s%s\\n%s\" $__vmexec_rc $__vmexec_o $__vmexec_e"
    " \"$__vmexec_so\" 2>/dev/null >&9; printf %s \"$__vmexec_se\" 2>/dev/null >&8' EXIT; "
)
#: Output up to this many bytes per stream travels inline (bash guests, text without NUL).
INLINE_MAX = 64 * 1024

SUPERVISOR = r"""
script=$1 interp=$2 user=$3; shift 3
fail() { echo "VMEXEC1 setup $1"; echo "$2" >&2; exit 0; }
[ -d $D ] || mkdir -m 700 -p $D 2>/dev/null || fail run-dir-unwritable "cannot create $D"
printf '%s' "$script" >"$F.sh" || fail spawn-failed "cannot write $F.sh"
shebang() {
  [ -x "$1" ] || fail interpreter-missing "interpreter $1 not found in the guest"
  case $1 in */env) [ -z "${2:-}" ] || command -v "$2" >/dev/null 2>&1 || fail interpreter-missing "interpreter $2 not found in the guest" ;; esac
}
case $interp in
'') IFS= read -r first <"$F.sh"; set -f; shebang ${first#??}; set +f; chmod 755 "$F.sh" ;;
bash) command -v bash >/dev/null 2>&1 || fail interpreter-missing "bash not found in the guest" ;;
esac
how=
if [ -n "$user" ]; then
  id "$user" >/dev/null 2>&1 || fail user-missing "user $user does not exist in the guest"
  chmod 711 $D; chmod go+r "$F.sh"
  if command -v runuser >/dev/null 2>&1; then how=runuser
  elif command -v su >/dev/null 2>&1; then how=su
  else fail run-as-unsupported "neither runuser nor su exists in the guest"; fi
fi
"""
_DISPATCH = r"""
case $how in
runuser) runuser -u "$user" -- $interp "$F.sh" 9>&- ;;
su) su -s /bin/sh "$user" -c 'exec "$0" "$@"' $interp "$F.sh" 9>&- ;;
*) $interp "$F.sh" 9>&- ;;
esac
"""

KILL = r"""
id=$1 pid=$2 d=$3 grace=$4
: >"$d/$id.timeout"
for sig in TERM KILL; do
  [ -n "$pid" ] && kill -s $sig "$pid" 2>/dev/null
  for e in $(grep -ls "VMEXEC_RUN_ID=$id" /proc/[0-9]*/environ 2>/dev/null); do
    e=${e#/proc/}; kill -s $sig "${e%/environ}" 2>/dev/null
  done
  [ $sig = KILL ] && break
  i=$grace
  while [ $i -gt 0 ]; do
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && { sleep 0.1; i=$((i-1)); continue; }
    grep -qs "VMEXEC_RUN_ID=$id" /proc/[0-9]*/environ || break
    sleep 0.1; i=$((i-1))
  done
done
exit 0
"""

# Started with the run's remaining seconds; gives up as soon as the run has a status.
WATCHDOG = r"""
id=$1 pid=$2 d=$3 grace=$4 left=$5 kill=$6
while [ "$left" -gt 0 ]; do
  [ -e "$d/$id.rc" ] && exit 0
  kill -0 "$pid" 2>/dev/null || exit 0
  sleep 1; left=$((left-1))
done
exec sh -c "$kill" vmexec-kill "$id" "$pid" "$d" "$grace"
"""

# Whether a run's process exists: its command line holds `>DIR/ID.pid` from the moment the agent
# starts it (before it writes that file). The id comes split in two ($2, $3) and the pattern
# brackets its last digit, so neither this shell's nor grep's own command line matches.
FIND = r"""grep -qs -- ">$1/$2[$3]\.pid" /proc/[0-9]*/cmdline"""


def _env_entries(request: ExecRequest) -> list[str]:
    entries = []
    for name, value in request.env.items():
        if not _ENV_NAME.match(name) or name in _RESERVED_ENV:
            raise InvalidExecRequest(f"invalid environment variable name {name!r}")
        if "\0" in value:
            raise InvalidExecRequest(f"environment variable {name} contains a NUL byte")
        entries.append(f"{name}={value}")
    return entries


class LinuxPlatform(GuestPlatform):
    run_dirs = RUN_DIRS

    def launch(self, request: ExecRequest, run_id: str, *, run_dir: str,
               interpreter: str) -> Launch:
        """``interpreter``: the guest's ``bash`` or ``/bin/sh`` for the direct form.

        Raises:
            InvalidExecRequest: a value the guest cannot take (NUL bytes, bad names).
        """
        if run_dir not in RUN_DIRS:
            raise InvalidExecRequest(f"unknown run directory {run_dir!r}")
        if request.shell in (Shell.CMD, Shell.POWERSHELL):
            raise InvalidExecRequest(f"shell {request.shell.value} is for Windows guests")
        if request.run_as is not None and not _USER.match(request.run_as):
            raise InvalidExecRequest(f"invalid user name {request.run_as!r}")
        for what, text in (("command", request.command),
                           ("working directory", request.working_directory or "")):
            if "\0" in text:
                raise InvalidExecRequest(f"{what} contains a NUL byte")
        names = {"d": run_dir, "id": check_run_id(run_id), "f": f"{run_dir}/{run_id}",
                 "n": str(INLINE_MAX + 1)}
        params = [request.working_directory or "", *_env_entries(request)]
        shebang = request.command.startswith("#!")
        if not shebang and not request.run_as:
            shell = {Shell.SH: "/bin/sh", Shell.BASH: "bash"}.get(request.shell, interpreter)
            # $0 is "bash"/"sh" so error messages read as they would for `bash -c`.
            trap = _EXIT_BASH if shell == "bash" else _EXIT_SH
            text = (_SETUP + trap).format(**names) + request.command
            return Launch(shell, ["-c", text, shell.rsplit("/", 1)[-1], *params], request.stdin)
        interp = "" if shebang else {Shell.SH: "/bin/sh", Shell.BASH: "bash"}.get(
            request.shell, interpreter)
        text = (f"D={run_dir} F={names['f']}\n" + SUPERVISOR + (_SETUP + _EXIT_SH).format(**names)
                + _DISPATCH)
        return Launch("/bin/sh", ["-c", text, "sh", request.command, interp,
                                  request.run_as or "", *params], request.stdin)

    def kill(self, run_id: str, pid: int | None, run_dir: str) -> Launch:
        return Launch("/bin/sh", ["-c", KILL, "vmexec-kill", check_run_id(run_id),
                                  str(pid or ""), run_dir, str(KILL_GRACE)])

    def watchdog(self, run_id: str, pid: int, run_dir: str, seconds: float) -> Launch:
        return Launch("/bin/sh", ["-c", WATCHDOG, "vmexec-watchdog", check_run_id(run_id),
                                  str(pid), run_dir, str(KILL_GRACE),
                                  str(max(1, math.ceil(seconds))), KILL], capture_output=False)

    def find_run(self, run_id: str, run_dir: str) -> Launch:
        check_run_id(run_id)
        return Launch("/bin/sh", ["-c", FIND, "vmexec-find", run_dir, run_id[:-1], run_id[-1]])

    def cleanup(self, run_dir: str, run_ids: Sequence[str]) -> Launch:
        files = [f"{run_dir}/{check_run_id(r)}.{k}" for r in run_ids
                 for k in ("out", "err", "rc", "pid", "sh", "timeout")]
        return Launch("/bin/sh", ["-c", 'rm -f -- "$@"', "vmexec-cleanup", *files])
