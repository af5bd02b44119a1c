#!/usr/bin/env bash
# Mixed load, all on loopback, each phase bounded in time:
#   1. Herald: wrk posts webhook notifications for N seconds on C connections, each as
#      fast as Herald answers, while Herald delivers them to nginx at the same time;
#      intake (accepted/s, latency) and end to end (deliveries/s from wrk's start to
#      the last delivery nginx logged);
#   2. Herald again (fresh), with oha posting at a fixed RATE a second instead: the
#      latency a client sees at that rate, each request timed from when it was due;
#   3. Apprise: bench/apprise_send.py sends to the same nginx with Apprise's JSON
#      notifier for the same N seconds, counted the same way.
# nginx (one worker, answers 200) counts deliveries in its access log, so neither side
# counts its own. The receiver does no signature checks, unlike bench/run.sh's.
# usage: bench/mixed.sh [seconds, default 10] [connections, default 64] [rate, default 10000; 0 skips phase 2]
# Profiling: BENCH_PROFILE=profiling builds with symbols, and PERF_DATA=/tmp/perf.data
# records Herald's first phase with `perf record --call-graph dwarf`, and the fixed-rate phase
# into /tmp/perf.data.at-rate (docs/performance.md, "Where the time goes").
# BENCH_ONLY_HERALD=1 skips the Apprise phase (for comparing two Herald builds).
# BENCH_HERALD_BIN=path runs that binary as it is, without building.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-10}"
CONNECTIONS="${2:-64}"
RATE="${3:-10000}"
APPRISE_VERSION=2.2.0
VENV="$HOME/.cache/herald-py/apprise"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald-target}"
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "needs nginx (apt-get install nginx-light)"; exit 1; }
# oha (crates.io) for the fixed-rate phase: wrk can only keep connections busy.
OHA_VERSION=1.16.0
OHA="$HOME/.cache/herald-tools/bin/oha"
if [ "$RATE" -gt 0 ] && ! "$OHA" --version 2>/dev/null | grep -q " $OHA_VERSION"; then
  cargo install --locked --quiet --root "$HOME/.cache/herald-tools" oha --version "$OHA_VERSION" >&2
fi
python3 -c 'import venv, ensurepip' 2>/dev/null || { echo "needs python3-venv (apt-get install python3-venv)"; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# The machine's speed on a fixed task, so that runs on different machines can be told
# apart (docs/performance.md quotes it: 0.82 s on one machine, 1.20 s on a slower one).
python3 -c 'import time; t = time.perf_counter(); s = 0
for i in range(10_000_000): s += i
print(f"machine: 10 million Python additions in {time.perf_counter() - t:.2f} s")'

PROFILE="${BENCH_PROFILE:-release}"
if [ -n "${BENCH_HERALD_BIN:-}" ]; then # a binary built before, as is
  BIN=$(dirname "$BENCH_HERALD_BIN")
else
  cargo build --profile "$PROFILE" --locked -p herald-cli --bin herald >&2
  BIN="$CARGO_TARGET_DIR/$PROFILE"
fi
# The profiler's command for a phase: none, or perf recording into $PERF_DATA plus $1.
perf_command() { [ -z "${PERF_DATA:-}" ] || echo perf record -F 499 --call-graph dwarf,16384 -o "$PERF_DATA$1" --; }
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

HERALD_PORT=18490
NGINX_PORT=18491
export HERALD_KEY="hk_bench_admin_key_0123456789abcdef"

# nginx: every path of its own under $WORK, one worker; `return` answers a POST
# (a static file would be a 405). The log keeps each delivery's time, path and
# webhook-id (Herald's delivery id, the same on a retry; "-" for Apprise).
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  log_format bench '\$msec \$uri \$status \$http_webhook_id';
  server {
    listen 127.0.0.1:$NGINX_PORT;
    access_log $WORK/nginx/access.log bench;
    location / { return 200 "ok"; }
  }
}
EOF
"$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=("$!")
NGINX_PID=$!
for _ in $(seq 50); do curl -sf -X POST "http://127.0.0.1:$NGINX_PORT/ready" >/dev/null && break; sleep 0.1; done
curl -sf -X POST "http://127.0.0.1:$NGINX_PORT/ready" >/dev/null || { echo "nginx did not start"; cat "$WORK/nginx/error.log"; exit 1; }

# From nginx's log: requests to a path, distinct webhook-ids among them, the last one's time.
delivered() { awk -v p="$1" '$2 == p && $3 == 200 { n++ } END { print n + 0 }' "$WORK/nginx/access.log"; }
distinct() { awk -v p="$1" '$2 == p && $3 == 200 && !seen[$4]++ { n++ } END { print n + 0 }' "$WORK/nginx/access.log"; }
last_delivery() { awk -v p="$1" '$2 == p && $3 == 200 { t = $1 } END { print t }' "$WORK/nginx/access.log"; }
# Waits (at most 300 s) until nginx has logged $2 requests to path $1, then while more
# still come: wrk does not count the requests in flight at its deadline (up to one per
# connection), which Herald accepted all the same.
wait_for() {
  local n=0 prev
  for _ in $(seq 600); do n=$(delivered "$1"); [ "$n" -ge "$2" ] && break; sleep 0.5; done
  for _ in $(seq 20); do prev=$n; sleep 1; n=$(delivered "$1"); [ "$n" -eq "$prev" ] && break; done
}
# A process's user + system CPU seconds, from /proc/PID/stat.
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "$1"; }
rate() { python3 -c "import sys; n,a,b=int(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]); print(f'{n/(b-a):.0f} {b-a:.2f}')" "$@"; }

# The load generators print one line each: RESULT requests=N seconds=S p50_ms= p90_ms=
# p99_ms= max_ms= non2xx=N. wrk keeps each connection busy (as fast as Herald answers);
# oha sends at a fixed rate and times each request from when it was due, so a stall
# counts for every request that should have gone out meanwhile (coordinated omission).
saturate() { wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -s bench/send.lua "$1" | grep RESULT; }
at_rate() {
  "$OHA" --no-tui --output-format json -q "$RATE" --latency-correction -w -z "${SECONDS_PER_RUN}s" \
    -c "$CONNECTIONS" -m POST -T application/json -H "Authorization: Bearer $HERALD_KEY" -d "$BODY" "$1" |
    python3 bench/oha_result.py
}

# One Herald phase: a fresh Herald and data directory, LOAD posting webhooks to nginx's
# PATH for the given time while Herald delivers them, then everything counted.
herald_phase() { # path, load function, suffix of the profile's file
  local path=$1 load=$2 perf
  read -r -a perf <<<"$(perf_command "$3")"
  # Loopback targets are refused unless allowed (docs/security.md, SSRF).
  HERALD_ADDR=127.0.0.1:$HERALD_PORT HERALD_DATA_DIR="$WORK/data$path" HERALD_ADMIN_KEY=$HERALD_KEY \
    HERALD_WEBHOOK_ALLOW_NETWORKS=127.0.0.0/8 HERALD_LOG=warn "${perf[@]}" "$BIN/herald" serve >"$WORK/herald.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HERALD_PORT/healthz" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$HERALD_PORT/healthz" >/dev/null || { echo "herald did not start"; cat "$WORK/herald.log"; exit 1; }

  export BODY="{\"to\":[{\"webhook\":{\"url\":\"http://127.0.0.1:$NGINX_PORT$path\"}}],\"channels\":[\"webhook\"],\"content\":{\"webhook\":{\"order\":42}}}"
  local start nginx_before load_out result load_cpu accepted load_seconds
  start=$(date +%s.%N)
  nginx_before=$(cpu_seconds /proc/"$(pgrep -P "$NGINX_PID" | head -n 1)"/stat)
  # `times` in the same subshell: the CPU the load generator (and its filters) used, as its children.
  load_out=$({ "$load" "http://127.0.0.1:$HERALD_PORT/v1/notifications"; times; })
  result=$(grep RESULT <<<"$load_out")
  load_cpu=$(tail -n 1 <<<"$load_out" | awk '{ split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }')
  echo "$result"
  # Every answer is counted; only 202s were accepted.
  accepted=$(( $(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$result") - $(sed -E 's/.*non2xx=([0-9]+).*/\1/' <<<"$result") ))
  load_seconds=$(sed -E 's/.*seconds=([0-9.]+).*/\1/' <<<"$result")
  echo "intake: $accepted accepted, $(python3 -c "print(f'{$accepted/$load_seconds:.0f}')") accepted/s; latency ms p50/p90/p99/max: $(sed -E 's/.*p50_ms=([0-9.]+) p90_ms=([0-9.]+) p99_ms=([0-9.]+) max_ms=([0-9.]+).*/\1 \2 \3 \4/' <<<"$result")"
  [ "$accepted" -gt 0 ] || { echo "herald accepted nothing; its log:"; tail -n 20 "$WORK/herald.log"; exit 1; }
  wait_for "$path" "$accepted"
  local herald_n herald_pid writer_stat herald_rate herald_s nginx_cpu errors
  herald_n=$(distinct "$path")
  # CPU per delivery is steadier than a rate on a shared 2-core machine: Herald's user +
  # system time, and its SQLite writer thread's alone (the one thread every write goes through).
  herald_pid=$(pgrep -n -f "$BIN/herald serve")
  writer_stat=$(grep -l '^herald-sqlite-w' /proc/"$herald_pid"/task/*/comm | head -n 1 | sed 's/comm$/stat/')
  python3 -c "import sys; n,c,w=int(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]); print(f'herald cpu: {c:.1f} s in all, {1e6*c/n:.0f} us per delivery; writer thread {w:.1f} s, {1e6*w/n:.0f} us per delivery')" \
    "$herald_n" "$(cpu_seconds /proc/"$herald_pid"/stat)" "$(cpu_seconds "$writer_stat")"
  [ "$herald_n" -gt 0 ] || { echo "nginx got no webhook from herald; its log:"; tail -n 20 "$WORK/herald.log"; exit 1; }
  read -r herald_rate herald_s < <(rate "$herald_n" "$start" "$(last_delivery "$path")")
  echo "herald end to end: $herald_n deliveries ($(delivered "$path") requests) of $accepted accepted, in ${herald_s}s from the load's start: $herald_rate deliveries/s"
  # Where the machine's CPU went from the load's start to the last delivery: Herald, the
  # load generator, the sink, and the rest (other processes, and cores left idle).
  nginx_cpu=$(python3 -c "import sys; print(float(sys.argv[1]) - float(sys.argv[2]))" "$(cpu_seconds /proc/"$(pgrep -P "$NGINX_PID" | head -n 1)"/stat)" "$nginx_before")
  python3 -c "import sys; h,w,n,s,c=map(float,sys.argv[1:]); t=s*c; print(f'cpu budget: {c:.0f} cores x {s:.1f} s = {t:.1f} s; herald {h:.1f} s ({100*h/t:.0f}%), load generator {w:.1f} s ({100*w/t:.0f}%), nginx {n:.1f} s ({100*n/t:.0f}%), rest and idle {t-h-w-n:.1f} s ({100*(t-h-w-n)/t:.0f}%)')" \
    "$(cpu_seconds /proc/"$herald_pid"/stat)" "$load_cpu" "$nginx_cpu" "$herald_s" "$(nproc)"
  echo "herald peak memory: $(awk '/VmHWM/ { printf "%.0f MB", $2 / 1024 }' /proc/"$herald_pid"/status)"
  [ "$herald_n" -ge "$accepted" ] || echo "WARNING: not all accepted notifications were delivered within 300 s"
  errors=$(grep -ciE 'error|warn' "$WORK/herald.log" || true)
  [ "$errors" -eq 0 ] || { echo "herald logged $errors warnings or errors, the first:"; grep -iE 'error|warn' "$WORK/herald.log" | head -n 5; }
  kill -INT "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
  HERALD_RATE=$herald_rate
}

echo "== Herald: webhooks to nginx, $CONNECTIONS connections as fast as Herald answers (wrk), ${SECONDS_PER_RUN}s of sends, delivering meanwhile"
herald_phase /herald saturate ""
saturated_rate=$HERALD_RATE
if [ "$RATE" -gt 0 ]; then
  echo "== Herald: webhooks to nginx at a fixed $RATE/s (oha, latency from each request's due time), $CONNECTIONS connections, ${SECONDS_PER_RUN}s of sends, delivering meanwhile"
  herald_phase /herald-at-rate at_rate .at-rate
fi
[ -z "${BENCH_ONLY_HERALD:-}" ] || exit 0

echo "== Apprise $APPRISE_VERSION: JSON notifier to nginx, ${SECONDS_PER_RUN}s of sends"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import apprise, sys; sys.exit(apprise.__version__ != '$APPRISE_VERSION')" 2>/dev/null ||
  "$VENV/bin/pip" install -q "apprise==$APPRISE_VERSION"
result=$("$VENV/bin/python" bench/apprise_send.py "json://127.0.0.1:$NGINX_PORT/apprise" "$SECONDS_PER_RUN" | grep RESULT)
echo "$result"
sent=$(sed -E 's/.*sent=([0-9]+).*/\1/' <<<"$result")
wait_for /apprise "$sent"
apprise_n=$(delivered /apprise)
[ "$apprise_n" -gt 0 ] || { echo "nginx got nothing from apprise"; exit 1; }
read -r apprise_rate apprise_s < <(rate "$apprise_n" "$(sed -E 's/.*start=([0-9.]+).*/\1/' <<<"$result")" "$(last_delivery /apprise)")
echo "apprise: $apprise_n delivered in ${apprise_s}s: $apprise_rate deliveries/s"

python3 -c "import sys; h,a=int(sys.argv[1]),int(sys.argv[2]); print(f'SUMMARY herald={h} deliveries/s apprise={a} deliveries/s ratio={h/a:.1f}x')" "$saturated_rate" "$apprise_rate"
