//! Keeps `make demo` honest without running it (it takes minutes): its policy is valid, matches
//! its Deployment and the workload's model, and decides what the demo's summary checks for when
//! given the values the workload's service model produces. The model itself (load curve, CPU,
//! latency, errors, counters) is tested in `examples/demo_workload.rs`.

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
