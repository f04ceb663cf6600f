//! `spec.forecast` in the controller: each policy's history read from Prometheus at most once per
//! `refresh`, and the forecast assessed from it at every evaluation.
//!
//! The history kept here is a cache of what Prometheus holds, not state: a restarted replica, or
//! one that takes the policy over, reads it again and computes the same accuracy from it (what
//! the forecast would have said for each point of the trailing window). Each policy's history
//! is at most [`crate::api::limits::MAX_FORECAST_POINTS`] points (16 bytes each).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::reflector::ObjectRef;

use super::observe::Observe;
use crate::api::{ForecastRule, ForecastStatus, ScalingPolicy, forecast_state};
use crate::decide::Floor;
use crate::decide::forecast::{self, Accuracy, History, floor, mode, status_of};
use crate::metrics::QueryPlan;
use crate::metrics::range::Span;
use crate::pods::TargetPods;

/// A history read, or why it could not be.
#[derive(Clone, Debug)]
struct Entry {
    /// A hash of what was read: the PromQL and the rule (a changed spec reads again).
    key: u64,
    read_at: Timestamp,
    /// The history, with its accuracy measured at its end.
    history: Result<(Arc<History>, Accuracy), String>,
}

/// How soon a history read that failed is tried again (at `refresh` when that is sooner): a
/// Prometheus blip keeps the forecast out of the decision for a minute, not for a whole refresh.
pub const RETRY_FAILED_READ: SignedDuration = SignedDuration::from_secs(60);

impl Entry {
    /// How long the read is used before the next: `refresh`, or less after a failure.
    fn kept_for(&self, rule: &ForecastRule) -> SignedDuration {
        match self.history {
            Ok(_) => rule.refresh,
            Err(_) => rule.refresh.min(RETRY_FAILED_READ),
        }
    }
}

/// Every policy's last history read.
#[derive(Debug, Default)]
pub struct Forecasts {
    entries: Mutex<HashMap<ObjectRef<ScalingPolicy>, Entry>>,
}

/// The forecast at one evaluation, before the decision.
#[derive(Clone, Debug)]
pub struct Assessed {
    /// The floor handed to the engine (Ready only).
    pub floor: Option<Floor>,
    /// The status the evaluation records, completed with the decision by [`record`].
    pub status: ForecastStatus,
}

impl Forecasts {
    /// Forgets `policy`'s history (deleted, or another replica's now).
    pub fn forget(&self, policy: &ObjectRef<ScalingPolicy>) {
        self.lock().remove(policy);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<ScalingPolicy>, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The forecast of `rule` at `now`: the history read again when it is `refresh` old (or the
    /// spec changed), assessed looking a start-up delay ahead.
    pub async fn assess(
        &self,
        observer: &dyn Observe,
        policy: &ObjectRef<ScalingPolicy>,
        plan: &QueryPlan,
        rule: &ForecastRule,
        pods: Option<&TargetPods>,
        now: Timestamp,
    ) -> Assessed {
        let key = key_of(plan, rule);
        let cached = self.lock().get(policy).cloned();
        let entry = match cached {
            Some(e) if e.key == key && now < add(e.read_at, e.kept_for(rule)) => e,
            _ => {
                let span = span_of(rule, now);
                let history = observer.history(plan, &rule.metric, span).await.map(|h| {
                    let accuracy = forecast::measure(&h, rule, span.to);
                    (Arc::new(h), accuracy)
                });
                let entry = Entry {
                    key,
                    read_at: now,
                    history,
                };
                self.lock().insert(policy.clone(), entry.clone());
                entry
            }
        };
        let (horizon, source) = horizon(rule, pods);
        let read = Some(Time(entry.read_at));
        match &entry.history {
            Err(why) => Assessed {
                floor: None,
                status: ForecastStatus {
                    mode: mode(rule).to_owned(),
                    state: forecast_state::FAILED.to_owned(),
                    max_error: rule.max_error,
                    horizon_seconds: horizon.as_secs(),
                    horizon_source: source.to_owned(),
                    history_read_time: read,
                    message: format!("the history could not be read: {why}"),
                    ..ForecastStatus::default()
                },
            },
            Ok((history, accuracy)) => {
                let a =
                    forecast::assess_measured(history, rule, now.as_second(), horizon, accuracy);
                let since = history
                    .oldest()
                    .and_then(|t| Timestamp::from_second(t).ok())
                    .map(Time);
                Assessed {
                    floor: floor(&a, rule),
                    status: status_of(&a, rule, source, read, since),
                }
            }
        }
    }
}

/// How far ahead the forecast looks ([`forecast::horizon`]), measured on the target's Ready
/// pods: the longest time from a pod's start to its Ready (at most an hour).
pub fn horizon(rule: &ForecastRule, pods: Option<&TargetPods>) -> (SignedDuration, &'static str) {
    let measured = pods
        .into_iter()
        .flat_map(|p| p.pods.iter())
        .filter_map(|p| {
            let ready = p.ready.as_ref().filter(|r| r.status)?;
            let took = ready.since?.duration_since(p.start_time?);
            (took >= SignedDuration::ZERO && took <= SignedDuration::from_hours(1)).then_some(took)
        })
        .max()
        .map(|took| {
            (
                SignedDuration::from_secs(took.as_secs()),
                "the target's pods (longest start to Ready)",
            )
        });
    forecast::horizon(rule, measured)
}

/// The span one read covers, ending at the whole step at or before `now`.
pub fn span_of(rule: &ForecastRule, now: Timestamp) -> Span {
    let step = rule.step.as_secs().max(1);
    let to = now.as_second().div_euclid(step).saturating_mul(step);
    Span {
        from: to.saturating_sub(rule.history_span().as_secs()),
        to,
        step,
    }
}

fn key_of(plan: &QueryPlan, rule: &ForecastRule) -> u64 {
    let mut h = DefaultHasher::new();
    plan.metrics
        .iter()
        .find(|m| m.name == rule.metric)
        .map(|m| m.standalone_promql())
        .hash(&mut h);
    plan.address.hash(&mut h);
    format!("{rule:?}").hash(&mut h);
    h.finish()
}

fn add(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use futures::future::BoxFuture;
    use serde_json::json;

    use super::*;
    use crate::api::{FieldError, Policy, ScalingPolicySpec};
    use crate::decide::Observation;

    /// A reader whose history reads are counted, answer a flat 250 requests/s, and fail with
    /// HTTP 503 while `failing` is set.
    #[derive(Default)]
    struct Reader {
        reads: AtomicUsize,
        failing: AtomicBool,
    }

    impl Observe for Reader {
        fn check(&self, _namespace: &str, _address: Option<&str>) -> Vec<FieldError> {
            Vec::new()
        }
        fn observe<'a>(
            &'a self,
            _plan: &'a QueryPlan,
            _at: Option<Timestamp>,
            _pods: Result<&'a TargetPods, &'a str>,
        ) -> BoxFuture<'a, Vec<Observation>> {
            Box::pin(async { Vec::new() })
        }
        fn history<'a>(
            &'a self,
            _plan: &'a QueryPlan,
            _name: &'a str,
            span: Span,
        ) -> BoxFuture<'a, Result<History, String>> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let failing = self.failing.load(Ordering::SeqCst);
            Box::pin(async move {
                if failing {
                    return Err("HTTP 503 from the server".to_owned());
                }
                let mut h = History::new(span.from, span.step);
                h.values = vec![Some(250.0); span.points()];
                Ok(h)
            })
        }
    }

    fn policy(refresh: &str) -> Policy {
        let spec: ScalingPolicySpec = serde_json::from_value(json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 10,
            "metrics": [{"name": "requests", "query": "sum(rate(http_requests_total[1m]))",
                "targetPerReplica": 100}],
            "forecast": {"metric": "requests", "seasons": ["10m"], "step": "1m",
                "refresh": refresh, "accuracyWindow": "10m", "startupDelay": "30s"},
        }))
        .unwrap();
        Policy::resolve(&spec).unwrap()
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000_i64.saturating_add(seconds)).unwrap()
    }

    async fn assess(
        forecasts: &Forecasts,
        reader: &Reader,
        policy: &Policy,
        now: Timestamp,
    ) -> Assessed {
        let plan = QueryPlan::new("shop", policy).unwrap();
        let rule = policy.forecast.as_ref().unwrap();
        let object = ObjectRef::new("web").within("shop");
        forecasts
            .assess(reader, &object, &plan, rule, None, now)
            .await
    }

    #[tokio::test]
    async fn the_history_is_read_once_per_refresh_and_again_when_the_spec_changes() {
        let (forecasts, reader) = (Forecasts::default(), Reader::default());
        let every_10m = policy("10m");
        let first = assess(&forecasts, &reader, &every_10m, at(0)).await;
        assert_eq!(first.status.state, "Ready", "{:?}", first.status);
        assert_eq!(first.floor.map(|f| f.replicas), Some(3), "ceil(250 / 100)");
        assess(&forecasts, &reader, &every_10m, at(599)).await;
        assert_eq!(reader.reads.load(Ordering::SeqCst), 1, "within the refresh");
        assess(&forecasts, &reader, &every_10m, at(600)).await;
        assert_eq!(reader.reads.load(Ordering::SeqCst), 2, "a refresh later");
        assess(&forecasts, &reader, &policy("20m"), at(601)).await;
        assert_eq!(
            reader.reads.load(Ordering::SeqCst),
            3,
            "a changed spec reads again"
        );
        forecasts.forget(&ObjectRef::new("web").within("shop"));
        assess(&forecasts, &reader, &policy("20m"), at(602)).await;
        assert_eq!(
            reader.reads.load(Ordering::SeqCst),
            4,
            "a forgotten policy reads again"
        );
    }

    #[tokio::test]
    async fn a_failed_read_has_no_say_and_is_tried_again_a_minute_later_not_a_refresh_later() {
        let (forecasts, reader) = (Forecasts::default(), Reader::default());
        let p = policy("10m");
        reader.failing.store(true, Ordering::SeqCst);
        let failed = assess(&forecasts, &reader, &p, at(0)).await;
        assert_eq!(failed.status.state, "Failed");
        assert!(failed.floor.is_none());
        assert!(
            failed.status.message.contains("HTTP 503 from the server"),
            "{}",
            failed.status.message
        );
        reader.failing.store(false, Ordering::SeqCst);
        let still = assess(&forecasts, &reader, &p, at(59)).await;
        assert_eq!(
            (
                still.status.state.as_str(),
                reader.reads.load(Ordering::SeqCst)
            ),
            ("Failed", 1),
            "not tried again within the minute"
        );
        let again = assess(&forecasts, &reader, &p, at(60)).await;
        assert_eq!(reader.reads.load(Ordering::SeqCst), 2);
        assert_eq!(again.status.state, "Ready", "{:?}", again.status);
    }
}
