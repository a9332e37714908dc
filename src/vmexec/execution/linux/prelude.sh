# The prelude of every Linux run: shell builtins only, sent as ONE line with the user's script
# right after it, so that `bash: line 2: ...` points at the script's own line 2.  The loader
# drops these comment lines and joins the others with spaces: every line ends where a newline
# may become a space (after `;`, `then`, `do`, `{`).
#
# $1 the run's file prefix, <run directory>/<run id> (absolute, safe characters; 32 hex
# digits): one word, so that a process of the run is found by it on its command line from the
# moment the agent starts it (find.sh), $2 working directory ("" = the agent's), $3 inputs
# already in the run's files (letters: e = environment in <id>.env, i = stdin in <id>.in,
# s = the script in <id>.sh: input too large for one agent request), $4... NAME=VALUE entries.
#
# Setup failures are reported before the redirection, on the agent's pipe, as
# `VMEXEC1 setup <reason>`; the message for a human goes to stderr.
__vmexec_f=$1 __vmexec_d=${1%/*};
[ -d "$__vmexec_d" ] || mkdir -m 700 -p "$__vmexec_d" 2>/dev/null || { echo 'VMEXEC1 setup run-dir-unwritable'; echo "cannot create $__vmexec_d" >&2; exit 0; };
if [ -n "$2" ]; then cd -- "$2" 2>/dev/null || { echo 'VMEXEC1 setup working-directory-missing'; echo "working directory $2 does not exist in the guest" >&2; exit 0; }; fi;
export VMEXEC_RUN_ID=${1##*/}; __vmexec_in=$3; shift 3;
for __vmexec_kv; do export "$__vmexec_kv"; done; unset __vmexec_kv; set --;
case $__vmexec_in in *e*) . "$__vmexec_f.env";; esac;
case $__vmexec_in in *i*) exec <"$__vmexec_f.in";; esac; unset __vmexec_in;
# The first file written: a run directory that cannot take it (full, read-only) is a setup
# failure, before the command runs (vmexec then tries the next directory).
echo $$ 2>/dev/null >"$__vmexec_f.pid" || { echo 'VMEXEC1 setup run-dir-unwritable'; echo "cannot write to $__vmexec_d in the guest (no space left?)" >&2; exit 0; };
# fds 9 and 8 keep the agent's pipes for the status (and small output); the command itself
# writes to the run files.
exec 9>&1 8>&2 >"$__vmexec_f.out" 2>"$__vmexec_f.err";
# sh and dash skip the EXIT trap when a signal kills them, bash runs it with $? = 0: turn the
# usual signals into an exit with the conventional status instead.
trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM;
