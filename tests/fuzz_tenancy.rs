//! Any PromQL a policy author writes, in any shape, reads only the policy's own namespace: the
//! rewritten query's every selector carries `namespace="shop"` and no other namespace matcher,
//! or the query is refused because it named another namespace (issue 15).

use proptest::prelude::*;
use scalewise::metrics::promql::raw_selectors;
use scalewise::metrics::tenancy::{ScopeError, scope};

/// A label matcher, and whether it names the namespace otherwise than `namespace="shop"`.
fn matcher() -> impl Strategy<Value = (String, bool)> {
    prop_oneof![
        Just((r#"job="api""#.to_owned(), false)),
        Just((r#"code=~"5..""#.to_owned(), false)),
        Just((r#"namespace="shop""#.to_owned(), false)),
        Just((r#"kubernetes_namespace="payments""#.to_owned(), false)),
        Just((r#"namespace="payments""#.to_owned(), true)),
        Just((r#"namespace!="shop""#.to_owned(), true)),
        Just((r#"namespace=~"shop""#.to_owned(), true)),
        Just((r#"namespace=~".+""#.to_owned(), true)),
        Just((r#"namespace!~"x""#.to_owned(), true)),
    ]
}

/// A vector selector: a metric name and up to three matchers.
fn selector() -> impl Strategy<Value = (String, bool)> {
    (
        prop_oneof![Just("http_requests_total"), Just("queue_depth"), Just("up")],
        proptest::collection::vec(matcher(), 0..3),
    )
        .prop_map(|(name, matchers)| {
            let foreign = matchers.iter().any(|(_, f)| *f);
            let text: Vec<String> = matchers.into_iter().map(|(m, _)| m).collect();
            if text.is_empty() {
                (name.to_owned(), foreign)
            } else {
                (format!("{name}{{{}}}", text.join(", ")), foreign)
            }
        })
}

/// An expression of any shape over those selectors, and whether any of them is foreign.
fn expression() -> impl Strategy<Value = (String, bool)> {
    selector().prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            inner
                .clone()
                .prop_map(|(e, f)| (format!("sum(rate({}))", range_target(&e)), f)),
            inner
                .clone()
                .prop_map(|(e, f)| (format!("sum by (pod) ({e})"), f)),
            (inner.clone(), inner.clone())
                .prop_map(|((a, fa), (b, fb))| (format!("({a}) / ({b})"), fa || fb)),
            (inner.clone(), inner.clone())
                .prop_map(|((a, fa), (b, fb))| (format!("{a} or on () {b}"), fa || fb)),
            inner
                .clone()
                .prop_map(|(e, f)| (format!("max_over_time(({e})[10m:1m])"), f)),
            (inner.clone(), inner.clone())
                .prop_map(|((a, fa), (b, fb))| (format!("topk(scalar({a}), {b})"), fa || fb)),
            inner.clone().prop_map(|(e, f)| (
                format!(r#"label_replace({e}, "x", "$1", "pod", "(.*)")"#),
                f
            )),
            inner.prop_map(|(e, f)| (format!("-({e})"), f)),
        ]
    })
}

/// A range over `e`: of a plain selector (with an offset), or a subquery of anything else.
fn range_target(e: &str) -> String {
    if e.contains('(') {
        format!("({e})[5m:1m]")
    } else {
        format!("{e}[5m] offset 5m")
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_query_reads_its_own_namespace_or_is_refused((query, foreign) in expression()) {
        // Some generated shapes are not valid PromQL (a range of a range): they are refused for
        // that, as the API server's author would see.
        match scope(&query, "namespace", "shop") {
            Ok(rewritten) => {
                prop_assert!(!foreign, "{query} named another namespace and was accepted: {rewritten}");
                let selectors = raw_selectors(&rewritten).expect("the rewritten query parses");
                for s in selectors {
                    prop_assert!(
                        s.contains(r#"{namespace="shop""#) || s.contains(r#",namespace="shop""#),
                        "{s} in {rewritten}"
                    );
                    for other in ["namespace!=", "namespace=~", "namespace!~", r#"namespace="payments""#] {
                        // As a matcher of its own (kubernetes_namespace is another label).
                        for before in ['{', ','] {
                            prop_assert!(!s.contains(&format!("{before}{other}")), "{s} in {rewritten}");
                        }
                    }
                }
            }
            Err(ScopeError::ForeignNamespace { .. }) => prop_assert!(foreign, "{query}"),
            Err(ScopeError::Parse(_)) => {}
            Err(e) => prop_assert!(false, "{query}: {e}"),
        }
    }
}
