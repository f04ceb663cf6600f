#!/usr/bin/env bash
# `make bench-quality`: BENCHMARKS.md, section "Decision quality": the example policy against
# the HPA baseline on every bundled trace, through the simulator. Only the lines between the
# section's markers are rewritten.
#
# The World Cup day peaks at 2,817 requests/s: its replicas serve 400 each, so that the policy's
# 10 replicas can carry the peak. The example's behaviour was chosen on the bundled traces, so the
# same shapes with other noise (seed 7, written to target/bench) are run as well, as a check on it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
CARGO=${CARGO:-cargo}
policy=examples/web-service.yaml
runs=("examples/traces/spike.csv" "examples/traces/ramp.csv" "examples/traces/diurnal.csv"
  "examples/traces/worldcup98-1998-06-23.csv --capacity 400")
held_out=(spike ramp diurnal)
held_out_seed=7

"$CARGO" build --locked --quiet
section=$(mktemp)
trap 'rm -f "$section" "$section.run"' EXIT

# One run: its command, the simulator's text, its table and whether the target is met.
one() {
  local args="simulate --policy $policy --trace $1 --compare hpa"
  # shellcheck disable=SC2086 # a run's trace and options are words
  ./target/debug/scalewise $args >"$section.run"
  if [[ -n ${2:-} ]]; then
    printf '### %s (held out)\n\n```sh\nscalewise %s\n' "$1" "$2"
  else
    printf '### %s\n\n```sh\n' "${1%% *}"
  fi
  printf 'scalewise %s\n```\n\n```text\n' "$args"
  grep -v '^|' "$section.run" | sed '/^$/d'
  printf '```\n\n'
  grep '^|' "$section.run"
  printf '\n'
  awk -F'|' '
    function trim(s) { gsub(/^ +| +$/, "", s); return s }
    function word(a, b) { return a + 0 < b + 0 ? "fewer" : (a + 0 > b + 0 ? "more" : "equal") }
    # The policy is the first row of figures (it is named after the policy).
    !got && trim($3) ~ /^[0-9.]+$/ { sr = trim($3); sv = trim($4); sa = trim($5); got = 1 }
    trim($2) == "hpa" { hr = trim($3); hv = trim($4); ha = trim($5) }
    END {
      met = (sv + 0 <= hv + 0 && sr + 0 < hr + 0 && sa + 0 < ha + 0) ? "met" : "not met"
      printf "Target %s: minutes violating the SLO %s against %s for the HPA (%s), replica-hours %s against %s (%s), scale actions %s against %s (%s).\n\n",
        met, sv, hv, word(sv, hv), sr, hr, word(sr, hr), sa, ha, word(sa, ha)
    }' "$section.run"
}

for run in "${runs[@]}"; do one "$run" >>"$section"; done
mkdir -p target/bench
for shape in "${held_out[@]}"; do
  trace=target/bench/$shape-seed$held_out_seed.csv
  generate="simulate --generate $shape --seed $held_out_seed --out $trace"
  # shellcheck disable=SC2086
  ./target/debug/scalewise $generate 2>/dev/null
  one "$trace" "$generate" >>"$section"
done
tests/bench/section.sh decision-quality "$section"
