//! The `ScalingPolicy` custom resource: what users write.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::DurationString;
use super::limits::{
    DNS_SUBDOMAIN_PATTERN, MAX_ADDRESS_LENGTH, MAX_API_VERSION_LENGTH, MAX_FORECAST_SEASONS,
    MAX_INT32, MAX_KIND_LENGTH, MAX_METRIC_NAME_LENGTH, MAX_METRICS, MAX_PROMETHEUS_NAME_LENGTH,
    MAX_QUERY_LENGTH, MAX_RATE_POLICIES, MAX_SELECTOR_LENGTH, MAX_TARGET_NAME_LENGTH,
};
use super::status::ScalingPolicyStatus;

/// Default evaluation interval.
pub const DEFAULT_INTERVAL: &str = "15s";
/// Default policy-wide tolerance around a target.
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// Default replicas added or removed by one threshold step.
pub const DEFAULT_STEP: i32 = 1;
/// Default cooldown after any scaling action before the next scale-out.
pub const DEFAULT_SCALE_OUT_COOLDOWN: &str = "0s";
/// Default cooldown after any scaling action before the next scale-in.
pub const DEFAULT_SCALE_IN_COOLDOWN: &str = "300s";
/// Default scale-out stabilization window.
pub const DEFAULT_SCALE_OUT_STABILIZATION: &str = "0s";
/// Default scale-in stabilization window.
pub const DEFAULT_SCALE_IN_STABILIZATION: &str = "300s";
/// Default number of consecutive all-failed evaluations before `onMetricFailure` acts.
pub const DEFAULT_FAILURE_AFTER: i32 = 3;
/// Default rate window for rate() based queries.
pub const DEFAULT_METRIC_WINDOW: &str = "2m";
/// Default time after a pod starts during which its CPU usage is not trusted unless it has been
/// Ready for a whole metric window (the HPA's `--horizontal-pod-autoscaler-cpu-initialization-period`).
pub const DEFAULT_CPU_INITIALIZATION_PERIOD: &str = "5m";
/// Default time after a pod starts within which a change of its readiness is its first
/// (the HPA's `--horizontal-pod-autoscaler-initial-readiness-delay`).
pub const DEFAULT_INITIAL_READINESS_DELAY: &str = "30s";
/// Default time a pod added by a scale-out may take to become Ready before further scale-out
/// waits for it.
pub const DEFAULT_READINESS_TIMEOUT: &str = "5m";
/// Default forecast season: a day.
pub const DEFAULT_FORECAST_SEASON: &str = "24h";
/// Default resolution of a forecast's history.
pub const DEFAULT_FORECAST_STEP: &str = "5m";
/// Default time between reads of a forecast's history.
pub const DEFAULT_FORECAST_REFRESH: &str = "10m";
/// Default (and longest default) window of a forecast's accuracy.
pub const DEFAULT_FORECAST_ACCURACY_WINDOW: &str = "24h";
/// Default highest error (WAPE) of a forecast that still has a say.
pub const DEFAULT_FORECAST_MAX_ERROR: f64 = 0.3;

/// A ScalingPolicy scales one workload (a Deployment, a StatefulSet, or any resource with a
/// `/scale` subresource) between minReplicas and maxReplicas from metrics read from Prometheus. It scales out when any metric asks for more replicas and scales in only when
/// every metric with a say agrees and none of them failed to read.
// Each printcolumn(...) repeats `type_ = ...`; clippy reads the repeats as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "scalewise.dev",
    version = "v1alpha1",
    kind = "ScalingPolicy",
    plural = "scalingpolicies",
    shortname = "sp",
    category = "scalewise",
    namespaced,
    status = "ScalingPolicyStatus",
    derive = "PartialEq",
    doc = "ScalingPolicy scales a workload from Prometheus metrics with cooldowns, stabilization and an explanation of every decision.",
    printcolumn(
        name = "Target",
        type_ = "string",
        json_path = ".spec.targetRef.name",
        description = "The workload this policy scales"
    ),
    printcolumn(name = "Min", type_ = "integer", json_path = ".spec.minReplicas"),
    printcolumn(name = "Max", type_ = "integer", json_path = ".spec.maxReplicas"),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.currentReplicas",
        description = "Replicas of the target at the last evaluation"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".status.desiredReplicas",
        description = "Replicas the last decision asked for"
    ),
    printcolumn(
        name = "Last Scale",
        type_ = "date",
        json_path = ".status.lastScaleTime"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas"))]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicySpec {
    /// The workload to scale, in the policy's namespace: a Deployment, a StatefulSet, or any
    /// resource with a `/scale` subresource (an Argo Rollout, a custom resource). Its replica
    /// count is read and written through `/scale`, and its pods are those the `/scale`
    /// `status.selector` matches and the workload owns. The operator must be allowed to read
    /// and scale the kind (the Helm chart's `scaleTargets`).
    pub target_ref: TargetRef,

    /// The fewest replicas the policy scales to (0 to 2147483647). A target below it is raised
    /// at once.
    #[schemars(range(min = 0, max = MAX_INT32))]
    #[serde(deserialize_with = "int32::required")]
    pub min_replicas: i32,

    /// The most replicas the policy scales to (1 to 2147483647, and at least minReplicas). A
    /// target above it is lowered at once.
    #[schemars(range(min = 1, max = MAX_INT32))]
    #[serde(deserialize_with = "int32::required")]
    pub max_replicas: i32,

    /// How often the policy is evaluated, as `[Nh][Nm][Ns]`, from 1s to 1h. Default: 15s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<DurationString>,

    /// For metrics with a `target` or `targetPerReplica`: no change is proposed while the ratio of
    /// the value to the target is within this fraction of 1.0. In [0, 1). Default: 0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub tolerance: Option<f64>,

    /// The metrics that drive the policy (1 to 20, unique names). The policy proposes the largest
    /// replica count any metric proposes: it scales out when any metric asks, and scales in only
    /// when every metric with a say asks.
    #[schemars(length(min = 1, max = MAX_METRICS))]
    pub metrics: Vec<MetricSpec>,

    /// Read this policy's metrics from another server than the controller-wide Prometheus
    /// (`--prometheus-url`). The address must be allowed by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusServer>,

    /// How fast and how often the policy may scale out and in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<Behavior>,

    /// What to do when every metric has failed to read. A failed metric never lets the policy
    /// scale in. Default: action Hold after 3 evaluations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_metric_failure: Option<OnMetricFailure>,

    /// Evaluate and record every decision in status and events, but never change the target.
    /// Unapplied decisions start no cooldown. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,

    /// Stop evaluating decisions: the target is left as it is. Unpausing starts a new
    /// stabilization window. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,

    /// How the target's pods are counted: readiness, start-up, rollouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodRules>,

    /// A seasonal forecast of one metric that raises the floor of replicas ahead of load that
    /// comes back at the same time every day or week. It only ever raises the floor: replicas
    /// fall only when the reactive metrics ask, under every scale-in rule. Off until it has two
    /// full seasons of history of its longest season, and while its measured error is above
    /// maxError.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastSpec>,
}

/// `spec.forecast`: what is forecast, from how much history, and how its accuracy gates it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForecastSpec {
    /// The name of a metric of `spec.metrics` with `targetPerReplica` (a total shared by the
    /// replicas, such as a request rate): its PromQL is read over the past with range queries
    /// and the floor is ceil(forecast / targetPerReplica).
    #[schemars(length(min = 1, max = MAX_METRIC_NAME_LENGTH))]
    pub metric: String,

    /// The season lengths, as `[Nh][Nm][Ns]`, each from 10m to 168h (a week), 1 to 3 of them.
    /// Default: [24h]. `[24h, 168h]` follows both the daily and the weekly shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_FORECAST_SEASONS))]
    pub seasons: Option<Vec<DurationString>>,

    /// The resolution of the history (the range query's step), from 10s to 1h. Default: 5m.
    /// (2 x longest season + accuracyWindow) / step must be at most 11000 points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<DurationString>,

    /// How often the history is read again, from 10s to 24h. Default: 10m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<DurationString>,

    /// The trailing window over which the forecast's error is measured, from 1m to 168h.
    /// Default: 24h, or the longest season when shorter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_window: Option<DurationString>,

    /// The highest error at which the forecast still has a say: the weighted absolute
    /// percentage error (WAPE) over accuracyWindow, sum(|forecast - actual|) / sum(|actual|), as
    /// a fraction, in (0, 10]. Default: 0.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 10.0))]
    pub max_error: Option<f64>,

    /// `Active` lets the forecast raise the floor; `Shadow` records in status what it would
    /// have done, without acting. Default: Active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ForecastMode>,

    /// How long a new replica takes to serve, from 0s to 1h: the forecast is for now plus this.
    /// Default: measured from the target's Ready pods (the longest time from a pod's start to
    /// its Ready), or 1m when none is Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_delay: Option<DurationString>,
}

/// Whether the forecast acts.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ForecastMode {
    #[default]
    Active,
    Shadow,
}

/// How the target's pods are counted for `cpu` and `memory`, and how their readiness holds
/// scaling back.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodRules {
    /// For `cpu`: a pod that started less than this ago counts as starting (0% of its request on
    /// a scale-out, left out on a scale-in) while it is not Ready, or while it has been Ready for
    /// less than the metric's window. As the HPA's cluster-wide flag, per policy. From 0s to 1h.
    /// Default: 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_initialization_period: Option<DurationString>,
    /// A pod that is not Ready and whose readiness last changed within this of its start has
    /// never been Ready: it counts as starting, not unready. As the HPA's cluster-wide flag, per
    /// policy. From 0s to 1h. Default: 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_readiness_delay: Option<DurationString>,
    /// When pods added by a scale-out are still not Ready this long after they were created,
    /// further scale-out waits (limit `CapacityNotReady`) until they are Ready or replaced.
    /// From 1s to 1h. Default: 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_timeout: Option<DurationString>,
    /// Hold scale-in while the target is mid-rollout (limit `Rollout`): surge pods and pods
    /// still starting make the load per pod look lower than it is. Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_scale_in_during_rollout: Option<bool>,
}

/// The workload a policy scales.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// API version of the target, `group/version` or `v1`: `apps/v1`, `argoproj.io/v1alpha1`.
    #[schemars(length(max = MAX_API_VERSION_LENGTH))]
    pub api_version: String,
    /// Kind of the target: `Deployment`, `StatefulSet`, `Rollout`, or any kind with a `/scale`
    /// subresource.
    #[schemars(length(max = MAX_KIND_LENGTH))]
    pub kind: String,
    /// Name of the target in the policy's namespace (a DNS subdomain, at most 253 characters).
    #[schemars(
        length(min = 1, max = MAX_TARGET_NAME_LENGTH),
        regex(pattern = DNS_SUBDOMAIN_PATTERN)
    )]
    pub name: String,
}

/// One metric: where its value comes from, and how it turns into a replica count. Exactly one
/// source (`cpu`, `memory`, `latency`, `errorRate`, `requestRate` or `query`), and either
/// thresholds (`scaleOutAbove`, optionally `scaleInBelow`) or a target (`target` or
/// `targetPerReplica`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSpec {
    /// A name unique within the policy, used in status, events and the operator's metrics.
    #[schemars(
        length(min = 1, max = MAX_METRIC_NAME_LENGTH),
        regex(pattern = r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")
    )]
    pub name: String,

    /// CPU usage of the target's pods as a percent of their CPU requests (0 to 100 and above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<ResourceMetric>,

    /// Memory working set of the target's pods as a percent of their memory requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ResourceMetric>,

    /// A quantile of a Prometheus histogram, in the histogram's unit (usually seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyMetric>,

    /// The fraction (0 to 1) of a request counter's rate that matches `errorSelector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<ErrorRateMetric>,

    /// A request counter's rate, in requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_rate: Option<RequestRateMetric>,

    /// Any PromQL expression that yields exactly one number (a scalar, or an instant vector of
    /// one series). `{namespace}`, `{target}` and `{window}` are replaced by the policy's
    /// namespace, the target's name and the metric's window. At most 8192 characters
    /// and 64 levels of brackets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_QUERY_LENGTH))]
    pub query: Option<String>,

    /// Threshold: propose scaleOut.step more replicas while the value is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_out_above: Option<f64>,

    /// Threshold: propose scaleIn.step fewer replicas while the value is below this. Must be below
    /// scaleOutAbove. Without it the metric only ever asks to scale out and has no say on scale-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_in_below: Option<f64>,

    /// Target for a value averaged over replicas (such as CPU percent): propose
    /// ceil(replicas * value / target). Greater than 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<f64>,

    /// Target for a total shared by the replicas (such as a queue length): propose
    /// ceil(value / targetPerReplica). Greater than 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_per_replica: Option<f64>,

    /// The window of rate() and similar range functions in this metric's query, as
    /// `[Nh][Nm][Ns]`, from 1s to 1h. Default: 2m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<DurationString>,
}

/// A resource metric (`cpu` or `memory`) of the target's pods: the pods' usage over their
/// requests, as a percent. `{}` uses the default label conventions of cAdvisor (usage) and
/// kube-state-metrics (requests); each field overrides one part. Every text field may use the
/// placeholders `{namespace}` (the policy's namespace), `{target}` (the target's name) and
/// `{window}` (the metric's window).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMetric {
    /// Label matchers (without braces) selecting the pods, applied to both the usage and the
    /// requests series, instead of the target's own pods. Without it (the default), usage is
    /// read per pod for the namespace (`namespace="{namespace}"`) and counted for exactly the
    /// pods the target owns, by their readiness (see `spec.pods`), with requests from the pods'
    /// specs. With it, the value is usage over requests of whatever series it selects, as
    /// written: no pod attribution and no readiness rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_SELECTOR_LENGTH))]
    pub pod_selector: Option<String>,

    /// The usage metric. Default: cAdvisor's `container_cpu_usage_seconds_total` (a counter of
    /// CPU seconds, read through rate() over the window) for cpu, and
    /// `container_memory_working_set_bytes` (a gauge) for memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_PROMETHEUS_NAME_LENGTH))]
    pub usage_metric: Option<String>,

    /// Label matchers (without braces) added to the usage series. Default:
    /// `container!="", container!="POD"` (leaves out cAdvisor's pod-level and pause-container
    /// series). An empty string adds none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_SELECTOR_LENGTH))]
    pub usage_selector: Option<String>,

    /// The requests metric, a gauge in cores (cpu) or bytes (memory). Default:
    /// kube-state-metrics' `kube_pod_container_resource_requests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_PROMETHEUS_NAME_LENGTH))]
    pub requests_metric: Option<String>,

    /// Label matchers (without braces) added to the requests series. Default:
    /// `resource="cpu", unit="core"` for cpu and `resource="memory", unit="byte"` for memory.
    /// An empty string adds none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_SELECTOR_LENGTH))]
    pub requests_selector: Option<String>,
}

/// Where a policy's metrics are read, instead of the controller-wide Prometheus.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusServer {
    /// The base URL of a server speaking the Prometheus HTTP API (Prometheus, Thanos, Mimir,
    /// Cortex, VictoriaMetrics), such as `https://mimir.example:8080/prometheus`. It must start
    /// with one of the prefixes the operator allows (`--allowed-prometheus-url`), or the policy
    /// is invalid; credentials and extra headers are sent only where the operator configured
    /// them for that prefix.
    #[schemars(length(min = 1, max = MAX_ADDRESS_LENGTH))]
    pub address: String,
}

/// The placeholders the PromQL fields of a metric (`query`, selectors, metric names) may use.
pub mod placeholder {
    /// The policy's namespace.
    pub const NAMESPACE: &str = "{namespace}";
    /// The name of the target.
    pub const TARGET: &str = "{target}";
    /// The metric's window (`window`, default 2m), as a PromQL duration such as `2m`.
    pub const WINDOW: &str = "{window}";

    /// Replaces every placeholder in `text` by its value. Other braces are left alone, so label
    /// matchers and regular expressions such as `code=~"5[0-9]{2}"` pass through unchanged.
    pub fn expand(text: &str, namespace: &str, target: &str, window: &str) -> String {
        text.replace(NAMESPACE, namespace)
            .replace(TARGET, target)
            .replace(WINDOW, window)
    }
}

/// A histogram quantile.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatencyMetric {
    /// The histogram's base name, without `_bucket`: `http_request_duration_seconds`.
    #[schemars(length(min = 1, max = MAX_PROMETHEUS_NAME_LENGTH))]
    pub histogram: String,
    /// The quantile, strictly between 0 and 1: 0.95 for p95.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub quantile: f64,
    /// A PromQL label matcher list (without braces) selecting the service's series:
    /// `service="checkout"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_SELECTOR_LENGTH))]
    pub selector: Option<String>,
}

/// An error rate: errors over all requests of one counter.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorRateMetric {
    /// The request counter: `http_requests_total`.
    #[schemars(length(min = 1, max = MAX_PROMETHEUS_NAME_LENGTH))]
    pub counter: String,
    /// Label matchers (without braces) that pick the errors among the counter's series:
    /// `code=~"5.."`.
    #[schemars(length(min = 1, max = MAX_SELECTOR_LENGTH))]
    pub error_selector: String,
    /// Label matchers (without braces) selecting the service's series: `service="checkout"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_SELECTOR_LENGTH))]
    pub selector: Option<String>,
}

/// A request rate of one counter.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestRateMetric {
    /// The request counter: `http_requests_total`.
    #[schemars(length(min = 1, max = MAX_PROMETHEUS_NAME_LENGTH))]
    pub counter: String,
    /// Label matchers (without braces) selecting the service's series: `service="checkout"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_SELECTOR_LENGTH))]
    pub selector: Option<String>,
}

/// Limits on scaling in each direction.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Behavior {
    /// Limits on adding replicas. Defaults: step 1, cooldown 0s, stabilizationWindow 0s, policies
    /// Percent 100 and Pods 4 per 15s with selectPolicy Max.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_out: Option<ScalingRules>,
    /// Limits on removing replicas. Defaults: step 1, cooldown 300s, stabilizationWindow 300s,
    /// policies Percent 100 per 15s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_in: Option<ScalingRules>,
}

/// Limits on scaling in one direction.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingRules {
    /// Replicas one threshold metric adds (scaleOut) or removes (scaleIn) per decision. At
    /// least 1. Default: 1.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "int32::optional"
    )]
    #[schemars(range(min = 1, max = MAX_INT32))]
    pub step: Option<i32>,
    /// After any scaling action (in either direction), no action in this direction until this
    /// long has passed, at most 24h. Defaults: scaleOut 0s, scaleIn 300s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<DurationString>,
    /// As in the HorizontalPodAutoscaler: scale-in goes only as low as the highest proposal of
    /// this window, and scale-out only as high as the lowest proposal of this window. No scale-in
    /// happens until the policy has been evaluating for a whole scale-in window. At most 1h.
    /// Defaults: scaleOut 0s, scaleIn 300s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stabilization_window: Option<DurationString>,
    /// Rate limits, as in the HorizontalPodAutoscaler's behavior: each allows at most `value`
    /// pods or percent of the replicas at the start of `period`. When absent: scaleOut Percent
    /// 100 and Pods 4 per 15s; scaleIn Percent 100 per 15s. At most 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_RATE_POLICIES))]
    pub policies: Option<Vec<RatePolicy>>,
    /// Which rate policy applies when there are several: Max (the one allowing the largest
    /// change), Min (the smallest change) or Disabled (no scaling in this direction at all).
    /// Default: Max.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select_policy: Option<SelectPolicy>,
}

/// A rate limit on scaling.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RatePolicy {
    /// `Pods` (a number of replicas) or `Percent` (of the replicas at the start of the period).
    #[serde(rename = "type")]
    pub type_: RatePolicyType,
    /// How many pods or percent per period, 1 to 2147483647.
    #[schemars(range(min = 1, max = MAX_INT32))]
    #[serde(deserialize_with = "int32::required")]
    pub value: i32,
    /// The period the limit applies to, as `[Nh][Nm][Ns]`, at least 1s and at most 30m.
    pub period: DurationString,
}

/// The unit of a rate policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RatePolicyType {
    Pods,
    Percent,
}

/// How several rate policies combine.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SelectPolicy {
    #[default]
    Max,
    Min,
    Disabled,
}

/// What to do when every metric has failed to read for a while.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnMetricFailure {
    /// `Hold` keeps the current replicas (scale-out asked by no one, scale-in never). `Fallback`
    /// raises the target to fallbackReplicas (never lowers it). Default: Hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<FailureAction>,
    /// Replicas for the Fallback action, within [minReplicas, maxReplicas]. Required with Fallback.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "int32::optional"
    )]
    #[schemars(range(min = 0, max = MAX_INT32))]
    pub fallback_replicas: Option<i32>,
    /// How many consecutive evaluations with every metric failed before the action applies. At
    /// least 1. Default: 3.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "int32::optional"
    )]
    #[schemars(range(min = 1, max = MAX_INT32))]
    pub after: Option<i32>,
}

/// The action taken when every metric has failed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum FailureAction {
    #[default]
    Hold,
    Fallback,
}

/// Integers of the spec read as int32 with a message naming the limit: `maxReplicas: 2147483648`
/// (which an API server stores, since it does not enforce `format: int32`) is reported as
/// `must be at most 2147483647 (an int32), got 2147483648`.
mod int32 {
    use std::fmt;

    use serde::Deserializer;
    use serde::de::{Error, Visitor};

    struct Int32;

    impl Visitor<'_> for Int32 {
        type Value = i32;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("i32")
        }

        fn visit_i64<E: Error>(self, v: i64) -> Result<i32, E> {
            i32::try_from(v).map_err(|_| {
                if v > 0 {
                    E::custom(format!("must be at most {} (an int32), got {v}", i32::MAX))
                } else {
                    E::custom(format!("must be at least {} (an int32), got {v}", i32::MIN))
                }
            })
        }

        fn visit_u64<E: Error>(self, v: u64) -> Result<i32, E> {
            i32::try_from(v)
                .map_err(|_| E::custom(format!("must be at most {} (an int32), got {v}", i32::MAX)))
        }
    }

    pub(super) fn required<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
        d.deserialize_i32(Int32)
    }

    struct OptionalInt32;

    impl<'de> Visitor<'de> for OptionalInt32 {
        type Value = Option<i32>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("i32")
        }

        fn visit_none<E: Error>(self) -> Result<Option<i32>, E> {
            Ok(None)
        }

        fn visit_unit<E: Error>(self) -> Result<Option<i32>, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<i32>, D::Error> {
            required(d).map(Some)
        }
    }

    pub(super) fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
        d.deserialize_option(OptionalInt32)
    }
}
