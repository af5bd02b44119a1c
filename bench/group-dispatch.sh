#!/usr/bin/env bash
# Dispatch of one notification to a 10,000-member group on the local server: bulk
# upsert 10,000 users, put them in one group, turn news SMS off for every tenth, send
# one templated email + SMS `news` notification to the group (log providers; each
# delivery rendered for its user), and time from the send to its last delivery.
# usage: bench/group-dispatch.sh [members, default 10000]
set -euo pipefail
cd "$(dirname "$0")/.."
MEMBERS="${1:-10000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald-target}"
cargo build --release --locked -p herald-cli --bin herald >&2
BIN="$CARGO_TARGET_DIR/release"
WORK=$(mktemp -d)
KEY="hk_bench_admin_key_0123456789abcdef"
PORT=18490
HERALD_ADDR=127.0.0.1:$PORT HERALD_DATA_DIR="$WORK/data" HERALD_ADMIN_KEY=$KEY HERALD_LOG=warn \
  "$BIN/herald" serve >"$WORK/herald.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
python3 - "$PORT" "$KEY" "$MEMBERS" <<'PY'
import json, sys, time, urllib.request
port, key, members = sys.argv[1], sys.argv[2], int(sys.argv[3])
def call(method, path, body=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read() or b"null")
ids = [f"u{i:05}" for i in range(members)]
started = time.perf_counter()
created = 0
for chunk in range(0, members, 10000):
    result = call("POST", "/v1/users/bulk", {"users": [
        {"id": i, "email": f"{i}@example.com", "phone": f"+1415555{n % 10000:04}", "locale": "en"}
        for n, i in enumerate(ids[chunk:chunk + 10000], start=chunk)]})
    created += result["created"]
assert created == members, f"only {created} users created"
upserted = time.perf_counter()
call("PUT", "/v1/groups/everyone", {"name": "Everyone"})
for chunk in range(0, members, 10000):
    call("POST", "/v1/groups/everyone/members", {"add": ids[chunk:chunk + 10000]})
grouped = time.perf_counter()
for i in ids[::10]:
    call("PUT", f"/v1/users/{i}/preferences", {"categories": {"news": {"channels": {"sms": False}}}})
call("POST", "/v1/templates", {"id": "news", "name": "News", "locales": {"default": {
    "email": {"subject": "News for {{ name }}", "text": "Hi {{ name }}. Unsubscribe: {{ unsubscribe_url }}"},
    "sms": {"text": "News for {{ name }}"}}}})
sent = time.perf_counter()
notification = call("POST", "/v1/notifications", {"to": [{"group": "everyone"}], "channels": ["email", "sms"],
    "category": "news", "template": {"id": "news", "data": {"name": "friend"}}})
accepted = time.perf_counter()
for _ in range(1200):  # bounded: at most 10 minutes
    n = call("GET", f"/v1/notifications/{notification['id']}")
    if n["status"] in ("sent", "failed"):
        break
    time.sleep(0.5)
done = time.perf_counter()
deliveries = len(n["deliveries"])
sent_count = sum(d["status"] == "sent" for d in n["deliveries"])
opted_out = sum(d.get("reason") == "opted_out" for d in n["deliveries"])
assert (sent_count, opted_out) == (deliveries - len(ids[::10]), len(ids[::10])), (sent_count, opted_out)
print(f"members: {members}; bulk upsert {upserted - started:.2f} s, group membership {grouped - upserted:.2f} s")
print(f"send accepted in {(accepted - sent) * 1000:.1f} ms; status {n['status']} with {deliveries} deliveries "
      f"({sent_count} sent, {opted_out} opted out) "
      f"{done - sent:.2f} s after the send (polled every 0.5 s): {deliveries / (done - sent):.0f} deliveries/s")
PY
