//! The decision engine's rules, one behaviour per test, as a user of a ScalingPolicy sees them.

mod fixtures;

use fixtures::*;
use jiff::Timestamp;
use scalewise::api::*;
use scalewise::decide::pods::{PodCounts, PodUtilization};
use scalewise::decide::{Decision, Observation, TargetState, decide, decide_for, next_status};

/// Runs one evaluation and returns the decision and the status it leaves.
fn eval(
    p: &PolicyBuilder,
    previous: &ScalingPolicyStatus,
    observations: &[Observation],
    current: i32,
    now: Timestamp,
) -> (Decision, ScalingPolicyStatus) {
    let d = decide(&p.build(), previous, observations, current, now);
    let status = next_status(previous, &d, Some(1));
    (d, status)
}

fn kinds(d: &Decision) -> Vec<LimitKind> {
    d.limits.iter().map(|l| l.kind).collect()
}

/// Feeds the same observations every `step` seconds from 0 to `until`, applying each decision,
/// and returns the replicas after each evaluation.
fn run_for(
    p: &PolicyBuilder,
    observations: &[Observation],
    mut replicas: i32,
    step: i64,
    until: i64,
) -> Vec<i32> {
    let mut status = ScalingPolicyStatus::default();
    let mut series = Vec::new();
    for t in (0..=until).step_by(step as usize) {
        let (d, s) = eval(p, &status, observations, replicas, at(t));
        replicas = d.desired_replicas;
        status = s;
        series.push(replicas);
    }
    series
}

#[test]
fn a_threshold_crossed_adds_the_scale_out_step() {
    let p = policy().band("cpu", 30.0, 70.0).out_step(2);
    let (d, _) = eval(&p, &Default::default(), &[value("cpu", 85.0)], 4, at(0));
    assert_eq!(d.desired_replicas, 6);
    assert_eq!(d.action, Action::ScaleOut);
    assert_eq!(d.winner.as_deref(), Some("cpu"));
    assert_eq!(d.message, "Scale out from 4 to 6: cpu 85 > 70");
}

#[test]
fn a_value_inside_the_band_holds() {
    let p = policy().band("cpu", 30.0, 70.0);
    let (d, _) = eval(&p, &Default::default(), &[value("cpu", 70.0)], 4, at(0));
    assert_eq!(
        d.desired_replicas, 4,
        "the thresholds are strict: 70 is not above 70"
    );
    assert_eq!(d.action, Action::Hold);
}

#[test]
fn a_threshold_without_scale_in_below_has_no_say_on_scale_in() {
    let p = policy().band("cpu", 30.0, 70.0).out_above("errors", 0.05);
    let (d, _) = eval(
        &p,
        &Default::default(),
        &[value("cpu", 10.0), value("errors", 0.0)],
        4,
        at(0),
    );
    assert_eq!(d.metrics[1].proposal, None, "errors abstains");
    assert_eq!(d.desired_replicas, 3, "cpu alone decides the scale-in");

    let p = policy().out_above("errors", 0.05);
    let (d, _) = eval(&p, &Default::default(), &[value("errors", 0.0)], 4, at(0));
    assert_eq!(
        (d.desired_replicas, d.winner),
        (4, None),
        "every metric abstained: hold"
    );
}

#[test]
fn the_largest_proposal_wins_and_ties_go_to_the_first_metric() {
    let p = policy()
        .band("a", 30.0, 70.0)
        .band("b", 30.0, 70.0)
        .target("c", 50.0);
    let (d, _) = eval(
        &p,
        &Default::default(),
        &[value("a", 80.0), value("b", 90.0), value("c", 50.0)],
        4,
        at(0),
    );
    assert_eq!((d.desired_replicas, d.winner.as_deref()), (5, Some("a")));

    let (d, _) = eval(
        &p,
        &Default::default(),
        &[value("a", 80.0), value("b", 90.0), value("c", 100.0)],
        4,
        at(0),
    );
    assert_eq!(
        (d.desired_replicas, d.winner.as_deref()),
        (8, Some("c")),
        "ceil(4 * 100 / 50) = 8"
    );
}

#[test]
fn a_target_metric_proposes_the_ratio_rounded_up_outside_the_tolerance() {
    let p = policy().target("cpu", 60.0);
    let cases = [
        (90.0, 6),
        (61.0, 4),
        (54.0, 4),
        (53.0, 4),
        (30.0, 2),
        (100.0, 7),
    ];
    for (v, want) in cases {
        let (d, _) = eval(&p, &Default::default(), &[value("cpu", v)], 4, at(0));
        assert_eq!(d.metrics[0].proposal, Some(want), "cpu {v}");
    }
    // 64 / 60 = 1.067 is inside the default 10% band: no change, and the limit says so.
    let (d, _) = eval(&p, &Default::default(), &[value("cpu", 64.0)], 4, at(0));
    assert_eq!(d.desired_replicas, 4);
    assert_eq!(kinds(&d), vec![LimitKind::Tolerance]);
}

#[test]
fn a_per_replica_target_divides_the_total() {
    let p = policy().per_replica("backlog", 100.0).max(20);
    let (d, _) = eval(
        &p,
        &Default::default(),
        &[value("backlog", 1250.0)],
        4,
        at(0),
    );
    assert_eq!(d.metrics[0].proposal, Some(13), "ceil(1250 / 100)");
    assert_eq!(
        d.desired_replicas, 8,
        "the default rate policies allow +100% (or +4) per 15 s"
    );
    assert_eq!(kinds(&d), vec![LimitKind::RatePolicy]);
    let (d, _) = eval(
        &p,
        &Default::default(),
        &[value("backlog", 420.0)],
        4,
        at(0),
    );
    assert_eq!(
        d.desired_replicas, 4,
        "420 / (4 * 100) = 1.05 is within tolerance"
    );
}

#[test]
fn scale_in_needs_every_metric_with_a_say() {
    let p = policy().band("cpu", 30.0, 70.0).band("latency", 0.1, 0.5);
    let (d, _) = eval(
        &p,
        &Default::default(),
        &[value("cpu", 10.0), value("latency", 0.3)],
        4,
        at(0),
    );
    assert_eq!(d.desired_replicas, 4);
    assert!(
        d.message.contains("scale-in needs every metric to agree"),
        "{}",
        d.message
    );
}

#[test]
fn scale_in_is_blocked_while_any_metric_is_missing() {
    let p = policy().band("cpu", 30.0, 70.0).band("latency", 0.1, 0.5);
    for kind in FailureKind::ALL {
        let (d, _) = eval(
            &p,
            &Default::default(),
            &[value("cpu", 10.0), failed("latency", kind)],
            4,
            at(0),
        );
        assert_eq!(d.desired_replicas, 4, "{kind}");
        assert_eq!(kinds(&d), vec![LimitKind::FailureHold], "{kind}");
    }
}

#[test]
fn a_metric_missing_from_the_observations_counts_as_unavailable() {
    let p = policy().band("cpu", 30.0, 70.0).band("latency", 0.1, 0.5);
    let (d, _) = eval(&p, &Default::default(), &[value("cpu", 10.0)], 4, at(0));
    assert_eq!(d.desired_replicas, 4);
    assert_eq!(d.metrics[1].failure(), Some(FailureKind::Unavailable));
}

#[test]
fn a_non_finite_value_is_invalid_not_a_number() {
    let p = policy().band("cpu", 30.0, 70.0);
    let (d, _) = eval(&p, &Default::default(), &[value("cpu", f64::NAN)], 4, at(0));
    assert_eq!(d.metrics[0].failure(), Some(FailureKind::Invalid));
    assert_eq!(d.desired_replicas, 4);
}

#[test]
fn scale_out_asked_by_a_healthy_metric_happens_beside_a_failed_one() {
    let p = policy().band("cpu", 30.0, 70.0).band("latency", 0.1, 0.5);
    let (d, _) = eval(
        &p,
        &Default::default(),
        &[failed("cpu", FailureKind::Stale), value("latency", 0.9)],
        4,
        at(0),
    );
    assert_eq!(
        (d.desired_replicas, d.winner.as_deref()),
        (5, Some("latency"))
    );
}

#[test]
fn hold_keeps_replicas_however_long_every_metric_fails() {
    let p = policy().band("cpu", 30.0, 70.0);
    let series = run_for(&p, &[failed("cpu", FailureKind::Unavailable)], 4, 15, 600);
    assert!(series.iter().all(|&r| r == 4), "{series:?}");
}

#[test]
fn fallback_applies_after_the_configured_number_of_all_failed_evaluations() {
    let p = policy()
        .band("cpu", 30.0, 70.0)
        .band("lat", 0.1, 0.5)
        .fallback(6, 3);
    let all_failed = [
        failed("cpu", FailureKind::Unavailable),
        failed("lat", FailureKind::Empty),
    ];
    let series = run_for(&p, &all_failed, 2, 15, 45);
    assert_eq!(
        series,
        vec![2, 2, 6, 6],
        "third all-failed evaluation falls back"
    );

    // Fallback never lowers the target.
    let series = run_for(&p, &all_failed, 8, 15, 45);
    assert_eq!(series, vec![8, 8, 8, 8]);

    // One metric still reading resets the count.
    let mut status = ScalingPolicyStatus::default();
    for t in [0, 15] {
        status = eval(&p, &status, &all_failed, 2, at(t)).1;
    }
    assert_eq!(status.consecutive_failures, 2);
    status = eval(
        &p,
        &status,
        &[value("cpu", 50.0), failed("lat", FailureKind::Empty)],
        2,
        at(30),
    )
    .1;
    assert_eq!(status.consecutive_failures, 0);
}

#[test]
fn scale_in_waits_for_a_full_stabilization_window_of_evidence() {
    let p = policy().band("cpu", 30.0, 70.0).in_window("60s");
    let series = run_for(&p, &[value("cpu", 10.0)], 5, 15, 120);
    // No scale-in before t=60. After a step, the window still holds the previous proposal (4)
    // until it has aged a whole window: the next step comes at t=120.
    assert_eq!(series, vec![5, 5, 5, 5, 4, 4, 4, 4, 3]);
}

#[test]
fn the_evidence_window_restarts_after_the_controller_was_away() {
    let p = policy().band("cpu", 30.0, 70.0).in_window("60s");
    let low = [value("cpu", 10.0)];
    let mut status = ScalingPolicyStatus::default();
    for t in [0, 15, 30] {
        status = eval(&p, &status, &low, 5, at(t)).1;
    }
    // 46 s since the last evaluation (more than 3 intervals of 15 s): a new run starts.
    let (d, s) = eval(&p, &status, &low, 5, at(76));
    assert_eq!(s.evaluating_since.map(|t| t.0), Some(at(76)));
    assert_eq!(d.desired_replicas, 5);
    assert!(d.limits.iter().any(|l| l.kind == LimitKind::Stabilization));
}

#[test]
fn unpausing_starts_a_new_evidence_window() {
    let low = [value("cpu", 10.0)];
    let running = policy().band("cpu", 30.0, 70.0).in_window("60s");
    let paused = running.clone().paused(true);
    let mut status = ScalingPolicyStatus::default();
    for t in [0, 15, 30, 45] {
        status = eval(&running, &status, &low, 5, at(t)).1;
    }
    let (d, s) = eval(&paused, &status, &low, 5, at(60));
    assert_eq!(
        (d.desired_replicas, kinds(&d)),
        (5, vec![LimitKind::Paused])
    );
    assert_eq!(s.evaluating_since, None);
    let (d, s) = eval(&running, &s, &low, 5, at(75));
    assert_eq!(d.desired_replicas, 5, "a fresh window after unpausing");
    assert_eq!(s.evaluating_since.map(|t| t.0), Some(at(75)));
}

#[test]
fn scale_in_goes_only_as_low_as_the_highest_proposal_in_the_window() {
    let p = policy().target("cpu", 50.0).in_window("60s").max(20);
    let mut status = ScalingPolicyStatus::default();
    // Proposals: t=0 -> 10 (ceil(10*50/50)), then 6, 4, 4, 4 at 8 replicas... keep replicas at 10.
    let readings = [50.0, 30.0, 20.0, 20.0, 20.0, 20.0, 20.0];
    let mut out = Vec::new();
    for (i, v) in readings.iter().enumerate() {
        let (d, s) = eval(&p, &status, &[value("cpu", *v)], 10, at(i as i64 * 15));
        status = s;
        out.push(d.desired_replicas);
    }
    // t=60: the window (t > 0) holds 6 (t=15), 4, 4, 4: the highest is 6.
    // t=75: the window holds 4s only (t=15 left it at t>=75).
    assert_eq!(out, vec![10, 10, 10, 10, 6, 4, 4]);
}

#[test]
fn scale_out_goes_only_as_high_as_the_lowest_proposal_in_its_window() {
    let p = policy()
        .target("cpu", 50.0)
        .out_window("30s")
        .max(20)
        .scale_out(|r| {
            r.policies = Some(vec![RatePolicy {
                type_: RatePolicyType::Percent,
                value: 1000,
                period: "15s".into(),
            }]);
        });
    let mut status = ScalingPolicyStatus::default();
    let mut out = Vec::new();
    for (i, v) in [50.0, 100.0, 150.0, 150.0].iter().enumerate() {
        let (d, s) = eval(&p, &status, &[value("cpu", *v)], 4, at(i as i64 * 15));
        status = s;
        out.push(d.desired_replicas);
    }
    // Proposals 4, 8, 12, 12: each scale-out waits until the lower proposals leave the window.
    assert_eq!(out, vec![4, 4, 8, 12]);
}

#[test]
fn rate_policies_limit_change_per_period_from_its_start() {
    let p = policy().target("cpu", 10.0).max(100).scale_out(|r| {
        r.policies = Some(vec![RatePolicy {
            type_: RatePolicyType::Pods,
            value: 3,
            period: "60s".into(),
        }]);
    });
    let series = run_for(&p, &[value("cpu", 100.0)], 2, 15, 90);
    // +3 at t=0; then nothing until the t=0 event leaves the 60 s period at t=60; +3 again.
    assert_eq!(series, vec![5, 5, 5, 5, 8, 8, 8]);
}

#[test]
fn percent_and_pods_policies_combine_by_select_policy() {
    let base = policy().target("cpu", 10.0).max(100);
    let both = |select| {
        base.clone().scale_out(move |r| {
            r.policies = Some(vec![
                RatePolicy {
                    type_: RatePolicyType::Percent,
                    value: 50,
                    period: "15s".into(),
                },
                RatePolicy {
                    type_: RatePolicyType::Pods,
                    value: 4,
                    period: "15s".into(),
                },
            ]);
            r.select_policy = Some(select);
        })
    };
    // 10 replicas: Percent 50 allows 15, Pods 4 allows 14.
    let (d, _) = eval(
        &both(SelectPolicy::Max),
        &Default::default(),
        &[value("cpu", 100.0)],
        10,
        at(0),
    );
    assert_eq!(d.desired_replicas, 15);
    let (d, _) = eval(
        &both(SelectPolicy::Min),
        &Default::default(),
        &[value("cpu", 100.0)],
        10,
        at(0),
    );
    assert_eq!(d.desired_replicas, 14);
    let (d, _) = eval(
        &both(SelectPolicy::Disabled),
        &Default::default(),
        &[value("cpu", 100.0)],
        10,
        at(0),
    );
    assert_eq!(
        (d.desired_replicas, kinds(&d)),
        (10, vec![LimitKind::RatePolicy])
    );
}

#[test]
fn default_rate_policies_are_the_hpa_defaults() {
    let p = policy().target("cpu", 10.0).max(1000).default_behavior();
    // Scale-out: max(100% of 3 -> 6, 3 + 4 = 7) = 7.
    let (d, _) = eval(&p, &Default::default(), &[value("cpu", 100.0)], 3, at(0));
    assert_eq!(d.desired_replicas, 7);
}

#[test]
fn scale_in_percent_rounds_down_from_the_period_start() {
    let p = policy()
        .band("cpu", 30.0, 70.0)
        .in_step(5)
        .min(1)
        .scale_in(|r| {
            r.policies = Some(vec![RatePolicy {
                type_: RatePolicyType::Percent,
                value: 30,
                period: "60s".into(),
            }]);
        });
    // 10 replicas, 30% per minute: floor(10 * 0.7) = 7.
    let series = run_for(&p, &[value("cpu", 0.0)], 10, 15, 60);
    assert_eq!(series, vec![7, 7, 7, 7, 4]);
}

#[test]
fn the_scale_out_cooldown_holds_the_next_step_until_it_ends() {
    let p = policy()
        .band("cpu", 30.0, 70.0)
        .out_step(2)
        .out_cooldown("60s")
        .max(20);
    let series = run_for(&p, &[value("cpu", 90.0)], 4, 15, 120);
    assert_eq!(series, vec![6, 6, 6, 6, 8, 8, 8, 8, 10]);

    let mut status = ScalingPolicyStatus::default();
    status = eval(&p, &status, &[value("cpu", 90.0)], 4, at(0)).1;
    let (d, _) = eval(&p, &status, &[value("cpu", 90.0)], 6, at(15));
    let cooldown = d
        .limits
        .iter()
        .find(|l| l.kind == LimitKind::Cooldown)
        .expect("cooldown limit");
    assert_eq!(cooldown.until.as_ref().map(|t| t.0), Some(at(60)));
    assert_eq!((cooldown.wanted, cooldown.allowed), (Some(8), Some(6)));
}

#[test]
fn the_scale_in_cooldown_counts_from_a_scale_out_too() {
    let p = policy().band("cpu", 30.0, 70.0).in_cooldown("300s");
    let mut status = eval(&p, &Default::default(), &[value("cpu", 90.0)], 4, at(0)).1;
    let (d, s) = eval(&p, &status, &[value("cpu", 10.0)], 5, at(60));
    assert_eq!(
        (d.desired_replicas, kinds(&d)),
        (5, vec![LimitKind::Cooldown])
    );
    status = s;
    let (d, _) = eval(&p, &status, &[value("cpu", 10.0)], 5, at(300));
    assert_eq!(d.desired_replicas, 4);
}

#[test]
fn min_and_max_hold_the_result_and_say_so() {
    let p = policy().target("cpu", 10.0).min(2).max(6);
    let (d, s) = eval(&p, &Default::default(), &[value("cpu", 100.0)], 4, at(0));
    assert_eq!(d.desired_replicas, 6);
    assert_eq!(
        d.limits.last().map(|l| l.kind),
        Some(LimitKind::MaxReplicas)
    );
    let limited = conditions::find_condition(&s.conditions, "ScalingLimited").unwrap();
    assert_eq!(
        (limited.status.as_str(), limited.reason.as_str()),
        ("True", "TooManyReplicas")
    );

    let p = policy().band("cpu", 30.0, 70.0).in_step(5).min(2);
    let (d, _) = eval(&p, &Default::default(), &[value("cpu", 0.0)], 4, at(0));
    assert_eq!(d.desired_replicas, 2);
    assert_eq!(
        d.limits.last().map(|l| l.kind),
        Some(LimitKind::MinReplicas)
    );
}

#[test]
fn a_count_outside_the_range_is_corrected_at_once_despite_cooldown() {
    let p = policy()
        .band("cpu", 30.0, 70.0)
        .min(3)
        .max(6)
        .out_cooldown("600s")
        .in_cooldown("600s");
    let status = eval(&p, &Default::default(), &[value("cpu", 90.0)], 4, at(0)).1;
    let (d, _) = eval(&p, &status, &[value("cpu", 50.0)], 9, at(10));
    assert_eq!(
        (d.desired_replicas, kinds(&d)),
        (6, vec![LimitKind::RangeCorrection])
    );
    // No metric asked for it: the correction is the whole reason.
    assert_eq!(
        d.message,
        "Scale in from 9 to 6: 9 replicas is outside [3, 6]: corrected at once"
    );
    let (d, _) = eval(&p, &status, &[value("cpu", 50.0)], 1, at(10));
    assert_eq!(d.desired_replicas, 3);
}

#[test]
fn a_target_scaled_to_zero_on_purpose_is_left_alone() {
    let p = policy().band("cpu", 30.0, 70.0).min(2);
    let (d, s) = eval(&p, &Default::default(), &[value("cpu", 90.0)], 0, at(0));
    assert_eq!(
        (d.desired_replicas, kinds(&d)),
        (0, vec![LimitKind::ScaledToZero])
    );
    let able = conditions::find_condition(&s.conditions, "AbleToScale").unwrap();
    assert_eq!(
        (able.status.as_str(), able.reason.as_str()),
        ("False", "ScaledToZero")
    );
}

#[test]
fn a_paused_policy_changes_nothing() {
    let p = policy().band("cpu", 30.0, 70.0).paused(true);
    let (d, _) = eval(&p, &Default::default(), &[value("cpu", 99.0)], 4, at(0));
    assert_eq!((d.desired_replicas, d.action), (4, Action::Hold));
}

#[test]
fn a_dry_run_decides_the_same_but_starts_no_cooldown() {
    let live = policy().band("cpu", 30.0, 70.0).out_cooldown("60s");
    let dry = live.clone().dry_run();
    let (live_d, live_s) = eval(&live, &Default::default(), &[value("cpu", 90.0)], 4, at(0));
    let (dry_d, dry_s) = eval(&dry, &Default::default(), &[value("cpu", 90.0)], 4, at(0));
    assert_eq!(live_d.desired_replicas, dry_d.desired_replicas);
    assert!(dry_d.dry_run && !dry_d.changes_target());
    assert!(
        dry_d.message.ends_with("(dry run: not applied)"),
        "{}",
        dry_d.message
    );
    assert!(live_s.last_scale_time.is_some());
    assert_eq!(dry_s.last_scale_time, None);
    assert!(dry_s.scale_events.is_empty());
}

#[test]
fn status_keeps_condition_transition_times_while_unchanged() {
    let p = policy().band("cpu", 30.0, 70.0);
    let (_, first) = eval(&p, &Default::default(), &[value("cpu", 50.0)], 4, at(0));
    let (_, second) = eval(&p, &first, &[value("cpu", 50.0)], 4, at(15));
    let ready = |s: &ScalingPolicyStatus| {
        conditions::find_condition(&s.conditions, "Ready")
            .unwrap()
            .last_transition_time
            .0
    };
    assert_eq!(ready(&second), at(0));
    let (_, third) = eval(&p, &second, &[failed("cpu", FailureKind::Empty)], 4, at(30));
    let metrics = conditions::find_condition(&third.conditions, "MetricsAvailable").unwrap();
    assert_eq!(
        (metrics.status.as_str(), metrics.last_transition_time.0),
        ("False", at(30))
    );
}

#[test]
fn status_history_stays_small_over_a_long_run() {
    let p = policy()
        .target("cpu", 50.0)
        .in_window("300s")
        .out_window("60s")
        .max(50);
    let mut status = ScalingPolicyStatus::default();
    let mut replicas = 10;
    for i in 0..2000 {
        let v = 20.0 + f64::from((i * 37) % 100);
        let (d, s) = eval(
            &p,
            &status,
            &[value("cpu", v)],
            replicas,
            at(i64::from(i) * 15),
        );
        replicas = d.desired_replicas;
        status = s;
        assert!(
            status.recommendations.len() <= 25,
            "{} entries",
            status.recommendations.len()
        );
        assert!(status.scale_events.len() <= 2);
    }
}

#[test]
fn the_persisted_status_survives_a_json_round_trip_unchanged() {
    let p = policy()
        .band("cpu", 30.0, 70.0)
        .out_cooldown("60s")
        .in_window("60s");
    let mut status = ScalingPolicyStatus::default();
    for t in [0, 15, 30] {
        status = eval(&p, &status, &[value("cpu", 90.0)], 4, at(t)).1;
    }
    let json = serde_json::to_string(&status).unwrap();
    let back: ScalingPolicyStatus = serde_json::from_str(&json).unwrap();
    assert_eq!(back, status);
    let (a, _) = eval(&p, &status, &[value("cpu", 90.0)], 5, at(45));
    let (b, _) = eval(&p, &back, &[value("cpu", 90.0)], 5, at(45));
    assert_eq!(a, b);
}

#[test]
fn at_min_replicas_the_range_not_stabilization_is_named() {
    let p = policy().band("cpu", 30.0, 70.0).min(2).in_window("30s");
    let series = run_for(&p, &[value("cpu", 5.0)], 3, 15, 90);
    assert_eq!(series, vec![3, 3, 2, 2, 2, 2, 2]);
    let mut status = ScalingPolicyStatus::default();
    let mut replicas = 3;
    let mut last = None;
    for t in (0..=90).step_by(15) {
        let (d, s) = eval(&p, &status, &[value("cpu", 5.0)], replicas, at(t));
        replicas = d.desired_replicas;
        status = s;
        last = Some(d);
    }
    let last = last.unwrap();
    assert_eq!(
        kinds(&last),
        vec![LimitKind::MinReplicas],
        "{}",
        last.message
    );
    let limited = conditions::find_condition(&status.conditions, "ScalingLimited").unwrap();
    assert_eq!(limited.reason, "TooFewReplicas");
}

/// A status whose history holds these scale events (seconds before `at(60)`, from, to).
fn with_events(events: &[(i64, i32, i32)]) -> ScalingPolicyStatus {
    ScalingPolicyStatus {
        scale_events: events
            .iter()
            .map(|&(ago, from, to)| ScaleEvent {
                time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(60 - ago)),
                from,
                to,
            })
            .collect(),
        ..ScalingPolicyStatus::default()
    }
}

#[test]
fn a_scale_out_period_starts_from_the_replicas_before_every_change_in_it_as_the_hpa() {
    // 6 replicas after +4 and -2 in the last 60 s: the period started at 4, and 300% of 4 is 16
    // (counting only the scale-out, it would start at 2 and allow 8).
    let p = policy().target("cpu", 10.0).max(100).scale_out(|r| {
        r.policies = Some(vec![RatePolicy {
            type_: RatePolicyType::Percent,
            value: 300,
            period: "60s".into(),
        }]);
    });
    let status = with_events(&[(50, 4, 8), (30, 8, 6)]);
    let (d, _) = eval(&p, &status, &[value("cpu", 1000.0)], 6, at(60));
    assert_eq!(d.desired_replicas, 16);
}

#[test]
fn a_scale_in_period_starts_from_the_replicas_before_every_change_in_it_as_the_hpa() {
    // 10 replicas after +2 and -4 in the last 60 s: the period started at 12, and 50% of 12 is 6
    // (counting only the scale-in, it would start at 14 and allow 7).
    let p = policy()
        .band("cpu", 30.0, 70.0)
        .in_step(100)
        .min(1)
        .scale_in(|r| {
            r.policies = Some(vec![RatePolicy {
                type_: RatePolicyType::Percent,
                value: 50,
                period: "60s".into(),
            }]);
        });
    let status = with_events(&[(50, 12, 14), (30, 14, 10)]);
    let (d, _) = eval(&p, &status, &[value("cpu", 0.0)], 10, at(60));
    assert_eq!(d.desired_replicas, 6);
}

#[test]
fn a_target_metric_brings_a_target_back_from_zero() {
    // A queue of 30 jobs at 0 replicas, 10 per replica: 3. A Target metric (such as requests
    // per replica measured at an ingress) proposes as if one replica carried the whole value.
    let per = policy().min(0).per_replica("jobs", 10.0).max(20);
    let (d, _) = eval(&per, &Default::default(), &[value("jobs", 30.0)], 0, at(0));
    assert_eq!(d.desired_replicas, 3);
    let target = policy().min(0).target("rps", 50.0).max(20);
    let (d, _) = eval(
        &target,
        &Default::default(),
        &[value("rps", 120.0)],
        0,
        at(0),
    );
    assert_eq!(d.desired_replicas, 3);
    // Leaving zero takes at least the scale-out step (an activation, as KEDA's).
    let stepped = target.clone().out_step(2);
    let (d, _) = eval(
        &stepped,
        &Default::default(),
        &[value("rps", 1.0)],
        0,
        at(0),
    );
    assert_eq!(d.desired_replicas, 2);
    // Nothing to do stays at zero.
    let (d, _) = eval(&target, &Default::default(), &[value("rps", 0.0)], 0, at(0));
    assert_eq!(d.desired_replicas, 0);
}

#[test]
fn policies_that_could_never_leave_zero_are_refused() {
    let cpu = policy().min(0).target("cpu", 50.0);
    let mut spec = cpu.spec.clone();
    spec.metrics[0].query = None;
    spec.metrics[0].cpu = Some(ResourceMetric::default());
    let errors = validate(&spec);
    assert!(
        errors
            .iter()
            .any(|e| e.path == "spec.metrics[0].cpu" && e.message.contains("minReplicas is 0")),
        "{errors:?}"
    );

    let percent_only = policy().min(0).target("rps", 50.0).scale_out(|r| {
        r.policies = Some(vec![RatePolicy {
            type_: RatePolicyType::Percent,
            value: 100,
            period: "15s".into(),
        }]);
    });
    let errors = validate(&percent_only.spec);
    assert!(
        errors
            .iter()
            .any(|e| e.path == "spec.behavior.scaleOut.policies" && e.message.contains("Pods")),
        "{errors:?}"
    );
}

/// A cpu reading counted pod by pod: ready pods' usage and requests (cores), the requests of the
/// starting/unready pods, and of the ready pods without a sample.
fn pod_cpu(ready: (f64, f64), pending: f64, missing: f64, counts: PodCounts) -> Observation {
    let pods = PodUtilization {
        ready_usage: ready.0,
        ready_requests: ready.1,
        pending_requests: pending,
        missing_requests: missing,
        counts,
    };
    Observation {
        pods: Some(pods.clone()),
        ..value("cpu", pods.value())
    }
}

fn counts(ready: u32, starting: u32, missing: u32) -> PodCounts {
    PodCounts {
        ready,
        starting,
        missing,
        ..PodCounts::default()
    }
}

#[test]
fn starting_pods_count_as_idle_on_scale_out_as_in_the_hpa() {
    // 4 replicas: 2 ready at 90% of 1 core, 2 starting. Alone the ready pods ask for
    // ceil(4 x 90 / 50) = 8; with the starting pods at 0% the value is 45%: inside the band of
    // target 50 (tolerance 10%): no change.
    let p = policy().target("cpu", 50.0).default_behavior();
    let obs = pod_cpu((1.8, 2.0), 2.0, 0.0, counts(2, 2, 0));
    let (d, _) = eval(&p, &Default::default(), &[obs], 4, at(0));
    assert_eq!(d.desired_replicas, 4, "{}", d.message);
    let m = &d.metrics[0].explanation;
    assert!(
        m.contains(
            "90% of ready pods asks for a scale-out, but 45% counting the other pods does not"
        ),
        "{m}"
    );
    assert!(m.contains("pods: 2 ready, 2 starting"), "{m}");
}

#[test]
fn a_scale_out_that_survives_the_recount_uses_the_recounted_value() {
    // 2 ready at 100%, 1 starting of 1 core: 2/3 = 66.7% over target 50 -> ceil(3 x 66.7/50) = 4.
    let p = policy().target("cpu", 50.0).default_behavior();
    let obs = pod_cpu((2.0, 2.0), 1.0, 0.0, counts(2, 1, 0));
    let (d, _) = eval(&p, &Default::default(), &[obs], 3, at(0));
    assert_eq!(d.desired_replicas, 4, "{}", d.message);
    assert!(
        d.metrics[0]
            .explanation
            .contains("(ready pods alone: 100%)"),
        "{}",
        d.metrics[0].explanation
    );
}

#[test]
fn a_pod_without_a_sample_never_causes_a_scale_in() {
    // 2 replicas: one ready pod at 10%, one ready without a sample. Alone the value asks for 1;
    // with the missing pod at the target (50%) the value is 30%: still a scale-in, to
    // ceil(2 x 30 / 50) = 2: no change.
    let p = policy()
        .target("cpu", 50.0)
        .default_behavior()
        .in_window("0s");
    let obs = pod_cpu((0.1, 1.0), 0.0, 1.0, counts(1, 0, 1));
    let (d, _) = eval(&p, &Default::default(), &[obs], 2, at(0));
    assert_eq!(d.desired_replicas, 2, "{}", d.message);
}

#[test]
fn scale_in_waits_for_a_rollout_and_says_so() {
    let p = policy()
        .target("cpu", 50.0)
        .default_behavior()
        .in_window("0s");
    let target = TargetState {
        rollout: Some("2 of 4 replicas updated".into()),
        capacity_not_ready: None,
        forecast: None,
    };
    let d = decide_for(
        &p.build(),
        &Default::default(),
        &[value("cpu", 10.0)],
        4,
        &target,
        at(0),
    );
    assert_eq!(d.desired_replicas, 4);
    assert_eq!(kinds(&d), [LimitKind::Rollout]);
    assert_eq!(
        d.message,
        "Hold at 4: scale-in waits for the rollout to end (2 of 4 replicas updated); wanted by cpu 10 vs target 50: ceil(4 x 10 / 50) = 1"
    );
    // Scale-out is not held by a rollout.
    let d = decide_for(
        &p.build(),
        &Default::default(),
        &[value("cpu", 90.0)],
        4,
        &target,
        at(0),
    );
    assert_eq!(d.desired_replicas, 8);
    // Unless the policy says so.
    let mut spec = p.build();
    spec.pods.hold_scale_in_during_rollout = false;
    let d = decide_for(
        &spec,
        &Default::default(),
        &[value("cpu", 10.0)],
        4,
        &target,
        at(0),
    );
    assert_eq!(d.desired_replicas, 1);
}

#[test]
fn scale_out_waits_for_capacity_that_is_not_ready() {
    let p = policy().target("cpu", 50.0).default_behavior();
    let target = TargetState {
        rollout: None,
        forecast: None,
        capacity_not_ready: Some("2 pods are not Ready 5m after they were created".into()),
    };
    let d = decide_for(
        &p.build(),
        &Default::default(),
        &[value("cpu", 90.0)],
        4,
        &target,
        at(0),
    );
    assert_eq!(d.desired_replicas, 4);
    assert_eq!(kinds(&d), [LimitKind::CapacityNotReady]);
    // Scale-in rules are unchanged.
    let p = p.in_window("0s");
    let d = decide_for(
        &p.build(),
        &Default::default(),
        &[value("cpu", 10.0)],
        4,
        &target,
        at(0),
    );
    assert_eq!(d.desired_replicas, 1);
}
