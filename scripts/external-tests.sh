#!/usr/bin/env bash
# External MCP clients through mcplane (two upstreams: server-everything over Streamable HTTP and
# `mcplane demo-server` over stdio): the official Python SDK (pytest, tests/external/) and the
# MCP Inspector CLI (tests/external/inspector.sh). The official `openai` and `anthropic` SDKs
# through mcplane's model face in front of `mcplane-mock-llm` (tests/external/test_llm_sdks.py).
# Usage: scripts/external-tests.sh [pytest args...]   (needs scripts/install-tools.sh, cargo build --bins)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.tools/venv/bin/python"
[[ -x "$PY" ]] || { echo "external-tests: run scripts/install-tools.sh first" >&2; exit 2; }

echo "== external: Python SDK (mcp $("$PY" -c 'import importlib.metadata as m; print(m.version("mcp"))')), openai and anthropic SDKs ($("$PY" -c 'import importlib.metadata as m; print(m.version("openai"), m.version("anthropic"))')) through mcplane"
"$PY" -m pytest tests/external -p no:cacheprovider -v -rfE "$@"

echo "== external: MCP Inspector CLI through mcplane"
tests/external/inspector.sh
