# The embedded-ledger half of the local network, sourced by network.sh (which defines PIDS, LOGS
# and the process helpers). One process, `ledger`, serves every org's Gateway on the port of that
# org's Fabric peer (layout: fedcommittee/layout.py). `stop peer0.orgN` closes that org's listener
# (a peer outage); with FC_DEVLEDGER_CHAINCODE=ccaas the chaincode also runs as one
# chaincode-as-a-service process per org (chaincode.orgN), the binary Fabric runs.

DEV=$FC_HOME/devledger

dev_layout() { python3 "$FC_ROOT/fedcommittee/layout.py" "$@"; }

dev_chaincode_mode() { cat "$DEV/chaincode-mode" 2>/dev/null || echo "$FC_DEVLEDGER_CHAINCODE"; }

dev_generate() {
  [ -d "$DEV/crypto/peerOrganizations" ] && return
  local ms
  ms=$(batch_timeout_ms) || exit 1
  mkdir -p "$DEV"
  case "$FC_DEVLEDGER_CHAINCODE" in inproc | ccaas) ;; *) die "FC_DEVLEDGER_CHAINCODE must be inproc or ccaas, got '$FC_DEVLEDGER_CHAINCODE'" ;; esac
  echo "$FC_DEVLEDGER_CHAINCODE" >"$DEV/chaincode-mode"
  fabric_crypto_config >"$DEV/crypto-config.yaml"
  "$(devledger_bin)" crypto --crypto-config "$DEV/crypto-config.yaml" --out "$DEV/crypto" >"$LOGS/identities.log" 2>&1 \
    || die "generating identities failed (log: $LOGS/identities.log)"
  dev_layout devledger-config "$DEV" "$FC_FABRIC_PORT_BASE" "$(dev_chaincode_mode)" \
    --batch-timeout-ms "$ms" >"$DEV/config.json"
  ok "identities generated (cryptogen's layout, without cryptogen)"
}

dev_node_names() {
  echo ledger
  local n
  for n in "${ORGS[@]}"; do echo "peer0.org$n"; done
  if [ "$(dev_chaincode_mode)" = ccaas ]; then
    for n in "${ORGS[@]}"; do echo "chaincode.org$n"; done
  fi
}

dev_start_ledger() {
  is_ours ledger && return
  start_process ledger "$(devledger_bin)" serve --config "$DEV/config.json"
  local n i
  for n in "${ORGS[@]}"; do
    grep -qx "peer0.org$n" "$DEV/outages" 2>/dev/null && continue
    for i in $(seq 1 100); do
      port_busy "$(peer_port "$n")" && break
      alive ledger || { tail -n 20 "$LOGS/ledger.log" >&2; die "the embedded ledger exited at start (log: $LOGS/ledger.log)"; }
      sleep 0.05
    done
    port_busy "$(peer_port "$n")" || die "the embedded ledger did not open 127.0.0.1:$(peer_port "$n") (log: $LOGS/ledger.log)"
  done
}

dev_up() {
  local started n
  started=$(now)
  local bin
  bin=$(devledger_bin)
  [ -x "$bin" ] || die "the embedded ledger is not built: run scripts/setup.sh first"
  if ! is_ours ledger; then
    local p
    for n in "${ORGS[@]}"; do
      p=$(peer_port "$n")
      require_free_port "$p" "FC_FABRIC_PORT_BASE=$FC_FABRIC_PORT_BASE"
      [ "$FC_DEVLEDGER_CHAINCODE" = ccaas ] && require_free_port $((p + 3)) "FC_FABRIC_PORT_BASE=$FC_FABRIC_PORT_BASE"
    done
  fi
  dev_generate
  if [ "$(dev_chaincode_mode)" = ccaas ]; then
    for n in "${ORGS[@]}"; do dev_start_chaincode "$n"; done
  fi
  dev_start_ledger
  dev_layout profile "$DEV" "$FC_FABRIC_PORT_BASE" "$DEV/crypto-config.yaml" >"$FC_HOME/connection.yaml"
  ok "embedded ledger ready in $(elapsed "$started") (pid $(pid_of ledger), chaincode $(dev_chaincode_mode))"
}

# One chaincode-as-a-service process per org: the binary Fabric runs, with the org's peer TLS pair.
dev_start_chaincode() { # ORG
  local n=$1 name="chaincode.org$1" dir port i
  is_ours "$name" && return
  dir=$(CRYPTO=$DEV/crypto peer_dir "$n")
  port=$(($(peer_port "$n") + 3))
  (
    export CHAINCODE_SERVER_ADDRESS=127.0.0.1:$port CORE_CHAINCODE_ID_NAME=${CC_NAME}_${CC_VERSION}
    export CORE_PEER_TLS_ENABLED=true CORE_TLS_CLIENT_CERT_FILE=$dir/tls/server.crt
    export CORE_TLS_CLIENT_KEY_FILE=$dir/tls/server.key
    start_process "$name" "$(chaincode_binary "$DEV")"
  )
  for i in $(seq 1 100); do
    port_busy "$port" && return
    alive "$name" || die "$name exited at start (log: $LOGS/$name.log)"
    sleep 0.05
  done
  die "$name did not listen on 127.0.0.1:$port (log: $LOGS/$name.log)"
}

# An org's listener goes down or up by the outages file and a SIGHUP to the ledger.
dev_set_outage() { # NAME down|up
  touch "$DEV/outages"
  grep -vx "$1" "$DEV/outages" >"$DEV/outages.tmp" || true
  [ "$2" = down ] && echo "$1" >>"$DEV/outages.tmp"
  mv "$DEV/outages.tmp" "$DEV/outages"
  is_ours ledger && kill -HUP "$(pid_of ledger)"
  local n=${1#peer0.org} i
  for i in $(seq 1 100); do
    if [ "$2" = down ]; then port_busy "$(peer_port "$n")" || return 0; else port_busy "$(peer_port "$n")" && return 0; fi
    is_ours ledger || return 0
    sleep 0.05
  done
  die "$1 did not go $2 (log: $LOGS/ledger.log)"
}

dev_stop_node() { # NAME
  case "$1" in
    peer0.org[0-9]) dev_set_outage "$1" down && ok "$1 stopped (its listener is closed; the ledger runs on)" ;;
    *) stop "$1" ;;
  esac
}

dev_start_node() { # NAME
  case "$1" in
    ledger)
      if is_ours ledger; then ok "ledger already running (pid $(pid_of ledger))"; return; fi
      dev_start_ledger
      ;;
    peer0.org[0-9])
      if ! grep -qx "$1" "$DEV/outages" 2>/dev/null; then ok "$1 already running"; return; fi
      dev_set_outage "$1" up
      ;;
    chaincode.org[0-9])
      if is_ours "$1"; then ok "$1 already running (pid $(pid_of "$1"))"; return; fi
      dev_start_chaincode "${1#chaincode.org}"
      ;;
  esac
  ok "$1 started"
}

dev_down() {
  stop ledger
  local n
  for n in "${ORGS[@]}"; do stop "chaincode.org$n"; done
}

dev_status() {
  status_line ledger "embedded ledger, chaincode $(dev_chaincode_mode)"
  local n
  for n in "${ORGS[@]}"; do
    if is_ours ledger && ! grep -qx "peer0.org$n" "$DEV/outages" 2>/dev/null; then
      echo "peer0.org$n: running (gateway 127.0.0.1:$(peer_port "$n"), in the ledger process)"
    else
      echo "peer0.org$n: stopped"
    fi
  done
  if [ "$(dev_chaincode_mode)" = ccaas ]; then
    for n in "${ORGS[@]}"; do status_line "chaincode.org$n" "listen 127.0.0.1:$(($(peer_port "$n") + 3))"; done
  fi
}
