# The supervised form (a #! script, or run as another user), run by /bin/sh.  It writes the
# script to <run dir>/<run id>.sh, checks the interpreter or the user, then the prelude and the
# EXIT trap follow (prelude.sh, exit-sh.sh) and dispatch.sh runs the script as a child.
# Its variables carry the prelude's reserved prefix: the user's environment entries, exported
# by the prelude before dispatch.sh runs, cannot change them.
#
# $1 script, $2 interpreter ("" = the script's #! line), $3 user ("" = the agent's),
# then the prelude's parameters: $4 the run's file prefix <run dir>/<run id>, $5 working
# directory, $6 inputs in files (with s, the script is in <id>.sh already and $1 is empty),
# $7... env.
__vmexec_script=$1 __vmexec_interp=$2 __vmexec_user=$3; shift 3
__vmexec_f=$1 __vmexec_d=${1%/*}
__vmexec_fail() { echo "VMEXEC1 setup $1"; echo "$2" >&2; exit 0; }
[ -d "$__vmexec_d" ] || mkdir -m 700 -p "$__vmexec_d" 2>/dev/null \
  || __vmexec_fail run-dir-unwritable "cannot create $__vmexec_d"
case $3 in
*s*) ;;
*) printf '%s' "$__vmexec_script" 2>/dev/null >"$__vmexec_f.sh" \
     || __vmexec_fail run-dir-unwritable "cannot write $__vmexec_f.sh (no space left?)" ;;
esac
__vmexec_shebang() {
  [ -x "$1" ] || __vmexec_fail interpreter-missing "interpreter $1 not found in the guest"
  case $1 in */env) [ -z "${2:-}" ] || command -v "$2" >/dev/null 2>&1 \
    || __vmexec_fail interpreter-missing "interpreter $2 not found in the guest" ;; esac
}
case $__vmexec_interp in
'') IFS= read -r __vmexec_first <"$__vmexec_f.sh"; set -f; __vmexec_shebang ${__vmexec_first#??}
    set +f; chmod 755 "$__vmexec_f.sh" ;;
bash) command -v bash >/dev/null 2>&1 \
    || __vmexec_fail interpreter-missing "bash not found in the guest" ;;
esac
__vmexec_how=
if [ -n "$__vmexec_user" ]; then
  id "$__vmexec_user" >/dev/null 2>&1 \
    || __vmexec_fail user-missing "user $__vmexec_user does not exist in the guest"
  chmod 711 "$__vmexec_d"; chmod go+r "$__vmexec_f.sh"
  if command -v runuser >/dev/null 2>&1; then __vmexec_how=runuser
  elif command -v su >/dev/null 2>&1; then __vmexec_how=su
  else __vmexec_fail run-as-unsupported "neither runuser nor su exists in the guest"; fi
fi
