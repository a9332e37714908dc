# The EXIT trap under a POSIX sh (dash, busybox): part of the one-line prelude (see prelude.sh).
# The status goes to the .rc file (durable) and to the agent's pipe on fd 9 (fast) as
# `VMEXEC1 <status> exited <run dir> o<N>e<N>`, with a flag per stream: 0 empty, 1 in its file.
# When the .rc file cannot be written in a run directory that is still there, its filesystem
# is full (or failing): the command's own writes to its output files failed too, so
# ` unstored` ends the line.  (A command that moved the run directory away is not that.)
trap '__vmexec_rc=$? __vmexec_o=o0 __vmexec_e=e0 __vmexec_u=;
[ -s "$__vmexec_f.out" ] && __vmexec_o=o1; [ -s "$__vmexec_f.err" ] && __vmexec_e=e1;
printf "%s exited %s\n" $__vmexec_rc "$__vmexec_d" 2>/dev/null >"$__vmexec_f.rc" || if [ -d "$__vmexec_d" ]; then __vmexec_u=" unstored"; fi;
printf "VMEXEC1 %s exited %s %s%s%s\n" $__vmexec_rc "$__vmexec_d" $__vmexec_o $__vmexec_e "$__vmexec_u" 2>/dev/null >&9' EXIT;
