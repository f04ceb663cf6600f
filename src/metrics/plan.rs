//! The PromQL one evaluation of a policy runs: per metric, its value query and its age query.

use std::time::Duration;

use crate::api::duration::format_duration;
use crate::api::{FieldError, Policy, ScalingPolicy, Source, ValidationErrors};

use super::promql::{self, Context};

pub use crate::api::SourceKind;

/// The namespace a manifest without `metadata.namespace` is read in, as kubectl does.
pub const DEFAULT_NAMESPACE: &str = "default";

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
    pub fn for_policy(object: &ScalingPolicy, policy: &Policy) -> Result<Self, ValidationErrors> {
        Self::new(namespace_of(object), policy)
    }

    /// The plan of a resolved policy in `namespace`. Each metric's PromQL (its placeholders
    /// replaced) is parsed once, for the selectors of its age query; fails when one does not
    /// parse.
    pub fn new(namespace: &str, policy: &Policy) -> Result<Self, ValidationErrors> {
        let mut errors = Vec::new();
        let mut metrics = Vec::with_capacity(policy.metrics.len());
        for (i, m) in policy.metrics.iter().enumerate() {
            let ctx = Context {
                namespace: namespace.to_owned(),
                target: policy.target.clone(),
                window: format_duration(m.window.unsigned_abs()),
            };
            let promql = metric_promql(&ctx, &m.source);
            match promql::raw_selectors(&promql) {
                Ok(selectors) => metrics.push(MetricQuery {
                    name: m.name.clone(),
                    kind: m.source.kind(),
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
            target: policy.target.clone(),
            interval: policy.interval.unsigned_abs(),
            address: policy.address.clone(),
            metrics,
        })
    }
}

/// The namespace of a policy object: `default` when the manifest has none.
pub fn namespace_of(object: &ScalingPolicy) -> &str {
    object
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(DEFAULT_NAMESPACE)
}

/// The PromQL of a metric's source.
fn metric_promql(ctx: &Context, source: &Source) -> String {
    match source {
        Source::Cpu(r) => promql::cpu(ctx, r),
        Source::Memory(r) => promql::memory(ctx, r),
        Source::Latency(l) => promql::latency(ctx, l),
        Source::ErrorRate(e) => promql::error_rate(ctx, e),
        Source::RequestRate(r) => promql::request_rate(ctx, r),
        Source::Query(q) => promql::query(ctx, q),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::api::ScalingPolicySpec;

    fn spec(yaml: &str) -> ScalingPolicySpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn plan(namespace: &str, yaml: &str) -> Result<QueryPlan, ValidationErrors> {
        QueryPlan::new(namespace, &Policy::resolve(&spec(yaml))?)
    }

    #[test]
    fn each_metric_gets_its_promql_age_query_and_window() {
        let plan = plan(
            "team-a",
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
        let errors = plan(
            "a",
            r#"
targetRef: {apiVersion: apps/v1, kind: Deployment, name: worker}
minReplicas: 1
maxReplicas: 5
metrics:
  - name: bad
    query: 'sum(x{'
    scaleOutAbove: 1
"#,
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
