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
