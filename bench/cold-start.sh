#!/usr/bin/env bash
# Cold start of every function next to the hello-world floor (bench/hello-lambda), each
# release bootstrap run against bench/cold_start.py's fake Lambda Runtime API. Herald's
# functions get their AWS endpoints from a moto server on loopback (one request each).
#   bench/cold-start.sh [RUNS]
# Native release builds (the Lambda artifacts are arm64; this machine is x86_64): same
# profile and code, so the ratio to the floor is what carries over.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-20}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald-target}"
# One build per function, as `sam build` does (built together, their features unify).
for package in herald-bench-hello herald-fn-api herald-fn-dispatch herald-fn-send herald-fn-track; do
  cargo build --release --locked -p "$package"
done
BIN="$CARGO_TARGET_DIR/release"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m moto.server -H 127.0.0.1 -p "$PORT" >/dev/null 2>&1 &
trap 'kill $! 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/moto-api/" >/dev/null && break; sleep 0.2; done
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
python3 - <<'PY'
import boto3
ddb = boto3.client("dynamodb")
s = lambda n: {"AttributeName": n, "AttributeType": "S"}
k = lambda n, t: {"AttributeName": n, "KeyType": t}
gsi = lambda i: {"IndexName": f"GSI{i}", "KeySchema": [k(f"GSI{i}PK", "HASH"), k(f"GSI{i}SK", "RANGE")], "Projection": {"ProjectionType": "ALL"}}
ddb.create_table(TableName="bench", BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[s(n) for n in ["PK", "SK", "GSI1PK", "GSI1SK"]],
    KeySchema=[k("PK", "HASH"), k("SK", "RANGE")], GlobalSecondaryIndexes=[gsi(1)])
sqs = boto3.client("sqs")
for q in ["dispatch-high", "dispatch-medium", "dispatch-low", "send-email", "send-sms", "send-webhook"]:
    for name in [f"bench-{q}", f"bench-{q}-dlq"]:
        sqs.create_queue(QueueName=name)
PY
export HERALD_TABLE=bench HERALD_QUEUE_URL_PREFIX="$AWS_ENDPOINT_URL/123456789012/bench"
run_all() {
  HERALD_PROVIDERS=none python3 bench/cold_start.py "$RUNS" \
    "hello (floor)=$BIN/hello:events/track/ses-open.json" \
    "api=$BIN/api:events/api/get-notifications.json" \
    "dispatch=$BIN/dispatch:events/dispatch/sqs-high.json" \
    "track=$BIN/track:events/track/ses-open.json"
  # send builds its providers (SES, SNS, webhook with the secret from the table).
  python3 bench/cold_start.py "$RUNS" "send=$BIN/send:events/send/sqs-email.json" | tail -n 1
}
# The SDK's HTTPS client loads the system's CA certificates at start (rustls-native-certs).
echo "With this machine's certificate store (Debian: a bundle and /etc/ssl/certs, $(ls /etc/ssl/certs | wc -l) entries):"
run_all
# provided.al2023 keeps one bundle (/etc/pki/tls/certs/ca-bundle.crt) and no hashed
# directory; this pass loads only the bundle, as there.
echo
echo "With one CA bundle and no certificate directory, as on provided.al2023:"
EMPTY_DIR=$(mktemp -d)
SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt SSL_CERT_DIR="$EMPTY_DIR" run_all
rmdir "$EMPTY_DIR"
