#!/usr/bin/env bash
# What a sign-in through an upstream provider costs on Tenantry's side (issue 16), on a
# release build: the server on core 0; on core 1 the load (examples/upstream_login.rs)
# with its in-process stand-in provider, which answers from memory, so the legs measured
# are the server's. Returning users (their linked account) and new ones (an account made
# at their first sign-in), one at a time and 16 at a time; the stand-in counts the
# discovery documents and JWKS the server fetched (its cache: one each per run). The
# floor, measured in the same run: a bare axum answer (wrk, 1 and 16 connections).
#
#   bench/upstream-login.sh [sign-ins]     (default 2000 per run)
#
# Needs: wrk, curl, and release builds:
#   cargo build --release -p tenantry-cli
#   cargo build --release -p tenantry-server --example hello_floor --example upstream_login
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-2000}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=${TENANTRY_BIN:-$TARGET_DIR/release/tenantry}
EXAMPLES="$TARGET_DIR/release/examples"
ROOT=$(mktemp -d)
PORT=18181
FLOOR_PORT=18180
BASE="http://127.0.0.1:$PORT"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$ROOT"
}
trap cleanup EXIT

echo "== floor: bare axum hello"
taskset -c 0 "$EXAMPLES/hello_floor" 127.0.0.1:$FLOOR_PORT &
PIDS+=("$!")
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$FLOOR_PORT/" >/dev/null && break; sleep 0.1; done
for C in 1 16; do
  echo "-- $C connection(s)"
  taskset -c 1 wrk -t1 -c$C -d5s --latency "http://127.0.0.1:$FLOOR_PORT/" | grep -E "Requests/sec|  50%|  99%"
done

# The stand-in is on loopback: the server's outbound policy must allow it.
TENANTRY_OUTBOUND_ALLOW_PRIVATE_NETWORKS=true RUST_LOG=warn taskset -c 0 "$BIN" serve --dev \
  --fs-root "$ROOT/root" --listen 127.0.0.1:$PORT >"$ROOT/out.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
for _ in $(seq 1 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.2; done
TOKEN=$(cat "$ROOT/root/dev-admin-token")

for MODE in returning new; do
  for C in 1 16; do
    echo "== $MODE users, $C at a time"
    taskset -c 1 "$EXAMPLES/upstream_login" "$BASE" "$TOKEN" "$MODE" "$C" "$COUNT" "$SERVER"
  done
done
