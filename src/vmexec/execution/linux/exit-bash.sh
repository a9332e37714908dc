# The EXIT trap under bash: part of the one-line prelude (see prelude.sh).  As exit-sh.sh, and
# small text output travels inline (flag 2): `read -d "" -n N` fails exactly when it read the
# whole file, under N bytes and without a NUL byte; such a stream follows the status line on
# fd 9 (stdout) or goes to fd 8 (stderr), and costs no guest-file round trips.
# ` unstored` as in exit-sh.sh.  65537 = INLINE_MAX + 1 (platform.py).
trap '__vmexec_rc=$? __vmexec_o=o0 __vmexec_e=e0 __vmexec_so= __vmexec_se= __vmexec_u=; LC_ALL=C;
if [ -s "$__vmexec_f.out" ]; then __vmexec_o=o1; if IFS= read -r -d "" -n 65537 __vmexec_so <"$__vmexec_f.out"; then __vmexec_so=; else __vmexec_o=o2; fi; fi;
if [ -s "$__vmexec_f.err" ]; then __vmexec_e=e1; if IFS= read -r -d "" -n 65537 __vmexec_se <"$__vmexec_f.err"; then __vmexec_se=; else __vmexec_e=e2; fi; fi;
printf "%s exited %s\n" $__vmexec_rc "$__vmexec_d" 2>/dev/null >"$__vmexec_f.rc" || if [ -d "$__vmexec_d" ]; then __vmexec_u=" unstored"; fi;
printf "VMEXEC1 %s exited %s %s%s%s\n%s" $__vmexec_rc "$__vmexec_d" $__vmexec_o $__vmexec_e "$__vmexec_u" "$__vmexec_so" 2>/dev/null >&9;
printf %s "$__vmexec_se" 2>/dev/null >&8' EXIT;
