//! Trace mode: an autoscaler against the service model, one simulated second at a time.
//!
//! At each second `t` from the trace's start: when `t` is a whole number of the autoscaler's
//! intervals after the start (not at the start itself: there is no data yet), every metric is
//! read over its window of past seconds and the autoscaler decides; the new count takes effect at
//! once for the Deployment (`spec.replicas`), and new replicas serve after the start-up delay.
//! Then the model runs the second `[t, t+1)` at the trace's rate.

use std::collections::VecDeque;

use jiff::Timestamp;

use super::autoscaler::{Autoscaler, Evaluation};
use super::bind::{MetricBinding, ModelMetric};
use super::model::{ModelParams, Second, Service};
use super::report::{Accumulator, Row, Run, Slo};
use super::trace::Trace;

/// Everything a trace run needs besides the autoscaler.
#[derive(Clone, Debug)]
pub struct TraceSetup<'a> {
    pub trace: &'a Trace,
    pub params: ModelParams,
    pub bindings: &'a [MetricBinding],
    /// Replicas at the start, all ready.
    pub initial_replicas: i32,
    /// The policy's maxReplicas, for the minutes at max.
    pub max_replicas: i32,
    pub slo: Slo,
}

/// How often, in simulated seconds, progress is reported.
pub const PROGRESS_EVERY: i64 = 3600;

/// Runs `autoscaler` over the whole trace. `progress` is told of each stretch of simulated
/// seconds done.
pub fn run_trace(
    autoscaler: &mut dyn Autoscaler,
    setup: &TraceSetup<'_>,
    progress: &mut dyn FnMut(u64),
) -> Run {
    let trace = setup.trace;
    let start = trace.start;
    let end = trace.end();
    let quantiles: Vec<f64> = std::iter::once(setup.slo.quantile)
        .chain(setup.bindings.iter().filter_map(|b| match b.source {
            ModelMetric::Latency { quantile } => Some(quantile),
            _ => None,
        }))
        .collect();
    let mut service = Service::new(
        setup.params,
        u32::try_from(setup.initial_replicas).unwrap_or(0),
        start,
    )
    .with_quantiles(&quantiles);
    let interval = autoscaler.interval().max(1);
    let keep = setup
        .bindings
        .iter()
        .map(|b| b.window)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut history: VecDeque<Second> = VecDeque::with_capacity(keep + 1);
    let label = autoscaler.label().to_owned();
    let mut totals = Accumulator::new(&label, setup.max_replicas, true);
    let mut rows = Vec::new();
    let mut reported = 0;
    for t in start..end {
        if evaluates_at(t, start, interval) {
            let observations: Vec<_> = setup.bindings.iter().map(|b| b.observe(&history)).collect();
            let current = to_i32(service.replicas());
            let ready = to_i32(service.ready(t));
            let outcome = autoscaler.evaluate(&Evaluation {
                now: timestamp(t),
                current,
                ready,
                pods: service.pods(),
                observations: &observations,
                startup_delay: Some(setup.params.startup_delay),
            });
            if outcome.desired != current {
                service.scale_to(u32::try_from(outcome.desired).unwrap_or(0), t);
                totals.action();
            }
            rows.push(Row {
                time: t,
                load: Some(trace.rate_at(t)),
                ready,
                current,
                desired: outcome.desired,
                observations,
                queue: Some(service.backlog()),
                action: outcome.action,
                reason: outcome.reason,
            });
        }
        let second = service.step(t, trace.rate_at(t));
        let violated = i64::from(violates(&second, &setup.slo));
        totals.span(to_i32(second.pods), 1, violated);
        if history.len() == keep {
            history.pop_front();
        }
        history.push_back(second);
        let done = t + 1 - start;
        if done - reported >= PROGRESS_EVERY {
            progress(u64::try_from(done - reported).unwrap_or(0));
            reported = done;
        }
    }
    progress(u64::try_from(end - start - reported).unwrap_or(0));
    Run {
        label,
        rows,
        summary: totals.finish(),
    }
}

/// Whether users saw the SLO broken in this second: the latency quantile above its limit, or
/// more errors than allowed (every request fails without a ready replica).
pub fn violates(second: &Second, slo: &Slo) -> bool {
    if second.error_rate() > slo.error_rate {
        return true;
    }
    match second.latency(slo.quantile) {
        Some(latency) => second.load > 0.0 && latency > slo.latency,
        None => second.load > 0.0,
    }
}

/// A second as a timestamp (traces are checked to lie within jiff's range when read).
pub fn timestamp(t: i64) -> Timestamp {
    Timestamp::from_second(t).unwrap_or(if t < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// Whether the autoscaler evaluates at second `t`: a whole number of `interval`s after the
/// trace's `start`, not at the start itself.
pub(super) fn evaluates_at(t: i64, start: i64, interval: i64) -> bool {
    t > start && (t - start) % interval == 0
}

pub(super) fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
