//! What the operator writes back: the `status` of a ScalingPolicy.
//!
//! Everything the decision engine needs to remember (last scale, stabilization history, the start
//! of the current evaluation run, failure count) lives here, so a restarted or failed-over
//! controller picks up exactly where the previous one stopped.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types written by scalewise.
pub mod condition {
    /// The spec is valid and the policy is being evaluated.
    pub const READY: &str = "Ready";
    /// The target can be read and scaled by this policy (exists, no other owner, not paused).
    pub const ABLE_TO_SCALE: &str = "AbleToScale";
    /// The policy's metrics drive decisions (False while paused, scaled to zero, or every metric failed).
    pub const SCALING_ACTIVE: &str = "ScalingActive";
    /// The last decision was held back by minReplicas, maxReplicas or a rate policy.
    pub const SCALING_LIMITED: &str = "ScalingLimited";
    /// Every metric could be read at the last evaluation.
    pub const METRICS_AVAILABLE: &str = "MetricsAvailable";
    /// The target was scaled by someone other than scalewise since its last evaluation (set by
    /// the controller, beside the engine's conditions).
    pub const EXTERNAL_SCALE: &str = "ExternalScale";
    /// The persisted status held impossible values and was replaced (set by the controller only
    /// when that happened, and turned True at the next evaluation).
    pub const STATUS_TRUSTED: &str = "StatusTrusted";
    /// The spec's interval is below the operator's `--min-interval`: the policy is evaluated at
    /// the floor (set only while, or once, that is so).
    pub const INTERVAL_LIMITED: &str = "IntervalLimited";
    /// Times recorded in the status lie ahead of the evaluating replica's clock and were taken as
    /// now (set only while, or once, that is so).
    pub const CLOCK_SKEW: &str = "ClockSkew";
    /// The namespace's evaluations wait for their turn: it is over the operator's budget of
    /// evaluations per minute (set only while, or once, that is so).
    pub const THROTTLED: &str = "Throttled";
}

/// The values of `status.forecast.state`.
pub mod forecast_state {
    /// Not enough history yet.
    pub const LEARNING: &str = "Learning";
    /// Its error is above `maxError`: no say.
    pub const INACCURATE: &str = "Inaccurate";
    /// It sets a floor (in shadow mode, records the floor it would set).
    pub const READY: &str = "Ready";
    /// The history could not be read: no say.
    pub const FAILED: &str = "Failed";
}

/// `status.forecast`: the forecast at the last evaluation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForecastStatus {
    /// `Active` or `Shadow` (spec.forecast.mode).
    pub mode: String,
    /// `Learning` (not two full seasons of history yet, or too little of the accuracy window
    /// scored), `Inaccurate` (error above maxError: no say), `Ready` (it sets a floor) or
    /// `Failed` (the history could not be read: no say).
    pub state: String,
    /// The forecast of the metric for now plus the start-up delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// ceil(value / targetPerReplica), when Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_replicas: Option<i32>,
    /// Whether the floor raised the last decision's proposal (in shadow mode: whether it would
    /// have).
    #[serde(default)]
    pub raised: bool,
    /// The forecast's error over the accuracy window (WAPE, as a fraction), when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<f64>,
    /// spec.forecast.maxError (default 0.3).
    pub max_error: f64,
    /// Points of the accuracy window scored.
    #[serde(default)]
    pub points_scored: i32,
    /// How far ahead the forecast looks (the start-up delay), in seconds.
    pub horizon_seconds: i64,
    /// Where the start-up delay came from: `spec.forecast.startupDelay`, the target's pods, or
    /// the default.
    pub horizon_source: String,
    /// When the history was last read from Prometheus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_read_time: Option<Time>,
    /// The oldest point of the history read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_since: Option<Time>,
    /// One line for humans: what the forecast says and what it did.
    pub message: String,
}

/// The observed state of a ScalingPolicy, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicyStatus {
    /// The metadata.generation of the spec the last evaluation used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The target's replicas (`/scale` spec.replicas) at the last evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_replicas: Option<i32>,

    /// The replicas the last decision asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,

    /// When the policy last changed the target's replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,

    /// The direction of the last change: Out or In.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_direction: Option<ScaleDirection>,

    /// When the policy was last evaluated, as last written: evaluations that change nothing
    /// that matters are not written, so this is at most the operator's --status-heartbeat old
    /// (10 minutes by default) while the policy is evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_evaluation_time: Option<Time>,

    /// Seconds the last evaluation waited for the operator's reconcile and query slots, which
    /// namespaces share in turn (to the millisecond).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_seconds: Option<f64>,

    /// Start of the current run of evaluations. Reset when the policy is unpaused, when the
    /// controller was away for more than three intervals, and when an operator replica takes
    /// the policy over from the status on the cluster (it started, or another replica wrote
    /// last); no scale-in happens until a whole scale-in stabilization window has passed since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluating_since: Option<Time>,

    /// The target's pods at the last evaluation: how many there are, how many are Ready, and
    /// whether the target is mid-rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,

    /// What each metric read at the last evaluation and the replicas it proposed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricStatus>,

    /// The last decision and why it came out as it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<DecisionRecord>,

    /// Recent proposals, for the stabilization windows. Only entries that can still decide a
    /// window are kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recommendations: Vec<Recommendation>,

    /// Recent changes of the target's replicas made by this policy, for the rate policies. Only
    /// entries inside the longest rate period are kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scale_events: Vec<ScaleEvent>,

    /// Consecutive evaluations in which every metric failed to read.
    #[serde(default)]
    pub consecutive_failures: i32,

    /// A scale recorded before the target was patched (write-ahead) and not yet confirmed. The
    /// next evaluation compares it with the target: applied (counted for cooldowns and rate
    /// periods), not applied (decided again, never counted), or applied and changed since by
    /// someone else (counted, and reported as ExternalScale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_scale: Option<ScaleIntent>,

    /// What the policy's queries may read beyond its own namespace's series, when the operator
    /// allows more; absent when they read only their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_access: Option<NamespaceAccess>,

    /// Where `spec.forecast` stands at the last evaluation: learning, inaccurate or ready, its
    /// measured error, and the floor it set (or, in shadow mode, would have set). Recomputed
    /// from the history in Prometheus after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastStatus>,
    /// Ready, AbleToScale, ScalingActive, ScalingLimited and MetricsAvailable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// What a policy's queries may read beyond its own namespace's series.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceAccess {
    /// The operator runs this namespace's queries as written, reading any namespace
    /// (`--allow-cross-namespace-queries`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unscoped: bool,
    /// Other namespaces whose series the operator lets this one read (`--cross-namespace-grant`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::api::limits::MAX_GRANTS))]
    pub grants: Vec<NamespaceGrant>,
}

/// One namespace a policy may read, and for which metrics.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceGrant {
    /// The other namespace.
    #[schemars(length(max = 63))]
    pub namespace: String,
    /// The Prometheus metrics it may read there; every metric when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::api::limits::MAX_GRANT_METRICS))]
    pub metrics: Vec<String>,
}

/// The target's pods at one evaluation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    /// The pods the target owns that are not being deleted or ended.
    #[schemars(range(min = 0, max = crate::api::limits::MAX_INT32))]
    pub pods: i32,
    /// Of them, the Ready ones.
    #[schemars(range(min = 0, max = crate::api::limits::MAX_INT32))]
    pub ready_pods: i32,
    /// Pods the target's selector matches that belong to another workload: left out.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0, max = crate::api::limits::MAX_INT32))]
    pub other_workload_pods: i32,
    /// Why the target is mid-rollout (scale-in is held while it is), or that rollouts of its
    /// kind cannot be told; absent when it is not mid-rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// A scale decided and recorded before it is made.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleIntent {
    /// The decision: when, from and to how many replicas, which rule won and why.
    pub decision: DecisionRecord,
    /// The proposal the evaluation recorded for the stabilization windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = crate::api::limits::MAX_INT32))]
    pub recommended_replicas: Option<i32>,
    /// The uid of the target the decision was made for: an intent is never applied to another
    /// object of the same name.
    #[serde(rename = "targetUID")]
    #[schemars(length(max = crate::api::limits::MAX_UID_LENGTH))]
    pub target_uid: String,
    /// The target's resourceVersion the decision was made from; the scale is conditional on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::api::limits::MAX_RESOURCE_VERSION_LENGTH))]
    pub target_resource_version: Option<String>,
}

/// A direction of scaling.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ScaleDirection {
    Out,
    In,
}

/// Why a metric has no value. The same kinds are used by the metrics reader, the decision
/// engine, `scalewise decide` and status.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    /// The server could not be asked or answered with an error (connection, timeout, HTTP or PromQL error).
    Unavailable,
    /// The query matched no series.
    Empty,
    /// The newest sample behind the value is older than the staleness limit.
    Stale,
    /// The answer is not one usable number: NaN, infinite, negative where that makes no sense, or several series.
    Invalid,
}

impl FailureKind {
    pub const ALL: [FailureKind; 4] = [Self::Unavailable, Self::Empty, Self::Stale, Self::Invalid];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Empty => "empty",
            Self::Stale => "stale",
            Self::Invalid => "invalid",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One metric at the last evaluation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricStatus {
    /// The metric's name in the spec.
    pub name: String,
    /// The value read, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Why there was no value: unavailable, empty, stale or invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    /// What went wrong, or how the value turned into a proposal.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The replicas this metric proposed; absent when it abstained (a threshold metric without
    /// scaleInBelow that is not above scaleOutAbove has no say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed_replicas: Option<i32>,
    /// The PromQL that ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// A decision and its explanation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecord {
    /// When the decision was made.
    pub time: Time,
    /// ScaleOut, ScaleIn or Hold.
    pub action: Action,
    /// Replicas before the decision.
    pub from: i32,
    /// Replicas the decision asked for.
    pub to: i32,
    /// The metric whose proposal won, if any metric proposed anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Every limit that held the decision back, in the order they applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<Limit>,
    /// One line for humans.
    pub message: String,
    /// True when the decision was recorded but not applied (dryRun).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// What a decision does to the target.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Action {
    ScaleOut,
    ScaleIn,
    Hold,
}

impl Action {
    /// The action that takes a target from `current` to `desired` replicas.
    pub fn between(current: i32, desired: i32) -> Self {
        match desired.cmp(&current) {
            std::cmp::Ordering::Greater => Self::ScaleOut,
            std::cmp::Ordering::Less => Self::ScaleIn,
            std::cmp::Ordering::Equal => Self::Hold,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ScaleOut => "ScaleOut",
            Self::ScaleIn => "ScaleIn",
            Self::Hold => "Hold",
        }
    }
}

/// A limit that held a decision back.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limit {
    /// Which limit: Tolerance, FailureHold, Fallback, Stabilization, RatePolicy, Cooldown,
    /// Rollout, CapacityNotReady, MinReplicas, MaxReplicas, RangeCorrection, Paused or
    /// ScaledToZero.
    #[serde(rename = "type")]
    pub kind: LimitKind,
    /// What the limit did, for humans.
    pub message: String,
    /// The replicas the decision would have had without this limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wanted: Option<i32>,
    /// The replicas after this limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<i32>,
    /// When the limit stops holding (cooldowns and the stabilization warm-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Time>,
}

/// The kinds of limits, in the order the engine applies them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum LimitKind {
    Paused,
    ScaledToZero,
    RangeCorrection,
    Tolerance,
    FailureHold,
    Fallback,
    Stabilization,
    RatePolicy,
    Cooldown,
    /// Scale-in held while the target is mid-rollout (`spec.pods.holdScaleInDuringRollout`).
    Rollout,
    /// Scale-out held while pods added by a scale-out are not Ready after
    /// `spec.pods.readinessTimeout`.
    CapacityNotReady,
    MinReplicas,
    MaxReplicas,
}

/// A proposal recorded for the stabilization windows.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// When the proposal was made.
    pub time: Time,
    /// The proposed replicas, bounded to one beyond [minReplicas, maxReplicas].
    pub replicas: i32,
}

/// A change of the target's replicas made by the policy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleEvent {
    /// When the target was scaled.
    pub time: Time,
    /// Replicas before.
    pub from: i32,
    /// Replicas after.
    pub to: i32,
}
