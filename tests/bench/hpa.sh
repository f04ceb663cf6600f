#!/usr/bin/env bash
# `make bench-hpa`: BENCHMARKS.md, section "Beside the real HPA". Two identical Deployments of the
# demo's web service face the same load surge on the test environment (Kubernetes 1.37, KWOK
# nodes, prometheus-adapter): hpa-web is scaled by an autoscaling/v2 HPA (tests/bench/hpa/hpa.yaml)
# through the HPA controller of kube-controller-manager, sw-web by `scalewise run` with the same
# target written as a ScalingPolicy (tests/bench/hpa/policy.yaml). Each Deployment has its own
# demo workload (examples/demo_workload.rs) with the same curve, serving its Ready pods.
#
#   tests/bench/hpa.sh        (SCALEWISE_BENCH_HPA_RUNS=N runs, default 2, each in a fresh namespace)
#
# Every second it records both Deployments' replicas and the model's p95 latency and error rate of
# both services; afterwards it counts each autoscaler's requests in the API server's audit log,
# by user. Everything of a run stays in target/bench/hpa/ (samples.tsv per run, logs).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CARGO=${CARGO:-cargo}
die() {
  printf 'bench-hpa: error: %s\n' "$*" >&2
  exit 1
}
say() { printf 'bench-hpa: %s\n' "$*" >&2; }

if [[ ${SCALEWISE_BENCH_INSIDE:-0} != 1 ]]; then
  cd "$ROOT"
  [[ ${SCALEWISE_K8S_VERSION:-1.37} == 1.37 ]] ||
    die "needs the Kubernetes 1.37 test environment (the HPA of kube-controller-manager, KWOK, prometheus-adapter)"
  [[ ${SCALEWISE_E2E_CLUSTER:-0} != 1 ]] ||
    die "runs on the local test environment only: it reads the API server's audit log"
  say "building scalewise and the demo workload"
  "$CARGO" build --locked --quiet --bin scalewise --example demo_workload
  export SCALEWISE_BENCH_INSIDE=1
  exec "$ROOT/tests/env/run.sh" "$ROOT/tests/bench/hpa.sh" "$@"
fi

# --- Inside the test environment ----------------------------------------------------------------
source "$ROOT/tests/env/lib.sh"
cd "$ROOT"
: "${SCALEWISE_AUDIT_LOG:?the environment has no audit log: run through make bench-hpa}"
BIN=$ROOT/target/debug/scalewise
WORKLOAD_BIN=$ROOT/target/debug/examples/demo_workload
OUT=$ROOT/target/bench/hpa
RUNS=${SCALEWISE_BENCH_HPA_RUNS:-2}
[[ $RUNS =~ ^[1-9]$ ]] || die "SCALEWISE_BENCH_HPA_RUNS=$RUNS: 1 to 9 runs"
# The load: 40 req/s, rising from 0:30 to 300 req/s at 0:50, held for 2 minutes, back to 40 req/s
# at 3:10; the run ends at 9:00, after the HPA's 300 s scale-down stabilization has passed.
CURVE=(--surge-start 30s --ramp 20s --surge 2m --length 9m)
SURGE_START=30
SA_USER=system:serviceaccount:scalewise-system:scalewise
HPA_USER=system:serviceaccount:kube-system:horizontal-pod-autoscaler
mkdir -p "$OUT"
rm -f "$OUT"/run-*.tsv "$OUT"/*.log

pids=()
sd_files=()
cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM HUP
  rm -f "${sd_files[@]}"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [[ $rc == 0 ]] || say "failed (exit $rc); logs in $OUT/"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
k() { kubectl --request-timeout=10s "$@"; }
wait_for() {
  local timeout=$1 what=$2 i
  shift 2
  for ((i = 0; i < timeout * 5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "timed out after ${timeout}s waiting for $what"
}

# The operator's own identity, so that the audit log tells its requests from everyone else's.
k apply -f crds/scalingpolicy.yaml >/dev/null
k wait --for condition=established --timeout=60s crd/scalingpolicies.scalewise.dev >/dev/null
k apply -f deploy/namespace.yaml -f deploy/rbac.yaml >/dev/null
token=$(k create token scalewise -n scalewise-system --duration 2h)
(umask 077 && sed -e "s/^      token: .*/      token: $token/" "$KUBECONFIG" >"$OUT/scalewise.kubeconfig")

# One run in namespace $1, its samples into $2.
one_run() {
  local ns=$1 samples=$2 name workload_port
  k create namespace "$ns" >/dev/null
  for name in hpa-web sw-web; do
    sed "s/NAME/$name/g" tests/bench/hpa/deployment.yaml | k apply -n "$ns" -f - >/dev/null
  done
  ready_two() { [[ $(k get deploy hpa-web sw-web -n "$ns" -o 'jsonpath={.items[*].status.readyReplicas}') == "2 2" ]]; }
  wait_for 120 "2 Ready pods of each Deployment" ready_two

  # Both workloads at once: the same curve from the same second.
  local ports=()
  for name in hpa-web sw-web; do
    free_port workload_port
    "$WORKLOAD_BIN" --listen "127.0.0.1:$workload_port" --namespace "$ns" --deployment "$name" \
      "${CURVE[@]}" >"$OUT/$ns-$name-workload.log" 2>&1 &
    pids+=($!)
    ports+=("$workload_port")
  done
  for workload_port in "${ports[@]}"; do
    wait_for 30 "the workload on port $workload_port" curl -fsS "http://127.0.0.1:$workload_port/metrics"
  done
  local sd=$SCALEWISE_PROMETHEUS_FILE_SD_DIR/bench-$ns.json
  printf '[{"targets": ["127.0.0.1:%s", "127.0.0.1:%s"], "labels": {"job": "bench-hpa"}}]\n' \
    "${ports[0]}" "${ports[1]}" >"$sd.tmp"
  mv "$sd.tmp" "$sd"
  sd_files+=("$sd")

  # Both autoscalers at once.
  local operator_port
  free_port operator_port
  NO_COLOR=1 KUBECONFIG=$OUT/scalewise.kubeconfig "$BIN" run --namespace "$ns" --leader-election false \
    --metrics-bind "127.0.0.1:$operator_port" \
    --prometheus-url "$SCALEWISE_PROMETHEUS_URL" >"$OUT/$ns-scalewise.log" 2>&1 &
  local operator=$!
  pids+=("$operator")
  k apply -n "$ns" -f tests/bench/hpa/hpa.yaml -f tests/bench/hpa/policy.yaml >/dev/null
  local started
  started=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
  say "$ns: load, HPA and ScalingPolicy started at $started; the run takes 9 minutes"

  # Every second: time on the curve, replicas and ready pods of both, the SLO of both.
  printf 't\thpa_replicas\thpa_ready\thpa_p95\thpa_errors\tsw_replicas\tsw_ready\tsw_p95\tsw_errors\n' >"$samples"
  local m0 m1 t replicas h s hr hready sr sready
  gauge() { awk -v m="$1" '$1 == m { print $2; exit }' <<<"$2"; }
  while :; do
    m0=$(curl -fsS --max-time 2 "http://127.0.0.1:${ports[0]}/metrics") || die "the hpa-web workload stopped"
    m1=$(curl -fsS --max-time 2 "http://127.0.0.1:${ports[1]}/metrics") || die "the sw-web workload stopped"
    t=$(gauge demo_elapsed_seconds "$m0")
    # "replicas/ready" of each (readyReplicas is absent while none is Ready).
    replicas=$(k get deploy hpa-web sw-web -n "$ns" \
      -o 'jsonpath={range .items[*]}{.spec.replicas}{"/"}{.status.readyReplicas}{" "}{end}')
    read -r h s <<<"$replicas"
    hr=${h%/*} hready=${h#*/} sr=${s%/*} sready=${s#*/}
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$hr" "${hready:-0}" \
      "$(gauge demo_latency_p95_seconds "$m0")" "$(gauge demo_error_ratio "$m0")" \
      "$sr" "${sready:-0}" "$(gauge demo_latency_p95_seconds "$m1")" "$(gauge demo_error_ratio "$m1")" >>"$samples"
    awk -v t="$t" 'BEGIN { exit !(t >= 540) }' && break
    kill -0 "$operator" 2>/dev/null || die "scalewise run exited; see $OUT/$ns-scalewise.log"
    sleep 1
  done
  local ended
  ended=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
  k delete -n "$ns" -f tests/bench/hpa/hpa.yaml -f tests/bench/hpa/policy.yaml >/dev/null
  kill -TERM "$operator" 2>/dev/null || true
  wait "$operator" 2>/dev/null || true
  printf '%s\t%s\n' "$started" "$ended" >"$samples.window"
}

for ((run = 1; run <= RUNS; run++)); do
  one_run "bench-$run" "$OUT/run-$run.tsv"
done
# The audit log's last events are written within a second or so.
sleep 3

# Figures per run and autoscaler, and the section.
section=$OUT/section.md
commit=$(git rev-parse --short HEAD)
python3 - "$OUT" "$RUNS" "$SURGE_START" "$SCALEWISE_AUDIT_LOG" "$SA_USER" "$HPA_USER" "$commit" >"$section" <<'PY'
import json, sys, datetime, collections
out, runs, surge_start, audit, sa_user, hpa_user, commit = sys.argv[1:]
runs, surge_start = int(runs), float(surge_start)

def figures(rows, who):
    first = None
    replica_seconds = over_slo = 0.0
    actions = 0
    peak = 0
    prev_t = prev_r = None
    for row in rows:
        t, r = float(row["t"]), int(row[who + "_replicas"])
        p95, err = float(row[who + "_p95"]), float(row[who + "_errors"])
        peak = max(peak, r)
        if prev_t is not None:
            dt = t - prev_t
            replica_seconds += prev_r * dt
            if p95 > 0.5 or err > 0.01:
                over_slo += dt
            if r != prev_r:
                actions += 1
        if first is None and r > 2:
            first = t - surge_start
        prev_t, prev_r = t, r
    return {"first": first, "rs": replica_seconds, "actions": actions, "slo": over_slo,
            "peak": peak, "final": prev_r}

def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))

windows, results = [], []
for run in range(1, runs + 1):
    with open(f"{out}/run-{run}.tsv") as f:
        header = f.readline().rstrip("\n").split("\t")
        rows = [dict(zip(header, line.rstrip("\n").split("\t"))) for line in f if line.strip()]
    with open(f"{out}/run-{run}.tsv.window") as f:
        start, end = (parse_time(x) for x in f.read().split())
    windows.append((start, end))
    results.append({"hpa": figures(rows, "hpa"), "sw": figures(rows, "sw")})

# Requests by user within each run's window (ResponseComplete, or Panic; a watch counts once).
calls = [collections.Counter() for _ in range(runs)]
verbs = [collections.defaultdict(collections.Counter) for _ in range(runs)]
with open(audit) as f:
    for line in f:
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("stage") not in ("ResponseComplete", "Panic", "ResponseStarted"):
            continue
        if e.get("stage") == "ResponseStarted" and e.get("verb") != "watch":
            continue
        if e.get("stage") == "ResponseComplete" and e.get("verb") == "watch":
            continue
        user = e.get("user", {}).get("username")
        who = {sa_user: "sw", hpa_user: "hpa"}.get(user)
        if who is None:
            continue
        at = parse_time(e["requestReceivedTimestamp"])
        for i, (start, end) in enumerate(windows):
            if start <= at <= end:
                calls[i][who] += 1
                verbs[i][who][e.get("verb")] += 1
for i in range(runs):
    for who in ("hpa", "sw"):
        results[i][who]["api"] = calls[i][who]
        results[i][who]["verbs"] = dict(verbs[i][who])

def show(v, unit=""):
    return "none" if v is None else (f"{v:.0f}{unit}" if isinstance(v, float) else f"{v}{unit}")

names = {"hpa": "HPA (kube-controller-manager v1.37)", "sw": "scalewise"}
today = datetime.date.today().isoformat()
print(f"Run on {today}, commit {commit}, {runs} runs, with:\n")
print("```sh\nmake bench-hpa\n```\n")
print("| run | autoscaler | first scale-out after the surge starts (s) | replica-seconds | scale actions | seconds over the SLO | peak replicas | API requests |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for i, r in enumerate(results, 1):
    for who in ("hpa", "sw"):
        x = r[who]
        print(f"| {i} | {names[who]} | {show(x['first'])} | {x['rs']:.0f} | {x['actions']} | {x['slo']:.0f} | {x['peak']} | {x['api']} |")
print()
print("API requests by verb, per run: " + "; ".join(
    f"run {i}: HPA " + ", ".join(f"{v} {n}" for v, n in sorted(r['hpa']['verbs'].items()))
    + ", scalewise " + ", ".join(f"{v} {n}" for v, n in sorted(r['sw']['verbs'].items()))
    for i, r in enumerate(results, 1)) + ".")
print()
# A difference is called noise when it is no larger than the spread of the same autoscaler's
# figure between runs (with one run, nothing can be said).
lines = []
for key, label in (("first", "time to the first scale-out"), ("rs", "replica-seconds"),
                   ("actions", "scale actions"), ("slo", "seconds over the SLO"), ("api", "API requests")):
    vals = {w: [r[w][key] for r in results if r[w][key] is not None] for w in ("hpa", "sw")}
    if not vals["hpa"] or not vals["sw"]:
        lines.append(f"- {label}: not comparable (an autoscaler never scaled out)")
        continue
    mean = {w: sum(v) / len(v) for w, v in vals.items()}
    spread = max(max(v) - min(v) for v in vals.values())
    diff = mean["sw"] - mean["hpa"]
    if runs < 2:
        verdict = "one run: run-to-run noise unknown"
    elif abs(diff) <= spread:
        verdict = f"within run-to-run noise (the runs differ by up to {spread:.0f})"
    else:
        verdict = f"beyond run-to-run noise (the runs differ by up to {spread:.0f})"
    lines.append(f"- {label}: scalewise {mean['sw']:.0f}, HPA {mean['hpa']:.0f} (mean of {runs}); {verdict}")
print("\n".join(lines))
PY
tests/bench/section.sh hpa-beside "$section"
cat "$section" >&2
