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
bash scripts/setup.sh
bash scripts/network.sh up
"$FC_ROOT/.venv/bin/fedcommittee" smoke
exec "$FC_ROOT/.venv/bin/fedcommittee" run "$config"
