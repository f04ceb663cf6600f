//! A policy as the decision engine, the metrics plan and the simulator read it: the spec
//! validated once, every default applied, each metric with its source and window
//! ([`crate::api::validate`] builds it).

use jiff::SignedDuration;

use super::spec::{
    ErrorRateMetric, FailureAction, LatencyMetric, RatePolicyType, RequestRateMetric,
    ResourceMetric, SelectPolicy,
};

/// A validated spec with every default applied: what the decision engine works from.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// The name of the workload to scale.
    pub target: String,
    /// Its API version and kind.
    pub target_kind: TargetKind,
    /// `spec.prometheus.address`, when the policy names its own server.
    pub address: Option<String>,
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub interval: SignedDuration,
    pub tolerance: f64,
    pub metrics: Vec<MetricRule>,
    pub scale_out: DirectionRules,
    pub scale_in: DirectionRules,
    pub on_failure: FailureRules,
    pub dry_run: bool,
    pub paused: bool,
    /// How the target's pods are counted (`spec.pods`).
    pub pods: PodPolicy,
    /// The seasonal forecast that raises the floor of replicas (`spec.forecast`).
    pub forecast: Option<ForecastRule>,
}

/// The rule name a decision gives when the forecast's floor won (so no metric may be named so).
pub const FORECAST_RULE: &str = "forecast";

/// `spec.forecast` with its defaults: which metric is forecast, over which seasons, and how its
/// accuracy gates it.
#[derive(Clone, Debug, PartialEq)]
pub struct ForecastRule {
    /// The metric of `spec.metrics` forecast (one with `targetPerReplica`).
    pub metric: String,
    /// That metric's `targetPerReplica`.
    pub per_replica: f64,
    /// Season lengths, shortest first, without repeats.
    pub seasons: Vec<SignedDuration>,
    /// The resolution of the history read.
    pub step: SignedDuration,
    /// How often the history is read again.
    pub refresh: SignedDuration,
    /// The trailing window the accuracy is measured over.
    pub accuracy_window: SignedDuration,
    /// The highest error (WAPE, a fraction) at which the forecast still has a say.
    pub max_error: f64,
    /// Record what the forecast would do, never act on it.
    pub shadow: bool,
    /// `spec.forecast.startupDelay`: how long a new replica takes to serve, when the policy
    /// says; otherwise it is measured from the target's pods.
    pub startup_delay: Option<SignedDuration>,
}

impl ForecastRule {
    /// The longest season.
    pub fn longest_season(&self) -> SignedDuration {
        self.seasons
            .iter()
            .copied()
            .max()
            .unwrap_or(SignedDuration::ZERO)
    }

    /// The span of history the forecast reads: two longest seasons before the accuracy window,
    /// one step either side.
    pub fn history_span(&self) -> SignedDuration {
        self.longest_season()
            .saturating_mul(2)
            .saturating_add(self.accuracy_window)
            .saturating_add(self.step.saturating_mul(2))
    }
}

/// The API version and kind of a policy's target.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TargetKind {
    pub api_version: String,
    pub kind: String,
}

impl TargetKind {
    /// `apps/v1` `Deployment`.
    pub fn deployment() -> Self {
        Self {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
        }
    }

    /// The API group: `apps`, or empty for the core group (`v1`).
    pub fn group(&self) -> &str {
        self.api_version
            .split_once('/')
            .map_or("", |(group, _)| group)
    }

    /// The version: `v1`.
    pub fn version(&self) -> &str {
        self.api_version
            .split_once('/')
            .map_or(self.api_version.as_str(), |(_, version)| version)
    }

    /// Whether this is `kind` in API group `group` (any version).
    pub fn is(&self, group: &str, kind: &str) -> bool {
        self.group() == group && self.kind == kind
    }
}

/// The kind as people name it: `Deployment`, `StatefulSet` (the core and `apps` groups), and
/// with its group otherwise: `Rollout.argoproj.io`.
impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.group() {
            "" | "apps" => f.write_str(&self.kind),
            group => write!(f, "{}.{group}", self.kind),
        }
    }
}

/// How the target's pods are counted (`spec.pods`, defaults applied).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodPolicy {
    pub cpu_initialization_period: SignedDuration,
    pub initial_readiness_delay: SignedDuration,
    pub readiness_timeout: SignedDuration,
    pub hold_scale_in_during_rollout: bool,
}

impl Default for PodPolicy {
    /// The HPA's cluster-wide defaults (5m, 30s), a 5m readiness timeout, scale-in held during
    /// rollouts.
    fn default() -> Self {
        Self {
            cpu_initialization_period: SignedDuration::from_mins(5),
            initial_readiness_delay: SignedDuration::from_secs(30),
            readiness_timeout: SignedDuration::from_mins(5),
            hold_scale_in_during_rollout: true,
        }
    }
}

/// One metric: where its value comes from, over which window, and how the value turns into a
/// proposal.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricRule {
    pub name: String,
    pub source: Source,
    /// The range of `rate()` and similar functions in its PromQL (`spec.metrics[].window`,
    /// default 2m).
    pub window: SignedDuration,
    pub rule: Rule,
}

/// Where a metric's value comes from: the one source field a valid metric sets.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Cpu(ResourceMetric),
    Memory(ResourceMetric),
    Latency(LatencyMetric),
    ErrorRate(ErrorRateMetric),
    RequestRate(RequestRateMetric),
    /// The user's PromQL, placeholders not yet replaced.
    Query(String),
}

impl Source {
    pub fn kind(&self) -> SourceKind {
        match self {
            Self::Cpu(_) => SourceKind::Cpu,
            Self::Memory(_) => SourceKind::Memory,
            Self::Latency(_) => SourceKind::Latency,
            Self::ErrorRate(_) => SourceKind::ErrorRate,
            Self::RequestRate(_) => SourceKind::RequestRate,
            Self::Query(_) => SourceKind::Query,
        }
    }
}

/// The kind of a metric's source, named as its field in the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceKind {
    Cpu,
    Memory,
    Latency,
    ErrorRate,
    RequestRate,
    Query,
}

impl SourceKind {
    /// The field name in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Memory => "memory",
            Self::Latency => "latency",
            Self::ErrorRate => "errorRate",
            Self::RequestRate => "requestRate",
            Self::Query => "query",
        }
    }

    /// Whether a negative value can make sense: only for a user's own query.
    pub fn allows_negative(self) -> bool {
        self == Self::Query
    }
}

/// The proposal rule of a metric.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    /// Step out above `out_above`; step in below `in_below` when set, otherwise abstain.
    Thresholds {
        out_above: f64,
        in_below: Option<f64>,
    },
    /// ceil(current * value / target).
    Target(f64),
    /// ceil(value / per_replica).
    TargetPerReplica(f64),
}

/// Limits in one direction.
#[derive(Clone, Debug, PartialEq)]
pub struct DirectionRules {
    pub step: i32,
    pub cooldown: SignedDuration,
    pub stabilization_window: SignedDuration,
    pub policies: Vec<RateLimit>,
    pub select: SelectPolicy,
}

/// One rate policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub kind: RatePolicyType,
    pub value: i32,
    pub period: SignedDuration,
}

/// What happens when every metric fails.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FailureRules {
    pub action: FailureAction,
    pub fallback_replicas: Option<i32>,
    pub after: i32,
}

impl DirectionRules {
    /// The longest rate period, which bounds how long scale events must be remembered.
    pub fn longest_period(&self) -> SignedDuration {
        self.policies
            .iter()
            .map(|p| p.period)
            .max()
            .unwrap_or(SignedDuration::ZERO)
    }
}
