//! Large and hostile inputs into manifest reading, validation and the PromQL checks: nothing
//! panics or overflows the stack, and every problem names its field. Property tests with large
//! generated inputs, sized to run in a few seconds in a debug build.

mod cases;

use proptest::prelude::*;
use scalewise::api::limits::{MAX_QUERY_LENGTH, MAX_QUERY_NESTING};
use scalewise::api::{FieldError, ScalingPolicySpec, validate};
use scalewise::manifest::{parse_documents, read_policy};
use serde_json::{Value, json};

/// A 2 MiB stack: what a test thread and a tokio worker thread get by default.
const STACK: usize = 2 << 20;

fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(f)
        .expect("a thread")
        .join()
        .expect("no panic")
}

fn query_spec(query: &str) -> ScalingPolicySpec {
    let value = json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1,
        "maxReplicas": 5,
        "metrics": [{"name": "q", "query": query, "target": 1}],
    });
    serde_json::from_value(value).expect("a spec")
}

fn query_errors(query: String) -> Vec<FieldError> {
    on_small_stack(move || validate(&query_spec(&query)))
}

fn base_manifest() -> Value {
    json!({
        "apiVersion": "scalewise.dev/v1alpha1",
        "kind": "ScalingPolicy",
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 10,
            "interval": "15s",
            "metrics": [
                {"name": "cpu", "cpu": {"podSelector": "a=\"b\""}, "target": 70, "window": "2m"},
                {"name": "lat", "latency": {"histogram": "h", "quantile": 0.9, "selector": "a=\"b\""}, "scaleOutAbove": 1, "scaleInBelow": 0.5},
                {"name": "q", "query": "sum(rate(x[{window}]))", "targetPerReplica": 5},
            ],
            "behavior": {
                "scaleOut": {"step": 2, "cooldown": "60s", "policies": [{"type": "Pods", "value": 4, "period": "15s"}]},
                "scaleIn": {"stabilizationWindow": "5m", "selectPolicy": "Min"},
            },
            "onMetricFailure": {"action": "Fallback", "fallbackReplicas": 2, "after": 3},
        },
    })
}

/// Every problem of a manifest names a field (or the document, when it is not an object): a
/// field of the object, or an unknown field wherever it is.
fn assert_every_error_names_a_field(errors: &[FieldError]) {
    for e in errors {
        assert!(!e.path.is_empty(), "no path: {e:?}");
        assert!(
            ["spec", "apiVersion", "kind", "metadata", "(document)"]
                .iter()
                .any(|root| e.path.starts_with(root))
                || e.message.starts_with("unknown field"),
            "not a field path: {e:?}"
        );
    }
}

fn read_text(text: &str) -> Vec<FieldError> {
    let Ok(documents) = parse_documents(text) else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    for document in documents.into_iter().flat_map(|d| d.objects()) {
        if let Err(e) = read_policy(&document) {
            errors.extend(e);
        }
    }
    errors
}

#[test]
fn a_query_nested_ten_thousand_parentheses_deep_is_refused_without_overflowing_the_stack() {
    for open in [
        "(",
        "sum(",
        "abs(",
        "-(",
        "max_over_time((",
        "m{a=~\"x\"}+(",
    ] {
        let depth = 10_000;
        let query = format!("{}up{}", open.repeat(depth), ")".repeat(depth));
        let errors = query_errors(query);
        assert_eq!(errors.len(), 1, "{open}: {errors:?}");
        assert_eq!(errors[0].path, "spec.metrics[0].query");
        assert!(
            errors[0].message.starts_with(&format!(
                "must be at most {MAX_QUERY_LENGTH} characters long"
            )),
            "{}",
            errors[0].message
        );
    }
}

#[test]
fn a_query_within_the_length_limit_but_nested_past_the_nesting_limit_is_refused_before_parsing() {
    // sum( nested about 2,000 deep overflows the parser's stack in a debug build: within the
    // length limit, only the nesting limit keeps it from the parser.
    let depth = (MAX_QUERY_LENGTH - 2) / 5;
    let query = format!("{}up{}", "sum(".repeat(depth), ")".repeat(depth));
    assert!(query.len() <= MAX_QUERY_LENGTH);
    let errors = query_errors(query);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].message,
        format!("must nest brackets at most {MAX_QUERY_NESTING} deep, got {depth}")
    );
}

#[test]
fn a_query_nested_exactly_to_the_nesting_limit_is_accepted() {
    let depth = MAX_QUERY_NESTING;
    let query = format!("{}up{}", "sum(".repeat(depth), ")".repeat(depth));
    assert_eq!(query_errors(query), vec![]);
    let query = format!("{}up{}", "(".repeat(depth + 1), ")".repeat(depth + 1));
    assert_eq!(query_errors(query).len(), 1);
}

#[test]
fn brackets_inside_string_literals_do_not_count_as_nesting() {
    let value = "(".repeat(500) + &"[{".repeat(500);
    let query = format!("sum(up{{job=\"{value}\", x='((\\'(('}})");
    assert_eq!(query_errors(query), vec![]);
}

#[test]
fn a_selector_nested_ten_thousand_deep_is_refused_without_overflowing_the_stack() {
    let selector = format!("a=~\"x\"{}", "{".repeat(4000));
    let errors = on_small_stack(move || {
        let mut spec = query_spec("up");
        spec.metrics[0].query = None;
        spec.metrics[0].latency = Some(scalewise::api::LatencyMetric {
            histogram: "h".into(),
            quantile: 0.5,
            selector: Some(selector),
        });
        validate(&spec)
    });
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "spec.metrics[0].latency.selector");
}

#[test]
fn deeply_nested_yaml_is_an_error_not_a_stack_overflow() {
    for text in [
        "[".repeat(100_000),
        format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000)),
        format!("spec: {}1{}", "{a: ".repeat(10_000), "}".repeat(10_000)),
        "- ".repeat(10_000) + "x",
    ] {
        on_small_stack(move || read_text(&text));
    }
}

#[test]
fn a_list_of_ten_thousand_policies_is_read_item_by_item() {
    let items: Vec<Value> = (0..10_000)
        .map(|i| {
            let mut m = base_manifest();
            m["metadata"]["name"] = json!(format!("p{i}"));
            if i % 1000 == 0 {
                m["spec"]["maxReplicas"] = json!(2_147_483_648_i64);
            }
            m
        })
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
    let errors = on_small_stack(move || read_text(&list));
    assert_eq!(errors.len(), 10, "{:?}", &errors[..errors.len().min(3)]);
    assert!(errors.iter().all(|e| e.path == "spec.maxReplicas"));
}

/// A JSON value of bounded size: scalars, strings of any characters, lists and maps.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        "[0-9]{1,30}[hms]".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every pointer to a value of the base manifest, to replace.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                pointers(v, format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// PromQL-ish text: tokens of the language, brackets, strings and stray bytes.
fn promql_soup(max_tokens: usize) -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("sum".to_owned()),
        Just("rate".to_owned()),
        Just("by".to_owned()),
        Just("up".to_owned()),
        Just("{window}".to_owned()),
        Just("{namespace}".to_owned()),
        Just("[5m:1m]".to_owned()),
        Just(" + ".to_owned()),
        Just(" / ".to_owned()),
        Just("-".to_owned()),
        Just(" offset 1m".to_owned()),
        Just(" @ start()".to_owned()),
        Just(",".to_owned()),
        Just("=~".to_owned()),
        Just("\"".to_owned()),
        Just("'".to_owned()),
        Just("`".to_owned()),
        Just("\\".to_owned()),
        Just("1e308".to_owned()),
        Just("0x".to_owned()),
        "[a-z_:]{1,8}".boxed(),
        "\"[^\"]{0,8}\"".boxed(),
        ".".boxed(),
    ];
    prop::collection::vec(token, 0..max_tokens).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases::scaled(256), ..ProptestConfig::default() })]

    #[test]
    fn any_text_read_as_a_manifest_never_panics_and_names_a_field(text in ".{0,2000}") {
        assert_every_error_names_a_field(&read_text(&text));
    }

    #[test]
    fn yaml_like_text_read_as_a_manifest_never_panics_and_names_a_field(
        lines in prop::collection::vec(
            ("( {0,6})", prop_oneof![
                Just("apiVersion: scalewise.dev/v1alpha1".to_owned()),
                Just("kind: ScalingPolicy".to_owned()),
                Just("kind: List".to_owned()),
                Just("items:".to_owned()),
                Just("spec:".to_owned()),
                Just("metrics:".to_owned()),
                Just("- name: x".to_owned()),
                Just("---".to_owned()),
                Just("&a [*a, *a]".to_owned()),
                "[a-zA-Z]{1,12}: .{0,20}".boxed(),
                "- .{0,20}".boxed(),
            ]),
            0..60,
        )
    ) {
        let text: String = lines.iter().map(|(indent, line)| format!("{indent}{line}\n")).collect();
        assert_every_error_names_a_field(&read_text(&text));
    }

    #[test]
    fn any_value_anywhere_in_a_valid_manifest_is_read_or_refused_with_a_field_path(
        choice in any::<prop::sample::Index>(),
        value in any_json(),
    ) {
        let mut manifest = base_manifest();
        let mut all = Vec::new();
        pointers(&manifest, String::new(), &mut all);
        let pointer = choice.get(&all).clone();
        if let Some(slot) = manifest.pointer_mut(&pointer) {
            *slot = value;
        }
        let errors = read_text(&manifest.to_string());
        assert_every_error_names_a_field(&errors);
    }

    #[test]
    fn any_spec_value_never_panics(spec in any_json()) {
        let mut manifest = base_manifest();
        manifest["spec"] = spec;
        assert_every_error_names_a_field(&read_text(&manifest.to_string()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases::scaled(40), ..ProptestConfig::default() })]

    #[test]
    fn any_promql_text_is_checked_on_a_small_stack_and_reported_on_the_query(
        query in promql_soup(1000),
    ) {
        for e in query_errors(query) {
            prop_assert_eq!(e.path, "spec.metrics[0].query");
        }
    }

    #[test]
    fn arbitrarily_nested_queries_are_refused_past_the_nesting_limit_without_parsing(
        openers in prop::collection::vec(
            prop_oneof![
                Just(("(", ")")),
                Just(("sum(", ")")),
                Just(("abs(-", ")")),
                Just(("max_over_time((", ")[5m:])")),
                Just(("sum by (a) (", ")")),
                Just(("m{a=\"(\"} + on(x) group_left (", ")")),
            ],
            0..3000,
        ),
    ) {
        let open: String = openers.iter().map(|(o, _)| *o).collect();
        let close: String = openers.iter().rev().map(|(_, c)| *c).collect();
        let query = format!("{open}up{close}");
        let length = query.chars().count();
        let depth = scalewise::api::limits::bracket_depth(&query);
        let errors = query_errors(query);
        if length > MAX_QUERY_LENGTH {
            prop_assert_eq!(errors.len(), 1);
            prop_assert!(errors[0].message.starts_with("must be at most"), "{}", errors[0].message);
        } else if depth > MAX_QUERY_NESTING {
            prop_assert_eq!(errors.len(), 1);
            prop_assert!(errors[0].message.starts_with("must nest brackets"), "{}", errors[0].message);
        }
        for e in errors {
            prop_assert_eq!(e.path, "spec.metrics[0].query");
        }
    }
}
