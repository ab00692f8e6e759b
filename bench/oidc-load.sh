#!/usr/bin/env bash
# Load test of the OIDC endpoints on a release build: server on core 0, wrk on core 1,
# keep-alive, 2 connections. Usage: bench/oidc-load.sh [seconds]   (default 10)
# Needs: wrk, curl, python3, and release builds:
#   cargo build --release -p tenantry-cli && cargo build --release -p tenantry-server --example refresh_load
# TENANTRY_BENCH_POSTGRES_DSN (a fresh database) adds the PostgreSQL refresh run.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN="$TARGET_DIR/release/tenantry"
ROOT=$(mktemp -d)
PORT=18181
BASE="http://127.0.0.1:$PORT"
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$ROOT"' EXIT

RUST_LOG=warn taskset -c 0 "$BIN" serve --dev --fs-root "$ROOT/root" --listen 127.0.0.1:$PORT >"$ROOT/out.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 50); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.2; done
TOKEN=$(cat "$ROOT/root/dev-admin-token")

admin() { curl -sf -X "$1" "$BASE$2" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' ${3:+-d "$3"}; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

run() { # name, endpoint, form, basic
  echo "== $1"
  FORM="$3" BASIC="$4" taskset -c 1 wrk -t1 -c2 -d"${DURATION}s" --latency -s bench/form-post.lua "$BASE$2" \
    | grep -E "Requests/sec|  50%|  99%|non-200"
}

for ALG in ES256 EdDSA RS256; do
  ID="cc-$(echo $ALG | tr 'A-Z' 'a-z')"
  SECRET=$(admin POST /v1/admin/tenants/local/clients \
    "{\"client_id\":\"$ID\",\"name\":\"$ID\",\"grant_types\":[\"client_credentials\"],\"scopes\":[\"api\"],\"access_token_signed_response_alg\":\"$ALG\"}" \
    | json '["client_secret"]')
  BASIC=$(printf '%s:%s' "$ID" "$SECRET" | base64 -w0)
  run "client_credentials $ALG" /t/local/token "grant_type=client_credentials" "$BASIC"
  if [ "$ALG" = "ES256" ]; then ES_BASIC=$BASIC; fi
done

AT=$(curl -sf -X POST "$BASE/t/local/token" -H "Authorization: Basic $ES_BASIC" -d grant_type=client_credentials | json '["access_token"]')
run "introspection (ES256 JWT)" /t/local/introspect "token=$AT" "$ES_BASIC"

for path in /t/local/.well-known/openid-configuration /t/local/jwks.json; do
  echo "== GET $path"
  taskset -c 1 wrk -t1 -c2 -d"${DURATION}s" --latency "$BASE$path" | grep -E "Requests/sec|  50%|  99%|Non-2xx"
done

# Refresh rotation: each connection logs in once, then rotates its own token chain.
DEMO_PASSWORD=$(grep -o 'demo@example.com / [^ ]*' "$ROOT/out.log" | awk '{print $3}')
LOAD="$TARGET_DIR/release/examples/refresh_load"
echo "== refresh rotation (SQLite, tenant default RS256)"
taskset -c 1 "$LOAD" "$BASE" local demo-spa demo@example.com "$DEMO_PASSWORD" 2 "$DURATION"
admin PATCH /v1/admin/tenants/local '{"settings":{"signing":{"id_token_alg":"EdDSA","access_token_alg":"EdDSA"}}}' >/dev/null
echo "== refresh rotation (SQLite, tenant on EdDSA)"
taskset -c 1 "$LOAD" "$BASE" local demo-spa demo@example.com "$DEMO_PASSWORD" 2 "$DURATION"
if [ -n "${TENANTRY_BENCH_POSTGRES_DSN:-}" ]; then
  admin POST /v1/admin/tenants "{\"slug\":\"pg\",\"settings\":{\"user_db\":{\"driver\":\"postgres\",\"dsn\":\"$TENANTRY_BENCH_POSTGRES_DSN\"}}}" >/dev/null
  admin POST /v1/admin/tenants/pg/clients '{"client_id":"spa","name":"SPA","client_type":"public","first_party":true,"redirect_uris":["http://localhost:3000/callback"],"scopes":["openid"]}' >/dev/null
  admin POST /v1/admin/tenants/pg/users '{"email":"load@example.com","password":"load test password"}' >/dev/null
  echo "== refresh rotation (PostgreSQL)"
  taskset -c 1 "$LOAD" "$BASE" pg spa load@example.com "load test password" 2 "$DURATION"
fi
