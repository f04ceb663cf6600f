//! The limit every result is measured against: with perfect knowledge of the trace, the fewest
//! replicas at each second that keep the SLO under the same service model.
//!
//! Two passes over the trace:
//!
//! 1. **What each second needs.** From the start, each second in turn: the fewest ready
//!    replicas, within `minReplicas..maxReplicas`, for which that second keeps the SLO (the
//!    latency quantile and the error rate, judged as for every run by [`violates`]) with the
//!    backlog the seconds before left; `maxReplicas` where even that breaks it. The backlog then
//!    carries on as with that many replicas. (Greedy: a second is never given more than it needs
//!    to spare a later one; with no rate limits a later second can always have what it needs.)
//! 2. **Started in time.** A replica serves only a start-up delay after it is created, so the
//!    oracle runs, at each second, the most any second of the next start-up delay needs; a
//!    replica goes as soon as no second within a start-up delay needs it. At the start, the
//!    replicas of the first start-up delay are there and ready (the oracle knew they would be
//!    needed). No rate limit, cooldown or stabilization applies.
//!
//! The second pass runs through the model like any autoscaler, so its replica-hours and SLO
//! minutes are counted exactly as theirs are: a second ready with more replicas than it needs
//! (kept for a later one) only lowers the backlog, so the SLO minutes are those of the seconds
//! even `maxReplicas` cannot serve.

use std::collections::VecDeque;

use super::model::Service;
use super::report::{Accumulator, Row, Run};
use super::run::{TraceSetup, evaluates_at, to_i32, violates};
use crate::api::Action;

/// The oracle's label in tables, CSV and plots.
pub const LABEL: &str = "oracle";

/// The fewest ready replicas each second of the trace needs to keep the SLO (pass 1), from the
/// trace's start; `max` where even `max` breaks it.
pub fn needs(setup: &TraceSetup<'_>, min: u32, max: u32) -> Vec<u32> {
    let trace = setup.trace;
    let min = min.min(max);
    let mut service =
        Service::new(setup.params, 0, trace.start).with_quantiles(&[setup.slo.quantile]);
    let mut out = Vec::with_capacity(usize::try_from(trace.duration()).unwrap_or(0));
    let mut r = min;
    for t in trace.start..trace.end() {
        let load = trace.rate_at(t);
        let mut keeps = |n: u32| !violates(&service.probe(n, load), &setup.slo);
        // Violations fall as replicas rise (more servers, a longer queue): walk from the last
        // second's count, down while one fewer still keeps the SLO, else up until one does.
        if keeps(r) {
            while r > min && keeps(r - 1) {
                r -= 1;
            }
        } else {
            while r < max && !keeps(r) {
                r += 1;
            }
        }
        service.step_with(r, load);
        out.push(r);
    }
    out
}

/// At each second, the most that any second from it to `ahead` seconds later needs: the
/// replicas that must exist then for every later second to have its replicas ready.
pub fn started_in_time(needs: &[u32], ahead: usize) -> Vec<u32> {
    let mut out = vec![0; needs.len()];
    // Indices whose needs fall from front to back, within the window [i, i + ahead].
    let mut window: VecDeque<usize> = VecDeque::new();
    for i in (0..needs.len()).rev() {
        while window.back().is_some_and(|&j| needs[j] <= needs[i]) {
            window.pop_back();
        }
        window.push_back(i);
        while window.front().is_some_and(|&j| j > i.saturating_add(ahead)) {
            window.pop_front();
        }
        out[i] = window.front().map_or(0, |&j| needs[j]);
    }
    out
}

/// The oracle's run on `setup`: `min_replicas` and `setup.max_replicas` bound it; `interval` is
/// the policy's, at whose times the timeline gets a row.
pub fn run(setup: &TraceSetup<'_>, min_replicas: i32, interval: i64) -> Run {
    let trace = setup.trace;
    let start = trace.start;
    let max = u32::try_from(setup.max_replicas).unwrap_or(0);
    let min = u32::try_from(min_replicas).unwrap_or(0);
    let ahead = usize::try_from(setup.params.startup_delay).unwrap_or(usize::MAX);
    let need = needs(setup, min, max);
    let pods = started_in_time(&need, ahead);
    let first = pods.first().copied().unwrap_or(min);
    let mut service =
        Service::new(setup.params, first, start).with_quantiles(&[setup.slo.quantile]);
    let mut totals = Accumulator::new(LABEL, setup.max_replicas, true);
    let mut rows = Vec::new();
    let interval = interval.max(1);
    let delay = setup.params.startup_delay;
    for (t, (&count, &needed)) in (start..trace.end()).zip(pods.iter().zip(&need)) {
        let before = service.replicas();
        if count != before {
            service.scale_to(count, t);
            totals.action();
        }
        if evaluates_at(t, start, interval) {
            rows.push(Row {
                time: t,
                load: Some(trace.rate_at(t)),
                ready: to_i32(service.ready(t)),
                current: to_i32(before),
                desired: to_i32(count),
                observations: Vec::new(),
                queue: Some(service.backlog()),
                action: Action::between(to_i32(before), to_i32(count)),
                reason: format!(
                    "{count} replicas: the most any second of the next {delay}s needs ({needed} ready now)"
                ),
            });
        }
        let second = service.step(t, trace.rate_at(t));
        let violated = i64::from(violates(&second, &setup.slo));
        totals.span(to_i32(second.pods), 1, violated);
    }
    Run {
        label: LABEL.to_owned(),
        rows,
        summary: totals.finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::report::Slo;
    use crate::simulate::{ModelParams, Trace};

    fn trace(rates: &[f64]) -> Trace {
        let text: String = std::iter::once("timestamp_seconds,requests_per_second\n".to_owned())
            .chain(rates.iter().enumerate().map(|(i, r)| format!("{i},{r}\n")))
            .collect();
        Trace::parse("t.csv", &text).expect("a trace")
    }

    fn setup(trace: &Trace, delay: i64, max: i32) -> TraceSetup<'_> {
        TraceSetup {
            trace,
            params: ModelParams {
                startup_delay: delay,
                ..ModelParams::default()
            },
            bindings: &[],
            initial_replicas: 1,
            max_replicas: max,
            slo: Slo::default(),
        }
    }

    #[test]
    fn each_second_gets_the_fewest_replicas_that_keep_the_slo() {
        // 100 requests/s per replica at 100% CPU: 450/s needs 5 (4 would queue without end).
        let t = trace(&[50.0, 450.0, 450.0, 150.0]);
        let s = setup(&t, 0, 20);
        let need = needs(&s, 1, 20);
        assert_eq!(need, vec![1, 5, 5, 2]);
        // One fewer at any second breaks the SLO there (from the same backlog: none here).
        let mut probe = Service::new(s.params, 0, 0).with_quantiles(&[s.slo.quantile]);
        for (rate, n) in [(450.0, 4), (150.0, 1)] {
            assert!(violates(&probe.probe(n, rate), &s.slo), "{n} at {rate}/s");
        }
        let run = run(&s, 1, 15);
        assert_eq!(run.summary.violation_seconds, Some(0));
    }

    #[test]
    fn replicas_are_started_a_start_up_delay_before_they_are_needed() {
        assert_eq!(
            started_in_time(&[1, 1, 1, 5, 5, 2, 2, 2], 2),
            vec![1, 5, 5, 5, 5, 2, 2, 2]
        );
        assert_eq!(started_in_time(&[3, 1, 2], 0), vec![3, 1, 2]);
        assert_eq!(started_in_time(&[], 30), Vec::<u32>::new());
        // A delay longer than the trace: the peak from the start.
        assert_eq!(started_in_time(&[1, 4, 2], usize::MAX), vec![4, 4, 2]);
    }

    #[test]
    fn with_a_start_up_delay_the_replicas_are_ready_when_the_load_comes() {
        let mut rates = vec![50.0; 60];
        rates.extend(vec![450.0; 60]);
        let t = trace(&rates);
        let s = setup(&t, 30, 20);
        let run = run(&s, 1, 15);
        assert_eq!(run.summary.violation_seconds, Some(0));
        // 5 replicas for 60 s of need, started 30 s ahead; 1 for the 30 s before.
        assert_eq!(run.summary.replica_seconds, 30.0 + 5.0 * 90.0);
    }

    #[test]
    fn a_second_even_max_replicas_cannot_serve_runs_max_replicas() {
        let t = trace(&[50.0, 5000.0, 50.0]);
        let s = setup(&t, 0, 3);
        assert_eq!(needs(&s, 1, 3)[1], 3);
        let run = run(&s, 1, 15);
        assert!(run.summary.violation_seconds.unwrap_or(0) >= 1);
        assert_eq!(run.summary.max_replicas, 3);
    }

    proptest::proptest! {
        /// Where `maxReplicas` can serve every second, the oracle never breaks the SLO, whatever
        /// the load and the start-up delay, and runs at least what each second needs; and no
        /// second could do with one replica fewer (from the backlog the oracle left it).
        #[test]
        fn with_enough_replicas_the_oracle_keeps_the_slo_with_the_fewest(
            rates in proptest::collection::vec(0.0f64..2000.0, 2..120),
            delay in 0i64..60,
        ) {
            let t = trace(&rates);
            let s = setup(&t, delay, 40);
            let need = needs(&s, 1, 40);
            let run = run(&s, 1, 15);
            proptest::prop_assert_eq!(run.summary.violation_seconds, Some(0));
            let pods = started_in_time(&need, usize::try_from(delay).unwrap_or(0));
            for (p, n) in pods.iter().zip(&need) {
                proptest::prop_assert!(p >= n);
            }
            let mut probe = Service::new(s.params, 0, 0).with_quantiles(&[s.slo.quantile]);
            for (i, &n) in need.iter().enumerate() {
                let load = t.rate_at(t.start + i as i64);
                if n > 1 {
                    proptest::prop_assert!(violates(&probe.probe(n - 1, load), &s.slo));
                }
                probe.step_with(n, load);
            }
        }
    }

    #[test]
    fn min_replicas_hold_when_nothing_is_needed() {
        let t = trace(&[0.0, 0.0, 10.0]);
        let s = setup(&t, 0, 10);
        assert_eq!(needs(&s, 2, 10), vec![2, 2, 2]);
        assert_eq!(needs(&s, 0, 10)[..2], [0, 0]);
    }
}
