#!/usr/bin/env bash
# Starts the scalewise test environment and prints ONLY eval-able `export`
# lines on stdout (progress goes to stderr):
#
#   eval "$(tests/env/up.sh [STATE_DIR])"
#
# What runs, each a plain process on 127.0.0.1 with a free port and its data
# under STATE_DIR (default .test-env/default), recorded by PID for down.sh:
#   - etcd (Debian etcd-server) and kube-apiserver (built from Debian's
#     kubernetes source), unless SCALEWISE_E2E_CLUSTER=1 says to use the
#     cluster of the user's KUBECONFIG;
#   - Prometheus (1 s scrapes, remote-write receiver, lifecycle API);
#   - VictoriaMetrics, scraping the same targets as Prometheus.
# install.sh runs first, so whatever is missing is installed or built.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=${1:-$SCALEWISE_STATE_ROOT/default}
mkdir -p "$(dirname "$STATE")"
lock_state_root

if [[ -f $STATE/env ]]; then
  alive=1
  for f in "$STATE"/*.pid; do
    [[ -f $f ]] || continue
    read -r pid _ <"$f" || true
    proc_alive "${pid:-0}" || alive=0
  done
  if [[ $alive == 1 ]]; then
    log "already running in $STATE (make test-env-down stops it)"
    cat "$STATE/env"
    exit 0
  fi
  log "removing the remains of an environment in $STATE"
  "$SCALEWISE_ROOT/tests/env/down.sh" "$STATE"
fi

ETCD_BIN="" KUBE_APISERVER_BIN="" KUBECTL_DIR="" ADAPTER_BIN=""
eval "$("$SCALEWISE_ROOT/tests/env/install.sh")"

mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
started=0
on_exit() {
  local rc=$?
  if [[ $rc -ne 0 && $started == 0 ]]; then
    log "start-up failed; stopping what was started"
    "$SCALEWISE_ROOT/tests/env/down.sh" "$STATE" || true
  fi
}
trap on_exit EXIT

exports=()
add_export() { exports+=("$(printf 'export %s=%q' "$1" "$2")"); }

# Starts a server up to three times with fresh ports (a port may be taken
# between choosing it and binding it). The function NAME_start (dashes become
# underscores) picks ports, starts the server and sets $pid; NAME_ready checks
# readiness.
start_with_retries() {
  local name=$1 timeout=$2 attempt
  for attempt in 1 2 3; do
    "${name//-/_}_start"
    if wait_until "$name" "$pid" "$timeout" "$STATE/$name.log" "${name//-/_}_ready"; then
      log "$name ready (pid $pid)"
      return 0
    fi
    "$SCALEWISE_ROOT/tests/env/down.sh" --one "$STATE/$name.pid"
    log "$name failed to start (attempt $attempt)"
  done
  die "$name did not start; see $STATE/$name.log"
}

t0=$(date +%s%N)
# Set by free_port (printf -v) in the NAME_start functions.
etcd_port="" etcd_peer_port="" apiserver_port="" prometheus_port="" vm_port="" adapter_port=""

# --- etcd and kube-apiserver --------------------------------------------------
if ! e2e_cluster; then
  etcd_bin=$ETCD_BIN
  apiserver_bin=$KUBE_APISERVER_BIN
  [[ -x $etcd_bin && -x $apiserver_bin ]] || die "etcd or kube-apiserver missing after install.sh"

  etcd_start() {
    free_port etcd_port
    free_port etcd_peer_port
    rm -rf "$STATE/etcd"
    pid=$(start_server etcd "$STATE/etcd.log" "$etcd_bin" \
      --name scalewise-test \
      --data-dir "$STATE/etcd" \
      --listen-client-urls "http://127.0.0.1:$etcd_port" \
      --advertise-client-urls "http://127.0.0.1:$etcd_port" \
      --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
      --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
      --initial-cluster "scalewise-test=http://127.0.0.1:$etcd_peer_port" \
      --initial-cluster-state new \
      --logger zap --log-outputs stderr)
  }
  etcd_ready() { curl -fsS "http://127.0.0.1:$etcd_port/health" | grep -q '"health":"true"'; }
  start_with_retries etcd 30

  # Credentials: a service-account signing key and a static admin token.
  openssl genrsa -out "$STATE/service-account.key" 2048 2>/dev/null
  token=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
  (umask 077 && printf '%s,scalewise-admin,scalewise-admin,"system:masters"\n' "$token" >"$STATE/tokens.csv")
  if [[ -n $KUBECTL_DIR ]]; then
    # The controller-manager's and the scheduler's own identities: the users the API server's
    # bootstrap RBAC grants their roles to (each controller then acts as its own service account).
    kcm_token=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
    scheduler_token=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
    printf '%s,system:kube-controller-manager,system:kube-controller-manager\n%s,system:kube-scheduler,system:kube-scheduler\n' \
      "$kcm_token" "$scheduler_token" >>"$STATE/tokens.csv"
  fi
  mkdir -p "$STATE/apiserver-certs"

  # 1.20 still has an insecure port, to be turned off; later releases dropped the flag.
  version_flags=(--insecure-port 0)
  if [[ -n $KUBECTL_DIR ]]; then
    # The aggregation layer, for prometheus-adapter (started after Prometheus, below): the API
    # server proxies /apis/metrics.k8s.io and /apis/external.metrics.k8s.io to it, presenting
    # the front-proxy client certificate "front-proxy-client" signed by a CA of its own; the
    # adapter trusts the user named in its X-Remote-* headers because it reads that CA from the
    # ConfigMap kube-system/extension-apiserver-authentication the API server publishes.
    certs=$STATE/front-proxy
    mkdir -p "$certs"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=front-proxy-ca \
      -keyout "$certs/ca.key" -out "$certs/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=front-proxy-client \
      -keyout "$certs/client.key" -out "$certs/client.csr" 2>/dev/null
    openssl x509 -req -in "$certs/client.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" \
      -CAcreateserial -days 2 -extfile <(printf 'extendedKeyUsage=clientAuth\n') \
      -out "$certs/client.crt" 2>/dev/null
    # Every request's user, verb and resource (metadata only), to count each client's calls.
    cat >"$STATE/audit-policy.yaml" <<'AUDIT'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
AUDIT
    version_flags=(
      --requestheader-client-ca-file "$certs/ca.crt"
      --requestheader-allowed-names front-proxy-client
      --requestheader-username-headers X-Remote-User
      --requestheader-group-headers X-Remote-Group
      --requestheader-extra-headers-prefix X-Remote-Extra-
      --proxy-client-cert-file "$certs/client.crt"
      --proxy-client-key-file "$certs/client.key"
      --audit-policy-file "$STATE/audit-policy.yaml"
      --audit-log-path "$STATE/audit.log"
      --audit-log-format json
      --audit-log-maxsize 200
      --audit-log-maxbackup 1
    )
    adapter_token=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
    printf '%s,scalewise-prometheus-adapter,scalewise-prometheus-adapter\n' "$adapter_token" >>"$STATE/tokens.csv"
  fi
  kube_apiserver_start() {
    free_port apiserver_port
    rm -f "$STATE/apiserver-certs/"*
    pid=$(start_server kube-apiserver "$STATE/kube-apiserver.log" "$apiserver_bin" \
      --etcd-servers "http://127.0.0.1:$etcd_port" \
      --bind-address 127.0.0.1 \
      --secure-port "$apiserver_port" \
      "${version_flags[@]}" \
      --cert-dir "$STATE/apiserver-certs" \
      --service-account-issuer https://kubernetes.default.svc.cluster.local \
      --service-account-key-file "$STATE/service-account.key" \
      --service-account-signing-key-file "$STATE/service-account.key" \
      --token-auth-file "$STATE/tokens.csv" \
      --authorization-mode RBAC \
      --service-cluster-ip-range 10.0.0.0/24 \
      --disable-admission-plugins ServiceAccount)
  }
  kube_apiserver_ready() {
    [[ -s $STATE/apiserver-certs/apiserver.crt ]] &&
      curl -fsS --cacert "$STATE/apiserver-certs/apiserver.crt" -H "Authorization: Bearer $token" \
        "https://127.0.0.1:$apiserver_port/readyz" | grep -qx ok
  }
  start_with_retries kube-apiserver 90

  # The kubeconfig verifies the server with its own self-signed certificate.
  (
    umask 077
    cat >"$STATE/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
  - name: scalewise-test
    cluster:
      server: https://127.0.0.1:$apiserver_port
      certificate-authority: $STATE/apiserver-certs/apiserver.crt
users:
  - name: scalewise-admin
    user:
      token: $token
contexts:
  - name: scalewise-test
    context:
      cluster: scalewise-test
      user: scalewise-admin
      namespace: default
current-context: scalewise-test
KUBECONFIG
  )
  add_export KUBECONFIG "$STATE/kubeconfig"
  if [[ -n $KUBECTL_DIR ]]; then
    # The kubectl of the release under test first on PATH.
    add_export PATH "$KUBECTL_DIR:$PATH"
    k8s_bin=$KUBECTL_DIR
    kubectl_() { "$k8s_bin/kubectl" --kubeconfig "$STATE/kubeconfig" "$@"; }
    # A kubeconfig like the admin's for user $2 with token $3, in $STATE/$1.kubeconfig.
    identity_kubeconfig() {
      (umask 077 && sed -e "s/^  - name: scalewise-admin$/  - name: $2/" \
        -e "s/^      user: scalewise-admin$/      user: $2/" \
        -e "s/^      token: .*/      token: $3/" "$STATE/kubeconfig" >"$STATE/$1.kubeconfig")
    }
    identity_kubeconfig kube-controller-manager system:kube-controller-manager "$kcm_token"
    identity_kubeconfig kube-scheduler system:kube-scheduler "$scheduler_token"

    # Every default controller (Deployment, ReplicaSet, namespace, HPA, ...), each with its own
    # service account; no serving port. Its API rate is the controller-manager's default (20 a
    # second, bursts of 30) unless SCALEWISE_ENV_KCM_QPS says otherwise: make bench-scale raises
    # it, or creating 10,000 Deployments' pods takes it most of an hour.
    kcm_qps=${SCALEWISE_ENV_KCM_QPS:-20}
    [[ $kcm_qps =~ ^[0-9]+$ && $kcm_qps -ge 1 && $kcm_qps -le 10000 ]] ||
      die "SCALEWISE_ENV_KCM_QPS=$kcm_qps: a number of requests per second, 1 to 10000"
    kube_controller_manager_start() {
      pid=$(start_server kube-controller-manager "$STATE/kube-controller-manager.log" \
        "$k8s_bin/kube-controller-manager" \
        --kubeconfig "$STATE/kube-controller-manager.kubeconfig" \
        --kube-api-qps "$kcm_qps" \
        --kube-api-burst "$((kcm_qps * 3 / 2))" \
        --concurrent-deployment-syncs "$((kcm_qps >= 100 ? 20 : 5))" \
        --concurrent-replicaset-syncs "$((kcm_qps >= 100 ? 20 : 5))" \
        --use-service-account-credentials \
        --service-account-private-key-file "$STATE/service-account.key" \
        --root-ca-file "$STATE/apiserver-certs/apiserver.crt" \
        --service-cluster-ip-range 10.0.0.0/24 \
        --leader-elect=false \
        --secure-port 0)
    }
    # Ready once its service-account controller has made the default namespace's account.
    kube_controller_manager_ready() { kubectl_ get serviceaccount default -n default >/dev/null 2>&1; }
    start_with_retries kube-controller-manager 90

    kube_scheduler_start() {
      pid=$(start_server kube-scheduler "$STATE/kube-scheduler.log" "$k8s_bin/kube-scheduler" \
        --kubeconfig "$STATE/kube-scheduler.kubeconfig" \
        --leader-elect=false \
        --secure-port 0)
    }
    kube_scheduler_ready() { grep -q 'Starting Kubernetes Scheduler' "$STATE/kube-scheduler.log"; }
    start_with_retries kube-scheduler 60

    # Fake nodes: KWOK keeps the nodes annotated kwok.x-k8s.io/node=fake Ready and takes their
    # pods through scheduling, Running and Ready with no container runtime.
    free_port kwok_port
    kwok_start() {
      pid=$(start_server kwok "$STATE/kwok.log" "$k8s_bin/kwok" \
        --kubeconfig "$STATE/kubeconfig" \
        --config "$k8s_bin/kwok-stages.yaml" \
        --config "$SCALEWISE_ROOT/tests/env/kwok/test-stages.yaml" \
        --node-lease-duration-seconds=40 \
        --manage-all-nodes=false \
        --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
        --cidr=10.244.0.0/16 \
        --node-ip=10.0.0.1 \
        --server-address "127.0.0.1:$kwok_port")
    }
    kwok_ready() { curl -fsS "http://127.0.0.1:$kwok_port/healthz" >/dev/null 2>&1; }
    start_with_retries kwok 60
    for i in 0 1 2; do
      kubectl_ apply -f - >/dev/null <<NODE
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
NODE
    done
    # Until a pod is scheduled on a fake node and becomes Ready, the cluster is not ready.
    kubectl_ run scalewise-probe -n default --image=busybox:1.36 --restart=Never >/dev/null
    kubectl_ wait -n default --for=condition=Ready pod/scalewise-probe --timeout=90s >/dev/null ||
      die "no pod became Ready on the KWOK nodes; see $STATE/kube-scheduler.log and $STATE/kwok.log"
    kubectl_ delete -n default pod/scalewise-probe --wait=false >/dev/null
    log "Kubernetes $("$k8s_bin/kubectl" version --client -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | head -1): controller-manager, scheduler and 3 KWOK nodes ready"
  fi
else
  log "SCALEWISE_E2E_CLUSTER=1: not starting etcd or kube-apiserver; KUBECONFIG stays yours"
fi

# --- Prometheus and VictoriaMetrics -----------------------------------------
# Both read the same scrape configuration (VictoriaMetrics skips the fields it
# does not know), so a target registered once is scraped by both.
mkdir -p "$STATE/prometheus/data" "$STATE/prometheus/file_sd" "$STATE/victoria-metrics"
prom_config=$STATE/prometheus/prometheus.yml
cat >"$prom_config" <<PROMCONFIG
# scalewise test environment: the scrape configuration of Prometheus AND
# VictoriaMetrics. Register a target in either of two ways:
#  1. Append a job at the end of this file, as an item of scrape_configs
#     (indented two spaces, like the one below), while holding an exclusive
#     flock(2) on this file; then POST /-/reload to Prometheus and to
#     VictoriaMetrics (the latter also rereads this file every second).
#  2. Write a file_sd JSON file into $STATE/prometheus/file_sd/
#     (write NAME.tmp, then rename it to NAME.json); both pick it up within
#     about a second without a reload.
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
storage:
  tsdb:
    out_of_order_time_window: 1h
scrape_configs:
  - job_name: file-sd
    file_sd_configs:
      - files:
          - $STATE/prometheus/file_sd/*.json
        refresh_interval: 1s
PROMCONFIG

prometheus_start() {
  free_port prometheus_port
  pid=$(start_server prometheus "$STATE/prometheus.log" prometheus \
    --config.file "$prom_config" \
    --web.listen-address "127.0.0.1:$prometheus_port" \
    --storage.tsdb.path "$STATE/prometheus/data" \
    --storage.tsdb.retention.time 100y \
    --web.enable-remote-write-receiver \
    --web.enable-lifecycle \
    --web.enable-admin-api)
}
prometheus_ready() { curl -fsS "http://127.0.0.1:$prometheus_port/-/ready" >/dev/null; }
start_with_retries prometheus 30

victoria_metrics_start() {
  free_port vm_port
  pid=$(start_server victoria-metrics "$STATE/victoria-metrics.log" victoria-metrics \
    -httpListenAddr "127.0.0.1:$vm_port" \
    -storageDataPath "$STATE/victoria-metrics/data" \
    -retentionPeriod 100y \
    -search.latencyOffset 0s \
    -search.disableCache \
    -promscrape.config "$prom_config" \
    -promscrape.config.strictParse=false \
    -promscrape.configCheckInterval 1s \
    -promscrape.fileSDCheckInterval 1s)
}
victoria_metrics_ready() { curl -fsS "http://127.0.0.1:$vm_port/health" | grep -qx OK; }
start_with_retries victoria-metrics 30

# --- prometheus-adapter: metrics.k8s.io and external.metrics.k8s.io for the real HPA ---------
# Resource metrics (pod CPU and memory) from the cAdvisor-style series in Prometheus, and
# external metrics from chosen queries, so the HPA in kube-controller-manager scales from the
# same Prometheus as scalewise. The API server reaches the adapter through the APIServices'
# Service kube-system/prometheus-adapter, of type ExternalName "localhost": with aggregator
# routing off the API server dials the Service's externalName at the APIService's port, here
# the adapter's port on 127.0.0.1, and checks the adapter's certificate (made here, for
# localhost and prometheus-adapter.kube-system.svc) against the APIService's caBundle.
if [[ -n $ADAPTER_BIN ]] && ! e2e_cluster; then
  identity_kubeconfig prometheus-adapter scalewise-prometheus-adapter "$adapter_token"
  kubectl_ apply -f - >/dev/null <<'RBAC'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: scalewise-prometheus-adapter}
rules:
  - apiGroups: ["", "apps"]
    resources: [pods, nodes, namespaces, services, deployments, replicasets, statefulsets]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: scalewise-prometheus-adapter}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: scalewise-prometheus-adapter}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: scalewise-prometheus-adapter}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: scalewise-prometheus-adapter:auth-delegator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: scalewise-prometheus-adapter}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: scalewise-prometheus-adapter:auth-reader, namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: scalewise-prometheus-adapter}]
RBAC
  adapter_certs=$STATE/prometheus-adapter
  mkdir -p "$adapter_certs"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=prometheus-adapter \
    -addext "subjectAltName=DNS:localhost,DNS:prometheus-adapter.kube-system.svc,IP:127.0.0.1" \
    -keyout "$adapter_certs/tls.key" -out "$adapter_certs/tls.crt" 2>/dev/null
  # CPU as a rate over 1 minute, about what metrics-server gives the HPA (scalewise's own cpu
  # metric reads 2 minutes by default; make bench-hpa's policy sets 1 minute).
  cat >"$adapter_certs/config.yaml" <<'ADAPTER'
rules: []
resourceRules:
  cpu:
    containerQuery: sum by (<<.GroupBy>>) (rate(container_cpu_usage_seconds_total{container!="",<<.LabelMatchers>>}[1m]))
    nodeQuery: sum by (<<.GroupBy>>) (rate(container_cpu_usage_seconds_total{id="/",<<.LabelMatchers>>}[1m]))
    resources: &labels
      overrides:
        namespace: {resource: namespace}
        pod: {resource: pod}
        node: {resource: node}
    containerLabel: container
  memory:
    containerQuery: sum by (<<.GroupBy>>) (container_memory_working_set_bytes{container!="",<<.LabelMatchers>>})
    nodeQuery: sum by (<<.GroupBy>>) (container_memory_working_set_bytes{id="/",<<.LabelMatchers>>})
    resources: *labels
    containerLabel: container
  window: 1m
externalRules:
  # Requests per second of a service, summed over its pods: http_requests_per_second{service=...}.
  - seriesQuery: 'http_requests_total{namespace!=""}'
    resources:
      overrides:
        namespace: {resource: namespace}
    name: {matches: ^http_requests_total$, as: http_requests_per_second}
    metricsQuery: sum by (<<.GroupBy>>) (rate(<<.Series>>{<<.LabelMatchers>>}[1m]))
  # A test's own gauge, with all its labels: scalewise_test_external{namespace=..., ...}.
  - seriesQuery: 'scalewise_test_external{namespace!=""}'
    resources:
      overrides:
        namespace: {resource: namespace}
    metricsQuery: <<.Series>>{<<.LabelMatchers>>}
ADAPTER
  prometheus_adapter_start() {
    free_port adapter_port
    pid=$(start_server prometheus-adapter "$STATE/prometheus-adapter.log" "$ADAPTER_BIN" \
      --secure-port "$adapter_port" \
      --bind-address 127.0.0.1 \
      --tls-cert-file "$adapter_certs/tls.crt" \
      --tls-private-key-file "$adapter_certs/tls.key" \
      --lister-kubeconfig "$STATE/prometheus-adapter.kubeconfig" \
      --authentication-kubeconfig "$STATE/prometheus-adapter.kubeconfig" \
      --authorization-kubeconfig "$STATE/prometheus-adapter.kubeconfig" \
      --prometheus-url "http://127.0.0.1:$prometheus_port" \
      --metrics-relist-interval 5s \
      --config "$adapter_certs/config.yaml")
  }
  prometheus_adapter_ready() {
    curl -fsS --cacert "$adapter_certs/tls.crt" "https://localhost:$adapter_port/readyz" >/dev/null 2>&1
  }
  start_with_retries prometheus-adapter 60
  ca_bundle=$(base64 -w0 "$adapter_certs/tls.crt")
  kubectl_ apply -f - >/dev/null <<APISERVICES
apiVersion: v1
kind: Service
metadata: {name: prometheus-adapter, namespace: kube-system}
spec:
  type: ExternalName
  externalName: localhost
  ports: [{name: https, port: $adapter_port, protocol: TCP}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec:
  group: metrics.k8s.io
  version: v1beta1
  service: {name: prometheus-adapter, namespace: kube-system, port: $adapter_port}
  caBundle: $ca_bundle
  groupPriorityMinimum: 100
  versionPriority: 100
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.external.metrics.k8s.io}
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  service: {name: prometheus-adapter, namespace: kube-system, port: $adapter_port}
  caBundle: $ca_bundle
  groupPriorityMinimum: 100
  versionPriority: 100
APISERVICES
  kubectl_ wait --for=condition=Available --timeout=60s \
    apiservice/v1beta1.metrics.k8s.io apiservice/v1beta1.external.metrics.k8s.io >/dev/null ||
    die "the API server cannot reach prometheus-adapter; see $STATE/prometheus-adapter.log and $STATE/kube-apiserver.log"
  log "prometheus-adapter serves metrics.k8s.io and external.metrics.k8s.io through the API server"
  add_export SCALEWISE_AUDIT_LOG "$STATE/audit.log"
fi

add_export SCALEWISE_PROMETHEUS_URL "http://127.0.0.1:$prometheus_port"
add_export SCALEWISE_VICTORIAMETRICS_URL "http://127.0.0.1:$vm_port"
add_export SCALEWISE_PROMETHEUS_CONFIG "$prom_config"
add_export SCALEWISE_PROMETHEUS_FILE_SD_DIR "$STATE/prometheus/file_sd"
add_export SCALEWISE_TEST_ENV_DIR "$STATE"

printf '%s\n' "${exports[@]}" >"$STATE/env"
started=1
log "environment up in $((($(date +%s%N) - t0) / 1000000)) ms; state in $STATE"
cat "$STATE/env"
