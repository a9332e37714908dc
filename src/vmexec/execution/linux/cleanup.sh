# Delete the files of ended runs, and (with a retention) of any run whose files are older than
# it (runs whose cleanup was lost, e.g. when vmexec restarted): the run directory stays bounded.
# Only names of run files (32 hex digits, a dot, a kind) are touched.  A run whose first
# process still lives (it ended in an error for vmexec, not in the guest) keeps its files: its
# id is printed, and vmexec asks again later.  Its command line names the run id, so a pid
# used again by another process does not count.
# One `rm` for the whole batch and the `find` sweep only when asked: a process start is what a
# cleanup costs the guest, and a busy guest gets one cleanup every few seconds.
# The files are named, not matched: a pattern reads the whole directory, once per run.
# (The run directory is an absolute path of safe characters, the kinds are words and the ids
# hex: the unquoted $files below splits only where meant.)
#
# $1 run directory, $2 retention in minutes ("" = no sweep), $3 the kinds of run files
# (space-separated), $4... run ids.
d=$1 minutes=$2 kinds=$3; shift 3
files=
for id; do
  pid=
  read -r pid 2>/dev/null <"$d/$id.pid"
  # (cmdline is NUL-separated: busybox grep stops at the first NUL, tr does not.)
  if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then
    case $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) in *"$id"*) echo "$id"; continue ;; esac
  fi
  for k in $kinds; do files="$files $d/$id.$k"; done
done
[ -z "$files" ] || rm -f -- $files
if [ -n "$minutes" ]; then
  h='[0-9a-f]'; h=$h$h$h$h; h=$h$h$h$h; h=$h$h
  find "$d" -maxdepth 1 -type f -name "$h.*" -mmin +"$minutes" -exec rm -f -- {} + 2>/dev/null
fi
exit 0
