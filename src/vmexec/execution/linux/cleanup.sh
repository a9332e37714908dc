# Delete the files of finished runs, and of any run whose files are older than the retention
# (runs whose cleanup was lost, e.g. when vmexec restarted): the run directory stays bounded.
# Only names of run files (32 hex digits, a dot, a kind) are touched.
#
# $1 run directory, $2 retention in minutes (longer than any run lasts), $3... run ids.
d=$1 minutes=$2; shift 2
for id; do rm -f -- "$d/$id".*; done
h='[0-9a-f]'; h=$h$h$h$h; h=$h$h$h$h; h=$h$h
find "$d" -maxdepth 1 -type f -name "$h.*" -mmin +"$minutes" -exec rm -f -- {} + 2>/dev/null
exit 0
