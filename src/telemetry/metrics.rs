//! The operator's own Prometheus metrics.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::policy::{Policy, Rule};
use crate::api::{Action, FailureKind};
use crate::decide::{Decision, Reading};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    /// intent, scale or status.
    write: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricLabels {
    namespace: String,
    name: String,
    metric: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BoundLabels {
    namespace: String,
    name: String,
    metric: String,
    /// scale_out_above, scale_in_below, target or target_per_replica.
    bound: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The per-metric label sets written for one policy: values and bounds.
type WrittenSeries = (Vec<MetricLabels>, Vec<BoundLabels>);

/// The operator's own metrics. Every label set is bounded: result categories, actions,
/// directions and failure kinds are fixed lists; per-policy series carry namespace, name and
/// metric name, and are removed with the policy.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_duration: Histogram,
    watch_errors: Counter,
    queue_wait: Histogram,
    lateness: Histogram,
    watch_failing: Gauge,
    shard_policies: Gauge,
    shard_members: Gauge,
    decisions: Family<ActionLabels, Counter>,
    scale_actions: Family<DirectionLabels, Counter>,
    intents_recovered: Family<OutcomeLabels, Counter>,
    write_conflicts: Family<WriteLabels, Counter>,
    fenced_writes: Family<WriteLabels, Counter>,
    paced_writes: Family<WriteLabels, Counter>,
    paced_seconds: Family<WriteLabels, Counter<f64, AtomicU64>>,
    status_writes: Family<OutcomeLabels, Counter>,
    query_duration: Histogram,
    query_failures: Family<FailureLabels, Counter>,
    current_replicas: Family<PolicyLabels, Gauge>,
    desired_replicas: Family<PolicyLabels, Gauge>,
    min_replicas: Family<PolicyLabels, Gauge>,
    max_replicas: Family<PolicyLabels, Gauge>,
    metric_value: Family<MetricLabels, FloatGauge>,
    metric_bound: Family<BoundLabels, FloatGauge>,
    forecast_floor: Family<PolicyLabels, Gauge>,
    /// Per policy, the metric label sets written, to remove them when the policy goes.
    written: Mutex<HashMap<PolicyLabels, WrittenSeries>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("scalewise");
        let m = Self {
            reconciles: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            watch_errors: Counter::default(),
            queue_wait: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            lateness: Histogram::new(exponential_buckets(0.001, 2.0, 18)),
            watch_failing: Gauge::default(),
            shard_policies: Gauge::default(),
            shard_members: Gauge::default(),
            decisions: Family::default(),
            scale_actions: Family::default(),
            intents_recovered: Family::default(),
            write_conflicts: Family::default(),
            fenced_writes: Family::default(),
            paced_writes: Family::default(),
            paced_seconds: Family::default(),
            status_writes: Family::default(),
            query_duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            query_failures: Family::default(),
            current_replicas: Family::default(),
            desired_replicas: Family::default(),
            min_replicas: Family::default(),
            max_replicas: Family::default(),
            metric_value: Family::default(),
            metric_bound: Family::default(),
            forecast_floor: Family::default(),
            written: Mutex::new(HashMap::new()),
            registry: Registry::default(),
        };
        registry.register(
            "evaluation_lateness_seconds",
            "How long after the time it was scheduled for (its interval after the evaluation before) an evaluation got its reconcile slot",
            m.lateness.clone(),
        );
        registry.register(
            "queue_wait_seconds",
            "Time one evaluation waited for reconcile and query slots (namespaces are served in turn)",
            m.queue_wait.clone(),
        );
        registry.register(
            "policy_watch_errors",
            "Failed lists and watches of ScalingPolicies (retried with backoff)",
            m.watch_errors.clone(),
        );
        registry.register(
            "policy_watch_failing_seconds",
            "How long the ScalingPolicy watch has failed to list without a success (0 while it works)",
            m.watch_failing.clone(),
        );
        registry.register(
            "shard_policies",
            "With sharding: the policies this replica owns (0 without sharding)",
            m.shard_policies.clone(),
        );
        registry.register(
            "shard_members",
            "With sharding: the replicas in the ring this replica adopted, itself included (0 without sharding)",
            m.shard_members.clone(),
        );
        registry.register(
            "reconciles",
            "Reconciles by result (success or an error category)",
            m.reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "decisions",
            "Decisions by action (ScaleOut, ScaleIn, Hold)",
            m.decisions.clone(),
        );
        registry.register(
            "scale_actions",
            "Changes applied to targets by direction (out, in)",
            m.scale_actions.clone(),
        );
        registry.register(
            "intents_recovered",
            "Scales recorded before they were made and found unconfirmed by a later evaluation, by what became of them (applied, not_applied, changed, replaced)",
            m.intents_recovered.clone(),
        );
        registry.register(
            "write_conflicts",
            "Writes the API server answered with a conflict (409), by write (scale, status)",
            m.write_conflicts.clone(),
        );
        registry.register(
            "fenced_writes",
            "Writes not made because this replica did not hold a valid lease, by write (intent, scale, status)",
            m.fenced_writes.clone(),
        );
        registry.register(
            "paced_writes",
            "Writes that waited their turn under --api-writes-per-second, by write (intent, scale, status, event)",
            m.paced_writes.clone(),
        );
        registry.register(
            "paced_write_wait_seconds",
            "Time writes waited under --api-writes-per-second, by write",
            m.paced_seconds.clone(),
        );
        registry.register(
            "status_writes",
            "Evaluations by what became of their status: written (outcome first, changed, history or heartbeat: why) or deferred (nothing that matters changed: remembered, written by a later evaluation or the heartbeat)",
            m.status_writes.clone(),
        );
        registry.register(
            "metric_query_duration_seconds",
            "Time one metric query took",
            m.query_duration.clone(),
        );
        registry.register(
            "metric_query_failures",
            "Metric reads that failed, by failure kind (unavailable, empty, stale, invalid)",
            m.query_failures.clone(),
        );
        registry.register(
            "policy_current_replicas",
            "The target's replicas at the last evaluation",
            m.current_replicas.clone(),
        );
        registry.register(
            "policy_desired_replicas",
            "The replicas the last decision asked for",
            m.desired_replicas.clone(),
        );
        registry.register(
            "policy_min_replicas",
            "The policy's minReplicas",
            m.min_replicas.clone(),
        );
        registry.register(
            "policy_max_replicas",
            "The policy's maxReplicas",
            m.max_replicas.clone(),
        );
        registry.register(
            "policy_forecast_floor_replicas",
            "The floor of replicas the policy's forecast set at the last decision (in shadow mode, would have set); absent while it has no say",
            m.forecast_floor.clone(),
        );
        registry.register(
            "policy_metric_value",
            "Each metric's last value (absent while it fails)",
            m.metric_value.clone(),
        );
        registry.register(
            "policy_metric_bound",
            "Each metric's thresholds or target (bound: scale_out_above, scale_in_below, target, target_per_replica)",
            m.metric_bound.clone(),
        );
        Self { registry, ..m }
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// A list or watch of ScalingPolicies failed; it has failed for `failing` without a success.
    pub fn watch_failed(&self, failing: Duration) {
        self.watch_errors.inc();
        self.watch_failing(failing);
    }

    /// How long the ScalingPolicy watch has failed without a success (zero while it works).
    pub fn watch_failing(&self, failing: Duration) {
        self.watch_failing
            .set(i64::try_from(failing.as_secs()).unwrap_or(i64::MAX));
    }

    /// With sharding: this replica owns `policies` policies in a ring of `members` replicas.
    pub fn shard(&self, policies: usize, members: usize) {
        self.shard_policies
            .set(i64::try_from(policies).unwrap_or(i64::MAX));
        self.shard_members
            .set(i64::try_from(members).unwrap_or(i64::MAX));
    }

    /// One evaluation started this long after the time it was scheduled for.
    pub fn late(&self, late: Duration) {
        self.lateness.observe(late.as_secs_f64());
    }

    /// One evaluation waited this long for reconcile and query slots.
    pub fn queued(&self, waited: Duration) {
        self.queue_wait.observe(waited.as_secs_f64());
    }

    /// The ScalingPolicy watch works again.
    pub fn watch_ok(&self) {
        self.watch_failing.set(0);
    }

    /// One reconcile ended with `result` (`success` or an error category).
    pub fn reconciled(&self, result: &str, duration: Duration) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
        self.reconcile_duration.observe(duration.as_secs_f64());
    }

    /// An intent found unconfirmed was judged: `outcome` is applied, not_applied, changed or
    /// replaced.
    pub fn intent_recovered(&self, outcome: &'static str) {
        self.intents_recovered
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// The API server answered `write` (scale or status) with a conflict.
    pub fn write_conflict(&self, write: &'static str) {
        self.write_conflicts
            .get_or_create(&WriteLabels {
                write: write.to_owned(),
            })
            .inc();
    }

    /// What became of an evaluation's status: written (and why) or deferred.
    pub fn status_write(&self, outcome: &'static str) {
        self.status_writes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// `write` (intent, scale or status) was not made: this replica did not hold a valid lease.
    pub fn fenced(&self, write: &'static str) {
        self.fenced_writes
            .get_or_create(&WriteLabels {
                write: write.to_owned(),
            })
            .inc();
    }

    /// `write` waited `wait` for its turn under the write budget.
    pub fn write_paced(&self, write: &'static str, wait: Duration) {
        let labels = WriteLabels {
            write: write.to_owned(),
        };
        self.paced_writes.get_or_create(&labels).inc();
        self.paced_seconds
            .get_or_create(&labels)
            .inc_by(wait.as_secs_f64());
    }

    /// One metric query ran.
    pub fn queried(&self, duration: Duration, failure: Option<FailureKind>) {
        self.query_duration.observe(duration.as_secs_f64());
        if let Some(kind) = failure {
            self.query_failures
                .get_or_create(&FailureLabels {
                    kind: kind.as_str().to_owned(),
                })
                .inc();
        }
    }

    /// Records a decision and the policy's gauges.
    pub fn decided(
        &self,
        namespace: &str,
        name: &str,
        policy: &Policy,
        decision: &Decision,
        applied: bool,
    ) {
        self.decisions
            .get_or_create(&ActionLabels {
                action: decision.action.as_str().to_owned(),
            })
            .inc();
        if applied {
            let direction = if decision.action == Action::ScaleOut {
                "out"
            } else {
                "in"
            };
            self.scale_actions
                .get_or_create(&DirectionLabels {
                    direction: direction.to_owned(),
                })
                .inc();
        }
        let p = PolicyLabels {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        self.current_replicas
            .get_or_create(&p)
            .set(i64::from(decision.current_replicas));
        self.desired_replicas
            .get_or_create(&p)
            .set(i64::from(decision.desired_replicas));
        self.min_replicas
            .get_or_create(&p)
            .set(i64::from(policy.min_replicas));
        self.max_replicas
            .get_or_create(&p)
            .set(i64::from(policy.max_replicas));
        match &decision.forecast {
            Some(f) => {
                self.forecast_floor
                    .get_or_create(&p)
                    .set(i64::from(f.floor));
            }
            None => {
                self.forecast_floor.remove(&p);
            }
        }

        let mut values = Vec::new();
        let mut bounds = Vec::new();
        for (outcome, rule) in decision.metrics.iter().zip(&policy.metrics) {
            let labels = MetricLabels {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                metric: outcome.name.clone(),
            };
            match outcome.reading {
                Reading::Value(v) => {
                    self.metric_value.get_or_create(&labels).set(v);
                }
                Reading::Failed { .. } => {
                    self.metric_value.remove(&labels);
                }
            }
            values.push(labels);
            let bound_values: Vec<(&str, f64)> = match rule.rule {
                Rule::Thresholds {
                    out_above,
                    in_below,
                } => {
                    let mut b = vec![("scale_out_above", out_above)];
                    if let Some(below) = in_below {
                        b.push(("scale_in_below", below));
                    }
                    b
                }
                Rule::Target(t) => vec![("target", t)],
                Rule::TargetPerReplica(t) => vec![("target_per_replica", t)],
            };
            for (bound, v) in bound_values {
                let labels = BoundLabels {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    metric: outcome.name.clone(),
                    bound: bound.to_owned(),
                };
                self.metric_bound.get_or_create(&labels).set(v);
                bounds.push(labels);
            }
        }
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        // Drop series of metrics the spec no longer has.
        if let Some((old_values, old_bounds)) = written.get(&p) {
            for l in old_values.iter().filter(|l| !values.contains(l)) {
                self.metric_value.remove(l);
            }
            for l in old_bounds.iter().filter(|l| !bounds.contains(l)) {
                self.metric_bound.remove(l);
            }
        }
        written.insert(p, (values, bounds));
    }

    /// Removes every series of a policy (deleted, or no longer valid).
    pub fn forget(&self, namespace: &str, name: &str) {
        let p = PolicyLabels {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        self.current_replicas.remove(&p);
        self.desired_replicas.remove(&p);
        self.min_replicas.remove(&p);
        self.max_replicas.remove(&p);
        self.forecast_floor.remove(&p);
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((values, bounds)) = written.remove(&p) {
            for l in &values {
                self.metric_value.remove(l);
            }
            for l in &bounds {
                self.metric_bound.remove(l);
            }
        }
    }

    /// The policies with series, as (namespace, name).
    pub fn known_policies(&self) -> Vec<(String, String)> {
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written
            .keys()
            .map(|p| (p.namespace.clone(), p.name.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_policy_series_disappear_with_the_policy() {
        let m = Metrics::new();
        m.reconciled("success", Duration::from_millis(3));
        let spec: crate::api::ScalingPolicySpec = serde_json::from_value(serde_json::json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 5,
            "metrics": [{"name": "cpu", "cpu": {}, "scaleOutAbove": 70, "scaleInBelow": 30}]
        }))
        .unwrap();
        let policy = Policy::resolve(&spec).unwrap();
        let d = crate::decide::decide(
            &policy,
            &Default::default(),
            &[crate::decide::Observation::value("cpu", 80.0)],
            2,
            jiff::Timestamp::UNIX_EPOCH,
        );
        m.decided("shop", "web", &policy, &d, true);
        let text = m.encode();
        assert!(
            text.contains(
                r#"scalewise_policy_metric_value{namespace="shop",name="web",metric="cpu"} 80.0"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"scalewise_policy_desired_replicas{namespace="shop",name="web"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"scalewise_scale_actions_total{direction="out"} 1"#),
            "{text}"
        );
        assert!(
            !text.contains("forecast_floor_replicas{"),
            "no forecast: {text}"
        );
        let with_floor = crate::decide::TargetState {
            forecast: Some(crate::decide::Floor {
                replicas: 6,
                shadow: true,
                reason: "forecast floor 6".into(),
            }),
            ..Default::default()
        };
        let d = crate::decide::decide_for(
            &policy,
            &Default::default(),
            &[crate::decide::Observation::value("cpu", 80.0)],
            2,
            &with_floor,
            jiff::Timestamp::UNIX_EPOCH,
        );
        m.decided("shop", "web", &policy, &d, false);
        let text = m.encode();
        assert!(
            text.contains(
                r#"scalewise_policy_forecast_floor_replicas{namespace="shop",name="web"} 6"#
            ),
            "a shadow floor is shown too: {text}"
        );
        m.forget("shop", "web");
        let text = m.encode();
        assert!(!text.contains(r#"name="web""#), "{text}");
        assert!(
            text.contains(r#"scalewise_reconciles_total{result="success"} 1"#),
            "{text}"
        );
    }
}
