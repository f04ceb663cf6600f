//! The PromQL of each metric source, with its default label conventions, and the raw series
//! selectors behind any PromQL (for the age query, see the [module documentation](super)).
//!
//! | source | PromQL |
//! |---|---|
//! | `cpu` | `100 * sum(rate(USAGE{PODS, USAGE_SEL}[W])) / sum(REQUESTS{PODS, REQUESTS_SEL})` |
//! | `memory` | `100 * sum(USAGE{PODS, USAGE_SEL}) / sum(REQUESTS{PODS, REQUESTS_SEL})` |
//! | `latency` | `histogram_quantile(Q, sum by (le) (rate(HIST_bucket{SEL}[W])))` |
//! | `errorRate` | `(sum(rate(C{SEL, ERR}[W])) or vector(0)) / (sum(rate(C{SEL}[W])) > 0) or sum(rate(C{SEL}[W])) * 0` |
//! | `requestRate` | `sum(rate(C{SEL}[W]))` |
//! | `query` | the user's PromQL, placeholders replaced |

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
/// The target's pods: in the policy's namespace, named as a Deployment's ReplicaSets name them
/// (`<deployment>-<pod-template-hash>-<suffix>`).
pub const POD_SELECTOR: &str = r#"namespace="{namespace}", pod=~"{target}-[a-z0-9]+-[a-z0-9]+""#;
/// Leaves out cAdvisor's pod-level cgroup (`container=""`) and pause container (`POD`) series,
/// which would count the containers' usage twice.
pub const USAGE_SELECTOR: &str = r#"container!="", container!="POD""#;
/// kube-state-metrics' labels of CPU requests.
pub const CPU_REQUESTS_SELECTOR: &str = r#"resource="cpu", unit="core""#;
/// kube-state-metrics' labels of memory requests.
pub const MEMORY_REQUESTS_SELECTOR: &str = r#"resource="memory", unit="byte""#;
/// The label that tells the inputs of an age query apart.
pub const AGE_INPUT_LABEL: &str = "scalewise_input";

/// What the placeholders stand for in one policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    /// The policy's namespace.
    pub namespace: String,
    /// The target Deployment's name.
    pub target: String,
    /// The metric's window as a PromQL duration, such as `2m`.
    pub window: String,
}

impl Context {
    /// Replaces the placeholders in `text`.
    pub fn expand(&self, text: &str) -> String {
        placeholder::expand(text, &self.namespace, &self.target, &self.window)
    }

    /// The default pod selector, with the target's name escaped for the regular expression.
    fn default_pod_selector(&self) -> String {
        let target = promql_string_escape(&regex_escape(&self.target));
        placeholder::expand(POD_SELECTOR, &self.namespace, &target, &self.window)
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

/// The usage and requests selectors of a resource metric.
fn resource_selectors(
    ctx: &Context,
    r: &ResourceMetric,
    default_usage: &str,
    default_requests_selector: &str,
) -> (String, String) {
    let pods = match &r.pod_selector {
        Some(s) => ctx.expand(s),
        None => ctx.default_pod_selector(),
    };
    let usage_metric = ctx.expand(r.usage_metric.as_deref().unwrap_or(default_usage));
    let usage_selector = ctx.expand(r.usage_selector.as_deref().unwrap_or(USAGE_SELECTOR));
    let requests_metric = ctx.expand(r.requests_metric.as_deref().unwrap_or(REQUESTS_METRIC));
    let requests_selector = ctx.expand(
        r.requests_selector
            .as_deref()
            .unwrap_or(default_requests_selector),
    );
    (
        selector(&usage_metric, &[&pods, &usage_selector]),
        selector(&requests_metric, &[&pods, &requests_selector]),
    )
}

/// CPU usage of the target's pods as a percent of their CPU requests.
pub fn cpu(ctx: &Context, r: &ResourceMetric) -> String {
    let (usage, requests) = resource_selectors(ctx, r, CPU_USAGE_METRIC, CPU_REQUESTS_SELECTOR);
    format!(
        "100 * sum(rate({usage}[{window}])) / sum({requests})",
        window = ctx.window
    )
}

/// Memory working set of the target's pods as a percent of their memory requests.
pub fn memory(ctx: &Context, r: &ResourceMetric) -> String {
    let (usage, requests) =
        resource_selectors(ctx, r, MEMORY_USAGE_METRIC, MEMORY_REQUESTS_SELECTOR);
    format!("100 * sum({usage}) / sum({requests})")
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

/// Errors over all requests. Missing error series count as 0 errors (`or vector(0)`); no traffic
/// at all (a total rate of 0) is an error rate of 0, not 0/0 (the right side of the last `or`);
/// a missing total yields nothing, which reads as Empty.
pub fn error_rate(ctx: &Context, e: &ErrorRateMetric) -> String {
    let counter = ctx.expand(&e.counter);
    let service = ctx.expand(e.selector.as_deref().unwrap_or(""));
    let errors = selector(&counter, &[&service, &ctx.expand(&e.error_selector)]);
    let total = selector(&counter, &[&service]);
    let w = &ctx.window;
    format!(
        "(sum(rate({errors}[{w}])) or vector(0)) / (sum(rate({total}[{w}])) > 0) or sum(rate({total}[{w}])) * 0"
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
    let expr = parser::parse(promql)?;
    let mut collect = Collect(Vec::new());
    // The visitor never fails.
    let _ = walk_expr(&mut collect, &expr);
    Ok(collect.0)
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

/// Escapes the characters a regular expression (RE2) gives a meaning.
pub fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
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
    fn cpu_is_usage_rate_over_requests_of_the_deployments_pods() {
        assert_eq!(
            cpu(&ctx(), &ResourceMetric::default()),
            r#"100 * sum(rate(container_cpu_usage_seconds_total{namespace="shop", pod=~"checkout-[a-z0-9]+-[a-z0-9]+", container!="", container!="POD"}[2m])) / sum(kube_pod_container_resource_requests{namespace="shop", pod=~"checkout-[a-z0-9]+-[a-z0-9]+", resource="cpu", unit="core"})"#
        );
    }

    #[test]
    fn memory_is_working_set_over_requests() {
        assert_eq!(
            memory(&ctx(), &ResourceMetric::default()),
            r#"100 * sum(container_memory_working_set_bytes{namespace="shop", pod=~"checkout-[a-z0-9]+-[a-z0-9]+", container!="", container!="POD"}) / sum(kube_pod_container_resource_requests{namespace="shop", pod=~"checkout-[a-z0-9]+-[a-z0-9]+", resource="memory", unit="byte"})"#
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
        assert_eq!(
            cpu(&ctx(), &r),
            r#"100 * sum(rate(pod_cpu_seconds_total{kubernetes_namespace="shop", kubernetes_pod_name=~"checkout-.*"}[2m])) / sum(pod_cpu_requests_cores{kubernetes_namespace="shop", kubernetes_pod_name=~"checkout-.*", source="ksm"})"#
        );
    }

    #[test]
    fn a_dotted_target_name_is_escaped_in_the_default_pod_regex() {
        let c = Context {
            target: "api.v2".into(),
            ..ctx()
        };
        assert!(
            memory(&c, &ResourceMetric::default())
                .contains(r#"pod=~"api\\.v2-[a-z0-9]+-[a-z0-9]+""#)
        );
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
            r#"(sum(rate(http_requests_total{service="checkout", code=~"5.."}[2m])) or vector(0)) / (sum(rate(http_requests_total{service="checkout"}[2m])) > 0) or sum(rate(http_requests_total{service="checkout"}[2m])) * 0"#
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
}
