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
# Components: ipfs (a private Kubo node: API on loopback, no bootstrap peers, offline) and, where
# its binaries exist (scripts/setup.sh, step 5), Fabric (scripts/fabric.sh: 3 orgs, 3 Raft
# orderers, one channel, the chaincode as a service).
# Ports: FC_IPFS_API_PORT, FC_IPFS_GATEWAY_PORT, FC_IPFS_SWARM_PORT, FC_FABRIC_PORT_BASE
# (defaults in scripts/lib.sh).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PIDS=$FC_HOME/pids
LOGS=$FC_HOME/logs
IPFS_REPO=$FC_HOME/ipfs
source "$(dirname "$0")/fabric.sh"

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
  require_free_port "$FC_IPFS_SWARM_PORT" FC_IPFS_SWARM_PORT
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
    is_ours ipfs || break
    sleep 0.2
  done
  tail -n 20 "$LOGS/ipfs.log" >&2 || true
  die "ipfs did not become ready (log: $LOGS/ipfs.log)"
}

fabric_unavailable_reason() {
  cat "$(fabric_unavailable_file)" 2>/dev/null || echo "binaries not built: run scripts/setup.sh"
}

# One file the Python side reads to find the network, whatever ports were chosen.
write_endpoints() {
  local available=false
  fabric_ready && available=true
  python3 - "$available" "$(fabric_unavailable_reason)" >"$FC_HOME/endpoints.json" <<PY
import json, sys
fabric = {"available": sys.argv[1] == "true"}
if fabric["available"]:
    fabric.update(
        channel="$CHANNEL",
        chaincode="$CC_NAME",
        crypto="$CRYPTO",
        connection_profile="$FC_HOME/connection.yaml",
        peers={f"Org{n}MSP": f"127.0.0.1:{$FC_FABRIC_PORT_BASE + 100 * (n + 3)}" for n in (1, 2, 3)},
    )
else:
    fabric["reason"] = sys.argv[2]
print(json.dumps({"ipfs_api": "http://127.0.0.1:$FC_IPFS_API_PORT", "fabric": fabric}, indent=2))
PY
}

cmd_up() {
  local started
  started=$(now)
  step "network up (state: $FC_HOME)"
  mkdir -p "$PIDS" "$LOGS"
  ipfs_up
  if fabric_ready; then
    fabric_up
  else
    warn "fabric unavailable: $(fabric_unavailable_reason)"
  fi
  write_endpoints
  step "network ready in $(elapsed "$started")"
}

# Reports are the user's, not network state: keep them when the state goes.
keep_reports() {
  local report model
  for report in "$FC_HOME"/runs/*/report; do
    [ -d "$report" ] || continue
    model=$(basename "$(dirname "$report")")
    mkdir -p "$FC_ROOT/reports"
    rm -rf "$FC_ROOT/reports/$model"
    mv "$report" "$FC_ROOT/reports/$model"
    ok "kept the report of $model in reports/$model"
  done
}

cmd_down() {
  step "network down"
  fabric_down
  stop ipfs
  keep_reports
  rm -rf "$FC_HOME"
  ok "state removed ($FC_HOME)"
}

cmd_status() {
  status_line ipfs "API http://127.0.0.1:$FC_IPFS_API_PORT"
  if fabric_ready; then
    fabric_status
  else
    echo "fabric: unavailable: $(fabric_unavailable_reason)"
  fi
}

# Every node name, in start order.
node_names() {
  echo ipfs
  if fabric_ready; then
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
