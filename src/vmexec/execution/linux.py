"""How a command runs in a Linux guest: a small POSIX-sh supervisor passed to ``guest-exec``.

The supervisor (``SUPERVISOR``) makes the agent's weaknesses go away:

* the script, its output and its exit status live in files ``<dir>/<run id>.*`` in the guest,
  so a lost agent reply or a restart of vmexec loses nothing (:func:`recover` reads them);
* the command gets its own session (``setsid``) and a ``VMEXEC_RUN_ID`` marker in its
  environment; on timeout a watchdog kills the session and every process carrying the marker
  (TERM, then KILL after a grace period), in the guest, even if vmexec is gone;
* the command's stdout/stderr go to the files, not to the agent's pipes, so a background
  process that keeps them open cannot keep a finished command "running";
* when the command ends the supervisor prints a status line and the output on its own
  stdout/stderr, so the common case costs one ``guest-exec`` and a few ``guest-exec-status``.

Positional parameters: run id, script, output cap, working dir, user, shell, finished run ids to
delete, grace (tenths of a second), timeout seconds, then ``NAME=VALUE`` environment entries.
It only uses sh builtins on the fast path; it forks ``setsid``, the interpreter, ``sleep`` (the
watchdog) and ``cat`` or ``head``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from vmexec.execution.errors import InvalidExecRequest
from vmexec.execution.models import ExecRequest, Shell
from vmexec.execution.platform import GuestPlatform, Launch

#: Where runs keep their files, in order of preference (the first that is writable wins).
RUN_DIRS = ("/var/lib/vmexec", "/run/vmexec", "/tmp/vmexec")
#: Tenths of a second between TERM and KILL when a timeout fires (cut short when all is gone).
KILL_GRACE = 20

SUPERVISOR = r"""
id=$1 script=$2 cap=$3 cwd=$4 user=$5 shell=$6 acks=$7 grace=$8 limit=$9
shift 9
STD=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
PATH=${PATH:+$PATH:}$STD
umask 077
for d in /var/lib/vmexec /run/vmexec /tmp/vmexec; do
  [ -d "$d" ] || mkdir -p "$d" 2>/dev/null
  [ -d "$d" ] && [ -w "$d" ] && break
done
f=$d/$id
fail() { printf 'VMEXEC1 setup %s\n' "$1"; printf '%s\n' "$2" >&2; printf 'setup %s\n' "$1" >"$f.rc"; exit 0; }
if [ -n "$acks" ]; then (cd "$d" && rm -f -- $acks); fi
printf '%s' "$script" >"$f.sh" || fail spawn-failed "cannot write $f.sh"
first= interp= mode=644
IFS= read -r first <"$f.sh" || :
shebang() {
  [ -x "$1" ] || fail interpreter-missing "interpreter $1 not found in the guest"
  case $1 in */env) [ -z "${2:-}" ] || command -v "$2" >/dev/null 2>&1 || fail interpreter-missing "interpreter $2 not found in the guest" ;; esac
}
case $first in
'#!'*) set -f; shebang ${first#??}; set +f; mode=755 ;;
*)
  case $shell in
  sh) interp=/bin/sh ;;
  bash) command -v bash >/dev/null 2>&1 || fail interpreter-missing "bash not found in the guest"; interp=bash ;;
  *) if command -v bash >/dev/null 2>&1; then interp=bash; else interp=/bin/sh; fi ;;
  esac ;;
esac
[ $mode = 755 ] && chmod 700 "$f.sh"
if [ -n "$cwd" ]; then cd -- "$cwd" 2>/dev/null || fail working-directory-missing "working directory $cwd does not exist in the guest"; fi
how=
if [ -n "$user" ]; then
  id "$user" >/dev/null 2>&1 || fail user-missing "user $user does not exist in the guest"
  chmod 711 "$d"; chmod $mode "$f.sh"
  if command -v runuser >/dev/null 2>&1; then how=runuser
  elif command -v su >/dev/null 2>&1; then how=su
  else fail run-as-unsupported "neither runuser nor su exists in the guest"; fi
fi
S=; command -v setsid >/dev/null 2>&1 && S=setsid
exec 3<&0
(
  for kv; do export "$kv"; done
  PATH=${PATH:+$PATH:}$STD; export PATH VMEXEC_RUN_ID="$id"
  case $how in
  runuser) exec $S runuser -u "$user" -- $interp "$f.sh" ;;
  su) exec $S su -s /bin/sh "$user" -c 'exec "$0" "$@"' $interp "$f.sh" ;;
  *) exec $S $interp "$f.sh" ;;
  esac
) <&3 >"$f.out" 2>"$f.err" 3<&- &
pid=$!
exec 3<&-
echo "$pid" >"$f.pid"
(
  trap 'kill $sp 2>/dev/null; exit 0' TERM
  sleep "$limit" & sp=$!; wait $sp
  : >"$f.timeout"
  for sig in TERM KILL; do
    kill -s $sig -- "-$pid" 2>/dev/null; kill -s $sig "$pid" 2>/dev/null
    for e in $(grep -ls "VMEXEC_RUN_ID=$id" /proc/[0-9]*/environ 2>/dev/null); do
      e=${e#/proc/}; kill -s $sig "${e%/environ}" 2>/dev/null
    done
    [ $sig = KILL ] && break
    i=$grace; while [ $i -gt 0 ] && kill -0 -- "-$pid" 2>/dev/null; do sleep 0.1; i=$((i-1)); done
  done
) </dev/null >/dev/null 2>&1 &
wd=$!
wait "$pid" 2>/dev/null; rc=$?
if [ -e "$f.timeout" ]; then state=timeout; wait "$wd"; else state=exited; kill "$wd" 2>/dev/null; fi
printf '%s %s %s\n' "$rc" "$state" "$d" >"$f.rc"
printf 'VMEXEC1 %s %s %s\n' "$rc" "$state" "$d"
if [ -s "$f.out" ]; then if [ "$cap" -gt 0 ]; then head -c "$cap" "$f.out"; else cat "$f.out"; fi; fi
if [ -s "$f.err" ]; then if [ "$cap" -gt 0 ]; then head -c "$cap" "$f.err" >&2; else cat "$f.err" >&2; fi; fi
exit 0
"""

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_USER = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.@-]{0,63}$")


def check_run_id(run_id: str) -> str:
    """Run ids go into guest file names and a shell glob: only 32 lowercase hex digits."""
    if not _RUN_ID.match(run_id):
        raise InvalidExecRequest(f"run id must be 32 lowercase hex digits, not {run_id!r}")
    return run_id


class LinuxPlatform(GuestPlatform):
    run_dirs = RUN_DIRS

    def launch(self, request: ExecRequest, run_id: str, *, inline_cap: int,
               finished: Sequence[str]) -> Launch:
        """Raises: InvalidExecRequest for environment entries or text the guest cannot take."""
        if request.run_as is not None and not _USER.match(request.run_as):
            raise InvalidExecRequest(f"invalid user name {request.run_as!r}")
        env: list[str] = []
        for name, value in request.env.items():
            if not _ENV_NAME.match(name) or name == "IFS":
                raise InvalidExecRequest(f"invalid environment variable name {name!r}")
            if "\0" in value:
                raise InvalidExecRequest(f"environment variable {name} contains a NUL byte")
            env.append(f"{name}={value}")
        for what, text in (("command", request.command),
                           ("working directory", request.working_directory or "")):
            if "\0" in text:
                raise InvalidExecRequest(f"{what} contains a NUL byte")
        shell = request.shell.value if request.shell in (Shell.SH, Shell.BASH) else "default"
        if request.shell in (Shell.CMD, Shell.POWERSHELL):
            raise InvalidExecRequest(f"shell {request.shell.value} is for Windows guests")
        acks = " ".join(f"{check_run_id(r)}.*" for r in finished)
        limit = max(1, math.ceil(request.timeout))
        args = ["-c", SUPERVISOR, "vmexec", check_run_id(run_id), request.command,
                str(inline_cap), request.working_directory or "", request.run_as or "", shell,
                acks, str(KILL_GRACE), str(limit), *env]
        return Launch("/bin/sh", args, request.stdin)

    def kill(self, run_id: str) -> Launch:
        return Launch("/bin/sh", ["-c", _KILL, "vmexec-kill", check_run_id(run_id),
                                  *self.run_dirs])

    def cleanup(self, run_dir: str, run_ids: Sequence[str]) -> Launch:
        globs = [f"{run_dir}/{check_run_id(r)}.*" for r in run_ids]
        return Launch("/bin/sh", ["-c", 'rm -f -- "$@"', "vmexec-cleanup", *globs])


_KILL = r"""
id=$1; shift
for d; do [ -r "$d/$id.pid" ] && read -r pid <"$d/$id.pid" && break; done
[ -n "${pid:-}" ] && { kill -s KILL -- "-$pid"; kill -s KILL "$pid"; } 2>/dev/null
for e in $(grep -ls "VMEXEC_RUN_ID=$id" /proc/[0-9]*/environ 2>/dev/null); do
  e=${e#/proc/}; kill -s KILL "${e%/environ}" 2>/dev/null
done
exit 0
"""
