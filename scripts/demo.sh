#!/usr/bin/env bash
# `make demo`: vmexec doing its main job on this machine, from nothing.
#   1. installs what is missing (scripts/bootstrap.sh: Debian packages, .venv),
#   2. brings up 2 lab VMs (`vmexec lab up --vms 2`; builds/caches the guest image first),
#   3. starts `vmexec serve` on loopback with the embedded SQLite database (or reuses it),
#   4. logs in and runs ExecuteGuestVmCommand with curl, as the spec's example does,
#   5. does the same with the vmexec CLI against both VMs,
#   6. leaves the server running and says how to use and stop it.
# A second run reuses the VMs and the server.
#
#   scripts/demo.sh          the demo
#   scripts/demo.sh stop     stop the demo server only
#   scripts/demo.sh down     stop the demo server and remove the lab VMs (`make demo-down`)
#
# Environment: DEMO_PORT (8080), DEMO_STATE_DIR (~/.local/state/vmexec/demo: pid, log, url),
# DEMO_LAB_PREFIX (vmexec-lab: the lab VMs are PREFIX-1 and PREFIX-2),
# DEMO_NONINTERACTIVE=1 (also CI=true, or stdout not a terminal: plain output, no stdin),
# VMEXEC_ADMIN_PASSWORD (the server's admin password, "password" by default), VMEXEC_DB.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VMEXEC=$ROOT/.venv/bin/vmexec
PY=$ROOT/.venv/bin/python
HOST=127.0.0.1
PORT=${DEMO_PORT:-8080}
VMS=2
LAB_PREFIX=${DEMO_LAB_PREFIX:-vmexec-lab}
PASSWORD=${VMEXEC_ADMIN_PASSWORD:-password}
STATE=${DEMO_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/vmexec/demo}
PIDFILE=$STATE/server.pid
URLFILE=$STATE/server.url
LOG=$STATE/server.log

interactive=1
if [[ ${DEMO_NONINTERACTIVE:-} == 1 || ${CI:-} == true || ! -t 1 ]]; then
  interactive=0
  exec </dev/null  # nothing may wait for input
fi

step() {
  if ((interactive)); then printf '\n\033[1;36m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi
}
show() {  # print a command the way a user would type it (the caller runs it)
  printf '$ %s\n' "$*"
}
die() { echo "demo: error: $*" >&2; exit 1; }

# The pid in $PIDFILE, if that process is still our `vmexec serve` (never a recycled pid).
server_pid() {
  local pid
  [[ -f $PIDFILE ]] || return 1
  pid=$(<"$PIDFILE")
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'vmexec serve' || return 1
  echo "$pid"
}

healthy() { curl -fsS --max-time 2 "$1/health" >/dev/null 2>&1; }

stop_server() {
  local pid
  if pid=$(server_pid); then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "demo: stopped the vmexec server (pid $pid)"
  else
    echo "demo: no demo server is running"
  fi
  rm -f "$PIDFILE" "$URLFILE"
}

start_server() {
  local url pid
  if pid=$(server_pid) && url=$(<"$URLFILE") && healthy "$url"; then
    echo "demo: reusing the vmexec server at $url (pid $pid)" >&2
    echo "$url"
    return
  fi
  [[ -n ${pid:-} ]] && stop_server >&2
  url="http://$HOST:$PORT"
  if healthy "$url"; then
    die "something already answers at $url but it is not the demo's server; set DEMO_PORT"
  fi
  mkdir -p "$STATE"
  # setsid: the server outlives this script and make's process group (Ctrl-C, end of make).
  setsid "$VMEXEC" serve --host "$HOST" --port "$PORT" >>"$LOG" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"
  echo "$url" >"$URLFILE"
  for _ in $(seq 600); do
    healthy "$url" && { echo "demo: started the vmexec server at $url (pid $pid)" >&2; echo "$url"; return; }
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$LOG" >&2; rm -f "$PIDFILE" "$URLFILE"; die "the server exited (log: $LOG)"; }
    sleep 0.1
  done
  die "the server did not answer $url/health within 60 s (log: $LOG)"
}

json_field() {  # json_field EXPR < JSON: print a value of the JSON on stdin (EXPR in Python)
  "$PY" -c "import json, sys; d = json.load(sys.stdin); print($1)"
}

case ${1:-demo} in
  stop) stop_server; exit 0 ;;
  down) stop_server; bash scripts/bootstrap.sh; "$VMEXEC" lab down --prefix "$LAB_PREFIX" >/dev/null; echo "demo: lab VMs removed"; exit 0 ;;
  demo) ;;
  *) die "usage: scripts/demo.sh [demo|stop|down]" ;;
esac

step "Installing what is missing (Debian packages, .venv)"
bash scripts/bootstrap.sh
echo "ok"

step "Bringing up $VMS lab VMs (libvirt + QEMU guests running qemu-ga)"
lab_args=(lab up --vms "$VMS")
[[ $LAB_PREFIX == vmexec-lab ]] || lab_args+=(--prefix "$LAB_PREFIX")
show vmexec "${lab_args[@]}"
lab_json=$("$VMEXEC" "${lab_args[@]}")
mapfile -t VM_NAMES < <(json_field '"\n".join(vm["name"] for vm in d)' <<<"$lab_json")
mapfile -t VM_UUIDS < <(json_field '"\n".join(vm["uuid"] for vm in d)' <<<"$lab_json")
((${#VM_NAMES[@]} == VMS)) || die "lab up gave ${#VM_NAMES[@]} VMs, not $VMS"
for i in "${!VM_NAMES[@]}"; do echo "${VM_NAMES[i]}  ${VM_UUIDS[i]}"; done

step "Starting the vmexec server on loopback (embedded SQLite)"
URL=$(start_server)
echo "$URL/health: $(curl -fsS "$URL/health")"

step "Logging in with curl (the password travels as its SHA-512 hex, as in ZStack)"
hash=$(printf %s "$PASSWORD" | sha512sum | cut -d' ' -f1)
show "curl -X PUT '$URL/zstack/v1/accounts/login' -H 'Content-Type: application/json' -d '{\"logInByAccount\":{\"accountName\":\"admin\",\"password\":\"$hash\"}}'"
login_reply=$(curl -sS -X PUT "$URL/zstack/v1/accounts/login" -H 'Content-Type: application/json' \
  -d "{\"logInByAccount\":{\"accountName\":\"admin\",\"password\":\"$hash\"}}")
echo "$login_reply"
SESSION=$(json_field 'd["inventory"]["uuid"]' <<<"$login_reply") || die "login failed: $login_reply"

step "ExecuteGuestVmCommand with curl on ${VM_NAMES[0]} (the spec's request, real values)"
body="{\"params\":{\"vmInstanceUuid\":\"${VM_UUIDS[0]}\",\"platform\":\"Linux\",\"command\":\"hostname; uname -r; echo to-stderr >&2\",\"commandTimeout\":30},\"systemTags\":[],\"userTags\":[]}"
show "curl -X PUT '$URL/zstack/v1/vm-instances/commands/exec' -H 'Authorization: OAuth $SESSION' -H 'Content-Type: application/json;charset=UTF-8' -d '$body'"
exec_reply=$(curl -sS -X PUT "$URL/zstack/v1/vm-instances/commands/exec" \
  -H "Authorization: OAuth $SESSION" -H 'Content-Type: application/json;charset=UTF-8' -d "$body")
echo "(the reply, indented by python -m json.tool:)"
"$PY" -m json.tool <<<"$exec_reply" || { echo "$exec_reply"; die "the exec reply is not JSON"; }
grep -q '"stdout"' <<<"$exec_reply" || die "ExecuteGuestVmCommand failed (server log: $LOG)"

step "The same with the vmexec CLI"
export VMEXEC_SERVER=$URL
show vmexec login --server "$URL" --user admin --password "$PASSWORD"
"$VMEXEC" login --server "$URL" --user admin --password "$PASSWORD"
show vmexec vm list
"$VMEXEC" vm list
for name in "${VM_NAMES[@]}"; do
  show vmexec exec "$name" -- hostname
  "$VMEXEC" exec "$name" -- hostname
done
show vmexec exec "${VM_NAMES[1]}" -- "'echo out; echo err >&2; exit 3'"
status=0
"$VMEXEC" exec "${VM_NAMES[1]}" -- 'echo out; echo err >&2; exit 3' || status=$?
echo "exit status: $status"

step "The demo server keeps running"
cat <<EOF
Server:  $URL  (pid $(server_pid || echo '?'), log $LOG)
         OpenAPI docs at $URL/docs
CLI:     .venv/bin/vmexec vm list
         .venv/bin/vmexec exec ${VM_NAMES[0]} -- uname -a
         .venv/bin/vmexec ExecuteGuestVmCommand vmInstanceUuid=${VM_UUIDS[0]} platform=Linux command="uname -a"
curl:    see the two requests above (session $SESSION)
Stop:    make demo-down   (stops the server and removes the lab VMs)
EOF
