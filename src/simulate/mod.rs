//! The simulator: what a policy would do, before it touches production.
//!
//! Two ways to feed it, both through the same decision engine the controller runs
//! ([`crate::decide::decide`], called by [`ScalewiseAutoscaler`]; nothing here copies it):
//!
//! - **Trace mode** ([`run_trace`]): a load trace ([`trace`], or a synthetic one from
//!   [`generate`]) drives a service model ([`model`]) that turns load and ready replicas into the
//!   metrics the policy reads ([`bind`]). Decisions feed back: a new replica serves after the
//!   model's start-up delay. The engine runs every `interval` of simulated time.
//! - **Backtest mode** ([`backtest`]): each metric's history from Prometheus range queries is
//!   replayed through the engine. History cannot show feedback from the policy's own decisions.
//!
//! [`hpa`] is the baseline: the Kubernetes HorizontalPodAutoscaler v2 algorithm with its defaults,
//! implemented on its own (a baseline must not share the code it is compared with). [`report`]
//! sums a run up, writes its timeline as CSV, and [`plot`] draws both runs on one figure.

pub mod autoscaler;
pub mod backtest;
pub mod bind;
pub mod generate;
pub mod hpa;
pub mod model;
pub mod plot;
mod png_text;
pub mod report;
pub mod run;
pub mod trace;

pub use autoscaler::{Autoscaler, Evaluation, Outcome, ScalewiseAutoscaler};
pub use bind::{MetricBinding, ModelMetric};
pub use model::{ModelParams, Service};
pub use report::{Row, Run, Slo, Summary};
pub use run::{TraceSetup, run_trace};
pub use trace::Trace;

/// Why a simulation cannot run. Every message names the file, line, flag or metric at fault; an
/// error with a cause (an I/O, Prometheus or server-settings error) keeps it as its source.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// A trace file is malformed.
    #[error(transparent)]
    Trace(#[from] trace::TraceError),
    /// The model file is not YAML of the model's fields (names the file, and the field when the
    /// error is about one).
    #[error("{path}: {}{source}", field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
    Model {
        path: String,
        field: Option<String>,
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// The model file's `startupDelay` is not a duration.
    #[error("{path}: startupDelay: {source}")]
    StartupDelay {
        path: String,
        #[source]
        source: crate::api::duration::DurationError,
    },
    /// A parameter (of the model, the generator or the backtest) is out of range; the message
    /// names its flag.
    #[error("{0}")]
    Parameter(String),
    /// A metric of the policy cannot be produced by the service model, or a `--map` is wrong.
    #[error("{0}")]
    Binding(String),
    /// The baseline cannot be built from the policy.
    #[error("{0}")]
    Baseline(String),
    /// The settings of the Prometheus server to backtest on are unusable (such as a header).
    #[error("{0}")]
    Server(#[source] crate::metrics::ConfigError),
    /// No Prometheus client can be made for the server's URL.
    #[error("--prometheus-url {url}: {source}")]
    Client {
        url: String,
        #[source]
        source: prometheus_http_query::Error,
    },
    /// A range query of a backtest failed.
    #[error(
        "metric {metric}: the range query to {url} failed: {}\n  query: {query}",
        backtest::error_chain(.source)
    )]
    RangeQuery {
        metric: String,
        url: String,
        query: String,
        #[source]
        source: prometheus_http_query::Error,
    },
    /// A range query was answered with something else than a range vector.
    #[error(
        "metric {metric}: {url} did not answer the range query with a range vector\n  query: {query}"
    )]
    NotRangeVector {
        metric: String,
        url: String,
        query: String,
    },
    /// A plot could not be drawn or written.
    #[error("cannot draw {path}: {message}")]
    Plot { path: String, message: String },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}
