//! `scalewise check` refuses what the API server refuses: every limit the rendered CRD declares
//! (`maximum`, `maxLength`, `maxItems` under `spec`) is exceeded by one in a manifest, and check
//! reports that field with a message naming the limit. Also the hostile values of issue 11.

mod cmd;

use cmd::{scalewise, scalewise_stdin, stderr, stdout};
use serde_json::{Value, json};

/// A valid policy that sets every bounded field of the spec at least once.
fn everything() -> Value {
    let resource = json!({
        "podSelector": "namespace=\"{namespace}\"",
        "usageMetric": "container_cpu_usage_seconds_total",
        "usageSelector": "container!=\"\"",
        "requestsMetric": "kube_pod_container_resource_requests",
        "requestsSelector": "resource=\"cpu\"",
    });
    let rules = json!({
        "step": 1,
        "cooldown": "0s",
        "stabilizationWindow": "0s",
        "policies": [{"type": "Pods", "value": 4, "period": "15s"}],
        "selectPolicy": "Max",
    });
    json!({
        "apiVersion": "scalewise.dev/v1alpha1",
        "kind": "ScalingPolicy",
        "metadata": {"name": "base", "namespace": "limits"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 10,
            "interval": "15s",
            "tolerance": 0.1,
            "prometheus": {"address": "https://prom.example"},
            "metrics": [
                {"name": "cpu", "cpu": resource, "target": 70, "window": "2m"},
                {"name": "memory", "memory": resource, "target": 80},
                {"name": "latency", "latency": {"histogram": "h", "quantile": 0.9, "selector": "a=\"b\""}, "scaleOutAbove": 1},
                {"name": "errors", "errorRate": {"counter": "c", "errorSelector": "code=~\"5..\"", "selector": "a=\"b\""}, "scaleOutAbove": 0.1},
                {"name": "rps", "requestRate": {"counter": "c", "selector": "a=\"b\""}, "target": 5},
                {"name": "q", "query": "sum(up)", "targetPerReplica": 5},
            ],
            "behavior": {"scaleOut": rules, "scaleIn": rules},
            "onMetricFailure": {"action": "Fallback", "fallbackReplicas": 2, "after": 3},
            "pods": {
                "cpuInitializationPeriod": "5m",
                "initialReadinessDelay": "30s",
                "readinessTimeout": "5m",
                "holdScaleInDuringRollout": true,
            },
            "forecast": {
                "metric": "q",
                "seasons": ["24h"],
                "step": "5m",
                "refresh": "10m",
                "accuracyWindow": "24h",
                "maxError": 0.3,
                "mode": "Active",
                "startupDelay": "1m",
            },
        },
    })
}

fn rendered_spec_schema() -> Value {
    let out = scalewise(&["crd"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let crd: Value = serde_yaml_ng::from_str(&stdout(&out)).expect("the CRD is YAML");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

/// One field one past its limit: where it is in the manifest, and what check must say (the
/// whole line after the object, or its start for a number with its own range).
struct Case {
    pointer: String,
    value: Value,
    expected: String,
}

/// Walks the schema and the manifest together; for every field present in the manifest whose
/// schema has an upper limit, the value one past it. Also returns every bounded schema path, to
/// show that the manifest reaches them all.
fn cases(
    schema: &Value,
    value: &Value,
    pointer: &str,
    path: &str,
    schema_path: &str,
    out: &mut Vec<Case>,
    reached: &mut Vec<String>,
) {
    if let Some(max) = schema["maxLength"].as_u64() {
        reached.push(schema_path.to_owned());
        out.push(Case {
            pointer: pointer.to_owned(),
            value: json!("a".repeat(max as usize + 1)),
            expected: format!(
                "{path}: must be at most {max} characters long, got {}",
                max + 1
            ),
        });
    }
    if let (Some(max), Some("number")) = (schema["maximum"].as_f64(), schema["type"].as_str()) {
        // A fraction (tolerance, quantile): validation names its own range.
        reached.push(schema_path.to_owned());
        out.push(Case {
            pointer: pointer.to_owned(),
            value: json!(max + 1.0),
            expected: format!("{path}: must be "),
        });
    }
    if let (Some(max), Some("integer")) = (schema["maximum"].as_f64(), schema["type"].as_str()) {
        let max = max as i64;
        reached.push(schema_path.to_owned());
        out.push(Case {
            pointer: pointer.to_owned(),
            value: json!(max + 1),
            expected: format!("{path}: must be at most {max} (an int32), got {}", max + 1),
        });
    }
    if let (Some(max), Some(items)) = (schema["maxItems"].as_u64(), value.as_array()) {
        reached.push(schema_path.to_owned());
        let what = if path.ends_with("metrics") {
            "metrics"
        } else if path.ends_with("seasons") {
            "seasons"
        } else {
            "rate policies"
        };
        out.push(Case {
            pointer: pointer.to_owned(),
            value: json!(vec![items[0].clone(); max as usize + 1]),
            expected: format!("{path}: must list at most {max} {what}, got {}", max + 1),
        });
    }
    if let (Some(properties), Some(object)) = (schema["properties"].as_object(), value.as_object())
    {
        for (name, child) in properties {
            if let Some(v) = object.get(name) {
                cases(
                    child,
                    v,
                    &format!("{pointer}/{name}"),
                    &format!("{path}.{name}"),
                    &format!("{schema_path}.{name}"),
                    out,
                    reached,
                );
            }
        }
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            cases(
                &schema["items"],
                item,
                &format!("{pointer}/{i}"),
                &format!("{path}[{i}]"),
                &format!("{schema_path}[]"),
                out,
                reached,
            );
        }
    }
}

fn bounded_schema_paths(schema: &Value, path: &str, out: &mut Vec<String>) {
    if ["maxLength", "maximum", "maxItems"]
        .iter()
        .any(|k| schema.get(k).is_some())
    {
        out.push(path.to_owned());
    }
    if let Some(properties) = schema["properties"].as_object() {
        for (name, child) in properties {
            bounded_schema_paths(child, &format!("{path}.{name}"), out);
        }
    }
    if schema.get("items").is_some() {
        bounded_schema_paths(&schema["items"], &format!("{path}[]"), out);
    }
}

#[test]
fn check_refuses_every_field_one_past_the_limit_the_crd_declares_naming_the_field_and_the_limit() {
    let schema = rendered_spec_schema();
    let base = everything();
    let out = scalewise_stdin(&["check", "-f", "-"], &base.to_string());
    assert_eq!(
        out.status.code(),
        Some(0),
        "the base manifest is valid: {}{}",
        stdout(&out),
        stderr(&out)
    );

    let mut all = Vec::new();
    let mut reached = Vec::new();
    cases(
        &schema,
        &base["spec"],
        "/spec",
        "spec",
        "spec",
        &mut all,
        &mut reached,
    );
    let mut bounded = Vec::new();
    bounded_schema_paths(&schema, "spec", &mut bounded);
    for path in &bounded {
        assert!(
            reached.contains(path),
            "the manifest does not reach the bounded field {path}"
        );
    }

    // One document per case, each named by its position, checked in one run.
    let mut documents = Vec::new();
    for (i, case) in all.iter().enumerate() {
        let mut manifest = base.clone();
        manifest["metadata"]["name"] = json!(format!("case-{i}"));
        *manifest
            .pointer_mut(&case.pointer)
            .unwrap_or_else(|| panic!("{}", case.pointer)) = case.value.clone();
        documents.push(serde_yaml_ng::to_string(&manifest).expect("YAML"));
    }
    let out = scalewise_stdin(&["check", "-f", "-"], &documents.join("---\n"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let printed = stdout(&out);
    for (i, case) in all.iter().enumerate() {
        let line = format!("-: limits/case-{i}: {}", case.expected);
        assert!(
            printed
                .lines()
                .any(|l| l == line || (line.ends_with(' ') && l.starts_with(&line))),
            "expected the line\n{line}\nin:\n{printed}"
        );
    }
    assert!(all.len() >= 40, "only {} cases", all.len());
}

#[test]
fn the_hostile_values_of_issue_11_are_refused_with_their_field_and_limit() {
    let schema = rendered_spec_schema();
    let max_replicas = schema["properties"]["maxReplicas"]["maximum"]
        .as_f64()
        .expect("maxReplicas has a maximum") as i64;
    let max_query = schema["properties"]["metrics"]["items"]["properties"]["query"]["maxLength"]
        .as_u64()
        .expect("query has a maxLength");
    let max_metrics = schema["properties"]["metrics"]["maxItems"]
        .as_u64()
        .expect("metrics has maxItems");
    assert_eq!(max_replicas, i64::from(i32::MAX));

    let hostile = |name: &str, edit: &dyn Fn(&mut Value)| {
        let mut manifest = everything();
        manifest["metadata"]["name"] = json!(name);
        edit(&mut manifest["spec"]);
        serde_yaml_ng::to_string(&manifest).expect("YAML")
    };
    let documents = [
        hostile("replicas", &|spec| {
            spec["maxReplicas"] = json!(max_replicas + 1)
        }),
        hostile("interval", &|spec| spec["interval"] = json!("100000000h")),
        hostile("query", &|spec| {
            spec["metrics"][5]["query"] = json!(format!("sum({})", "u".repeat(200 * 1024 - 5)))
        }),
        hostile("metrics", &|spec| {
            let one = spec["metrics"][0].clone();
            spec["metrics"] = json!(vec![one; 1000]);
        }),
    ];
    let out = scalewise_stdin(&["check", "-f", "-"], &documents.join("---\n"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "-: limits/replicas: spec.maxReplicas: must be at most {max_replicas} (an int32), got 2147483648\n\
             -: limits/interval: spec.interval: must be between 1s and 1h, got 100000000h\n\
             -: limits/query: spec.metrics[5].query: must be at most {max_query} characters long, got 204800\n\
             -: limits/metrics: spec.metrics: must list at most {max_metrics} metrics, got 1000\n"
        )
    );
}
