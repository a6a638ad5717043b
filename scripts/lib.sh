# Shared helpers for the fedcommittee shell scripts. Source it; do not run it.
# Every tunable is an environment variable with a default here, so one place documents them all.

FC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Build products live outside the clone, keyed by version, so a fresh clone sets up in seconds.
FC_CACHE=${FC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fedcommittee}
# Runtime state (keys, ledgers, IPFS repo, logs, PID files) of the local network.
FC_HOME=${FC_HOME:-$FC_ROOT/.fedcommittee}

KUBO_VERSION=v0.42.0
# Fabric v3.1.5 by commit: the module path has no /v3 suffix, so Go refuses the tag itself.
FABRIC_VERSION=v3.1.5
FABRIC_COMMIT=86c1172bec37
FABRIC_BINARIES=(peer orderer configtxgen osnadmin cryptogen discover)

# Ports of the local network (all on 127.0.0.1).
FC_IPFS_API_PORT=${FC_IPFS_API_PORT:-5101}
FC_IPFS_GATEWAY_PORT=${FC_IPFS_GATEWAY_PORT:-8181}
FC_IPFS_SWARM_PORT=${FC_IPFS_SWARM_PORT:-4101}
FC_FABRIC_PORT_BASE=${FC_FABRIC_PORT_BASE:-7000}
# FC_USERS_PER_ORG: client users per org for a new network (unset: the 15 of crypto-config.yaml).
# FC_BATCH_TIMEOUT_MS: how long the ordering service of a new network waits after a block's first
# transaction before it cuts the block, on either backend (unset: 30; docs/design.md, "Block cutting").

# Which ledger a new network runs: fabric (real Fabric binaries, FC_FABRIC_HOME or set-up's cache),
# dev (the embedded ledger, network/devledger), or auto (Fabric where its binaries are present,
# else the embedded ledger). FC_DEVLEDGER_CHAINCODE: inproc (default) or ccaas (the embedded
# ledger dials one chaincode-as-a-service process per org, the binary that runs on Fabric).
FC_LEDGER=${FC_LEDGER:-auto}
FC_DEVLEDGER_CHAINCODE=${FC_DEVLEDGER_CHAINCODE:-inproc}

if [ -t 1 ]; then _b=$'\e[1m' _g=$'\e[32m' _y=$'\e[33m' _r=$'\e[31m' _n=$'\e[0m'; else _b= _g= _y= _r= _n=; fi

step() { printf '%s==> %s%s\n' "$_b" "$*" "$_n"; }
ok() { printf '    %sok%s %s\n' "$_g" "$_n" "$*"; }
warn() { printf '    %swarning:%s %s\n' "$_y" "$_n" "$*" >&2; }
die() { printf '%serror:%s %s\n' "$_r" "$_n" "$*" >&2; exit 1; }

# version_ge A B: true when dotted version A >= B.
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

# port_busy PORT: true when something already listens on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# go_build DIR OUTPUT [PACKAGE]: build a Go binary, showing the compiler's errors but not the
# module downloads, which are progress noise in set-up's and the main job's output.
go_build() {
  (cd "$1" && go build -trimpath -o "$2" "${3:-.}" 2>&1 | grep -v '^go: downloading' >&2; exit "${PIPESTATUS[0]}")
}

# The block timer of a new network in milliseconds: FC_BATCH_TIMEOUT_MS, checked, or 30.
batch_timeout_ms() {
  local ms=${FC_BATCH_TIMEOUT_MS:-30}
  [[ "$ms" =~ ^[1-9][0-9]{0,3}$ ]] && [ "$ms" -le 2000 ] \
    || die "FC_BATCH_TIMEOUT_MS must be a number of milliseconds from 1 to 2000, got '$ms'"
  echo "$ms"
}

# FC_BATCH_TIMEOUT_MS shapes a new network only: say so when it differs from the timer of the
# network whose state is already here (its rendered configtx.yaml or the embedded ledger's config;
# FAB and DEV come from fabric.sh and devledger.sh).
warn_kept_batch_timeout() {
  [ -n "${FC_BATCH_TIMEOUT_MS:-}" ] || return 0
  local have
  have=$(sed -n 's/^ *BatchTimeout: \([0-9]*\)ms$/\1/p' "$FAB/configtx.yaml" 2>/dev/null || true)
  [ -n "$have" ] || have=$(sed -n 's/^ *"batch_timeout_ms": \([0-9]*\),$/\1/p' "$DEV/config.json" 2>/dev/null || true)
  if [ -n "$have" ] && [ "$have" != "$FC_BATCH_TIMEOUT_MS" ]; then
    warn "FC_BATCH_TIMEOUT_MS=$FC_BATCH_TIMEOUT_MS applies to a new network; the one in $FC_HOME keeps its ${have} ms (network.sh down, then up, for a new one)"
  fi
}

# Seconds since the epoch with a fraction, for the timings the scripts print.
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

venv_dir() {
  # Keyed by the Python version and the dependency list, not the whole pyproject, so a lint
  # setting does not rebuild a 3 GB environment.
  local key
  key=$(python3 - "$FC_ROOT/pyproject.toml" <<'PY'
import hashlib, sys, tomllib
with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)["project"]
deps = {"deps": project["dependencies"], "extras": project.get("optional-dependencies", {})}
blob = (sys.version.split()[0] + repr(deps)).encode()
print(hashlib.sha256(blob).hexdigest()[:12])
PY
)
  printf '%s/venv-%s\n' "$FC_CACHE" "$key"
}

kubo_bin() { printf '%s/kubo-%s/bin/ipfs\n' "$FC_CACHE" "$KUBO_VERSION"; }

# Fabric lives in a release-layout directory: bin/ (the binaries) and config/ (core.yaml,
# orderer.yaml). set-up builds one into the cache; FC_FABRIC_HOME points at another, e.g. an
# unpacked official release, for machines whose Go module proxy does not serve Fabric.
fabric_home() { printf '%s\n' "${FC_FABRIC_HOME:-$FC_CACHE/fabric-$FABRIC_VERSION}"; }
fabric_bin() { printf '%s/bin\n' "$(fabric_home)"; }
fabric_config() { printf '%s/config\n' "$(fabric_home)"; }
fabric_unavailable_file() { printf '%s/fabric-%s.UNAVAILABLE\n' "$FC_CACHE" "$FABRIC_VERSION"; }

# The embedded ledger's binary, keyed by a hash of its sources and the chaincode it embeds.
devledger_bin() {
  local key
  key=$(cd "$FC_ROOT" && find network/devledger chaincode -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) \
    ! -name '*_test.go' | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-12)
  printf '%s/devledger-%s/devledger\n' "$FC_CACHE" "$key"
}

# The one-line answer where Fabric was asked for and is missing: what to set or install.
fabric_missing_hint() {
  echo "FC_LEDGER=fabric needs Hyperledger Fabric $FABRIC_VERSION binaries: set FC_FABRIC_HOME to a release folder (bin/ and config/), or unset FC_LEDGER to use the embedded ledger"
}

# ledger_backend: the backend a new network would run, from FC_LEDGER (fails where fabric is
# asked for and missing).
ledger_backend() {
  case "$FC_LEDGER" in
    fabric) fabric_ready || die "$(fabric_missing_hint)"; echo fabric ;;
    dev) echo dev ;;
    auto) if fabric_ready; then echo fabric; else echo dev; fi ;;
    *) die "FC_LEDGER must be auto, fabric or dev, got '$FC_LEDGER'" ;;
  esac
}

fabric_ready() {
  local b
  for b in "${FABRIC_BINARIES[@]}"; do [ -x "$(fabric_bin)/$b" ] || return 1; done
  [ -f "$(fabric_config)/core.yaml" ] && [ -f "$(fabric_config)/orderer.yaml" ]
}
