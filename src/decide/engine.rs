//! The rules of a decision, in the order they apply.

use jiff::{SignedDuration, Timestamp};

use super::decision::{
    Decision, EngineState, FALLBACK_RULE, Floor, FloorOutcome, MetricOutcome, Observation, Reading,
    TargetState,
};
use super::explain::{metric_explanation, summary};
use super::forecast::FORECAST_RULE;
use super::history::{self, persisted_state};
use super::pods::{PodUtilization, show_percent};
use super::tolerance::within_band;
use crate::api::policy::{DirectionRules, MetricRule, Policy, Rule};
use crate::api::{
    Action, FailureAction, FailureKind, Limit, LimitKind, RatePolicyType, ScaleDirection,
    ScalingPolicyStatus, SelectPolicy,
};
use crate::text::{Precision, Resolution, duration, number};

/// Decides the replica count of the target.
///
/// `previous` is the status persisted by the previous evaluation (default for the first);
/// `observations` has one entry per metric of the policy, in any order (a missing one counts as
/// unavailable); `current` is the target's `/scale` `spec.replicas`.
pub fn decide(
    policy: &Policy,
    previous: &ScalingPolicyStatus,
    observations: &[Observation],
    current: i32,
    now: Timestamp,
) -> Decision {
    decide_for(
        policy,
        previous,
        observations,
        current,
        &TargetState::default(),
        now,
    )
}

/// [`decide`], knowing whether the target is mid-rollout and whether the capacity of its last
/// scale-out is there: scale-in waits for a rollout to end (limit `Rollout`, when
/// `spec.pods.holdScaleInDuringRollout`), scale-out waits for pods that are not Ready after
/// `spec.pods.readinessTimeout` (limit `CapacityNotReady`).
pub fn decide_for(
    policy: &Policy,
    previous: &ScalingPolicyStatus,
    observations: &[Observation],
    current: i32,
    target: &TargetState,
    now: Timestamp,
) -> Decision {
    let now = truncate_to_second(now);
    let prev = persisted_state(previous);
    let metrics: Vec<MetricOutcome> = policy
        .metrics
        .iter()
        .map(|m| propose(policy, m, find(observations, &m.name), current))
        .collect();
    let all_failed = !metrics.is_empty() && metrics.iter().all(|m| m.failure().is_some());
    let consecutive_failures = if all_failed {
        prev.consecutive_failures.saturating_add(1)
    } else {
        0
    };

    let mut d = Decision {
        time: now,
        current_replicas: current,
        desired_replicas: current,
        action: Action::Hold,
        metrics,
        winner: None,
        limits: Vec::new(),
        message: String::new(),
        reason: String::new(),
        dry_run: policy.dry_run,
        state: EngineState {
            last_evaluation_time: Some(now),
            evaluating_since: None,
            last_scale_time: prev.last_scale_time,
            last_scale_direction: prev.last_scale_direction,
            recommendations: prev.recommendations.clone(),
            scale_events: prev.scale_events.clone(),
            consecutive_failures,
        },
        forecast: None,
    };

    // Rule 8: paused policies and targets scaled to zero on purpose are left alone. Both end the
    // current run of evaluations.
    if policy.paused {
        d.limits
            .push(limit(LimitKind::Paused, "the policy is paused", None, None));
        return finish(policy, d, now);
    }
    if current == 0 && policy.min_replicas > 0 {
        d.limits.push(limit(
            LimitKind::ScaledToZero,
            "the target was scaled to 0 on purpose; autoscaling is off until it is scaled up",
            None,
            None,
        ));
        return finish(policy, d, now);
    }

    // The run of evaluations continues unless the controller was away for over three intervals.
    let away = policy
        .interval
        .checked_mul(3)
        .unwrap_or(SignedDuration::MAX);
    d.state.evaluating_since = match (prev.evaluating_since, prev.last_evaluation_time) {
        (Some(since), Some(last)) if now.duration_since(last) <= away => Some(since),
        _ => Some(now),
    };

    // Rule 7, first part: a count outside the range is corrected at once, bypassing everything.
    if current < policy.min_replicas || current > policy.max_replicas {
        let desired = within(current, policy.min_replicas, policy.max_replicas);
        d.limits.push(limit(
            LimitKind::RangeCorrection,
            format!(
                "{current} replicas is outside [{}, {}]: corrected at once",
                policy.min_replicas, policy.max_replicas
            ),
            Some(current),
            Some(desired),
        ));
        d.desired_replicas = desired;
        return finish(policy, d, now);
    }

    // Rules 1 to 3: the policy's proposal.
    let proposal = propose_policy(policy, &mut d, current, all_failed, consecutive_failures);
    let proposal = raise_to_floor(&mut d, target.forecast.as_ref(), proposal);
    // History is kept bounded by recording proposals at most one beyond the range: any lower
    // (or higher) proposal ends at the same clamp, while one beyond still tells the range, not
    // stabilization, held the decision.
    let recorded = within(
        proposal,
        policy.min_replicas.saturating_sub(1),
        policy.max_replicas.saturating_add(1),
    );
    d.state.recommendations.push((now, recorded));

    // Rule 4: stabilization.
    let mut desired = stabilize(
        policy,
        &prev.recommendations,
        proposal,
        current,
        now,
        &mut d.limits,
    );
    if desired < current {
        let since = d.state.evaluating_since.unwrap_or(now);
        let ready_at = add(since, policy.scale_in.stabilization_window);
        if now < ready_at {
            d.limits.push(limit_until(
                LimitKind::Stabilization,
                format!(
                    "collecting a full scale-in window of evidence ({} since {since})",
                    duration(
                        policy.scale_in.stabilization_window.unsigned_abs(),
                        Resolution::Seconds
                    )
                ),
                desired,
                current,
                ready_at,
            ));
            desired = current;
        }
    }

    // Rule 5: rate policies.
    desired = rate_limit(
        policy,
        &prev.scale_events,
        desired,
        current,
        now,
        &mut d.limits,
    );

    // Rule 6: cooldowns, counted from the last action in either direction.
    if let Some(last) = prev.last_scale_time {
        let (rules, direction) = if desired > current {
            (&policy.scale_out, "scale-out")
        } else {
            (&policy.scale_in, "scale-in")
        };
        let ends = add(last, rules.cooldown);
        if desired != current && now < ends {
            d.limits.push(limit_until(
                LimitKind::Cooldown,
                format!("{direction} cooldown after the last scale at {last} until {ends}"),
                desired,
                current,
                ends,
            ));
            desired = current;
        }
    }

    // Rule 6b: the target's pods. Scale-in waits for a rollout to end; scale-out waits for the
    // capacity of the last one.
    if desired < current
        && policy.pods.hold_scale_in_during_rollout
        && let Some(why) = &target.rollout
    {
        d.limits.push(limit(
            LimitKind::Rollout,
            format!("scale-in waits for the rollout to end ({why})"),
            Some(desired),
            Some(current),
        ));
        desired = current;
    }
    if desired > current
        && let Some(why) = &target.capacity_not_ready
    {
        d.limits.push(limit(
            LimitKind::CapacityNotReady,
            format!("scale-out waits for the capacity already added: {why}"),
            Some(desired),
            Some(current),
        ));
        desired = current;
    }

    // Rule 7: the range.
    if desired > policy.max_replicas {
        d.limits.push(limit(
            LimitKind::MaxReplicas,
            format!("capped at maxReplicas {}", policy.max_replicas),
            Some(desired),
            Some(policy.max_replicas),
        ));
        desired = policy.max_replicas;
    } else if desired < policy.min_replicas {
        d.limits.push(limit(
            LimitKind::MinReplicas,
            format!("held at minReplicas {}", policy.min_replicas),
            Some(desired),
            Some(policy.min_replicas),
        ));
        desired = policy.min_replicas;
    }
    d.desired_replicas = desired;
    finish(policy, d, now)
}

/// Rules 1 to 3: each metric's proposal, the maximum, failures and fallback.
fn propose_policy(
    policy: &Policy,
    d: &mut Decision,
    current: i32,
    all_failed: bool,
    consecutive_failures: i32,
) -> i32 {
    // Tolerance: target metrics whose ratio fell inside the band proposed the current count.
    let within_tolerance: Vec<&str> = d
        .metrics
        .iter()
        .zip(&policy.metrics)
        .filter(|(m, rule)| {
            m.failure().is_none() && within_tolerance(policy, rule, &m.reading, current)
        })
        .map(|(m, _)| m.name.as_str())
        .collect();
    if !within_tolerance.is_empty() {
        d.limits.push(limit(
            LimitKind::Tolerance,
            format!(
                "{} within {}% of target: no change proposed",
                within_tolerance.join(", "),
                number(policy.tolerance * 100.0, Precision::Micro)
            ),
            None,
            Some(current),
        ));
    }

    let mut proposal = current;
    let mut winner = None;
    for m in &d.metrics {
        if let Some(p) = m.proposal
            && (winner.is_none() || p > proposal)
        {
            proposal = p;
            winner = Some(m.name.clone());
        }
    }

    let failed: Vec<&MetricOutcome> = d.metrics.iter().filter(|m| m.failure().is_some()).collect();
    if !failed.is_empty() {
        let healthy = d
            .metrics
            .iter()
            .filter(|m| m.failure().is_none())
            .filter_map(|m| m.proposal)
            .max();
        let names = failed
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let rules = &policy.on_failure;
        if all_failed
            && rules.action == FailureAction::Fallback
            && consecutive_failures >= rules.after
        {
            let fallback = rules.fallback_replicas.unwrap_or(current);
            if fallback > current {
                d.limits.push(limit(
                    LimitKind::Fallback,
                    format!(
                        "every metric failed for {consecutive_failures} evaluations: fallback to {fallback} replicas"
                    ),
                    Some(current),
                    Some(fallback),
                ));
                proposal = fallback;
                winner = Some(FALLBACK_RULE.to_owned());
            } else {
                d.limits.push(limit(
                    LimitKind::FailureHold,
                    format!(
                        "every metric failed for {consecutive_failures} evaluations; fallbackReplicas {fallback} is not above {current}: holding"
                    ),
                    None,
                    Some(current),
                ));
            }
        } else if healthy.is_none_or(|h| h < current) {
            let message = if all_failed {
                format!(
                    "every metric failed ({consecutive_failures} of {} evaluations before onMetricFailure acts): holding, never scaling in on missing data",
                    rules.after
                )
            } else {
                format!("{names} failed: scale-in is blocked while a metric is missing")
            };
            d.limits.push(limit(
                LimitKind::FailureHold,
                message,
                healthy,
                Some(current),
            ));
        }
    }
    d.winner = winner;
    proposal
}

/// Rule 2, last part: the forecast's floor raises the proposal (never lowers it). In shadow
/// mode the decision records what it would have done and keeps the reactive proposal.
fn raise_to_floor(d: &mut Decision, floor: Option<&Floor>, proposal: i32) -> i32 {
    let Some(floor) = floor else {
        return proposal;
    };
    let raised = floor.replicas > proposal;
    d.forecast = Some(FloorOutcome {
        floor: floor.replicas,
        reactive: proposal,
        raised,
        shadow: floor.shadow,
        reason: floor.reason.clone(),
    });
    if raised && !floor.shadow {
        d.winner = Some(FORECAST_RULE.to_owned());
        floor.replicas
    } else {
        proposal
    }
}

/// Rule 1 for one metric.
fn propose(
    policy: &Policy,
    metric: &MetricRule,
    observation: Option<&Observation>,
    current: i32,
) -> MetricOutcome {
    let (reading, query, pods) = match observation {
        Some(o) => (o.reading.clone(), o.query.clone(), o.pods.as_ref()),
        None => (
            Reading::failed(
                FailureKind::Unavailable,
                "no observation was supplied for this metric",
            ),
            None,
            None,
        ),
    };
    let reading = match reading {
        Reading::Value(v) if !v.is_finite() => Reading::failed(
            FailureKind::Invalid,
            format!("the value {v} is not a finite number"),
        ),
        other => other,
    };
    let (proposal, explanation) = match (&reading, pods) {
        (Reading::Failed { .. }, _) => (Some(current), None),
        (Reading::Value(v), None) => (proposal_for(policy, metric.rule, *v, current), None),
        (Reading::Value(v), Some(pods)) => pod_proposal(policy, metric, *v, pods, current),
    };
    let explanation = explanation
        .unwrap_or_else(|| metric_explanation(policy, metric, &reading, proposal, current));
    let explanation = match pods {
        Some(p) => format!("{explanation}; {}", p.summary()),
        None => explanation,
    };
    MetricOutcome {
        name: metric.name.clone(),
        explanation,
        reading,
        proposal,
        query,
    }
}

/// The proposal of a resource metric read pod by pod, by the HorizontalPodAutoscaler's rule:
/// the ready pods' value proposes a direction; on a scale-out, starting, unready and missing
/// pods are then counted at 0% of their requests, on a scale-in missing pods at the target (for
/// thresholds, at `scaleOutAbove`); if that reverses the direction or ends inside the band,
/// nothing changes. Returns the explanation when the other pods changed the outcome.
fn pod_proposal(
    policy: &Policy,
    metric: &MetricRule,
    value: f64,
    pods: &PodUtilization,
    current: i32,
) -> (Option<i32>, Option<String>) {
    let raw = proposal_for(policy, metric.rule, value, current);
    if !pods.adjusts() {
        return (raw, None);
    }
    let (adjusted, direction, counted) = match raw {
        Some(p) if p > current => (
            pods.scale_out_value(),
            "scale-out",
            "the starting, unready and missing pods at 0%".to_owned(),
        ),
        Some(p) if p < current => {
            let level = match metric.rule {
                Rule::Target(target) => target,
                Rule::Thresholds { out_above, .. } => out_above,
                // A total shared by the replicas is not a utilization: nothing to recount.
                Rule::TargetPerReplica(_) => return (raw, None),
            };
            (
                pods.scale_in_value(level),
                "scale-in",
                format!("the pods without a sample at {}", show_percent(level)),
            )
        }
        other => return (other, None),
    };
    let again = proposal_for(policy, metric.rule, adjusted, current);
    let same_direction = match (raw, again) {
        (Some(r), Some(a)) => (r > current && a > current) || (r < current && a < current),
        _ => false,
    };
    if same_direction {
        let how = metric_explanation(policy, metric, &Reading::Value(adjusted), again, current);
        return (
            again,
            Some(format!(
                "{how}, counting {counted} (ready pods alone: {})",
                show_percent(value)
            )),
        );
    }
    (
        Some(current),
        Some(format!(
            "{name} {} of ready pods asks for a {direction}, but {} counting the other pods does not: no change",
            show_percent(value),
            show_percent(adjusted),
            name = metric.name
        )),
    )
}

/// The replicas a healthy value proposes, or None when the metric abstains.
pub(crate) fn proposal_for(policy: &Policy, rule: Rule, value: f64, current: i32) -> Option<i32> {
    match rule {
        Rule::Thresholds {
            out_above,
            in_below,
        } => {
            if value > out_above {
                Some(current.saturating_add(policy.scale_out.step))
            } else {
                match in_below {
                    Some(below) if value < below => {
                        Some(current.saturating_sub(policy.scale_in.step))
                    }
                    Some(_) => Some(current),
                    None => None,
                }
            }
        }
        // Out of zero (minReplicas 0): a Target metric proposes as if one replica carried the
        // whole value, and leaving zero takes at least the scale-out step (an activation).
        Rule::Target(target) if current == 0 => {
            Some(activation(policy, ceil_replicas(value / target)))
        }
        Rule::TargetPerReplica(per) if current == 0 => {
            Some(activation(policy, ceil_replicas(value / per)))
        }
        Rule::Target(_) | Rule::TargetPerReplica(_)
            if within_band(policy.tolerance, rule, value, current) =>
        {
            Some(current)
        }
        Rule::Target(target) => Some(ceil_replicas(f64::from(current) * (value / target))),
        Rule::TargetPerReplica(per) => Some(ceil_replicas(value / per)),
    }
}

/// A proposal out of zero replicas: none while there is nothing to do, at least the scale-out
/// step otherwise.
fn activation(policy: &Policy, proposal: i32) -> i32 {
    if proposal > 0 {
        proposal.max(policy.scale_out.step)
    } else {
        0
    }
}

/// Whether a target metric's ratio fell inside the tolerance band while its raw proposal differs.
fn within_tolerance(policy: &Policy, rule: &MetricRule, reading: &Reading, current: i32) -> bool {
    let Reading::Value(value) = *reading else {
        return false;
    };
    let raw = match rule.rule {
        Rule::Target(target) => ceil_replicas(f64::from(current) * value / target),
        Rule::TargetPerReplica(per) => ceil_replicas(value / per),
        Rule::Thresholds { .. } => return false,
    };
    raw != current && proposal_for(policy, rule.rule, value, current) == Some(current)
}

/// Rounds a replica count up, saturating at the bounds of i32 (NaN is 0).
fn ceil_replicas(x: f64) -> i32 {
    let x = x.ceil();
    if x.is_nan() {
        0
    } else if x >= f64::from(i32::MAX) {
        i32::MAX
    } else if x <= f64::from(i32::MIN) {
        i32::MIN
    } else {
        // In range and integral: the cast is exact.
        #[expect(
            clippy::cast_possible_truncation,
            reason = "x is an integer within i32"
        )]
        let n = x as i32;
        n
    }
}

/// `n` within `[min, max]`; `max` when the range is empty (a policy stored with minReplicas
/// above maxReplicas, which validation refuses: never a panic).
fn within(n: i32, min: i32, max: i32) -> i32 {
    n.max(min).min(max)
}

/// An i64 clamped into i32.
fn saturate_i32(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX })
}

/// Rule 4: as the HorizontalPodAutoscaler, scale-out to the lowest proposal of the scale-out
/// window, scale-in to the highest proposal of the scale-in window.
fn stabilize(
    policy: &Policy,
    recorded: &[(Timestamp, i32)],
    proposal: i32,
    current: i32,
    now: Timestamp,
    limits: &mut Vec<Limit>,
) -> i32 {
    let in_window = |w: SignedDuration| move |t: &Timestamp| now.duration_since(*t) < w;
    let up_cutoff = in_window(policy.scale_out.stabilization_window);
    let down_cutoff = in_window(policy.scale_in.stabilization_window);
    let up = recorded
        .iter()
        .filter(|(t, _)| up_cutoff(t))
        .map(|&(_, r)| r)
        .fold(proposal, i32::min);
    let down = recorded
        .iter()
        .filter(|(t, _)| down_cutoff(t))
        .map(|&(_, r)| r)
        .fold(proposal, i32::max);
    let stabilized = current.max(up).min(down);
    if stabilized != proposal && proposal != current {
        let (window, which) = if proposal > current {
            (policy.scale_out.stabilization_window, "lowest")
        } else {
            (policy.scale_in.stabilization_window, "highest")
        };
        limits.push(limit(
            LimitKind::Stabilization,
            format!(
                "the {which} proposal of the last {} was {stabilized}",
                duration(window.unsigned_abs(), Resolution::Seconds)
            ),
            Some(proposal),
            Some(stabilized),
        ));
    }
    stabilized
}

/// Rule 5: HorizontalPodAutoscaler-style rate policies, judged against the replicas at the start
/// of each policy's period.
fn rate_limit(
    policy: &Policy,
    events: &[(Timestamp, i32, i32)],
    desired: i32,
    current: i32,
    now: Timestamp,
    limits: &mut Vec<Limit>,
) -> i32 {
    if desired == current {
        return desired;
    }
    let out = desired > current;
    let rules: &DirectionRules = if out {
        &policy.scale_out
    } else {
        &policy.scale_in
    };
    let direction = if out { "scale-out" } else { "scale-in" };
    if rules.select == SelectPolicy::Disabled {
        limits.push(limit(
            LimitKind::RatePolicy,
            format!("{direction} is disabled by selectPolicy"),
            Some(desired),
            Some(current),
        ));
        return current;
    }
    let allowed: Vec<i32> = rules
        .policies
        .iter()
        .map(|p| {
            // As the HPA: the period started at the current count less what was added and plus
            // what was removed in it, in either direction.
            let net: i64 = events
                .iter()
                .filter(|(t, _, _)| now.duration_since(*t) < p.period)
                .map(|&(_, from, to)| i64::from(to).saturating_sub(i64::from(from)))
                .fold(0, i64::saturating_add);
            let start = i64::from(current).saturating_sub(net);
            let value = i64::from(p.value);
            let bound = match (p.kind, out) {
                (RatePolicyType::Pods, true) => start.saturating_add(value),
                (RatePolicyType::Pods, false) => start.saturating_sub(value),
                // Percent rounds up on scale-out and down on scale-in, as the HPA does.
                (RatePolicyType::Percent, true) => {
                    let scaled = start.saturating_mul(value.saturating_add(100));
                    scaled
                        .div_euclid(100)
                        .saturating_add(i64::from(scaled.rem_euclid(100) != 0))
                }
                (RatePolicyType::Percent, false) => start
                    .saturating_mul(100i64.saturating_sub(value))
                    .div_euclid(100),
            };
            saturate_i32(bound)
        })
        .collect();
    // Max picks the policy that allows the largest change, Min the smallest.
    let bound = match (rules.select, out) {
        (SelectPolicy::Max, true) | (SelectPolicy::Min, false) => allowed.iter().copied().max(),
        _ => allowed.iter().copied().min(),
    };
    let Some(bound) = bound else { return desired };
    // A bound behind the current count only stops further change until old events age out.
    let limited = if out {
        desired.min(bound.max(current))
    } else {
        desired.max(bound.min(current))
    };
    if limited != desired {
        limits.push(limit(
            LimitKind::RatePolicy,
            format!("{direction} rate policies allow {limited} replicas now"),
            Some(desired),
            Some(limited),
        ));
    }
    limited
}

/// Sets the action, the message and the state to persist.
fn finish(policy: &Policy, mut d: Decision, now: Timestamp) -> Decision {
    d.action = Action::between(d.current_replicas, d.desired_replicas);
    if d.action != Action::Hold && !d.dry_run {
        d.state.last_scale_time = Some(now);
        d.state.last_scale_direction = Some(if d.action == Action::ScaleOut {
            ScaleDirection::Out
        } else {
            ScaleDirection::In
        });
        d.state
            .scale_events
            .push((now, d.current_replicas, d.desired_replicas));
    }
    history::prune(policy, &mut d.state, now);
    (d.message, d.reason) = summary(&d);
    d
}

fn find<'a>(observations: &'a [Observation], name: &str) -> Option<&'a Observation> {
    observations.iter().find(|o| o.name == name)
}

fn truncate_to_second(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

fn add(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

fn limit(
    kind: LimitKind,
    message: impl Into<String>,
    wanted: Option<i32>,
    allowed: Option<i32>,
) -> Limit {
    Limit {
        kind,
        message: message.into(),
        wanted,
        allowed,
        until: None,
    }
}

fn limit_until(
    kind: LimitKind,
    message: String,
    wanted: i32,
    allowed: i32,
    until: Timestamp,
) -> Limit {
    Limit {
        kind,
        message,
        wanted: Some(wanted),
        allowed: Some(allowed),
        until: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(until)),
    }
}
