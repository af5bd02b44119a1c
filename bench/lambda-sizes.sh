#!/usr/bin/env bash
# Zipped size of every function as Lambda runs it (arm64, release profile), next to
# the hello-world floor (bench/hello-lambda). cargo-lambda (PyPI, with zig as the
# cross linker) goes into a virtual environment under ~/.cache/herald-py.
#   bench/lambda-sizes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/herald-target}"
VENV="$HOME/.cache/herald-py/cargo-lambda"
[ -x "$VENV/bin/cargo-lambda" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q cargo-lambda; }
export PATH="$VENV/bin:$PATH"
rustup target list --installed | grep -q aarch64-unknown-linux-gnu \
  || rustup target add aarch64-unknown-linux-gnu
# One build per function, as `sam build` does: built together, cargo would unify their
# features and give dispatch and track the clients only api and send need.
for package in herald-bench-hello herald-fn-api herald-fn-dispatch herald-fn-send herald-fn-track; do
  cargo lambda build --release --arm64 --output-format zip -p "$package" >&2
done
python3 - "$CARGO_TARGET_DIR/lambda" <<'PY'
import os, sys, zipfile
root = sys.argv[1]
mb = lambda n: f"{n / 1048576:.2f} MB"
print(f"{'function':10}{'zipped':>10}{'unzipped':>12}{'x floor':>9}")
floor = os.path.getsize(f"{root}/hello/bootstrap.zip")
for name in ["hello", "api", "dispatch", "send", "track"]:
    path = f"{root}/{name}/bootstrap.zip"
    size = os.path.getsize(path)
    unzipped = sum(i.file_size for i in zipfile.ZipFile(path).infolist())
    print(f"{name:10}{mb(size):>10}{mb(unzipped):>12}{size / floor:>8.1f}x")
PY
