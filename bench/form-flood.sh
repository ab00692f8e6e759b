#!/usr/bin/env bash
# Server CPU spent on hostile 1 MiB form bodies, per endpoint and body shape, on a release
# build. CPU is read from /proc/<pid>/stat (user + system ticks) around N requests, so the
# figure is the server's own work, not the client's or the network's. The floor is the
# same body to the token endpoint with a content type it refuses before parsing (the cost
# of receiving a megabyte).
# Usage: bench/form-flood.sh [requests per case]   (default 50)
# Needs: curl, python3, and `cargo build --release -p tenantry-cli`.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN="$TARGET_DIR/release/tenantry"
ROOT=$(mktemp -d)
PORT=18191
BASE="http://127.0.0.1:$PORT"
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$ROOT"' EXIT

RUST_LOG=warn taskset -c 0 "$BIN" serve --dev --fs-root "$ROOT/root" --listen 127.0.0.1:$PORT >"$ROOT/out.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 50); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.2; done

python3 - "$ROOT" <<'EOF'
import sys
root = sys.argv[1]
mib = 1 << 20
limit = mib - 64
distinct, i = [], 0
size = 0
while size < limit:
    piece = format(i, "x") + "&"
    distinct.append(piece)
    size += len(piece)
    i += 1
shapes = {
    "distinct": "".join(distinct),
    "ampersands": "&" * limit,
    "one-value": "token=" + "%41" * ((limit - 6) // 3),
    "repeated": ("resource=x&" * (limit // 11)),
}
for name, body in shapes.items():
    open(f"{root}/{name}.body", "w").write(body)
EOF

ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
HZ=$(getconf CLK_TCK)
measure() { # label, path, content-type, body file
  local before after
  before=$(ticks)
  for _ in $(seq 1 "$N"); do
    curl -s -o /dev/null -X POST "$BASE$2" -H "Content-Type: $3" --data-binary "@$4"
  done
  after=$(ticks)
  python3 -c "print(f'{\"$1\":<44} {($after - $before) * 1000 / $HZ / $N:7.2f} ms CPU per request')"
}

echo "server CPU per 1 MiB request (mean of $N), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
measure "floor: token, refused content type" /t/local/token text/plain "$ROOT/distinct.body"
for shape in distinct ampersands one-value repeated; do
  for path in /t/local/token /t/local/authorize /t/local/login /t/local/logout /t/local/introspect /t/local/reset-password; do
    measure "$path ($shape)" "$path" application/x-www-form-urlencoded "$ROOT/$shape.body"
  done
done
