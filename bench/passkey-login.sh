#!/usr/bin/env bash
# Passkey sign-in beside a password login and the bare axum floor, one client measuring
# all three in the same run (issue 17). Server on core 0, load generator on core 1,
# EdDSA tokens by default.
# Usage: [SIGNING_ALG=EdDSA] [CONNECTIONS=4] bench/passkey-login.sh [seconds]
# Needs release builds (with CARGO_TARGET_DIR set as for the build):
#   cargo build --release -p tenantry-cli
#   cargo build --release -p tenantry-server --example passkey_load --example hello_floor
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN="${TENANTRY_BIN:-$TARGET_DIR/release/tenantry}"
EXAMPLES="$TARGET_DIR/release/examples"
ROOT=$(mktemp -d)
PORT=18184
FLOOR_PORT=18185
BASE="http://127.0.0.1:$PORT"
trap 'kill $SERVER $FLOOR 2>/dev/null || true; rm -rf "$ROOT"' EXIT

# A browser takes no IP address as RP ID: the issuer is localhost. The load generator
# is trusted as a proxy, so each sign-in can name its own address (options are limited
# per address).
cat >"$ROOT/tenantry.toml" <<TOML
public_url = "http://localhost:$PORT"
trusted_proxies = ["127.0.0.1/32"]
TOML
RUST_LOG=warn taskset -c 0 "$BIN" serve --dev --config "$ROOT/tenantry.toml" --fs-root "$ROOT/root" \
  --listen 127.0.0.1:$PORT >"$ROOT/out.log" 2>&1 &
SERVER=$!
taskset -c 0 "$EXAMPLES/hello_floor" 127.0.0.1:$FLOOR_PORT &
FLOOR=$!
for _ in $(seq 1 50); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.2; done
TOKEN=$(cat "$ROOT/root/dev-admin-token")
admin() { curl -sf -X "$1" "$BASE$2" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' ${3:+-d "$3"}; }
ALG=${SIGNING_ALG:-EdDSA}
admin PATCH /v1/admin/tenants/local "{\"settings\":{\"security\":{\"login_attempts_per_ip_per_minute\":0},\"signing\":{\"id_token_alg\":\"$ALG\",\"access_token_alg\":\"$ALG\"}}}" >/dev/null
admin POST /v1/admin/tenants/local/users '{"email":"load@example.com","password":"load test password","email_verified":true}' >/dev/null

echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); tokens $ALG; ${CONNECTIONS:-4} connections; ${DURATION}s each"
taskset -c 1 "$EXAMPLES/passkey_load" "$BASE" local demo-spa load@example.com "load test password" \
  "http://localhost:$PORT" "${CONNECTIONS:-4}" "$DURATION" "http://127.0.0.1:$FLOOR_PORT/"
