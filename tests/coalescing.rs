//! Coalesced queries: the built-in metrics of many policies, read with one query per template and
//! tick and split per policy, give each policy exactly what its own PromQL gives, on Prometheus
//! and on VictoriaMetrics (the environment of `make test`), with one request per template.

mod support;

use scalewise::metrics::{MetricObservation, PrometheusSource};
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
