//! The HorizontalPodAutoscaler's own behaviour tables (tests/data/hpa_behavior.yaml: the rate
//! policy and stabilization cases of its unit tests), replayed through `scalewise decide
//! --state`: the same replicas, held back by the same kind of limit.
//!
//! Each case becomes a policy whose one metric proposes exactly the HPA's prenormalized desired
//! replicas (`targetPerReplica: 1`, no tolerance), with the HPA's rules (no cooldown, which the
//! HPA does not have), and a state holding the case's scale events and recommendations, an
//! evaluation 15 s ago and a run of evaluations long enough for any scale-in window.

use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use serde_json::{Value, json};

/// The evaluation time of every case.
const NOW: i64 = 1_800_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    min: i32,
    max: i32,
    #[serde(default)]
    up: Option<Rules>,
    #[serde(default)]
    down: Option<Rules>,
    #[serde(default, rename = "upEvents")]
    up_events: Vec<(i64, i32)>,
    #[serde(default, rename = "downEvents")]
    down_events: Vec<(i64, i32)>,
    #[serde(default)]
    recommendations: Vec<(i64, i32)>,
    current: i32,
    proposal: i32,
    expected: i32,
    #[serde(default)]
    condition: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rules {
    #[serde(default)]
    pods: Option<(i32, i64)>,
    #[serde(default)]
    percent: Option<(i32, i64)>,
    #[serde(default)]
    unlimited: bool,
    window: i64,
}

fn time(seconds_ago: i64) -> String {
    jiff::Timestamp::from_second(NOW - seconds_ago)
        .expect("a time")
        .to_string()
}

/// A direction's rules in scalewise's terms: the HPA's defaults when the case leaves them out.
fn rules(rules: Option<&Rules>, up: bool) -> Value {
    let Some(rules) = rules else {
        return if up {
            json!({"cooldown": "0s", "stabilizationWindow": "0s", "selectPolicy": "Max", "policies": [
                {"type": "Pods", "value": 4, "period": "15s"},
                {"type": "Percent", "value": 100, "period": "15s"}]})
        } else {
            json!({"cooldown": "0s", "stabilizationWindow": "300s", "selectPolicy": "Max", "policies": [
                {"type": "Percent", "value": 100, "period": "15s"}]})
        };
    };
    let mut policies = Vec::new();
    if let Some((value, period)) = rules.pods {
        policies.push(json!({"type": "Pods", "value": value, "period": format!("{period}s")}));
    }
    if let Some((value, period)) = rules.percent {
        policies.push(json!({"type": "Percent", "value": value, "period": format!("{period}s")}));
    }
    if rules.unlimited {
        policies.push(json!({"type": "Pods", "value": 1_000_000, "period": "1s"}));
    }
    json!({
        "cooldown": "0s",
        "stabilizationWindow": format!("{}s", rules.window),
        "selectPolicy": "Max",
        "policies": policies,
    })
}

fn policy(case: &Case) -> Value {
    json!({
        "apiVersion": "scalewise.dev/v1alpha1",
        "kind": "ScalingPolicy",
        "metadata": {"name": "hpa-case", "namespace": "default"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": case.min,
            "maxReplicas": case.max,
            "interval": "15s",
            "tolerance": 0,
            "metrics": [{"name": "load", "query": "sum(load)", "targetPerReplica": 1}],
            "behavior": {
                "scaleOut": rules(case.up.as_ref(), true),
                "scaleIn": rules(case.down.as_ref(), false),
            },
        },
    })
}

/// The case's scale events as scalewise records them (from, to), chained back from the current
/// replicas, newest first.
fn scale_events(case: &Case) -> Vec<Value> {
    let mut changes: Vec<(i64, i32)> = case
        .up_events
        .iter()
        .map(|&(ago, n)| (ago, n))
        .chain(case.down_events.iter().map(|&(ago, n)| (ago, -n)))
        .collect();
    // Newest first.
    changes.sort_by_key(|&(ago, _)| ago);
    let mut replicas = case.current;
    let mut events = Vec::new();
    for (ago, change) in changes {
        let from = replicas - change;
        assert!(
            from >= 0,
            "{}: the events cannot lead to {}",
            case.name,
            case.current
        );
        events.push(json!({"time": time(ago), "from": from, "to": replicas}));
        replicas = from;
    }
    events.reverse();
    events
}

fn state(case: &Case) -> Value {
    let mut recommendations = case.recommendations.clone();
    recommendations.sort_by_key(|&(ago, _)| -ago);
    json!({
        "lastEvaluationTime": time(15),
        "evaluatingSince": time(3600),
        "recommendations": recommendations
            .iter()
            .map(|&(ago, replicas)| json!({"time": time(ago), "replicas": replicas}))
            .collect::<Vec<_>>(),
        "scaleEvents": scale_events(case),
        "consecutiveFailures": 0,
    })
}

/// `scalewise decide` on `case`: its JSON output.
fn decide(case: &Case, dir: &Path, index: usize) -> Value {
    let policy_file = dir.join(format!("policy-{index}.json"));
    let state_file = dir.join(format!("state-{index}.json"));
    std::fs::write(&policy_file, policy(case).to_string()).expect("write the policy");
    std::fs::write(&state_file, state(case).to_string()).expect("write the state");
    let output = Command::new(env!("CARGO_BIN_EXE_scalewise"))
        .args(["decide", "--policy"])
        .arg(&policy_file)
        .args(["--replicas", &case.current.to_string()])
        .args(["--metric", &format!("load={}", case.proposal)])
        .arg("--state")
        .arg(&state_file)
        .args(["--now", &time(0), "-o", "json"])
        .output()
        .expect("scalewise decide runs");
    assert!(
        output.status.success(),
        "{}: scalewise decide failed: {}",
        case.name,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

/// The HPA's condition as the limits scalewise names.
fn agrees(condition: &str, limits: &[&str]) -> bool {
    let has = |kind: &str| limits.contains(&kind);
    match condition {
        "ScaleUpLimit" | "ScaleDownLimit" => has("RatePolicy"),
        // A count already beyond a bound is brought back at once: the HPA names the bound,
        // scalewise the correction.
        "TooManyReplicas" => has("MaxReplicas") || has("RangeCorrection"),
        "TooFewReplicas" => has("MinReplicas") || has("RangeCorrection"),
        "DesiredWithinRange" => !has("RatePolicy") && !has("MaxReplicas") && !has("MinReplicas"),
        other => panic!("unknown HPA condition {other}"),
    }
}

#[test]
fn every_hpa_behaviour_case_gives_the_hpas_answer() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/hpa_behavior.yaml"
    ))
    .expect("read tests/data/hpa_behavior.yaml");
    let cases: Vec<Case> = serde_yaml_ng::from_str(&text).expect("the cases parse");
    assert_eq!(cases.len(), 52, "the HPA's 52 cases");
    let dir = std::env::temp_dir().join(format!("scalewise-hpa-cases-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let mut differ = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let out = decide(case, &dir, index);
        let desired = out["desiredReplicas"].as_i64().unwrap_or(-1);
        let limits: Vec<&str> = out["limits"]
            .as_array()
            .map(|l| l.iter().filter_map(|l| l["type"].as_str()).collect())
            .unwrap_or_default();
        let condition_ok = case.condition.as_deref().is_none_or(|c| agrees(c, &limits));
        if desired != i64::from(case.expected) || !condition_ok {
            differ.push(format!(
                "{}: the HPA gives {} ({}), scalewise {desired} (limits {limits:?}: {})",
                case.name,
                case.expected,
                case.condition.as_deref().unwrap_or("-"),
                out["reason"]
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        differ.is_empty(),
        "{} of {} cases differ:\n{}",
        differ.len(),
        cases.len(),
        differ.join("\n")
    );
}
