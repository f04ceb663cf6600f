#!/usr/bin/env bash
# "Cache memory" in BENCHMARKS.md: the heap bytes one more pod, ScalingPolicy or
# HorizontalPodAutoscaler adds to the operator's watch caches, decoded and stripped as the
# controller does, from objects as a cluster serves them (tests/cache_memory.rs).
#
# Usage: make bench-cache
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cargo=${CARGO:-cargo}
figures=$(mktemp) section=$(mktemp)
trap 'rm -f "$figures" "$section"' EXIT
SCALEWISE_BENCH_OUT=$figures "$cargo" test --locked --test cache_memory -- --nocapture >&2
{
  printf 'Measured with `make bench-cache` on %s (%s): the heap bytes the store holds per object\n' \
    "$(date -u +%Y-%m-%d)" "$(rustc --version)"
  printf 'after 2,000 objects of each kind went through the decoding and stripping of the\n'
  printf "operator's watches (a counting allocator; the objects are those of tests/cache_memory.rs:\n"
  printf 'a Deployment pod with two containers, a policy with two metrics and a full status, an\n'
  printf 'autoscaling/v1 HPA, each with managed fields and annotations as a cluster serves them).\n\n'
  cat "$figures"
} >"$section"
tests/bench/section.sh cache-memory "$section"
