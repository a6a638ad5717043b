#!/usr/bin/env bash
# The main job: set up, bring the local network up, prove it with the smoke path, then run the
# default consortium (configs/default.yaml: 3 orgs, 6 providers on skewed Fashion-MNIST, one
# committee member per org, a sign-flip attacker and a free rider) and write its report.
#
# Usage: scripts/run.sh [CONFIG]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$FC_ROOT"

config=${1:-configs/default.yaml}
network_started=0

# The network outlives this script on purpose (status, verify, report and dashboard query it), so
# its IPFS daemon and ledger keep running and holding their ports after the job. Say which nodes
# still run and how to stop them, loudest when the job stopped early and the user may not expect it.
say_network_left_up() {
  local rc=$? nodes
  [ "$network_started" = 1 ] || return 0
  nodes=$(bash scripts/network.sh status 2>/dev/null | awk -F: '$2 ~ /^ running/ { print $1 }' | xargs)
  [ -n "$nodes" ] || return 0
  if [ "$rc" != 0 ]; then
    warn "the main job stopped (exit $rc), but the local network is still up and holds its ports: $nodes"
    echo "    stop it with: scripts/network.sh down   (keeps reports and agent logs in reports/)" >&2
  else
    echo "The local network stays up for the fedcommittee commands (source .venv/bin/activate first);"
    echo "scripts/network.sh down stops it and keeps the report and agent logs in reports/."
  fi
}
trap say_network_left_up EXIT

bash scripts/setup.sh
network_started=1 # from here on, some of the network may be running, even if `up` fails half-way
bash scripts/network.sh up
"$FC_ROOT/.venv/bin/fedcommittee" smoke
# Not exec: the EXIT trap above must run after the job.
"$FC_ROOT/.venv/bin/fedcommittee" run "$config"
