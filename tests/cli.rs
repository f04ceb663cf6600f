//! The `scalewise` binary as users run it: `crd`, `check`, `decide`, `--version`.

mod cmd;

use std::path::Path;

use cmd::{TempDir, scalewise, scalewise_stdin, stderr, stdout};
use serde_json::{Value, json};

const CHECKOUT: &str = "examples/checkout.yaml";

fn checkout() -> Value {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(CHECKOUT)).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

fn decide_json(args: &[&str]) -> Value {
    let mut all = vec![
        "decide",
        "--policy",
        CHECKOUT,
        "--replicas",
        "4",
        "-o",
        "json",
    ];
    all.extend_from_slice(args);
    let out = scalewise(&all);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("decide prints JSON")
}

const HIGH_CPU: [&str; 8] = [
    "--metric",
    "cpu=85",
    "--metric",
    "latency-p95=0.2",
    "--metric",
    "errors=0.01",
    "--metric",
    "backlog=300",
];

#[test]
fn the_reference_manifest_passes_check() {
    let out = scalewise(&["check", "-f", CHECKOUT]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
}

#[test]
fn every_rejected_case_is_refused_with_its_field_path() {
    type Mutation = fn(&mut Value);
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "min above max",
            |v| v["spec"]["minReplicas"] = json!(30),
            "spec.minReplicas: must not exceed maxReplicas (20), got 30",
        ),
        (
            "maxReplicas 0",
            |v| v["spec"]["maxReplicas"] = json!(0),
            "spec.maxReplicas: must be at least 1, got 0",
        ),
        (
            "negative min",
            |v| v["spec"]["minReplicas"] = json!(-1),
            "spec.minReplicas: must be at least 0, got -1",
        ),
        (
            "thresholds and a target",
            |v| v["spec"]["metrics"][0]["target"] = json!(50),
            "spec.metrics[0]: must set either thresholds",
        ),
        (
            "neither thresholds nor target",
            |v| {
                v["spec"]["metrics"][3]
                    .as_object_mut()
                    .unwrap()
                    .remove("targetPerReplica");
            },
            "spec.metrics[3]: must set thresholds",
        ),
        (
            "target and targetPerReplica",
            |v| v["spec"]["metrics"][3]["target"] = json!(5),
            "spec.metrics[3]: must set target or targetPerReplica, not both",
        ),
        (
            "target of zero",
            |v| v["spec"]["metrics"][3]["targetPerReplica"] = json!(0),
            "spec.metrics[3].targetPerReplica: must be greater than 0, got 0",
        ),
        (
            "negative target",
            |v| {
                v["spec"]["metrics"][3]
                    .as_object_mut()
                    .unwrap()
                    .remove("targetPerReplica");
                v["spec"]["metrics"][3]["target"] = json!(-2);
            },
            "spec.metrics[3].target: must be greater than 0, got -2",
        ),
        (
            "scaleInBelow not below scaleOutAbove",
            |v| v["spec"]["metrics"][2]["scaleInBelow"] = json!(0.05),
            "spec.metrics[2].scaleInBelow: must be below scaleOutAbove (0.05)",
        ),
        (
            "quantile outside (0, 1)",
            |v| v["spec"]["metrics"][1]["latency"]["quantile"] = json!(1.5),
            "spec.metrics[1].latency.quantile: must be strictly between 0 and 1, got 1.5",
        ),
        (
            "quantile of 0",
            |v| v["spec"]["metrics"][1]["latency"]["quantile"] = json!(0),
            "spec.metrics[1].latency.quantile",
        ),
        (
            "duplicate metric names",
            |v| v["spec"]["metrics"][1]["name"] = json!("cpu"),
            "spec.metrics[1].name: duplicate metric name \"cpu\"",
        ),
        (
            "empty metrics",
            |v| v["spec"]["metrics"] = json!([]),
            "spec.metrics: must list at least one metric",
        ),
        (
            "duration without unit",
            |v| v["spec"]["interval"] = json!("15"),
            "spec.interval: \"15\" is not a duration",
        ),
        (
            "duration out of order",
            |v| v["spec"]["behavior"]["scaleIn"]["cooldown"] = json!("5s1m"),
            "spec.behavior.scaleIn.cooldown: \"5s1m\" is not a duration",
        ),
        (
            "empty duration",
            |v| v["spec"]["behavior"]["scaleOut"]["cooldown"] = json!(""),
            "spec.behavior.scaleOut.cooldown: must not be empty",
        ),
        (
            "interval below 1s",
            |v| v["spec"]["interval"] = json!("0s"),
            "spec.interval: must be between 1s and 1h, got 0s",
        ),
        (
            "interval above 1h",
            |v| v["spec"]["interval"] = json!("1h1s"),
            "spec.interval: must be between 1s and 1h, got 1h1s",
        ),
        (
            "cooldown above 24h",
            |v| v["spec"]["behavior"]["scaleIn"]["cooldown"] = json!("25h"),
            "spec.behavior.scaleIn.cooldown: must be between 0s and 24h, got 25h",
        ),
        (
            "stabilization window above 1h",
            |v| v["spec"]["behavior"]["scaleIn"]["stabilizationWindow"] = json!("61m"),
            "spec.behavior.scaleIn.stabilizationWindow: must be between 0s and 1h, got 61m",
        ),
        (
            "rate period above 30m",
            |v| v["spec"]["behavior"]["scaleOut"]["policies"][0]["period"] = json!("31m"),
            "spec.behavior.scaleOut.policies[0].period: must be between 1s and 30m, got 31m",
        ),
        (
            "metric window above 1h",
            |v| v["spec"]["metrics"][0]["window"] = json!("2h"),
            "spec.metrics[0].window: must be between 1s and 1h, got 2h",
        ),
        (
            "a duration text longer than 32 characters",
            |v| v["spec"]["interval"] = json!(format!("{}1s", "0".repeat(40))),
            "spec.interval: must be at most 32 characters long, got 42",
        ),
        (
            "101 rate policies",
            |v| {
                let one = json!({"type": "Pods", "value": 1, "period": "15s"});
                v["spec"]["behavior"]["scaleOut"]["policies"] = json!(vec![one; 101]);
            },
            "spec.behavior.scaleOut.policies: must list at most 100 rate policies, got 101",
        ),
        (
            "a target name that is not a DNS subdomain",
            |v| v["spec"]["targetRef"]["name"] = json!("Check_Out"),
            "spec.targetRef.name: \"Check_Out\" is not an object name",
        ),
        (
            "a target name longer than 253 characters",
            |v| v["spec"]["targetRef"]["name"] = json!("a".repeat(254)),
            "spec.targetRef.name: must be at most 253 characters long, got 254",
        ),
        (
            "a selector longer than 4096 characters",
            |v| {
                v["spec"]["metrics"][1]["latency"]["selector"] =
                    json!(format!("service=~\"{}\"", "a".repeat(4096)))
            },
            "spec.metrics[1].latency.selector: must be at most 4096 characters long, got 4107",
        ),
        (
            "a histogram name longer than 256 characters",
            |v| v["spec"]["metrics"][1]["latency"]["histogram"] = json!("h".repeat(257)),
            "spec.metrics[1].latency.histogram: must be at most 256 characters long, got 257",
        ),
        (
            "a query nested 65 brackets deep",
            |v| {
                v["spec"]["metrics"][3]["query"] =
                    json!(format!("{}up{}", "sum(".repeat(65), ")".repeat(65)))
            },
            "spec.metrics[3].query: must nest brackets at most 64 deep, got 65",
        ),
        (
            "a query that placeholders make longer than twice its limit",
            |v| v["spec"]["metrics"][3]["query"] = json!(format!("up{}", " + {target}".repeat(70))),
            "spec.metrics[3].query: must be at most 16384 characters long with its placeholders replaced by their longest values (a 63-character namespace, a 253-character target), got 17922",
        ),
        (
            "a server address longer than 2048 characters",
            |v| {
                v["spec"]["prometheus"] =
                    json!({"address": format!("https://prom.example/{}", "p".repeat(2048))})
            },
            "spec.prometheus.address: must be at most 2048 characters long, got 2069",
        ),
        (
            "a step beyond int32",
            |v| v["spec"]["behavior"]["scaleOut"]["step"] = json!(2_147_483_648_i64),
            "spec.behavior.scaleOut.step: must be at most 2147483647 (an int32), got 2147483648",
        ),
        (
            "step of 0",
            |v| v["spec"]["behavior"]["scaleOut"]["step"] = json!(0),
            "spec.behavior.scaleOut.step: must be at least 1, got 0",
        ),
        (
            "after of 0",
            |v| v["spec"]["onMetricFailure"]["after"] = json!(0),
            "spec.onMetricFailure.after: must be at least 1, got 0",
        ),
        (
            "fallback above max",
            |v| v["spec"]["onMetricFailure"]["fallbackReplicas"] = json!(21),
            "spec.onMetricFailure.fallbackReplicas: must be within [minReplicas, maxReplicas] = [2, 20], got 21",
        ),
        (
            "fallback below min",
            |v| v["spec"]["onMetricFailure"]["fallbackReplicas"] = json!(1),
            "spec.onMetricFailure.fallbackReplicas: must be within",
        ),
        (
            "tolerance of 1",
            |v| v["spec"]["tolerance"] = json!(1.0),
            "spec.tolerance: must be in [0, 1), got 1",
        ),
        (
            "negative tolerance",
            |v| v["spec"]["tolerance"] = json!(-0.1),
            "spec.tolerance: must be in [0, 1), got -0.1",
        ),
        (
            "two metric kinds",
            |v| v["spec"]["metrics"][0]["query"] = json!("up"),
            "spec.metrics[0]: must set exactly one source, got cpu and query",
        ),
        (
            "no metric kind",
            |v| {
                v["spec"]["metrics"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("cpu");
            },
            "spec.metrics[0]: must set exactly one source: cpu, memory",
        ),
        (
            "a kind that is no kind",
            |v| v["spec"]["targetRef"]["kind"] = json!("stateful set"),
            "spec.targetRef.kind: must be a kind such as Deployment or StatefulSet: a letter, then letters and digits, got \"stateful set\"",
        ),
        (
            "an apiVersion that is no version",
            |v| v["spec"]["targetRef"]["apiVersion"] = json!("apps"),
            "spec.targetRef.apiVersion: must be a version (v1) or group/version (apps/v1, argoproj.io/v1alpha1), got \"apps\"",
        ),
        (
            "a readiness timeout past its bound",
            |v| v["spec"]["pods"] = json!({"readinessTimeout": "2h"}),
            "spec.pods.readinessTimeout: must be between 1s and 1h, got 2h",
        ),
        (
            "a start-up period past its bound",
            |v| v["spec"]["pods"] = json!({"cpuInitializationPeriod": "61m"}),
            "spec.pods.cpuInitializationPeriod: must be between 0s and 1h, got 61m",
        ),
        (
            "a forecast of a metric the policy does not have",
            |v| v["spec"]["forecast"] = json!({"metric": "nope"}),
            "spec.forecast.metric: \"nope\" is not a metric of spec.metrics (they are: ",
        ),
        (
            "a forecast of a metric read over the pods",
            |v| v["spec"]["forecast"] = json!({"metric": v["spec"]["metrics"][0]["name"].clone()}),
            "spec.forecast.metric: spec.metrics[0] (\"cpu\") is read over the target's pods, whose history changes with the replicas: forecast a total instead",
        ),
        (
            "a forecast season past its bound",
            |v| {
                v["spec"]["metrics"][0] = json!({"name": "rps", "requestRate": {"counter": "http_requests_total"}, "targetPerReplica": 50});
                v["spec"]["forecast"] = json!({"metric": "rps", "seasons": ["5m"]});
            },
            "spec.forecast.seasons[0]: must be between 10m and 168h, got 5m",
        ),
        (
            "a forecast history over the points a range query returns",
            |v| {
                v["spec"]["metrics"][0] = json!({"name": "rps", "requestRate": {"counter": "http_requests_total"}, "targetPerReplica": 50});
                v["spec"]["forecast"] =
                    json!({"metric": "rps", "seasons": ["24h", "168h"], "step": "30s"});
            },
            "spec.forecast.step: one read of the history would be 43202 points",
        ),
        (
            "a forecast error threshold of 0",
            |v| {
                v["spec"]["metrics"][0] = json!({"name": "rps", "requestRate": {"counter": "http_requests_total"}, "targetPerReplica": 50});
                v["spec"]["forecast"] = json!({"metric": "rps", "maxError": 0});
            },
            "spec.forecast.maxError: must be in (0, 10], got 0",
        ),
        (
            "an unknown field",
            |v| {
                let m = v["spec"]["metrics"][0].as_object_mut().unwrap();
                m.remove("scaleInBelow");
                m.insert("scaleInBelo".into(), json!(30));
            },
            "spec.metrics[0].scaleInBelo: unknown field (older API servers drop it silently); did you mean scaleInBelow?",
        ),
        (
            "an unknown top-level spec field",
            |v| v["spec"]["maxReplica"] = json!(3),
            "spec.maxReplica: unknown field",
        ),
        (
            "a wrong type",
            |v| v["spec"]["maxReplicas"] = json!("twenty"),
            "spec.maxReplicas: invalid type: string \"twenty\", expected i32",
        ),
    ];
    let dir = TempDir::new("rejected");
    for (what, mutate, expected) in cases {
        let mut manifest = checkout();
        mutate(&mut manifest);
        let path = dir.file("bad.yaml", &serde_yaml_ng::to_string(&manifest).unwrap());
        let path = path.as_str();
        let out = scalewise(&["check", "-f", path]);
        let printed = stdout(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what}: {printed}{}",
            stderr(&out)
        );
        let prefix = format!("{path}: shop/checkout: ");
        assert!(
            printed
                .lines()
                .any(|l| l.starts_with(&prefix) && l[prefix.len()..].starts_with(expected)),
            "{what}: expected a line `{prefix}{expected}...`, got:\n{printed}"
        );
    }
}

#[test]
fn check_reports_every_problem_of_every_document_and_skips_other_kinds() {
    let text = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
---
apiVersion: scalewise.dev/v1alpha1
kind: ScalingPolicy
metadata: {name: web}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 5
  maxReplicas: 3
  metrics: []
---
apiVersion: scalewise.dev/v1alpha1
kind: ScalingPolicy
metadata: {name: ok, namespace: team}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: ok}
  minReplicas: 1
  maxReplicas: 3
  metrics: [{name: rps, requestRate: {counter: http_requests_total}, target: 50}]
"#;
    let out = scalewise_stdin(&["check", "-f", "-"], text);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "-: web: spec.minReplicas: must not exceed maxReplicas (3), got 5\n\
         -: web: spec.metrics: must list at least one metric\n"
    );
    assert!(
        stderr(&out).contains("-: document 1 (v1/Service) skipped: not a ScalingPolicy"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_reads_a_kubectl_list_from_standard_input_and_reports_each_item_by_namespace_and_name() {
    // What `kubectl get sp -A -o yaml` prints: a v1 List whose items carry server-side metadata
    // and a status; one policy is valid, the other was stored before the CRD had its limits.
    let text = r#"
apiVersion: v1
items:
- apiVersion: scalewise.dev/v1alpha1
  kind: ScalingPolicy
  metadata:
    creationTimestamp: "2026-01-01T00:00:00Z"
    generation: 1
    name: good
    namespace: team-a
    resourceVersion: "1234"
    uid: 0c6f2a8e-0000-4000-8000-000000000001
  spec:
    targetRef: {apiVersion: apps/v1, kind: Deployment, name: good}
    minReplicas: 1
    maxReplicas: 3
    metrics: [{name: rps, requestRate: {counter: http_requests_total}, target: 50}]
  status:
    observedGeneration: 1
    currentReplicas: 2
- apiVersion: scalewise.dev/v1alpha1
  kind: ScalingPolicy
  metadata:
    name: hostile
    namespace: team-b
  spec:
    targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
    minReplicas: 1
    maxReplicas: 3
    interval: 100000000h
    metrics: [{name: rps, requestRate: {counter: http_requests_total}, target: 50}]
kind: List
metadata:
  resourceVersion: ""
"#;
    let out = scalewise_stdin(&["check", "-f", "-"], text);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "-: team-b/hostile: spec.interval: must be between 1s and 1h, got 100000000h\n"
    );
    assert_eq!(stderr(&out), "");
}

#[test]
fn check_reads_the_items_of_a_typed_list_and_notes_other_kinds_by_position() {
    // A ScalingPolicyList as the API serves it: items without apiVersion and kind.
    let text = r#"
apiVersion: scalewise.dev/v1alpha1
kind: ScalingPolicyList
items:
- metadata: {name: big, namespace: shop}
  spec:
    targetRef: {apiVersion: apps/v1, kind: Deployment, name: big}
    minReplicas: 1
    maxReplicas: 2147483648
    metrics: [{name: rps, requestRate: {counter: http_requests_total}, target: 50}]
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}
"#;
    let out = scalewise_stdin(&["check", "-f", "-"], text);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "-: shop/big: spec.maxReplicas: must be at most 2147483647 (an int32), got 2147483648\n"
    );
    assert_eq!(
        stderr(&out),
        "-: document 2 items[0] (v1/ConfigMap) skipped: not a ScalingPolicy\n"
    );
}

#[test]
fn check_names_a_yaml_syntax_error() {
    let out = scalewise_stdin(&["check", "-f", "-"], "spec: [unclosed");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("-: document 1: not valid YAML"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_names_a_missing_file() {
    let out = scalewise(&["check", "-f", "no/such/file.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read no/such/file.yaml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn high_cpu_scales_out_by_the_step_and_names_cpu() {
    let d = decide_json(&HIGH_CPU);
    assert_eq!(d["desiredReplicas"], 6);
    assert_eq!(d["action"], "ScaleOut");
    assert_eq!(d["rule"], "cpu");
    assert_eq!(d["reason"], "Scale out from 4 to 6: cpu 85 > 70");
    assert_eq!(d["state"]["desiredReplicas"], 6);
    assert_eq!(d["state"]["lastScaleDirection"], "Out");
}

#[test]
fn cpu_inside_its_band_holds() {
    let d = decide_json(&[
        "--metric",
        "cpu=50",
        "--metric",
        "latency-p95=0.2",
        "--metric",
        "errors=0.01",
        "--metric",
        "backlog=300",
    ]);
    assert_eq!(d["desiredReplicas"], 4);
    assert_eq!(d["action"], "Hold");
}

#[test]
fn low_metrics_scale_in_only_after_the_full_window_when_chained() {
    let dir = TempDir::new("chain");
    let low = [
        "--metric",
        "cpu=20",
        "--metric",
        "latency-p95=0.05",
        "--metric",
        "errors=0.01",
        "--metric",
        "backlog=300",
    ];
    let mut state: Option<String> = None;
    let mut desired = Vec::new();
    for step in 0..=20 {
        let now = jiff::Timestamp::from_second(1_767_225_600 + step * 15)
            .unwrap()
            .to_string();
        let mut args = vec!["--now", now.as_str()];
        if let Some(path) = &state {
            args.extend(["--state", path.as_str()]);
        }
        args.extend(low);
        let d = decide_json(&args);
        desired.push(d["desiredReplicas"].as_i64().unwrap());
        state = Some(dir.file(&format!("state-{step}.json"), &d["state"].to_string()));
    }
    let mut expected = vec![4; 20];
    expected.push(3);
    assert_eq!(
        desired, expected,
        "T to T+285 s hold at 4; T+300 s scales in to 3"
    );
}

#[test]
fn an_unavailable_metric_blocks_scale_in() {
    let d = decide_json(&[
        "--metric",
        "cpu=unavailable",
        "--metric",
        "latency-p95=0.05",
        "--metric",
        "errors=0.01",
        "--metric",
        "backlog=300",
    ]);
    assert_eq!(d["desiredReplicas"], 4);
    assert_eq!(d["limits"][0]["type"], "FailureHold");
    assert_eq!(d["state"]["metrics"][0]["failure"], "unavailable");
}

#[test]
fn decide_output_is_byte_identical_for_the_same_inputs() {
    for format in ["json", "text"] {
        let args = [
            &[
                "decide",
                "--policy",
                CHECKOUT,
                "--replicas",
                "4",
                "--now",
                "2026-03-01T10:00:00Z",
                "-o",
                format,
            ][..],
            &HIGH_CPU[..],
        ]
        .concat();
        let a = scalewise(&args);
        let b = scalewise(&args);
        assert!(a.status.success());
        assert_eq!(a.stdout, b.stdout, "{format}");
    }
}

#[test]
fn decide_text_output_explains_each_metric() {
    let args = [
        &[
            "decide",
            "--policy",
            CHECKOUT,
            "--replicas",
            "4",
            "--now",
            "2026-03-01T10:00:00Z",
        ][..],
        &HIGH_CPU[..],
    ]
    .concat();
    let out = scalewise(&args);
    assert_eq!(
        stdout(&out),
        "Scale out from 4 to 6: cpu 85 > 70\n\
         metrics:\n \
         * cpu          ->    6  cpu 85 > 70\n   \
         latency-p95  ->    4  latency-p95 0.2 within [0.1, 0.5]\n   \
         errors       ->    -  errors 0.01 <= 0.05 (no say on scale-in)\n   \
         backlog      ->    3  backlog 300 at 100 per replica: ceil(300 / 100) = 3\n"
    );
}

#[test]
fn decide_refuses_a_missing_or_unknown_metric_with_exit_2() {
    let out = scalewise(&[
        "decide",
        "--policy",
        CHECKOUT,
        "--replicas",
        "4",
        "--metric",
        "cpu=85",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("missing: latency-p95, errors, backlog"),
        "{}",
        stderr(&out)
    );

    let args = [
        &[
            "decide",
            "--policy",
            CHECKOUT,
            "--replicas",
            "4",
            "--metric",
            "cpux=1",
        ][..],
        &HIGH_CPU[..],
    ]
    .concat();
    let out = scalewise(&args);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the policy has no metric \"cpux\""),
        "{}",
        stderr(&out)
    );

    let args = [
        &[
            "decide",
            "--policy",
            CHECKOUT,
            "--replicas",
            "4",
            "--metric",
            "cpu=lots",
        ][..],
        &HIGH_CPU[2..],
    ]
    .concat();
    let out = scalewise(&args);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("VALUE must be a finite number or one of unavailable"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn decide_refuses_an_invalid_policy_with_its_problems() {
    let mut manifest = checkout();
    manifest["spec"]["minReplicas"] = json!(50);
    let dir = TempDir::new("invalid");
    let path = dir.file("p.yaml", &serde_yaml_ng::to_string(&manifest).unwrap());
    let args = [
        &["decide", "--policy", path.as_str(), "--replicas", "4"][..],
        &HIGH_CPU[..],
    ]
    .concat();
    let out = scalewise(&args);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .contains("shop/checkout: spec.minReplicas: must not exceed maxReplicas (20), got 50"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn crd_output_matches_the_committed_file() {
    let out = scalewise(&["crd"]);
    assert!(out.status.success());
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/scalingpolicy.yaml"),
    )
    .unwrap();
    assert!(
        stdout(&out) == committed,
        "crds/scalingpolicy.yaml is out of date: run `make crds` and commit it"
    );
}

#[test]
fn the_crd_declares_the_api_contract() {
    let crd: Value = serde_yaml_ng::from_str(&stdout(&scalewise(&["crd"]))).unwrap();
    let spec = &crd["spec"];
    assert_eq!(spec["group"], "scalewise.dev");
    assert_eq!(spec["scope"], "Namespaced");
    assert_eq!(spec["names"]["plural"], "scalingpolicies");
    assert_eq!(spec["names"]["shortNames"], json!(["sp"]));
    assert_eq!(spec["names"]["categories"], json!(["scalewise"]));
    let version = &spec["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<String> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_uppercase())
        .collect();
    assert_eq!(
        columns,
        [
            "TARGET",
            "MIN",
            "MAX",
            "REPLICAS",
            "DESIRED",
            "LAST SCALE",
            "READY",
            "AGE"
        ]
    );
    let schema = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(
        schema["x-kubernetes-validations"][0]["rule"],
        "self.minReplicas <= self.maxReplicas"
    );
    assert_eq!(
        schema["properties"]["interval"]["pattern"],
        "^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
    );
    assert_eq!(schema["properties"]["maxReplicas"]["minimum"], 1.0);
    assert_eq!(schema["properties"]["metrics"]["minItems"], 1);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        required,
        ["maxReplicas", "metrics", "minReplicas", "targetRef"]
    );
    // Every field is documented for `kubectl explain`.
    fn undocumented(path: &str, node: &Value, out: &mut Vec<String>) {
        if let Some(props) = node["properties"].as_object() {
            for (k, v) in props {
                let p = format!("{path}.{k}");
                if v["description"].as_str().is_none_or(str::is_empty) {
                    out.push(p.clone());
                }
                undocumented(&p, v, out);
                undocumented(&format!("{p}[]"), &v["items"], out);
            }
        }
    }
    let mut missing = Vec::new();
    undocumented("spec", schema, &mut missing);
    let status = &version["schema"]["openAPIV3Schema"]["properties"]["status"];
    undocumented("status", status, &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );
}

#[test]
fn version_is_printed() {
    let out = scalewise(&["--version"]);
    assert_eq!(
        stdout(&out),
        format!("scalewise {}\n", env!("CARGO_PKG_VERSION"))
    );
}
