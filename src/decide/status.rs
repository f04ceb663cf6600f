//! The status a decision leaves behind: what users read with `kubectl get sp -o yaml`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::decision::{Decision, MetricOutcome, Reading};
use super::history;
use crate::api::conditions::set_condition;
use crate::api::reason::condition as reason;
use crate::api::status::condition;
use crate::api::{DecisionRecord, LimitKind, MetricStatus, ScalingPolicyStatus};

/// The status after `decision`, starting from `previous` (whose conditions keep their
/// `lastTransitionTime` when unchanged). `generation` is the spec's metadata.generation.
pub fn next_status(
    previous: &ScalingPolicyStatus,
    decision: &Decision,
    generation: Option<i64>,
) -> ScalingPolicyStatus {
    let now = Time(decision.time);
    let state = &decision.state;
    let (recommendations, scale_events) = history::to_status(state);
    let mut status = ScalingPolicyStatus {
        observed_generation: generation,
        current_replicas: Some(decision.current_replicas),
        desired_replicas: Some(decision.desired_replicas),
        last_scale_time: state.last_scale_time.map(Time),
        last_scale_direction: state.last_scale_direction,
        last_evaluation_time: state.last_evaluation_time.map(Time),
        // The controller's to say (it knows how long the evaluation waited).
        queued_seconds: previous.queued_seconds,
        // The controller's to say too (it knows the pods).
        capacity: previous.capacity.clone(),
        evaluating_since: state.evaluating_since.map(Time),
        metrics: decision.metrics.iter().map(metric_status).collect(),
        last_decision: Some(DecisionRecord {
            time: now.clone(),
            action: decision.action,
            from: decision.current_replicas,
            to: decision.desired_replicas,
            rule: decision.winner.clone(),
            limits: decision.limits.clone(),
            message: decision.message.clone(),
            dry_run: decision.dry_run,
        }),
        recommendations,
        scale_events,
        consecutive_failures: state.consecutive_failures,
        pending_scale: None,
        // The controller's to say (it knows the operator's tenancy settings).
        namespace_access: previous.namespace_access.clone(),
        // The controller's (or the simulator's) to say: it holds the history.
        forecast: previous.forecast.clone(),
        conditions: previous.conditions.clone(),
    };
    set_decision_conditions(&mut status.conditions, decision, generation, &now);
    status
}

fn metric_status(m: &MetricOutcome) -> MetricStatus {
    let (value, failure, message) = match &m.reading {
        Reading::Value(v) => (Some(*v), None, m.explanation.clone()),
        Reading::Failed { kind, message } => (None, Some(*kind), message.clone()),
    };
    MetricStatus {
        name: m.name.clone(),
        value,
        failure,
        message,
        proposed_replicas: m.proposal,
        query: m.query.clone(),
    }
}

fn set_decision_conditions(
    conditions: &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    d: &Decision,
    generation: Option<i64>,
    now: &Time,
) {
    let mut set = |type_: &str, status: bool, reason: &str, message: String| {
        set_condition(conditions, type_, status, reason, message, generation, now);
    };
    set(condition::READY, true, reason::EVALUATED, d.message.clone());

    let paused = d.limited_by(LimitKind::Paused);
    let at_zero = d.limited_by(LimitKind::ScaledToZero);
    let cooldown = d.limits.iter().find(|l| l.kind == LimitKind::Cooldown);
    let (able, reason, message) = if paused {
        (
            false,
            reason::PAUSED,
            "spec.paused is true: the target is left as it is".to_owned(),
        )
    } else if at_zero {
        (
            false,
            reason::SCALED_TO_ZERO,
            "the target has 0 replicas: autoscaling is off until it is scaled up".to_owned(),
        )
    } else if d.dry_run {
        (
            true,
            reason::DRY_RUN,
            "decisions are recorded but not applied (spec.dryRun)".to_owned(),
        )
    } else if let Some(cooldown) = cooldown {
        (true, reason::COOLDOWN, cooldown.message.clone())
    } else {
        (
            true,
            reason::READY_FOR_NEW_SCALE,
            "the target can be scaled".to_owned(),
        )
    };
    set(condition::ABLE_TO_SCALE, able, reason, message);

    let failed: Vec<String> = d
        .metrics
        .iter()
        .filter_map(|m| match &m.reading {
            Reading::Failed { kind, message } => Some(format!("{} {kind}: {message}", m.name)),
            Reading::Value(_) => None,
        })
        .collect();
    let all_failed = !d.metrics.is_empty() && failed.len() == d.metrics.len();
    let (active, reason, message) = if paused {
        (false, reason::PAUSED, "spec.paused is true".to_owned())
    } else if at_zero {
        (
            false,
            reason::SCALED_TO_ZERO,
            "the target has 0 replicas".to_owned(),
        )
    } else if all_failed {
        (
            false,
            reason::METRICS_UNAVAILABLE,
            "every metric failed to read".to_owned(),
        )
    } else {
        (
            true,
            reason::VALID_METRIC_FOUND,
            "the policy is computing replicas from its metrics".to_owned(),
        )
    };
    set(condition::SCALING_ACTIVE, active, reason, message);

    let limited = d.limits.iter().rev().find(|l| {
        matches!(
            l.kind,
            LimitKind::MinReplicas | LimitKind::MaxReplicas | LimitKind::RatePolicy
        )
    });
    match limited {
        Some(l) => {
            let reason = match l.kind {
                LimitKind::MinReplicas => reason::TOO_FEW_REPLICAS,
                LimitKind::MaxReplicas => reason::TOO_MANY_REPLICAS,
                _ => reason::SCALE_RATE_LIMITED,
            };
            set(condition::SCALING_LIMITED, true, reason, l.message.clone());
        }
        None => set(
            condition::SCALING_LIMITED,
            false,
            reason::DESIRED_WITHIN_RANGE,
            "the desired count is within range and rate limits".to_owned(),
        ),
    }

    if failed.is_empty() {
        set(
            condition::METRICS_AVAILABLE,
            true,
            reason::ALL_METRICS_READ,
            "every metric was read".to_owned(),
        );
    } else {
        set(
            condition::METRICS_AVAILABLE,
            false,
            reason::METRICS_FAILED,
            failed.join("; "),
        );
    }
}
