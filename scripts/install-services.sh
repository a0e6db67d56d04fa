#!/usr/bin/env bash
# Installs the servers mcplane's tests start on loopback (from Debian's packages, when missing):
#   redis-server   rate-limit counters shared by replicas (crates/mcplane-counters/tests/redis.rs)
#   postgresql     the store on PostgreSQL (crates/mcplane-store/tests/store.rs); tests run
#                  their own throwaway clusters with the server binaries (initdb, postgres)
# Tests start and stop their own throwaway instances; nothing here runs a server.
# Needs apt-get and root when something is missing; does nothing when everything is there.
set -euo pipefail

log() { printf 'install-services: %s\n' "$*" >&2; }

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)

if [[ ${#missing[@]} -eq 0 ]]; then
  log "all present"
  exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  log "missing ${missing[*]}: install them (Debian: apt-get install ${missing[*]}) or set MCPLANE_REQUIRE_REDIS=0 / MCPLANE_REQUIRE_POSTGRES=0 to skip those tests"
  exit 1
fi
log "installing ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
  apt-get update >/dev/null
  apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
}
log "installed ${missing[*]}"
