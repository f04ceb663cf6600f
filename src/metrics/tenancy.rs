//! A policy reads only its own namespace's series: every vector and matrix selector of its PromQL
//! (in every position: binary operands, subqueries, function arguments, aggregation parameters)
//! is given the matcher `<label>="<namespace>"`, by rewriting the parsed query, never by string
//! search. A selector that already names the namespace label any other way (`!=`, `=~`, `!~`, or
//! `=` another namespace; even a regular expression that would match only its own) is refused,
//! unless an operator's grant lets the policy's namespace read that one ([`Grant`]). Namespaces
//! the operator opted out (`--allow-cross-namespace-queries`) run their queries as written.

use std::collections::BTreeSet;

use promql_parser::label::{METRIC_NAME, MatchOp, Matcher, Matchers};
use promql_parser::parser::{self, Expr, VectorSelector};

/// The label that carries a series' namespace unless the operator names another for a server.
pub const DEFAULT_NAMESPACE_LABEL: &str = "namespace";
pub use crate::api::limits::{MAX_GRANT_METRICS, MAX_GRANTS};

/// Why a query cannot be scoped to a namespace.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// The query does not parse.
    #[error("the PromQL does not parse: {0}")]
    Parse(String),
    /// A selector names the namespace label otherwise than `label="<own namespace>"`.
    #[error(
        "the selector {selector} matches {matcher}: a policy reads only its own namespace's series ({label}=\"{namespace}\", which scalewise adds to every selector); remove the {label} matcher"
    )]
    ForeignNamespace {
        selector: String,
        matcher: String,
        label: String,
        namespace: String,
    },
    /// A selector reads a granted namespace for a metric the grant does not list.
    #[error(
        "the selector {selector} reads namespace {other}, which the operator lets {namespace} read only for the metrics {metrics}"
    )]
    NotGranted {
        selector: String,
        other: String,
        namespace: String,
        metrics: String,
    },
    /// An expression the parser's extensions added, which cannot be inspected.
    #[error(
        "the query holds an expression scalewise cannot inspect ({0}), so it cannot be scoped to one namespace"
    )]
    Opaque(String),
}

/// An operator's grant: policies in `reader` may read the series of `source`; only those of the
/// named metrics when `metrics` is not empty. Written `READER=SOURCE` or
/// `READER=SOURCE:METRIC,METRIC` (`--cross-namespace-grant`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub reader: String,
    pub source: String,
    pub metrics: Vec<String>,
}

impl std::str::FromStr for Grant {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let shape = "write READER=SOURCE or READER=SOURCE:METRIC,METRIC (namespaces, then Prometheus metric names)";
        let (reader, rest) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?}: {shape}"))?;
        let (source, metrics) = match rest.split_once(':') {
            Some((source, metrics)) => (source, Some(metrics)),
            None => (rest, None),
        };
        for ns in [reader, source] {
            check_namespace(ns).map_err(|e| format!("{text:?}: {e}; {shape}"))?;
        }
        if reader == source {
            return Err(format!(
                "{text:?}: a namespace always reads its own series; a grant names another"
            ));
        }
        let metrics: Vec<String> = match metrics {
            None => Vec::new(),
            Some(list) => list.split(',').map(|m| m.trim().to_owned()).collect(),
        };
        if metrics.len() > MAX_GRANT_METRICS {
            return Err(format!(
                "{text:?}: {} metric names; a grant lists at most {MAX_GRANT_METRICS}",
                metrics.len()
            ));
        }
        if let Some(bad) = metrics.iter().find(|m| !is_metric_name(m)) {
            return Err(format!(
                "{text:?}: {bad:?} is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*, at most 200 characters)"
            ));
        }
        Ok(Grant {
            reader: reader.to_owned(),
            source: source.to_owned(),
            metrics,
        })
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.reader, self.source)?;
        if !self.metrics.is_empty() {
            write!(f, ":{}", self.metrics.join(","))?;
        }
        Ok(())
    }
}

/// A namespace name: a DNS label of at most 63 characters.
pub fn check_namespace(text: &str) -> Result<(), String> {
    let b = text.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = !b.is_empty()
        && b.len() <= 63
        && b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter().all(|c| edge(c) || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is not a namespace name: 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit"
        ))
    }
}

/// A Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`), at most 200 characters.
pub fn check_label_name(text: &str) -> Result<(), String> {
    let b = text.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 200
        && b.first()
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is not a Prometheus label name: [a-zA-Z_][a-zA-Z0-9_]*, at most 200 characters"
        ))
    }
}

/// A Prometheus metric name (the spec's own check) of at most 200 characters.
fn is_metric_name(text: &str) -> bool {
    text.len() <= 200 && crate::api::is_metric_name(text)
}

/// The operator's tenancy settings: who may read whose series beyond its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Namespaces whose policies run their queries as written
    /// (`--allow-cross-namespace-queries`).
    pub unscoped: BTreeSet<String>,
    pub grants: Vec<Grant>,
}

impl Rules {
    /// How the queries of a policy in `namespace` are scoped on a server whose series carry the
    /// namespace in `label`.
    pub fn scope_for(&self, namespace: &str, label: &str) -> QueryScope {
        if self.unscoped.contains(namespace) {
            return QueryScope::Unscoped {
                namespace: namespace.to_owned(),
            };
        }
        QueryScope::Namespace {
            label: label.to_owned(),
            namespace: namespace.to_owned(),
            grants: self
                .grants
                .iter()
                .filter(|g| g.reader == namespace)
                .cloned()
                .collect(),
        }
    }

    /// Checks the bounds of the settings, naming the flags.
    pub fn check(&self) -> Result<(), String> {
        if self.grants.len() > MAX_GRANTS || self.unscoped.len() > MAX_GRANTS {
            return Err(format!(
                "at most {MAX_GRANTS} --cross-namespace-grant and {MAX_GRANTS} --allow-cross-namespace-queries"
            ));
        }
        for ns in &self.unscoped {
            check_namespace(ns).map_err(|e| format!("--allow-cross-namespace-queries: {e}"))?;
        }
        Ok(())
    }
}

/// How one policy's queries are scoped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryScope {
    /// The operator opted this namespace out: queries run as written.
    Unscoped { namespace: String },
    /// Every selector reads `label="<namespace>"`, or a namespace a grant names.
    Namespace {
        label: String,
        namespace: String,
        grants: Vec<Grant>,
    },
}

impl QueryScope {
    /// Its own namespace only, through the default label.
    pub fn own(namespace: &str) -> Self {
        Self::Namespace {
            label: DEFAULT_NAMESPACE_LABEL.to_owned(),
            namespace: namespace.to_owned(),
            grants: Vec::new(),
        }
    }

    pub fn namespace(&self) -> &str {
        match self {
            Self::Unscoped { namespace } | Self::Namespace { namespace, .. } => namespace,
        }
    }

    /// The label that carries the namespace; `None` when unscoped.
    pub fn label(&self) -> Option<&str> {
        match self {
            Self::Unscoped { .. } => None,
            Self::Namespace { label, .. } => Some(label),
        }
    }

    /// `promql` as this scope runs it.
    pub fn apply(&self, promql: &str) -> Result<String, ScopeError> {
        match self {
            Self::Unscoped { .. } => Ok(promql.to_owned()),
            Self::Namespace {
                label,
                namespace,
                grants,
            } => {
                let mut expr = parser::parse(promql).map_err(ScopeError::Parse)?;
                let rule = Rule {
                    label,
                    namespace,
                    grants,
                };
                scope_expr(&mut expr, &rule)?;
                Ok(expr.to_string())
            }
        }
    }

    /// What status says the policy may read beyond its own namespace; `None` when nothing.
    pub fn access(&self) -> Option<crate::api::NamespaceAccess> {
        match self {
            Self::Unscoped { .. } => Some(crate::api::NamespaceAccess {
                unscoped: true,
                grants: Vec::new(),
            }),
            Self::Namespace { grants, .. } if !grants.is_empty() => {
                Some(crate::api::NamespaceAccess {
                    unscoped: false,
                    grants: grants
                        .iter()
                        .map(|g| crate::api::NamespaceGrant {
                            namespace: g.source.clone(),
                            metrics: g.metrics.clone(),
                        })
                        .collect(),
                })
            }
            Self::Namespace { .. } => None,
        }
    }

    /// Whether `label="value"` in a message names a series this scope may read.
    pub fn may_read(&self, label: &str, value: &str) -> bool {
        match self {
            Self::Unscoped { .. } => true,
            Self::Namespace {
                label: own_label,
                namespace,
                grants,
            } => {
                label != own_label || value == namespace || grants.iter().any(|g| g.source == value)
            }
        }
    }
}

/// `message` (a server's error text) without the series of namespaces `scope` may not read:
/// each `{...}` label set, or bare `label="value"`, naming one is replaced by
/// `{<a series of another namespace>}`.
pub fn redact_foreign_series(scope: &QueryScope, message: &str) -> String {
    let Some(label) = scope.label() else {
        return message.to_owned();
    };
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    // Each `label="` (or `label=\"`, as JSON-escaped text has it) at a word boundary.
    while let Some(found) = find_matcher(rest, label) {
        let (start, value_start, quote_escaped) = found;
        let after = &rest[value_start..];
        let end_of_value = value_end(after, quote_escaped);
        let value = &after[..end_of_value];
        let value_unescaped = value.replace("\\\"", "\"").replace("\\\\", "\\");
        if scope.may_read(label, &value_unescaped) {
            let keep = value_start + end_of_value;
            out.push_str(&rest[..keep]);
            rest = &rest[keep..];
            continue;
        }
        // The enclosing label set, if the matcher stands in one.
        let open = rest[..start]
            .rfind('{')
            .filter(|&o| !rest[o..start].contains('}'));
        let close = after[end_of_value..]
            .find('}')
            .map(|c| value_start + end_of_value + c + 1);
        let (from, to) = match (open, close) {
            (Some(o), Some(c)) => (o, c),
            _ => (start, (value_start + end_of_value + 1).min(rest.len())),
        };
        out.push_str(&rest[..from]);
        out.push_str("{<a series of another namespace>}");
        rest = &rest[to..];
    }
    out.push_str(rest);
    out
}

/// The next `label="` or `label=\"` in `text` with `label` not part of a longer name: its start,
/// where the value starts, and whether the quotes are backslash-escaped.
fn find_matcher(text: &str, label: &str) -> Option<(usize, usize, bool)> {
    let mut from = 0;
    while let Some(at) = text.get(from..)?.find(label).map(|i| i + from) {
        let before_ok = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        let after = &text[at + label.len()..];
        let rest = after.trim_start_matches(' ');
        let rest = rest.strip_prefix("=").map(|r| r.trim_start_matches(' '));
        if before_ok && let Some(rest) = rest {
            let offset = text.len() - rest.len();
            if rest.starts_with("\\\"") {
                return Some((at, offset + 2, true));
            }
            if rest.starts_with('"') {
                return Some((at, offset + 1, false));
            }
        }
        from = at + label.len();
    }
    None
}

/// Where a quoted value starting at `text` ends (before its closing quote).
fn value_end(text: &str, quote_escaped: bool) -> usize {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote_escaped && bytes.get(i + 1) == Some(&b'"') => return i,
            b'\\' => i += 2,
            b'"' if !quote_escaped => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// What one selector may match on the namespace label.
struct Rule<'a> {
    label: &'a str,
    namespace: &'a str,
    grants: &'a [Grant],
}

/// `promql` with every selector scoped to `namespace` through the label `label` (such as
/// `namespace`, or `kubernetes_namespace` where relabeling named it so), without grants.
pub fn scope(promql: &str, label: &str, namespace: &str) -> Result<String, ScopeError> {
    QueryScope::Namespace {
        label: label.to_owned(),
        namespace: namespace.to_owned(),
        grants: Vec::new(),
    }
    .apply(promql)
}

fn scope_expr(expr: &mut Expr, rule: &Rule<'_>) -> Result<(), ScopeError> {
    match expr {
        Expr::VectorSelector(vs) => scope_selector(vs, rule),
        Expr::MatrixSelector(ms) => scope_selector(&mut ms.vs, rule),
        Expr::Aggregate(a) => {
            scope_expr(&mut a.expr, rule)?;
            match &mut a.param {
                Some(param) => scope_expr(param, rule),
                None => Ok(()),
            }
        }
        Expr::Unary(u) => scope_expr(&mut u.expr, rule),
        Expr::Binary(b) => {
            scope_expr(&mut b.lhs, rule)?;
            scope_expr(&mut b.rhs, rule)
        }
        Expr::Paren(p) => scope_expr(&mut p.expr, rule),
        Expr::Subquery(s) => scope_expr(&mut s.expr, rule),
        Expr::Call(c) => {
            for arg in &mut c.args.args {
                scope_expr(arg, rule)?;
            }
            Ok(())
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::Extension(e) => Err(ScopeError::Opaque(e.expr.name().to_owned())),
    }
}

/// The metric name a selector (its name, or a `__name__="..."` matcher in `list`) selects
/// exactly, if any.
fn exact_name(name: Option<&str>, list: &[Matcher]) -> Option<String> {
    name.map(str::to_owned).or_else(|| {
        list.iter()
            .find(|m| m.name == METRIC_NAME && matches!(m.op, MatchOp::Equal))
            .map(|m| m.value.clone())
    })
}

/// Checks one list of matchers (a selector's, or one alternative of an `or` selector) and adds
/// `label="<namespace>"` where it names no namespace.
fn scope_list(
    vs_text: &str,
    name: Option<&str>,
    list: &mut Vec<Matcher>,
    rule: &Rule<'_>,
) -> Result<(), ScopeError> {
    let mut named = false;
    for m in list.iter().filter(|m| m.name == rule.label) {
        named = true;
        let equal = matches!(m.op, MatchOp::Equal);
        if equal && m.value == rule.namespace {
            continue;
        }
        let grant = rule
            .grants
            .iter()
            .filter(|g| equal && g.source == m.value)
            .find(|g| {
                g.metrics.is_empty() || name.is_some_and(|n| g.metrics.iter().any(|x| x == n))
            });
        if grant.is_some() {
            continue;
        }
        let partial = rule
            .grants
            .iter()
            .find(|g| equal && g.source == m.value)
            .map(|g| g.metrics.join(", "));
        return Err(match partial {
            Some(metrics) => ScopeError::NotGranted {
                selector: vs_text.to_owned(),
                other: m.value.clone(),
                namespace: rule.namespace.to_owned(),
                metrics,
            },
            None => ScopeError::ForeignNamespace {
                selector: vs_text.to_owned(),
                matcher: m.to_string(),
                label: rule.label.to_owned(),
                namespace: rule.namespace.to_owned(),
            },
        });
    }
    if !named {
        list.push(Matcher::new(MatchOp::Equal, rule.label, rule.namespace));
    }
    Ok(())
}

/// Refuses any matcher of the namespace label but `label="<namespace>"` (or a granted one), then
/// adds that one where missing: to the selector's matchers, and to each alternative of a
/// selector written with `or`.
fn scope_selector(vs: &mut VectorSelector, rule: &Rule<'_>) -> Result<(), ScopeError> {
    let text = crate::text::shorten(&vs.to_string(), 200);
    let name = vs.name.clone();
    let Matchers {
        matchers,
        or_matchers,
    } = &mut vs.matchers;
    if or_matchers.is_empty() {
        let exact = exact_name(name.as_deref(), matchers);
        scope_list(&text, exact.as_deref(), matchers, rule)
    } else {
        for alternative in or_matchers.iter_mut() {
            let exact = exact_name(name.as_deref(), alternative);
            scope_list(&text, exact.as_deref(), alternative, rule)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::promql::raw_selectors;

    fn scoped(q: &str) -> Result<String, ScopeError> {
        scope(q, "namespace", "shop")
    }

    /// Every selector of `q` (parsed again) matches `namespace="shop"`.
    fn every_selector_is_scoped(q: &str) {
        let rewritten = scoped(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        let selectors = raw_selectors(&rewritten).unwrap_or_else(|e| panic!("{rewritten}: {e}"));
        assert!(!selectors.is_empty(), "{rewritten}");
        for s in selectors {
            assert!(s.contains(r#"namespace="shop""#), "{s} in {rewritten}");
        }
    }

    #[test]
    fn every_selector_in_every_position_gets_the_namespace() {
        for q in [
            r#"sum(rate(http_requests_total{namespace="shop"}[5m]))"#,
            "up",
            r#"sum(rate(a[5m])) / sum(b{job="x"})"#,
            "max_over_time(a[10m:1m])",
            "topk(scalar(b), a)",
            r#"histogram_quantile(0.9, sum by (le) (rate(h_bucket[2m])))"#,
            r#"label_replace(a, "x", "$1", "y", "(.*)")"#,
            "-a + on() group_left b offset 5m",
            "a @ 100",
            r#"{__name__=~"a|b"}"#,
            "(a)",
            "absent(nothing_here)",
        ] {
            every_selector_is_scoped(q);
        }
    }

    #[test]
    fn its_own_namespace_is_kept_once() {
        let q = scoped(r#"sum(jobs{namespace="shop", app="w"})"#).unwrap();
        assert_eq!(q.matches("namespace=").count(), 1, "{q}");
    }

    #[test]
    fn any_other_matcher_on_the_namespace_label_is_refused_with_a_clear_message() {
        for q in [
            r#"sum(rate(http_requests_total{namespace="payments"}[5m]))"#,
            r#"a{namespace!="shop"}"#,
            r#"a{namespace=~"shop"}"#,
            r#"a{namespace=~"sh.p|payments"}"#,
            r#"a{namespace!~"x"}"#,
            r#"sum(a) / sum(b{namespace="payments"})"#,
            r#"max_over_time(a{namespace="payments"}[5m:1m])"#,
            r#"topk(scalar(b{namespace="payments"}), a)"#,
        ] {
            let e = scoped(q).unwrap_err();
            assert!(
                matches!(&e, ScopeError::ForeignNamespace { .. }),
                "{q}: {e:?}"
            );
            let message = e.to_string();
            assert!(
                message
                    .contains("a policy reads only its own namespace's series (namespace=\"shop\""),
                "{message}"
            );
        }
    }

    #[test]
    fn another_label_carries_the_namespace_where_relabeling_named_it_so() {
        let q = scope("sum(a)", "kubernetes_namespace", "shop").unwrap();
        assert!(q.contains(r#"kubernetes_namespace="shop""#), "{q}");
        // A `namespace` label is then an ordinary label.
        assert!(scope(r#"a{namespace="x"}"#, "kubernetes_namespace", "shop").is_ok());
    }

    #[test]
    fn each_alternative_of_an_or_selector_is_scoped_and_checked() {
        let q = scoped(r#"a{x="1" or y="2"}"#).unwrap();
        assert_eq!(q.matches(r#"namespace="shop""#).count(), 2, "{q}");
        assert!(scoped(r#"a{x="1" or namespace="payments"}"#).is_err());
    }

    #[test]
    fn a_query_that_does_not_parse_says_so() {
        assert!(matches!(scoped("sum(a{"), Err(ScopeError::Parse(_))));
    }

    #[test]
    fn the_rewritten_query_keeps_offset_at_and_ranges() {
        let q = scoped("rate(a[5m] offset 1h) + b @ 100").unwrap();
        assert!(q.contains("[5m] offset 1h"), "{q}");
        assert!(q.contains("@ 100"), "{q}");
    }

    fn granted(grants: &[&str]) -> QueryScope {
        let rules = Rules {
            unscoped: BTreeSet::new(),
            grants: grants.iter().map(|g| g.parse().unwrap()).collect(),
        };
        rules.scope_for("shop", "namespace")
    }

    #[test]
    fn a_grant_lets_a_namespace_name_another_in_its_selectors() {
        let scope = granted(&["shop=broker", "other=payments"]);
        let q = scope
            .apply(r#"sum(queue_depth{namespace="broker", queue="orders"}) / sum(workers)"#)
            .unwrap();
        assert!(q.contains(r#"namespace="broker""#), "{q}");
        assert!(q.contains(r#"workers{namespace="shop"}"#), "{q}");
        // Another namespace's grant is not this one's.
        let e = scope.apply(r#"a{namespace="payments"}"#).unwrap_err();
        assert!(matches!(e, ScopeError::ForeignNamespace { .. }), "{e:?}");
        // A grant is for `=` only: a regular expression is refused even over granted names.
        assert!(scope.apply(r#"a{namespace=~"broker|shop"}"#).is_err());
    }

    #[test]
    fn a_grant_for_named_metrics_covers_only_those() {
        let scope = granted(&["shop=broker:rabbitmq_queue_messages_ready"]);
        assert!(
            scope
                .apply(r#"sum(rabbitmq_queue_messages_ready{namespace="broker"})"#)
                .is_ok()
        );
        assert!(
            scope
                .apply(r#"sum({__name__="rabbitmq_queue_messages_ready", namespace="broker"})"#)
                .is_ok()
        );
        for q in [
            r#"sum(rabbitmq_connections{namespace="broker"})"#,
            r#"sum({__name__=~"rabbitmq_queue_messages_ready|x", namespace="broker"})"#,
        ] {
            let e = scope.apply(q).unwrap_err();
            assert!(matches!(e, ScopeError::NotGranted { .. }), "{q}: {e:?}");
            assert!(
                e.to_string()
                    .contains("only for the metrics rabbitmq_queue_messages_ready"),
                "{e}"
            );
        }
    }

    #[test]
    fn an_opted_out_namespace_runs_its_queries_as_written() {
        let rules = Rules {
            unscoped: ["platform".to_owned()].into(),
            grants: Vec::new(),
        };
        let q = r#"sum(rate(x{namespace=~".+"}[5m]))"#;
        assert_eq!(
            rules.scope_for("platform", "namespace").apply(q).unwrap(),
            q
        );
        assert!(rules.scope_for("shop", "namespace").apply(q).is_err());
    }

    #[test]
    fn a_server_error_naming_another_namespaces_series_loses_them() {
        let scope = granted(&["shop=broker"]);
        let message = r#"execution: found duplicate series for the match group {namespace="payments", pod="pay-1"} on the right hand-side; many-to-many matching not allowed"#;
        let clean = redact_foreign_series(&scope, message);
        assert!(
            !clean.contains("payments") && !clean.contains("pay-1"),
            "{clean}"
        );
        assert!(
            clean.contains("{<a series of another namespace>} on the right"),
            "{clean}"
        );
        // Its own and granted namespaces' series stay, and so does JSON-escaped text.
        let own = r#"duplicate series {namespace="shop", pod="web-1"} and {namespace="broker"}"#;
        assert_eq!(redact_foreign_series(&scope, own), own);
        let escaped = r#"{\"error\": \"match group {namespace=\"payments\"}\"}"#;
        assert!(!redact_foreign_series(&scope, escaped).contains("payments"));
        // Another label that ends in the namespace label is not it.
        let other = r#"{kubernetes_namespace="payments"}"#;
        assert_eq!(redact_foreign_series(&scope, other), other);
        // Opted out: as written.
        let unscoped = QueryScope::Unscoped {
            namespace: "platform".into(),
        };
        assert_eq!(redact_foreign_series(&unscoped, message), message);
    }

    proptest::proptest! {
        /// Any text (a server's error, however odd) is cleaned without a panic, and the cleaned
        /// text names no `namespace="payments"`.
        #[test]
        fn any_message_is_cleaned_without_a_panic(
            text in proptest::string::string_regex(r#"[{}=\\", ]{0,40}(namespace *= *\\?"payments\\?")?[a-z{}=\\", ]{0,40}"#).unwrap()
        ) {
            let clean = redact_foreign_series(&granted(&["shop=broker"]), &text);
            proptest::prop_assert!(!clean.contains(r#"namespace="payments""#), "{clean}");
        }
    }

    #[test]
    fn grants_are_read_and_bounded() {
        let g: Grant = "shop=broker:a_total,b".parse().unwrap();
        assert_eq!(g.to_string(), "shop=broker:a_total,b");
        for bad in [
            "shop",
            "shop=shop",
            "Shop=broker",
            "shop=broker:",
            "shop=broker:1x",
            "shop=broker:a,,b",
        ] {
            assert!(bad.parse::<Grant>().is_err(), "{bad}");
        }
        let many = format!("shop=broker:{}", vec!["m"; MAX_GRANT_METRICS + 1].join(","));
        assert!(many.parse::<Grant>().unwrap_err().contains("at most 100"));
    }

    #[test]
    fn only_other_namespaces_unreadable_are_hidden_from_messages() {
        let scope = granted(&["shop=broker"]);
        assert!(scope.may_read("namespace", "shop"));
        assert!(scope.may_read("namespace", "broker"));
        assert!(!scope.may_read("namespace", "payments"));
        assert!(scope.may_read("job", "payments"));
    }
}
