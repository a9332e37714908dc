# Whether a process of a run exists (exit 0), even one that has not written its pid file yet:
# from the moment the agent starts it, its command line holds the run's file prefix
# <run dir>/<run id> as one word (see prelude.sh).  The id comes split in two ($2, $3) and the
# pattern brackets its last digit, so neither this shell's nor grep's command line matches.
# (A pattern, not -F: busybox grep -F stops at the first NUL of a command line.)
#
# $1 run directory, $2 the run id but its last digit, $3 its last digit.
grep -qs -- "$1/$2[$3]" /proc/[0-9]*/cmdline
