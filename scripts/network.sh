#!/usr/bin/env bash
# The local fedcommittee network: native processes only (no Docker), state under $FC_HOME.
#
#   scripts/network.sh up       start every component (safe to run twice)
#   scripts/network.sh down     stop only the processes we started (PID files) and remove their state
#   scripts/network.sh status   one line per process
#   scripts/network.sh stop NAME    stop one node we started (its data stays), e.g. for a fault drill
#   scripts/network.sh start NAME   start it again with the environment it had; it catches up
#   scripts/network.sh logs [COMPONENT] [-f]
#
# Components: ipfs (a private Kubo node: API on loopback, no bootstrap peers, offline) and the
# ledger, by FC_LEDGER (auto|fabric|dev, see scripts/lib.sh): real Fabric where its binaries exist
# (scripts/fabric.sh: 3 orgs, 3 Raft orderers, one channel, the chaincode as a service), else the
# embedded ledger (scripts/devledger.sh: one process serving the same 3 orgs' gateways). The
# backend is chosen at the first `up` of a state directory and kept in $FC_HOME/backend.
# Ports: FC_IPFS_API_PORT, FC_IPFS_GATEWAY_PORT, FC_IPFS_SWARM_PORT, FC_FABRIC_PORT_BASE
# (defaults in scripts/lib.sh).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PIDS=$FC_HOME/pids
LOGS=$FC_HOME/logs
IPFS_REPO=$FC_HOME/ipfs
source "$(dirname "$0")/fabric.sh"
source "$(dirname "$0")/devledger.sh"

# The backend of this state directory: the one recorded at `up`, else what FC_LEDGER picks now.
backend() {
  if [ -f "$FC_HOME/backend" ]; then cat "$FC_HOME/backend"; else ledger_backend; fi
}

pid_of() { cat "$PIDS/$1.pid" 2>/dev/null || true; }

# is_ours NAME: the PID file names a live process running the binary we started, so a
# recycled PID of someone else's process is never signalled.
is_ours() {
  local pid exe
  pid=$(pid_of "$1")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  [ "$exe" = "$(cat "$PIDS/$1.exe" 2>/dev/null)" ]
}

require_free_port() { # PORT VARIABLE
  if port_busy "$1"; then
    die "port $1 ($2) is already in use by another process: stop it or set $2 to a free port"
  fi
}

# running PID: the process exists and has not exited. A daemon whose parent was this script is
# reaped by PID 1, which may take a while: until then it is a zombie (state Z), already gone.
running() { [ -d "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

stop() { # NAME
  is_ours "$1" || { rm -f "$PIDS/$1.pid" "$PIDS/$1.exe"; return 0; }
  local pid i
  pid=$(pid_of "$1")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    running "$pid" || break
    sleep 0.1
  done
  if running "$pid"; then
    warn "$1 (pid $pid) ignored SIGTERM for 10 s: killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDS/$1.pid" "$PIDS/$1.exe"
  ok "$1 stopped"
}

# alive NAME: the process of NAME's PID file is running. Start-up waits use this, not is_ours:
# until setsid has exec'd the binary, /proc/PID/exe names setsid, and is_ours would call a
# process that is starting normally dead.
alive() {
  local pid
  pid=$(pid_of "$1")
  [ -n "$pid" ] && running "$pid"
}

status_line() { # NAME DETAIL
  if is_ours "$1"; then
    echo "$1: running (pid $(pid_of "$1"), $2)"
  else
    echo "$1: stopped"
  fi
}

ipfs_cmd() { IPFS_PATH=$IPFS_REPO "$(kubo_bin)" "$@"; }

ipfs_up() {
  if is_ours ipfs; then
    ok "ipfs already running (pid $(pid_of ipfs))"
    return
  fi
  [ -x "$(kubo_bin)" ] || die "Kubo is not built: run scripts/setup.sh first"
  require_free_port "$FC_IPFS_API_PORT" FC_IPFS_API_PORT
  require_free_port "$FC_IPFS_GATEWAY_PORT" FC_IPFS_GATEWAY_PORT
  # No check of FC_IPFS_SWARM_PORT: `daemon --offline` never binds the swarm address (Kubo logs
  # "Swarm not listening, running in offline mode"; checked with ss -ltnp, and the node starts with
  # that port held by another process). It stays in the config for a node taken online by hand.
  if [ ! -f "$IPFS_REPO/config" ]; then
    # The test profile empties Bootstrap and turns off MDNS and AutoConf: a private node.
    ipfs_cmd init --profile=test --empty-repo >"$LOGS/ipfs-init.log" 2>&1
  fi
  ipfs_cmd config Addresses.API "/ip4/127.0.0.1/tcp/$FC_IPFS_API_PORT"
  ipfs_cmd config Addresses.Gateway "/ip4/127.0.0.1/tcp/$FC_IPFS_GATEWAY_PORT"
  ipfs_cmd config --json Addresses.Swarm "[\"/ip4/127.0.0.1/tcp/$FC_IPFS_SWARM_PORT\"]"
  ipfs_cmd config --json Bootstrap '[]'
  ipfs_cmd config --json Discovery.MDNS.Enabled false
  IPFS_PATH=$IPFS_REPO start_process ipfs "$(kubo_bin)" daemon --offline
  local i
  for i in $(seq 1 150); do
    if ipfs_cmd --api "/ip4/127.0.0.1/tcp/$FC_IPFS_API_PORT" id >/dev/null 2>&1; then
      ok "ipfs up: API http://127.0.0.1:$FC_IPFS_API_PORT (pid $(pid_of ipfs))"
      return
    fi
    alive ipfs || break
    sleep 0.2
  done
  tail -n 20 "$LOGS/ipfs.log" >&2 || true
  die "ipfs did not become ready (log: $LOGS/ipfs.log)"
}

# One file the Python side reads to find the network, whatever ports and backend were chosen.
write_endpoints() { # BACKEND
  local dir=$FAB
  [ "$1" = dev ] && dir=$DEV
  python3 "$FC_ROOT/fedcommittee/layout.py" endpoints "http://127.0.0.1:$FC_IPFS_API_PORT" "$1" "$dir" \
    "$FC_FABRIC_PORT_BASE" >"$FC_HOME/endpoints.json"
}

cmd_up() {
  local started b
  started=$(now)
  b=$(backend) || exit 1
  batch_timeout_ms >/dev/null || exit 1 # a bad value stops `up` before any state is written
  warn_kept_batch_timeout
  step "network up (state: $FC_HOME, ledger: $(backend_words "$b"))"
  mkdir -p "$PIDS" "$LOGS"
  echo "$b" >"$FC_HOME/backend"
  ipfs_up
  if [ "$b" = fabric ]; then fabric_up; else dev_up; fi
  write_endpoints "$b"
  step "network ready in $(elapsed "$started")"
  [ "$b" = dev ] && echo "    (the embedded ledger: for real Fabric set FC_FABRIC_HOME to a Fabric $FABRIC_VERSION release and FC_LEDGER=fabric)"
  return 0
}

backend_words() { # BACKEND
  if [ "$1" = fabric ]; then echo "Hyperledger Fabric $FABRIC_VERSION"; else echo "embedded ledger (network/devledger)"; fi
}

# Reports and the agents' logs are the user's, not network state: keep them when the state goes,
# as reports/<model>/ with the logs in reports/<model>/logs/. The logs are kept for a run without a
# report too (one that stopped early), which is when they are needed most.
keep_reports() {
  local run model kept what
  for run in "$FC_HOME"/runs/*/; do
    run=${run%/}
    [ -d "$run/report" ] || [ -d "$run/logs" ] || continue
    model=$(basename "$run")
    kept=$FC_ROOT/reports/$model
    mkdir -p "$FC_ROOT/reports"
    rm -rf "$kept"
    what=()
    if [ -d "$run/report" ]; then
      mv "$run/report" "$kept"
      what+=("the report")
    else
      mkdir -p "$kept"
    fi
    if [ -d "$run/logs" ]; then
      mv "$run/logs" "$kept/logs"
      what+=("the agent logs")
    fi
    if [ ${#what[@]} = 2 ]; then what=("${what[0]} and ${what[1]}"); fi
    ok "kept ${what[0]} of $model in reports/$model"
  done
}

cmd_down() {
  step "network down"
  if [ "$(cat "$FC_HOME/backend" 2>/dev/null)" = dev ]; then dev_down; else fabric_down; fi
  stop ipfs
  keep_reports
  rm -rf "$FC_HOME"
  ok "state removed ($FC_HOME)"
}

cmd_status() {
  local b
  b=$(backend) || exit 1
  echo "ledger: $(backend_words "$b")"
  status_line ipfs "API http://127.0.0.1:$FC_IPFS_API_PORT"
  if [ "$b" = fabric ]; then fabric_status; else dev_status; fi
}

# Every node name, in start order.
node_names() {
  echo ipfs
  if [ "$(backend)" = dev ]; then
    dev_node_names
  else
    local n
    for n in "${ORDERERS[@]}"; do echo "orderer$n"; done
    for n in "${ORGS[@]}"; do echo "peer0.org$n"; done
    for n in "${ORGS[@]}"; do echo "chaincode.org$n"; done
  fi
}

check_node_name() { # NAME
  [ -n "${1:-}" ] || die "name a node: $(node_names | xargs)"
  local names
  names=$(node_names)
  grep -qxF -- "$1" <<<"$names" || die "unknown node '$1' (valid: $(xargs <<<"$names"))"
  [ -d "$PIDS" ] || die "the network has not been started (scripts/network.sh up)"
}

cmd_stop_node() { # NAME
  check_node_name "${1:-}"
  if [ "$(backend)" = dev ] && [ "$1" != ipfs ]; then
    dev_stop_node "$1"
    return
  fi
  if ! is_ours "$1"; then
    ok "$1 is not running"
    return
  fi
  stop "$1"
}

cmd_start_node() { # NAME
  check_node_name "${1:-}"
  if [ "$1" = ipfs ]; then
    ipfs_up
  elif [ "$(backend)" = dev ]; then
    dev_start_node "$1"
  else
    fabric_start_node "$1"
  fi
}

cmd_logs() {
  local name="" follow=() arg
  for arg in "$@"; do
    if [ "$arg" = "-f" ]; then follow=(-f); else name=$arg; fi
  done
  [ -d "$LOGS" ] || die "no logs: the network has not been started (scripts/network.sh up)"
  if [ -n "$name" ]; then
    [ -f "$LOGS/$name.log" ] || die "no log for '$name' (have: $(ls "$LOGS" | sed 's/\.log$//' | tr '\n' ' '))"
    tail -n 100 "${follow[@]}" "$LOGS/$name.log"
  else
    tail -n 30 "${follow[@]}" "$LOGS"/*.log
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  stop) shift; cmd_stop_node "$@" ;;
  start) shift; cmd_start_node "$@" ;;
  *) echo "usage: $0 up|down|status|logs [COMPONENT] [-f]|stop NAME|start NAME" >&2; exit 2 ;;
esac
