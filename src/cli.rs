//! The command line, declared with clap. Nothing but definitions lives here.

use std::path::PathBuf;

use std::net::SocketAddr;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand};

use crate::telemetry::LogFormat;

/// Output formats of the commands that print decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// scalewise: a Kubernetes autoscaler that is safe when metrics fail and explains every decision.
#[derive(Debug, Parser)]
#[command(name = "scalewise", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// The command line is parsed once at start: a few hundred bytes on the stack are no concern.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller: watch ScalingPolicies and scale their Deployments. The cluster comes
    /// from KUBECONFIG or the in-cluster service account.
    Run(RunArgs),

    /// Print the ScalingPolicy CustomResourceDefinition as YAML.
    Crd,

    /// Validate ScalingPolicy manifests offline: exit 0 when all are valid, 1 with one line per
    /// problem (`FILE: namespace/name: field.path: message`).
    Check {
        /// A manifest file (multi-document YAML); `-` reads standard input. Repeatable.
        #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
        files: Vec<PathBuf>,

        /// The namespace of manifests without `metadata.namespace`, as kubectl's: their queries
        /// may read only its series. Default: `default`.
        #[arg(
            long,
            short = 'n',
            value_name = "NS",
            value_parser = namespace_name
        )]
        namespace: Option<String>,

        #[command(flatten)]
        tenancy: TenancyArgs,
    },

    /// Run the decision engine once on given metric values, exactly as the controller would.
    Decide {
        /// The file holding the ScalingPolicy.
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,

        /// The target's current replicas (its /scale spec.replicas).
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        replicas: i32,

        /// A metric's value: NAME=NUMBER, or NAME=unavailable|empty|stale|invalid for a failed
        /// read. Every metric of the policy needs one. Repeatable.
        #[arg(long = "metric", value_name = "NAME=VALUE")]
        metrics: Vec<String>,

        /// The status of the previous evaluation (the `state` of an earlier `--output json`), to
        /// chain evaluations.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,

        /// The evaluation time (RFC 3339, such as 2026-01-01T12:00:00Z). Default: now.
        #[arg(long, value_name = "RFC3339")]
        now: Option<jiff::Timestamp>,

        /// Output format.
        #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },

    /// Read every metric of a policy from Prometheus once and print its PromQL, its value or why
    /// there is none, and what the decision engine would propose from it. Exit 1 when any metric
    /// failed.
    Query {
        /// The file holding the ScalingPolicy; its namespace and target fill the placeholders.
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,

        /// The target's current replicas, for the proposals. Default: minReplicas (at least 1).
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        replicas: Option<i32>,

        /// The namespace of a manifest without `metadata.namespace`, as kubectl's: it fills
        /// `{namespace}` and is where the target's pods are looked for. A manifest naming
        /// another namespace is refused. Default: `default`.
        #[arg(
            long,
            short = 'n',
            value_name = "NS",
            value_parser = namespace_name
        )]
        namespace: Option<String>,

        /// Where `cpu` and `memory` find the target's pods: `cluster` reads them from the
        /// cluster of the kubeconfig (KUBECONFIG, or ~/.kube/config) as the operator does;
        /// `kube-state-metrics` joins its ownership series in PromQL; `auto` (the default) is
        /// `cluster` when a kubeconfig is there.
        #[arg(long, value_enum, default_value_t = PodsFrom::Auto)]
        pods: PodsFrom,

        /// Also print, per metric, the coalesced query the operator shares with other policies
        /// of the same template (here with this policy as its only member) and the labels its
        /// answer is split by.
        #[arg(long)]
        coalesced: bool,

        /// Output format.
        #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,

        #[command(flatten)]
        prometheus: PrometheusArgs,
    },

    /// See what a policy would do before it touches production: replay a load trace through a
    /// service model (--trace) or Prometheus history (--from, --to) through the decision engine,
    /// beside the Kubernetes HPA (--compare hpa); print a summary, write the timeline (--out-csv)
    /// and a plot (--plot). With --generate, write a synthetic load trace instead.
    Simulate(Box<SimulateArgs>),
}

/// A namespace name: a DNS label of at most 63 characters.
fn namespace_name(text: &str) -> Result<String, String> {
    crate::metrics::tenancy::check_namespace(text).map(|()| text.to_owned())
}

/// A Prometheus label name.
fn prometheus_label(text: &str) -> Result<String, String> {
    crate::metrics::tenancy::check_label_name(text).map(|()| text.to_owned())
}

/// Where `scalewise query` finds the target's pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PodsFrom {
    Auto,
    Cluster,
    KubeStateMetrics,
}

/// The baselines `--compare` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Baseline {
    /// The Kubernetes HorizontalPodAutoscaler v2 with its defaults.
    Hpa,
}

/// The flags of `scalewise simulate` (README, "Simulator"). Three modes, exactly one per run,
/// which clap tells apart itself (a wrong combination is a usage error, exit 2): trace mode
/// (`--trace`), backtest mode (`--from` with `--to`) and `--generate`. The model flags are trace
/// mode's (refused with `--from`), the generator's flags need `--generate`, and `--generate` takes
/// no policy and writes none of the simulation's outputs.
#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("mode")
        .args(["trace", "from", "generate"])
        .required(true)
        .multiple(false)
))]
pub struct SimulateArgs {
    /// The file holding the ScalingPolicy to simulate.
    #[arg(long, value_name = "FILE", required_unless_present = "generate")]
    pub policy: Option<PathBuf>,

    /// Trace mode: a load trace, CSV `timestamp_seconds,requests_per_second` with evenly spaced
    /// rows, played through the service model.
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Trace mode",
        conflicts_with = "to"
    )]
    pub trace: Option<PathBuf>,

    /// Reads the policy metric NAME from a model output: cpu, latency, errorRate, requestRate or
    /// queue (needed for custom `query` and `memory` metrics). Repeatable.
    #[arg(
        long = "map",
        value_name = "NAME=OUTPUT",
        help_heading = "Trace mode",
        conflicts_with = "from"
    )]
    pub maps: Vec<String>,

    /// A YAML file of model parameters (capacityPerReplica, baseLatency, startupDelay,
    /// queueLimit); the flags below override it.
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Trace mode",
        conflicts_with = "from"
    )]
    pub model: Option<PathBuf>,

    /// Requests per second one ready replica serves at 100% CPU [default: 100].
    #[arg(
        long,
        value_name = "RPS",
        help_heading = "Trace mode",
        conflicts_with = "from"
    )]
    pub capacity: Option<f64>,

    /// The mean seconds one request takes when nothing waits (service times are exponential)
    /// [default: 0.01].
    #[arg(
        long,
        value_name = "SECONDS",
        help_heading = "Trace mode",
        conflicts_with = "from"
    )]
    pub base_latency: Option<f64>,

    /// Time from a replica's creation until it serves [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag, help_heading = "Trace mode", conflicts_with = "from")]
    pub startup_delay: Option<Duration>,

    /// Requests that can wait per ready replica; more are dropped as errors [default: 100].
    #[arg(
        long,
        value_name = "N",
        help_heading = "Trace mode",
        conflicts_with = "from"
    )]
    pub queue_limit: Option<f64>,

    /// The SLO's limit on the p95 latency, in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0.5,
        help_heading = "Trace mode"
    )]
    pub slo_latency: f64,

    /// The SLO's limit on the share of failed requests.
    #[arg(
        long,
        value_name = "RATIO",
        default_value_t = 0.01,
        help_heading = "Trace mode"
    )]
    pub slo_error_rate: f64,

    /// Backtest mode: the start of the history to replay: RFC 3339, Unix seconds, now or
    /// now-DURATION (now-2h).
    #[arg(
        long,
        value_name = "TIME",
        help_heading = "Backtest mode",
        requires = "to"
    )]
    pub from: Option<String>,

    /// Backtest mode: the end of the history to replay.
    #[arg(
        long,
        value_name = "TIME",
        help_heading = "Backtest mode",
        requires = "from"
    )]
    pub to: Option<String>,

    /// Time between points: of the backtest's range queries [default: 15s], or of a generated
    /// trace [default: 60s for diurnal, 10s otherwise].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag)]
    pub step: Option<Duration>,

    /// Replicas at the start [default: minReplicas, at least 1].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub initial_replicas: Option<i32>,

    /// Run a baseline on the same input and show it beside the policy.
    #[arg(long, value_enum, value_name = "BASELINE")]
    pub compare: Option<Baseline>,

    /// Compare with the HPA at this CPU utilization target, in whole percent (1 to 1000),
    /// whatever the policy's own thresholds (row `hpa`; implies --compare hpa).
    #[arg(
        long,
        value_name = "PCT",
        help_heading = "Trace mode",
        conflicts_with = "from",
        value_parser = crate::simulate::curve::parse_target
    )]
    pub hpa_target: Option<u32>,

    /// Run the HPA at every CPU target from FROM to TO percent by STEP (rows `hpa@<target>`, at
    /// most 50) and say whether the policy lies below the curve through them.
    #[arg(
        long,
        value_name = "FROM:TO:STEP",
        help_heading = "Trace mode",
        conflicts_with = "from"
    )]
    pub hpa_sweep: Option<crate::simulate::curve::Sweep>,

    /// Write the timeline (one row per evaluation of each policy) as CSV.
    #[arg(long, value_name = "FILE")]
    pub out_csv: Option<PathBuf>,

    /// Draw load, replicas and metrics over time, every policy on one figure: FILE.svg or FILE.png.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,

    /// Write a synthetic load trace of this shape instead of simulating.
    #[arg(
        long,
        value_enum,
        value_name = "SHAPE",
        help_heading = "Generating traces",
        conflicts_with_all = ["policy", "to", "compare", "hpa_target", "hpa_sweep", "out_csv", "plot"]
    )]
    pub generate: Option<crate::simulate::generate::Shape>,

    /// The generator's seed [default: 1].
    #[arg(
        long,
        value_name = "N",
        help_heading = "Generating traces",
        requires = "generate",
        conflicts_with_all = ["trace", "from"]
    )]
    pub seed: Option<u64>,

    /// How long the generated trace lasts [default: 24h for diurnal, 1h otherwise].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag, help_heading = "Generating traces", requires = "generate", conflicts_with_all = ["trace", "from"])]
    pub duration: Option<Duration>,

    /// The generated trace's lowest rate, in requests per second [default: 120].
    #[arg(
        long,
        value_name = "RPS",
        help_heading = "Generating traces",
        requires = "generate",
        conflicts_with_all = ["trace", "from"]
    )]
    pub base_load: Option<f64>,

    /// The generated trace's highest rate, in requests per second [default: 600].
    #[arg(
        long,
        value_name = "RPS",
        help_heading = "Generating traces",
        requires = "generate",
        conflicts_with_all = ["trace", "from"]
    )]
    pub peak_load: Option<f64>,

    /// Where to write the generated trace [default: standard output].
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Generating traces",
        requires = "generate",
        conflicts_with_all = ["trace", "from"]
    )]
    pub out: Option<PathBuf>,

    #[command(flatten)]
    pub prometheus: PrometheusArgs,
}

/// Whose series a policy's queries may read: the namespace label of --prometheus-url, the
/// operator's grants and opted-out namespaces. Shared by `run`, `query`, `simulate` and `check`,
/// so that what is tried offline is what runs.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Multi-tenancy")]
pub struct TenancyArgs {
    /// The label that carries a series' namespace on --prometheus-url, such as
    /// `kubernetes_namespace` where relabeling named it so, or a tenant label. Every selector
    /// of a policy's queries is given `LABEL="<the policy's namespace>"`.
    #[arg(
        long = "prometheus-namespace-label",
        value_name = "LABEL",
        default_value = "namespace",
        env = "SCALEWISE_PROMETHEUS_NAMESPACE_LABEL",
        value_parser = prometheus_label
    )]
    pub namespace_label: String,

    /// `READER=SOURCE` or `READER=SOURCE:METRIC,METRIC`: policies in namespace READER may read
    /// the series of namespace SOURCE (only those of the named Prometheus metrics, when given)
    /// by naming it in a selector (`{namespace="SOURCE"}`). Repeatable (one per line in the
    /// variable); at most 1000.
    #[arg(
        long = "cross-namespace-grant",
        value_name = "READER=SOURCE[:METRICS]",
        env = "SCALEWISE_CROSS_NAMESPACE_GRANTS",
        value_delimiter = '\n'
    )]
    pub grants: Vec<crate::metrics::tenancy::Grant>,

    /// A namespace whose policies run their queries as written, reading any namespace's series:
    /// for platform teams that need global queries. Repeatable (comma-separated in the
    /// variable); at most 1000.
    #[arg(
        long = "allow-cross-namespace-queries",
        value_name = "NS",
        env = "SCALEWISE_ALLOW_CROSS_NAMESPACE_QUERIES",
        value_delimiter = ',',
        value_parser = namespace_name
    )]
    pub unscoped_namespaces: Vec<String>,
}

/// The flags of `scalewise run`; every flag has an environment fallback.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A namespace to watch; repeatable (or comma-separated in the variable). Default: all
    /// namespaces.
    #[arg(
        long = "namespace",
        value_name = "NS",
        env = "SCALEWISE_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,

    /// Where to serve /healthz and /readyz over plain HTTP (the kubelet's probes); /metrics too
    /// when the address is a loopback one (local debugging), never elsewhere.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "0.0.0.0:8080",
        env = "SCALEWISE_METRICS_BIND"
    )]
    pub metrics_bind: SocketAddr,

    /// Where to serve /metrics over TLS to clients whose bearer token the API server accepts
    /// (TokenReview) and whose user may get the non-resource URL /metrics (SubjectAccessReview);
    /// /healthz and /readyz there are open.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "0.0.0.0:8443",
        env = "SCALEWISE_SECURE_METRICS_BIND"
    )]
    pub secure_metrics_bind: SocketAddr,

    /// The PEM certificate chain of the TLS port (such as a cert-manager Secret's tls.crt),
    /// read again when it changes. Without it, a self-signed certificate is made at start.
    #[arg(
        long,
        value_name = "FILE",
        env = "SCALEWISE_METRICS_TLS_CERT_FILE",
        requires = "metrics_tls_key_file"
    )]
    pub metrics_tls_cert_file: Option<PathBuf>,

    /// The PEM private key of --metrics-tls-cert-file (such as tls.key).
    #[arg(
        long,
        value_name = "FILE",
        env = "SCALEWISE_METRICS_TLS_KEY_FILE",
        requires = "metrics_tls_cert_file"
    )]
    pub metrics_tls_key_file: Option<PathBuf>,

    /// Elect a leader on a coordination.k8s.io/v1 Lease: only the leader reconciles.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set, env = "SCALEWISE_LEADER_ELECTION")]
    pub leader_election: bool,

    /// Share the policies across every replica instead of electing a leader: each replica holds
    /// a Lease of its own (`<lease-name>-<hash of its identity>`) and reconciles the policies a
    /// consistent hash ring over the live replicas gives it. --leader-election is then ignored.
    #[arg(long, value_name = "BOOL", default_value_t = false, action = ArgAction::Set, env = "SCALEWISE_SHARDING")]
    pub sharding: bool,

    /// The Lease's name; with --sharding, the prefix of each replica's Lease.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "scalewise-leader",
        env = "SCALEWISE_LEASE_NAME"
    )]
    pub lease_name: String,

    /// The Lease's namespace. Default: the operator's own namespace (the in-cluster service
    /// account's, or the kubeconfig context's).
    #[arg(long, value_name = "NS", env = "SCALEWISE_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// How long the Lease holds without renewal, judged by a standby on its own clock from the
    /// last renewal it saw; a standby takes over within this after the leader dies. The leader
    /// stops writing a third of it after its last successful renewal began, unless it renewed
    /// again. From 3s to 10m.
    #[arg(long, value_name = "DURATION", default_value = "15s", env = "SCALEWISE_LEASE_DURATION", value_parser = lease_duration_flag)]
    pub lease_duration: Duration,

    /// The longest one call to the API server may take (watches excepted); a write still in
    /// flight then is abandoned, and one still in flight at the leader's renew deadline too.
    /// From 1s to 5m.
    #[arg(long, value_name = "DURATION", default_value = "10s", env = "SCALEWISE_API_TIMEOUT", value_parser = api_timeout_flag)]
    pub api_timeout: Duration,

    /// Log format on standard error (filter with RUST_LOG).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "SCALEWISE_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// Reconciles in flight at once, across every watched namespace.
    #[arg(long, value_name = "N", default_value_t = 16, env = "SCALEWISE_MAX_CONCURRENT_RECONCILES", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_reconciles: u16,

    /// The most policy evaluations of one namespace per minute: past it, that namespace's
    /// evaluations wait their turn (and say so in their Throttled condition), so a namespace
    /// with many policies slows only itself. From 1 to 1000000.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 3000,
        env = "SCALEWISE_NAMESPACE_EVALUATIONS_PER_MINUTE",
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    pub namespace_evaluations_per_minute: u32,

    /// The most API writes (status, intents, /scale, events) per second, across every policy, a
    /// second's worth at once; more wait their turn, so that a burst of scales (thousands of
    /// policies at once) reaches the API server at a pace its priority and fairness admits
    /// instead of being refused (429). From 1 to 100000.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 200,
        env = "SCALEWISE_API_WRITES_PER_SECOND",
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub api_writes_per_second: u32,

    /// Prometheus requests in flight at once, across every policy.
    #[arg(long, value_name = "N", default_value_t = 32, env = "SCALEWISE_MAX_CONCURRENT_QUERIES", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_queries: u16,

    /// Share the queries of evaluations of one tick between policies: each built-in metric kind
    /// (cpu, memory, latency, errorRate, requestRate) with the same template is read with one
    /// query per tick for every policy and split per policy here; identical custom queries are
    /// read once. `false` reads every metric of every policy with its own query.
    #[arg(
        long,
        value_name = "BOOL",
        default_value_t = true,
        action = clap::ArgAction::Set,
        env = "SCALEWISE_COALESCE_QUERIES"
    )]
    pub coalesce_queries: bool,

    /// /healthz fails when a leading controller with policies has not reconciled for this long
    /// (and for three times the longest policy interval).
    #[arg(long, value_name = "DURATION", default_value = "5m", env = "SCALEWISE_STALL_TIMEOUT", value_parser = parse_duration_flag)]
    pub stall_timeout: Duration,

    /// After SIGTERM, how long in-flight reconciles may take before the process exits anyway
    /// (keep it below the pod's terminationGracePeriodSeconds).
    #[arg(long, value_name = "DURATION", default_value = "20s", env = "SCALEWISE_SHUTDOWN_TIMEOUT", value_parser = parse_duration_flag)]
    pub shutdown_timeout: Duration,

    /// /healthz fails when the leader's ScalingPolicy watch has failed to list for this long
    /// (RBAC removed, the CRD deleted, the API server refusing).
    #[arg(long, value_name = "DURATION", default_value = "2m", env = "SCALEWISE_LIST_FAILURE_TIMEOUT", value_parser = parse_duration_flag)]
    pub list_failure_timeout: Duration,

    /// The shortest interval any policy is evaluated at (a shorter spec.interval runs at this,
    /// with the condition IntervalLimited), and the shortest time between two evaluations of one
    /// policy however often its spec or target changes.
    #[arg(long, value_name = "DURATION", default_value = "2s", env = "SCALEWISE_MIN_INTERVAL", value_parser = parse_duration_flag)]
    pub min_interval: Duration,

    /// The longest a policy's written status may lag its evaluations when nothing that matters
    /// changes (no decision, limit, condition, metric message, pod count or record): status.
    /// lastEvaluationTime is at most this old (each policy writes within the last fifth of it).
    /// At or below the policy's interval, every evaluation is written. From 1s to 1h.
    #[arg(long, value_name = "DURATION", default_value = "10m", env = "SCALEWISE_STATUS_HEARTBEAT", value_parser = status_heartbeat_flag)]
    pub status_heartbeat: Duration,

    #[command(flatten)]
    pub prometheus: PrometheusArgs,
}

/// Parses a `[Nh][Nm][Ns]` duration flag.
fn parse_duration_flag(text: &str) -> Result<Duration, String> {
    crate::api::duration::parse_duration(text).map_err(|e| e.to_string())
}

/// A duration flag within `[min, max]`.
fn bounded_duration_flag(text: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = parse_duration_flag(text)?;
    if d < min || d > max {
        let show = |d: Duration| crate::text::duration(d, crate::text::Resolution::Seconds);
        return Err(format!(
            "must be from {} to {}, got {}",
            show(min),
            show(max),
            show(d)
        ));
    }
    Ok(d)
}

fn lease_duration_flag(text: &str) -> Result<Duration, String> {
    bounded_duration_flag(text, Duration::from_secs(3), Duration::from_secs(600))
}

fn status_heartbeat_flag(text: &str) -> Result<Duration, String> {
    use crate::controller::persist::{MAX_HEARTBEAT, MIN_HEARTBEAT};
    bounded_duration_flag(text, MIN_HEARTBEAT, MAX_HEARTBEAT)
}

fn api_timeout_flag(text: &str) -> Result<Duration, String> {
    bounded_duration_flag(text, Duration::from_secs(1), Duration::from_secs(300))
}

/// Where and how metrics are read: the controller-wide Prometheus, the servers policies may name
/// instead, and the limits of every query. Shared by `query` and the controller.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Metrics server")]
pub struct PrometheusArgs {
    /// The controller-wide server speaking the Prometheus HTTP API (Prometheus, Thanos, Mimir,
    /// Cortex, VictoriaMetrics), such as http://prometheus.monitoring:9090.
    #[arg(
        long = "prometheus-url",
        value_name = "URL",
        env = "SCALEWISE_PROMETHEUS_URL"
    )]
    pub url: Option<String>,

    /// A file holding the bearer token for --prometheus-url, read at every evaluation.
    #[arg(
        long = "prometheus-bearer-token-file",
        value_name = "FILE",
        env = "SCALEWISE_PROMETHEUS_BEARER_TOKEN_FILE",
        conflicts_with = "username_file"
    )]
    pub bearer_token_file: Option<PathBuf>,

    /// A file holding the basic-auth username for --prometheus-url.
    #[arg(
        long = "prometheus-username-file",
        value_name = "FILE",
        env = "SCALEWISE_PROMETHEUS_USERNAME_FILE",
        requires = "password_file"
    )]
    pub username_file: Option<PathBuf>,

    /// A file holding the basic-auth password for --prometheus-url.
    #[arg(
        long = "prometheus-password-file",
        value_name = "FILE",
        env = "SCALEWISE_PROMETHEUS_PASSWORD_FILE",
        requires = "username_file"
    )]
    pub password_file: Option<PathBuf>,

    /// A PEM bundle of CA certificates to trust for --prometheus-url, besides the system's.
    #[arg(
        long = "prometheus-ca-file",
        value_name = "FILE",
        env = "SCALEWISE_PROMETHEUS_CA_FILE"
    )]
    pub ca_file: Option<PathBuf>,

    /// Do not verify the certificate of --prometheus-url's host.
    #[arg(
        long = "prometheus-insecure-skip-verify",
        value_name = "BOOL",
        env = "SCALEWISE_PROMETHEUS_INSECURE_SKIP_VERIFY",
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub insecure_skip_verify: bool,

    /// An extra request header for --prometheus-url, such as `X-Scope-OrgID: team-a` for a Mimir,
    /// Cortex or Thanos tenant. Repeatable (one header per line in the variable: a header value
    /// may hold commas).
    #[arg(
        long = "prometheus-header",
        value_name = "NAME: VALUE",
        env = "SCALEWISE_PROMETHEUS_HEADERS",
        value_delimiter = '\n'
    )]
    pub headers: Vec<String>,

    /// How long one query may take (connect, send, answer) before the metric is unavailable.
    #[arg(
        long = "prometheus-timeout",
        value_name = "DURATION",
        default_value = "5s",
        env = "SCALEWISE_PROMETHEUS_TIMEOUT",
        value_parser = crate::api::duration::parse_duration
    )]
    pub timeout: std::time::Duration,

    /// A value whose newest raw sample is older than this is stale. Default: twice the
    /// policy's interval plus one minute.
    #[arg(
        long = "staleness-limit",
        value_name = "DURATION",
        env = "SCALEWISE_STALENESS_LIMIT",
        value_parser = crate::api::duration::parse_duration
    )]
    pub staleness_limit: Option<std::time::Duration>,

    /// The largest answer read from a server: reading stops there and the metric is invalid.
    /// Bytes, or KiB or MiB (512KiB, 1MiB), from 4 KiB to 64 MiB.
    #[arg(
        long = "prometheus-max-answer-bytes",
        value_name = "SIZE",
        default_value = "1MiB",
        env = "SCALEWISE_PROMETHEUS_MAX_ANSWER_BYTES",
        value_parser = crate::metrics::limits::parse_size
    )]
    pub max_answer_bytes: usize,

    /// The most series one answer may hold: parsing stops there and the metric is invalid
    /// (a metric's query must yield one series anyway). From 1 to 100000.
    #[arg(
        long = "prometheus-max-series",
        value_name = "N",
        default_value_t = 100,
        env = "SCALEWISE_PROMETHEUS_MAX_SERIES",
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub max_series: u32,

    /// The most series the per-pod answer of a `cpu` or `memory` metric may hold: one per pod of
    /// the policy's namespace. Past it the metric is invalid. From 1 to 100000.
    #[arg(
        long = "prometheus-max-pod-series",
        value_name = "N",
        default_value_t = 5000,
        env = "SCALEWISE_PROMETHEUS_MAX_POD_SERIES",
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub max_pod_series: u32,

    /// `NAMESPACE=PREFIX`: policies in NAMESPACE may name addresses starting with PREFIX in
    /// spec.prometheus.address (same scheme, host and port; path at or below). Repeatable, one
    /// namespace each (comma-separated in the variable). A bare PREFIX is usable by no
    /// namespace (a warning at start names it). None: policies cannot name a server. No
    /// credentials or headers are sent to these.
    #[arg(
        long = "allowed-prometheus-url",
        value_name = "NS=PREFIX",
        env = "SCALEWISE_ALLOWED_PROMETHEUS_URLS",
        value_delimiter = ','
    )]
    pub allowed_urls: Vec<String>,

    /// A YAML file of allowed prefixes with their own credentials, CA bundle, headers, the
    /// namespaces that may use each and the label carrying the namespace on each (README,
    /// "Metrics and PromQL").
    #[arg(
        long = "allowed-prometheus-config",
        value_name = "FILE",
        env = "SCALEWISE_ALLOWED_PROMETHEUS_CONFIG"
    )]
    pub allowed_config: Option<PathBuf>,

    #[command(flatten)]
    pub tenancy: TenancyArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_header_value_with_commas_stays_one_header() {
        let cli = Cli::try_parse_from([
            "scalewise",
            "run",
            "--prometheus-header",
            "Accept: application/json, text/plain",
            "--prometheus-header",
            "X-Scope-OrgID: team-a",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(
            args.prometheus.headers,
            [
                "Accept: application/json, text/plain",
                "X-Scope-OrgID: team-a"
            ]
        );
    }
}
