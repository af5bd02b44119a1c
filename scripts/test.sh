#!/usr/bin/env bash
# Runs every test Herald has, installing what they need first. Used by CI (.ci/run).
#   scripts/test.sh            all checks and tests
#   TEST_LOG=debug scripts/test.sh   with the servers' logs on stderr
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds are reused across clones and runs.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "test dependencies (Python: aiosmtpd, a real SMTP server for the email tests)"
python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check 'aiosmtpd>=1.4'

step "format and lint"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build the herald binary the black-box tests run"
cargo build --locked -p herald-cli

step "tests"
cargo test --workspace --locked
