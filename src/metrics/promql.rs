//! The PromQL of each metric source, with its default label conventions, and the raw series
//! selectors behind any PromQL (for the age query, see the [module documentation](super)).
//!
//! | source | PromQL |
//! |---|---|
//! | `cpu` | `sum by (namespace, pod) (rate(USAGE{namespace="NS", USAGE_SEL}[W]))`, joined with the target's pods in the operator |
//! | `memory` | `sum by (namespace, pod) (USAGE{namespace="NS", USAGE_SEL})`, joined likewise |
//! | `cpu` with `podSelector` | `100 * sum(rate(USAGE{PODS, USAGE_SEL}[W])) / sum(REQUESTS{PODS, REQUESTS_SEL})` |
//! | `memory` with `podSelector` | `100 * sum(USAGE{PODS, USAGE_SEL}) / sum(REQUESTS{PODS, REQUESTS_SEL})` |
//! | `latency` | `histogram_quantile(Q, sum by (le) (rate(HIST_bucket{SEL}[W])))` |
//! | `errorRate` | `sum(rate(C{SEL, ERR}[W])) / (sum(rate(C{SEL}[W])) > 0) or sum(rate(C{SEL}[W])) * 0` |
//! | `requestRate` | `sum(rate(C{SEL}[W]))` |
//! | `query` | the user's PromQL, placeholders replaced |

use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr};
use promql_parser::util::{ExprVisitor, walk_expr};

use crate::api::placeholder;
use crate::api::{ErrorRateMetric, LatencyMetric, RequestRateMetric, ResourceMetric};

/// cAdvisor's CPU usage counter, in CPU seconds.
pub const CPU_USAGE_METRIC: &str = "container_cpu_usage_seconds_total";
/// cAdvisor's memory working set gauge, in bytes (what the kubelet evicts on and the HPA reads).
pub const MEMORY_USAGE_METRIC: &str = "container_memory_working_set_bytes";
/// kube-state-metrics' requests gauge (cores or bytes, by its `resource` and `unit` labels).
pub const REQUESTS_METRIC: &str = "kube_pod_container_resource_requests";
/// The series of the policy's namespace; per-pod usage is read for the whole namespace and
/// counted for the target's own pods by the operator.
pub const NAMESPACE_SELECTOR: &str = r#"namespace="{namespace}""#;
/// Leaves out cAdvisor's pod-level cgroup (`container=""`) and pause container (`POD`) series,
/// which would count the containers' usage twice.
pub const USAGE_SELECTOR: &str = r#"container!="", container!="POD""#;
/// kube-state-metrics' labels of CPU requests.
pub const CPU_REQUESTS_SELECTOR: &str = r#"resource="cpu", unit="core""#;
/// kube-state-metrics' labels of memory requests.
pub const MEMORY_REQUESTS_SELECTOR: &str = r#"resource="memory", unit="byte""#;
/// The label that tells the inputs of an age query apart.
pub const AGE_INPUT_LABEL: &str = "scalewise_input";
/// The label that tells the two parts of a metric's one query apart: its value
/// ([`VALUE_PART`]) and the age of the samples behind it ([`AGE_PART`]).
pub const PART_LABEL: &str = "scalewise_part";
pub const VALUE_PART: &str = "value";
pub const AGE_PART: &str = "age";

/// What the placeholders stand for in one policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    /// The policy's namespace.
    pub namespace: String,
    /// The target's name.
    pub target: String,
    /// The metric's window as a PromQL duration, such as `2m`.
    pub window: String,
}

impl Context {
    /// Replaces the placeholders in `text`.
    pub fn expand(&self, text: &str) -> String {
        placeholder::expand(text, &self.namespace, &self.target, &self.window)
    }

    /// `namespace="<the policy's namespace>"`, escaped.
    fn namespace_matcher(&self) -> String {
        NAMESPACE_SELECTOR.replace("{namespace}", &promql_string_escape(&self.namespace))
    }
}

/// `metric{a, b}` from label matcher lists written without braces; empty lists are left out.
pub fn selector(metric: &str, matcher_lists: &[&str]) -> String {
    let lists: Vec<&str> = matcher_lists
        .iter()
        .map(|l| l.trim().trim_end_matches(',').trim())
        .filter(|l| !l.is_empty())
        .collect();
    if lists.is_empty() {
        metric.to_owned()
    } else {
        format!("{metric}{{{}}}", lists.join(", "))
    }
}

/// The usage and requests selectors of a resource metric over the pods `pods` selects.
fn resource_selectors(
    ctx: &Context,
    r: &ResourceMetric,
    pods: &str,
    default_usage: &str,
    default_requests_selector: &str,
) -> (String, String) {
    let usage_metric = ctx.expand(r.usage_metric.as_deref().unwrap_or(default_usage));
    let usage_selector = ctx.expand(r.usage_selector.as_deref().unwrap_or(USAGE_SELECTOR));
    let requests_metric = ctx.expand(r.requests_metric.as_deref().unwrap_or(REQUESTS_METRIC));
    let requests_selector = ctx.expand(
        r.requests_selector
            .as_deref()
            .unwrap_or(default_requests_selector),
    );
    (
        selector(&usage_metric, &[pods, &usage_selector]),
        selector(&requests_metric, &[pods, &requests_selector]),
    )
}

/// The usage series of a resource metric for the whole namespace.
fn namespace_usage(ctx: &Context, r: &ResourceMetric, default_usage: &str) -> String {
    let usage_metric = ctx.expand(r.usage_metric.as_deref().unwrap_or(default_usage));
    let usage_selector = ctx.expand(r.usage_selector.as_deref().unwrap_or(USAGE_SELECTOR));
    selector(&usage_metric, &[&ctx.namespace_matcher(), &usage_selector])
}

/// CPU usage of each pod of the namespace, in cores: the operator counts the target's own.
pub fn cpu_per_pod(ctx: &Context, r: &ResourceMetric) -> String {
    let usage = namespace_usage(ctx, r, CPU_USAGE_METRIC);
    format!(
        "sum by (namespace, pod) (rate({usage}[{window}]))",
        window = ctx.window
    )
}

/// Memory working set of each pod of the namespace, in bytes.
pub fn memory_per_pod(ctx: &Context, r: &ResourceMetric) -> String {
    let usage = namespace_usage(ctx, r, MEMORY_USAGE_METRIC);
    format!("sum by (namespace, pod) ({usage})")
}

/// CPU usage as a percent of CPU requests of the pods `r.podSelector` selects, as written.
pub fn cpu(ctx: &Context, r: &ResourceMetric, pods: &str) -> String {
    let (usage, requests) =
        resource_selectors(ctx, r, pods, CPU_USAGE_METRIC, CPU_REQUESTS_SELECTOR);
    format!(
        "100 * sum(rate({usage}[{window}])) / sum({requests})",
        window = ctx.window
    )
}

/// Memory working set as a percent of memory requests of the pods `r.podSelector` selects.
pub fn memory(ctx: &Context, r: &ResourceMetric, pods: &str) -> String {
    let (usage, requests) =
        resource_selectors(ctx, r, pods, MEMORY_USAGE_METRIC, MEMORY_REQUESTS_SELECTOR);
    format!("100 * sum({usage}) / sum({requests})")
}

/// The Ready pods of the target (`kind`), from kube-state-metrics' ownership series: pods the
/// target owns directly (`kube_pod_owner`), or through a ReplicaSet it owns
/// (`kube_replicaset_owner`), that are Ready (`kube_pod_status_ready`). One series per pod,
/// value 1, labelled `namespace` and `pod`.
pub fn ready_pods_by_ownership(ctx: &Context, kind: &str) -> String {
    let ns = ctx.namespace_matcher();
    let kind = promql_string_escape(kind);
    let name = promql_string_escape(&ctx.target);
    format!(
        "(max by (namespace, pod) (kube_pod_owner{{{ns}, owner_kind=\"{kind}\", owner_name=\"{name}\"}}) or max by (namespace, pod) (kube_pod_owner{{{ns}, owner_kind=\"ReplicaSet\"}} * on (namespace, owner_name) group_left () max by (namespace, owner_name) (label_replace(kube_replicaset_owner{{{ns}, owner_kind=\"{kind}\", owner_name=\"{name}\"}}, \"owner_name\", \"$1\", \"replicaset\", \"(.+)\")))) * on (namespace, pod) group_left () max by (namespace, pod) (kube_pod_status_ready{{{ns}, condition=\"true\"}} == 1)"
    )
}

/// A resource metric's percent over the target's Ready pods, joined in PromQL through
/// kube-state-metrics (for readers without the cluster's pods: backtests, and `scalewise query`
/// without a kubeconfig). It does not apply the readiness rules beyond "Ready".
pub fn by_ownership(ctx: &Context, r: &ResourceMetric, kind: &str, cpu: bool) -> String {
    let pods = ready_pods_by_ownership(ctx, kind);
    let (usage, default_selector) = if cpu {
        (cpu_per_pod(ctx, r), CPU_REQUESTS_SELECTOR)
    } else {
        (memory_per_pod(ctx, r), MEMORY_REQUESTS_SELECTOR)
    };
    let requests_metric = ctx.expand(r.requests_metric.as_deref().unwrap_or(REQUESTS_METRIC));
    let requests_selector = ctx.expand(r.requests_selector.as_deref().unwrap_or(default_selector));
    let requests = selector(
        &requests_metric,
        &[&ctx.namespace_matcher(), &requests_selector],
    );
    format!(
        "100 * sum({usage} * on (namespace, pod) group_left () {pods}) / sum(sum by (namespace, pod) ({requests}) * on (namespace, pod) group_left () {pods})"
    )
}

/// A quantile of a histogram, over all its series matching the selector.
pub fn latency(ctx: &Context, l: &LatencyMetric) -> String {
    let buckets = selector(
        &format!("{}_bucket", ctx.expand(&l.histogram)),
        &[&ctx.expand(l.selector.as_deref().unwrap_or(""))],
    );
    format!(
        "histogram_quantile({q}, sum by (le) (rate({buckets}[{window}])))",
        q = l.quantile,
        window = ctx.window
    )
}

/// Errors over all requests. Where there is traffic but no error series, or no traffic at all (a
/// total rate of 0, not 0/0), the error rate is 0 (the right side of the `or`); a missing total
/// yields nothing, which reads as Empty. Every part of it acts within groups of labels (no
/// `vector(0)`), so that policies' error rates can be read together ([`super::coalesce`]).
pub fn error_rate(ctx: &Context, e: &ErrorRateMetric) -> String {
    let counter = ctx.expand(&e.counter);
    let service = ctx.expand(e.selector.as_deref().unwrap_or(""));
    let errors = selector(&counter, &[&service, &ctx.expand(&e.error_selector)]);
    let total = selector(&counter, &[&service]);
    let w = &ctx.window;
    format!(
        "sum(rate({errors}[{w}])) / (sum(rate({total}[{w}])) > 0) or sum(rate({total}[{w}])) * 0"
    )
}

/// A counter's rate, per second.
pub fn request_rate(ctx: &Context, r: &RequestRateMetric) -> String {
    let counter = selector(
        &ctx.expand(&r.counter),
        &[&ctx.expand(r.selector.as_deref().unwrap_or(""))],
    );
    format!("sum(rate({counter}[{}]))", ctx.window)
}

/// The user's PromQL with the placeholders replaced.
pub fn query(ctx: &Context, q: &str) -> String {
    ctx.expand(q.trim())
}

/// Every distinct series selector in `promql`, in order of appearance, without `offset` and `@`
/// (the age is about whether the series is still written, now).
pub fn raw_selectors(promql: &str) -> Result<Vec<String>, String> {
    Ok(selectors_of(&parser::parse(promql)?))
}

/// [`raw_selectors`] of a parsed expression.
fn selectors_of(expr: &Expr) -> Vec<String> {
    struct Collect(Vec<String>);
    impl ExprVisitor for Collect {
        type Error = ();
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, ()> {
            let vs = match expr {
                Expr::VectorSelector(vs) => vs,
                Expr::MatrixSelector(ms) => &ms.vs,
                _ => return Ok(true),
            };
            let mut plain = vs.clone();
            plain.offset = None;
            plain.at = None;
            let text = plain.to_string();
            if !self.0.contains(&text) {
                self.0.push(text);
            }
            Ok(true)
        }
    }
    let mut collect = Collect(Vec::new());
    // The visitor never fails.
    let _ = walk_expr(&mut collect, expr);
    collect.0
}

/// The query measuring, in seconds, the age of the stalest input's newest sample; `None` without
/// selectors.
pub fn age_query(selectors: &[String]) -> Option<String> {
    match selectors {
        [] => None,
        [one] => Some(format!("time() - max(timestamp({one}))")),
        many => {
            let inputs: Vec<String> = many
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    format!(
                        "label_replace(max(timestamp({s})), \"{AGE_INPUT_LABEL}\", \"{}\", \"\", \"\")",
                        i + 1
                    )
                })
                .collect();
            Some(format!("time() - min({})", inputs.join(" or ")))
        }
    }
}

/// What one evaluation sends for a metric whose value is `promql`: the query of the age of its
/// samples (`None` without series selectors), and, when there is one and the value is an
/// instant vector or a scalar, the one query that reads both, its series told apart by
/// [`PART_LABEL`]. A value of another type (a string, a range vector) is read alone: it is not a
/// number, and that is all the answer needs to say.
pub fn reading(promql: &str) -> Result<Reading, String> {
    let expr = parser::parse(promql)?;
    let age_query = age_query(&selectors_of(&expr));
    let value = match expr.value_type() {
        ValueType::Vector => Some(format!("({promql})")),
        ValueType::Scalar => Some(format!("vector({promql})")),
        ValueType::Matrix | ValueType::String => None,
    };
    let combined = match (value, &age_query) {
        (Some(value), Some(age)) => Some(format!(
            "label_replace({value}, \"{PART_LABEL}\", \"{VALUE_PART}\", \"\", \"\") or label_replace({age}, \"{PART_LABEL}\", \"{AGE_PART}\", \"\", \"\")"
        )),
        _ => None,
    };
    Ok(Reading {
        age_query,
        combined,
    })
}

/// See [`reading`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reading {
    pub age_query: Option<String>,
    pub combined: Option<String>,
}

/// Escapes a value for a double-quoted PromQL string.
pub fn promql_string_escape(text: &str) -> String {
    text.replace('\\', r"\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            namespace: "shop".into(),
            target: "checkout".into(),
            window: "2m".into(),
        }
    }

    #[test]
    fn cpu_is_read_per_pod_for_the_namespace_never_by_a_name_pattern() {
        assert_eq!(
            cpu_per_pod(&ctx(), &ResourceMetric::default()),
            r#"sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{namespace="shop", container!="", container!="POD"}[2m]))"#
        );
        assert_eq!(
            memory_per_pod(&ctx(), &ResourceMetric::default()),
            r#"sum by (namespace, pod) (container_memory_working_set_bytes{namespace="shop", container!="", container!="POD"})"#
        );
    }

    #[test]
    fn every_part_of_a_resource_metric_can_be_overridden_with_placeholders() {
        let r = ResourceMetric {
            pod_selector: Some(
                r#"kubernetes_namespace="{namespace}", kubernetes_pod_name=~"{target}-.*""#.into(),
            ),
            usage_metric: Some("pod_cpu_seconds_total".into()),
            usage_selector: Some(String::new()),
            requests_metric: Some("pod_cpu_requests_cores".into()),
            requests_selector: Some(r#"source="ksm""#.into()),
        };
        let pods = ctx().expand(r.pod_selector.as_deref().unwrap());
        assert_eq!(
            cpu(&ctx(), &r, &pods),
            r#"100 * sum(rate(pod_cpu_seconds_total{kubernetes_namespace="shop", kubernetes_pod_name=~"checkout-.*"}[2m])) / sum(pod_cpu_requests_cores{kubernetes_namespace="shop", kubernetes_pod_name=~"checkout-.*", source="ksm"})"#
        );
    }

    #[test]
    fn the_ownership_join_parses_and_names_the_target_and_its_replicasets() {
        let q = by_ownership(&ctx(), &ResourceMetric::default(), "Deployment", true);
        assert!(parser::parse(&q).is_ok(), "{q}");
        assert!(q.contains(r#"kube_replicaset_owner{namespace="shop", owner_kind="Deployment", owner_name="checkout"}"#), "{q}");
        assert!(
            q.contains(r#"kube_pod_status_ready{namespace="shop", condition="true"} == 1"#),
            "{q}"
        );
        let q = by_ownership(&ctx(), &ResourceMetric::default(), "StatefulSet", false);
        assert!(parser::parse(&q).is_ok(), "{q}");
    }

    #[test]
    fn latency_is_a_quantile_aggregated_by_le() {
        let l = LatencyMetric {
            histogram: "http_request_duration_seconds".into(),
            quantile: 0.95,
            selector: Some(r#"service="checkout""#.into()),
        };
        assert_eq!(
            latency(&ctx(), &l),
            r#"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{service="checkout"}[2m])))"#
        );
    }

    #[test]
    fn error_rate_counts_missing_errors_as_zero_and_no_traffic_as_zero() {
        let e = ErrorRateMetric {
            counter: "http_requests_total".into(),
            error_selector: r#"code=~"5..""#.into(),
            selector: Some(r#"service="checkout""#.into()),
        };
        assert_eq!(
            error_rate(&ctx(), &e),
            r#"sum(rate(http_requests_total{service="checkout", code=~"5.."}[2m])) / (sum(rate(http_requests_total{service="checkout"}[2m])) > 0) or sum(rate(http_requests_total{service="checkout"}[2m])) * 0"#
        );
    }

    #[test]
    fn request_rate_without_selector_is_the_bare_counter() {
        let r = RequestRateMetric {
            counter: "http_requests_total".into(),
            selector: None,
        };
        assert_eq!(
            request_rate(&ctx(), &r),
            "sum(rate(http_requests_total[2m]))"
        );
    }

    #[test]
    fn query_placeholders_are_replaced_and_other_braces_kept() {
        assert_eq!(
            query(
                &ctx(),
                r#"sum(rate(jobs_total{namespace="{namespace}", app="{target}", code=~"5[0-9]{2}"}[{window}]))"#
            ),
            r#"sum(rate(jobs_total{namespace="shop", app="checkout", code=~"5[0-9]{2}"}[2m]))"#
        );
    }

    #[test]
    fn selector_lists_tolerate_trailing_commas_and_blanks() {
        assert_eq!(
            selector("m", &[" a=\"1\", ", "", "b=\"2\""]),
            r#"m{a="1", b="2"}"#
        );
        assert_eq!(selector("m", &["", "  "]), "m");
    }

    #[test]
    fn raw_selectors_are_found_deduplicated_without_offset() {
        assert_eq!(
            raw_selectors(
                r#"sum(rate(a{x="1"}[5m] offset 1h)) / sum(b) + on() group_left max_over_time(a{x="1"}[10m:1m]) - scalar(c @ 100)"#
            )
            .unwrap(),
            vec![r#"a{x="1"}"#.to_owned(), "b".to_owned(), "c".to_owned()]
        );
        assert_eq!(
            raw_selectors("vector(1) * 2").unwrap(),
            Vec::<String>::new()
        );
        assert!(raw_selectors("sum(a{").is_err());
    }

    #[test]
    fn raw_selectors_of_an_error_rate_are_errors_and_total() {
        let e = ErrorRateMetric {
            counter: "reqs".into(),
            error_selector: r#"code="500""#.into(),
            selector: None,
        };
        assert_eq!(
            raw_selectors(&error_rate(&ctx(), &e)).unwrap(),
            vec![r#"reqs{code="500"}"#.to_owned(), "reqs".to_owned()]
        );
    }

    #[test]
    fn the_age_query_takes_the_stalest_input() {
        assert_eq!(age_query(&[]), None);
        assert_eq!(
            age_query(&["a".into()]).as_deref(),
            Some("time() - max(timestamp(a))")
        );
        assert_eq!(
            age_query(&["a".into(), r#"b{c="d"}"#.into()]).as_deref(),
            Some(
                r#"time() - min(label_replace(max(timestamp(a)), "scalewise_input", "1", "", "") or label_replace(max(timestamp(b{c="d"})), "scalewise_input", "2", "", ""))"#
            )
        );
    }

    #[test]
    fn generated_age_queries_parse() {
        let q = age_query(&["a".into(), "b".into(), "c".into()]).unwrap();
        assert!(parser::parse(&q).is_ok(), "{q}");
    }

    #[test]
    fn a_metric_is_read_with_its_age_in_one_query_that_parses() {
        // A vector and a scalar value are combined with the age query; the age is as before.
        for (value, wrapped) in [
            (
                r#"sum(rate(x{namespace="a"}[1m]))"#,
                r#"(sum(rate(x{namespace="a"}[1m])))"#,
            ),
            (
                r#"scalar(sum(x{namespace="a"}))"#,
                r#"vector(scalar(sum(x{namespace="a"})))"#,
            ),
        ] {
            let reading = reading(value).unwrap();
            let age = r#"time() - max(timestamp(x{namespace="a"}))"#;
            assert_eq!(reading.age_query.as_deref(), Some(age));
            let combined = reading.combined.unwrap();
            assert_eq!(
                combined,
                format!(
                    r#"label_replace({wrapped}, "scalewise_part", "value", "", "") or label_replace({age}, "scalewise_part", "age", "", "")"#
                )
            );
            let parsed = parser::parse(&combined).unwrap();
            assert_eq!(parsed.value_type(), ValueType::Vector, "{combined}");
        }
    }

    #[test]
    fn a_value_without_series_or_of_another_type_is_read_alone() {
        assert_eq!(
            reading("vector(3)").unwrap(),
            Reading {
                age_query: None,
                combined: None
            }
        );
        // A range vector is not a number: the answer says so, no age needed.
        let matrix = reading(r#"x{namespace="a"}[5m]"#).unwrap();
        assert!(matrix.age_query.is_some());
        assert_eq!(matrix.combined, None);
        assert!(reading("sum(").is_err());
    }
}
