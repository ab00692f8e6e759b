#!/usr/bin/env bash
# Load at real concurrency, on a release build: the server on core 0, the load on core 1.
# Each endpoint at 2 and at 64 keep-alive connections, with the server's CPU time per
# request (all its threads, ended ones included: utime + stime of /proc/<pid>/stat), beside a bare axum "hello"
# measured in the same run (the floor of the HTTP stack on this machine); refresh rotation
# on SQLite and PostgreSQL; then the mixed workload (examples/mixed_load.rs) on both.
#
#   bench/concurrency.sh [seconds]        (default 10 per run)
#   PARTS="endpoints refresh" bench/concurrency.sh 10   (a subset of: endpoints refresh mixed)
#
# Needs: wrk, curl, python3, psql for the PostgreSQL runs, and release builds:
#   cargo build --release -p tenantry-cli
#   cargo build --release -p tenantry-server --example hello_floor --example refresh_load --example mixed_load
# TENANTRY_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres) is the
# server the PostgreSQL tenants get fresh databases on; set it empty to skip them.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUST_BACKTRACE=0
DURATION=${1:-10}
PARTS=${PARTS:-endpoints refresh mixed}
part() { [[ " $PARTS " == *" $1 "* ]]; }
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=${TENANTRY_BIN:-$TARGET_DIR/release/tenantry}  # another build of the server, for an A/B run
EXAMPLES="$TARGET_DIR/release/examples"
PG_URL=${TENANTRY_BENCH_POSTGRES_URL-postgres://postgres@127.0.0.1:5432/postgres}
ROOT=$(mktemp -d)
PORT=18181
FLOOR_PORT=18180
BASE="http://127.0.0.1:$PORT"
PIDS=()
DATABASES=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for db in "${DATABASES[@]}"; do psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
  rm -rf "$ROOT"
}
trap cleanup EXIT

cpu_ns() { # pid: nanoseconds on a CPU, all threads, ended ones included (utime + stime in ticks)
  awk -v hz="$(getconf CLK_TCK)" '{sub(/.*\) /, ""); printf "%d", ($12 + $13) * 1e9 / hz}' /proc/"$1"/stat
}
user_ns() { # pid: the user-space part of cpu_ns (utime). The kernel's part is mostly TCP and
  # waking the load generator, whose cost differs from host to host (docs/benchmarks.md).
  awk -v hz="$(getconf CLK_TCK)" '{sub(/.*\) /, ""); printf "%d", $12 * 1e9 / hz}' /proc/"$1"/stat
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; $(date -u +%F)"
printf '%-38s %5s %10s %9s %9s %12s %10s\n' "endpoint" "conns" "req/s" "p50" "p99" "CPU µs/req" "user µs"

measure() { # label, server pid, connections, wrk arguments...
  local label=$1 pid=$2 conns=$3
  shift 3
  local before after user_before user_after out requests
  before=$(cpu_ns "$pid")
  user_before=$(user_ns "$pid")
  out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${DURATION}s" --latency "$@")
  after=$(cpu_ns "$pid")
  user_after=$(user_ns "$pid")
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  if echo "$out" | grep -qE "Non-2xx|non-200 answers: [1-9]"; then
    echo "!! $label: failed answers" >&2
    echo "$out" >&2
  fi
  printf '%-38s %5s %10s %9s %9s %12.1f %10.1f\n' "$label" "$conns" \
    "$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')" \
    "$(echo "$out" | awk '$1 == "50%" {print $2}')" \
    "$(echo "$out" | awk '$1 == "99%" {print $2}')" \
    "$(echo "$before $after $requests" | awk '{printf "%.1f", ($2 - $1) / 1000 / $3}')" \
    "$(echo "$user_before $user_after $requests" | awk '{printf "%.1f", ($2 - $1) / 1000 / $3}')"
}

both() { # label, pid, wrk arguments...
  local label=$1 pid=$2
  shift 2
  measure "$label" "$pid" 2 "$@"
  measure "$label" "$pid" 64 "$@"
}

# The floor.
taskset -c 0 "$EXAMPLES/hello_floor" 127.0.0.1:$FLOOR_PORT &
FLOOR=$!
PIDS+=("$FLOOR")
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$FLOOR_PORT/" >/dev/null && break; sleep 0.1; done
both "bare axum hello (floor)" "$FLOOR" "http://127.0.0.1:$FLOOR_PORT/"
kill "$FLOOR"

RUST_LOG=warn taskset -c 0 "$BIN" serve --dev --fs-root "$ROOT/root" --listen 127.0.0.1:$PORT >"$ROOT/out.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
for _ in $(seq 1 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.2; done
TOKEN=$(cat "$ROOT/root/dev-admin-token")
admin() { curl -sf -X "$1" "$BASE$2" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' ${3:+-d "$3"}; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

if part endpoints; then
  both "discovery" "$SERVER" "$BASE/t/local/.well-known/openid-configuration"
  both "JWKS" "$SERVER" "$BASE/t/local/jwks.json"

  for ALG in EdDSA ES256; do
    ID="cc-$(echo $ALG | tr 'A-Z' 'a-z')"
    SECRET=$(admin POST /v1/admin/tenants/local/clients \
      "{\"client_id\":\"$ID\",\"name\":\"$ID\",\"grant_types\":[\"client_credentials\"],\"scopes\":[\"api\"],\"access_token_signed_response_alg\":\"$ALG\"}" \
      | json '["client_secret"]')
    BASIC=$(printf '%s:%s' "$ID" "$SECRET" | base64 -w0)
    FORM="grant_type=client_credentials" BASIC="$BASIC" both "client_credentials $ALG" "$SERVER" -s bench/form-post.lua "$BASE/t/local/token"
    if [ "$ALG" = "EdDSA" ]; then ED_BASIC=$BASIC; fi
  done
  AT=$(curl -sf -X POST "$BASE/t/local/token" -H "Authorization: Basic $ED_BASIC" -d grant_type=client_credentials | json '["access_token"]')
  FORM="token=$AT" BASIC="$ED_BASIC" both "introspection (EdDSA JWT)" "$SERVER" -s bench/form-post.lua "$BASE/t/local/introspect"
fi

refresh() { # label, slug, client, email, password
  for conns in 2 64; do
    local line
    # The example counts the server's CPU over the rotations only, not the logins before.
    line=$(taskset -c 1 "$EXAMPLES/refresh_load" "$BASE" "$2" "$3" "$4" "$5" "$conns" "$DURATION" "$SERVER")
    # "refresh rotations: N in 10s = R/s, p50 X, p99 Y, server CPU Z µs per rotation"
    echo "$line" | awk -v label="$1" -v conns="$conns" '{
      rate = $7; sub("/s,", "", rate); p50 = $9; sub(",", "", p50); p99 = $11; sub(",", "", p99);
      printf "%-38s %5s %10.0f %9s %9s %12s\n", label, conns, rate, p50, p99, $14 }'
  done
}

# 64 connections sign in at once from one address: lift the per-address login limit.
NO_IP_LIMIT='"security":{"login_attempts_per_ip_per_minute":0}'
admin PATCH /v1/admin/tenants/local "{\"settings\":{$NO_IP_LIMIT,\"signing\":{\"id_token_alg\":\"EdDSA\",\"access_token_alg\":\"EdDSA\"}}}" >/dev/null
DEMO_PASSWORD=$(grep -o 'demo@example.com / [^ ]*' "$ROOT/out.log" | awk '{print $3}')
if part refresh; then
  refresh "refresh rotation, SQLite, EdDSA" local demo-spa demo@example.com "$DEMO_PASSWORD"
fi

pg_tenant() { # slug: a tenant on a fresh PostgreSQL database
  local db="tenantry_bench_$1_$$"
  psql "$PG_URL" -qc "CREATE DATABASE $db" >/dev/null
  DATABASES+=("$db")
  local dsn="${PG_URL%/*}/$db"
  admin POST /v1/admin/tenants "{\"slug\":\"$1\",\"settings\":{$NO_IP_LIMIT,\"user_db\":{\"driver\":\"postgres\",\"dsn\":\"$dsn\"},\"signing\":{\"id_token_alg\":\"EdDSA\",\"access_token_alg\":\"EdDSA\"}}}" >/dev/null
}

if [ -n "$PG_URL" ] && part refresh; then
  pg_tenant pg
  admin POST /v1/admin/tenants/pg/clients '{"client_id":"spa","name":"SPA","client_type":"public","first_party":true,"redirect_uris":["http://localhost:3000/callback"],"scopes":["openid"]}' >/dev/null
  admin POST /v1/admin/tenants/pg/users '{"email":"load@example.com","password":"load test password"}' >/dev/null
  refresh "refresh rotation, PostgreSQL, EdDSA" pg spa load@example.com "load test password"
fi

part mixed || exit 0
echo
echo "== mixed workload, SQLite tenant"
admin POST /v1/admin/tenants '{"slug":"mixed"}' >/dev/null
taskset -c 1 "$EXAMPLES/mixed_load" "$BASE" "$TOKEN" mixed "$SERVER" 64 "$DURATION"
if [ -n "$PG_URL" ]; then
  echo
  echo "== mixed workload, PostgreSQL tenant"
  pg_tenant mixedpg
  taskset -c 1 "$EXAMPLES/mixed_load" "$BASE" "$TOKEN" mixedpg "$SERVER" 64 "$DURATION"
fi
