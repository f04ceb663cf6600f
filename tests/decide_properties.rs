//! Invariants of the decision engine, checked on random policies, histories and readings.

mod cases;

mod fixtures;

use fixtures::*;
use proptest::prelude::*;
use scalewise::api::*;
use scalewise::decide::{Observation, Reading, decide, next_status};

/// One metric of a random policy: its rule kind and parameters.
#[derive(Clone, Debug)]
enum MetricKind {
    Band(f64, f64),
    OutAbove(f64),
    Target(f64),
    PerReplica(f64),
}

#[derive(Clone, Debug)]
struct Setup {
    min: i32,
    max: i32,
    metrics: Vec<MetricKind>,
    out_step: i32,
    in_step: i32,
    out_cooldown: u32,
    in_cooldown: u32,
    out_window: u32,
    in_window: u32,
    tolerance: f64,
    fallback: Option<(i32, i32)>,
}

impl Setup {
    fn builder(&self) -> PolicyBuilder {
        let mut b = policy()
            .min(self.min)
            .max(self.max)
            .tolerance(self.tolerance);
        for (i, m) in self.metrics.iter().enumerate() {
            let name = format!("m{i}");
            b = match *m {
                MetricKind::Band(lo, hi) => b.band(&name, lo, hi),
                MetricKind::OutAbove(hi) => b.out_above(&name, hi),
                MetricKind::Target(t) => b.target(&name, t),
                MetricKind::PerReplica(t) => b.per_replica(&name, t),
            };
        }
        b = b
            .out_step(self.out_step)
            .in_step(self.in_step)
            .out_cooldown(&format!("{}s", self.out_cooldown))
            .in_cooldown(&format!("{}s", self.in_cooldown))
            .out_window(&format!("{}s", self.out_window))
            .in_window(&format!("{}s", self.in_window));
        if let Some((replicas, after)) = self.fallback {
            b = b.fallback(replicas.clamp(self.min, self.max), after);
        }
        b
    }
}

fn metric_kind() -> impl Strategy<Value = MetricKind> {
    prop_oneof![
        (0.0..50.0f64, 1.0..50.0f64).prop_map(|(lo, gap)| MetricKind::Band(lo, lo + gap)),
        (0.0..100.0f64).prop_map(MetricKind::OutAbove),
        (1.0..100.0f64).prop_map(MetricKind::Target),
        (1.0..100.0f64).prop_map(MetricKind::PerReplica),
    ]
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        (0..5i32, 1..25i32),
        prop::collection::vec(metric_kind(), 1..5),
        (1..4i32, 1..4i32),
        (0..8u32, 0..8u32, 0..5u32, 0..5u32),
        0.0..0.5f64,
        prop::option::of((0..30i32, 1..4i32)),
    )
        .prop_map(
            |((min, span), metrics, (out_step, in_step), (oc, ic, ow, iw), tolerance, fallback)| {
                Setup {
                    min,
                    max: min.max(1) + span,
                    metrics,
                    out_step,
                    in_step,
                    out_cooldown: oc * 15,
                    in_cooldown: ic * 15,
                    out_window: ow * 30,
                    in_window: iw * 30,
                    tolerance,
                    fallback,
                }
            },
        )
}

/// A reading: mostly values across the interesting range, sometimes a failure.
fn reading() -> impl Strategy<Value = Reading> {
    prop_oneof![
        6 => (0.0..300.0f64).prop_map(Reading::Value),
        1 => prop::sample::select(FailureKind::ALL.to_vec()).prop_map(|k| Reading::failed(k, "random failure")),
    ]
}

fn observations(readings: &[Reading]) -> Vec<Observation> {
    readings
        .iter()
        .enumerate()
        .map(|(i, r)| Observation {
            name: format!("m{i}"),
            reading: r.clone(),
            query: None,
            pods: None,
        })
        .collect()
}

/// A setup, a realistic history (a random run of earlier evaluations fed back), the current
/// replicas after it, the time of the next evaluation and its readings.
fn scenario() -> impl Strategy<Value = (Setup, ScalingPolicyStatus, i32, i64, Vec<Reading>)> {
    setup().prop_flat_map(|s| {
        let n = s.metrics.len();
        (
            Just(s),
            prop::collection::vec((prop::collection::vec(reading(), n), 1..4i64), 0..20),
            prop::collection::vec(reading(), n),
        )
            .prop_map(|(s, history, readings)| {
                let p = s.builder().build();
                let mut status = ScalingPolicyStatus::default();
                let mut replicas = s.min.max(1);
                let mut t = 0;
                for (rs, gap) in history {
                    let d = decide(&p, &status, &observations(&rs), replicas, at(t));
                    status = next_status(&status, &d, Some(1));
                    replicas = d.desired_replicas;
                    t += gap * 15;
                }
                (s, status, replicas, t, readings)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases::scaled(512), ..ProptestConfig::default() })]

    #[test]
    fn the_result_stays_within_min_and_max_unless_paused_or_at_zero(
        (s, status, _, t, readings) in scenario(),
        current in 0..40i32,
    ) {
        let d = decide(&s.builder().build(), &status, &observations(&readings), current, at(t));
        if current == 0 && s.min > 0 {
            prop_assert_eq!(d.desired_replicas, 0);
        } else {
            prop_assert!(d.desired_replicas >= s.min && d.desired_replicas <= s.max, "{:?}", d);
        }
        let paused = decide(&s.builder().paused(true).build(), &status, &observations(&readings), current, at(t));
        prop_assert_eq!(paused.desired_replicas, current);
    }

    #[test]
    fn never_below_current_when_any_metric_failed(
        (s, status, current, t, readings) in scenario(),
        which in any::<prop::sample::Index>(),
        kind in prop::sample::select(FailureKind::ALL.to_vec()),
    ) {
        let mut readings = readings;
        let i = which.index(readings.len());
        readings[i] = Reading::failed(kind, "injected failure");
        let d = decide(&s.builder().build(), &status, &observations(&readings), current, at(t));
        // Range corrections aside (the history keeps current inside the range).
        prop_assert!(current >= s.min && current <= s.max);
        prop_assert!(d.desired_replicas >= current, "{:?}", d);
    }

    #[test]
    fn no_change_during_cooldown_except_a_range_correction(
        (s, status, current, _t, readings) in scenario(),
        offset in 0..200i64,
        pushed in -3..4i32,
    ) {
        let Some(last) = status.last_scale_time.as_ref().map(|t| t.0) else { return Ok(()) };
        let now = last + jiff::SignedDuration::from_secs(offset);
        let current = current + pushed;
        let d = decide(&s.builder().build(), &status, &observations(&readings), current, now);
        if current < s.min || current > s.max || (current == 0 && s.min > 0) {
            return Ok(());
        }
        if offset < i64::from(s.out_cooldown) {
            prop_assert!(d.desired_replicas <= current, "scaled out during the scale-out cooldown: {:?}", d);
        }
        if offset < i64::from(s.in_cooldown) {
            prop_assert!(d.desired_replicas >= current, "scaled in during the scale-in cooldown: {:?}", d);
        }
    }

    #[test]
    fn raising_any_metric_value_never_lowers_the_result(
        (s, status, current, t, readings) in scenario(),
        which in any::<prop::sample::Index>(),
        raise in 0.0..200.0f64,
    ) {
        let i = which.index(readings.len());
        let Reading::Value(v) = readings[i] else { return Ok(()) };
        let mut raised = readings.clone();
        raised[i] = Reading::Value(v + raise);
        let p = s.builder().build();
        let before = decide(&p, &status, &observations(&readings), current, at(t));
        let after = decide(&p, &status, &observations(&raised), current, at(t));
        prop_assert!(after.desired_replicas >= before.desired_replicas, "{:?}\n{:?}", before, after);
    }

    #[test]
    fn the_order_of_observations_does_not_change_the_result(
        (s, status, current, t, readings) in scenario(),
        shuffle in any::<u64>(),
    ) {
        let p = s.builder().build();
        let ordered = observations(&readings);
        let mut shuffled = ordered.clone();
        // A deterministic permutation from the seed.
        let n = shuffled.len();
        for i in (1..n).rev() {
            let j = (shuffle.wrapping_mul(6364136223846793005).wrapping_add(i as u64) >> 33) as usize % (i + 1);
            shuffled.swap(i, j);
        }
        let a = decide(&p, &status, &ordered, current, at(t));
        let b = decide(&p, &status, &shuffled, current, at(t));
        prop_assert_eq!(a, b);
    }

    #[test]
    fn oscillating_metrics_act_at_most_once_per_cooldown(
        s in setup(),
        steps in 20..200usize,
        seed in any::<u64>(),
    ) {
        // Cooldowns of at least one interval (15 s).
        let mut s = s;
        s.out_cooldown = s.out_cooldown.max(15);
        s.in_cooldown = s.in_cooldown.max(15);
        let p = s.builder().build();
        let mut status = ScalingPolicyStatus::default();
        let mut replicas = s.min.max(1);
        let mut actions = 0u64;
        let mut state = seed;
        for step in 0..steps {
            // A random walk that swings every metric between very low and very high.
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let high = (state >> 40) % 2 == 0;
            let readings: Vec<Reading> = s.metrics.iter().map(|_| Reading::Value(if high { 280.0 } else { 0.5 })).collect();
            let d = decide(&p, &status, &observations(&readings), replicas, at(step as i64 * 15));
            if d.desired_replicas != replicas {
                actions += 1;
            }
            replicas = d.desired_replicas;
            status = next_status(&status, &d, Some(1));
        }
        let elapsed = (steps as u64 - 1) * 15;
        let shortest = u64::from(s.out_cooldown.min(s.in_cooldown));
        prop_assert!(actions <= elapsed / shortest + 1, "{} actions in {} s with a {} s cooldown", actions, elapsed, shortest);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Counting the pods that are starting, unready or without a sample (the HPA's rule) only
    /// ever moves a metric's proposal back towards the current replicas: it never reverses the
    /// direction the ready pods ask for, and never goes beyond it.
    #[test]
    fn the_pod_recount_never_reverses_or_exceeds_the_ready_pods_proposal(
        kind in metric_kind(),
        current in 1i32..50,
        ready_usage in 0.0f64..20.0,
        ready_requests in 0.1f64..20.0,
        pending in 0.0f64..20.0,
        missing in 0.0f64..20.0,
        counted in (0u32..5, 0u32..5, 0u32..5),
    ) {
        let p = Setup { metrics: vec![kind], ..plain_setup() }.builder().build();
        let pods = scalewise::decide::pods::PodUtilization {
            ready_usage,
            ready_requests,
            pending_requests: pending,
            missing_requests: missing,
            counts: scalewise::decide::pods::PodCounts {
                ready: 1,
                starting: counted.0,
                unready: counted.1,
                missing: counted.2,
                other_workloads: 0,
            },
        };
        let alone = decide(&p, &Default::default(), &[Observation::value("m0", pods.value())], current, at(0));
        let counted = decide(
            &p,
            &Default::default(),
            &[Observation { pods: Some(pods.clone()), ..Observation::value("m0", pods.value()) }],
            current,
            at(0),
        );
        let (raw, got) = (
            alone.metrics[0].proposal.unwrap_or(current),
            counted.metrics[0].proposal.unwrap_or(current),
        );
        if raw >= current {
            prop_assert!((current..=raw).contains(&got), "raw {raw}, recounted {got}, current {current}");
        } else {
            prop_assert!((raw..=current).contains(&got), "raw {raw}, recounted {got}, current {current}");
        }
    }
}

/// A setup without limits, so that a metric's proposal is all that decides.
fn plain_setup() -> Setup {
    Setup {
        min: 1,
        max: 1000,
        metrics: Vec::new(),
        out_step: 1,
        in_step: 1,
        out_cooldown: 0,
        in_cooldown: 0,
        out_window: 0,
        in_window: 0,
        tolerance: 0.1,
        fallback: None,
    }
}

/// A setup, readings for each of `steps` evaluations 15 s apart, and the step a crash comes at.
fn crash_scenario() -> impl Strategy<Value = (Setup, Vec<Vec<Reading>>, usize)> {
    setup().prop_flat_map(|s| {
        let n = s.metrics.len();
        (
            Just(s),
            prop::collection::vec(prop::collection::vec(reading(), n), 10..60),
        )
            .prop_flat_map(|(s, walk)| {
                let steps = walk.len();
                (Just(s), Just(walk), 1..steps)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases::scaled(256), ..ProptestConfig::default() })]

    /// The controller writes an evaluation's status only when something that matters changed
    /// (`persist::should_write`; a scale always), and remembers the rest. A crash loses what was
    /// remembered: the next replica starts from what was written, resumed. That can only delay:
    /// no scale-in for a whole scale-in window after the takeover, and every cooldown holds
    /// across it.
    #[test]
    fn a_crash_that_loses_unwritten_evaluations_only_delays_a_scale_in(
        (s, walk, crash) in crash_scenario(),
    ) {
        use scalewise::controller::persist::{self, Cadence};
        use std::time::Duration;
        let p = s.builder().build();
        let cadence = Cadence::for_policy(&p, Duration::from_secs(3600));
        let mut memory = ScalingPolicyStatus::default();
        let mut written = ScalingPolicyStatus::default();
        let mut replicas = s.min.max(1);
        let mut last_scale: Option<i64> = None;
        let mut taken_over: Option<i64> = None;
        for (step, readings) in walk.iter().enumerate() {
            let t = step as i64 * 15;
            if step == crash {
                memory = persist::resumed(written.clone());
                taken_over = Some(t);
            }
            let d = decide(&p, &memory, &observations(readings), replicas, at(t));
            let new = next_status(&memory, &d, Some(1));
            let scaled = d.desired_replicas != replicas;
            if scaled || persist::should_write(&written, &new, at(t), cadence, Duration::ZERO).is_some() {
                written = new.clone();
            }
            memory = new;
            if scaled {
                let cooldown = if d.desired_replicas > replicas { s.out_cooldown } else { s.in_cooldown };
                if let Some(last) = last_scale {
                    prop_assert!(
                        t - last >= i64::from(cooldown),
                        "scaled {} -> {} at {} s, {} s after the last scale, within its {} s cooldown",
                        replicas, d.desired_replicas, t, t - last, cooldown
                    );
                }
                if let Some(taken) = taken_over && d.desired_replicas < replicas {
                    prop_assert!(
                        t - taken >= i64::from(s.in_window),
                        "scaled in at {} s, {} s after the takeover, within the {} s scale-in window",
                        t, t - taken, s.in_window
                    );
                }
                last_scale = Some(t);
            }
            replicas = d.desired_replicas;
            // What a scale decided is always on the cluster.
            prop_assert_eq!(&written.last_scale_time, &memory.last_scale_time);
        }
    }
}
