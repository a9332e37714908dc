# Kill a run: TERM, then (after up to $4 tenths of a second for them to go) KILL, to the run's
# first process and to every process whose environment carries its VMEXEC_RUN_ID marker
# (that catches setsid and double-forked children).  Marks why first: an empty file
# <run id>.<why>, timeout (the deadline passed) or cancelled, that a restarted vmexec reads.
#
# $1 run id, $2 pid of its first process ("" = unknown), $3 run directory, $4 grace,
# $5 why ("" = timeout).
id=$1 pid=$2 d=$3 grace=$4 why=${5:-timeout}
: >"$d/$id.$why"
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
