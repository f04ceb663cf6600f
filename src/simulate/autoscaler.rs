//! What the simulator drives: something that, every interval, turns metric readings and the
//! target's replicas into a replica count. scalewise's side is the decision engine itself. The
//! implementations (the HPA baseline is one) know this trait; the trait knows none of them.

use jiff::Timestamp;

use super::model::Pod;
use jiff::SignedDuration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{Action, ForecastStatus, Policy, ScalingPolicyStatus};
use crate::decide::forecast::{self, Accuracy, History};
use crate::decide::{Floor, Observation, Reading, TargetState, decide_for, next_status};

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
    /// The service model's start-up delay in seconds (none in backtests), which the forecast
    /// looks ahead by unless the policy says.
    pub startup_delay: Option<i64>,
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
    /// The forecast's history, when the policy has `spec.forecast`.
    forecast: Option<Learned>,
}

/// What the simulated controller knows of the forecast metric's past: every step's reading (the
/// range query the controller sends), and the copy of it read at the last refresh.
#[derive(Clone, Debug)]
struct Learned {
    recorded: History,
    read: History,
    read_at: Option<i64>,
    /// The accuracy measured at the last read.
    accuracy: Option<Accuracy>,
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
            forecast: None,
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

impl ScalewiseAutoscaler {
    /// The forecast at this evaluation, as the controller would assess it: the forecast
    /// metric's reading recorded at the newest step at or before now, the history read again
    /// every `refresh`, the floor looking the model's start-up delay ahead.
    fn forecast(&mut self, input: &Evaluation<'_>) -> Option<(Option<Floor>, ForecastStatus)> {
        let rule = self.policy.forecast.as_ref()?;
        let now = input.now.as_second();
        let step = rule.step.as_secs().max(1);
        let newest = now.div_euclid(step).saturating_mul(step);
        let learned = self.forecast.get_or_insert_with(|| Learned {
            recorded: History::new(newest, step),
            read: History::new(newest, step),
            read_at: None,
            accuracy: None,
        });
        let value = input
            .observations
            .iter()
            .find(|o| o.name == rule.metric)
            .and_then(|o| match o.reading {
                Reading::Value(v) => Some(v),
                Reading::Failed { .. } => None,
            });
        learned.recorded.record(newest, value);
        learned
            .recorded
            .forget_before(now.saturating_sub(rule.history_span().as_secs()));
        if learned
            .read_at
            .is_none_or(|at| now.saturating_sub(at) >= rule.refresh.as_secs())
        {
            learned.read = learned.recorded.clone();
            learned.read_at = Some(now);
            learned.accuracy = Some(forecast::measure(&learned.read, rule, now));
        }
        let measured = input.startup_delay.map(|d| {
            (
                SignedDuration::from_secs(d),
                "the service model's start-up delay",
            )
        });
        let (horizon, source) = forecast::horizon(rule, measured);
        let measured = learned
            .accuracy
            .unwrap_or_else(|| forecast::measure(&learned.read, rule, now));
        let a = forecast::assess_measured(&learned.read, rule, now, horizon, &measured);
        let since = learned
            .read
            .oldest()
            .and_then(|t| Timestamp::from_second(t).ok())
            .map(Time);
        let read = learned
            .read_at
            .and_then(|t| Timestamp::from_second(t).ok())
            .map(Time);
        Some((
            forecast::floor(&a, rule),
            forecast::status_of(&a, rule, source, read, since),
        ))
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
        let forecast = self.forecast(input);
        let target = TargetState {
            forecast: forecast.as_ref().and_then(|(floor, _)| floor.clone()),
            ..TargetState::default()
        };
        let decision = decide_for(
            &self.policy,
            &self.status,
            input.observations,
            input.current,
            &target,
            input.now,
        );
        self.status = next_status(&self.status, &decision, None);
        self.status.forecast = forecast.map(|(_, status)| forecast::record(status, &decision));
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
