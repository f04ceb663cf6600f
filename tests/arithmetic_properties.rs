//! No arithmetic can panic: the engine and the controller's plan step driven over the whole range
//! validation admits, and beyond it (objects stored before a bound existed, or edited around the
//! API server's schema): every duration up to the largest jiff holds, every i32, every time jiff
//! can represent, any reading. Each case must return, and the next evaluation must be scheduled
//! within the documented bounds.

mod cases;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ObjectMeta;
use proptest::prelude::*;
use scalewise::api::{
    Action, DecisionRecord, DirectionRules, FailureAction, FailureRules, MetricRule, PodPolicy,
    Policy, RateLimit, RatePolicyType, Recommendation, ResourceMetric, Rule, ScaleEvent,
    ScalingPolicy, ScalingPolicySpec, ScalingPolicyStatus, SelectPolicy, Source, TargetKind,
    TargetRef,
};
use scalewise::controller::plan::{self, Evaluation, MAX_REQUEUE, Next, TargetRead};
use scalewise::controller::resolved::Resolved;
use scalewise::decide::{Floor, Observation, TargetState, decide, decide_for, next_status};
use scalewise::metrics::QueryPlan;

fn any_duration() -> impl Strategy<Value = SignedDuration> {
    prop_oneof![
        (0i64..=3600).prop_map(SignedDuration::from_secs),
        (0i64..=i64::MAX).prop_map(SignedDuration::from_secs),
        Just(SignedDuration::MAX),
        Just(SignedDuration::ZERO),
        // 100000000h: the interval that crashed the operator in a loop.
        Just(SignedDuration::from_hours(100_000_000)),
    ]
}

fn positive_duration() -> impl Strategy<Value = SignedDuration> {
    any_duration().prop_map(|d| d.max(SignedDuration::from_secs(1)))
}

fn any_time() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        (1_700_000_000i64..1_900_000_000).prop_map(|s| Timestamp::from_second(s).unwrap()),
        (Timestamp::MIN.as_second()..=Timestamp::MAX.as_second())
            .prop_map(|s| Timestamp::from_second(s).unwrap()),
        Just(Timestamp::MAX),
        Just(Timestamp::MIN),
    ]
}

fn any_replicas() -> impl Strategy<Value = i32> {
    prop_oneof![0i32..20, any::<i32>(), Just(i32::MAX), Just(i32::MIN)]
}

fn any_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        0.0f64..200.0,
        any::<f64>(),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(-f64::MAX),
        Just(f64::NAN),
        Just(f64::INFINITY),
    ]
}

fn any_rule() -> impl Strategy<Value = Rule> {
    let threshold = prop_oneof![0.0f64..100.0, Just(f64::MAX), Just(f64::MIN_POSITIVE)];
    prop_oneof![
        (threshold.clone(), proptest::option::of(threshold.clone())).prop_map(|(out, inb)| {
            Rule::Thresholds {
                out_above: out,
                in_below: inb.map(|i| i.min(out / 2.0)),
            }
        }),
        threshold
            .clone()
            .prop_map(|t| Rule::Target(t.max(f64::MIN_POSITIVE))),
        threshold.prop_map(|t| Rule::TargetPerReplica(t.max(f64::MIN_POSITIVE))),
    ]
}

fn any_direction() -> impl Strategy<Value = DirectionRules> {
    (
        1i32..=i32::MAX,
        any_duration(),
        any_duration(),
        proptest::collection::vec((any::<bool>(), 1i32..=i32::MAX, positive_duration()), 1..3),
        any::<bool>(),
    )
        .prop_map(|(step, cooldown, window, policies, max)| DirectionRules {
            step,
            cooldown,
            stabilization_window: window,
            policies: policies
                .into_iter()
                .map(|(pods, value, period)| RateLimit {
                    kind: if pods {
                        RatePolicyType::Pods
                    } else {
                        RatePolicyType::Percent
                    },
                    value,
                    period,
                })
                .collect(),
            select: if max {
                SelectPolicy::Max
            } else {
                SelectPolicy::Min
            },
        })
}

fn any_policy() -> impl Strategy<Value = Policy> {
    (
        any_replicas(),
        any_replicas(),
        positive_duration(),
        0.0f64..0.99,
        proptest::collection::vec((any_rule(), any_duration()), 1..4),
        any_direction(),
        any_direction(),
        (
            any::<bool>(),
            proptest::option::of(any_replicas()),
            1i32..=i32::MAX,
        ),
        (any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(min, max, interval, tolerance, metrics, out, inward, failure, flags)| Policy {
                target: "web".into(),
                target_kind: TargetKind::deployment(),
                address: None,
                min_replicas: min.max(0),
                max_replicas: max.max(1),
                interval,
                tolerance,
                metrics: metrics
                    .into_iter()
                    .enumerate()
                    .map(|(i, (rule, window))| MetricRule {
                        name: format!("m{i}"),
                        source: Source::Cpu(ResourceMetric::default()),
                        window: window.max(SignedDuration::from_secs(1)),
                        rule,
                    })
                    .collect(),
                scale_out: out,
                scale_in: inward,
                on_failure: FailureRules {
                    action: if failure.0 {
                        FailureAction::Fallback
                    } else {
                        FailureAction::Hold
                    },
                    fallback_replicas: failure.1,
                    after: failure.2,
                },
                dry_run: flags.0,
                paused: flags.1,
                pods: PodPolicy::default(),
                forecast: None,
            },
        )
}

fn any_status() -> impl Strategy<Value = ScalingPolicyStatus> {
    (
        proptest::option::of(any_time()),
        proptest::option::of(any_time()),
        proptest::option::of(any_time()),
        proptest::option::of((any_time(), any_replicas(), any_replicas(), any::<bool>())),
        proptest::collection::vec((any_time(), any_replicas()), 0..6),
        proptest::collection::vec((any_time(), any_replicas(), any_replicas()), 0..6),
        any::<i32>(),
    )
        .prop_map(|(scaled, evaluated, since, last, recs, events, failures)| {
            ScalingPolicyStatus {
                observed_generation: Some(1),
                last_scale_time: scaled.map(Time),
                last_evaluation_time: evaluated.map(Time),
                evaluating_since: since.map(Time),
                last_decision: last.map(|(t, from, to, dry_run)| DecisionRecord {
                    time: Time(t),
                    action: Action::Hold,
                    from,
                    to,
                    rule: None,
                    limits: Vec::new(),
                    message: String::new(),
                    dry_run,
                }),
                recommendations: recs
                    .into_iter()
                    .map(|(t, replicas)| Recommendation {
                        time: Time(t),
                        replicas,
                    })
                    .collect(),
                scale_events: events
                    .into_iter()
                    .map(|(t, from, to)| ScaleEvent {
                        time: Time(t),
                        from,
                        to,
                    })
                    .collect(),
                consecutive_failures: failures,
                ..ScalingPolicyStatus::default()
            }
        })
}

fn object() -> ScalingPolicy {
    ScalingPolicy {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("shop".into()),
            uid: Some("uid".into()),
            generation: Some(1),
            ..ObjectMeta::default()
        },
        spec: ScalingPolicySpec {
            target_ref: TargetRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: "web".into(),
            },
            min_replicas: 1,
            max_replicas: 2,
            interval: None,
            tolerance: None,
            metrics: Vec::new(),
            prometheus: None,
            behavior: None,
            on_metric_failure: None,
            dry_run: None,
            paused: None,
            pods: None,
            forecast: None,
        },
        status: None,
    }
}

/// The longest the controller ever waits before it looks at a policy again.
const LONGEST_WAIT: Duration = MAX_REQUEUE.saturating_add(Duration::from_secs(2));

/// One reading per metric of the policy, from the values in turn.
fn observations_of(policy: &Policy, values: &[f64]) -> Vec<Observation> {
    policy
        .metrics
        .iter()
        .zip(values.iter().cycle())
        .map(|(m, v)| Observation::value(&m.name, *v))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases::scaled(2000)))]

    #[test]
    fn no_policy_status_reading_or_time_makes_the_engine_or_the_plan_panic(
        policy in any_policy(),
        previous in any_status(),
        values in proptest::collection::vec(any_value(), 1..4),
        current in any_replicas(),
        now in any_time(),
    ) {
        let observations = observations_of(&policy, &values);
        let decision = decide(&policy, &previous, &observations, current, now);
        let status = next_status(&previous, &decision, Some(1));
        prop_assert!(status.recommendations.len() <= previous.recommendations.len() + 1);

        let object = object();
        if let Some(wait) = plan::not_due(&object, &policy, &previous, current, now, Duration::from_secs(2)) {
            prop_assert!(wait <= LONGEST_WAIT, "waits {wait:?}");
        }
        // A window beyond what validation admits may make PromQL no parser takes: that is a
        // validation error of the policy, and there is no plan to evaluate.
        let Ok(plan_of_queries) = QueryPlan::new("shop", &policy) else {
            return Ok(());
        };
        let resolved = Resolved { policy: policy.clone(), plan: plan_of_queries, raised_from: None };
        let planned = plan::evaluation(&Evaluation {
            object: &object,
            resolved: &resolved,
            previous: &previous,
            target: &TargetRead::deployment(current, None, None),
            owners: &[],
            observations: &observations,
            target_state: &Default::default(),
            capacity: None,
            forecast: None,
            now,
            queued: Duration::ZERO,
            throttled: None,
        });
        match planned.next {
            Next::After(wait) => prop_assert!(wait <= LONGEST_WAIT, "requeue in {wait:?}"),
            Next::AwaitChange => prop_assert!(false, "a valid policy waits for a change"),
        }
        if let Some(replicas) = planned.replicas()
            && policy.min_replicas <= policy.max_replicas
        {
            prop_assert!((policy.min_replicas..=policy.max_replicas).contains(&replicas));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases::scaled(2000)))]

    /// The forecast's floor never lowers a decision: with it the engine decides at least what it
    /// decides without it (and never beyond maxReplicas), and in shadow mode exactly the same.
    #[test]
    fn a_forecast_floor_never_lowers_a_decision_and_a_shadow_one_changes_nothing(
        policy in any_policy(),
        previous in any_status(),
        values in proptest::collection::vec(any_value(), 1..4),
        current in any_replicas(),
        floor in any_replicas(),
        now in any_time(),
    ) {
        let observations = observations_of(&policy, &values);
        let without = decide(&policy, &previous, &observations, current, now);
        let with_floor = |shadow: bool| TargetState {
            forecast: Some(Floor { replicas: floor, shadow, reason: "test".into() }),
            ..TargetState::default()
        };
        let active = decide_for(&policy, &previous, &observations, current, &with_floor(false), now);
        let shadow = decide_for(&policy, &previous, &observations, current, &with_floor(true), now);
        prop_assert!(
            active.desired_replicas >= without.desired_replicas,
            "the floor {floor} lowered {} to {}", without.desired_replicas, active.desired_replicas
        );
        if policy.min_replicas <= policy.max_replicas
            && (policy.min_replicas..=policy.max_replicas).contains(&current)
        {
            prop_assert!(active.desired_replicas <= policy.max_replicas.max(without.desired_replicas));
        }
        prop_assert_eq!(shadow.desired_replicas, without.desired_replicas);
        prop_assert_eq!(&shadow.limits, &without.limits);
    }
}

#[test]
fn the_interval_that_crashed_the_operator_is_planned_without_panicking() {
    // interval: 100000000h passed validation, and the operator panicked at its next requeue
    // ("adding signed duration to timestamp overflowed") in a crash loop.
    let now = Timestamp::from_second(1_800_000_000).unwrap();
    let policy = Policy {
        interval: SignedDuration::from_hours(100_000_000),
        ..decide_fixture()
    };
    let previous = ScalingPolicyStatus {
        observed_generation: Some(1),
        ..ScalingPolicyStatus::default()
    };
    let observations = vec![Observation::value("m0", 50.0)];
    let decision = decide(&policy, &previous, &observations, 2, now);
    let previous = next_status(&previous, &decision, Some(1));
    let wait = plan::not_due(
        &object(),
        &policy,
        &previous,
        decision.desired_replicas,
        now,
        Duration::ZERO,
    );
    assert!(wait.is_some_and(|w| w <= LONGEST_WAIT), "{wait:?}");
}

/// A small valid policy: one CPU target, every default.
fn decide_fixture() -> Policy {
    let spec: ScalingPolicySpec = serde_yaml_ng::from_str(
        "targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\nminReplicas: 1\nmaxReplicas: 10\nmetrics: [{name: m0, cpu: {}, target: 50}]\n",
    )
    .unwrap();
    Policy::resolve(&spec).unwrap()
}
