#!/usr/bin/env bash
# `make bench-quality`: BENCHMARKS.md, section "Decision quality": the example policy against
# the HPA at a fixed CPU target (--hpa-target 50), the HPA's whole curve (--hpa-sweep 30:90:10)
# and the oracle, on every bundled trace, the two-week World Cup trace and three held-out ones,
# through the simulator. Only the lines between the section's markers are rewritten.
#
# Each trace's service model is on its line of `runs` (the simulator's defaults unless it says
# otherwise): the World Cup traces peak at 2,817 requests/s, so their replicas serve 400 each and
# the policy's 10 replicas can carry the peak. The example's behaviour was chosen on the bundled
# traces, so the same shapes with other noise (the Makefile's QUALITY_TEST_SEED, written to
# target/bench) are run as well; they and the two-week World Cup trace are the test set.
# Then the section "Forecast": examples/forecast.yaml on the two-week trace, beside the same
# trace's run of the policy without the forecast.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
CARGO=${CARGO:-cargo}
policy=examples/recommended.yaml
runs=("examples/traces/spike.csv" "examples/traces/ramp.csv" "examples/traces/diurnal.csv"
  "examples/traces/worldcup98-1998-06-23.csv --capacity 400"
  "examples/traces/worldcup98-1998-06-10_23.csv --capacity 400")
held_out=(spike ramp diurnal)
# "Forecast": the policy with a daily forecast, on the one trace with the two full days of history
# it needs before it has a say (the last of `runs`), beside the same policy without it.
forecast_policy=examples/forecast.yaml
forecast_trace="examples/traces/worldcup98-1998-06-10_23.csv --capacity 400"
forecast_args="simulate --policy $forecast_policy --trace $forecast_trace --hpa-target 50"
# The test set's seed, from the Makefile (make bench-quality).
held_out_seed=$QUALITY_TEST_SEED

"$CARGO" build --locked --quiet
section=$(mktemp)
trap 'rm -f "$section" "$section.run" "$section.without"' EXIT

# The simulator run with the arguments $1, into "$section.run", and what BENCHMARKS.md shows of
# it: its command line (closing the ```sh block it is printed in), its text and its table.
run_and_show() {
  # shellcheck disable=SC2086 # a run's trace and options are words
  ./target/debug/scalewise $1 >"$section.run"
  printf 'scalewise %s\n```\n\n```text\n' "$1"
  grep -v '^|' "$section.run" | sed '/^$/d'
  printf '```\n\n'
  grep '^|' "$section.run"
  printf '\n'
}

# One run: its command, the simulator's text (the HPA curve's line last), its table and the goals.
one() {
  local args="simulate --policy $policy --trace $1 --hpa-target 50 --hpa-sweep 30:90:10"
  if [[ -n ${2:-} ]]; then
    printf '### %s (held out)\n\n```sh\nscalewise %s\n' "$1" "$2"
  else
    printf '### %s\n\n```sh\n' "${1%% *}"
  fi
  run_and_show "$args"
  # The goals of the decision-quality issue, for the policy (the first row of figures, named
  # after the policy) against `hpa` (at 50%), the HPA's curve and the oracle.
  awk -F'|' '
    function trim(s) { gsub(/^ +| +$/, "", s); return s }
    function verdict(ok) { return ok ? "met" : "not met" }
    !got && trim($3) ~ /^[0-9.]+$/ { pr = trim($3); pv = trim($4); pa = trim($5); po = trim($10); got = 1; next }
    trim($2) == "hpa" { hr = trim($3); hv = trim($4); ha = trim($5) }
    /^HPA curve/ { below = ($0 ~ /lies below the curve\.$/) }
    END {
      saving = hr > 0 ? (1 - pr / hr) * 100 : 0
      ratio = po; sub(/x$/, "", ratio)
      printf "Goals: SLO minutes %s against %s for `hpa` (%s); replica-hours %s against %s, %.0f%% fewer (at least 15%%: %s); scale actions %s against %s (at most half: %s); %s the HPA curve (%s); %s the oracle'"'"'s replica-hours (at most 1.15x: %s).\n\n",
        pv, hv, verdict(pv + 0 <= hv + 0), pr, hr, saving, verdict(saving >= 15),
        pa, ha, verdict(pa * 2 <= ha + 0), below ? "below" : "not below", verdict(below),
        po, verdict(ratio + 0 <= 1.15)
    }' "$section.run"
}

for run in "${runs[@]}"; do
  one "$run" >>"$section"
  if [[ $run == "$forecast_trace" ]]; then cp "$section.run" "$section.without"; fi
done
mkdir -p target/bench
for shape in "${held_out[@]}"; do
  trace=target/bench/$shape-seed$held_out_seed.csv
  generate="simulate --generate $shape --seed $held_out_seed --out $trace"
  # shellcheck disable=SC2086
  ./target/debug/scalewise $generate 2>/dev/null
  one "$trace" "$generate" >>"$section"
done
tests/bench/section.sh decision-quality "$section"

# The forecast's run, and its figures beside the same trace's run of the policy without it.
{
  printf '```sh\n'
  run_and_show "$forecast_args"
  # The first row of figures of each run is its policy's.
  awk -F'|' -v without="$policy" '
    function trim(s) { gsub(/^ +| +$/, "", s); return s }
    FNR == 1 { got = 0 }
    !got && trim($3) ~ /^[0-9.]+$/ {
      if (NR == FNR) { fr = trim($3); fv = trim($4); fa = trim($5); fo = trim($10) }
      else { wr = trim($3); wv = trim($4); wa = trim($5); wo = trim($10) }
      got = 1
    }
    END {
      change = wr > 0 ? (fr / wr - 1) * 100 : 0
      printf "With the forecast: %s replica-hours against %s without it (`%s` on the same trace, above), %+.1f%%; SLO minutes %s against %s; scale actions %s against %s; %s against %s of the oracle'"'"'s replica-hours.\n",
        fr, wr, without, change, fv, wv, fa, wa, fo, wo
    }' "$section.run" "$section.without"
  printf '\n'
} >"$section"
tests/bench/section.sh forecast "$section"
