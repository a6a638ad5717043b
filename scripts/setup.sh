#!/usr/bin/env bash
# Installs everything fedcommittee needs on this machine, idempotently:
#   Debian packages, the Python environment, Kubo (IPFS), the embedded ledger, and the Fabric
#   binaries where the Go module proxy serves them (optional: without them the embedded ledger runs).
# Large products are cached under $FC_CACHE (default ~/.cache/fedcommittee), keyed by version,
# so a second run on the same machine takes seconds.
#
# Usage: scripts/setup.sh [--quiet]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

quiet=0
[ "${1:-}" = "--quiet" ] && quiet=1
pip_q=()
[ "$quiet" = 1 ] && pip_q=(-q)

started=$(now)
mkdir -p "$FC_CACHE"

check_prerequisites() {
  step "[1/6] prerequisites"
  command -v python3 >/dev/null || die "python3 not found: install Python >= 3.11 (apt-get install python3 python3-venv)"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "Python $(python3 -V 2>&1) is too old: fedcommittee needs Python >= 3.11"
  python3 -c 'import venv, ensurepip' 2>/dev/null \
    || die "Python's venv module is missing: apt-get install python3-venv"
  command -v go >/dev/null || die "go not found: install Go >= 1.26.4 (it builds Kubo and Fabric)"
  local gov
  gov=$(go env GOVERSION | sed 's/^go//')
  version_ge "$gov" 1.26.4 \
    || die "Go $gov is too old: Kubo $KUBO_VERSION and Fabric $FABRIC_VERSION need Go >= 1.26.4"
  command -v git >/dev/null || die "git not found: apt-get install git"
  ok "python $(python3 -V 2>&1 | cut -d' ' -f2), go $gov"
}

install_debian_packages() {
  step "[2/6] Debian packages"
  # chromium: the report's screenshot test renders report.html headless (it skips only without it).
  local wanted=(dataset-fashion-mnist curl chromium) missing=() p
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    ok "already installed: ${wanted[*]}"
    return
  fi
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "need root to install ${missing[*]}: run as root or apt-get install ${missing[*]}"
    sudo=(sudo)
  fi
  echo "    installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
  ok "installed ${missing[*]}"
}

install_python_env() {
  step "[3/6] Python environment"
  # Two layers: the dependencies (3 GB with torch) in a venv cached per dependency list, shared
  # by every clone on the machine; and .venv, a thin venv per clone that sees those dependencies
  # and this clone's source. A clone never re-points another clone's `fedcommittee`.
  local deps
  deps=$(venv_dir)
  if [ ! -f "$deps/.complete" ]; then
    echo "    creating $deps (torch is large: the first time takes a few minutes)"
    rm -rf "$deps"
    python3 -m venv "$deps"
    "$deps/bin/pip" install "${pip_q[@]}" --upgrade pip
    "$deps/bin/python" - "$FC_ROOT/pyproject.toml" >"$deps/requirements.txt" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)["project"]
for dep in project["dependencies"] + project["optional-dependencies"]["dev"]:
    print(dep)
PY
    "$deps/bin/pip" install "${pip_q[@]}" --progress-bar on -r "$deps/requirements.txt"
    touch "$deps/.complete"
  fi
  local venv=$FC_ROOT/.venv site deps_site
  [ -L "$venv" ] && rm "$venv"
  [ -x "$venv/bin/python" ] || python3 -m venv --without-pip "$venv"
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
  deps_site=$("$deps/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
  # addsitedir (not a bare path) so the dependencies' own .pth files are processed too.
  printf 'import site; site.addsitedir(%s)\n' "'$deps_site'" >"$site/_fedcommittee_deps.pth"
  printf '%s\n' "$FC_ROOT" >"$site/_fedcommittee_src.pth"
  cat >"$venv/bin/fedcommittee" <<EOF
#!$venv/bin/python
import sys

from fedcommittee.cli import main

sys.exit(main())
EOF
  chmod +x "$venv/bin/fedcommittee"
  "$venv/bin/python" -c 'import fedcommittee, torch' \
    || die "the Python environment in $venv cannot import fedcommittee and torch"
  ok ".venv (dependencies: $deps, $("$venv/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
}

# build_once BIN DIR FAILURE [NOTE]: build the Go module in DIR into BIN unless BIN is there already
# (then say so and return 1). NOTE, where given, is said before building; FAILURE if the build fails.
# Called in an `||` list, where `set -e` does not reach: every step checks for itself.
build_once() {
  local bin=$1 dir=$2 failure=$3 note=${4:-}
  if [ -x "$bin" ]; then
    ok "cached: $bin"
    return 1
  fi
  [ -z "$note" ] || echo "    $note"
  mkdir -p "$(dirname "$bin")" || die "cannot create $(dirname "$bin")"
  go_build "$dir" "$bin.tmp" || die "$failure (see above)"
  mv "$bin.tmp" "$bin" || die "cannot move $bin.tmp to $bin"
}

build_kubo() {
  step "[4/6] Kubo $KUBO_VERSION (IPFS)"
  local bin
  bin=$(kubo_bin)
  # A wrapper module: go install refuses kubo >= v0.40 because its go.mod has exclude lines.
  build_once "$bin" "$FC_ROOT/network/kubo" "Kubo build failed" \
    "building from the Go module proxy (a few minutes the first time)" || return 0
  ok "built $bin ($("$bin" version))"
}

build_devledger() {
  step "[5/6] embedded ledger (network/devledger)"
  local bin
  bin=$(devledger_bin)
  build_once "$bin" "$FC_ROOT/network/devledger" "building the embedded ledger failed" || return 0
  ok "built $bin"
  # Each source change builds anew under a new key: drop other builds older than a week.
  find "$FC_CACHE" -maxdepth 1 -name 'devledger-*' ! -name "$(basename "$(dirname "$bin")")" -mtime +7 \
    -exec rm -rf {} + 2>/dev/null || true
}

build_fabric() {
  step "[6/6] Hyperledger Fabric $FABRIC_VERSION (${FABRIC_BINARIES[*]})"
  local home marker
  home=$(fabric_home)
  marker=$(fabric_unavailable_file)
  if [ -n "${FC_FABRIC_HOME:-}" ]; then
    fabric_ready || die "FC_FABRIC_HOME=$FC_FABRIC_HOME must hold bin/{${FABRIC_BINARIES[*]}} and config/{core,orderer}.yaml"
    ok "using FC_FABRIC_HOME=$FC_FABRIC_HOME ($("$(fabric_bin)/peer" version | sed -n 's/^ Version: //p'))"
    return
  fi
  if fabric_ready; then
    ok "cached: $home"
    return
  fi
  local pkgs=() b log moddir
  for b in "${FABRIC_BINARIES[@]}"; do pkgs+=("github.com/hyperledger/fabric/cmd/$b@$FABRIC_COMMIT"); done
  log=$(mktemp)
  echo "    building from the Go module proxy (several minutes the first time)"
  if GOBIN="$home/bin" go install -trimpath "${pkgs[@]}" >"$log" 2>&1 \
    && moddir=$(go mod download -json "github.com/hyperledger/fabric@$FABRIC_COMMIT" 2>>"$log" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'); then
    # The binaries read their defaults from the module's sampleconfig, as a release tarball ships them.
    mkdir -p "$home/config"
    cp "$moddir/sampleconfig/core.yaml" "$moddir/sampleconfig/orderer.yaml" "$home/config/"
    chmod -R u+w "$home/config"
    rm -f "$marker" "$log"
    ok "built into $home"
    return
  fi
  # Record why, so network.sh and the tests can say it precisely instead of failing obscurely.
  grep -m1 -E "403|not available|error|cannot" "$log" >"$marker" || tail -n1 "$log" >"$marker"
  rm -f "$log"
  ok "Fabric $FABRIC_VERSION is not served here ($(cat "$marker")): networks run on the embedded ledger; FC_FABRIC_HOME can name a Fabric release folder"
}

check_prerequisites
install_debian_packages
install_python_env
build_kubo
build_devledger
build_fabric
step "set-up finished in $(elapsed "$started")"
