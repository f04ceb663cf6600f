//! The PromQL parts of a spec as a user writes them: metric names, label matcher lists and
//! `query` expressions, checked for syntax with example values in their placeholders (the
//! metrics plan parses each metric's complete PromQL once more with the policy's own values).

use super::checker::Checker;
use super::limits::{
    MAX_EXPANSION_FACTOR, MAX_PROMETHEUS_NAME_LENGTH, MAX_QUERY_NESTING, MAX_SELECTOR_LENGTH,
    MAX_TARGET_NAME_LENGTH, bracket_depth,
};
use super::spec::MetricSpec;
use super::spec::placeholder::{NAMESPACE, TARGET, WINDOW};

/// The length of PromQL text, in characters, once each placeholder is replaced by its longest
/// value: `{namespace}` by 63 characters (a namespace is a DNS label), `{target}` by 253 (a
/// Deployment's name) and `{window}` by 9 (`23h59m59s`; a window is at most 1h).
pub fn expanded_length(text: &str) -> usize {
    let written = text.chars().count();
    [
        (NAMESPACE, 63),
        (TARGET, MAX_TARGET_NAME_LENGTH),
        (WINDOW, 9),
    ]
    .iter()
    .fold(written, |length, (placeholder, longest)| {
        let count = text.matches(placeholder).count();
        length
            .saturating_sub(count.saturating_mul(placeholder.len()))
            .saturating_add(count.saturating_mul(*longest))
    })
}

/// Checks the length of PromQL text as written (`max`, the schema's `maxLength`) and once its
/// placeholders are replaced by their longest values (`max` times [`MAX_EXPANSION_FACTOR`]).
pub(super) fn length_within(c: &mut Checker, path: &str, text: &str, max: usize) -> bool {
    if !c.length_within(path, text, max) {
        return false;
    }
    let limit = max.saturating_mul(MAX_EXPANSION_FACTOR);
    let expanded = expanded_length(text);
    if expanded > limit {
        c.error(
            path,
            format!(
                "must be at most {limit} characters long with its placeholders replaced by their longest values (a 63-character namespace, a 253-character target), got {expanded}"
            ),
        );
        return false;
    }
    true
}

/// Whether `name` is a Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The placeholders replaced by example values, to check the syntax of a template.
fn with_example_placeholders(text: &str) -> String {
    super::spec::placeholder::expand(text, "default", "web", "1m")
}

/// Refuses PromQL nested deeper than [`MAX_QUERY_NESTING`], before the parser (which recurses)
/// sees it.
fn check_nesting(text: &str) -> Result<(), String> {
    let depth = bracket_depth(text);
    if depth > MAX_QUERY_NESTING {
        Err(format!(
            "must nest brackets at most {MAX_QUERY_NESTING} deep, got {depth}"
        ))
    } else {
        Ok(())
    }
}

/// Parses a PromQL label matcher list written without braces, such as `service="checkout"`.
/// An empty list is fine.
pub fn check_matcher_list(text: &str) -> Result<(), String> {
    check_nesting(text)?;
    let expanded = with_example_placeholders(text);
    if expanded.trim().is_empty() {
        return Ok(());
    }
    match promql_parser::parser::parse(&format!("m{{{expanded}}}")) {
        Ok(promql_parser::parser::Expr::VectorSelector(_)) => Ok(()),
        Ok(_) => Err(format!(
            "{text:?} is not a list of label matchers such as service=\"checkout\", code=~\"5..\""
        )),
        Err(e) => Err(format!(
            "{text:?} is not a list of label matchers such as service=\"checkout\", code=~\"5..\": {e}"
        )),
    }
}

fn check_matchers(c: &mut Checker, path: &str, text: &str) {
    if !length_within(c, path, text, MAX_SELECTOR_LENGTH) {
        return;
    }
    if let Err(message) = check_matcher_list(text) {
        c.error(path, message);
    }
}

fn check_metric_name(c: &mut Checker, path: &str, name: &str) {
    if !length_within(c, path, name, MAX_PROMETHEUS_NAME_LENGTH) {
        return;
    }
    let expanded = with_example_placeholders(name);
    if !is_metric_name(&expanded) {
        c.error(
            path,
            format!("{name:?} is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"),
        );
    }
}

/// A `query` must parse as PromQL and yield an instant vector or a scalar. The caller has checked
/// its length; its nesting is checked here, before parsing.
pub(super) fn check_query(c: &mut Checker, path: &str, query: &str) {
    use promql_parser::parser::{self, value::ValueType};
    if let Err(message) = check_nesting(query) {
        c.error(path, message);
        return;
    }
    match parser::parse(&with_example_placeholders(query)) {
        Ok(expr) => match expr.value_type() {
            ValueType::Vector | ValueType::Scalar => {}
            other => c.error(
                path,
                format!(
                    "must yield one number (a scalar or an instant vector), but yields a {}",
                    if other == ValueType::Matrix {
                        "range vector"
                    } else {
                        "string"
                    }
                ),
            ),
        },
        Err(e) => c.error(path, format!("is not valid PromQL: {e}")),
    }
}

/// The PromQL parts of the metric sources: metric names and label matcher lists.
pub(super) fn check_promql_parts(c: &mut Checker, i: usize, m: &MetricSpec) {
    let at = |field: &str| format!("spec.metrics[{i}].{field}");
    for (source, resource) in [("cpu", &m.cpu), ("memory", &m.memory)] {
        let Some(r) = resource else { continue };
        for (field, value) in [
            ("podSelector", &r.pod_selector),
            ("usageSelector", &r.usage_selector),
            ("requestsSelector", &r.requests_selector),
        ] {
            if let Some(text) = value {
                check_matchers(c, &at(&format!("{source}.{field}")), text);
            }
        }
        for (field, value) in [
            ("usageMetric", &r.usage_metric),
            ("requestsMetric", &r.requests_metric),
        ] {
            if let Some(name) = value {
                check_metric_name(c, &at(&format!("{source}.{field}")), name);
            }
        }
    }
    if let Some(latency) = &m.latency {
        if !latency.histogram.is_empty() {
            check_metric_name(c, &at("latency.histogram"), &latency.histogram);
        }
        if let Some(selector) = &latency.selector {
            check_matchers(c, &at("latency.selector"), selector);
        }
    }
    if let Some(errors) = &m.error_rate {
        if !errors.counter.is_empty() {
            check_metric_name(c, &at("errorRate.counter"), &errors.counter);
        }
        if !errors.error_selector.is_empty() {
            check_matchers(c, &at("errorRate.errorSelector"), &errors.error_selector);
        }
        if let Some(selector) = &errors.selector {
            check_matchers(c, &at("errorRate.selector"), selector);
        }
    }
    if let Some(requests) = &m.request_rate {
        if !requests.counter.is_empty() {
            check_metric_name(c, &at("requestRate.counter"), &requests.counter);
        }
        if let Some(selector) = &requests.selector {
            check_matchers(c, &at("requestRate.selector"), selector);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expanded_length_counts_each_placeholder_at_its_longest() {
        assert_eq!(expanded_length("up"), 2);
        assert_eq!(expanded_length("{namespace}"), 63);
        assert_eq!(expanded_length("a{target}b{target}"), 2 + 2 * 253);
        assert_eq!(expanded_length("rate(x[{window}])"), 17 - 8 + 9);
    }
}
