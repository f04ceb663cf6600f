//! Coalesced queries: the built-in metrics of many policies, read with one query per template and
//! tick and split per policy, give each policy exactly what its own PromQL gives, on Prometheus
//! and on VictoriaMetrics (the environment of `make test`), with one request per template.

mod support;

use scalewise::metrics::{Failure, Invalid, MetricObservation, PrometheusSource};
use support::metrics::{PromApi, TimestampMs, now_ms};
use support::promdata::{self, Behaviour, FakeServer, counter, gauge, push};
use support::unique_name;

const MINUTE: TimestampMs = 60_000;

/// Four metrics of a policy on `service` in its namespace.
fn metrics(service: &str) -> String {
    format!(
        "    - name: p95\n      latency: {{histogram: http_request_duration_seconds, quantile: 0.95, selector: 'service=\"{service}\"'}}\n      window: 30s\n      scaleOutAbove: 0.5\n\
         \x20   - name: errors\n      errorRate: {{counter: http_requests_total, errorSelector: 'code=~\"5..\"', selector: 'service=\"{service}\"'}}\n      window: 30s\n      scaleOutAbove: 0.05\n\
         \x20   - name: rps\n      requestRate: {{counter: http_requests_total, selector: 'service=\"{service}\"'}}\n      window: 30s\n      scaleOutAbove: 100\n\
         \x20   - name: cpu\n      cpu: {{}}\n      window: 30s\n      target: 70\n"
    )
}

/// Traffic of `service` in `namespace`: `ok` and `errors` requests per second (a histogram of
/// their durations beside), and CPU usage of its pod.
fn traffic(
    namespace: &str,
    service: &str,
    pod: &str,
    ok: f64,
    errors: Option<f64>,
    cores: f64,
    (from, t0): (TimestampMs, TimestampMs),
) -> Vec<support::metrics::Series> {
    let mut series = vec![counter(
        "http_requests_total",
        &[
            ("namespace", namespace),
            ("service", service),
            ("code", "200"),
        ],
        from,
        t0,
        ok,
    )];
    if let Some(errors) = errors {
        series.push(counter(
            "http_requests_total",
            &[
                ("namespace", namespace),
                ("service", service),
                ("code", "503"),
            ],
            from,
            t0,
            errors,
        ));
    }
    let total = ok + errors.unwrap_or(0.0);
    for (le, share) in [
        ("0.1", 0.2),
        ("0.25", 0.6),
        ("0.5", 0.9),
        ("1", 1.0),
        ("+Inf", 1.0),
    ] {
        series.push(counter(
            "http_request_duration_seconds_bucket",
            &[("namespace", namespace), ("service", service), ("le", le)],
            from,
            t0,
            total * share,
        ));
    }
    series.push(counter(
        "container_cpu_usage_seconds_total",
        &[("namespace", namespace), ("pod", pod), ("container", "app")],
        from,
        t0,
        cores,
    ));
    series.push(gauge(
        "container_memory_working_set_bytes",
        &[("namespace", namespace), ("pod", pod), ("container", "app")],
        from,
        t0,
        1000,
        1e8,
    ));
    series
}

/// One policy of the test: its object, its plan and the target's pods.
struct Case {
    plan: scalewise::metrics::QueryPlan,
    pods: scalewise::pods::TargetPods,
}

fn case(namespace: &str, service: &str, pod: &str) -> Case {
    let object = promdata::policy(namespace, "15s", &metrics(service));
    let resolved = scalewise::api::Policy::resolve(&object.spec).unwrap();
    Case {
        plan: scalewise::metrics::QueryPlan::for_policy(&object, &resolved).unwrap(),
        pods: promdata::ready_pods(&[(pod, "500m", "1Gi")]),
    }
}

async fn read(source: &PrometheusSource, case: &Case, at: TimestampMs) -> Vec<MetricObservation> {
    let at = jiff::Timestamp::from_millisecond(at).unwrap();
    source
        .evaluate_with_pods(&case.plan, Some(at), Ok(&case.pods))
        .await
        .unwrap()
}

/// Both readings say the same: equal values (up to the server's rounding) and ages, or the same
/// failure. VictoriaMetrics answers the same age query with ages up to a second apart from one
/// run to the next (measured: 0.80 s, 0.95 s, 0.96 s for one series at one evaluation time), so
/// there ages agree within a second; Prometheus' agree exactly.
fn assert_same(
    own: &MetricObservation,
    shared: &MetricObservation,
    namespace: &str,
    api: &PromApi,
) {
    assert_eq!(
        own.query, shared.query,
        "the status shows the policy's own PromQL"
    );
    match (&own.result, &shared.result) {
        (Ok(a), Ok(b)) => {
            assert!(
                (a.value - b.value).abs() <= 1e-9 * a.value.abs().max(1.0),
                "{namespace} {}: own {} but shared {}; query {}",
                own.name,
                a.value,
                b.value,
                own.query
            );
            if api.name == "Prometheus" {
                assert_eq!(a.age, b.age, "{namespace} {}", own.name);
            } else {
                let (a, b) = (a.age.unwrap_or_default(), b.age.unwrap_or_default());
                assert!(
                    a.abs_diff(b) <= std::time::Duration::from_secs(1),
                    "{namespace} {}: ages {a:?} and {b:?}",
                    own.name
                );
            }
        }
        (a, b) => assert_eq!(
            format!("{a:?}"),
            format!("{b:?}"),
            "{namespace} {}: query {}",
            own.name,
            own.query
        ),
    }
}

async fn a_split_reading_equals_the_policys_own(api: PromApi) {
    let a = unique_name("co-a");
    let b = unique_name("co-b");
    let t0 = now_ms() / 1000 * 1000;
    let from = t0 - MINUTE;
    let mut series = Vec::new();
    series.extend(traffic(
        &a,
        "checkout",
        "checkout-1",
        40.0,
        Some(2.0),
        0.3,
        (from, t0),
    ));
    series.extend(traffic(&a, "cart", "cart-1", 0.0, None, 0.1, (from, t0)));
    series.extend(traffic(
        &b,
        "checkout",
        "checkout-9",
        12.5,
        None,
        0.45,
        (from, t0),
    ));
    push(&api, &series).await;

    let cases = [
        // Errors among the requests; then no error series (0 errors); then no traffic at all.
        case(&a, "checkout", "checkout-1"),
        case(&b, "checkout", "checkout-9"),
        case(&a, "cart", "cart-1"),
        // Nothing of this service exists: empty, in both readings.
        case(&b, "gone", "gone-1"),
    ];
    let own = promdata::source(&api.url);
    let mut expected = Vec::new();
    for c in &cases {
        expected.push(read(&own, c, t0).await);
    }
    // The readings are what they should be, so the comparison below compares numbers.
    let value = |o: &MetricObservation| o.result.as_ref().map(|s| s.value).ok();
    assert_eq!(value(&expected[0][2]), Some(42.0), "{:?}", expected[0][2]);
    assert!((value(&expected[0][1]).unwrap() - 2.0 / 42.0).abs() < 1e-9);
    assert_eq!(value(&expected[1][1]), Some(0.0), "{:?}", expected[1][1]);
    assert_eq!(value(&expected[2][1]), Some(0.0), "{:?}", expected[2][1]);
    assert!((value(&expected[1][3]).unwrap() - 90.0).abs() < 1e-9);
    assert!(expected[3][2].result.is_err(), "{:?}", expected[3][2]);

    let proxy = FakeServer::start(Behaviour::Proxy(api.url.clone())).await;
    let shared = promdata::source(&proxy.url).with_coalescing();
    // A first tick makes every policy known (policies new to a tick read their own).
    for c in &cases {
        read(&shared, c, t0 - 15_000).await;
    }
    let before = proxy.requests().len();
    let readings = futures::future::join_all(cases.iter().map(|c| read(&shared, c, t0))).await;
    let sent = proxy.requests().len() - before;
    assert_eq!(
        sent,
        4,
        "{} with {} policies of four metrics each: one query per template (latency, errorRate, requestRate, cpu): {:#?}",
        api.name,
        cases.len(),
        &proxy.requests()[before..]
    );
    for ((c, own), shared) in cases.iter().zip(&expected).zip(&readings) {
        assert_eq!(own.len(), shared.len());
        for (o, s) in own.iter().zip(shared) {
            assert_same(o, s, &c.plan.namespace, &api);
        }
    }
    // Another server (here: other credentials would do the same) never shares them.
    let alone = promdata::source(&proxy.url).with_coalescing();
    let before = proxy.requests().len();
    read(&alone, &cases[0], t0).await;
    assert_eq!(
        proxy.requests().len() - before,
        4,
        "a new source shares nothing yet"
    );
}

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

on_each_server!(a_split_reading_equals_the_policys_own);

/// A policy in `namespace` with one `requestRate` of `service`.
fn rps_case(namespace: &str, service: &str) -> Case {
    let object = promdata::policy(
        namespace,
        "15s",
        &format!(
            "    - name: rps\n      requestRate: {{counter: http_requests_total, selector: 'service=\"{service}\"'}}\n      window: 30s\n      scaleOutAbove: 100\n"
        ),
    );
    let resolved = scalewise::api::Policy::resolve(&object.spec).unwrap();
    Case {
        plan: scalewise::metrics::QueryPlan::for_policy(&object, &resolved).unwrap(),
        pods: promdata::ready_pods(&[]),
    }
}

/// An answer of the coalesced shape: for each `(namespace, service, value)`, a value series and
/// an age series of 1 s.
fn coalesced_answer(groups: &[(&str, &str, f64)]) -> String {
    let mut result = Vec::new();
    for (namespace, service, value) in groups {
        for (part, v) in [("value", *value), ("age", 1.0)] {
            result.push(serde_json::json!({
                "metric": {"namespace": namespace, "service": service, "scalewise_part": part},
                "value": [1000.0, v.to_string()]
            }));
        }
    }
    serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": result}})
        .to_string()
}

/// A source reading `url` with these series caps, sharing the queries of a tick.
fn capped(url: &str, max_series: usize, max_pod_series: usize) -> PrometheusSource {
    promdata::source_with(scalewise::metrics::SourceConfig {
        default: Some(scalewise::metrics::ServerConfig {
            url: url.parse().unwrap(),
            access: Default::default(),
            tenancy: Default::default(),
        }),
        limits: scalewise::metrics::AnswerLimits {
            max_bytes: 1 << 20,
            max_series,
            max_pod_series,
        },
        ..Default::default()
    })
    .with_coalescing()
}

/// Two ticks of the three policies: the first makes them known, the second shares. The requests
/// the second sent, and its readings.
async fn second_tick(
    server: &FakeServer,
    source: &PrometheusSource,
    cases: &[Case],
) -> (usize, Vec<Vec<MetricObservation>>) {
    let first = 1_800_000_000_000;
    for c in cases {
        read(source, c, first).await;
    }
    let before = server.requests().len();
    let readings =
        futures::future::join_all(cases.iter().map(|c| read(source, c, first + 15_000))).await;
    (server.requests().len() - before, readings)
}

fn respond(status: u16, body: String) -> Behaviour {
    Behaviour::Respond {
        status,
        content_type: "application/json",
        body,
        headers: Vec::new(),
    }
}

#[tokio::test]
async fn an_answer_over_the_coalesced_caps_is_read_again_in_halves_down_to_each_policys_own() {
    // Three groups, six series: over the coalesced cap of 4 (4 x the larger series cap, 1).
    let body = coalesced_answer(&[("a", "x", 1.0), ("b", "x", 2.0), ("c", "x", 3.0)]);
    let server = FakeServer::start(respond(200, body)).await;
    let source = capped(&server.url, 1, 1);
    let cases = [rps_case("a", "x"), rps_case("b", "x"), rps_case("c", "x")];
    let (sent, readings) = second_tick(&server, &source, &cases).await;
    // The three together, then one and two, then the two alone: all over the cap; then each
    // policy's own query, under its own caps.
    assert_eq!(sent, 1 + 2 + 2 + 3, "{:#?}", server.requests());
    for r in &readings {
        assert_eq!(
            r[0].result,
            Err(Failure::Invalid(Invalid::TooManySeries { limit: 1 })),
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn a_failed_coalesced_query_fails_each_policy_with_the_servers_message() {
    let body = r#"{"status":"error","errorType":"unavailable","error":"too many queries"}"#;
    let server = FakeServer::start(respond(503, body.into())).await;
    let source = capped(&server.url, 100, 5000);
    let cases = [rps_case("a", "x"), rps_case("b", "x"), rps_case("c", "y")];
    let (sent, readings) = second_tick(&server, &source, &cases).await;
    assert_eq!(sent, 1, "{:#?}", server.requests());
    for r in &readings {
        match &r[0].result {
            Err(Failure::Unavailable(message)) => {
                assert!(message.contains("too many queries"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn each_share_is_judged_under_the_policys_own_caps() {
    // Group (a, x) holds two series: more than --prometheus-max-series 1 for that policy only.
    let mut body: serde_json::Value =
        serde_json::from_str(&coalesced_answer(&[("a", "x", 1.0), ("b", "x", 2.0)])).unwrap();
    body["data"]["result"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "metric": {"namespace": "a", "service": "x", "instance": "2", "scalewise_part": "value"},
            "value": [1000.0, "5"]
        }));
    let server = FakeServer::start(respond(200, body.to_string())).await;
    let source = capped(&server.url, 1, 5000);
    let cases = [rps_case("a", "x"), rps_case("b", "x"), rps_case("c", "x")];
    let (sent, readings) = second_tick(&server, &source, &cases).await;
    assert_eq!(sent, 1, "{:#?}", server.requests());
    assert_eq!(
        readings[0][0].result,
        Err(Failure::Invalid(Invalid::TooManySeries { limit: 1 }))
    );
    assert_eq!(readings[1][0].result.as_ref().map(|s| s.value), Ok(2.0));
    // A policy whose group is not in the answer found nothing, as its own query would have.
    assert!(
        matches!(readings[2][0].result, Err(Failure::EmptyInNamespace { .. })),
        "{:?}",
        readings[2][0].result
    );
}
