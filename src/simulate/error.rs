//! Why a simulation cannot run.

/// Why a simulation cannot run. Every message names the file, line, flag or metric at fault; an
/// error with a cause (an I/O, Prometheus or server-settings error) keeps it as its source.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// A trace file is malformed.
    #[error(transparent)]
    Trace(#[from] super::trace::TraceError),
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
        crate::text::error_chain(.source, crate::text::Causes::New)
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
