//! The controller's view of the metrics layer: check a resolved policy against the operator's
//! configuration, and read its metrics.

use futures::future::BoxFuture;

use crate::api::FieldError;
use crate::decide::Observation;
use crate::metrics::{PrometheusSource, QueryPlan};

/// Reads a policy's metrics.
pub trait Observe: Send + Sync + 'static {
    /// Problems with a policy's `spec.prometheus.address` that depend on the operator's
    /// configuration (an address outside the allow-list), with field paths.
    fn check(&self, address: Option<&str>) -> Vec<FieldError>;

    /// A number that changes whenever the configuration [`Observe::check`] depends on changes
    /// (a reloaded allow-list): every policy resolved under another number is resolved again.
    fn config_epoch(&self) -> u64 {
        0
    }

    /// One observation per metric of the plan, in spec order; failures are observations too.
    fn observe<'a>(&'a self, plan: &'a QueryPlan) -> BoxFuture<'a, Vec<Observation>>;
}

/// The Prometheus reader as the controller sees it. Its configuration is read once at start-up,
/// so its epoch never changes.
impl Observe for PrometheusSource {
    fn check(&self, address: Option<&str>) -> Vec<FieldError> {
        PrometheusSource::check(self, address)
    }

    fn observe<'a>(&'a self, plan: &'a QueryPlan) -> BoxFuture<'a, Vec<Observation>> {
        Box::pin(PrometheusSource::observe(self, plan, None))
    }
}
