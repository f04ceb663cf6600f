//! The PromQL one evaluation of a policy runs: per metric, its value query and its age query.

use std::time::Duration;

use crate::api::duration::format_duration;
use crate::api::{
    DEFAULT_METRIC_WINDOW, FieldError, MetricSpec, Policy, ScalingPolicy, ScalingPolicySpec,
    ValidationErrors,
};

use super::promql::{self, Context};

/// The namespace a manifest without `metadata.namespace` is read in, as kubectl does.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Where a metric's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    Cpu,
    Memory,
    Latency,
    ErrorRate,
    RequestRate,
    Query,
}

impl SourceKind {
    /// The field name in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Memory => "memory",
            Self::Latency => "latency",
            Self::ErrorRate => "errorRate",
            Self::RequestRate => "requestRate",
            Self::Query => "query",
        }
    }

    /// Whether a negative value can make sense: only for a user's own query.
    pub fn allows_negative(self) -> bool {
        self == Self::Query
    }
}

/// One metric's queries.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricQuery {
    /// The metric's name in the spec.
    pub name: String,
    pub kind: SourceKind,
    /// The PromQL of the value.
    pub promql: String,
    /// The PromQL of the age of the samples behind the value; `None` without series selectors.
    pub age_query: Option<String>,
}

/// Everything one evaluation of a policy asks the metrics server.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryPlan {
    pub namespace: String,
    /// The target Deployment's name.
    pub target: String,
    /// The policy's evaluation interval (the default staleness limit derives from it).
    pub interval: Duration,
    /// `spec.prometheus.address`, when the policy names its own server.
    pub address: Option<String>,
    pub metrics: Vec<MetricQuery>,
}

impl QueryPlan {
    /// The plan of a policy object; its namespace fills `{namespace}` (`default` when the
    /// manifest has none).
    pub fn for_policy(policy: &ScalingPolicy) -> Result<Self, ValidationErrors> {
        let namespace = policy
            .metadata
            .namespace
            .as_deref()
            .unwrap_or(DEFAULT_NAMESPACE);
        Self::new(namespace, &policy.spec)
    }

    /// The plan of a spec in `namespace`. Fails with the spec's validation errors, or when a
    /// metric's PromQL (after its placeholders are replaced) does not parse.
    pub fn new(namespace: &str, spec: &ScalingPolicySpec) -> Result<Self, ValidationErrors> {
        let policy = Policy::resolve(spec)?;
        let mut errors = Vec::new();
        let mut metrics = Vec::with_capacity(spec.metrics.len());
        for (i, m) in spec.metrics.iter().enumerate() {
            let ctx = Context {
                namespace: namespace.to_owned(),
                target: spec.target_ref.name.clone(),
                window: window_of(m),
            };
            let Some((kind, promql)) = metric_promql(&ctx, m) else {
                continue;
            };
            match promql::raw_selectors(&promql) {
                Ok(selectors) => metrics.push(MetricQuery {
                    name: m.name.clone(),
                    kind,
                    age_query: promql::age_query(&selectors),
                    promql,
                }),
                Err(e) => errors.push(FieldError {
                    path: format!("spec.metrics[{i}]"),
                    message: format!("the PromQL {promql:?} does not parse: {e}"),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(ValidationErrors(errors));
        }
        Ok(QueryPlan {
            namespace: namespace.to_owned(),
            target: spec.target_ref.name.clone(),
            interval: policy.interval.unsigned_abs(),
            address: spec.prometheus.as_ref().map(|p| p.address.clone()),
            metrics,
        })
    }
}

/// The metric's window as a PromQL duration (`2m`, `1m30s`).
fn window_of(m: &MetricSpec) -> String {
    let text = m
        .window
        .as_ref()
        .map_or(DEFAULT_METRIC_WINDOW, |w| w.as_str());
    crate::api::duration::parse_duration(text)
        .map(format_duration)
        .unwrap_or_else(|_| DEFAULT_METRIC_WINDOW.to_owned())
}

/// The PromQL of a metric's source (a validated spec has exactly one).
fn metric_promql(ctx: &Context, m: &MetricSpec) -> Option<(SourceKind, String)> {
    if let Some(r) = &m.cpu {
        return Some((SourceKind::Cpu, promql::cpu(ctx, r)));
    }
    if let Some(r) = &m.memory {
        return Some((SourceKind::Memory, promql::memory(ctx, r)));
    }
    if let Some(l) = &m.latency {
        return Some((SourceKind::Latency, promql::latency(ctx, l)));
    }
    if let Some(e) = &m.error_rate {
        return Some((SourceKind::ErrorRate, promql::error_rate(ctx, e)));
    }
    if let Some(r) = &m.request_rate {
        return Some((SourceKind::RequestRate, promql::request_rate(ctx, r)));
    }
    m.query
        .as_ref()
        .map(|q| (SourceKind::Query, promql::query(ctx, q)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ScalingPolicySpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn each_metric_gets_its_promql_age_query_and_window() {
        let plan = QueryPlan::new(
            "team-a",
            &spec(
                r#"
targetRef: {apiVersion: apps/v1, kind: Deployment, name: worker}
minReplicas: 1
maxReplicas: 5
interval: 30s
metrics:
  - name: jobs
    query: 'sum(jobs_waiting{namespace="{namespace}", app="{target}"})'
    targetPerReplica: 10
  - name: rps
    requestRate: {counter: jobs_done_total}
    window: 90s
    scaleOutAbove: 100
  - name: constant
    query: vector(3)
    scaleOutAbove: 1
"#,
            ),
        )
        .unwrap();
        assert_eq!(plan.namespace, "team-a");
        assert_eq!(plan.target, "worker");
        assert_eq!(plan.interval, Duration::from_secs(30));
        assert_eq!(plan.address, None);
        assert_eq!(
            plan.metrics,
            vec![
                MetricQuery {
                    name: "jobs".into(),
                    kind: SourceKind::Query,
                    promql: r#"sum(jobs_waiting{namespace="team-a", app="worker"})"#.into(),
                    age_query: Some(
                        r#"time() - max(timestamp(jobs_waiting{app="worker",namespace="team-a"}))"#
                            .into()
                    ),
                },
                MetricQuery {
                    name: "rps".into(),
                    kind: SourceKind::RequestRate,
                    promql: "sum(rate(jobs_done_total[1m30s]))".into(),
                    age_query: Some("time() - max(timestamp(jobs_done_total))".into()),
                },
                MetricQuery {
                    name: "constant".into(),
                    kind: SourceKind::Query,
                    promql: "vector(3)".into(),
                    age_query: None,
                },
            ]
        );
    }

    #[test]
    fn an_invalid_spec_has_no_plan() {
        let errors = QueryPlan::new(
            "a",
            &spec(
                r#"
targetRef: {apiVersion: apps/v1, kind: Deployment, name: worker}
minReplicas: 1
maxReplicas: 5
metrics:
  - name: bad
    query: 'sum(x{'
    scaleOutAbove: 1
"#,
            ),
        )
        .unwrap_err();
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].path, "spec.metrics[0].query");
    }

    #[test]
    fn only_negative_query_values_can_make_sense() {
        assert!(SourceKind::Query.allows_negative());
        assert!(!SourceKind::Cpu.allows_negative());
        assert!(!SourceKind::ErrorRate.allows_negative());
    }
}
