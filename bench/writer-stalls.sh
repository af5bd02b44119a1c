#!/usr/bin/env bash
# Where the SQLite writer thread waits for the disk under bench/mixed.sh's load: records
# the kernel's scheduler switches of Herald (with stacks) for a few seconds in the middle
# of the run, then sums the writer's waits in uninterruptible sleep by what it was doing
# (a commit's frame writes, a WAL header sync, a checkpoint). Every accept waits for its
# commit, so a commit that waits for the disk holds up each request in its batch.
# usage: bench/writer-stalls.sh [seconds of load, default 10] [connections, default 32] [rate]
# With a rate, records mixed.sh's fixed-rate phase (oha at that rate) instead of wrk's.
# Needs perf (apt-get install linux-perf) and root (scheduler tracepoints).
# BENCH_HERALD_BIN=path measures that binary; otherwise the profiling build is built.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-10}"
CONNECTIONS="${2:-32}"
RATE="${3:-0}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald-target}"
command -v perf >/dev/null || { echo "needs perf (apt-get install linux-perf)"; exit 1; }
if [ -z "${BENCH_HERALD_BIN:-}" ]; then
  cargo build --profile profiling --locked -p herald-cli --bin herald >&2
  export BENCH_HERALD_BIN="$CARGO_TARGET_DIR/profiling/herald"
fi
DATA=$(mktemp)
trap 'rm -f "$DATA"' EXIT
BENCH_ONLY_HERALD=1 bash bench/mixed.sh "$SECONDS_PER_RUN" "$CONNECTIONS" "$RATE" 2>/dev/null |
  grep -E '^(intake|herald cpu|herald end to end):' &
bench=$!
# The newest Herald other than $1 ("" for any), waiting up to $2 tenths of a second;
# nothing if none came.
herald_after() {
  local pid
  for _ in $(seq "$2"); do
    pid=$(pgrep -n -f "$BENCH_HERALD_BIN serve" || true)
    [ -n "$pid" ] && [ "$pid" != "$1" ] && { echo "$pid"; return; }
    sleep 0.1
  done
}
# The Herald of the phase to record: the first one, or with a rate the one after it.
pid=$(herald_after "" 300)
[ "$RATE" -eq 0 ] || [ -z "$pid" ] || pid=$(herald_after "$pid" 1200)
[ -n "$pid" ] || { echo "herald did not start"; exit 1; }
# Skip the start, record the middle third of the load.
sleep $((SECONDS_PER_RUN / 3 + 1))
perf record -q -e sched:sched_switch --call-graph dwarf,4096 -p "$pid" -o "$DATA" -- \
  sleep $((SECONDS_PER_RUN / 3 + 1)) 2>/dev/null
wait "$bench"
perf script -i "$DATA" -F tid,time,trace,ip,sym 2>/dev/null | python3 bench/writer_stalls.py
