//! Backtest mode: each metric's history from Prometheus range queries (`/api/v1/query_range`,
//! the same PromQL the controller runs, from [`QueryPlan`]), replayed through an autoscaler.
//!
//! The evaluations run every `interval` of the policy from `--from` to `--to`; each reads the
//! range query's point at the latest step at or before it. A step with no point is `empty`, a step
//! with several series `invalid`, like the controller's instant queries (the age of samples is not
//! judged: a range query only returns points within the server's lookback). The replica count
//! starts at `--initial-replicas` and follows the autoscaler's own decisions, applied at once.
//!
//! **History cannot show feedback.** The metrics are what happened with the replicas that actually
//! ran, not with the ones the policy would have chosen; the result is what the policy would have
//! asked for, not how the service would have fared.

use prometheus_http_query::response::Data;

use super::autoscaler::{Autoscaler, Evaluation};
use super::error::SimulateError;
use super::model::Pod;
use super::report::{Accumulator, Row, Run};
use super::run::timestamp;
use crate::api::FailureKind;
use crate::decide::{Observation, Reading};
use crate::metrics::{QueryPlan, ServerConfig, SourceKind};

/// What Prometheus allows per series and query (11,000), with room to spare.
pub const MAX_POINTS_PER_QUERY: i64 = 10_000;

/// The period of a backtest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Unix seconds.
    pub from: i64,
    /// Unix seconds, included.
    pub to: i64,
    /// Seconds between points of the range queries.
    pub step: i64,
}

impl Window {
    /// Checks the window; messages name the flags.
    pub fn check(&self) -> Result<(), SimulateError> {
        if self.step < 1 {
            return Err(SimulateError::Parameter(format!(
                "--step must be at least 1s, got {}s",
                self.step
            )));
        }
        if self.to <= self.from {
            return Err(SimulateError::Parameter(format!(
                "--to ({}) must be after --from ({})",
                timestamp(self.to),
                timestamp(self.from)
            )));
        }
        Ok(())
    }

    /// Points in the window: `from`, `from + step`, ... up to `to`.
    pub fn points(&self) -> usize {
        usize::try_from((self.to - self.from) / self.step + 1).unwrap_or(0)
    }
}

/// The history of one metric: a reading per point of the window.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricHistory {
    pub name: String,
    pub query: String,
    pub readings: Vec<Reading>,
}

/// Every metric's history over a window.
#[derive(Clone, Debug, PartialEq)]
pub struct History {
    pub window: Window,
    pub metrics: Vec<MetricHistory>,
}

impl History {
    /// The readings at `t`: each metric's point at the latest step at or before `t`.
    pub fn at(&self, t: i64) -> Vec<Observation> {
        let index = usize::try_from((t - self.window.from).div_euclid(self.window.step)).ok();
        self.metrics
            .iter()
            .map(|m| Observation {
                name: m.name.clone(),
                reading: index
                    .and_then(|i| m.readings.get(i))
                    .cloned()
                    .unwrap_or_else(|| {
                        Reading::failed(FailureKind::Empty, "outside the backtest window")
                    }),
                query: Some(m.query.clone()),
                pods: None,
            })
            .collect()
    }
}

/// Reads every metric of `plan` over `window` from `server` with range queries through `http`
/// (split so that no query asks for more than [`MAX_POINTS_PER_QUERY`] points). `progress` is
/// told of each query done.
pub async fn fetch(
    http: &reqwest::Client,
    server: &ServerConfig,
    plan: &QueryPlan,
    window: Window,
    progress: &mut dyn FnMut(u64),
) -> Result<History, SimulateError> {
    let base = server.url.as_str();
    let headers = server.access.headers().map_err(SimulateError::Server)?;
    let client = prometheus_http_query::Client::from(http.clone(), base).map_err(|source| {
        SimulateError::Client {
            url: base.to_owned(),
            source,
        }
    })?;
    let points = window.points();
    let mut metrics = Vec::with_capacity(plan.metrics.len());
    for m in &plan.metrics {
        let mut counts = vec![0usize; points];
        let mut values = vec![f64::NAN; points];
        let mut chunk_start = window.from;
        while chunk_start <= window.to {
            let chunk_end = window
                .to
                .min(chunk_start + (MAX_POINTS_PER_QUERY - 1) * window.step);
            let mut request = client.query_range(
                m.standalone_promql(),
                chunk_start,
                chunk_end,
                window.step as f64,
            );
            for (name, value) in &headers {
                request = request.header(name.clone(), value.clone());
            }
            let answer = request
                .get()
                .await
                .map_err(|source| SimulateError::RangeQuery {
                    metric: m.name.clone(),
                    url: base.to_owned(),
                    query: m.standalone_promql().to_owned(),
                    source,
                })?;
            let Data::Matrix(series) = answer.data() else {
                return Err(SimulateError::NotRangeVector {
                    metric: m.name.clone(),
                    url: base.to_owned(),
                    query: m.standalone_promql().to_owned(),
                });
            };
            for s in series {
                for sample in s.samples() {
                    let offset = (sample.timestamp() - window.from as f64) / window.step as f64;
                    let index = offset.round();
                    if index < 0.0 || index >= points as f64 {
                        continue;
                    }
                    let index = index as usize;
                    counts[index] += 1;
                    values[index] = sample.value();
                }
            }
            progress(1);
            chunk_start = chunk_end + window.step;
        }
        let readings = counts
            .iter()
            .zip(&values)
            .map(|(&count, &value)| reading(count, value, m.kind))
            .collect();
        metrics.push(MetricHistory {
            name: m.name.clone(),
            query: m.standalone_promql().to_owned(),
            readings,
        });
    }
    Ok(History { window, metrics })
}

/// The number of range queries [`fetch`] sends.
pub fn queries(plan: &QueryPlan, window: Window) -> u64 {
    let points = i64::try_from(window.points()).unwrap_or(i64::MAX);
    let per_metric = (points + MAX_POINTS_PER_QUERY - 1) / MAX_POINTS_PER_QUERY;
    u64::try_from(per_metric).unwrap_or(0) * plan.metrics.len() as u64
}

/// A point as the engine reads it, judged as the controller judges an instant query's answer.
fn reading(series: usize, value: f64, kind: SourceKind) -> Reading {
    match series {
        0 => Reading::failed(
            FailureKind::Empty,
            "the query returned no series at this time",
        ),
        1 if value.is_nan() => Reading::failed(FailureKind::Invalid, "the value is NaN"),
        1 if value.is_infinite() => {
            Reading::failed(FailureKind::Invalid, format!("the value is {value}"))
        }
        1 if value < 0.0 && !kind.allows_negative() => Reading::failed(
            FailureKind::Invalid,
            format!(
                "the value {value} is negative, which a {} metric cannot be",
                kind.as_str()
            ),
        ),
        1 => Reading::Value(value),
        n => Reading::failed(
            FailureKind::Invalid,
            format!("the query returned {n} series; it must yield exactly one number"),
        ),
    }
}

/// Replays `history` through `autoscaler`, starting with `initial` replicas. `load` names the
/// metric whose value is the load column (a `requestRate` metric), when there is one; `limit`
/// is the policy's maxReplicas.
pub fn replay(
    history: &History,
    autoscaler: &mut dyn Autoscaler,
    initial: i32,
    limit: i32,
    load: Option<&str>,
) -> Run {
    let window = history.window;
    let interval = autoscaler.interval().max(1);
    let label = autoscaler.label().to_owned();
    let mut totals = Accumulator::new(&label, limit, false);
    let mut rows = Vec::new();
    let mut current = initial;
    let mut t = window.from;
    while t <= window.to {
        let observations = history.at(t);
        let pods = vec![Pod::established(t); usize::try_from(current).unwrap_or(0)];
        let outcome = autoscaler.evaluate(&Evaluation {
            now: timestamp(t),
            current,
            ready: current,
            pods: &pods,
            observations: &observations,
            startup_delay: None,
        });
        if outcome.desired != current {
            totals.action();
        }
        let lasts = interval.min(window.to - t);
        totals.span(outcome.desired, lasts, 0);
        let load = load.and_then(|name| {
            observations
                .iter()
                .find(|o| o.name == name)
                .and_then(|o| match o.reading {
                    Reading::Value(v) => Some(v),
                    Reading::Failed { .. } => None,
                })
        });
        rows.push(Row {
            time: t,
            load,
            ready: current,
            current,
            desired: outcome.desired,
            observations,
            queue: None,
            action: outcome.action,
            reason: outcome.reason,
        });
        current = outcome.desired;
        t += interval;
    }
    Run {
        label,
        rows,
        summary: totals.finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_reads_like_an_instant_query_answer() {
        assert_eq!(reading(1, 2.5, SourceKind::Cpu), Reading::Value(2.5));
        assert_eq!(
            reading(0, f64::NAN, SourceKind::Cpu),
            Reading::failed(
                FailureKind::Empty,
                "the query returned no series at this time"
            )
        );
        assert_eq!(
            reading(2, 1.0, SourceKind::Query),
            Reading::failed(
                FailureKind::Invalid,
                "the query returned 2 series; it must yield exactly one number"
            )
        );
        assert_eq!(reading(1, -1.0, SourceKind::Query), Reading::Value(-1.0));
        assert!(matches!(
            reading(1, -1.0, SourceKind::Cpu),
            Reading::Failed {
                kind: FailureKind::Invalid,
                ..
            }
        ));
    }

    #[test]
    fn an_evaluation_reads_the_latest_point_at_or_before_it() {
        let history = History {
            window: Window {
                from: 100,
                to: 130,
                step: 10,
            },
            metrics: vec![MetricHistory {
                name: "m".into(),
                query: "q".into(),
                readings: vec![
                    Reading::Value(1.0),
                    Reading::Value(2.0),
                    Reading::Value(3.0),
                    Reading::Value(4.0),
                ],
            }],
        };
        assert_eq!(history.window.points(), 4);
        assert_eq!(history.at(100)[0].reading, Reading::Value(1.0));
        assert_eq!(history.at(119)[0].reading, Reading::Value(2.0));
        assert_eq!(history.at(130)[0].reading, Reading::Value(4.0));
        assert!(matches!(history.at(99)[0].reading, Reading::Failed { .. }));
    }
}
