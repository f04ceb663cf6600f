#!/usr/bin/env bash
# "Many policies" in BENCHMARKS.md: N Deployments and N policies on the test environment (its API
# server, etcd, Prometheus scraping every second, KWOK pods) with `scalewise run` (release build)
# on one replica or sharded; tests/bench_scale.rs measures and prints one table row per run.
#
# Usage: make bench-scale
#   SCALEWISE_BENCH_SCALE_RUNS="POLICIES:REPLICAS ..." (default "1000:1 1000:3 10000:1"), each
#   run in a fresh test environment; SCALEWISE_BENCH_SCALE_INTERVAL seconds (default 15).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cargo=${CARGO:-cargo}
runs=${SCALEWISE_BENCH_SCALE_RUNS:-"1000:1 1000:3 10000:1"}
interval=${SCALEWISE_BENCH_SCALE_INTERVAL:-15}
rows=$(mktemp) section=$(mktemp)
trap 'rm -f "$rows" "$section"' EXIT
for run in $runs; do
  [[ $run =~ ^[0-9]+:[0-9]+$ ]] || { echo "bench-scale: $run: POLICIES:REPLICAS" >&2; exit 1; }
  echo "bench-scale: $run (policies:replicas), interval ${interval}s" >&2
  # The controller-manager creates the Deployments' pods at 200 requests a second (its default,
  # 20, takes most of an hour for 10,000). A run that fails is a row saying so; the others stay.
  if ! SCALEWISE_BENCH_SCALE_POLICIES=${run%%:*} SCALEWISE_BENCH_SCALE_REPLICAS=${run##*:} \
    SCALEWISE_BENCH_SCALE_INTERVAL=$interval SCALEWISE_ENV_KCM_QPS=200 \
    tests/env/run.sh "$cargo" test --release --locked --test bench_scale -- --ignored --nocapture |
    grep -E '^(\| |<!-- replica|profile\| )' | tee -a "$rows" >&2; then
    printf '| %s | %ss | %s | the run did not finish (see its log) | | | | | | | | |\n' \
      "${run%%:*}" "$interval" "${run##*:}" | tee -a "$rows" >&2
  fi
done
{
  printf 'Measured with `make bench-scale` on %s (2 cores; the API server, etcd, Prometheus, KWOK and\n' "$(date -u +%Y-%m-%d)"
  printf 'the operator on the same machine; runs: `%s`, interval %ss). Each policy has one custom-query\n' "$runs" "$interval"
  printf 'metric; status heartbeat 10m, write-ahead intents, conditional scale writes and fencing on.\n'
  printf 'Lateness is read from the operator'"'"'s histogram (a bucket bound); CPU is cores over a steady\n'
  printf 'window of four intervals, per replica when sharded; RSS is MiB (steady / peak over the run);\n'
  printf 'writes are all API writes per second during the steady window, counted by the API server.\n\n'
  printf '| policies | interval | replicas | created in | all evaluated after | lateness p50 / p99 | reaction p50 / p99 | Prometheus queries per interval | operator CPU (cores) | RSS MiB steady / peak | API writes/s (top ones) | 429s |\n'
  printf '|---|---|---|---|---|---|---|---|---|---|---|---|\n'
  grep '^| ' "$rows"
  if grep -q '^<!-- replica' "$rows"; then
    printf '\nPolicies per replica in the sharded runs: %s.\n' \
      "$(grep '^<!-- replica' "$rows" | sed -E 's/<!-- replica [0-9]+: ([0-9.]+) policies -->/\1/' | paste -sd, -)"
  fi
  if grep -q '^profile| ' "$rows"; then
    printf '\nWhere the (first) replica'"'"'s CPU went over the steady window: `perf record -e cpu-clock -F 499`\n'
    printf 'of its process, self time by function, functions with at least 2%% of the samples.\n\n'
    printf '| run (policies:replicas) | share of samples | function |\n|---|---|---|\n'
    grep '^profile| ' "$rows" | sed 's/^profile|/|/'
  fi
} >"$section"
tests/bench/section.sh many-policies "$section"
