# The Fabric half of the local network, sourced by network.sh (which defines PIDS, LOGS and the
# process helpers). Three orgs with one peer each, three Raft orderers, one channel joined through
# the channel participation API, and the fedcommittee chaincode run as a service (no Docker).
# TLS everywhere: peers, orderers, orderer admin (mutual TLS), operations endpoints, chaincode.
#
# Port layout, from FC_FABRIC_PORT_BASE (default 7000), all on 127.0.0.1:
#   ordererN (N=1..3): base+100*N      listen (+1 admin, +2 operations)
#   orgN peer (N=1..3): base+100*(N+3)  listen (+1 chaincode callbacks, +2 operations, +3 chaincode server)

FAB=$FC_HOME/fabric
CRYPTO=$FAB/crypto
CHANNEL=${FC_CHANNEL:-fedchannel}
CC_NAME=fedcommittee
CC_VERSION=1.0
CC_SEQUENCE=1
ORGS=(1 2 3)
ORDERERS=(1 2 3)

orderer_port() { echo $((FC_FABRIC_PORT_BASE + 100 * $1)); }
peer_port() { echo $((FC_FABRIC_PORT_BASE + 100 * ($1 + 3))); }
orderer_dir() { echo "$CRYPTO/ordererOrganizations/orderer.fc.local/orderers/orderer$1.orderer.fc.local"; }
org_dir() { echo "$CRYPTO/peerOrganizations/org$1.fc.local"; }
peer_dir() { echo "$(org_dir "$1")/peers/peer0.org$1.fc.local"; }
orderer_tls_ca() { echo "$CRYPTO/ordererOrganizations/orderer.fc.local/tlsca/tlsca.orderer.fc.local-cert.pem"; }
org_tls_ca() { echo "$(org_dir "$1")/tlsca/tlsca.org$1.fc.local-cert.pem"; }

fabric_ports() { # every port the Fabric processes will listen on, with its variable description
  local n
  for n in "${ORDERERS[@]}"; do
    local p
    p=$(orderer_port "$n")
    echo "$p $((p + 1)) $((p + 2))"
  done
  for n in "${ORGS[@]}"; do
    local p
    p=$(peer_port "$n")
    echo "$p $((p + 1)) $((p + 2)) $((p + 3))"
  done
}

# The crypto config of this run: network/fabric/crypto-config.yaml, with FC_USERS_PER_ORG client
# users per org where it is set (benchmarks with many providers need more identities).
fabric_crypto_config() {
  local src=$FC_ROOT/network/fabric/crypto-config.yaml
  if [ -z "${FC_USERS_PER_ORG:-}" ]; then
    cat "$src"
    return
  fi
  [[ "$FC_USERS_PER_ORG" =~ ^[1-9][0-9]{0,3}$ ]] || die "FC_USERS_PER_ORG must be a number from 1 to 9999, got '$FC_USERS_PER_ORG'"
  sed -E "s/Users: \{Count: [0-9]+\}/Users: {Count: $FC_USERS_PER_ORG}/" "$src"
}

fabric_generate() {
  [ -f "$FAB/$CHANNEL.block" ] && return
  mkdir -p "$FAB"
  fabric_crypto_config >"$FAB/crypto-config.yaml"
  "$(fabric_bin)/cryptogen" generate --config="$FAB/crypto-config.yaml" \
    --output="$CRYPTO" >"$LOGS/cryptogen.log" 2>&1 || die "cryptogen failed (log: $LOGS/cryptogen.log)"
  fabric_render_configtx >"$FAB/configtx.yaml"
  FABRIC_CFG_PATH=$FAB "$(fabric_bin)/configtxgen" -profile FedCommitteeChannel -channelID "$CHANNEL" \
    -outputBlock "$FAB/$CHANNEL.block.tmp" >"$LOGS/configtxgen.log" 2>&1 \
    || die "configtxgen failed (log: $LOGS/configtxgen.log)"
  mv "$FAB/$CHANNEL.block.tmp" "$FAB/$CHANNEL.block"
  ok "identities and channel genesis block generated"
}

fabric_render_configtx() {
  # YAML anchors use '&', which bash >= 5.2 would replace by the matched text in ${x//a/b}.
  shopt -u patsub_replacement 2>/dev/null || true
  local orgs="" refs="" consenters="" n
  for n in "${ORGS[@]}"; do
    orgs+="  - &Org$n
    Name: Org${n}MSP
    ID: Org${n}MSP
    MSPDir: $(org_dir "$n")/msp
    Policies:
      Readers: {Type: Signature, Rule: \"OR('Org${n}MSP.admin', 'Org${n}MSP.peer', 'Org${n}MSP.client')\"}
      Writers: {Type: Signature, Rule: \"OR('Org${n}MSP.admin', 'Org${n}MSP.client')\"}
      Admins: {Type: Signature, Rule: \"OR('Org${n}MSP.admin')\"}
      Endorsement: {Type: Signature, Rule: \"OR('Org${n}MSP.peer')\"}
    AnchorPeers:
      - {Host: 127.0.0.1, Port: $(peer_port "$n")}
"
    refs+="${refs:+, }*Org$n"
  done
  for n in "${ORDERERS[@]}"; do
    consenters+="      - Host: 127.0.0.1
        Port: $(orderer_port "$n")
        ClientTLSCert: $(orderer_dir "$n")/tls/server.crt
        ServerTLSCert: $(orderer_dir "$n")/tls/server.crt
"
  done
  local tmpl ms
  ms=$(batch_timeout_ms) || exit 1
  tmpl=$(cat "$FC_ROOT/network/fabric/configtx.yaml.tmpl")
  tmpl=${tmpl//@BATCH_TIMEOUT@/${ms}ms}
  tmpl=${tmpl//@CRYPTO@/$CRYPTO}
  tmpl=${tmpl//@ORDERER1_PORT@/$(orderer_port 1)}
  tmpl=${tmpl//@ORDERER2_PORT@/$(orderer_port 2)}
  tmpl=${tmpl//@ORDERER3_PORT@/$(orderer_port 3)}
  tmpl=${tmpl//@PEER_ORGS@/$orgs}
  tmpl=${tmpl//@CONSENTERS@/${consenters%$'\n'}}
  tmpl=${tmpl//@ORG_REFS@/$refs}
  printf '%s\n' "$tmpl"
}

# start_process NAME EXECUTABLE ARGS...: detached, logged, recorded in a PID file.
start_process() {
  local name=$1 exe=$2
  shift 2
  setsid "$exe" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
  readlink -f "$exe" >"$PIDS/$name.exe"
}

wait_healthy() { # NAME OPERATIONS_PORT TLS_CA
  local i
  for i in $(seq 1 150); do
    if curl -sf --cacert "$3" "https://127.0.0.1:$2/healthz" >/dev/null 2>&1; then
      return 0
    fi
    alive "$1" || break
    sleep 0.2
  done
  tail -n 30 "$LOGS/$1.log" >&2 || true
  die "$1 did not become healthy (log: $LOGS/$1.log)"
}

fabric_start_orderer() {
  local n=$1 name="orderer$1" dir port
  is_ours "$name" && return
  dir=$(orderer_dir "$n")
  port=$(orderer_port "$n")
  mkdir -p "$FAB/data/$name"
  (
    export FABRIC_CFG_PATH=$(fabric_config)
    export FABRIC_LOGGING_SPEC=${FC_FABRIC_LOGGING:-info}
    export ORDERER_GENERAL_LISTENADDRESS=127.0.0.1 ORDERER_GENERAL_LISTENPORT=$port
    export ORDERER_GENERAL_LOCALMSPID=OrdererMSP ORDERER_GENERAL_LOCALMSPDIR=$dir/msp
    export ORDERER_GENERAL_TLS_ENABLED=true ORDERER_GENERAL_TLS_PRIVATEKEY=$dir/tls/server.key
    export ORDERER_GENERAL_TLS_CERTIFICATE=$dir/tls/server.crt ORDERER_GENERAL_TLS_ROOTCAS="[$dir/tls/ca.crt]"
    export ORDERER_GENERAL_BOOTSTRAPMETHOD=none ORDERER_CHANNELPARTICIPATION_ENABLED=true
    export ORDERER_FILELEDGER_LOCATION=$FAB/data/$name/ledger
    export ORDERER_CONSENSUS_WALDIR=$FAB/data/$name/wal ORDERER_CONSENSUS_SNAPDIR=$FAB/data/$name/snap
    export ORDERER_ADMIN_LISTENADDRESS=127.0.0.1:$((port + 1))
    export ORDERER_ADMIN_TLS_ENABLED=true ORDERER_ADMIN_TLS_CERTIFICATE=$dir/tls/server.crt
    export ORDERER_ADMIN_TLS_PRIVATEKEY=$dir/tls/server.key ORDERER_ADMIN_TLS_ROOTCAS="[$dir/tls/ca.crt]"
    export ORDERER_ADMIN_TLS_CLIENTAUTHREQUIRED=true ORDERER_ADMIN_TLS_CLIENTROOTCAS="[$dir/tls/ca.crt]"
    export ORDERER_OPERATIONS_LISTENADDRESS=127.0.0.1:$((port + 2))
    export ORDERER_OPERATIONS_TLS_ENABLED=true ORDERER_OPERATIONS_TLS_CERTIFICATE=$dir/tls/server.crt
    export ORDERER_OPERATIONS_TLS_PRIVATEKEY=$dir/tls/server.key
    export ORDERER_METRICS_PROVIDER=disabled
    start_process "$name" "$(fabric_bin)/orderer"
  )
}

fabric_start_peer() {
  local n=$1 name="peer0.org$1" dir port
  is_ours "$name" && return
  dir=$(peer_dir "$n")
  port=$(peer_port "$n")
  mkdir -p "$FAB/data/$name"
  (
    export FABRIC_CFG_PATH=$(fabric_config)
    export FABRIC_LOGGING_SPEC=${FC_FABRIC_LOGGING:-info}
    export CORE_PEER_ID=$name CORE_PEER_LOCALMSPID=Org${n}MSP CORE_PEER_MSPCONFIGPATH=$dir/msp
    export CORE_PEER_LISTENADDRESS=127.0.0.1:$port CORE_PEER_ADDRESS=127.0.0.1:$port
    export CORE_PEER_CHAINCODELISTENADDRESS=127.0.0.1:$((port + 1))
    export CORE_PEER_CHAINCODEADDRESS=127.0.0.1:$((port + 1))
    # The external endpoint puts the peer into discovery, hence into the gateway's endorsement plans.
    export CORE_PEER_GOSSIP_BOOTSTRAP=127.0.0.1:$port CORE_PEER_GOSSIP_EXTERNALENDPOINT=127.0.0.1:$port
    # A peer that joins the channel first dials the other orgs' anchor peers before they have joined;
    # they refuse ("Could not acquire policy manager"), and gossip retries only after reconnectInterval
    # (25 s by default: fabric gossip/discovery/discovery_impl.go Connect), which made `up` take 5 s
    # or 30 s by luck. On one machine a 1 s retry costs nothing and membership forms within seconds.
    export CORE_PEER_GOSSIP_RECONNECTINTERVAL=1s
    export CORE_PEER_TLS_ENABLED=true CORE_PEER_TLS_CERT_FILE=$dir/tls/server.crt
    export CORE_PEER_TLS_KEY_FILE=$dir/tls/server.key CORE_PEER_TLS_ROOTCERT_FILE=$dir/tls/ca.crt
    export CORE_PEER_FILESYSTEMPATH=$FAB/data/$name CORE_LEDGER_SNAPSHOTS_ROOTDIR=$FAB/data/$name/snapshots
    export CORE_OPERATIONS_LISTENADDRESS=127.0.0.1:$((port + 2))
    export CORE_OPERATIONS_TLS_ENABLED=true CORE_OPERATIONS_TLS_CERT_FILE=$dir/tls/server.crt
    export CORE_OPERATIONS_TLS_KEY_FILE=$dir/tls/server.key
    export CORE_METRICS_PROVIDER=disabled
    # No Docker: an empty VM endpoint plus our chaincode-as-a-service builder.
    export CORE_VM_ENDPOINT=
    export CORE_CHAINCODE_EXTERNALBUILDERS="[{name: ccaas, path: $FC_ROOT/network/builders/ccaas}]"
    export CORE_PEER_GATEWAY_ENABLED=true
    start_process "$name" "$(fabric_bin)/peer" node start
  )
}

# Environment of an org admin for the peer CLI.
as_org_admin() { # ORG COMMAND...
  local n=$1
  shift
  FABRIC_CFG_PATH=$(fabric_config) CORE_PEER_LOCALMSPID=Org${n}MSP CORE_PEER_TLS_ENABLED=true \
    CORE_PEER_MSPCONFIGPATH="$(org_dir "$n")/users/Admin@org$n.fc.local/msp" \
    CORE_PEER_ADDRESS=127.0.0.1:$(peer_port "$n") CORE_PEER_TLS_ROOTCERT_FILE="$(org_tls_ca "$n")" \
    FABRIC_LOGGING_SPEC=warn "$@"
}

orderer_admin_tls() {
  local admin=$CRYPTO/ordererOrganizations/orderer.fc.local/users/Admin@orderer.fc.local/tls
  echo --ca-file "$(orderer_tls_ca)" --client-cert "$admin/client.crt" --client-key "$admin/client.key"
}

fabric_join_channel() {
  local n out
  for n in "${ORDERERS[@]}"; do
    # shellcheck disable=SC2046
    out=$("$(fabric_bin)/osnadmin" channel list -o "127.0.0.1:$(($(orderer_port "$n") + 1))" $(orderer_admin_tls) 2>&1) \
      || die "osnadmin cannot reach orderer$n: $out"
    if ! grep -q "\"$CHANNEL\"" <<<"$out"; then
      # shellcheck disable=SC2046
      out=$("$(fabric_bin)/osnadmin" channel join --channelID "$CHANNEL" --config-block "$FAB/$CHANNEL.block" \
        -o "127.0.0.1:$(($(orderer_port "$n") + 1))" $(orderer_admin_tls) 2>&1) \
        || die "orderer$n could not join $CHANNEL: $out"
    fi
  done
  for n in "${ORGS[@]}"; do
    if ! as_org_admin "$n" "$(fabric_bin)/peer" channel list 2>/dev/null | grep -qx "$CHANNEL"; then
      out=$(as_org_admin "$n" "$(fabric_bin)/peer" channel join -b "$FAB/$CHANNEL.block" 2>&1) \
        || die "peer0.org$n could not join $CHANNEL: $out"
    fi
  done
  ok "orderers and peers joined channel $CHANNEL"
}

chaincode_binary() { # [STATE_DIR]
  local bin=${1:-$FAB}/bin/fedcommittee-chaincode
  if [ ! -x "$bin" ]; then
    mkdir -p "$FAB/bin"
    go_build "$FC_ROOT/chaincode" "$bin" ./cmd/fedcommittee || die "building the chaincode failed"
  fi
  echo "$bin"
}

# The package an org installs: metadata plus the address its peer dials (with the TLS root).
chaincode_package() { # ORG
  local n=$1 work=$FAB/package/org$1
  mkdir -p "$work"
  python3 - "$(peer_port "$n")" "$(org_tls_ca "$n")" >"$work/connection.json" <<'PY'
import json, sys
port, ca = int(sys.argv[1]) + 3, sys.argv[2]
print(json.dumps({"address": f"127.0.0.1:{port}", "dial_timeout": "10s", "tls_required": True,
                  "client_auth_required": False, "root_cert": open(ca).read()}))
PY
  printf '{"type":"ccaas","label":"%s_%s"}\n' "$CC_NAME" "$CC_VERSION" >"$work/metadata.json"
  tar -C "$work" -czf "$work/code.tar.gz" connection.json
  tar -C "$work" -czf "$work/$CC_NAME.tgz" metadata.json code.tar.gz
  echo "$work/$CC_NAME.tgz"
}

fabric_start_chaincode() { # ORG PACKAGE_ID
  local n=$1 name="chaincode.org$1" dir
  is_ours "$name" && return
  dir=$(peer_dir "$n")
  (
    export CHAINCODE_SERVER_ADDRESS=127.0.0.1:$(($(peer_port "$n") + 3)) CORE_CHAINCODE_ID_NAME=$2
    export CORE_PEER_TLS_ENABLED=true CORE_TLS_CLIENT_CERT_FILE=$dir/tls/server.crt
    export CORE_TLS_CLIENT_KEY_FILE=$dir/tls/server.key
    start_process "$name" "$(chaincode_binary)"
  )
}

# The package ID an org's chaincode server runs as: computed from the package file, as deploy did.
chaincode_package_id() { # ORG
  local pkg=$FAB/package/org$1/$CC_NAME.tgz
  [ -f "$pkg" ] || die "no chaincode package for org$1 ($pkg): run scripts/network.sh up"
  as_org_admin "$1" "$(fabric_bin)/peer" lifecycle chaincode calculatepackageid "$pkg"
}

# fabric_start_node NAME: (re)start one node of a network that was up, with the environment `up`
# gave it; its ledger and data directories are kept, so it catches up from the others.
fabric_start_node() {
  local name=$1 n
  if is_ours "$name"; then
    ok "$name already running (pid $(pid_of "$name"))"
    return
  fi
  case "$name" in
    orderer[0-9])
      n=${name#orderer}
      require_free_port "$(orderer_port "$n")" "FC_FABRIC_PORT_BASE=$FC_FABRIC_PORT_BASE"
      fabric_start_orderer "$n"
      wait_healthy "$name" $(($(orderer_port "$n") + 2)) "$(orderer_tls_ca)"
      ;;
    peer0.org[0-9])
      n=${name#peer0.org}
      require_free_port "$(peer_port "$n")" "FC_FABRIC_PORT_BASE=$FC_FABRIC_PORT_BASE"
      fabric_start_peer "$n"
      wait_healthy "$name" $(($(peer_port "$n") + 2)) "$(org_tls_ca "$n")"
      ;;
    chaincode.org[0-9])
      n=${name#chaincode.org}
      require_free_port $(($(peer_port "$n") + 3)) "FC_FABRIC_PORT_BASE=$FC_FABRIC_PORT_BASE"
      fabric_start_chaincode "$n" "$(chaincode_package_id "$n")"
      local i
      for i in $(seq 1 50); do
        port_busy $(($(peer_port "$n") + 3)) && break
        alive "$name" || die "$name exited at start (log: $LOGS/$name.log)"
        sleep 0.2
      done
      ;;
    *) die "not a Fabric node: $name" ;;
  esac
  ok "$name started (pid $(pid_of "$name"))"
}

fabric_deploy_chaincode() {
  local n pkg pkgid out
  for n in "${ORGS[@]}"; do
    pkg=$(chaincode_package "$n")
    pkgid=$(as_org_admin "$n" "$(fabric_bin)/peer" lifecycle chaincode calculatepackageid "$pkg")
    if ! as_org_admin "$n" "$(fabric_bin)/peer" lifecycle chaincode queryinstalled 2>/dev/null | grep -q "$pkgid"; then
      out=$(as_org_admin "$n" "$(fabric_bin)/peer" lifecycle chaincode install "$pkg" 2>&1) \
        || die "installing the chaincode on peer0.org$n failed: $out"
    fi
    fabric_start_chaincode "$n" "$pkgid"
    if as_org_admin 1 "$(fabric_bin)/peer" lifecycle chaincode querycommitted -C "$CHANNEL" -n "$CC_NAME" >/dev/null 2>&1; then
      continue
    fi
    out=$(as_org_admin "$n" "$(fabric_bin)/peer" lifecycle chaincode approveformyorg -o "127.0.0.1:$(orderer_port 1)" \
      --tls --cafile "$(orderer_tls_ca)" -C "$CHANNEL" -n "$CC_NAME" -v "$CC_VERSION" \
      --sequence "$CC_SEQUENCE" --package-id "$pkgid" 2>&1) \
      || grep -q "attempted to redefine uncommitted sequence" <<<"$out" \
      || die "org$n could not approve the chaincode: $out"
  done
  if ! as_org_admin 1 "$(fabric_bin)/peer" lifecycle chaincode querycommitted -C "$CHANNEL" -n "$CC_NAME" >/dev/null 2>&1; then
    local peers=()
    for n in "${ORGS[@]}"; do
      peers+=(--peerAddresses "127.0.0.1:$(peer_port "$n")" --tlsRootCertFiles "$(org_tls_ca "$n")")
    done
    out=$(as_org_admin 1 "$(fabric_bin)/peer" lifecycle chaincode commit -o "127.0.0.1:$(orderer_port 1)" \
      --tls --cafile "$(orderer_tls_ca)" -C "$CHANNEL" -n "$CC_NAME" -v "$CC_VERSION" \
      --sequence "$CC_SEQUENCE" "${peers[@]}" 2>&1) || die "committing the chaincode definition failed: $out"
  fi
  ok "chaincode $CC_NAME $CC_VERSION committed on $CHANNEL (majority endorsement)"
}

# Ready means each org's gateway can plan a majority endorsement of the chaincode, which needs
# gossip to have spread membership and installed-chaincode info; that lags `commit` by seconds.
fabric_wait_discovery() {
  local n i msp layouts
  for n in "${ORGS[@]}"; do
    msp=$(org_dir "$n")/users/Admin@org$n.fc.local/msp
    for i in $(seq 1 150); do
      layouts=$(FABRIC_LOGGING_SPEC=error "$(fabric_bin)/discover" --peerTLSCA "$(org_tls_ca "$n")" \
        --userKey "$msp/keystore/priv_sk" --userCert "$(echo "$msp"/signcerts/*.pem)" --MSP "Org${n}MSP" \
        endorsers --channel "$CHANNEL" --chaincode "$CC_NAME" --server "127.0.0.1:$(peer_port "$n")" 2>/dev/null \
        | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[0]["Layouts"]))' 2>/dev/null || echo 0)
      [ "$layouts" -gt 0 ] && break
      [ "$i" = 150 ] && die "peer0.org$n cannot plan endorsements for $CC_NAME after 30 s (logs: $LOGS)"
      sleep 0.2
    done
  done
  ok "every gateway can plan a majority endorsement"
}

fabric_up() {
  local started n
  started=$(now)
  command -v curl >/dev/null || die "curl not found: apt-get install curl (health checks use it)"
  if ! is_ours orderer1; then
    local p
    for p in $(fabric_ports); do require_free_port "$p" "FC_FABRIC_PORT_BASE=$FC_FABRIC_PORT_BASE"; done
  fi
  fabric_generate
  for n in "${ORDERERS[@]}"; do fabric_start_orderer "$n"; done
  for n in "${ORGS[@]}"; do fabric_start_peer "$n"; done
  for n in "${ORDERERS[@]}"; do wait_healthy "orderer$n" $(($(orderer_port "$n") + 2)) "$(orderer_tls_ca)"; done
  for n in "${ORGS[@]}"; do wait_healthy "peer0.org$n" $(($(peer_port "$n") + 2)) "$(org_tls_ca "$n")"; done
  ok "3 orderers and 3 peers healthy"
  fabric_join_channel
  fabric_deploy_chaincode
  fabric_wait_discovery
  fabric_write_profile
  ok "fabric ready in $(elapsed "$started")"
}

# The connection profile agents use (fedcommittee.ledger.load_profile): every peer, and for each
# org its admin and client users, with the ports and paths of this run (fedcommittee/layout.py).
fabric_write_profile() {
  local cc=$FAB/crypto-config.yaml
  [ -f "$cc" ] || cc=$FC_ROOT/network/fabric/crypto-config.yaml # state from before FC_USERS_PER_ORG
  python3 "$FC_ROOT/fedcommittee/layout.py" profile "$FAB" "$FC_FABRIC_PORT_BASE" "$cc" >"$FC_HOME/connection.yaml"
}

fabric_down() {
  local n
  for n in "${ORGS[@]}"; do stop "chaincode.org$n"; done
  for n in "${ORGS[@]}"; do stop "peer0.org$n"; done
  for n in "${ORDERERS[@]}"; do stop "orderer$n"; done
}

fabric_status() {
  local n
  for n in "${ORDERERS[@]}"; do status_line "orderer$n" "listen 127.0.0.1:$(orderer_port "$n")"; done
  for n in "${ORGS[@]}"; do status_line "peer0.org$n" "listen 127.0.0.1:$(peer_port "$n")"; done
  for n in "${ORGS[@]}"; do status_line "chaincode.org$n" "listen 127.0.0.1:$(($(peer_port "$n") + 3))"; done
}
