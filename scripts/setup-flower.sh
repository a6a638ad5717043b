#!/usr/bin/env bash
# Installs Flower for the comparison benchmarks (benchmarks/flower/), beside the main environment.
#
# Flower 1.41 needs cryptography >= 50, which the Fabric client's pins do not allow, so it gets its
# own small virtual environment: flwr[simulation] (with Ray) from PyPI, layered over the main
# dependency environment for torch and the rest, and this clone's source. Idempotent; the first run
# takes about 30 s with a warm pip cache. Prints the interpreter to use on its last line.
#
# Usage: scripts/setup-flower.sh [--quiet]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

FLWR_VERSION=1.41.0
quiet=0
[ "${1:-}" = "--quiet" ] && quiet=1

bash "$FC_ROOT/scripts/setup.sh" --quiet >/dev/null || die "scripts/setup.sh failed: run it to see why"
deps=$(venv_dir)
pyver=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
flower=$FC_CACHE/flower-$FLWR_VERSION-py$pyver
if [ ! -f "$flower/.complete" ]; then
  [ "$quiet" = 1 ] || echo "==> installing flwr[simulation]==$FLWR_VERSION into $flower"
  rm -rf "$flower"
  python3 -m venv "$flower"
  "$flower/bin/pip" install -q --upgrade pip
  # protobuf stays on the 5.x line the main environment uses (Flower accepts 5.28-6.x).
  "$flower/bin/pip" install -q "flwr[simulation]==$FLWR_VERSION" "protobuf>=5.28,<6"
  touch "$flower/.complete"
fi
site=$("$flower/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
deps_site=$("$deps/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
# addsitedir appends, so Flower's own packages (cryptography 50) win over the main environment's.
printf 'import site; site.addsitedir(%s)\n' "'$deps_site'" >"$site/zz_fedcommittee_deps.pth"
printf '%s\n' "$FC_ROOT" >"$site/zz_fedcommittee_src.pth"
"$flower/bin/python" -c 'import flwr, torch, fedcommittee.ml' \
  || die "$flower cannot import flwr, torch and fedcommittee.ml"
echo "$flower/bin/python"
