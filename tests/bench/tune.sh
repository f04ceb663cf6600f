#!/usr/bin/env bash
# "Tuning" in BENCHMARKS.md: the search behind examples/recommended.yaml, on the training set
# only (tests/bench_tune.rs says which traces, which candidates and how they are judged).
#
# Usage: make bench-tune
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cargo=${CARGO:-cargo}
section=$(mktemp) run=$(mktemp)
trap 'rm -f "$section" "$run"' EXIT
"$cargo" test --release --locked --test bench_tune -- --ignored --nocapture --test-threads 1 >"$run"
{
  printf 'Searched with `make bench-tune` on %s.\n\n' "$(date -u +%Y-%m-%d)"
  # The test's own lines (running, ok, result) are not the section's.
  # (libtest prints the test's name before its output, on the same line, and `ok` after it.)
  sed -e '/^running [0-9]* test/d' -e 's/^test tuning_search \.\.\. //' -e '/^ok$/d' \
    -e '/^test result:/d' "$run" | sed -e '/./,$!d'
} >"$section"
tests/bench/section.sh tuning "$section"
