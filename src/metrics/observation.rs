//! What one metric read: a value with the age of the samples behind it, or exactly why there is
//! none.

use std::fmt;
use std::time::Duration;

use super::limits::{self, truncate_message};
use super::plan::SourceKind;
use crate::api::FailureKind;
use crate::text::{self, Resolution};

/// What one metric read.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricObservation {
    /// The metric's name in the spec.
    pub name: String,
    /// The exact PromQL that produced the value.
    pub query: String,
    /// The PromQL that measured the age of the samples behind it (none without selectors).
    pub age_query: Option<String>,
    pub result: Result<Sample, Failure>,
    /// For a metric read per pod: how the target's pods were counted.
    pub pods: Option<crate::decide::pods::PodUtilization>,
}

/// A usable value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub value: f64,
    /// Age of the newest raw sample behind the value (of its stalest input); `None` for queries
    /// without series selectors.
    pub age: Option<Duration>,
}

/// Why a metric has no usable value.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// The server could not be asked or answered with an error: connection error, timeout, HTTP
    /// error status, PromQL error, malformed answer.
    Unavailable(String),
    /// The query matched no series.
    Empty,
    /// The query, scoped to the policy's namespace (and the namespaces granted to it), matched
    /// no series: the data may be there without the label that carries the namespace.
    EmptyInNamespace {
        label: String,
        namespace: String,
        granted: Vec<String>,
    },
    /// A metric read per pod has nothing to measure: the target has no ready pod with a sample
    /// (the message says how its pods were counted).
    NoReadyPod(String),
    /// The data behind the value is older than the staleness limit. `age` is `None` when no
    /// current sample exists at all (every input series vanished or is older than the lookback).
    Stale {
        age: Option<Duration>,
        limit: Duration,
    },
    /// The answer is not one usable number.
    Invalid(Invalid),
}

/// How an answer fails to be one usable number.
#[derive(Clone, Debug, PartialEq)]
pub enum Invalid {
    NaN,
    Infinite(f64),
    /// A negative value for a source that cannot be negative (all but `query`).
    Negative {
        value: f64,
        source: SourceKind,
    },
    /// More than one series.
    Series(usize),
    /// A string or range-vector answer.
    NotANumber(String),
    /// The answer's body passed `--prometheus-max-answer-bytes` (the limit, in bytes); reading
    /// stopped there.
    TooLarge {
        limit: usize,
    },
    /// The answer held more series than `--prometheus-max-series` (the limit); parsing stopped
    /// there.
    TooManySeries {
        limit: usize,
    },
    /// A per-pod answer held more series than `--prometheus-max-pod-series` (the limit).
    TooManyPods {
        limit: usize,
    },
    /// A series of a per-pod answer has no `pod` label.
    NoPodLabel,
    /// A pod of the target has no request, or an unreadable one (the message names it).
    Request(String),
}

impl Failure {
    /// [`Failure::Unavailable`] with `message` cut to
    /// [`MAX_MESSAGE_BYTES`](limits::MAX_MESSAGE_BYTES): every message the metrics layer makes
    /// from a server's words (error bodies, PromQL errors) goes through here, so that status and
    /// events never carry a whole body.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(truncate_message(message.into()))
    }

    /// The failure kind the decision engine and status use.
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Unavailable(_) => FailureKind::Unavailable,
            Self::Empty | Self::EmptyInNamespace { .. } | Self::NoReadyPod(_) => FailureKind::Empty,
            Self::Stale { .. } => FailureKind::Stale,
            Self::Invalid(_) => FailureKind::Invalid,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(message) => f.write_str(message),
            Self::Empty => f.write_str(
                "the query returned no series: its selectors match nothing, or the data is gone",
            ),
            Self::EmptyInNamespace {
                label,
                namespace,
                granted,
            } => {
                write!(f, "the query returned no series with {label}=\"{namespace}\"")?;
                if !granted.is_empty() {
                    write!(
                        f,
                        ", nor of the namespaces granted to it ({})",
                        granted.join(", ")
                    )?;
                }
                write!(
                    f,
                    ": a policy reads only its own namespace's series, and a series without the {label} label is no namespace's; where this server keeps the namespace in another label (such as kubernetes_namespace, or a tenant label), the operator names it (--prometheus-namespace-label, or namespaceLabel in the allow-list file)"
                )
            }
            Self::Stale {
                age: Some(age),
                limit,
            } => write!(
                f,
                "the newest sample is {} old, older than the staleness limit of {}",
                text::duration(*age, Resolution::Fine),
                text::duration(*limit, Resolution::Fine)
            ),
            Self::Stale { age: None, .. } => f.write_str(
                "no current sample: every series behind the value vanished (marked stale) or is older than the server's lookback",
            ),
            Self::NoReadyPod(message) => f.write_str(message),
            Self::Invalid(invalid) => invalid.fmt(f),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NaN => f.write_str("the value is NaN (such as 0/0, or a quantile with no data)"),
            Self::Infinite(v) => write!(f, "the value is {v} (a division by zero?)"),
            Self::Negative { value, source } => write!(
                f,
                "the value {value} is negative, which a {} metric cannot be",
                source.as_str()
            ),
            Self::Series(n) => write!(
                f,
                "the query returned {n} series; it must yield exactly one number (aggregate it, such as with sum())"
            ),
            Self::NotANumber(kind) => write!(f, "the query returned a {kind}, not one number"),
            Self::TooLarge { limit } => write!(
                f,
                "the answer exceeds {} (--prometheus-max-answer-bytes); a query for one number answers a few hundred bytes",
                limits::size(*limit)
            ),
            Self::TooManySeries { limit } => write!(
                f,
                "the answer holds more than {limit} series (--prometheus-max-series); the query must yield exactly one number (aggregate it, such as with sum())"
            ),
            Self::TooManyPods { limit } => write!(
                f,
                "the namespace has more than {limit} pods with usage series (--prometheus-max-pod-series)"
            ),
            Self::NoPodLabel => f.write_str(
                "a usage series has no pod label: the usage metric must carry cAdvisor's namespace and pod labels (or set podSelector to read it as written)",
            ),
            Self::Request(message) => f.write_str(message),
        }
    }
}

impl MetricObservation {
    /// The value, when there is one.
    pub fn value(&self) -> Option<f64> {
        self.result.as_ref().ok().map(|s| s.value)
    }

    /// The failure kind, when there is no value.
    pub fn failure_kind(&self) -> Option<FailureKind> {
        self.result.as_ref().err().map(Failure::kind)
    }
}

impl From<MetricObservation> for crate::decide::Observation {
    /// The engine's view: the value or the failure with its message, and the PromQL that ran.
    fn from(o: MetricObservation) -> Self {
        let reading = match &o.result {
            Ok(sample) => crate::decide::Reading::Value(sample.value),
            Err(failure) => crate::decide::Reading::failed(
                failure.kind(),
                truncate_message(failure.to_string()),
            ),
        };
        crate::decide::Observation {
            name: o.name,
            reading,
            query: Some(o.query),
            pods: o.pods,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::{Observation, Reading};

    #[test]
    fn nothing_found_names_every_namespace_the_query_may_read() {
        let own = Failure::EmptyInNamespace {
            label: "namespace".into(),
            namespace: "shop".into(),
            granted: vec![],
        };
        assert!(
            own.to_string()
                .starts_with(r#"the query returned no series with namespace="shop": "#),
            "{own}"
        );
        let granted = Failure::EmptyInNamespace {
            label: "namespace".into(),
            namespace: "shop".into(),
            granted: vec!["broker".into(), "billing".into()],
        };
        let message = granted.to_string();
        assert!(
            message.starts_with(
                r#"the query returned no series with namespace="shop", nor of the namespaces granted to it (broker, billing): "#
            ),
            "{message}"
        );
        assert_eq!(granted.kind(), FailureKind::Empty);
    }

    #[test]
    fn a_value_becomes_an_engine_observation_carrying_its_query() {
        let o = MetricObservation {
            name: "cpu".into(),
            query: "vector(1)".into(),
            age_query: None,
            result: Ok(Sample {
                value: 75.0,
                age: None,
            }),
            pods: None,
        };
        assert_eq!(
            Observation::from(o),
            Observation {
                name: "cpu".into(),
                reading: Reading::Value(75.0),
                query: Some("vector(1)".into()),
                pods: None,
            }
        );
    }

    #[test]
    fn a_failure_becomes_the_same_failure_kind_with_its_message() {
        let o = MetricObservation {
            name: "lag".into(),
            query: "q".into(),
            age_query: Some("a".into()),
            result: Err(Failure::Stale {
                age: Some(Duration::from_secs(95)),
                limit: Duration::from_secs(90),
            }),
            pods: None,
        };
        assert_eq!(
            Observation::from(o).reading,
            Reading::failed(
                FailureKind::Stale,
                "the newest sample is 1m35s old, older than the staleness limit of 1m30s"
            )
        );
    }

    #[test]
    fn each_failure_maps_to_its_kind() {
        assert_eq!(
            Failure::Unavailable("x".into()).kind(),
            FailureKind::Unavailable
        );
        assert_eq!(Failure::Empty.kind(), FailureKind::Empty);
        assert_eq!(Failure::Invalid(Invalid::NaN).kind(), FailureKind::Invalid);
        assert_eq!(
            Failure::Invalid(Invalid::Series(2)).to_string(),
            "the query returned 2 series; it must yield exactly one number (aggregate it, such as with sum())"
        );
    }
}
