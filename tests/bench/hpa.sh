#!/usr/bin/env bash
# `make bench-hpa`: BENCHMARKS.md, section "Beside the real HPA". Three identical Deployments of
# the demo's web service face the same load surge on the test environment (Kubernetes 1.37, KWOK
# nodes, prometheus-adapter): hpa-web is scaled by an autoscaling/v2 HPA (tests/bench/hpa/hpa.yaml)
# through the HPA controller of kube-controller-manager, sw-web by `scalewise run` with the same
# target written as a ScalingPolicy (tests/bench/hpa/policy.yaml), keda-web by KEDA's operator and
# metrics server (tests/bench/hpa/scaledobject.yaml; built by tests/env/build-keda.sh, and
# registered as external.metrics.k8s.io in place of prometheus-adapter for the benchmark, which
# restores the adapter's registration afterwards). Each Deployment has its own demo workload
# (examples/demo_workload.rs) with the same curve, serving its Ready pods.
#
#   tests/bench/hpa.sh   SCALEWISE_BENCH_HPA_RUNS=N runs (default 2), each in a fresh namespace;
#                        SCALEWISE_BENCH_KEDA=0 leaves KEDA out
#
# Every second it records each Deployment's replicas and its service's p95 latency and error rate
# (the workload's model); afterwards it counts each autoscaler's requests in the API server's
# audit log, by user. Everything stays in target/bench/hpa/ (run-N.tsv, the autoscalers' audit
# events, logs), and `python3 tests/bench/hpa_figures.py` can compute the figures again from it.
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
  SCALEWISE_BENCH_KEDA_DIR=""
  if [[ ${SCALEWISE_BENCH_KEDA:-1} == 1 ]]; then
    SCALEWISE_BENCH_KEDA_DIR=$("$ROOT/tests/env/build-keda.sh")
  fi
  export SCALEWISE_BENCH_INSIDE=1 SCALEWISE_BENCH_KEDA_DIR
  exec "$ROOT/tests/env/run.sh" "$ROOT/tests/bench/hpa.sh" "$@"
fi

# --- Inside the test environment ----------------------------------------------------------------
# free_port, wait_for, die and log from the environment's helpers.
LOG_PREFIX=bench-hpa
source "$ROOT/tests/env/lib.sh"
cd "$ROOT"
: "${SCALEWISE_AUDIT_LOG:?the environment has no audit log: run through make bench-hpa}"
BIN=$ROOT/target/debug/scalewise
WORKLOAD_BIN=$ROOT/target/debug/examples/demo_workload
KEDA_DIR=${SCALEWISE_BENCH_KEDA_DIR:-}
OUT=$ROOT/target/bench/hpa
RUNS=${SCALEWISE_BENCH_HPA_RUNS:-2}
[[ $RUNS =~ ^[1-9]$ ]] || die "SCALEWISE_BENCH_HPA_RUNS=$RUNS: 1 to 9 runs"
# The load: 40 req/s, rising from 0:30 to 300 req/s at 0:50, held for 2 minutes, back to 40 req/s
# at 3:10; the run ends at 9:00, after the HPA's 300 s scale-down stabilization has passed.
CURVE=(--surge-start 30s --ramp 20s --surge 2m --length 9m)
SURGE_START=30
LENGTH=540
# Each autoscaler's Deployment (named <autoscaler>-web) and its users in the audit log.
AUTOSCALERS=(hpa sw)
[[ -z $KEDA_DIR ]] || AUTOSCALERS+=(keda)
DEPLOYMENTS=("${AUTOSCALERS[@]/%/-web}")
mkdir -p "$OUT"
rm -rf "$OUT"/run-*.tsv* "$OUT"/*.log "$OUT/keda" "$OUT/audit.jsonl"

pids=()
sd_files=()
apiservice_saved=""
cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM HUP
  rm -f "${sd_files[@]}"
  [[ -z $apiservice_saved ]] || restore_apiservice || rc=1
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [[ $rc == 0 ]] || say "failed (exit $rc); logs in $OUT/"
  exit "$rc"
}
trap_exit cleanup
k() { kubectl --request-timeout=10s "$@"; }
# A kubeconfig like the environment's for service account $1 of namespace $2, into file $3.
sa_kubeconfig() {
  local token
  token=$(k create token "$1" -n "$2" --duration 2h)
  (umask 077 && sed -e "s/^      token: .*/      token: $token/" "$KUBECONFIG" >"$3")
}

# The operator's own identity, so that the audit log tells its requests from everyone else's.
k apply -f crds/scalingpolicy.yaml >/dev/null
k wait --for condition=established --timeout=60s crd/scalingpolicies.scalewise.dev >/dev/null
k apply -f deploy/namespace.yaml -f deploy/rbac.yaml >/dev/null
sa_kubeconfig scalewise scalewise-system "$OUT/scalewise.kubeconfig"

# --- KEDA: its operator and metrics server, on 127.0.0.1 --------------------------------------
restore_apiservice() {
  k patch apiservice v1beta1.external.metrics.k8s.io --type merge -p "{\"spec\": $apiservice_saved}" >/dev/null &&
    k wait --for=condition=Available --timeout=60s apiservice/v1beta1.external.metrics.k8s.io >/dev/null &&
    say "external.metrics.k8s.io is prometheus-adapter's again" && apiservice_saved=""
}
start_keda() {
  local certs=$OUT/keda/certs port_probe port_metrics port_grpc port_api port_adapter_metrics
  mkdir -p "$certs"
  k apply --server-side -f "$KEDA_DIR/crds.yaml" >/dev/null
  # (kubectl wait fails, rather than waits, while the new CRD has no conditions yet.)
  wait_for 60 "KEDA's CRDs" k wait --for condition=established --timeout=5s crd/scaledobjects.keda.sh
  k create namespace keda >/dev/null
  k apply -f "$KEDA_DIR/operator-role.yaml" >/dev/null
  k apply -f - >/dev/null <<RBAC
apiVersion: v1
kind: ServiceAccount
metadata: {name: keda-operator, namespace: keda}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: keda-metrics-server, namespace: keda}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: keda-operator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: keda-operator}
subjects:
  - {kind: ServiceAccount, name: keda-operator, namespace: keda}
  - {kind: ServiceAccount, name: keda-metrics-server, namespace: keda}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: keda-operator, namespace: keda}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: keda-operator}
subjects: [{kind: ServiceAccount, name: keda-operator, namespace: keda}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: keda-metrics-server:auth-delegator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}
subjects: [{kind: ServiceAccount, name: keda-metrics-server, namespace: keda}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: keda-metrics-server:auth-reader, namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}
subjects: [{kind: ServiceAccount, name: keda-metrics-server, namespace: keda}]
RBAC
  sa_kubeconfig keda-operator keda "$OUT/keda/operator.kubeconfig"
  sa_kubeconfig keda-metrics-server keda "$OUT/keda/metrics-server.kubeconfig"
  # The operator's gRPC metrics service and the metrics server authenticate each other with
  # certificates of one CA (KEDA's own certificate rotation is off), which also serve the
  # metrics server's API to the API server.
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=keda-bench-ca \
    -keyout "$certs/ca.key" -out "$certs/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=keda \
    -keyout "$certs/tls.key" -out "$certs/tls.csr" 2>/dev/null
  openssl x509 -req -in "$certs/tls.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" -CAcreateserial -days 2 \
    -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:keda-metrics-apiserver.keda.svc\nextendedKeyUsage=serverAuth,clientAuth\n') \
    -out "$certs/tls.crt" 2>/dev/null
  rm -f "$certs/tls.csr"
  free_port port_probe
  free_port port_metrics
  free_port port_grpc
  free_port port_api
  free_port port_adapter_metrics
  POD_NAMESPACE=keda KEDA_CLUSTER_OBJECT_NAMESPACE=keda WATCH_NAMESPACE="" \
    KUBECONFIG=$OUT/keda/operator.kubeconfig "$KEDA_DIR/keda-operator" \
    --metrics-bind-address "127.0.0.1:$port_metrics" \
    --health-probe-bind-address "127.0.0.1:$port_probe" \
    --metrics-service-bind-address "127.0.0.1:$port_grpc" \
    --cert-dir "$certs" --enable-cert-rotation=false \
    --enable-webhook-patching=false --enable-apiservice-patching=false \
    --zap-log-level info >"$OUT/keda-operator.log" 2>&1 &
  pids+=($!)
  wait_for 60 "the KEDA operator (see $OUT/keda-operator.log)" curl -fsS "http://127.0.0.1:$port_probe/readyz"
  POD_NAMESPACE=keda KEDA_CLUSTER_OBJECT_NAMESPACE=keda WATCH_NAMESPACE="" \
    KUBECONFIG=$OUT/keda/metrics-server.kubeconfig "$KEDA_DIR/keda-adapter" \
    --secure-port "$port_api" --bind-address 127.0.0.1 \
    --cert-dir "$certs" --tls-cert-file "$certs/tls.crt" --tls-private-key-file "$certs/tls.key" \
    --lister-kubeconfig "$OUT/keda/metrics-server.kubeconfig" \
    --authentication-kubeconfig "$OUT/keda/metrics-server.kubeconfig" \
    --authorization-kubeconfig "$OUT/keda/metrics-server.kubeconfig" \
    --metrics-service-address "127.0.0.1:$port_grpc" --metrics-service-grpc-authority localhost \
    --port "$port_adapter_metrics" >"$OUT/keda-metrics-server.log" 2>&1 &
  pids+=($!)
  wait_for 60 "the KEDA metrics server (see $OUT/keda-metrics-server.log)" \
    curl -fsS --cacert "$certs/ca.crt" "https://localhost:$port_api/readyz"
  # In place of prometheus-adapter's external.metrics.k8s.io, for the benchmark only.
  apiservice_saved=$(k get apiservice v1beta1.external.metrics.k8s.io -o 'jsonpath={.spec}')
  k apply -f - >/dev/null <<APISERVICE
apiVersion: v1
kind: Service
metadata: {name: keda-metrics-apiserver, namespace: keda}
spec:
  type: ExternalName
  externalName: localhost
  ports: [{name: https, port: $port_api, protocol: TCP}]
APISERVICE
  k patch apiservice v1beta1.external.metrics.k8s.io --type merge -p "{\"spec\": {\"service\": {\"name\": \"keda-metrics-apiserver\", \"namespace\": \"keda\", \"port\": $port_api}, \"caBundle\": \"$(base64 -w0 "$certs/ca.crt")\"}}" >/dev/null
  wait_for 60 "external.metrics.k8s.io served by KEDA" \
    k wait --for=condition=Available --timeout=5s apiservice/v1beta1.external.metrics.k8s.io
  say "KEDA $(basename "$KEDA_DIR" | sed 's/_go.*//; s/keda-//') serves external.metrics.k8s.io for the benchmark"
}
[[ -z $KEDA_DIR ]] || start_keda

# One run in namespace $1, its samples into $2.
one_run() {
  local ns=$1 samples=$2 name workload_port
  k create namespace "$ns" >/dev/null
  for name in "${DEPLOYMENTS[@]}"; do
    sed "s/NAME/$name/g" tests/bench/hpa/deployment.yaml | k apply -n "$ns" -f - >/dev/null
  done
  local all_two
  all_two=$(printf '2 %.0s' "${DEPLOYMENTS[@]}")
  ready_two() { [[ "$(k get deploy "${DEPLOYMENTS[@]}" -n "$ns" -o 'jsonpath={range .items[*]}{.status.readyReplicas}{" "}{end}')" == "$all_two" ]]; }
  wait_for 120 "2 Ready pods of each Deployment" ready_two

  # The workloads together: the same curve from the same second.
  local ports=()
  for name in "${DEPLOYMENTS[@]}"; do
    free_port workload_port
    "$WORKLOAD_BIN" --listen "127.0.0.1:$workload_port" --namespace "$ns" --deployment "$name" \
      "${CURVE[@]}" >"$OUT/$ns-$name-workload.log" 2>&1 &
    pids+=($!)
    ports+=("$workload_port")
  done
  for workload_port in "${ports[@]}"; do
    wait_for 30 "the workload on port $workload_port" curl -fsS "http://127.0.0.1:$workload_port/metrics"
  done
  local sd=$SCALEWISE_PROMETHEUS_FILE_SD_DIR/bench-$ns.json targets
  targets=$(printf '"127.0.0.1:%s", ' "${ports[@]}")
  printf '[{"targets": [%s], "labels": {"job": "bench-hpa"}}]\n' "${targets%, }" >"$sd.tmp"
  mv "$sd.tmp" "$sd"
  sd_files+=("$sd")

  # The autoscalers together.
  local operator_port
  free_port operator_port
  NO_COLOR=1 KUBECONFIG=$OUT/scalewise.kubeconfig "$BIN" run --namespace "$ns" --leader-election false \
    --metrics-bind "127.0.0.1:$operator_port" --secure-metrics-bind 127.0.0.1:0 \
    --prometheus-url "$SCALEWISE_PROMETHEUS_URL" >"$OUT/$ns-scalewise.log" 2>&1 &
  local operator=$!
  pids+=("$operator")
  local manifests=(-f tests/bench/hpa/hpa.yaml -f tests/bench/hpa/policy.yaml)
  if [[ -n $KEDA_DIR ]]; then
    sed -e "s|NAMESPACE|$ns|g" -e "s|PROMETHEUS|$SCALEWISE_PROMETHEUS_URL|" tests/bench/hpa/scaledobject.yaml >"$OUT/$ns-scaledobject.yaml"
    manifests+=(-f "$OUT/$ns-scaledobject.yaml")
  fi
  k apply -n "$ns" "${manifests[@]}" >/dev/null
  local started
  started=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
  say "$ns: load and autoscalers (${AUTOSCALERS[*]}) started at $started; the run takes 9 minutes"

  # Every second: time on the curve; per autoscaler, its Deployment's replicas and ready pods and
  # its service's p95 latency and error rate.
  local header=t who i m t line replicas rr
  for who in "${AUTOSCALERS[@]}"; do header+=$'\t'"${who}_replicas"$'\t'"${who}_ready"$'\t'"${who}_p95"$'\t'"${who}_errors"; done
  printf '%s\n' "$header" >"$samples"
  gauge() { awk -v m="$1" '$1 == m { print $2; exit }' <<<"$2"; }
  while :; do
    # "replicas/ready" of each, in the order asked (readyReplicas is absent while none is Ready).
    replicas=($(k get deploy "${DEPLOYMENTS[@]}" -n "$ns" \
      -o 'jsonpath={range .items[*]}{.spec.replicas}{"/"}{.status.readyReplicas}{" "}{end}'))
    line="" t=""
    for i in "${!DEPLOYMENTS[@]}"; do
      m=$(curl -fsS --max-time 2 "http://127.0.0.1:${ports[$i]}/metrics") || die "the ${DEPLOYMENTS[$i]} workload stopped"
      [[ -n $t ]] || t=$(gauge demo_elapsed_seconds "$m")
      rr=${replicas[$i]:-0/}
      line+=$'\t'"${rr%/*}"$'\t'"${rr#*/}"$'\t'"$(gauge demo_latency_p95_seconds "$m")"$'\t'"$(gauge demo_error_ratio "$m")"
    done
    printf '%s%s\n' "$t" "$line" >>"$samples"
    awk -v t="$t" -v end="$LENGTH" 'BEGIN { exit !(t >= end) }' && break
    kill -0 "$operator" 2>/dev/null || die "scalewise run exited; see $OUT/$ns-scalewise.log"
    sleep 1
  done
  local ended
  ended=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
  k delete -n "$ns" "${manifests[@]}" >/dev/null
  kill -TERM "$operator" 2>/dev/null || true
  wait "$operator" 2>/dev/null || true
  printf '%s\t%s\n' "$started" "$ended" >"$samples.window"
}

for ((run = 1; run <= RUNS; run++)); do
  one_run "bench-$run" "$OUT/run-$run.tsv"
done
# The audit log's last events are written within a second or so. The autoscalers' events of it
# are kept with the samples (the environment and its audit log go when the benchmark ends), so
# that tests/bench/hpa_figures.py can be run again on target/bench/hpa/.
sleep 3
[[ -z $apiservice_saved ]] || restore_apiservice
grep -E '"username":"system:serviceaccount:(kube-system:horizontal-pod-autoscaler|scalewise-system:scalewise|keda:keda-[a-z-]+)"' \
  "$SCALEWISE_AUDIT_LOG" >"$OUT/audit.jsonl" || true

section=$OUT/section.md
keda_version=""
[[ -z $KEDA_DIR ]] || keda_version=$(basename "$KEDA_DIR" | sed 's/_go.*//; s/^keda-//')
python3 tests/bench/hpa_figures.py "$OUT" "$RUNS" "$SURGE_START" "$OUT/audit.jsonl" \
  "$(git rev-parse --short HEAD)" "$keda_version" "${AUTOSCALERS[@]}" >"$section"
tests/bench/section.sh hpa-beside "$section"
cat "$section" >&2
