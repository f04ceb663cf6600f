//! Answer classification on hostile input (issue 11, "Fuzzing"): whatever a server sends — any
//! bytes, any JSON, any JSON in any slot of an answer, huge numbers, NaN and infinities in every
//! spelling, nesting ten thousand deep, thousands of series, any content type and status code —
//! `classify`, `value`, `age` and `judge` never panic, every failure has a message of at most
//! 512 bytes, and well-formed answers read as a model of them says. The same for the range
//! answers a forecast's history is read from (`metrics::range::history`). Property tests (proptest)
//! rather than a coverage-guided fuzzer, so that they run in every `cargo test`; the whole file
//! takes a few seconds in a debug build.

mod cases;

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};

use scalewise::decide::forecast::History;
use scalewise::metrics::answer::{Answer, age, classify, judge, value};
use scalewise::metrics::limits::MAX_MESSAGE_BYTES;
use scalewise::metrics::range::{Span, history};
use scalewise::metrics::{Failure, Invalid, SourceKind};

const KINDS: [SourceKind; 6] = [
    SourceKind::Cpu,
    SourceKind::Memory,
    SourceKind::Latency,
    SourceKind::ErrorRate,
    SourceKind::RequestRate,
    SourceKind::Query,
];

const JSON: Option<&str> = Some("application/json");

/// Every failure says why, within the message limit.
fn assert_message(f: &Failure) {
    assert_text(&f.to_string(), &format!("{f:?}"));
}

/// A failure's message `m` (of `what`) says something, within the message limit.
fn assert_text(m: &str, what: &str) {
    assert!(!m.trim().is_empty(), "{what} has no message");
    assert!(
        m.len() <= MAX_MESSAGE_BYTES,
        "{} bytes: {}",
        m.len(),
        m.chars().take(200).collect::<String>()
    );
}

/// `classify` with every invariant checked, and what `value`, `age` and `judge` make of its
/// answer.
fn check(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    max_series: usize,
) -> Result<Answer, Failure> {
    let result = classify(status, content_type, body, max_series);
    if !(200..300).contains(&status) {
        assert!(
            matches!(result, Err(Failure::Unavailable(_))),
            "HTTP {status} gave {result:?}"
        );
    }
    match &result {
        Ok(Answer::Series(n)) => assert!((2..=max_series).contains(n), "{n} series"),
        Ok(_) => {}
        Err(f) => assert_message(f),
    }
    if let Ok(answer) = &result {
        for kind in KINDS {
            match value(answer, kind) {
                Ok(v) => assert!(v.is_finite() && (v >= 0.0 || kind.allows_negative()), "{v}"),
                Err(f) => assert_message(&f),
            }
        }
        match age(answer) {
            Ok(Some(_) | None) => {}
            Err(f) => assert_message(&f),
        }
        let judged = judge(
            SourceKind::Query,
            Ok(answer.clone()),
            Some(Ok(answer.clone())),
            Duration::from_secs(90),
        );
        if let Err(f) = judged {
            assert_message(&f);
        }
    }
    result
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => Just(200u16),
        2 => 100u16..600,
        1 => any::<u16>(),
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(Some("application/json".to_owned())),
        Just(None),
        ".{0,40}".prop_map(Some),
        prop::collection::vec(any::<u8>(), 0..40)
            .prop_map(|b| Some(String::from_utf8_lossy(&b).into_owned())),
    ]
}

/// Sample values in every spelling a server (or an impostor) might use.
fn value_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        prop::sample::select(vec![
            "NaN",
            "nan",
            "+Inf",
            "-Inf",
            "Inf",
            "inf",
            "-inf",
            "Infinity",
            "-infinity",
            "1e999",
            "-1e999",
            "1e-999",
            "4.9e-324",
            "1.7976931348623157e308",
            "0x10",
            "",
            " 1",
            "1_000",
            "1,5",
            "--1",
            "١٢",
        ])
        .prop_map(str::to_owned),
        "[0-9]{300,1200}",
        "-[0-9]{300,1200}\\.[0-9]{0,50}",
        "-?[0-9]{1,20}(\\.[0-9]{0,20})?([eE][+-]?[0-9]{1,4})?",
        ".{0,20}",
    ]
}

/// Any JSON, with strings that look like numbers and numbers far beyond f64.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        value_text().prop_map(Value::String),
        ".{0,30}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(vec![
                        "status",
                        "data",
                        "resultType",
                        "result",
                        "metric",
                        "value",
                        "values",
                        "histogram",
                        "error",
                        "errorType",
                        "warnings",
                    ])
                    .prop_map(str::to_owned),
                    ".{0,10}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An answer with `v` in one of its slots.
fn in_slot(slot: usize, result_type: &str, v: Value) -> Value {
    match slot % 8 {
        0 => json!({"status": "success", "data": v}),
        1 => json!({"status": "success", "data": {"resultType": result_type, "result": v}}),
        2 => json!({"status": "success", "data": {"resultType": result_type, "result": [v]}}),
        3 => json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": v, "value": [1, "1"]}]}}),
        4 => json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": {}, "value": v}]}}),
        5 => json!({"status": "success", "data": {"resultType": result_type,
            "result": [{"metric": {}, "value": [v, "2"]}, {"metric": {}, "value": [1, v]}]}}),
        6 => json!({"status": v, "data": {"resultType": "scalar", "result": [1, "1"]}}),
        _ => json!({"status": "error", "errorType": v.clone(), "error": v}),
    }
}

fn result_type() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["vector", "scalar", "matrix", "string"]).prop_map(str::to_owned),
        ".{0,10}",
    ]
}

/// What a sample's text reads as: `Some(value)`, or `None` when it is not a float.
fn parsed(text: &str) -> Option<f64> {
    text.parse().ok()
}

/// What `value` must make of one number.
fn expected_value(v: f64, kind: SourceKind) -> Result<f64, Failure> {
    if v.is_nan() {
        Err(Failure::Invalid(Invalid::NaN))
    } else if v.is_infinite() {
        Err(Failure::Invalid(Invalid::Infinite(v)))
    } else if v < 0.0 && !kind.allows_negative() {
        Err(Failure::Invalid(Invalid::Negative {
            value: v,
            source: kind,
        }))
    } else {
        Ok(v)
    }
}

fn same_number(a: &Answer, want: f64) -> bool {
    matches!(a, Answer::Number(v) if v.to_bits() == want.to_bits() || (v.is_nan() && want.is_nan()))
}

/// A series with these labels and this sample value.
fn series(labels: &std::collections::BTreeMap<String, String>, value: &str) -> Value {
    json!({"metric": labels, "value": [1_700_000_000.5, value]})
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases::scaled(256), ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_never_panic(
        status in status(),
        content_type in content_type(),
        body in prop::collection::vec(any::<u8>(), 0..2048),
        max_series in 1usize..200,
    ) {
        check(status, content_type.as_deref(), &body, max_series).ok();
    }

    #[test]
    fn any_json_never_panics(status in status(), body in json_value(), max_series in 1usize..200) {
        check(status, JSON, body.to_string().as_bytes(), max_series).ok();
    }

    #[test]
    fn any_json_in_any_slot_of_an_answer_never_panics(
        status in status(),
        content_type in content_type(),
        slot in 0usize..8,
        result_type in result_type(),
        v in json_value(),
        max_series in 1usize..5,
    ) {
        let body = in_slot(slot, &result_type, v).to_string();
        check(status, content_type.as_deref(), body.as_bytes(), max_series).ok();
    }

    #[test]
    fn truncated_answers_never_panic(
        series_count in 0usize..5,
        cut in any::<prop::sample::Index>(),
    ) {
        let values: Vec<Value> = (0..series_count).map(|i| json!({"metric": {"i": i.to_string()}, "value": [1, "1"]})).collect();
        let body = json!({"status": "success", "data": {"resultType": "vector", "result": values}}).to_string();
        let end = cut.index(body.len() + 1);
        let result = check(200, JSON, &body.as_bytes()[..end], 100);
        if end < body.len() {
            prop_assert!(matches!(result, Err(Failure::Unavailable(_))), "{result:?}");
        }
    }

    #[test]
    fn every_spelling_of_a_sample_reads_as_a_number_or_says_why_not(
        text in value_text(),
        scalar in any::<bool>(),
        labels in prop::collection::btree_map(".{0,12}", ".{0,24}", 0..5),
    ) {
        let body = if scalar {
            json!({"status": "success", "data": {"resultType": "scalar", "result": [1_700_000_000, text]}})
        } else {
            json!({"status": "success", "data": {"resultType": "vector", "result": [series(&labels, &text)]}})
        };
        let result = check(200, JSON, body.to_string().as_bytes(), 100);
        match parsed(&text) {
            Some(v) => {
                let answer = result.unwrap();
                prop_assert!(same_number(&answer, v), "{text:?}: {answer:?}");
                for kind in KINDS {
                    let got = value(&answer, kind);
                    let want = expected_value(v, kind);
                    prop_assert!(
                        got == want || matches!((&got, &want), (Err(Failure::Invalid(Invalid::NaN)), Err(Failure::Invalid(Invalid::NaN)))),
                        "{text:?} as {kind:?}: {got:?}, want {want:?}"
                    );
                }
            }
            None => prop_assert!(matches!(result, Err(Failure::Unavailable(_))), "{text:?}: {result:?}"),
        }
    }

    #[test]
    fn an_instant_vector_reads_as_its_series_count_says(
        samples in prop::collection::vec(
            (prop::collection::btree_map(".{0,8}", ".{0,16}", 0..4), prop_oneof![9 => "[0-9]{1,4}", 1 => value_text()]),
            0..300,
        ),
        max_series in 1usize..200,
    ) {
        let result: Vec<Value> = samples.iter().map(|(labels, text)| series(labels, text)).collect();
        let body = json!({"status": "success", "data": {"resultType": "vector", "result": result}}).to_string();
        let got = check(200, JSON, body.as_bytes(), max_series);
        let n = samples.len();
        // Series are parsed in order; the one past the cap stops the parse after it is read.
        let first_bad = samples.iter().position(|(_, text)| parsed(text).is_none());
        if first_bad.is_some_and(|i| i <= max_series) {
            prop_assert!(matches!(got, Err(Failure::Unavailable(_))), "{got:?}");
        } else if n > max_series {
            prop_assert_eq!(got, Err(Failure::Invalid(Invalid::TooManySeries { limit: max_series })));
        } else {
            match n {
                0 => prop_assert_eq!(got, Ok(Answer::Nothing)),
                1 => {
                    let v = parsed(&samples[0].1).unwrap();
                    let answer = got.unwrap();
                    prop_assert!(same_number(&answer, v), "{answer:?}");
                }
                n => {
                    prop_assert_eq!(&got, &Ok(Answer::Series(n)));
                    prop_assert_eq!(
                        value(&got.unwrap(), SourceKind::Query),
                        Err(Failure::Invalid(Invalid::Series(n)))
                    );
                }
            }
        }
    }

    #[test]
    fn nesting_thousands_deep_in_any_slot_never_overflows_the_stack(
        depth in prop_oneof![Just(10_000usize), 129usize..10_000],
        objects in any::<bool>(),
        slot in 0usize..8,
        result_type in result_type(),
        status in status(),
    ) {
        let (open, close) = if objects { (r#"{"a":"#, "}") } else { ("[", "]") };
        let deep = format!("{}1{}", open.repeat(depth), close.repeat(depth));
        let body = in_slot(slot, &result_type, json!("DEEP")).to_string().replace(r#""DEEP""#, &deep);
        check(status, JSON, body.as_bytes(), 100).ok();
        check(status, JSON, deep.as_bytes(), 100).ok();
    }

    #[test]
    fn an_age_of_any_size_is_fresh_stale_or_unmeasured_never_a_panic(
        seconds in prop_oneof![any::<f64>(), Just(1e20), Just(f64::MAX), Just(-1e300), Just(1.8446744073709552e19)],
        limit in 0u64..100_000,
        v in any::<f64>(),
    ) {
        let limit = Duration::from_secs(limit);
        let got = judge(SourceKind::Query, Ok(Answer::Number(v)), Some(Ok(Answer::Number(seconds))), limit);
        match &got {
            Ok(sample) => prop_assert!(sample.age.is_some_and(|a| a <= limit)),
            Err(f) => assert_message(f),
        }
        if v.is_finite() && seconds.is_finite() && seconds > limit.as_secs_f64() + 1.0 {
            prop_assert!(matches!(got, Err(Failure::Stale { age: Some(_), .. })), "{got:?}");
        }
    }
}

/// The nesting the brief of issue 11 names: ten thousand deep, in each slot, with what each reads
/// as. serde_json stops at 128 levels where it builds values and skips ignored values without
/// recursion, so no slot overflows the stack; the answer is malformed (`unavailable`, as every
/// body that is not a Prometheus answer is) wherever the nesting stands for a value, and ignored
/// in labels.
#[test]
fn ten_thousand_levels_of_nesting_are_malformed_where_a_value_belongs_and_ignored_in_labels() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let malformed = |body: &str, why: &str| {
        let got = check(200, JSON, body.as_bytes(), 100);
        let Err(Failure::Unavailable(message)) = &got else {
            panic!("{why}: {got:?}");
        };
        assert!(
            message.starts_with("malformed answer (HTTP 200"),
            "{why}: {message}"
        );
    };
    malformed(&deep, "the whole body");
    for slot in [0, 1, 2, 4, 5, 6] {
        let body = in_slot(slot, "vector", json!("DEEP"))
            .to_string()
            .replace(r#""DEEP""#, &deep);
        malformed(&body, &format!("slot {slot}"));
    }
    let labels = in_slot(3, "vector", json!("DEEP"))
        .to_string()
        .replace(r#""DEEP""#, &format!(r#"{{"a":{deep}}}"#));
    assert_eq!(
        check(200, JSON, labels.as_bytes(), 100),
        Ok(Answer::Number(1.0))
    );
    let error = in_slot(7, "vector", json!("DEEP"))
        .to_string()
        .replace(r#""DEEP""#, &deep);
    malformed(&error, "the error text");
}

/// A hundred thousand series (the most `--prometheus-max-series` allows, a 6 MB answer): past the
/// default cap the parse stops; at the largest cap they are counted.
#[test]
fn a_hundred_thousand_series_are_counted_or_stopped_at_the_cap() {
    let one = r#"{"metric":{"__name__":"up","job":"node"},"value":[1700000000,"1"]}"#;
    let body = format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
        vec![one; 100_000].join(",")
    );
    assert_eq!(
        check(200, JSON, body.as_bytes(), 100),
        Err(Failure::Invalid(Invalid::TooManySeries { limit: 100 }))
    );
    assert_eq!(
        check(200, JSON, body.as_bytes(), 100_000),
        Ok(Answer::Series(100_000))
    );
}

/// `history` with every invariant checked: a history has one point per step of the span, each a
/// finite number (not negative unless allowed) or a gap, and only from a 2xx answer; a failure
/// says why within the message limit.
fn check_history(status: u16, body: &[u8], span: Span, negative: bool) -> Result<History, String> {
    let result = history(status, body, span, negative);
    match &result {
        Ok(h) => {
            assert!((200..300).contains(&status), "HTTP {status} gave a history");
            assert_eq!(h.values.len(), span.points());
            assert_eq!((h.start, h.step), (span.from, span.step));
            for v in h.values.iter().flatten() {
                assert!(
                    v.is_finite() && (negative || *v >= 0.0),
                    "{v} in the history"
                );
            }
        }
        Err(m) => assert_text(m, "a failed range answer"),
    }
    result
}

fn span() -> impl Strategy<Value = Span> {
    (0i64..2_000_000_000, 1i64..3600, 0i64..300).prop_map(|(from, step, n)| Span {
        from,
        to: from + step * n,
        step,
    })
}

/// A range answer with `v` in one of its slots.
fn in_range_slot(slot: usize, v: Value) -> Value {
    let matrix = |result: Value| json!({"status": "success", "data": {"resultType": "matrix", "result": result}});
    match slot % 7 {
        0 => json!({"status": "success", "data": v}),
        1 => matrix(v),
        2 => matrix(json!([v])),
        3 => matrix(json!([{"metric": {}, "values": v}])),
        4 => matrix(json!([{"metric": {}, "values": [v]}])),
        5 => matrix(json!([{"metric": {}, "values": [[v, "1"], [1000, v]]}])),
        _ => json!({"status": "error", "errorType": v.clone(), "error": v}),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases::scaled(256), ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_as_a_range_answer_never_panic(
        status in status(),
        body in prop::collection::vec(any::<u8>(), 0..2048),
        span in span(),
        negative in any::<bool>(),
    ) {
        check_history(status, &body, span, negative).ok();
    }

    #[test]
    fn any_json_in_any_slot_of_a_range_answer_never_panics(
        status in status(),
        slot in 0usize..7,
        v in json_value(),
        span in span(),
        negative in any::<bool>(),
    ) {
        let body = in_range_slot(slot, v).to_string();
        check_history(status, body.as_bytes(), span, negative).ok();
    }

    /// One series of points at any times, with any spelling of a sample: each lands on the
    /// nearest step of the span (a later point on the same step replacing an earlier one), is
    /// kept only as a finite number (not negative unless allowed), and points off the span are
    /// dropped.
    #[test]
    fn a_matrix_reads_as_its_points_placed_on_the_steps(
        span in span(),
        points in prop::collection::vec(
            (prop_oneof![3 => -2i64..302, 1 => any::<i32>().prop_map(i64::from)], prop_oneof![3 => "[0-9]{1,4}(\\.[0-9]{1,3})?", 1 => value_text()]),
            0..80,
        ),
        negative in any::<bool>(),
    ) {
        let values: Vec<Value> = points
            .iter()
            .map(|(k, text)| json!([span.from + k * span.step, text]))
            .collect();
        let body = json!({"status": "success", "data": {"resultType": "matrix",
            "result": [{"metric": {"job": "web"}, "values": values}]}}).to_string();
        let got = check_history(200, body.as_bytes(), span, negative).unwrap();
        let mut want = vec![None; span.points()];
        for (k, text) in &points {
            if let Some(slot) = usize::try_from(*k).ok().and_then(|i| want.get_mut(i)) {
                *slot = parsed(text).filter(|v| v.is_finite() && (negative || *v >= 0.0));
            }
        }
        prop_assert_eq!(got.values, want);
    }
}

#[test]
fn a_refusal_of_a_range_query_with_a_huge_message_is_cut_to_the_limit() {
    let span = Span {
        from: 0,
        to: 600,
        step: 60,
    };
    let body = json!({"status": "error", "errorType": "bad_data", "error": "x".repeat(1 << 20)})
        .to_string();
    let e = check_history(400, body.as_bytes(), span, false).unwrap_err();
    assert!(
        e.starts_with("the server refused the range query (HTTP 400, bad_data)"),
        "{e:.200}"
    );
    let many = json!({"status": "success", "data": {"resultType": "matrix",
        "result": vec![json!({"metric": {}, "values": []}); 5000]}})
    .to_string();
    let e = check_history(200, many.as_bytes(), span, false).unwrap_err();
    assert!(e.contains("returned 5000 series"), "{e}");
}
