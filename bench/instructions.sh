#!/usr/bin/env bash
# Instructions per request of the hot OIDC endpoints, counted by callgrind on a release
# build. Unlike req/s these counts repeat to a fraction of a percent on a shared or noisy
# machine, so two builds can be compared closely (wrk's figures move by ±20 % here).
#
# Usage: bench/instructions.sh [BINARY] [REQUESTS]
#   BINARY    default ${CARGO_TARGET_DIR:-target}/release/tenantry
#   REQUESTS  per endpoint, default 300, over one keep-alive connection (curl)
# Needs: valgrind (callgrind_control), curl, python3.
#
# The installation (keys, clients) is made by a normal start first, so key generation is
# not counted; the server is then started under callgrind with instrumentation off, and each
# endpoint's requests are counted alone (instrumentation on, requests, off, dump).
set -euo pipefail
BIN=${1:-${CARGO_TARGET_DIR:-target}/release/tenantry}
N=${2:-300}
ROOT=$(mktemp -d)
PORT=${PORT:-18191}
BASE="http://127.0.0.1:$PORT"
SERVER=
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; wait 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$ROOT"' EXIT

start() { # [valgrind args...]
  RUST_LOG=warn "$@" "$BIN" serve --dev --fs-root "$ROOT/root" --listen "127.0.0.1:$PORT" >>"$ROOT/out.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 600); do curl -sf "$BASE/healthz" >/dev/null && return; sleep 0.2; done
  echo "the server did not start" >&2; cat "$ROOT/out.log" >&2; exit 1
}
stop() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# 1. The installation and the clients, outside callgrind.
start
TOKEN=$(cat "$ROOT/root/dev-admin-token")
declare -A BASIC
for ALG in ES256 EdDSA RS256; do
  ID="cc-$(echo $ALG | tr 'A-Z' 'a-z')"
  SECRET=$(curl -sf -X POST "$BASE/v1/admin/tenants/local/clients" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' \
    -d "{\"client_id\":\"$ID\",\"name\":\"$ID\",\"grant_types\":[\"client_credentials\"],\"scopes\":[\"api\"],\"access_token_signed_response_alg\":\"$ALG\"}" \
    | json '["client_secret"]')
  BASIC[$ALG]=$(printf '%s:%s' "$ID" "$SECRET" | base64 -w0)
done
stop

# 2. The same installation under callgrind.
start valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$ROOT/cg.out"
AT=$(curl -sf -X POST "$BASE/t/local/token" -H "Authorization: Basic ${BASIC[ES256]}" -d grant_type=client_credentials \
  | json '["access_token"]')

urls() { for _ in $(seq 1 "$N"); do printf 'url = "%s"\noutput = "/dev/null"\n' "$BASE$1"; done; }
measure() { # name, path, [curl args...]: N requests on one connection
  local name=$1 path=$2
  shift 2
  callgrind_control --zero "$SERVER" >/dev/null 2>&1
  callgrind_control --instr=on "$SERVER" >/dev/null 2>&1
  urls "$path" | curl -sf --config - "$@"
  callgrind_control --instr=off "$SERVER" >/dev/null 2>&1
  callgrind_control --dump "$SERVER" >/dev/null 2>&1
  local dump total
  dump=$(ls -t "$ROOT"/cg.out* | head -1)
  total=$(grep -m1 '^totals:' "$dump" | awk '{print $2}')
  printf '%-32s %12d instructions/request\n' "$name" $((total / N))
}

measure "GET /healthz (floor)" /healthz
measure "GET discovery" /t/local/.well-known/openid-configuration
measure "GET JWKS" /t/local/jwks.json
for ALG in ES256 EdDSA RS256; do
  measure "client_credentials $ALG" /t/local/token -H "Authorization: Basic ${BASIC[$ALG]}" -d grant_type=client_credentials
done
measure "introspection (ES256 JWT)" /t/local/introspect -H "Authorization: Basic ${BASIC[ES256]}" -d "token=$AT"
stop
