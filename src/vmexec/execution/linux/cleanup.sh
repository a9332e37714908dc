# Delete the files of ended runs, and of any run whose files are older than the retention
# (runs whose cleanup was lost, e.g. when vmexec restarted): the run directory stays bounded.
# Only names of run files (32 hex digits, a dot, a kind) are touched.  A run whose first
# process still lives (it ended in an error for vmexec, not in the guest) keeps its files: its
# id is printed, and vmexec asks again later.  Its command line names the run id, so a pid
# used again by another process does not count.
#
# $1 run directory, $2 retention in minutes (longer than any run lasts), $3... run ids.
d=$1 minutes=$2; shift 2
for id; do
  pid=
  read -r pid 2>/dev/null <"$d/$id.pid"
  # (cmdline is NUL-separated: busybox grep stops at the first NUL, tr does not.)
  if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then
    case $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) in *"$id"*) echo "$id"; continue ;; esac
  fi
  rm -f -- "$d/$id".*
done
h='[0-9a-f]'; h=$h$h$h$h; h=$h$h$h$h; h=$h$h
find "$d" -maxdepth 1 -type f -name "$h.*" -mmin +"$minutes" -exec rm -f -- {} + 2>/dev/null
exit 0
