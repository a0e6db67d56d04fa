#!/usr/bin/env bash
# mcplane benchmark: MCP `tools/call` round trips directly to an upstream, through mcplane, and
# through two peers (IBM ContextForge, npm mcp-proxy) on the same upstream, in one run.
# See bench/RESULTS.md for the method and the last results. Not a test: never run from CI.
#
#   bench/run.sh                      # build mcplane (work tree), install what is missing, run
#   BENCH_REV=HEAD bench/run.sh       # benchmark a committed revision (exported and built in bench/out/)
#
# Knobs (environment): BENCH_ROUNDS (3), BENCH_DURATION (10 s per saturation and c=1 run),
# BENCH_PACED_DURATION (5), BENCH_PACED_DELAY_MS (1), BENCH_THREADS (2), BENCH_CONNECTIONS (32),
# BENCH_WARMUP (3), BENCH_IDLE_SESSIONS (1000), BENCH_UPSTREAMS (fast,reference),
# BENCH_SKIP (comma list of: mcplane, contextforge, mcplane-stdio, mcp-proxy),
# BENCH_MAX_LOAD (0.5), BENCH_QUIET_TRIES (10), BENCH_QUIET_INTERVAL (30 s): before measuring,
# wait until the 1-minute load average is below BENCH_MAX_LOAD (the machine is shared; other
# builds make noise), then run anyway and record the load.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
PEERS="$BENCH/.peers"
OUT="$BENCH/out"
CONTEXTFORGE_VERSION="1.0.7.post20260921"
MCP_PROXY_VERSION="6.7.19"

log() { printf '[run.sh] %s\n' "$*" >&2; }
mkdir -p "$OUT" "$PEERS"

# --- wrk (Debian package) ---------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
  log "installing wrk"
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi

# --- mcplane (release build) -----------------------------------------------------------------
if [[ -n "${BENCH_REV:-}" ]]; then
  rev="$(git -C "$ROOT" rev-parse --short "$BENCH_REV")"
  src="$OUT/src-$rev"
  if [[ ! -f "$src/Cargo.toml" ]]; then
    log "exporting $rev to bench/out/src-$rev"
    rm -rf "$src" && mkdir -p "$src"
    git -C "$ROOT" archive "$rev" | tar -x -C "$src"
  fi
  log "cargo build --release (revision $rev)"
  (cd "$src" && CARGO_TARGET_DIR="$OUT/target" cargo build --release --locked --bin mcplane)
  export BENCH_MCPLANE="$OUT/target/release/mcplane"
  export BENCH_MCPLANE_REV="$rev"
  export BENCH_MCPLANE_SOURCE="committed revision $rev"
else
  log "cargo build --release --bin mcplane (work tree)"
  (cd "$ROOT" && cargo build --release --bin mcplane)
  export BENCH_MCPLANE="$ROOT/target/release/mcplane"
  rev="$(git -C "$ROOT" rev-parse --short HEAD)"
  if [[ -n "$(git -C "$ROOT" status --porcelain -- crates Cargo.toml Cargo.lock)" ]]; then
    export BENCH_MCPLANE_SOURCE="work tree at $rev with uncommitted changes"
  else
    export BENCH_MCPLANE_SOURCE="work tree at $rev (clean)"
  fi
  export BENCH_MCPLANE_REV="$rev"
fi

# --- the reference server (.tools, shared with the test suite) -------------------------------
if [[ ! -f "$ROOT/.tools/node_modules/@modelcontextprotocol/server-everything/dist/index.js" ]]; then
  log "installing .tools (scripts/install-tools.sh)"
  "$ROOT/scripts/install-tools.sh"
fi

# --- peers, into bench/.peers (git-ignored) ---------------------------------------------------
if ! "$PEERS/contextforge/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('mcp-contextforge-gateway') != '$CONTEXTFORGE_VERSION')" 2>/dev/null; then
  log "installing ContextForge $CONTEXTFORGE_VERSION (PyPI mcp-contextforge-gateway) into bench/.peers/contextforge"
  python3 -m venv "$PEERS/contextforge"
  "$PEERS/contextforge/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    "mcp-contextforge-gateway==$CONTEXTFORGE_VERSION"
fi
if [[ "$(node -p "require('$PEERS/npm/node_modules/mcp-proxy/package.json').version" 2>/dev/null)" != "$MCP_PROXY_VERSION" ]]; then
  log "installing mcp-proxy $MCP_PROXY_VERSION (npm) into bench/.peers/npm"
  mkdir -p "$PEERS/npm"
  [[ -f "$PEERS/npm/package.json" ]] || echo '{"name":"mcplane-bench-peers","private":true}' > "$PEERS/npm/package.json"
  (cd "$PEERS/npm" && npm install --no-audit --no-fund --loglevel=error "mcp-proxy@$MCP_PROXY_VERSION")
fi

# --- wait for a quiet machine -----------------------------------------------------------------
max_load="${BENCH_MAX_LOAD:-0.5}"
tries="${BENCH_QUIET_TRIES:-10}"
interval="${BENCH_QUIET_INTERVAL:-30}"
samples=()
for ((i = 1; i <= tries; i++)); do
  load="$(cut -d' ' -f1 /proc/loadavg)"
  samples+=("$load")
  if awk -v l="$load" -v m="$max_load" 'BEGIN { exit !(l < m) }'; then
    log "machine quiet enough (load $load < $max_load)"
    break
  fi
  log "load $load >= $max_load (try $i/$tries); busiest processes:"
  ps -eo pcpu=,comm= --sort=-pcpu | head -3 | sed 's/^/[run.sh]    /' >&2
  if ((i == tries)); then
    log "still busy after $tries tries; measuring anyway (the load is recorded)"
  else
    sleep "$interval"
  fi
done
export BENCH_QUIET_LOG="{\"max_load\": $max_load, \"samples\": [$(IFS=,; echo "${samples[*]}")]}"

log "uptime: $(uptime)"
exec python3 "$BENCH/bench.py" "$@"
