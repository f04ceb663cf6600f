//! `scalewise query` as users run it: the reference policy `examples/checkout.yaml` against the
//! environment's Prometheus holding matching data, and against a Prometheus that was stopped.

mod cmd;
mod support;

use cmd::{scalewise, stderr, stdout};
use serde_json::Value;
use support::metrics::{TimestampMs, now_ms};
use support::promdata::{self, PrivatePrometheus, counter, gauge};
use support::repo_path;

fn checkout() -> String {
    repo_path("examples/checkout.yaml").display().to_string()
}

/// Data matching `examples/checkout.yaml` (namespace shop, Deployment checkout, service
/// checkout, queue checkout), one sample per second from 150 s ago to 2 minutes ahead, so that
/// the 2-minute rates read exact slopes whenever the command evaluates them. Counters are a
/// function of time alone, so a second run writes the same samples.
async fn push_checkout_data() {
    let api = promdata::prometheus();
    let now = now_ms();
    let (from, to): (TimestampMs, TimestampMs) = (now - 150_000, now + 120_000);
    let ns = ("namespace", "shop");
    let (a, b) = ("checkout-6b7c8d9f5-x2k4q", "checkout-6b7c8d9f5-p9z7w");
    let usage = "container_cpu_usage_seconds_total";
    let requests = "kube_pod_container_resource_requests";
    let mut series = vec![
        // CPU: 0.25 + 0.5 cores used of 0.5 + 0.5 requested.
        counter(
            usage,
            &[ns, ("pod", a), ("container", "app")],
            from,
            to,
            0.25,
        ),
        counter(
            usage,
            &[ns, ("pod", b), ("container", "app")],
            from,
            to,
            0.5,
        ),
        gauge(
            requests,
            &[
                ns,
                ("pod", a),
                ("container", "app"),
                ("resource", "cpu"),
                ("unit", "core"),
            ],
            from,
            to,
            1000,
            0.5,
        ),
        gauge(
            requests,
            &[
                ns,
                ("pod", b),
                ("container", "app"),
                ("resource", "cpu"),
                ("unit", "core"),
            ],
            from,
            to,
            1000,
            0.5,
        ),
        // kube-state-metrics' view of who owns them: ReplicaSet checkout-6b7c8d9f5 of Deployment
        // checkout, both Ready (what `--pods kube-state-metrics` joins).
        gauge(
            "kube_replicaset_owner",
            &[
                ns,
                ("replicaset", "checkout-6b7c8d9f5"),
                ("owner_kind", "Deployment"),
                ("owner_name", "checkout"),
            ],
            from,
            to,
            1000,
            1.0,
        ),
        // Requests: 8 OK, 1 not found, 1 server error per second.
        counter(
            "http_requests_total",
            &[("service", "checkout"), ("code", "200")],
            from,
            to,
            8.0,
        ),
        counter(
            "http_requests_total",
            &[("service", "checkout"), ("code", "404")],
            from,
            to,
            1.0,
        ),
        counter(
            "http_requests_total",
            &[("service", "checkout"), ("code", "500")],
            from,
            to,
            1.0,
        ),
        // The queue: 120 + 180 orders waiting.
        gauge(
            "orders_queue_depth",
            &[("queue", "checkout"), ("shard", "1")],
            from,
            to,
            1000,
            120.0,
        ),
        gauge(
            "orders_queue_depth",
            &[("queue", "checkout"), ("shard", "2")],
            from,
            to,
            1000,
            180.0,
        ),
    ];
    for pod in [a, b] {
        series.push(gauge(
            "kube_pod_owner",
            &[
                ns,
                ("pod", pod),
                ("owner_kind", "ReplicaSet"),
                ("owner_name", "checkout-6b7c8d9f5"),
            ],
            from,
            to,
            1000,
            1.0,
        ));
        series.push(gauge(
            "kube_pod_status_ready",
            &[ns, ("pod", pod), ("condition", "true")],
            from,
            to,
            1000,
            1.0,
        ));
    }
    // Latency: per second 2 requests at or below 0.1 s, 6 at or below 0.25, 9 at or below 0.5,
    // 10 at or below 1 and in all.
    for (le, per_second) in [
        ("0.1", 2.0),
        ("0.25", 6.0),
        ("0.5", 9.0),
        ("1", 10.0),
        ("+Inf", 10.0),
    ] {
        series.push(counter(
            "http_request_duration_seconds_bucket",
            &[("service", "checkout"), ("le", le)],
            from,
            to,
            per_second,
        ));
    }
    promdata::push(&api, &series).await;
}

#[tokio::test]
async fn query_prints_each_metric_of_the_reference_policy_with_its_promql_and_value() {
    push_checkout_data().await;
    let url = promdata::prometheus().url;
    // The target's pods through kube-state-metrics (the test cluster has no Deployment checkout).
    let out = scalewise(&[
        "query",
        "--policy",
        &checkout(),
        "--prometheus-url",
        &url,
        "--replicas",
        "4",
        "--pods",
        "kube-state-metrics",
        "-o",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}\nstdout: {}",
        stderr(&out),
        stdout(&out)
    );
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let metrics = report.as_array().unwrap();
    let names: Vec<&str> = metrics
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cpu", "latency-p95", "errors", "backlog"]);
    // By hand: 100 * (0.25 + 0.5) / (0.5 + 0.5); the p95 rank 9.5 in (0.5, 1] holding requests
    // 9 to 10: 0.5 + 0.5 * 0.5; 1 error (5xx) of 10 requests; 120 + 180.
    for (metric, want) in metrics.iter().zip([75.0, 0.75, 0.1, 300.0]) {
        let got = metric["value"]
            .as_f64()
            .unwrap_or_else(|| panic!("{metric}"));
        assert!((got - want).abs() < 1e-9, "{metric}");
        assert!(metric["failure"].is_null(), "{metric}");
    }
    let cpu_query = metrics[0]["query"].as_str().unwrap();
    assert!(
        cpu_query.starts_with(r#"100 * sum(sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!="",container!="POD",namespace="shop"}[2m])) * on (namespace, pod) group_left () "#)
            && cpu_query.contains(r#"kube_replicaset_owner{namespace="shop",owner_kind="Deployment",owner_name="checkout"}"#),
        "{cpu_query}"
    );
    assert_eq!(
        metrics[1]["query"],
        r#"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{namespace="shop",service="checkout"}[2m])))"#
    );
    assert_eq!(
        metrics[2]["query"],
        r#"sum(rate(http_requests_total{code=~"5..",namespace="shop",service="checkout"}[2m])) / (sum(rate(http_requests_total{namespace="shop",service="checkout"}[2m])) > 0) or sum(rate(http_requests_total{namespace="shop",service="checkout"}[2m])) * 0"#
    );
    assert_eq!(
        metrics[3]["query"],
        r#"sum(orders_queue_depth{namespace="shop",queue="checkout"})"#
    );
    // At 4 replicas: three thresholds step out by 2; the backlog wants ceil(300 / 100).
    let proposals: Vec<i64> = metrics
        .iter()
        .map(|m| m["proposedReplicas"].as_i64().unwrap())
        .collect();
    assert_eq!(proposals, [6, 6, 6, 3]);
    assert_eq!(metrics[0]["explanation"], "cpu 75 > 70");

    let text = scalewise(&[
        "query",
        "--policy",
        &checkout(),
        "--prometheus-url",
        &url,
        "--replicas",
        "4",
        "--pods",
        "kube-state-metrics",
    ]);
    assert_eq!(text.status.code(), Some(0), "{}", stderr(&text));
    let text = stdout(&text);
    for line in [
        format!("shop/checkout: 4 metrics of Deployment shop/checkout from {url}/"),
        "proposals for 4 replicas".to_owned(),
        "  proposes:  6 (cpu 75 > 70)".to_owned(),
        r#"  query:     sum(orders_queue_depth{namespace="shop",queue="checkout"})"#.to_owned(),
        r#"  age query: time() - max(timestamp(orders_queue_depth{namespace="shop",queue="checkout"}))"#.to_owned(),
        "a first evaluation (no history) would decide: Scale out from 4 to 6: cpu 75 > 70"
            .to_owned(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        );
    }
    for prefix in [
        "cpu: 75 (newest sample ",
        "latency-p95: 0.75 (",
        "errors: 0.1 (",
        "backlog: 300 (",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(prefix)),
            "no line {prefix:?}... in:\n{text}"
        );
    }
}

#[tokio::test]
async fn query_against_a_stopped_prometheus_reports_each_metric_unavailable_and_fails() {
    let mut server = PrivatePrometheus::start().await;
    let url = server.api.url.clone();
    server.kill();

    let out = scalewise(&[
        "query",
        "--policy",
        &checkout(),
        "--prometheus-url",
        &url,
        "--pods",
        "kube-state-metrics",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let unavailable: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(": unavailable: cannot connect to "))
        .collect();
    assert_eq!(unavailable.len(), 4, "{text}");
    for (line, name) in unavailable
        .iter()
        .zip(["cpu", "latency-p95", "errors", "backlog"])
    {
        assert!(
            line.starts_with(&format!("{name}: unavailable: cannot connect to {url}/: "))
                && line.contains("Connection refused"),
            "{line}"
        );
    }
    assert!(
        text.contains(
            "  proposes:  2 (a failed metric keeps the current count and blocks scale-in)"
        ),
        "{text}"
    );

    let json = scalewise(&[
        "query",
        "--policy",
        &checkout(),
        "--prometheus-url",
        &url,
        "--pods",
        "kube-state-metrics",
        "-o",
        "json",
    ]);
    assert_eq!(json.status.code(), Some(1));
    let report: Value = serde_json::from_str(&stdout(&json)).unwrap();
    for metric in report.as_array().unwrap() {
        assert_eq!(metric["failure"], "unavailable", "{metric}");
        assert!(metric["value"].is_null(), "{metric}");
        assert!(
            metric["message"]
                .as_str()
                .unwrap()
                .starts_with("cannot connect to "),
            "{metric}"
        );
    }
}

#[test]
fn query_without_a_server_is_a_usage_error() {
    let out = scalewise(&["query", "--policy", &checkout()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "scalewise: no Prometheus server: set --prometheus-url (or SCALEWISE_PROMETHEUS_URL), or spec.prometheus.address\n"
    );
}

#[test]
fn query_refuses_a_policy_address_off_the_allow_list() {
    let dir = std::env::temp_dir().join(support::unique_name("policy"));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.yaml");
    let text = std::fs::read_to_string(checkout()).unwrap().replace(
        "  interval: 15s\n",
        "  interval: 15s\n  prometheus:\n    address: http://169.254.169.254/latest\n",
    );
    std::fs::write(&policy, text).unwrap();
    let out = scalewise(&[
        "query",
        "--policy",
        policy.to_str().unwrap(),
        "--prometheus-url",
        "http://127.0.0.1:9",
        "--allowed-prometheus-url",
        "shop=https://mimir.example/prometheus",
    ]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "scalewise: {}: shop/checkout: spec.prometheus.address: http://169.254.169.254/latest is not allowed by the operator (allowed prefixes: https://mimir.example/prometheus)\n",
            policy.display()
        )
    );
}

#[test]
fn query_reads_a_manifest_without_a_namespace_in_the_one_given_as_kubectl_does() {
    let dir = std::env::temp_dir().join(support::unique_name("policy"));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.yaml");
    let text = std::fs::read_to_string(checkout())
        .unwrap()
        .replace("  namespace: shop\n", "");
    assert!(!text.contains("namespace: shop"), "{text}");
    std::fs::write(&policy, &text).unwrap();
    let file = policy.to_str().unwrap();
    let query = |extra: &[&str]| {
        let mut args = vec![
            "query",
            "--policy",
            file,
            "--prometheus-url",
            "http://127.0.0.1:9",
            "--pods",
            "kube-state-metrics",
        ];
        args.extend_from_slice(extra);
        scalewise(&args)
    };
    // Without --namespace: `default`; with it, that namespace fills {namespace} and the
    // per-pod query.
    let out = query(&[]);
    assert!(
        stdout(&out).starts_with("default/checkout: 4 metrics of Deployment default/checkout"),
        "{}",
        stdout(&out)
    );
    let out = query(&["--namespace", "team-a"]);
    let text = stdout(&out);
    assert!(
        text.starts_with("team-a/checkout: 4 metrics of Deployment team-a/checkout"),
        "{text}"
    );
    assert!(text.contains(r#"namespace="team-a""#), "{text}");
    let bad = query(&["--namespace", "Team_A"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("is not a namespace name"),
        "{}",
        stderr(&bad)
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // A manifest naming another namespace is refused, as kubectl refuses it.
    let out = scalewise(&[
        "query",
        "--policy",
        &checkout(),
        "--prometheus-url",
        "http://127.0.0.1:9",
        "-n",
        "team-a",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains(r#"the policy's namespace "shop" does not match --namespace "team-a""#),
        "{}",
        stderr(&out)
    );
}
