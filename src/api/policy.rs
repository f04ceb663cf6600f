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
    /// The name of the Deployment to scale.
    pub target: String,
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
