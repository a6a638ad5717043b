#!/usr/bin/env bash
# Sets up (idempotently) and runs every check: lint and format, Go vet and tests with coverage,
# Python unit tests, and integration tests against the real local network, which the pytest
# session brings up on its own ports and state directory and tears down afterwards.
#
# Usage: scripts/test.sh [extra pytest arguments]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$FC_ROOT"

started=$(now)
bash scripts/setup.sh --quiet
py=$FC_ROOT/.venv/bin/python

step "lint: ruff, gofmt, go vet"
"$py" -m ruff check .
"$py" -m ruff format --check .
go_dirs=()
for d in chaincode network/devledger network/kubo; do [ -f "$d/go.mod" ] && go_dirs+=("$d"); done
unformatted=$(gofmt -l "${go_dirs[@]}")
[ -z "$unformatted" ] || die "gofmt would change: $unformatted (run gofmt -w)"
for d in chaincode network/devledger; do
  (cd "$d" && go vet ./...)
done
ok "clean"

step "chaincode and embedded ledger: go test with coverage"
for d in chaincode network/devledger; do
  (cd "$d" && go test -count=1 -cover ./...)
done

step "python: unit and integration tests"
set +e
"$py" -m pytest tests "$@"
rc=$?
set -e
# pytest exits 5 when it collected nothing: that is a failure of the suite, say so plainly.
[ "$rc" = 5 ] && die "pytest collected no tests"
[ "$rc" = 0 ] || exit "$rc"
step "all checks passed in $(elapsed "$started")"
