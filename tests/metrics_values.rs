//! Every metric kind computes the expected number from known data, on Prometheus and on
//! VictoriaMetrics (the environment of `make test`).
//!
//! The data is written with explicit timestamps (remote write to Prometheus, text import to
//! VictoriaMetrics): one sample per second for the last minute, up to `t0`, and every query is
//! evaluated at `t0`. Counters rise linearly, so a rate over 30 s is the slope exactly on both
//! servers. Every expected value below is worked out by hand from the raw samples.

mod support;

use std::time::Duration;

use scalewise::metrics::{Failure, MetricObservation};
use support::metrics::{PromApi, TimestampMs, now_ms};
use support::promdata::{self, counter, gauge, push};
use support::unique_name;

/// The newest sample and the evaluation time.
fn t0() -> TimestampMs {
    now_ms()
}

const MINUTE: TimestampMs = 60_000;

fn value(o: &MetricObservation) -> f64 {
    match &o.result {
        Ok(sample) => sample.value,
        Err(failure) => panic!("{}: {failure:?} ({failure}); query: {}", o.name, o.query),
    }
}

/// Equal up to floating-point rounding in the server's arithmetic.
fn assert_close(o: &MetricObservation, want: f64) {
    let got = value(o);
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{}: got {got}, want {want}; query: {}",
        o.name,
        o.query
    );
}

/// Fresh data: the newest sample is at the evaluation time.
fn assert_fresh(o: &MetricObservation) {
    let age = o
        .result
        .as_ref()
        .ok()
        .and_then(|s| s.age)
        .unwrap_or_else(|| panic!("{}: no age: {:?}", o.name, o.result));
    assert!(age <= Duration::from_secs(1), "{}: age {age:?}", o.name);
}

async fn cpu_is_usage_rate_over_requests_as_a_percent(api: PromApi) {
    let ns = unique_name("cpu");
    let t0 = t0();
    let from = t0 - MINUTE;
    let pod_a = "checkout-7d9f8b6c4-abcde";
    let pod_b = "checkout-7d9f8b6c4-fghij";
    let usage = "container_cpu_usage_seconds_total";
    let requests = "kube_pod_container_resource_requests";
    push(
        &api,
        &[
            // The two containers of the target: 0.25 and 0.5 CPU seconds per second.
            counter(
                usage,
                &[("namespace", &ns), ("pod", pod_a), ("container", "app")],
                from,
                t0,
                0.25,
            ),
            counter(
                usage,
                &[("namespace", &ns), ("pod", pod_b), ("container", "app")],
                from,
                t0,
                0.5,
            ),
            // Left out: the pod-level cgroup, the pause container, another Deployment's pod.
            counter(
                usage,
                &[("namespace", &ns), ("pod", pod_a), ("container", "")],
                from,
                t0,
                0.75,
            ),
            counter(
                usage,
                &[("namespace", &ns), ("pod", pod_a), ("container", "POD")],
                from,
                t0,
                0.01,
            ),
            counter(
                usage,
                &[
                    ("namespace", &ns),
                    ("pod", "checkout-api-6c5d4-zzzzz"),
                    ("container", "app"),
                ],
                from,
                t0,
                4.0,
            ),
            // Requests: 0.5 cores each; memory requests and other pods are left out.
            gauge(
                requests,
                &[
                    ("namespace", &ns),
                    ("pod", pod_a),
                    ("container", "app"),
                    ("resource", "cpu"),
                    ("unit", "core"),
                ],
                from,
                t0,
                1000,
                0.5,
            ),
            gauge(
                requests,
                &[
                    ("namespace", &ns),
                    ("pod", pod_b),
                    ("container", "app"),
                    ("resource", "cpu"),
                    ("unit", "core"),
                ],
                from,
                t0,
                1000,
                0.5,
            ),
            gauge(
                requests,
                &[
                    ("namespace", &ns),
                    ("pod", pod_a),
                    ("container", "app"),
                    ("resource", "memory"),
                    ("unit", "byte"),
                ],
                from,
                t0,
                1000,
                1e9,
            ),
            gauge(
                requests,
                &[
                    ("namespace", &ns),
                    ("pod", "checkout-api-6c5d4-zzzzz"),
                    ("container", "app"),
                    ("resource", "cpu"),
                    ("unit", "core"),
                ],
                from,
                t0,
                1000,
                8.0,
            ),
        ],
    )
    .await;
    // The target's pods: checkout's two, 0.5 cores each (their specs' requests); the
    // checkout-api pod is another workload's.
    let pods = promdata::ready_pods(&[(pod_a, "500m", "1Gi"), (pod_b, "0.5", "1Gi")]);
    let policy = promdata::policy(
        &ns,
        "15s",
        "    - name: cpu\n      cpu: {}\n      window: 30s\n      target: 70\n",
    );
    let observed = promdata::read_with_pods(&api.url, &policy, Some(t0), &pods).await;
    // 100 * (0.25 + 0.5) / (0.5 + 0.5)
    assert_close(&observed[0], 75.0);
    assert_fresh(&observed[0]);
    assert_eq!(observed[0].pods.as_ref().map(|p| p.counts.ready), Some(2));
    // Without the pods there is nothing to count: unavailable, never a number.
    let unknown = promdata::read(&api.url, &policy, Some(t0)).await;
    assert!(unknown[0].result.is_err(), "{:?}", unknown[0].result);

    // A podSelector reads the series it selects as written: usage over kube-state-metrics'
    // requests.
    let by_selector = promdata::policy(
        &ns,
        "15s",
        "    - name: cpu\n      cpu: {podSelector: 'namespace=\"{namespace}\", pod=~\"checkout-7d9f8b6c4-.+\"'}\n      window: 30s\n      target: 70\n",
    );
    let observed = promdata::read(&api.url, &by_selector, Some(t0)).await;
    assert_close(&observed[0], 75.0);
}

async fn memory_is_working_set_over_requests_as_a_percent(api: PromApi) {
    let ns = unique_name("memory");
    let t0 = t0();
    let from = t0 - MINUTE;
    let mib = 1024.0 * 1024.0;
    let ws = "container_memory_working_set_bytes";
    let requests = "kube_pod_container_resource_requests";
    let pod_a = "checkout-5f6d7c8b9-aaaaa";
    let pod_b = "checkout-5f6d7c8b9-bbbbb";
    push(
        &api,
        &[
            gauge(
                ws,
                &[("namespace", &ns), ("pod", pod_a), ("container", "app")],
                from,
                t0,
                1000,
                256.0 * mib,
            ),
            gauge(
                ws,
                &[("namespace", &ns), ("pod", pod_b), ("container", "app")],
                from,
                t0,
                1000,
                128.0 * mib,
            ),
            gauge(
                ws,
                &[("namespace", &ns), ("pod", pod_a), ("container", "")],
                from,
                t0,
                1000,
                384.0 * mib,
            ),
            gauge(
                requests,
                &[
                    ("namespace", &ns),
                    ("pod", pod_a),
                    ("container", "app"),
                    ("resource", "memory"),
                    ("unit", "byte"),
                ],
                from,
                t0,
                1000,
                512.0 * mib,
            ),
            gauge(
                requests,
                &[
                    ("namespace", &ns),
                    ("pod", pod_b),
                    ("container", "app"),
                    ("resource", "memory"),
                    ("unit", "byte"),
                ],
                from,
                t0,
                1000,
                512.0 * mib,
            ),
            gauge(
                requests,
                &[
                    ("namespace", &ns),
                    ("pod", pod_a),
                    ("container", "app"),
                    ("resource", "cpu"),
                    ("unit", "core"),
                ],
                from,
                t0,
                1000,
                1.0,
            ),
        ],
    )
    .await;
    let policy = promdata::policy(
        &ns,
        "15s",
        "    - name: memory\n      memory: {}\n      target: 80\n",
    );
    let pods = promdata::ready_pods(&[(pod_a, "1", "512Mi"), (pod_b, "1", "512Mi")]);
    let observed = promdata::read_with_pods(&api.url, &policy, Some(t0), &pods).await;
    // 100 * (256 + 128) MiB / (512 + 512) MiB
    assert_close(&observed[0], 37.5);
    assert_fresh(&observed[0]);
}

async fn latency_is_the_quantile_of_the_histogram(api: PromApi) {
    let test = unique_name("latency");
    let t0 = t0();
    let from = t0 - MINUTE;
    let bucket = "http_request_duration_seconds_bucket";
    // Requests per second at or below each bound: 2, 6, 9, 10, 10 (10 in all). Split over two
    // instances to check the aggregation by `le`: 1 + 1, 3 + 3, ...
    let mut series = Vec::new();
    for instance in ["a", "b"] {
        for (le, per_second) in [
            ("0.1", 1.0),
            ("0.25", 3.0),
            ("0.5", 4.5),
            ("1", 5.0),
            ("+Inf", 5.0),
        ] {
            series.push(counter(
                bucket,
                &[
                    ("test", &test),
                    ("service", "web"),
                    ("instance", instance),
                    ("le", le),
                ],
                from,
                t0,
                per_second,
            ));
        }
    }
    // Another service, left out by the selector.
    series.push(counter(
        bucket,
        &[("test", &test), ("service", "cart"), ("le", "+Inf")],
        from,
        t0,
        100.0,
    ));
    push(&api, &series).await;
    let policy = promdata::policy(
        "shop",
        "15s",
        &format!(
            "    - name: p95\n      latency:\n        histogram: http_request_duration_seconds\n        quantile: 0.95\n        selector: 'test=\"{test}\", service=\"web\"'\n      window: 30s\n      scaleOutAbove: 0.5\n"
        ),
    );
    let observed = promdata::read(&api.url, &policy, Some(t0)).await;
    // rank 0.95 * 10 = 9.5 falls in (0.5, 1], which holds requests 9 to 10:
    // 0.5 + (1 - 0.5) * (9.5 - 9) / (10 - 9)
    assert_close(&observed[0], 0.75);
    assert_fresh(&observed[0]);
}

fn error_rate_policy(test: &str) -> scalewise::api::ScalingPolicy {
    promdata::policy(
        "shop",
        "15s",
        &format!(
            "    - name: errors\n      errorRate:\n        counter: http_requests_total\n        errorSelector: 'code=~\"5..\"'\n        selector: 'test=\"{test}\", service=\"web\"'\n      window: 30s\n      scaleOutAbove: 0.05\n"
        ),
    )
}

async fn error_rate_is_errors_over_all_requests(api: PromApi) {
    let test = unique_name("errors");
    let t0 = t0();
    let from = t0 - MINUTE;
    let c = "http_requests_total";
    push(
        &api,
        &[
            counter(
                c,
                &[("test", &test), ("service", "web"), ("code", "200")],
                from,
                t0,
                8.0,
            ),
            counter(
                c,
                &[("test", &test), ("service", "web"), ("code", "404")],
                from,
                t0,
                1.0,
            ),
            counter(
                c,
                &[("test", &test), ("service", "web"), ("code", "503")],
                from,
                t0,
                1.0,
            ),
            counter(
                c,
                &[("test", &test), ("service", "cart"), ("code", "500")],
                from,
                t0,
                50.0,
            ),
        ],
    )
    .await;
    let observed = promdata::read(&api.url, &error_rate_policy(&test), Some(t0)).await;
    // 1 error per second over 8 + 1 + 1 = 10 requests per second.
    assert_close(&observed[0], 0.1);
    assert_fresh(&observed[0]);
}

async fn error_rate_without_error_series_is_zero(api: PromApi) {
    let test = unique_name("no-errors");
    let t0 = t0();
    push(
        &api,
        &[counter(
            "http_requests_total",
            &[("test", &test), ("service", "web"), ("code", "200")],
            t0 - MINUTE,
            t0,
            5.0,
        )],
    )
    .await;
    let observed = promdata::read(&api.url, &error_rate_policy(&test), Some(t0)).await;
    assert_close(&observed[0], 0.0);
    assert_fresh(&observed[0]);
}

async fn error_rate_without_traffic_is_zero(api: PromApi) {
    let test = unique_name("idle");
    let t0 = t0();
    let from = t0 - MINUTE;
    // Both counters exist but stand still: 0 errors over 0 requests.
    push(
        &api,
        &[
            gauge(
                "http_requests_total",
                &[("test", &test), ("service", "web"), ("code", "200")],
                from,
                t0,
                1000,
                120.0,
            ),
            gauge(
                "http_requests_total",
                &[("test", &test), ("service", "web"), ("code", "500")],
                from,
                t0,
                1000,
                3.0,
            ),
        ],
    )
    .await;
    let observed = promdata::read(&api.url, &error_rate_policy(&test), Some(t0)).await;
    assert_close(&observed[0], 0.0);
    assert_fresh(&observed[0]);
}

async fn error_rate_without_a_total_is_empty(api: PromApi) {
    let test = unique_name("no-total");
    let observed = promdata::read(&api.url, &error_rate_policy(&test), Some(t0())).await;
    assert_eq!(
        observed[0].result,
        Err(Failure::EmptyInNamespace {
            label: "namespace".into(),
            namespace: "shop".into(),
            granted: vec![],
        }),
        "{}",
        observed[0].query
    );
}

async fn request_rate_is_the_counters_rate(api: PromApi) {
    let test = unique_name("rps");
    let t0 = t0();
    let from = t0 - MINUTE;
    let c = "http_requests_total";
    push(
        &api,
        &[
            counter(
                c,
                &[("test", &test), ("service", "web"), ("instance", "a")],
                from,
                t0,
                4.0,
            ),
            counter(
                c,
                &[("test", &test), ("service", "web"), ("instance", "b")],
                from,
                t0,
                6.5,
            ),
            counter(
                c,
                &[("test", &test), ("service", "cart"), ("instance", "a")],
                from,
                t0,
                100.0,
            ),
        ],
    )
    .await;
    let policy = promdata::policy(
        "shop",
        "15s",
        &format!(
            "    - name: rps\n      requestRate:\n        counter: http_requests_total\n        selector: 'test=\"{test}\", service=\"web\"'\n      window: 30s\n      targetPerReplica: 5\n"
        ),
    );
    let observed = promdata::read(&api.url, &policy, Some(t0)).await;
    // 4 + 6.5 requests per second.
    assert_close(&observed[0], 10.5);
    assert_fresh(&observed[0]);
}

async fn query_fills_its_placeholders_and_yields_one_number(api: PromApi) {
    let ns = unique_name("backlog");
    let t0 = t0();
    let from = t0 - MINUTE;
    let depth = "orders_queue_depth";
    push(
        &api,
        &[
            gauge(
                depth,
                &[("namespace", &ns), ("app", "checkout"), ("queue", "a")],
                from,
                t0,
                1000,
                120.0,
            ),
            gauge(
                depth,
                &[("namespace", &ns), ("app", "checkout"), ("queue", "b")],
                from,
                t0,
                1000,
                180.0,
            ),
            gauge(
                depth,
                &[("namespace", &ns), ("app", "cart"), ("queue", "a")],
                from,
                t0,
                1000,
                999.0,
            ),
            counter(
                "orders_total",
                &[("namespace", &ns), ("app", "checkout")],
                from,
                t0,
                2.0,
            ),
        ],
    )
    .await;
    let policy = promdata::policy(
        &ns,
        "15s",
        "    - name: backlog\n      query: 'sum(orders_queue_depth{namespace=\"{namespace}\", app=\"{target}\"})'\n      targetPerReplica: 100\n    - name: orders\n      query: 'sum(rate(orders_total{namespace=\"{namespace}\"}[{window}])) * 60'\n      window: 30s\n      scaleOutAbove: 1000\n",
    );
    let observed = promdata::read(&api.url, &policy, Some(t0)).await;
    assert_eq!(
        observed[0].query,
        // The placeholders filled, then the query parsed and printed again as it runs.
        format!("sum(orders_queue_depth{{app=\"checkout\",namespace=\"{ns}\"}})")
    );
    // 120 + 180 waiting orders; 2 orders per second is 120 per minute.
    assert_close(&observed[0], 300.0);
    assert_close(&observed[1], 120.0);
    assert_fresh(&observed[0]);
    assert_fresh(&observed[1]);
}

/// Every case above, once per server.
macro_rules! on_each_server {
    ($($case:ident),* $(,)?) => {
        mod prometheus {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::promdata::prometheus()).await;
                }
            )*
        }
        mod victoriametrics {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::promdata::victoriametrics()).await;
                }
            )*
        }
    };
}

on_each_server!(
    cpu_is_usage_rate_over_requests_as_a_percent,
    memory_is_working_set_over_requests_as_a_percent,
    latency_is_the_quantile_of_the_histogram,
    error_rate_is_errors_over_all_requests,
    error_rate_without_error_series_is_zero,
    error_rate_without_traffic_is_zero,
    error_rate_without_a_total_is_empty,
    request_rate_is_the_counters_rate,
    query_fills_its_placeholders_and_yields_one_number,
);
