//! A resource metric read pod by pod: what the ready pods use, and what the pods that are
//! starting, unready or without a sample request. The engine applies the HorizontalPodAutoscaler's
//! readiness rule with it (see [`PodUtilization`]); [`crate::pods`] builds it.

use crate::text::{Precision, number};

/// How many of the target's pods fell in each class at one evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PodCounts {
    /// Ready, with a usage sample: the value is theirs.
    pub ready: u32,
    /// Not ready yet, or ready so recently that their usage still covers their start-up.
    pub starting: u32,
    /// Were ready and are not now.
    pub unready: u32,
    /// Ready, without a usage sample.
    pub missing: u32,
    /// Matched by the target's selector but owned by another workload: left out.
    pub other_workloads: u32,
}

/// One resource metric over the target's pods, in the resource's unit (cores or bytes).
#[derive(Clone, Debug, PartialEq)]
pub struct PodUtilization {
    /// Usage of the ready pods with a sample.
    pub ready_usage: f64,
    /// Requests of the ready pods with a sample.
    pub ready_requests: f64,
    /// Requests of the starting and unready pods.
    pub pending_requests: f64,
    /// Requests of the ready pods without a sample.
    pub missing_requests: f64,
    pub counts: PodCounts,
}

impl PodUtilization {
    /// The utilization of the ready pods, in percent of their requests: the metric's value.
    pub fn value(&self) -> f64 {
        percent(self.ready_usage, self.ready_requests)
    }

    /// The utilization on a scale-out: starting, unready and missing pods count as using 0% of
    /// their requests, so that pods that carry no load yet do not ask for more pods.
    pub fn scale_out_value(&self) -> f64 {
        percent(
            self.ready_usage,
            self.ready_requests + self.pending_requests + self.missing_requests,
        )
    }

    /// The utilization on a scale-in: missing pods count as using `level` percent (the target),
    /// so that a pod without a sample never causes a scale-in; starting and unready pods are
    /// left out.
    pub fn scale_in_value(&self, level: f64) -> f64 {
        percent(
            self.ready_usage + self.missing_requests * level / 100.0,
            self.ready_requests + self.missing_requests,
        )
    }

    /// Whether any pod is counted otherwise than by its own sample.
    pub fn adjusts(&self) -> bool {
        self.counts.starting > 0 || self.counts.unready > 0 || self.counts.missing > 0
    }

    /// The counts for people: `pods: 3 ready, 1 starting, 1 missing; 2 of other workloads left
    /// out`.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        let mut parts = vec![format!("{} ready", c.ready)];
        for (n, what) in [
            (c.starting, "starting"),
            (c.unready, "unready"),
            (c.missing, "without a sample"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        let mut text = format!("pods: {}", parts.join(", "));
        if c.other_workloads > 0 {
            text.push_str(&format!(
                "; {} of other workloads left out",
                c.other_workloads
            ));
        }
        text
    }
}

fn percent(usage: f64, requests: f64) -> f64 {
    if requests > 0.0 {
        100.0 * usage / requests
    } else {
        0.0
    }
}

/// A percent for people, as in the messages: `82%`.
pub fn show_percent(v: f64) -> String {
    format!("{}%", number(v, Precision::Human))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods(ready: (f64, f64), pending: f64, missing: f64) -> PodUtilization {
        PodUtilization {
            ready_usage: ready.0,
            ready_requests: ready.1,
            pending_requests: pending,
            missing_requests: missing,
            counts: PodCounts::default(),
        }
    }

    #[test]
    fn pending_and_missing_pods_count_as_idle_on_scale_out() {
        // Two ready pods at 90% of 1 core each, two starting pods of 1 core.
        let p = pods((1.8, 2.0), 2.0, 0.0);
        assert!((p.value() - 90.0).abs() < 1e-9);
        assert!((p.scale_out_value() - 45.0).abs() < 1e-9);
    }

    #[test]
    fn missing_pods_count_at_the_target_on_scale_in() {
        // One ready pod at 10%, one ready pod without a sample; target 50%.
        let p = pods((0.1, 1.0), 5.0, 1.0);
        assert!((p.scale_in_value(50.0) - 30.0).abs() < 1e-9);
    }
}
