#!/usr/bin/env bash
# Compares two builds of Herald under bench/mixed.sh, alternating runs so that a slow
# minute of a shared machine falls on both: the given revision (built from a git
# worktree into its own target directory, so neither build evicts the other) and the
# working tree.
# usage: bench/compare.sh <revision> [runs, default 3] [seconds, default 10] [connections, default 64]
# BENCH_PROFILE=profiling compares builds with symbols, so the same builds can be profiled.
set -euo pipefail
cd "$(dirname "$0")/.."
REVISION="${1:?usage: bench/compare.sh <revision> [runs] [seconds] [connections]}"
RUNS="${2:-3}"
SECONDS_PER_RUN="${3:-10}"
CONNECTIONS="${4:-64}"
BASE_TARGET="${COMPARE_TARGET_DIR:-$HOME/.cache/herald-target-compare}"
export BENCH_PROFILE="${BENCH_PROFILE:-release}"
BASE=$(mktemp -d)
trap 'git worktree remove --force "$BASE" >/dev/null 2>&1 || rm -rf "$BASE"' EXIT
git worktree add --detach --force "$BASE" "$REVISION" >/dev/null

run() { # label, directory, target directory
  (cd "$2" && CARGO_TARGET_DIR="$3" BENCH_ONLY_HERALD=1 \
    bash bench/mixed.sh "$SECONDS_PER_RUN" "$CONNECTIONS" 0 2>/dev/null) |
    grep -E '^(intake|herald cpu|herald end to end|cpu budget):' | sed "s/^/$1 /"
}
# Build both first: the runs then measure only Herald.
(cd "$BASE" && CARGO_TARGET_DIR="$BASE_TARGET" cargo build --profile "$BENCH_PROFILE" --locked -p herald-cli --bin herald >&2)
cargo build --profile "$BENCH_PROFILE" --locked -p herald-cli --bin herald >&2
for i in $(seq "$RUNS"); do
  run "$REVISION#$i" "$BASE" "$BASE_TARGET"
  run "working-tree#$i" . "${CARGO_TARGET_DIR:-$HOME/.cache/herald-target}"
done
