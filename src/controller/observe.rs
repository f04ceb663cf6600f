//! The controller's view of the metrics layer: check a resolved policy against the operator's
//! configuration, and read its metrics.

use futures::future::BoxFuture;
use jiff::Timestamp;

use crate::api::FieldError;
use crate::decide::Observation;
use crate::decide::forecast::History;
use crate::metrics::range::Span;
use crate::metrics::tenancy::QueryScope;
use crate::metrics::{PrometheusSource, QueryPlan};
use crate::pods::TargetPods;

/// Reads a policy's metrics.
pub trait Observe: Send + Sync + 'static {
    /// Problems with the `spec.prometheus.address` of a policy in `namespace` that depend on
    /// the operator's configuration (an address outside the allow-list, or on an entry not open
    /// to the namespace), with field paths.
    fn check(&self, namespace: &str, address: Option<&str>) -> Vec<FieldError>;

    /// Whose series the queries of a policy in `namespace` reading `address` may read: by
    /// default its own namespace's, through the label `namespace`.
    fn scope(&self, namespace: &str, _address: Option<&str>) -> QueryScope {
        QueryScope::own(namespace)
    }

    /// A number that changes whenever the configuration [`Observe::check`] depends on changes
    /// (a reloaded allow-list): every policy resolved under another number is resolved again.
    fn config_epoch(&self) -> u64 {
        0
    }

    /// One observation per metric of the plan, in spec order; failures are observations too.
    /// `at`: the tick the evaluation reads at (readings of one tick are shared between policies),
    /// or now. `pods` are the target's pods, over which `cpu` and `memory` are counted, or why
    /// they are not known.
    fn observe<'a>(
        &'a self,
        plan: &'a QueryPlan,
        at: Option<Timestamp>,
        pods: Result<&'a TargetPods, &'a str>,
    ) -> BoxFuture<'a, Vec<Observation>>;

    /// The history of the metric `name` of the plan over `span`, for `spec.forecast`.
    fn history<'a>(
        &'a self,
        _plan: &'a QueryPlan,
        _name: &'a str,
        _span: Span,
    ) -> BoxFuture<'a, Result<History, String>> {
        Box::pin(async { Err("this metrics reader keeps no history".to_owned()) })
    }
}

/// The Prometheus reader as the controller sees it. Its configuration is read once at start-up,
/// so its epoch never changes.
impl Observe for PrometheusSource {
    fn check(&self, namespace: &str, address: Option<&str>) -> Vec<FieldError> {
        PrometheusSource::check(self, namespace, address)
    }

    fn scope(&self, namespace: &str, address: Option<&str>) -> QueryScope {
        self.config().scope_for(namespace, address)
    }

    fn observe<'a>(
        &'a self,
        plan: &'a QueryPlan,
        at: Option<Timestamp>,
        pods: Result<&'a TargetPods, &'a str>,
    ) -> BoxFuture<'a, Vec<Observation>> {
        Box::pin(PrometheusSource::observe(self, plan, at, pods))
    }

    fn history<'a>(
        &'a self,
        plan: &'a QueryPlan,
        name: &'a str,
        span: Span,
    ) -> BoxFuture<'a, Result<History, String>> {
        Box::pin(PrometheusSource::history(self, plan, name, span))
    }
}
