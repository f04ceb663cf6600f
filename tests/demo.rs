//! Keeps `make demo` and `make bench-hpa` honest without running them (they take minutes): the
//! demo's policy is valid, matches its Deployment and the workload's model, and decides what the
//! demo's summary checks for when given the values the workload's service model produces; the
//! benchmark's three autoscalers share their target, bounds and behavior. The model itself (load
//! curve, CPU, latency, errors, counters) is tested in `examples/demo_workload.rs`.

mod cmd;

use std::path::{Path, PathBuf};

use cmd::{TempDir, scalewise};
use serde_json::Value;

const POLICY: &str = "examples/demo/policy.yaml";
const DEPLOYMENT: &str = "examples/demo/deployment.yaml";

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The YAML documents of a file, as JSON values.
fn documents(path: &str) -> Vec<Value> {
    let text = repo_file(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// `scalewise decide` on the demo policy with cpu, latency-p95 and errors values, as JSON.
fn decide(
    replicas: u32,
    cpu: f64,
    p95: f64,
    errors: f64,
    now: &str,
    state: Option<&Path>,
) -> Value {
    let replicas = replicas.to_string();
    let metrics = [
        format!("cpu={cpu}"),
        format!("latency-p95={p95}"),
        format!("errors={errors}"),
    ];
    let mut args = vec![
        "decide",
        "--policy",
        POLICY,
        "--replicas",
        &replicas,
        "--now",
        now,
    ];
    for m in &metrics {
        args.extend(["--metric", m.as_str()]);
    }
    let state_arg;
    if let Some(s) = state {
        state_arg = s.display().to_string();
        args.extend(["--state", state_arg.as_str()]);
    }
    args.extend(["-o", "json"]);
    let out = scalewise(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("decide prints JSON")
}

fn limit_types(d: &Value) -> Vec<&str> {
    d["limits"]
        .as_array()
        .map(|l| l.iter().filter_map(|x| x["type"].as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn the_demo_policy_passes_check() {
    let out = scalewise(&["check", "-f", POLICY]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
}

#[test]
fn the_demo_policy_targets_the_demo_deployment_whose_cpu_request_the_workload_reports() {
    let policy = &documents(POLICY)[0];
    let docs = documents(DEPLOYMENT);
    let deployment = kind(&docs, "Deployment");
    assert_eq!(kind(&docs, "Namespace")["metadata"]["name"], "demo");
    assert_eq!(
        policy["metadata"]["namespace"],
        deployment["metadata"]["namespace"]
    );
    assert_eq!(
        policy["spec"]["targetRef"]["name"],
        deployment["metadata"]["name"]
    );
    // examples/demo/run.sh and the summary's checks start from 2 replicas, the policy's minimum.
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(policy["spec"]["minReplicas"], 2);
    // The workload's default --cpu-request 0.5 is what kube-state-metrics would report for this.
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "web");
    assert_eq!(container["resources"]["requests"]["cpu"], "500m");
    // And its 256 MiB memory request, the workload's kube_pod_container_resource_requests.
    assert_eq!(container["resources"]["requests"]["memory"], "256Mi");
    // make bench-hpa's Deployments are the same service.
    let bench = documents("tests/bench/hpa/deployment.yaml");
    let bench = &kind(&bench, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(bench["resources"], container["resources"]);
    assert_eq!(bench["name"], container["name"]);
}

#[test]
fn the_demo_policy_holds_at_baseline_scales_out_in_the_surge_and_stops_at_max() {
    // Baseline, 40 req/s on 2 replicas of 50 req/s: cpu 40%, p95 0.1 s, no errors.
    let d = decide(2, 40.0, 0.1, 0.0, "2026-01-01T00:00:00Z", None);
    assert_eq!(
        (d["action"].as_str(), d["desiredReplicas"].as_i64()),
        (Some("Hold"), Some(2))
    );

    // The surge on 2 replicas: 300 req/s, cpu capped at 100%, the excess fails after 1 s.
    let d = decide(2, 100.0, 1.0, 0.67, "2026-01-01T00:01:00Z", None);
    assert_eq!(
        (d["action"].as_str(), d["desiredReplicas"].as_i64()),
        (Some("ScaleOut"), Some(4)),
        "{d}"
    );
    assert_eq!(d["reason"], "Scale out from 2 to 4: cpu 100 > 70");

    // 300 req/s on 8 replicas: cpu 75% still asks for more; maxReplicas holds at 8.
    let d = decide(8, 75.0, 0.24, 0.0, "2026-01-01T00:02:00Z", None);
    assert_eq!(
        (d["action"].as_str(), d["desiredReplicas"].as_i64()),
        (Some("Hold"), Some(8))
    );
    assert!(limit_types(&d).contains(&"MaxReplicas"), "{d}");
}

#[test]
fn the_demo_policy_scales_in_by_two_after_its_20s_window() {
    // Back at 40 req/s on 8 replicas: cpu 10%. Evaluations every 5 s, as in the demo, each with
    // the state the previous one left: evidence is collected for the 20 s window, then 8 -> 6.
    let dir = TempDir::new("demo");
    let state = PathBuf::from(dir.file("state.json", ""));
    let mut chained = false;
    let mut first_scale_in = None;
    for seconds in (0..=30).step_by(5) {
        let now = format!("2026-01-01T00:00:{seconds:02}Z");
        let d = decide(8, 10.0, 0.08, 0.0, &now, chained.then_some(state.as_path()));
        if d["action"] == "ScaleIn" {
            assert_eq!(d["desiredReplicas"], 6, "{d}");
            assert_eq!(d["reason"], "Scale in from 8 to 6: cpu 10 < 30");
            first_scale_in = Some(seconds);
            break;
        }
        assert_eq!(d["action"], "Hold", "{d}");
        assert_eq!(limit_types(&d), ["Stabilization"], "{d}");
        std::fs::write(&state, d["state"].to_string()).expect("write state");
        chained = true;
    }
    assert_eq!(first_scale_in, Some(20));
}

/// `make bench-hpa` claims its three autoscalers differ in the operator, not the tuning: the
/// ScalingPolicy is the HPA's target and default behavior written out, and KEDA's ScaledObject
/// has the same target and bounds.
#[test]
fn the_bench_hpa_autoscalers_have_the_same_target_bounds_and_behavior() {
    let policy = &documents("tests/bench/hpa/policy.yaml")[0];
    let hpa = &documents("tests/bench/hpa/hpa.yaml")[0];
    let keda = &documents("tests/bench/hpa/scaledobject.yaml")[0];
    let out = scalewise(&["check", "-f", "tests/bench/hpa/policy.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let (p, h, k) = (&policy["spec"], &hpa["spec"], &keda["spec"]);
    for (min, max) in [
        (&p["minReplicas"], &p["maxReplicas"]),
        (&k["minReplicaCount"], &k["maxReplicaCount"]),
    ] {
        assert_eq!((min, max), (&h["minReplicas"], &h["maxReplicas"]));
    }
    // The HPA's defaults: no behavior, tolerance 0.1, a sync every 15 s.
    assert!(h.get("behavior").is_none(), "the HPA keeps every default");
    assert_eq!(p["tolerance"], 0.1);
    assert_eq!(p["interval"], "15s");
    let target = &h["metrics"][0]["resource"]["target"]["averageUtilization"];
    assert_eq!(&p["metrics"][0]["target"], target);
    assert!(p["metrics"][0].get("cpu").is_some());
    let trigger = &k["triggers"][0];
    assert_eq!(trigger["metricType"], "Value");
    assert_eq!(trigger["metadata"]["threshold"], target.to_string());
    // The HPA's default behavior, as the HPA documents it.
    let out = &p["behavior"]["scaleOut"];
    assert_eq!(out["stabilizationWindow"], "0s");
    assert_eq!(out["cooldown"], "0s");
    assert_eq!(out["selectPolicy"], "Max");
    assert_eq!(
        out["policies"],
        serde_json::json!([
            {"type": "Percent", "value": 100, "period": "15s"},
            {"type": "Pods", "value": 4, "period": "15s"},
        ])
    );
    let scale_in = &p["behavior"]["scaleIn"];
    assert_eq!(scale_in["stabilizationWindow"], "300s");
    assert_eq!(scale_in["cooldown"], "0s");
    assert_eq!(
        scale_in["policies"],
        serde_json::json!([{"type": "Percent", "value": 100, "period": "15s"}])
    );
    // The same 1-minute window as prometheus-adapter gives the HPA, in scalewise and in KEDA's query.
    assert_eq!(p["metrics"][0]["window"], "1m");
    let query = trigger["metadata"]["query"].as_str().unwrap_or_default();
    assert!(query.contains("[1m]"), "{query}");
}
