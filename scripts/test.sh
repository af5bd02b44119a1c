#!/usr/bin/env bash
# Runs every test Herald has, installing and starting what they need first (an SMTP
# server, the moto AWS emulator). Used by CI (.ci/run).
#   scripts/test.sh            all checks and tests
#   TEST_LOG=debug scripts/test.sh   with the servers' logs on stderr
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds are reused across clones and runs, and so are the Python tools that need
# their own environments (checkov and schemathesis pin libraries moto and SAM share).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald-target}"
PYENVS="${HERALD_PYENVS:-$HOME/.cache/herald-py}"

# A tool in its own virtual environment, installed on first use.
venv_tool() { # name, pip requirement
  if [ ! -x "$PYENVS/$1/bin/$1" ]; then
    python3 -m venv "$PYENVS/$1"
    "$PYENVS/$1/bin/pip" install --quiet --disable-pip-version-check "$2"
  fi
  echo "$PYENVS/$1/bin/$1"
}
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s (at %ss)\n' "$*" "$SECONDS"; }

step "test dependencies (aiosmtpd, a real SMTP server for the email tests; libfaketime)"
python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check 'aiosmtpd>=1.4'
# libfaketime (Debian's faketime): the preferences test runs herald serve on a clock
# that reads noon UTC, so its two sends share one day's frequency caps.
if [ ! -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ] && [ "$(uname -m)" = x86_64 ]; then
  apt-get install -y -q faketime >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q faketime >/dev/null; }
fi

step "AWS emulator (moto server on loopback: SQS, DynamoDB, SES, SNS for the AWS tests)"
python3 -c 'import moto.server, flask' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check 'moto[server]>=5.1'
MOTO_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Its DynamoDB requests one at a time: moto alone lets two conditional writes both pass.
python3 scripts/moto_server.py -H 127.0.0.1 -p "$MOTO_PORT" >"${TMPDIR:-/tmp}/herald-moto.log" 2>&1 &
MOTO_PID=$!
HERALD_PID=""
trap 'kill $MOTO_PID $HERALD_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null || { echo "moto did not start"; cat "${TMPDIR:-/tmp}/herald-moto.log"; exit 1; }
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
# Plain `cargo test` skips the AWS tests without an emulator; here one is required.
export HERALD_REQUIRE_EMULATOR=1

step "validate the SAM template (sam validate, sam validate --lint, cfn-lint, no circular dependencies; all offline)"
command -v sam >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check 'aws-sam-cli>=1.140'
command -v cfn-lint >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check 'cfn-lint>=1'
export SAM_CLI_TELEMETRY=0
AWS_DEFAULT_REGION=us-east-1 sam validate --template template.yaml
AWS_DEFAULT_REGION=us-east-1 sam validate --lint --template template.yaml
cfn-lint template.yaml
# Neither of those sees a dependency cycle that only the SAM transform creates.
python3 -c 'import samtranslator' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check 'aws-sam-translator>=1.90'
python3 scripts/template_cycles.py template.yaml
# Least privilege: no IAM statement may grant on every resource.
if grep -nE "^\s*-?\s*Resource:\s*['\"]?\*['\"]?\s*$" template.yaml; then
  echo "template.yaml grants an IAM action on Resource \"*\""; exit 1
fi

step "checkov on template.yaml (fails on any finding the template does not explain)"
CHECKOV=$(venv_tool checkov 'checkov>=3.2,<4')
"$CHECKOV" -f template.yaml --framework cloudformation --compact --quiet 2>/dev/null

step "format and lint"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# herald-core as `herald serve` builds it: without the aws feature.
cargo clippy -p herald-core --no-default-features --all-targets --locked -- -D warnings
# herald-aws as dispatch and track build it: without `senders`.
cargo clippy -p herald-aws --no-default-features --locked -- -D warnings

step "dependency boundaries (cargo tree): a core without backends or web framework, no AWS SDK in the herald binary, no SMTP client in a Lambda, SQLite only in the api function, no sending clients where nothing sends"
# herald-core, with every feature: the domain, ports and pipeline carry no backend
# (rusqlite, DynamoDB, SQS, SSM) and no web framework (axum, hyper's server).
if cargo tree --locked -p herald-core --all-features -e normal --prefix none \
    | grep -E '^(rusqlite|axum|aws-sdk-(dynamodb|sqs|ssm)|aws_lambda_events) '; then
  echo "herald-core depends on a backend or on axum: it belongs in herald-sqlite, herald-aws or herald-http"; exit 1
fi
if cargo tree --locked -p herald-cli -e normal --prefix none | grep -E '^aws-(sdk|config)'; then
  echo "herald-cli depends on the AWS SDK: herald-core's aws feature leaked into it"; exit 1
fi
for function in herald-fn-api herald-fn-dispatch herald-fn-send herald-fn-track; do
  if cargo tree --locked -p "$function" -e normal --prefix none | grep -E '^lettre '; then
    echo "$function depends on lettre: herald-core's smtp feature leaked into it"; exit 1
  fi
done
# Functions that never send carry no SES, SNS or SSM client (herald-aws without
# `senders`), and no function carries a second crypto library (aws-lc-rs beside ring).
for function in herald-fn-dispatch herald-fn-track; do
  if cargo tree --locked -p "$function" -e normal --prefix none | grep -E '^aws-sdk-(sesv2|sns|ssm) '; then
    echo "$function depends on a sending or secrets client: herald-aws's senders feature leaked into it"; exit 1
  fi
done
for function in herald-fn-api herald-fn-dispatch herald-fn-send herald-fn-track; do
  if cargo tree --locked -p "$function" -e normal --prefix none | grep -E '^aws-lc-(rs|sys) '; then
    echo "$function links aws-lc-rs: an AWS SDK crate's default HTTPS client came back"; exit 1
  fi
done
# Only the api function keeps SQLite, for its local fallback.
for function in herald-fn-dispatch herald-fn-send herald-fn-track; do
  if cargo tree --locked -p "$function" -e normal --prefix none | grep -E '^rusqlite '; then
    echo "$function depends on rusqlite: only the api function may use herald-sqlite"; exit 1
  fi
done

step "build every binary: herald for the black-box tests, the functions for sam local"
cargo build --locked --workspace --bins

step "Lambda base image for sam local (built from Debian's packages: no registry can be reached)"
bash scripts/lambda-base-image.sh "$(uname -m | sed 's/aarch64/arm64/')"
# tests/tests/sam_local.rs runs every function of template.yaml through `sam local
# invoke` and one request through `sam local start-api`, with these binaries.
export HERALD_SAM_LOCAL="$CARGO_TARGET_DIR/debug"

step "tests"
cargo test --workspace --locked --no-fail-fast

step "schemathesis: every operation of /openapi.json against herald serve (fixed seed, all checks)"
SCHEMATHESIS=$(venv_tool schemathesis 'schemathesis>=4.3,<5')
ST_DATA=$(mktemp -d)
ST_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ST_KEY="hk_schemathesis_$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
# Webhooks go to the log provider: generated recipients must not reach the network.
HERALD_ADDR="127.0.0.1:$ST_PORT" HERALD_DATA_DIR="$ST_DATA" HERALD_ADMIN_KEY="$ST_KEY" \
  HERALD_WEBHOOK_PROVIDER=log HERALD_LOG=warn \
  "$CARGO_TARGET_DIR/debug/herald" serve >"$ST_DATA/herald.log" 2>&1 &
HERALD_PID=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$ST_PORT/healthz" >/dev/null && break
  sleep 0.2
done
timeout 900 "$SCHEMATHESIS" --config-file scripts/schemathesis.toml run \
  "http://127.0.0.1:$ST_PORT/openapi.json" --checks all --seed 20261203 \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-25}" --generation-database none \
  -H "Authorization: Bearer $ST_KEY"
