#!/usr/bin/env bash
# mcplane's one test command (README, CI): everything, in order, stopping at the first failure.
#
#   0. scripts/install-services.sh                servers tests start themselves (redis-server,
#                                                 postgresql; apt)
#   1. cargo test --workspace --locked            unit + end-to-end tests (MCPLANE_REQUIRE_REDIS=1,
#                                                 MCPLANE_REQUIRE_POSTGRES=1: those tests fail rather than skip)
#   2. scripts/install-tools.sh                   external tools into .tools/ (npm, PyPI; cached)
#   3. cargo build --locked --bins                target/debug/mcplane, target/debug/mcplane-fixture
#   4. scripts/conformance.sh                     MCP conformance suite: direct, through mcplane
#                                                 (server-everything; our fixture); results in conformance/results/
#   5. scripts/external-tests.sh                  Python SDK (pytest) + Inspector CLI through mcplane
#
# Usage: scripts/test.sh [--skip-cargo-test]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

skip_cargo_test=0
for arg in "$@"; do
  case "$arg" in
    --skip-cargo-test) skip_cargo_test=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

STEPS=()
START=$SECONDS
summary() {
  local rc=$?
  echo
  echo "================ scripts/test.sh summary ================"
  local s
  for s in "${STEPS[@]}"; do echo "  $s"; done
  if [[ $rc -eq 0 ]]; then
    echo "  ALL PASSED in $((SECONDS - START))s"
  else
    echo "  FAILED (exit $rc) after $((SECONDS - START))s"
  fi
  echo "=========================================================="
}
trap summary EXIT

step() {  # step NAME CMD...
  local name="$1"; shift
  local t0=$SECONDS rc=0
  echo
  echo "################ $name: $*"
  "$@" || rc=$?
  if [[ $rc -ne 0 ]]; then
    STEPS+=("FAIL  $name ($((SECONDS - t0))s, exit $rc)")
    exit "$rc"
  fi
  STEPS+=("ok    $name ($((SECONDS - t0))s)")
}

if [[ $skip_cargo_test -eq 0 ]]; then
  step "install services" scripts/install-services.sh
  export MCPLANE_REQUIRE_REDIS="${MCPLANE_REQUIRE_REDIS:-1}"
  export MCPLANE_REQUIRE_POSTGRES="${MCPLANE_REQUIRE_POSTGRES:-1}"
  step "cargo test" cargo test --workspace --locked
fi
step "install tools" scripts/install-tools.sh
step "build binaries" cargo build --locked --bins
step "conformance" scripts/conformance.sh
step "external clients" scripts/external-tests.sh
