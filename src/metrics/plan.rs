//! The PromQL one evaluation of a policy runs: per metric, its value query and its age query.

use std::time::Duration;

use jiff::SignedDuration;

use crate::api::duration::format_duration;
use crate::api::{FieldError, MetricRule, Policy, ScalingPolicy, Source, ValidationErrors};
use crate::pods::{ReadinessRules, Resource};

use super::coalesce::{self, Sharing};
use super::promql::{self, Context};
use super::tenancy::QueryScope;

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
    /// The one query an evaluation sends for both (see [`promql::reading`]); `None` when the
    /// value query is sent alone.
    pub combined: Option<String>,
    /// For `cpu` and `memory` without `podSelector`: the value query reads usage per pod of the
    /// namespace, and the operator counts the target's pods.
    pub per_pod: Option<PerPod>,
    /// How the reading is shared with other policies' readings of the same tick.
    pub sharing: Sharing,
}

/// How a resource metric read per pod is counted.
#[derive(Clone, Debug, PartialEq)]
pub struct PerPod {
    pub resource: Resource,
    /// The metric's window: a pod Ready for less than this still shows its start-up.
    pub window: SignedDuration,
    pub readiness: ReadinessRules,
    /// The same metric over the target's Ready pods joined in PromQL through kube-state-metrics'
    /// ownership series: what readers without the cluster's pods run (backtests, `scalewise
    /// query` without a kubeconfig).
    pub by_ownership: String,
}

impl MetricQuery {
    /// The queries of a metric whose value is `promql` (already scoped); `Err` with the parser's
    /// message when it does not parse.
    pub fn read(
        name: &str,
        kind: SourceKind,
        promql: String,
        per_pod: Option<PerPod>,
    ) -> Result<Self, String> {
        let reading = promql::reading(&promql)?;
        // Built-in kinds may be split; only a combined reading (a value with its age) is.
        let builtin = kind != SourceKind::Query && reading.combined.is_some();
        let sharing = coalesce::sharing(&promql, builtin);
        Ok(MetricQuery {
            name: name.to_owned(),
            kind,
            promql,
            age_query: reading.age_query,
            combined: reading.combined,
            per_pod,
            sharing,
        })
    }

    /// What an evaluation sends: the combined query, or the value query alone.
    pub fn sent(&self) -> &str {
        self.combined.as_deref().unwrap_or(&self.promql)
    }

    /// The query that yields the metric's value on its own: the ownership join for a metric read
    /// per pod, otherwise the value query.
    pub fn standalone_promql(&self) -> &str {
        self.per_pod
            .as_ref()
            .map_or(self.promql.as_str(), |p| p.by_ownership.as_str())
    }
}

/// Everything one evaluation of a policy asks the metrics server.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryPlan {
    pub namespace: String,
    /// The target's name.
    pub target: String,
    /// The policy's evaluation interval (the default staleness limit derives from it).
    pub interval: Duration,
    /// `spec.prometheus.address`, when the policy names its own server.
    pub address: Option<String>,
    pub metrics: Vec<MetricQuery>,
    /// Whose series the queries read: every selector is scoped to the policy's namespace (and
    /// the namespaces a grant names), or, opted out, runs as written.
    pub scope: QueryScope,
}

impl QueryPlan {
    /// The plan of a policy object, reading only its own namespace's series through the label
    /// `namespace` (its namespace is `default` when the manifest has none).
    pub fn for_policy(object: &ScalingPolicy, policy: &Policy) -> Result<Self, ValidationErrors> {
        Self::new(namespace_of(object), policy)
    }

    /// The plan of a resolved policy in `namespace`, reading only that namespace's series
    /// through the label `namespace`.
    pub fn new(namespace: &str, policy: &Policy) -> Result<Self, ValidationErrors> {
        Self::scoped(policy, QueryScope::own(namespace))
    }

    /// The plan of a resolved policy under `scope` (which names its namespace). Each metric's
    /// PromQL (its placeholders replaced) is parsed and rewritten to read only what the scope
    /// allows, and parsed once more for the selectors of its age query and its type; fails when
    /// one does not parse or reads another namespace.
    pub fn scoped(policy: &Policy, scope: QueryScope) -> Result<Self, ValidationErrors> {
        let namespace = scope.namespace().to_owned();
        let mut errors = Vec::new();
        let mut metrics = Vec::with_capacity(policy.metrics.len());
        for (i, m) in policy.metrics.iter().enumerate() {
            let ctx = Context {
                namespace: namespace.clone(),
                target: policy.target.clone(),
                window: format_duration(m.window.unsigned_abs()),
            };
            let written = metric_promql(&ctx, &m.source);
            let path = match m.source {
                Source::Query(_) => format!("spec.metrics[{i}].query"),
                _ => format!("spec.metrics[{i}]"),
            };
            let scoped = scope.apply(&written).and_then(|promql| {
                let per_pod = match per_pod(&ctx, policy, m) {
                    Some(p) => Some(PerPod {
                        by_ownership: scope.apply(&p.by_ownership)?,
                        ..p
                    }),
                    None => None,
                };
                Ok((promql, per_pod))
            });
            let (promql, per_pod) = match scoped {
                Ok(scoped) => scoped,
                Err(super::tenancy::ScopeError::Parse(e)) => {
                    errors.push(FieldError {
                        path,
                        message: format!("the PromQL {written:?} does not parse: {e}"),
                    });
                    continue;
                }
                Err(e) => {
                    errors.push(FieldError {
                        path,
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            match MetricQuery::read(&m.name, m.source.kind(), promql.clone(), per_pod) {
                Ok(query) => metrics.push(query),
                Err(e) => errors.push(FieldError {
                    path,
                    message: format!("the PromQL {promql:?} does not parse: {e}"),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(ValidationErrors(errors));
        }
        Ok(QueryPlan {
            namespace,
            target: policy.target.clone(),
            interval: policy.interval.unsigned_abs(),
            address: policy.address.clone(),
            metrics,
            scope,
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
        Source::Cpu(r) => match &r.pod_selector {
            Some(pods) => promql::cpu(ctx, r, &ctx.expand(pods)),
            None => promql::cpu_per_pod(ctx, r),
        },
        Source::Memory(r) => match &r.pod_selector {
            Some(pods) => promql::memory(ctx, r, &ctx.expand(pods)),
            None => promql::memory_per_pod(ctx, r),
        },
        Source::Latency(l) => promql::latency(ctx, l),
        Source::ErrorRate(e) => promql::error_rate(ctx, e),
        Source::RequestRate(r) => promql::request_rate(ctx, r),
        Source::Query(q) => promql::query(ctx, q),
    }
}

/// How a metric is counted per pod: `cpu` and `memory` without `podSelector`.
fn per_pod(ctx: &Context, policy: &Policy, m: &MetricRule) -> Option<PerPod> {
    let (r, resource) = match &m.source {
        Source::Cpu(r) => (r, Resource::Cpu),
        Source::Memory(r) => (r, Resource::Memory),
        _ => return None,
    };
    if r.pod_selector.is_some() {
        return None;
    }
    Some(PerPod {
        resource,
        window: m.window,
        readiness: ReadinessRules {
            cpu_initialization_period: policy.pods.cpu_initialization_period,
            initial_readiness_delay: policy.pods.initial_readiness_delay,
        },
        by_ownership: promql::by_ownership(
            ctx,
            r,
            &policy.target_kind.kind,
            resource == Resource::Cpu,
        ),
    })
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
                    // What runs is the parsed query printed again.
                    promql: r#"sum(jobs_waiting{app="worker",namespace="team-a"})"#.into(),
                    age_query: Some(
                        r#"time() - max(timestamp(jobs_waiting{app="worker",namespace="team-a"}))"#
                            .into()
                    ),
                    // Value and age in one query, told apart by a label.
                    combined: Some(
                        r#"label_replace((sum(jobs_waiting{app="worker",namespace="team-a"})), "scalewise_part", "value", "", "") or label_replace(time() - max(timestamp(jobs_waiting{app="worker",namespace="team-a"})), "scalewise_part", "age", "", "")"#
                            .into()
                    ),
                    per_pod: None,
                    // A custom query is shared only with identical ones.
                    sharing: Sharing::Whole,
                },
                MetricQuery {
                    name: "rps".into(),
                    kind: SourceKind::RequestRate,
                    // Scoped to the namespace: before, a requestRate without labels read every
                    // namespace's counter.
                    promql: r#"sum(rate(jobs_done_total{namespace="team-a"}[1m30s]))"#.into(),
                    age_query: Some(
                        r#"time() - max(timestamp(jobs_done_total{namespace="team-a"}))"#.into()
                    ),
                    combined: Some(
                        r#"label_replace((sum(rate(jobs_done_total{namespace="team-a"}[1m30s]))), "scalewise_part", "value", "", "") or label_replace(time() - max(timestamp(jobs_done_total{namespace="team-a"})), "scalewise_part", "age", "", "")"#
                            .into()
                    ),
                    per_pod: None,
                    // Read with every requestRate of the same counter and window, split by
                    // namespace.
                    sharing: Sharing::Split(coalesce::Split {
                        template: r#"sum by (namespace) (rate(jobs_done_total{namespace=""}[1m30s]))"#
                            .into(),
                        labels: vec!["namespace".into()],
                        values: vec!["team-a".into()],
                    }),
                },
                MetricQuery {
                    name: "constant".into(),
                    kind: SourceKind::Query,
                    promql: "vector(3)".into(),
                    // Without a series, there is no age to read: the value is sent alone.
                    age_query: None,
                    combined: None,
                    per_pod: None,
                    sharing: Sharing::Whole,
                },
            ]
        );
    }

    #[test]
    fn a_query_reading_another_namespace_has_no_plan_and_says_where() {
        for (metric, path) in [
            (
                r#"{name: x, query: 'sum(rate(http_requests_total{namespace="payments"}[5m]))', scaleOutAbove: 1}"#,
                "spec.metrics[0].query",
            ),
            (
                r#"{name: x, latency: {histogram: h, quantile: 0.9, selector: 'namespace="payments"'}, target: 1}"#,
                "spec.metrics[0]",
            ),
            (
                r#"{name: x, cpu: {usageSelector: 'namespace=~".+"'}, target: 50}"#,
                "spec.metrics[0]",
            ),
        ] {
            let yaml = format!(
                "targetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}\nminReplicas: 1\nmaxReplicas: 5\nmetrics: [{metric}]\n"
            );
            let errors = plan("shop", &yaml).unwrap_err();
            assert_eq!(errors.0[0].path, path, "{metric}");
            assert!(
                errors.0[0]
                    .message
                    .contains("a policy reads only its own namespace's series"),
                "{}",
                errors.0[0].message
            );
        }
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
