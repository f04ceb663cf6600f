#!/usr/bin/env bash
# `make demo`: scalewise scaling a simulated web service through a load surge, live.
#
#   examples/demo/run.sh
#
# 1. Builds scalewise and the demo workload (examples/demo_workload.rs), then re-runs itself
#    inside tests/env/run.sh: a fresh Kubernetes (etcd, kube-apiserver, kube-controller-manager,
#    kube-scheduler, KWOK nodes) and Prometheus on 127.0.0.1, installed or built on first use,
#    and always stopped on exit, on failure and on Ctrl-C.
# 2. Installs the CRD, creates the namespace `demo` and the Deployment `web` (2 replicas;
#    examples/demo/deployment.yaml), whose ReplicaSets' pods run on the KWOK nodes, starts the
#    workload (serving the load on those pods) and registers it with Prometheus (file_sd).
# 3. Creates the ScalingPolicy examples/demo/policy.yaml and starts `scalewise run`.
# 4. Every 5 s prints a row: the offered load, the Deployment's replicas, what the policy read
#    and decided, with every event of the policy (ScaledOut, ScaledIn with their reasons) as it
#    comes.
# 5. When the load curve ends (about 5 minutes), prints a summary and checks that the Deployment
#    was scaled out during the surge and back in afterwards; exits 1 otherwise.
#
# Logs and the recorded rows stay in target/demo/ (SCALEWISE_DEMO_DIR).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CARGO=${CARGO:-cargo}

say() { printf '%s\n' "$*"; }
fail() {
  printf 'demo: error: %s\n' "$*" >&2
  exit 1
}

if [[ ${SCALEWISE_DEMO_INSIDE:-0} != 1 ]]; then
  cd "$ROOT"
  say "demo: building scalewise and the demo workload"
  "$CARGO" build --locked --quiet --bin scalewise --example demo_workload
  say "demo: starting the test environment (etcd, kube-apiserver, Prometheus; the first run installs and builds them)"
  export SCALEWISE_DEMO_INSIDE=1
  exec "$ROOT/tests/env/run.sh" "$ROOT/examples/demo/run.sh" "$@"
fi

# --- Inside the test environment ----------------------------------------------------------------
# free_port and wait_for from the environment's helpers (it also sets -euo pipefail).
LOG_PREFIX=demo
source "$ROOT/tests/env/lib.sh"
cd "$ROOT"

: "${KUBECONFIG:?run through make demo (tests/env/run.sh sets KUBECONFIG)}"
: "${SCALEWISE_PROMETHEUS_URL:?run through make demo}"
: "${SCALEWISE_PROMETHEUS_FILE_SD_DIR:?run through make demo}"

NS=demo
NAME=web
POLICY=examples/demo/policy.yaml
OUT=${SCALEWISE_DEMO_DIR:-$ROOT/target/demo}
BIN=$ROOT/target/debug/scalewise
WORKLOAD_BIN=$ROOT/target/debug/examples/demo_workload
ROW_EVERY=5
[[ -x $BIN && -x $WORKLOAD_BIN ]] || fail "$BIN or $WORKLOAD_BIN is missing (run make demo)"
mkdir -p "$OUT"
rm -f "$OUT"/{query.txt,workload.log,scalewise.log,watch.tsv,watch.log,rows.tsv,decisions.tsv,events.tsv,summary.txt}
sd_file=$SCALEWISE_PROMETHEUS_FILE_SD_DIR/scalewise-demo.json

workload_pid="" operator_pid="" watcher_pid=""
# Stops what this script started, by PID; the environment is stopped by tests/env/run.sh.
cleanup() {
  local rc=$? pid i
  trap - EXIT INT TERM HUP
  rm -f "$sd_file"
  for pid in $operator_pid $workload_pid $watcher_pid; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $operator_pid $workload_pid $watcher_pid; do
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  case $rc in
    0) ;;
    129 | 130 | 143) say "demo: interrupted; logs in $OUT/" >&2 ;;
    *) say "demo: failed (exit $rc); logs in $OUT/ (workload.log, scalewise.log)" >&2 ;;
  esac
  exit "$rc"
}
trap_exit cleanup

k() { kubectl --request-timeout=10s "$@"; }


# --- 1. The CRD, the namespace and the Deployment -------------------------------------------------
say "demo: installing the ScalingPolicy CRD (crds/scalingpolicy.yaml)"
# Without client-side validation: kubectl checks against the server's (v1.20) schema, which knows
# no CEL rules (x-kubernetes-validations); the server drops what it does not know. Not `apply`:
# a recent kubectl's apply of this CRD is refused by a v1.20 server.
if k get crd scalingpolicies.scalewise.dev >/dev/null 2>&1; then
  k replace --validate=false -f crds/scalingpolicy.yaml >/dev/null
else
  k create --validate=false -f crds/scalingpolicy.yaml >/dev/null
fi
k wait --for condition=established --timeout=60s crd/scalingpolicies.scalewise.dev >/dev/null
say "demo: creating namespace $NS and Deployment $NS/$NAME with 2 replicas (examples/demo/deployment.yaml)"
k apply -f examples/demo/deployment.yaml >/dev/null

# --- 2. The workload ----------------------------------------------------------------------------
workload_port=""
# The Deployment's real pods (on the default environment, run by KWOK on fake nodes); the
# Debian-built 1.20 environment runs none, so the workload simulates one per replica there.
pod_source=cluster
[[ ${SCALEWISE_K8S_VERSION:-1.37} != 1.20 ]] || pod_source=simulated
workload_metrics() { curl -fsS --max-time 2 "http://127.0.0.1:$workload_port/metrics"; }
# Serving, and it has read the Deployment's replicas. (No `curl | grep -q` under pipefail: grep
# may exit before curl has written everything.)
workload_ready() { [[ $(workload_metrics 2>/dev/null) == *$'\ndemo_replicas_known 1\n'* ]]; }
for attempt in 1 2 3; do
  free_port workload_port
  "$WORKLOAD_BIN" --listen "127.0.0.1:$workload_port" --namespace "$NS" --deployment "$NAME" \
    --pods "$pod_source" >"$OUT/workload.log" 2>&1 &
  workload_pid=$!
  for ((i = 0; i < 100; i++)); do
    workload_ready && break
    kill -0 "$workload_pid" 2>/dev/null || break
    sleep 0.1
  done
  if workload_ready; then break; fi
  kill -TERM "$workload_pid" 2>/dev/null || true
  wait "$workload_pid" 2>/dev/null || true
  workload_pid=""
  say "demo: the workload did not start (attempt $attempt):" >&2
  tail -n 5 "$OUT/workload.log" >&2
done
[[ -n $workload_pid ]] || fail "the demo workload did not start; see $OUT/workload.log"

# The curve, as the workload has it.
metric() { awk -v m="$1" '$1 == m { print $2; exit }' <<<"$2"; }
m=$(workload_metrics)
surge_start=$(metric demo_surge_start_seconds "$m")
peak_start=$(metric demo_peak_start_seconds "$m")
peak_end=$(metric demo_peak_end_seconds "$m")
surge_end=$(metric demo_surge_end_seconds "$m")
length=$(metric demo_length_seconds "$m")
baseline=$(metric demo_baseline_requests_per_second "$m")
peak_load=$(metric demo_peak_requests_per_second "$m")
start_time=$(metric demo_start_time_seconds "$m")
say "demo: workload on http://127.0.0.1:$workload_port/metrics (pid $workload_pid): $(sed -n 's/^demo-workload: serving [^ ]* for //p' "$OUT/workload.log" | head -n 1)"

tmp=$sd_file.tmp
printf '[{"targets": ["127.0.0.1:%s"], "labels": {"job": "scalewise-demo"}}]\n' "$workload_port" >"$tmp"
mv "$tmp" "$sd_file"
# The policy's own queries, run by `scalewise query`, all answer (it exits 1 while any fails).
policy_metrics_read() { "$BIN" query --policy "$POLICY" --prometheus-url "$SCALEWISE_PROMETHEUS_URL" >"$OUT/query.txt" 2>&1; }
wait_for 60 "the policy's metrics in Prometheus (scalewise query --policy $POLICY)" policy_metrics_read
say "demo: Prometheus ($SCALEWISE_PROMETHEUS_URL) scrapes the workload every second; the policy's metrics, by scalewise query:"
# (Only each metric's value and PromQL.)
grep -Ev '^\s*(age query:|proposes:|$)|^a first evaluation|^proposals for' "$OUT/query.txt" | sed 's/^/      /'

# rate() over a window longer than the data reads low (Prometheus divides by the whole window), so
# the operator starts once its 20s windows are full.
t=$(metric demo_elapsed_seconds "$(workload_metrics)")
if awk -v t="$t" 'BEGIN { exit !(t < 21) }'; then
  say "demo: waiting for a full 20s metrics window"
  sleep "$(awk -v t="$t" 'BEGIN { printf "%.1f", 21 - t }')"
fi

# --- 3. The policy and the operator ------------------------------------------------------------
"$BIN" check -f "$POLICY" >/dev/null
# (A policy left by an earlier run in the same environment would carry its old status.)
k delete sp "$NAME" -n "$NS" --ignore-not-found >/dev/null
k apply -f "$POLICY" >/dev/null
# Every status write of the policy, as `kubectl get sp -w` sees it: one line per evaluation with its
# decision (status keeps only the last one; the ScaledOut/ScaledIn events of a series are folded
# into one by the event recorder, so this stream is the complete record of the decisions).
decision_template='{{with .status.lastDecision}}{{.time}}{{"\x1f"}}{{.action}}{{"\x1f"}}{{.from}}{{"\x1f"}}{{.to}}{{"\x1f"}}{{.message}}{{"\n"}}{{end}}'
kubectl get sp "$NAME" -n "$NS" --watch -o "go-template=$decision_template" >"$OUT/watch.tsv" 2>"$OUT/watch.log" &
watcher_pid=$!
max_replicas=$(k get sp "$NAME" -n "$NS" -o 'jsonpath={.spec.maxReplicas}')
min_replicas=$(k get sp "$NAME" -n "$NS" -o 'jsonpath={.spec.minReplicas}')
operator_port=""
evaluated() { [[ -n $(k get sp "$NAME" -n "$NS" -o 'jsonpath={.status.lastEvaluationTime}' 2>/dev/null) ]]; }
for attempt in 1 2 3; do
  free_port operator_port
  NO_COLOR=1 "$BIN" run --namespace "$NS" --leader-election false \
    --metrics-bind "127.0.0.1:$operator_port" --secure-metrics-bind 127.0.0.1:0 \
    --prometheus-url "$SCALEWISE_PROMETHEUS_URL" >"$OUT/scalewise.log" 2>&1 &
  operator_pid=$!
  # Started when it has evaluated the policy once (or given up: it exited).
  for ((i = 0; i < 300; i++)); do
    evaluated && break
    kill -0 "$operator_pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$operator_pid" 2>/dev/null && evaluated; then break; fi
  kill -TERM "$operator_pid" 2>/dev/null || true
  wait "$operator_pid" 2>/dev/null || true
  operator_pid=""
  say "demo: scalewise run did not evaluate the policy (attempt $attempt):" >&2
  tail -n 5 "$OUT/scalewise.log" >&2
done
[[ -n $operator_pid ]] || fail "scalewise run did not start; see $OUT/scalewise.log"
say "demo: scalewise run is watching namespace $NS (pid $operator_pid, log $OUT/scalewise.log)"
say "demo: policy $POLICY: $min_replicas..$max_replicas replicas, every 5s; cpu above 70% scales out by 2 and below 30% in by 2,"
say "      p95 latency above 0.5s or errors above 5% scale out; scale-in waits 15s after a change and for 20s of low proposals"
say ""

# --- 4. Live ------------------------------------------------------------------------------------
mmss() { awk -v t="$1" 'BEGIN { s = t < 0 ? "-" : ""; t = int((t < 0 ? -t : t) + 0.5); printf "%s%d:%02d", s, t / 60, t % 60 }'; }
# An RFC 3339 time as seconds since the start of the curve.
since_start() {
  local epoch
  epoch=$(date -d "$1" +%s.%N 2>/dev/null) || epoch=$(date +%s.%N)
  awk -v a="$epoch" -v b="$start_time" 'BEGIN { printf "%.1f", a - b }'
}
# The templates separate fields with \x1f: kubectl aligns tab-separated output into columns.
# What the policy read and decided at its last evaluation: desired, action, then name=value (or
# name=failure) per metric, then msg=the decision's message.
sp_template='{{with .status}}{{.desiredReplicas}}{{"\x1f"}}{{with .lastDecision}}{{.action}}{{end}}{{range .metrics}}{{"\x1f"}}{{.name}}={{if .failure}}{{.failure}}{{else}}{{.value}}{{end}}{{end}}{{"\x1f"}}msg={{with .lastDecision}}{{.message}}{{end}}{{end}}'
# The policy's events other than ScaledOut/ScaledIn (those come from the decisions): warnings
# such as MetricsFailed.
events_template='{{range .items}}{{if and (eq .involvedObject.kind "ScalingPolicy") (ne .reason "ScaledOut") (ne .reason "ScaledIn")}}{{.metadata.name}}{{"\x1f"}}{{.eventTime}}{{"\x1f"}}{{.type}}{{"\x1f"}}{{.reason}}{{"\x1f"}}{{.message}}{{"\n"}}{{end}}{{end}}'
declare -A seen_decisions=() seen_events=()

# Prints the scale decisions and other events not printed yet, and records them.
news() {
  local time action from to message name type reason t
  # (A line the watcher is still writing fails `read` and waits for the next call.)
  while IFS=$'\x1f' read -r time action from to message; do
    [[ $action == ScaleOut || $action == ScaleIn ]] || continue
    [[ -z ${seen_decisions[$time]:-} ]] || continue
    seen_decisions[$time]=1
    t=$(since_start "$time")
    printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$action" "$from" "$to" "$message" >>"$OUT/decisions.tsv"
    printf '  %5s  >> %-9s %s\n' "$(mmss "$t")" "$action" "$message"
  done <"$OUT/watch.tsv"
  while IFS=$'\x1f' read -r name time type reason message; do
    [[ -n $name && -z ${seen_events[$name]:-} ]] || continue
    seen_events[$name]=1
    t=$(since_start "$time")
    printf '%s\t%s\t%s\t%s\n' "$t" "$type" "$reason" "$message" >>"$OUT/events.tsv"
    printf '  %5s  >> event    %s %s: %s\n' "$(mmss "$t")" "$type" "$reason" "$message"
  done < <(k get events -n "$NS" -o "go-template=$events_template" 2>/dev/null || true)
}

header() {
  printf '  %5s  %-9s %5s %8s %7s %6s %7s %7s  %-9s  %s\n' \
    TIME PHASE LOAD REPLICAS DESIRED CPU% P95 ERRORS ACTION "LAST DECISION"
}
# A number times SCALE with DECIMALS decimals, "-" for nothing, or the failure kind as it is.
fmt_value() {
  awk -v v="$1" -v s="$2" -v d="$3" 'BEGIN {
    if (v ~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/) printf "%." d "f", v * s; else if (v == "") printf "-"; else printf "%s", v }'
}

say "Every ${ROW_EVERY}s: the offered load (req/s), the Deployment's spec.replicas, the policy's desired replicas,"
say "its metrics (cpu % of requests, p95 latency in seconds, error ratio) and its last decision."
say "Lines with >> are scale decisions as they happen (TIME is seconds since the workload started),"
say "and the Deployment's Running pods whenever they change."
say ""
header
rows=0
while :; do
  kill -0 "$workload_pid" 2>/dev/null || fail "the workload exited; see $OUT/workload.log"
  kill -0 "$operator_pid" 2>/dev/null || fail "scalewise run exited; see $OUT/scalewise.log"
  m=$(workload_metrics) || fail "cannot read the workload's /metrics"
  t=$(metric demo_elapsed_seconds "$m")
  load=$(metric demo_offered_load_requests_per_second "$m")
  phase=$(sed -n 's/^demo_phase{phase="\([^"]*\)"} 1$/\1/p' <<<"$m")
  replicas=$(k get deploy "$NAME" -n "$NS" -o 'jsonpath={.spec.replicas}' 2>/dev/null || echo '?')
  # The Deployment's pods as its ReplicaSets created them (on the test environment, running on
  # KWOK's fake nodes), listed when they change.
  running=$(k get pods -n "$NS" -l "app=$NAME" --field-selector=status.phase=Running -o name 2>/dev/null |
    sed 's|^pod/||' | sort | tr '\n' ' ' || true)
  if [[ $running != "${last_running-unset}" ]]; then
    last_running=$running
    count=$(wc -w <<<"$running")
    if ((count > 0)); then
      printf '  %5s  >> pods     %s Running: %s\n' "$(mmss "$t")" "$count" "${running% }"
    else
      printf '  %5s  >> pods     none Running (a cluster without controllers or nodes runs none)\n' "$(mmss "$t")"
    fi
  fi
  line=$(k get sp "$NAME" -n "$NS" -o "go-template=$sp_template" 2>/dev/null || true)
  desired="" action="" cpu="" p95="" errors="" message=""
  IFS=$'\x1f' read -r -a fields <<<"$line"
  for f in "${fields[@]}"; do
    case $f in
      cpu=*) cpu=${f#cpu=} ;;
      latency-p95=*) p95=${f#latency-p95=} ;;
      errors=*) errors=${f#errors=} ;;
      msg=*) message=${f#msg=} ;;
    esac
  done
  if [[ ${#fields[@]} -ge 2 ]]; then desired=${fields[0]} action=${fields[1]}; fi
  news
  if ((rows > 0 && rows % 20 == 0)); then header; fi
  printf '  %5s  %-9s %5.0f %8s %7s %6s %7s %7s  %-9s  %s\n' "$(mmss "$t")" "$phase" "$load" "$replicas" \
    "${desired:--}" "$(fmt_value "$cpu" 1 0)" "$(fmt_value "$p95" 1 3)" "$(fmt_value "$errors" 100 1)%" \
    "${action:--}" "${message:--}"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$phase" "$load" "$replicas" "$desired" \
    "$cpu" "$p95" "$errors" "$action" "$message" >>"$OUT/rows.tsv"
  rows=$((rows + 1))
  if awk -v t="$t" -v l="$length" 'BEGIN { exit !(t >= l) }'; then break; fi
  # Sleep to the next multiple of ROW_EVERY seconds of the curve, or to its end.
  sleep "$(awk -v t="$t" -v e="$ROW_EVERY" -v l="$length" 'BEGIN {
    n = (int(t / e) + 1) * e; if (n > l) n = l; s = n - t; if (s < 0.05) s = 0.05; printf "%.2f", s }')"
done
news

# --- 5. Summary -------------------------------------------------------------------------------
initial_replicas=2
final_replicas=$(k get deploy "$NAME" -n "$NS" -o 'jsonpath={.spec.replicas}')
end_t=$t
touch "$OUT/decisions.tsv"
# Replicas over time from the decisions, in order: path, peak, first time at peak, seconds at
# maxReplicas, scale-outs before the surge, scale-outs during it, scale-ins after its peak, the
# replicas the last decision left.
IFS=$'\t' read -r path peak peak_at at_max outs_before outs_in_surge ins_after last_to < <(
  sort -t $'\t' -k1,1n "$OUT/decisions.tsv" |
    awk -F '\t' -v r="$initial_replicas" -v max="$max_replicas" -v end="$end_t" \
      -v s0="$surge_start" -v s1="$surge_end" -v pe="$peak_end" '
    function mmss(t) { t = int(t + 0.5); return sprintf("%d:%02d", t / 60, t % 60) }
    BEGIN { t0 = 0; peak = r; peak_t = 0; at_max = 0; path = r " (0:00)"; before = 0; during = 0; after = 0 }
    {
      if (r == max) at_max += $1 - t0
      r = $4 + 0; t0 = $1
      path = path " -> " r " (" mmss($1) ")"
      if (r > peak) { peak = r; peak_t = $1 }
      if ($2 == "ScaleOut" && $1 < s0) before++
      if ($2 == "ScaleOut" && $1 >= s0 && $1 <= s1) during++
      if ($2 == "ScaleIn" && $1 >= pe) after++
    }
    END {
      if (r == max) at_max += end - t0
      printf "%s\t%d\t%s\t%.0f\t%d\t%d\t%d\t%d\n", path, peak, mmss(peak_t), at_max, before, during, after, r
    }')
# The same from the workload's side: the replicas it saw, read every second from the API server.
# The workload logs `t=53s demo/web has 4 pods, 4 Ready` whenever its pods change.
seen=$(awk '/ has [0-9]+ pods, [0-9]+ Ready$/ { sub(/^t=/, "", $2); sub(/s$/, "", $2); t = $2 + 0;
  printf "%s%d (%d Ready, %d:%02d)", (n++ ? " -> " : ""), $5, $7, t / 60, t % 60 }' "$OUT/workload.log")

{
  say ""
  say "=== Summary: $(mmss "$end_t") of simulated traffic"
  say "load:        $baseline req/s at rest; surge from $(mmss "$surge_start"), $peak_load req/s $(mmss "$peak_start")-$(mmss "$peak_end"), back to rest at $(mmss "$surge_end")"
  say "replicas:    $path"
  say "             (as the workload saw them: $seen)"
  say "peak:        $peak replicas, first at $peak_at; ${at_max}s at maxReplicas ($max_replicas)"
  say "final:       $final_replicas replicas"
  say "scale decisions:"
  if [[ -s $OUT/decisions.tsv ]]; then
    sort -t $'\t' -k1,1n "$OUT/decisions.tsv" | awk -F '\t' '
      function mmss(t) { t = int(t + 0.5); return sprintf("%d:%02d", t / 60, t % 60) }
      { printf "  %5s  %-9s %s\n", mmss($1), $2, $5 }'
  else
    say "  (none)"
  fi
  if [[ -s $OUT/events.tsv ]]; then
    say "other events:"
    awk -F '\t' '{ printf "  %s %s: %s\n", $2, $3, $4 }' "$OUT/events.tsv"
  fi
  say "checks:"
} >"$OUT/summary.txt"
failed=0
check() { # TEXT, then the condition as a command
  local text=$1
  shift
  if "$@"; then
    say "  ok    $text" >>"$OUT/summary.txt"
  else
    say "  FAIL  $text" >>"$OUT/summary.txt"
    failed=1
  fi
}
check "no scale-out before the surge ($outs_before)" test "$outs_before" -eq 0
check "scaled out during the surge ($outs_in_surge scale-outs between $(mmss "$surge_start") and $(mmss "$surge_end"), peak $peak > $initial_replicas)" \
  test "$outs_in_surge" -gt 0 -a "$peak" -gt "$initial_replicas"
check "scaled back in after the surge ($ins_after scale-ins after $(mmss "$peak_end"))" test "$ins_after" -gt 0
check "back at $initial_replicas replicas at the end (Deployment: $final_replicas; last decision: $last_to)" \
  test "$final_replicas" -eq "$initial_replicas" -a "$last_to" -eq "$final_replicas"
cat "$OUT/summary.txt"
[[ $failed == 0 ]] || fail "the demo did not show the expected scaling; see $OUT/"
say ""
say "demo: passed; records in $OUT/ (rows.tsv, decisions.tsv, summary.txt, logs); stopping everything"
