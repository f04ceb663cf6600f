//! The arithmetic of `make bench-hpa` (tests/bench/hpa_figures.py) on samples and audit events
//! made by hand, so that BENCHMARKS.md's "Beside the real HPA" figures are what its columns say:
//! the first scale-out after the surge starts, replica-seconds, scale actions, seconds over the
//! SLO, peak replicas, and each autoscaler's API requests by user (a watch once, the HPA
//! controller's requests given to the HPA they concern, discovery to no one, other users and
//! requests outside the run ignored).

mod cmd;

use std::process::Command;

use cmd::TempDir;

/// t, then per autoscaler (hpa, sw, keda): replicas, ready, p95 seconds, error ratio.
const SAMPLES: &str = "\
t\thpa_replicas\thpa_ready\thpa_p95\thpa_errors\tsw_replicas\tsw_ready\tsw_p95\tsw_errors\tkeda_replicas\tkeda_ready\tkeda_p95\tkeda_errors
0\t2\t2\t0.1\t0\t2\t2\t0.1\t0\t2\t2\t0.1\t0
10\t2\t2\t0.6\t0\t3\t2\t0.1\t0.02\t2\t2\t0.1\t0
40\t3\t3\t0.1\t0\t3\t3\t0.1\t0\t4\t2\t0.1\t0
50\t3\t3\t0.1\t0\t2\t2\t0.1\t0\t4\t4\t0.1\t0
";

fn event(user: &str, stage: &str, verb: &str, at: &str, object: &str) -> String {
    format!(
        r#"{{"stage":"{stage}","verb":"{verb}","user":{{"username":"{user}"}},"requestReceivedTimestamp":"{at}","objectRef":{object}}}"#
    )
}

#[test]
fn figures_are_the_columns_definitions_on_known_samples_and_audit_events() {
    let dir = TempDir::new("bench-figures");
    dir.file("run-1.tsv", SAMPLES);
    dir.file(
        "run-1.tsv.window",
        "2026-12-01T00:00:00.000000Z\t2026-12-01T00:10:00.000000Z\n",
    );
    let (sw, hpa) = (
        "system:serviceaccount:scalewise-system:scalewise",
        "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
    );
    let (operator, metrics) = (
        "system:serviceaccount:keda:keda-operator",
        "system:serviceaccount:keda:keda-metrics-server",
    );
    let at = "2026-12-01T00:05:00.000000Z";
    let scale = |name: &str| {
        format!(
            r#"{{"apiGroup":"apps","resource":"deployments","subresource":"scale","name":"{name}"}}"#
        )
    };
    let events = [
        event(sw, "ResponseComplete", "get", at, &scale("sw-web")),
        event(sw, "ResponseComplete", "patch", at, &scale("sw-web")),
        event(sw, "ResponseStarted", "watch", at, "{}"),
        event(sw, "ResponseComplete", "watch", at, "{}"),
        event(
            sw,
            "ResponseComplete",
            "get",
            "2026-12-01T00:11:00.000000Z",
            "{}",
        ),
        event(hpa, "ResponseComplete", "get", at, &scale("hpa-web")),
        event(
            hpa,
            "ResponseComplete",
            "list",
            at,
            r#"{"apiGroup":"metrics.k8s.io","resource":"pods"}"#,
        ),
        event(
            hpa,
            "ResponseComplete",
            "update",
            at,
            r#"{"apiGroup":"autoscaling","resource":"horizontalpodautoscalers","name":"hpa-web"}"#,
        ),
        event(
            hpa,
            "ResponseComplete",
            "get",
            at,
            r#"{"apiGroup":"external.metrics.k8s.io","resource":"s0-prometheus"}"#,
        ),
        event(
            hpa,
            "ResponseComplete",
            "update",
            at,
            r#"{"apiGroup":"autoscaling","resource":"horizontalpodautoscalers","name":"keda-hpa-keda-web"}"#,
        ),
        event(hpa, "ResponseComplete", "get", at, "{}"),
        event(operator, "ResponseComplete", "get", at, &scale("keda-web")),
        event(operator, "ResponseComplete", "list", at, "{}"),
        event(metrics, "ResponseComplete", "get", at, "{}"),
        event("scalewise-admin", "ResponseComplete", "get", at, "{}"),
        event(sw, "RequestReceived", "get", at, "{}"),
    ];
    let audit = dir.file("audit.jsonl", &(events.join("\n") + "\nnot json\n"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bench/hpa_figures.py");
    let out = Command::new("python3")
        .args([script, &dir.path(""), "1", "0", &audit])
        .args(["abc1234", "v2.21.0", "hpa", "sw", "keda"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 (make bench-hpa needs it): {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // hpa: 2 replicas for 40 s, 3 for 10: 110; over the SLO from 0:00 to 0:10 (p95 0.6 s).
    // sw: out at 0:10 (2% errors until then), in at 0:50: 2 x 10 + 3 x 40 = 140.
    // keda: 2 x 40 + 4 x 10 = 120, peak 4.
    for row in [
        "| 1 | HPA (kube-controller-manager v1.37) | 40 | 110 | 1 | 10 | 3 | 3 |",
        "| 1 | scalewise | 10 | 140 | 2 | 10 | 3 | 3 |",
        "| 1 | KEDA v2.21.0 (its HPA) | 40 | 120 | 1 | 0 | 4 | 5 |",
    ] {
        assert!(text.contains(row), "no row {row:?} in:\n{text}");
    }
    assert!(text.contains("counted for no one: run 1: 1."), "{text}");
    assert!(text.contains("at commit abc1234, 1 run, with"), "{text}");
    assert!(text.contains("one run: the noise is unknown"), "{text}");
}
