#!/usr/bin/env bash
# Login throughput against the bare Argon2id rate, and behaviour at 2x saturation
# (issue 6). Server on core 0 (one hashing worker), load generator on core 1.
# Usage: [SIGNING_ALG=EdDSA] [PASSWORD_HASH='{"memory_kib":1024,"iterations":1}'] bench/login-load.sh [seconds]
#   (default 15 s; tokens RS256 unless set; PASSWORD_HASH sets the tenant's Argon2id
#   parameters, e.g. the cheapest allowed to measure what a login costs besides the hash)
# Needs release builds (with CARGO_TARGET_DIR set as for the build):
#   cargo build --release -p tenantry-cli && cargo build --release -p tenantry-server --example login_load
# The bare rate: taskset -c 0 cargo bench -p tenantry-server --bench argon2
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN="${TENANTRY_BIN:-$TARGET_DIR/release/tenantry}"
LOAD="$TARGET_DIR/release/examples/login_load"
ROOT=$(mktemp -d)
PORT=18183
BASE="http://127.0.0.1:$PORT"
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$ROOT"' EXIT

RUST_LOG=warn taskset -c 0 "$BIN" serve --dev --fs-root "$ROOT/root" --listen 127.0.0.1:$PORT >"$ROOT/out.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 50); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.2; done
TOKEN=$(cat "$ROOT/root/dev-admin-token")
admin() { curl -sf -X "$1" "$BASE$2" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' ${3:+-d "$3"}; }
# The load comes from one address: the per-IP login limit is turned off for the run.
ALG=${SIGNING_ALG:-RS256}
HASH=${PASSWORD_HASH:+,\"password_hash\":$PASSWORD_HASH}
admin PATCH /v1/admin/tenants/local "{\"settings\":{\"security\":{\"login_attempts_per_ip_per_minute\":0$HASH},\"signing\":{\"id_token_alg\":\"$ALG\",\"access_token_alg\":\"$ALG\"}}}" >/dev/null
admin POST /v1/admin/tenants/local/users '{"email":"load@example.com","password":"load test password","email_verified":true}' >/dev/null

echo "== saturated (closed loop, 4 connections)"
OUT=$(taskset -c 1 "$LOAD" "$BASE" local demo-spa load@example.com "load test password" closed 4 "$DURATION")
echo "$OUT"
RATE=$(echo "$OUT" | awk '/^status 200/ {split($0,a,"= "); split(a[2],b,"/"); print int(b[1])}')
echo "== 2x saturation (open loop, $((RATE * 2))/s)"
taskset -c 1 "$LOAD" "$BASE" local demo-spa load@example.com "load test password" open $((RATE * 2)) "$DURATION"
