# Kill a run at its deadline even if vmexec is gone; gives up as soon as the run has a status
# or vmexec has collected it (its pid file is gone: the files of a collected run are deleted).
# It looks every WATCH seconds, not every second: each look is a `sleep` process in the guest.
# (Not "is the first process alive": its pid may be another process's by then.)
#
# $1 run id, $2 pid, $3 run directory, $4 grace (as kill.sh), $5 seconds left,
# $6 the text of kill.sh.
id=$1 pid=$2 d=$3 grace=$4 left=$5 kill=$6 watch=10
while [ "$left" -gt 0 ]; do
  [ -e "$d/$id.rc" ] && exit 0
  [ -e "$d/$id.pid" ] || exit 0
  step=$watch; [ "$left" -lt "$step" ] && step=$left
  sleep "$step"; left=$((left-step))
done
[ -e "$d/$id.rc" ] && exit 0
[ -e "$d/$id.pid" ] || exit 0
exec sh -c "$kill" vmexec-kill "$id" "$pid" "$d" "$grace"
