# Kill a run: TERM, then (after up to $4 tenths of a second for them to go) KILL, to the run's
# first process and to every process whose environment carries its VMEXEC_RUN_ID marker
# (that catches setsid and double-forked children).  Marks why first: an empty file
# <run id>.<why>, timeout (the deadline passed) or cancelled, that a restarted vmexec reads.
#
# $1 run id, $2 pid of its first process ("" = unknown), $3 run directory, $4 grace,
# $5 why ("" = timeout).
id=$1 pid=$2 d=$3 grace=$4 why=${5:-timeout}
# The pid is the run's only while its command line names the run: a pid is used again soon on
# a busy guest (pid_max is often 32768), and a run's first process may be gone already.
# (cmdline is NUL-separated: busybox grep stops at the first NUL, tr does not.)
if [ -n "$pid" ]; then
  case $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) in *"$id"*) ;; *) pid= ;; esac
fi
# `true`, not `:`: a failed redirection of a special built-in (a full disk, a directory that
# went away) would end the whole script in dash and busybox sh, killing nothing.
true 2>/dev/null >"$d/$id.$why"
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
