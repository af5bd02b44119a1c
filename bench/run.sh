#!/usr/bin/env bash
# Herald's benchmarks, all on loopback, each bounded in time:
#   1. intake: accepted notifications per second and latency percentiles (wrk);
#   2. end to end: deliveries per second to a loopback webhook receiver that checks
#      every signature.
# usage: bench/run.sh [seconds per run, default 10] [connections, default 64]
# (intake also runs at 16 and 32 connections)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-10}"
CONNECTIONS="${2:-64}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald-target}"
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }

cargo build --release --locked -p herald-cli -p herald-tests --bin herald --bin webhook-sink >&2
BIN="$CARGO_TARGET_DIR/release"
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

export HERALD_KEY="hk_bench_admin_key_0123456789abcdef"
SECRET="whsec_dGVzdC1zZWNyZXQtZm9yLWhlcmFsZC10ZXN0cyEh"
HERALD_PORT=18480
SINK_PORT=18481

start_herald() {
  rm -rf "$WORK/data"
  HERALD_ADDR=127.0.0.1:$HERALD_PORT HERALD_DATA_DIR="$WORK/data" HERALD_ADMIN_KEY=$HERALD_KEY \
    HERALD_WEBHOOK_SECRET=$SECRET HERALD_WEBHOOK_ALLOW_NETWORKS=127.0.0.0/8 HERALD_LOG=warn "$BIN/herald" serve >"$WORK/herald.log" 2>&1 &
  HERALD_PID=$!
  PIDS+=("$HERALD_PID")
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HERALD_PORT/healthz" >/dev/null && return; sleep 0.1; done
  echo "herald did not start"; cat "$WORK/herald.log"; exit 1
}
stop_herald() { kill "$HERALD_PID"; wait "$HERALD_PID" 2>/dev/null || true; }

"$BIN/webhook-sink" $SINK_PORT $SECRET >/dev/null &
PIDS+=("$!")
sleep 0.3
sink_unique() { curl -s "http://127.0.0.1:$SINK_PORT/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["unique"])'; }

export BODY='{"to":[{"email":"ann@example.com"}],"channels":["email"],"priority":"high","content":{"email":{"subject":"Your code","text":"Your code is 123456"}}}'
for conns in 16 32 "$CONNECTIONS"; do
  echo "== intake: email via the log provider, $conns connections, ${SECONDS_PER_RUN}s"
  start_herald
  wrk -t2 -c"$conns" -d"${SECONDS_PER_RUN}s" --latency -s bench/send.lua "http://127.0.0.1:$HERALD_PORT/v1/notifications" | grep RESULT
  stop_herald
done

echo "== end to end: signed webhooks to a loopback receiver, $CONNECTIONS connections, ${SECONDS_PER_RUN}s of sends"
start_herald
export BODY="{\"to\":[{\"webhook\":{\"url\":\"http://127.0.0.1:$SINK_PORT/hook\"}}],\"channels\":[\"webhook\"],\"content\":{\"webhook\":{\"order\":42}}}"
before=$(sink_unique)
start=$(date +%s.%N)
result=$(wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -s bench/send.lua "http://127.0.0.1:$HERALD_PORT/v1/notifications" | grep RESULT)
echo "$result"
accepted=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$result")
# Wait (bounded) for every accepted notification to reach the receiver.
for _ in $(seq 600); do
  done_count=$(( $(sink_unique) - before ))
  [ "$done_count" -ge "$accepted" ] && break
  sleep 0.1
done
end=$(date +%s.%N)
python3 - "$start" "$end" "$done_count" "$accepted" <<'PY'
import sys
start, end, delivered, accepted = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print(f"RESULT e2e delivered={delivered} of accepted={accepted} seconds={end-start:.2f} deliveries_per_s={delivered/(end-start):.0f}")
PY
stop_herald
