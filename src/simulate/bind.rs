//! Which output of the service model each metric of a policy reads, and its value over the
//! metric's window.
//!
//! | metric kind | model output |
//! |---|---|
//! | `cpu` | CPU usage over the requests of every replica, ready or starting: `100 * Σλ / Σ(n * capacity)` (0 usage without a ready replica) |
//! | `latency` (quantile `q`) | the `q`-quantile of the latency, averaged over the window weighted by requests |
//! | `errorRate` | the window's dropped requests over its arrivals (0 without arrivals) |
//! | `requestRate` | the window's mean arrival rate |
//! | `memory`, `query` | none: refused unless mapped with `--map NAME=SOURCE` |
//!
//! The window is the metric's `window` (default `2m`), the range of the `rate()` its PromQL
//! would run, so the policy sees the same smoothing and lag it would in production. `--map NAME=queue`
//! reads the number of waiting requests at the evaluation (a gauge, not averaged); a metric mapped
//! to `latency` that has no quantile of its own reads the p95.

use std::collections::VecDeque;

use super::error::SimulateError;
use super::hpa::{self, HpaSpec};
use super::model::Second;
use crate::api::{FailureKind, MetricRule, Source};
use crate::decide::{Observation, Reading};

/// The quantile a metric mapped to `latency` reads when it has none of its own.
pub const DEFAULT_MAPPED_QUANTILE: f64 = 0.95;

/// An output of the service model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ModelMetric {
    /// Usage over the requests of every replica (the PromQL of a `cpu` metric).
    Cpu,
    /// Usage over the requests of the ready replicas (metrics-server's utilization, which the
    /// HPA reads).
    ReadyCpu,
    Latency {
        quantile: f64,
    },
    ErrorRate,
    RequestRate,
    Queue,
}

impl ModelMetric {
    /// The output's name, as `--map` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu | Self::ReadyCpu => "cpu",
            Self::Latency { .. } => "latency",
            Self::ErrorRate => "errorRate",
            Self::RequestRate => "requestRate",
            Self::Queue => "queue",
        }
    }

    /// What `--map` accepts.
    pub const NAMES: &'static str = "cpu|latency|errorRate|requestRate|queue";
}

/// One metric of the policy bound to a model output.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricBinding {
    /// The metric's name in the spec.
    pub name: String,
    pub source: ModelMetric,
    /// Seconds of model history the value is computed over.
    pub window: usize,
}

impl MetricBinding {
    /// The value the policy reads at the end of `history` (oldest second first).
    pub fn observe(&self, history: &VecDeque<Second>) -> Observation {
        let skip = history.len().saturating_sub(self.window);
        let window = history.iter().skip(skip);
        let reading = match self.source {
            ModelMetric::Cpu => {
                let (usage, requested) =
                    window.fold((0.0, 0.0), |(u, r), s| (u + s.usage(), r + s.requested));
                if requested > 0.0 {
                    Reading::Value(100.0 * usage / requested)
                } else {
                    Reading::failed(
                        FailureKind::Empty,
                        "no replica in the window: no pod reports CPU requests",
                    )
                }
            }
            ModelMetric::ReadyCpu => {
                let (load, capacity) = window
                    .filter(|s| s.capacity > 0.0)
                    .fold((0.0, 0.0), |(l, c), s| (l + s.load, c + s.capacity));
                if capacity > 0.0 {
                    Reading::Value(100.0 * load / capacity)
                } else {
                    Reading::failed(
                        FailureKind::Empty,
                        "no ready replica in the window: no pod reports CPU usage",
                    )
                }
            }
            ModelMetric::Latency { quantile } => {
                let (weighted, requests) = window
                    .filter_map(|s| s.latency(quantile).map(|l| (l, s.load)))
                    .fold((0.0, 0.0), |(w, r), (l, load)| (w + l * load, r + load));
                if requests > 0.0 {
                    Reading::Value(weighted / requests)
                } else {
                    Reading::failed(
                        FailureKind::Invalid,
                        "no request was served in the window: the quantile is NaN",
                    )
                }
            }
            ModelMetric::ErrorRate => {
                let (dropped, load) =
                    window.fold((0.0, 0.0), |(d, l), s| (d + s.dropped, l + s.load));
                Reading::Value(if load > 0.0 { dropped / load } else { 0.0 })
            }
            ModelMetric::RequestRate => {
                let (sum, n) = window.fold((0.0, 0usize), |(sum, n), s| (sum + s.load, n + 1));
                if n > 0 {
                    Reading::Value(sum / n as f64)
                } else {
                    Reading::failed(FailureKind::Empty, "no data yet")
                }
            }
            ModelMetric::Queue => match history.back() {
                Some(s) => Reading::Value(s.queue),
                None => Reading::failed(FailureKind::Empty, "no data yet"),
            },
        };
        let reading = match reading {
            Reading::Value(_) if history.is_empty() => {
                Reading::failed(FailureKind::Empty, "no data yet")
            }
            other => other,
        };
        Observation {
            name: self.name.clone(),
            reading,
            query: None,
            pods: None,
        }
    }
}

/// Parses `--map NAME=SOURCE` flags.
pub fn parse_maps(flags: &[String]) -> Result<Vec<(String, ModelMetric)>, SimulateError> {
    let mut maps: Vec<(String, ModelMetric)> = Vec::new();
    for flag in flags {
        let Some((name, source)) = flag.split_once('=') else {
            return Err(SimulateError::Binding(format!(
                "--map {flag:?}: expected NAME={}",
                ModelMetric::NAMES
            )));
        };
        let source = match source {
            "cpu" => ModelMetric::Cpu,
            "latency" => ModelMetric::Latency {
                quantile: DEFAULT_MAPPED_QUANTILE,
            },
            "errorRate" => ModelMetric::ErrorRate,
            "requestRate" => ModelMetric::RequestRate,
            "queue" => ModelMetric::Queue,
            other => {
                return Err(SimulateError::Binding(format!(
                    "--map {flag:?}: the model has no output {other:?}; it has {}",
                    ModelMetric::NAMES
                )));
            }
        };
        if maps.iter().any(|(n, _)| n == name) {
            return Err(SimulateError::Binding(format!(
                "--map {name}=... is given twice"
            )));
        }
        maps.push((name.to_owned(), source));
    }
    Ok(maps)
}

/// Binds every metric of a policy to a model output. A metric the model cannot produce (`memory`,
/// a custom `query`) is an error unless `maps` names it; a map naming no metric of the policy is
/// an error too.
pub fn bind(
    metrics: &[MetricRule],
    maps: &[(String, ModelMetric)],
) -> Result<Vec<MetricBinding>, SimulateError> {
    for (name, _) in maps {
        if !metrics.iter().any(|m| &m.name == name) {
            let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
            return Err(SimulateError::Binding(format!(
                "--map {name}=...: the policy has no metric {name:?} (its metrics: {})",
                names.join(", ")
            )));
        }
    }
    let mut bindings = Vec::with_capacity(metrics.len());
    let mut refused = Vec::new();
    for m in metrics {
        let mapped = maps.iter().find(|(n, _)| n == &m.name).map(|(_, s)| *s);
        let source = match (mapped, &m.source) {
            (Some(ModelMetric::Latency { .. }), Source::Latency(l)) => Some(ModelMetric::Latency {
                quantile: l.quantile,
            }),
            (Some(source), _) => Some(source),
            (None, source) => native_source(source),
        };
        match source {
            Some(source) => bindings.push(MetricBinding {
                name: m.name.clone(),
                source,
                window: window_seconds(m),
            }),
            None => refused.push(format!(
                "metric {:?} ({}) cannot be produced by the service model; map it to a model output with --map {}={}",
                m.name,
                kind_of(&m.source),
                m.name,
                ModelMetric::NAMES
            )),
        }
    }
    if refused.is_empty() {
        Ok(bindings)
    } else {
        Err(SimulateError::Binding(refused.join("\n")))
    }
}

/// The bindings the HPA baseline `hpa` reads: the policy's, except that the CPU of the metric it
/// tracks is the ready pods' utilization, as metrics-server reports it (the HPA itself accounts
/// for the pods not ready yet); an HPA at a fixed CPU target ([`hpa::OWN_CPU`]) reads that CPU
/// of its own besides, over its window.
pub fn for_hpa(bindings: &[MetricBinding], hpa: &HpaSpec) -> Vec<MetricBinding> {
    let mut own: Vec<MetricBinding> = bindings
        .iter()
        .map(|b| MetricBinding {
            source: match b.source {
                ModelMetric::Cpu if b.name == hpa.metric => ModelMetric::ReadyCpu,
                other => other,
            },
            ..b.clone()
        })
        .collect();
    if hpa.metric == hpa::OWN_CPU {
        own.push(MetricBinding {
            name: hpa::OWN_CPU.to_owned(),
            source: ModelMetric::ReadyCpu,
            window: usize::try_from(hpa.window).unwrap_or(1).max(1),
        });
    }
    own
}

/// The model output a metric's own source reads, if the model produces it.
fn native_source(source: &Source) -> Option<ModelMetric> {
    match source {
        Source::Cpu(_) => Some(ModelMetric::Cpu),
        Source::Latency(l) => Some(ModelMetric::Latency {
            quantile: l.quantile,
        }),
        Source::ErrorRate(_) => Some(ModelMetric::ErrorRate),
        Source::RequestRate(_) => Some(ModelMetric::RequestRate),
        Source::Memory(_) | Source::Query(_) => None,
    }
}

/// The spec's name of a metric's source, for messages.
pub fn kind_of(source: &Source) -> &'static str {
    match source {
        Source::Query(_) => "a custom query",
        other => other.kind().as_str(),
    }
}

/// The metric's window in whole seconds (at least 1).
pub fn window_seconds(m: &MetricRule) -> usize {
    usize::try_from(m.window.as_secs())
        .unwrap_or(usize::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Policy, ScalingPolicySpec};

    /// The resolved metrics of a policy with `metrics`.
    fn spec(metrics: &str) -> Policy {
        let spec: ScalingPolicySpec = serde_yaml_ng::from_str(&format!(
            "targetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}\nminReplicas: 1\nmaxReplicas: 5\nmetrics:\n{metrics}"
        ))
        .unwrap();
        Policy::resolve(&spec).unwrap()
    }

    #[test]
    fn a_custom_query_is_refused_unless_mapped() {
        let s = spec(
            "  - {name: cpu, cpu: {}, target: 60}\n  - {name: backlog, query: 'sum(q)', targetPerReplica: 10}\n",
        );
        let error = bind(&s.metrics, &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "metric \"backlog\" (a custom query) cannot be produced by the service model; map it to a model output with --map backlog=cpu|latency|errorRate|requestRate|queue"
        );
        let maps = parse_maps(&["backlog=queue".to_owned()]).unwrap();
        let bindings = bind(&s.metrics, &maps).unwrap();
        assert_eq!(bindings[0].source, ModelMetric::Cpu);
        assert_eq!(bindings[0].window, 120);
        assert_eq!(bindings[1].source, ModelMetric::Queue);
    }

    #[test]
    fn a_map_must_name_a_metric_and_an_output() {
        let s = spec("  - {name: cpu, cpu: {}, target: 60}\n");
        let maps = parse_maps(&["cpux=cpu".to_owned()]).unwrap();
        assert_eq!(
            bind(&s.metrics, &maps).unwrap_err().to_string(),
            "--map cpux=...: the policy has no metric \"cpux\" (its metrics: cpu)"
        );
        assert_eq!(
            parse_maps(&["cpu=memory".to_owned()])
                .unwrap_err()
                .to_string(),
            "--map \"cpu=memory\": the model has no output \"memory\"; it has cpu|latency|errorRate|requestRate|queue"
        );
    }

    fn second(load: f64, capacity: f64, dropped: f64) -> Second {
        Second {
            load,
            served: load - dropped,
            dropped,
            queue: 0.0,
            capacity,
            requested: 2.0 * capacity,
            ready: 1,
            pods: 2,
            latency: None,
            quantiles: Vec::new(),
        }
    }

    #[test]
    fn values_are_ratios_of_sums_over_the_window() {
        let history: VecDeque<Second> = [
            second(1000.0, 100.0, 500.0), // outside a 2-second window
            second(100.0, 200.0, 0.0),
            second(300.0, 200.0, 40.0),
        ]
        .into_iter()
        .collect();
        let at = |source| {
            MetricBinding {
                name: "m".into(),
                source,
                window: 2,
            }
            .observe(&history)
            .reading
        };
        // 400 over 2 * 400 requested; 400 over 400 ready.
        assert_eq!(at(ModelMetric::Cpu), Reading::Value(50.0));
        assert_eq!(at(ModelMetric::ReadyCpu), Reading::Value(100.0));
        assert_eq!(at(ModelMetric::ErrorRate), Reading::Value(0.1));
        assert_eq!(at(ModelMetric::RequestRate), Reading::Value(200.0));
    }
}
