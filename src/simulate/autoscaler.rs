//! What the simulator drives: something that, every interval, turns metric readings and the
//! target's replicas into a replica count. scalewise's side is the decision engine itself. The
//! implementations (the HPA baseline is one) know this trait; the trait knows none of them.

use jiff::Timestamp;

use super::model::Pod;
use crate::api::{Action, Policy, ScalingPolicyStatus};
use crate::decide::{Observation, decide, next_status};

/// One evaluation's inputs.
#[derive(Clone, Debug)]
pub struct Evaluation<'a> {
    pub now: Timestamp,
    /// The target's replicas (its `/scale` `spec.replicas`).
    pub current: i32,
    /// Replicas ready to serve (equal to `current` in backtests).
    pub ready: i32,
    /// Every replica with its creation and ready times (all long established in backtests).
    pub pods: &'a [Pod],
    /// One reading per metric of the policy.
    pub observations: &'a [Observation],
}

/// What an evaluation decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The replica count the target is set to.
    pub desired: i32,
    pub action: Action,
    /// One line for humans.
    pub reason: String,
}

/// An autoscaler under simulation.
pub trait Autoscaler {
    /// Its name in tables, CSV and plots, such as `scalewise` or `hpa`.
    fn label(&self) -> &str;
    /// Seconds between evaluations.
    fn interval(&self) -> i64;
    /// One evaluation.
    fn evaluate(&mut self, input: &Evaluation<'_>) -> Outcome;
    /// What it runs, for humans.
    fn describe(&self) -> String;
}

/// The policy, decided by [`crate::decide::decide`] exactly as the controller does: the status
/// each decision leaves ([`next_status`]) is the memory of the next one.
#[derive(Clone, Debug)]
pub struct ScalewiseAutoscaler {
    policy: Policy,
    status: ScalingPolicyStatus,
    label: String,
    dry_run: bool,
}

impl ScalewiseAutoscaler {
    /// Simulates `policy`. A policy in `dryRun` is simulated as if it applied its decisions (what
    /// it would do once enabled); [`ScalewiseAutoscaler::dry_run_ignored`] says so.
    pub fn new(mut policy: Policy, label: impl Into<String>) -> Self {
        let dry_run = policy.dry_run;
        policy.dry_run = false;
        Self {
            policy,
            status: ScalingPolicyStatus::default(),
            label: label.into(),
            dry_run,
        }
    }

    /// Whether the policy is in `dryRun`, which the simulation ignores.
    pub fn dry_run_ignored(&self) -> bool {
        self.dry_run
    }

    /// The status after the last evaluation: what the controller would have written.
    pub fn status(&self) -> &ScalingPolicyStatus {
        &self.status
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

impl Autoscaler for ScalewiseAutoscaler {
    fn label(&self) -> &str {
        &self.label
    }

    fn interval(&self) -> i64 {
        self.policy.interval.as_secs().max(1)
    }

    fn describe(&self) -> String {
        let mut text = format!(
            "the decision engine of `scalewise run` on the policy, every {}s",
            self.interval()
        );
        if self.dry_run {
            text.push_str(" (the policy is in dryRun: simulated as if it applied its decisions)");
        }
        text
    }

    fn evaluate(&mut self, input: &Evaluation<'_>) -> Outcome {
        let decision = decide(
            &self.policy,
            &self.status,
            input.observations,
            input.current,
            input.now,
        );
        self.status = next_status(&self.status, &decision, None);
        let desired = if decision.changes_target() {
            decision.desired_replicas
        } else {
            input.current
        };
        Outcome {
            desired,
            action: decision.action,
            reason: decision.message,
        }
    }
}
