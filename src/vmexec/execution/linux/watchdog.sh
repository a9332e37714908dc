# Kill a run at its deadline even if vmexec is gone; gives up as soon as the run has a status
# or its first process is gone.
#
# $1 run id, $2 pid, $3 run directory, $4 grace (as kill.sh), $5 seconds left,
# $6 the text of kill.sh.
id=$1 pid=$2 d=$3 grace=$4 left=$5 kill=$6
while [ "$left" -gt 0 ]; do
  [ -e "$d/$id.rc" ] && exit 0
  kill -0 "$pid" 2>/dev/null || exit 0
  sleep 1; left=$((left-1))
done
exec sh -c "$kill" vmexec-kill "$id" "$pid" "$d" "$grace"
