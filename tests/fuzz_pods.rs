//! The target's pods on hostile input: whatever a cluster or a server sends — any JSON as a pod,
//! any quantity as a request, any readiness and times, any per-pod answer — decoding, counting and
//! the per-pod answer never panic, every failure says why within the message limit, and the
//! counted value is a finite percent. Property tests, run in every `cargo test`.

mod cases;

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use serde_json::{Value, json};

use scalewise::metrics::answer::{classify, classify_combined, per_pod};
use scalewise::metrics::limits::MAX_MESSAGE_BYTES;
use scalewise::metrics::{Failure, Invalid};
use scalewise::pods::{LeanPod, ReadinessRules, Resource, TargetPods, utilization};

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A quantity as a cluster could hold it, or nonsense.
fn quantity() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,4}(m|Ki|Mi|Gi|k|M|G|e3|E)?",
        "[0-9]{1,3}\\.[0-9]{1,3}",
        Just("1e400".to_owned()),
        Just("-1".to_owned()),
        ".{0,8}",
    ]
}

/// A time around 2026, or nonsense.
fn time() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0i64..7200).prop_map(|s| json!(
            Timestamp::from_second(1_767_225_600 + s)
                .unwrap()
                .to_string()
        )),
        Just(Value::Null),
        ".{0,10}".prop_map(Value::from),
    ]
}

/// A pod with random readiness, phase, times and requests.
fn pod() -> impl Strategy<Value = Value> {
    (
        "[a-z]{1,5}",
        prop_oneof![Just("Running"), Just("Pending"), Just("Failed"), Just("Succeeded")],
        prop::option::of(prop_oneof![Just("True"), Just("False"), Just("Unknown")]),
        time(),
        time(),
        prop::collection::vec(
            (prop::option::of(quantity()), prop::option::of(quantity())),
            0..3,
        ),
        any::<bool>(),
    )
        .prop_map(|(name, phase, ready, start, since, containers, deleting)| {
            let containers: Vec<Value> = containers
                .iter()
                .enumerate()
                .map(|(i, (cpu, memory))| {
                    let mut requests = serde_json::Map::new();
                    if let Some(cpu) = cpu {
                        requests.insert("cpu".into(), json!(cpu));
                    }
                    if let Some(memory) = memory {
                        requests.insert("memory".into(), json!(memory));
                    }
                    json!({"name": format!("c{i}"), "resources": {"requests": requests}})
                })
                .collect();
            let conditions: Vec<Value> = ready
                .map(|status| json!({"type": "Ready", "status": status, "lastTransitionTime": since}))
                .into_iter()
                .collect();
            let mut metadata = json!({"name": name});
            if deleting {
                metadata["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            json!({
                "metadata": metadata,
                "spec": {"containers": containers},
                "status": {"phase": phase, "startTime": start, "conditions": conditions}
            })
        })
}

fn assert_message(message: &str) {
    assert!(!message.trim().is_empty(), "a failure without a message");
    assert!(
        message.len() <= MAX_MESSAGE_BYTES,
        "{} bytes: {message}",
        message.len()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases::scaled(256), ..ProptestConfig::default() })]

    #[test]
    fn any_json_as_a_pod_decodes_or_fails_never_panics(v in json_value()) {
        let _ = serde_json::from_value::<LeanPod>(v);
    }

    #[test]
    fn any_pods_count_to_a_finite_percent_or_say_why(
        pods in prop::collection::vec(pod(), 0..8),
        usage in prop::collection::vec(prop_oneof![0.0f64..4.0, Just(f64::NAN), Just(-1.0), Just(f64::INFINITY)], 0..8),
        resource in prop_oneof![Just(Resource::Cpu), Just(Resource::Memory)],
        init in 0i64..3600,
        delay in 0i64..3600,
        window in 1i64..3600,
        now in 0i64..7200,
    ) {
        let decoded: Vec<Arc<LeanPod>> = pods
            .into_iter()
            .filter_map(|v| serde_json::from_value::<LeanPod>(v).ok())
            .map(Arc::new)
            .collect();
        let samples: BTreeMap<String, f64> = decoded
            .iter()
            .zip(usage)
            .map(|(p, u)| (p.name().to_owned(), u))
            .collect();
        let target = TargetPods { pods: decoded, other_workloads: 1 };
        let rules = ReadinessRules {
            cpu_initialization_period: SignedDuration::from_secs(init),
            initial_readiness_delay: SignedDuration::from_secs(delay),
        };
        let now = Timestamp::from_second(1_767_225_600 + now).unwrap();
        match utilization(&target, &samples, resource, &rules, SignedDuration::from_secs(window), now) {
            Ok(u) => {
                for v in [u.value(), u.scale_out_value(), u.scale_in_value(50.0)] {
                    prop_assert!(v.is_finite() && v >= 0.0, "{v} from {u:?}");
                }
                prop_assert!(u.counts.ready > 0);
                prop_assert!(!u.summary().is_empty());
            }
            Err(e) => assert_message(&e.to_string()),
        }
    }

    #[test]
    fn any_per_pod_answer_reads_as_values_by_pod_or_says_why(
        series in prop::collection::vec(
            (prop::option::of("[a-z]{1,4}"), prop_oneof![9 => "[0-9]{1,3}(\\.[0-9])?", 1 => ".{0,6}"]),
            0..40,
        ),
        max_series in 1usize..60,
        // As the operator sends it, with the age of the samples in the same answer.
        combined in any::<bool>(),
    ) {
        let mut result: Vec<Value> = series
            .iter()
            .map(|(pod, value)| {
                let mut labels = pod.as_ref().map_or_else(|| json!({"namespace": "shop"}), |p| json!({"namespace": "shop", "pod": p}));
                if combined {
                    labels["scalewise_part"] = json!("value");
                }
                json!({"metric": labels, "value": [1_700_000_000.5, value]})
            })
            .collect();
        if combined {
            result.push(json!({"metric": {"scalewise_part": "age"}, "value": [1_700_000_000.5, "2"]}));
        }
        let body = json!({"status": "success", "data": {"resultType": "vector", "result": result}}).to_string();
        let answered = if combined {
            classify_combined(200, Some("application/json"), body.as_bytes(), max_series).map(|(value, _)| value)
        } else {
            classify(200, Some("application/json"), body.as_bytes(), max_series)
        }
        .and_then(|answer| per_pod(&answer, body.as_bytes(), combined));
        match answered {
            Ok(values) => {
                prop_assert!(series.len() <= max_series);
                prop_assert!(series.iter().all(|(pod, _)| pod.is_some()));
                let pods: std::collections::BTreeSet<&String> = series.iter().filter_map(|(p, _)| p.as_ref()).collect();
                prop_assert_eq!(values.len(), pods.len());
            }
            Err(Failure::Invalid(Invalid::NoPodLabel)) => {
                prop_assert!(series.iter().any(|(pod, _)| pod.is_none()));
            }
            Err(f) => assert_message(&f.to_string()),
        }
    }
}
