//! What reads a policy's metrics.

use std::future::Future;

use jiff::Timestamp;

use super::error::MetricsError;
use super::observation::MetricObservation;
use super::plan::QueryPlan;

/// Reads the metrics of one policy.
pub trait MetricSource {
    /// Evaluates every metric of `plan` once, concurrently, at `at` (the server's current time
    /// when `None`). Returns one observation per metric, in the plan's order; `Err` only when the
    /// policy cannot be read at all (its server is not allowed, or none is configured).
    fn evaluate(
        &self,
        plan: &QueryPlan,
        at: Option<Timestamp>,
    ) -> impl Future<Output = Result<Vec<MetricObservation>, MetricsError>> + Send;
}
