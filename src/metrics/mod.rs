//! Reading a policy's metrics: each metric of a ScalingPolicy becomes PromQL ([`promql`],
//! [`QueryPlan`]), runs against any server that speaks the Prometheus HTTP API
//! ([`PrometheusSource`]), and comes back as a [`MetricObservation`]: a value with the age of the
//! newest raw sample behind it, or exactly why there is none ([`Failure`]).
//!
//! # How the age of a value is measured
//!
//! An instant query's answer carries the evaluation time, not the time of the samples behind it,
//! so every metric measures an age beside its value, at the same evaluation time.
//! [`promql::raw_selectors`] parses the metric's PromQL and collects every series selector in it
//! (`offset` and `@` removed); the age query is
//!
//! ```text
//! time() - max(timestamp(SELECTOR))                       -- one selector
//! time() - min(                                           -- several
//!     label_replace(max(timestamp(S1)), "scalewise_input", "1", "", "")
//!  or label_replace(max(timestamp(S2)), "scalewise_input", "2", "", ""))
//! ```
//!
//! `timestamp()` of a plain selector is the timestamp of the newest raw sample of each series
//! within the server's lookback (5 minutes in Prometheus); `max` takes the newest series of a
//! selector and `min` the stalest selector. The value is therefore as old as its stalest input:
//! fresh CPU usage over requests that stopped being reported is stale. Selectors matching nothing
//! are left out (an error series that does not exist yet does not make an error rate stale).
//!
//! - age over the staleness limit: [`Failure::Stale`] with the age;
//! - a value while the age query finds no sample at all: [`Failure::Stale`] without an age. This
//!   is what a `rate()` over series that vanished looks like: Prometheus marks them stale, the
//!   range still holds their old samples, but no current sample exists;
//! - a query without selectors (`vector(1)`) has no age and is never stale.
//!
//! Value and age are sent as one query ([`promql::reading`]): both expressions joined with `or`,
//! each marked by the label `scalewise_part` (`value`, `age`), and the answer split by it
//! ([`answer::classify_combined`]). One request per metric and evaluation, at one evaluation time.

pub mod access;
pub mod answer;
pub mod coalesce;
pub mod endpoint;
mod error;
pub mod limits;
mod observation;
pub mod plan;
pub mod prometheus;
pub mod promql;
pub mod range;
mod source;
pub mod tenancy;
mod tls;

pub use access::{Access, BasicAuthFiles};
pub use answer::{Answer, classify};
pub use endpoint::{ServerConfig, SourceConfig};
pub use error::{ConfigError, MetricsError};
pub use limits::AnswerLimits;
pub use observation::{Failure, Invalid, MetricObservation, Sample};
pub use plan::{MetricQuery, QueryPlan, SourceKind};
pub use prometheus::PrometheusSource;
pub use source::MetricSource;
