#!/usr/bin/env bash
# The main job: set up, bring the local network up, and run the smoke path over it.
# (The full consortium demo replaces the smoke path once the Fabric network can run here.)
#
# Usage: scripts/run.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$FC_ROOT"

bash scripts/setup.sh
bash scripts/network.sh up
exec "$FC_ROOT/.venv/bin/fedcommittee" smoke
