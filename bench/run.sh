#!/usr/bin/env bash
# mcplane benchmark: MCP `tools/call` round trips directly to an upstream, through mcplane, and
# through two peers (IBM ContextForge, npm mcp-proxy) on the same upstream, in one run.
# See bench/RESULTS.md for the method and the last results. Not a test: never run from CI.
#
#   bench/run.sh                      # build mcplane (work tree), install what is missing, run
#   BENCH_REV=HEAD bench/run.sh       # benchmark a committed revision (exported and built in bench/out/)
#   bench/run.sh lists                # merged tools/list across 1, 10, 50 upstreams, cached and uncached (bench/lists.py)
#
# Knobs (environment): BENCH_ROUNDS (3), BENCH_DURATION (10 s per saturation and c=1 run),
# BENCH_PACED_DURATION (5), BENCH_PACED_DELAY_MS (1), BENCH_THREADS (2), BENCH_CONNECTIONS (32),
# BENCH_WARMUP (3), BENCH_IDLE_SESSIONS (1000), BENCH_UPSTREAMS (fast,reference),
# BENCH_SKIP (comma list of: mcplane, contextforge, mcplane-stdio, mcp-proxy),
# BENCH_MAX_BUSY (10 %), BENCH_QUIET_TRIES (10), BENCH_QUIET_INTERVAL (30 s): before measuring,
# wait until the CPUs are nearly idle (the machine is shared; other builds make noise), then run
# anyway after the last try; the load is recorded either way. Then, before each path:
# BENCH_GATE_BUSY (10 %), BENCH_GATE_MAX_WAIT (90 s) wait for idle CPUs again; and a path whose
# saturation or c=1 run saw other processes use more than BENCH_MAX_FOREIGN (15) % of the
# machine is measured again, up to BENCH_MAX_ATTEMPTS (3) times.
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
# Quiet = the CPUs were less than BENCH_MAX_BUSY % busy over a 5 s sample (from /proc/stat; the
# load average alone stays high for a minute after a build and counts idle kernel threads here).
max_busy="${BENCH_MAX_BUSY:-10}"
tries="${BENCH_QUIET_TRIES:-10}"
interval="${BENCH_QUIET_INTERVAL:-30}"
cpu_busy() {  # percent of CPU time not idle over 5 s
  local a b c d e f g h t1 i1 t2 i2
  read -r _ a b c d e f g h _ < /proc/stat; t1=$((a+b+c+d+e+f+g+h)); i1=$((d+e))
  sleep 5
  read -r _ a b c d e f g h _ < /proc/stat; t2=$((a+b+c+d+e+f+g+h)); i2=$((d+e))
  echo $(( 100 * ((t2 - t1) - (i2 - i1)) / (t2 - t1) ))
}
samples=()
for ((i = 1; i <= tries; i++)); do
  busy="$(cpu_busy)"
  load="$(cut -d' ' -f1 /proc/loadavg)"
  samples+=("{\"busy_pct\": $busy, \"load1\": $load}")
  if ((busy < max_busy)); then
    log "machine quiet enough (CPU ${busy}% busy < ${max_busy}%, load $load)"
    break
  fi
  log "CPU ${busy}% busy >= ${max_busy}%, load $load (try $i/$tries); busiest processes:"
  ps -eo pcpu=,comm= --sort=-pcpu | head -3 | sed 's/^/[run.sh]    /' >&2
  if ((i == tries)); then
    log "still busy after $tries tries; measuring anyway (the load is recorded)"
  else
    sleep "$interval"
  fi
done
export BENCH_QUIET_LOG="{\"max_busy_pct\": $max_busy, \"samples\": [$(IFS=,; echo "${samples[*]}")]}"

log "uptime: $(uptime)"
case "${1:-}" in
  lists) shift; exec python3 "$BENCH/lists.py" "$@" ;;   # tools/list across 1/10/50 upstreams
  *) exec python3 "$BENCH/bench.py" "$@" ;;
esac
