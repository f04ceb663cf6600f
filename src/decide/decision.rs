//! The engine's inputs and outputs: observations in, a decision with its explanation and the
//! state to persist out.

use jiff::Timestamp;

use super::pods::PodUtilization;
use crate::api::{Action, FailureKind, Limit};

/// The name given to the fallback rule when it wins.
pub const FALLBACK_RULE: &str = "onMetricFailure";

/// What was read for one metric.
#[derive(Clone, Debug, PartialEq)]
pub enum Reading {
    Value(f64),
    Failed { kind: FailureKind, message: String },
}

impl Reading {
    pub fn failed(kind: FailureKind, message: impl Into<String>) -> Self {
        Self::Failed {
            kind,
            message: message.into(),
        }
    }
}

/// One metric's reading, as handed to the engine.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// The metric's name in the spec.
    pub name: String,
    pub reading: Reading,
    /// The PromQL that produced it, for status.
    pub query: Option<String>,
    /// For a resource metric read pod by pod: how the target's pods were counted. The value is
    /// the ready pods' utilization; the engine counts the other pods as the HPA does.
    pub pods: Option<PodUtilization>,
}

impl Observation {
    pub fn value(name: impl Into<String>, value: f64) -> Self {
        Self {
            name: name.into(),
            reading: Reading::Value(value),
            query: None,
            pods: None,
        }
    }

    pub fn failed(name: impl Into<String>, kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            reading: Reading::failed(kind, message),
            query: None,
            pods: None,
        }
    }
}

/// What the controller knows of the target beyond its replicas, at one evaluation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TargetState {
    /// Why the target is mid-rollout, when it is: `2 of 4 replicas updated`.
    pub rollout: Option<String>,
    /// Why the capacity added by a scale-out is not there yet, when it is not: `2 pods created
    /// by the scale-out are not Ready after 5m`.
    pub capacity_not_ready: Option<String>,
    /// The floor of replicas `spec.forecast` sets, when its forecast is Ready.
    pub forecast: Option<Floor>,
}

/// A floor of replicas from the forecast ([`super::forecast::assess`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Floor {
    pub replicas: i32,
    /// Shadow mode: recorded, never acted on.
    pub shadow: bool,
    /// Why, for humans: `floor 5: 230 forecast 2m ahead at 50 per replica (error 12%)`.
    pub reason: String,
}

/// What the forecast's floor did to a decision.
#[derive(Clone, Debug, PartialEq)]
pub struct FloorOutcome {
    pub floor: i32,
    /// The proposal of the reactive metrics.
    pub reactive: i32,
    /// Whether the floor raised the proposal (in shadow mode: whether it would have).
    pub raised: bool,
    pub shadow: bool,
    /// The floor's reason, as [`Floor::reason`].
    pub reason: String,
}

/// What one metric proposed.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricOutcome {
    pub name: String,
    pub reading: Reading,
    /// None when the metric abstained (no say in this decision).
    pub proposal: Option<i32>,
    /// How the reading became the proposal, such as `cpu 85 > 70`.
    pub explanation: String,
    pub query: Option<String>,
}

impl MetricOutcome {
    pub fn failure(&self) -> Option<FailureKind> {
        match self.reading {
            Reading::Failed { kind, .. } => Some(kind),
            Reading::Value(_) => None,
        }
    }
}

/// The decision-relevant state that is persisted in status between evaluations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EngineState {
    pub last_evaluation_time: Option<Timestamp>,
    pub evaluating_since: Option<Timestamp>,
    pub last_scale_time: Option<Timestamp>,
    pub last_scale_direction: Option<crate::api::ScaleDirection>,
    /// Recorded proposals (time, replicas), oldest first.
    pub recommendations: Vec<(Timestamp, i32)>,
    /// Changes made by the policy (time, from, to), oldest first.
    pub scale_events: Vec<(Timestamp, i32, i32)>,
    pub consecutive_failures: i32,
}

/// The outcome of one evaluation, with its explanation and the state to persist.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The evaluation time, truncated to whole seconds (what status can hold).
    pub time: Timestamp,
    pub current_replicas: i32,
    pub desired_replicas: i32,
    pub action: Action,
    /// Every metric of the policy, in spec order.
    pub metrics: Vec<MetricOutcome>,
    /// The rule that won: a metric name, or `onMetricFailure`.
    pub winner: Option<String>,
    /// Every limit that held the decision back, in the order applied.
    pub limits: Vec<Limit>,
    /// One line for humans: `Scale out from 4 to 6: cpu 85 > 70`.
    pub message: String,
    /// The reason part of the message alone: `cpu 85 > 70`.
    pub reason: String,
    /// The decision is recorded but not applied.
    pub dry_run: bool,
    /// State to persist after this decision.
    pub state: EngineState,
    /// What the forecast's floor did, when there was one.
    pub forecast: Option<FloorOutcome>,
}

impl Decision {
    /// Whether this decision changes the target (it is neither a hold nor a dry run).
    pub fn changes_target(&self) -> bool {
        !self.dry_run && self.desired_replicas != self.current_replicas
    }

    /// Whether a limit of `kind` applied.
    pub fn limited_by(&self, kind: crate::api::LimitKind) -> bool {
        self.limits.iter().any(|l| l.kind == kind)
    }
}
