//! Every failure kind, produced for real: against the environment's Prometheus, a private
//! Prometheus the test stops, and small servers on 127.0.0.1 that misbehave on purpose.

mod support;

use std::time::{Duration, Instant};

use scalewise::metrics::{
    AnswerLimits, Failure, Invalid, MetricObservation, ServerConfig, SourceConfig,
};
use support::metrics::{PromApi, TimestampMs, now_ms};
use support::promdata::{self, Behaviour, FakeServer, PrivatePrometheus, counter, gauge};
use support::unique_name;

fn unavailable_message(o: &MetricObservation) -> &str {
    match &o.result {
        Err(Failure::Unavailable(message)) => message,
        other => panic!("{}: want unavailable, got {other:?}", o.name),
    }
}

/// A policy with one `query` metric evaluated every second (staleness limit 2 x 1s + 1m = 62s).
fn query_policy(query: &str) -> scalewise::api::ScalingPolicy {
    promdata::policy(
        "shop",
        "1s",
        &format!("    - name: q\n      query: '{query}'\n      scaleOutAbove: 1\n"),
    )
}

#[tokio::test]
async fn a_stopped_server_is_unavailable() {
    let mut server = PrivatePrometheus::start().await;
    let policy = query_policy("vector(4)");
    let source = promdata::source(&server.api.url);
    let before = promdata::read_with(&source, &policy, None).await;
    assert_eq!(before[0].value(), Some(4.0));

    server.kill();
    let after = promdata::read_with(&source, &policy, None).await;
    let message = unavailable_message(&after[0]);
    assert!(
        message.starts_with(&format!("cannot connect to {}/: ", server.api.url))
            && message.contains("Connection refused"),
        "{message}"
    );
}

#[tokio::test]
async fn a_selector_matching_nothing_is_empty() {
    let counter = unique_name("nothing").replace('-', "_");
    let policy = promdata::policy(
        "shop",
        "15s",
        &format!(
            "    - name: rps\n      requestRate: {{counter: {counter}_total}}\n      scaleOutAbove: 1\n"
        ),
    );
    let observed = promdata::read(&promdata::prometheus().url, &policy, None).await;
    // Scoped to the policy's namespace: the message says which label was looked for.
    assert_eq!(
        observed[0].result,
        Err(Failure::EmptyInNamespace {
            label: "namespace".into(),
            namespace: "shop".into(),
            granted: vec![],
        })
    );
}

#[tokio::test]
async fn samples_older_than_the_limit_but_inside_the_lookback_are_stale() {
    let api = promdata::prometheus();
    let test = unique_name("stale");
    let t0 = now_ms();
    // Samples every 10 s from 200 s to 120 s ago: Prometheus still returns the last one (its
    // lookback is 5 minutes), 120 s old, over the limit of 62 s.
    promdata::push(
        &api,
        &[gauge(
            "queue_depth",
            &[("test", &test)],
            t0 - 200_000,
            t0 - 120_000,
            10_000,
            7.0,
        )],
    )
    .await;
    let observed = promdata::read(
        &api.url,
        &query_policy(&format!("sum(queue_depth{{test=\"{test}\"}})")),
        Some(t0),
    )
    .await;
    assert_eq!(
        observed[0].result,
        Err(Failure::Stale {
            age: Some(Duration::from_secs(120)),
            limit: Duration::from_secs(62)
        })
    );
    assert_eq!(
        observed[0].age_query.as_deref(),
        Some(
            format!("time() - max(timestamp(queue_depth{{namespace=\"shop\",test=\"{test}\"}}))")
                .as_str()
        )
    );
}

#[tokio::test]
async fn a_rate_over_series_that_stopped_is_stale_without_an_age() {
    let api = promdata::prometheus();
    let test = unique_name("gone");
    let t0 = now_ms();
    // The counter stopped 6 minutes ago: a 10-minute rate still has a value, but no current
    // sample exists (beyond the 5-minute lookback).
    promdata::push(
        &api,
        &[counter(
            "jobs_total",
            &[("test", &test)],
            t0 - 540_000,
            t0 - 360_000,
            2.0,
        )],
    )
    .await;
    let observed = promdata::read(
        &api.url,
        &query_policy(&format!("sum(rate(jobs_total{{test=\"{test}\"}}[10m]))")),
        Some(t0),
    )
    .await;
    assert_eq!(
        observed[0].result,
        Err(Failure::Stale {
            age: None,
            limit: Duration::from_secs(62)
        })
    );
}

#[tokio::test]
async fn an_absent_error_series_beside_a_total_reads_zero_not_a_failure() {
    let api = promdata::prometheus();
    let test = unique_name("absent-errors");
    let t0 = now_ms();
    promdata::push(
        &api,
        &[counter(
            "http_requests_total",
            &[("test", &test), ("code", "200")],
            t0 - 60_000,
            t0,
            3.0,
        )],
    )
    .await;
    let policy = promdata::policy(
        "shop",
        "15s",
        &format!(
            "    - name: errors\n      errorRate:\n        counter: http_requests_total\n        errorSelector: 'code=~\"5..\"'\n        selector: 'test=\"{test}\"'\n      window: 30s\n      scaleOutAbove: 0.05\n"
        ),
    );
    let observed = promdata::read(&api.url, &policy, Some(t0)).await;
    assert_eq!(observed[0].value(), Some(0.0), "{:?}", observed[0].result);
}

#[tokio::test]
async fn an_expression_yielding_nan_is_invalid() {
    let api = promdata::prometheus();
    let test = unique_name("nan");
    let t0: TimestampMs = now_ms();
    promdata::push(
        &api,
        &[gauge(
            "in_flight",
            &[("test", &test)],
            t0 - 10_000,
            t0,
            1000,
            0.0,
        )],
    )
    .await;
    // 0 / 0
    let observed = promdata::read(
        &api.url,
        &query_policy(&format!(
            "sum(in_flight{{test=\"{test}\"}}) / sum(in_flight{{test=\"{test}\"}})"
        )),
        Some(t0),
    )
    .await;
    assert_eq!(observed[0].result, Err(Failure::Invalid(Invalid::NaN)));
}

/// Two `queue_depth` series of this test (queues a and b), sampled every second for the 10 s up
/// to `t0`: a bare selector over them returns two series.
async fn push_two_queues(api: &PromApi, test: &str, t0: TimestampMs) {
    promdata::push(
        api,
        &[
            gauge(
                "queue_depth",
                &[("test", test), ("queue", "a")],
                t0 - 10_000,
                t0,
                1000,
                1.0,
            ),
            gauge(
                "queue_depth",
                &[("test", test), ("queue", "b")],
                t0 - 10_000,
                t0,
                1000,
                2.0,
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_query_returning_two_series_is_invalid_with_the_count() {
    let api = promdata::prometheus();
    let test = unique_name("two");
    let t0 = now_ms();
    push_two_queues(&api, &test, t0).await;
    let observed = promdata::read(
        &api.url,
        &query_policy(&format!("queue_depth{{test=\"{test}\"}}")),
        Some(t0),
    )
    .await;
    assert_eq!(
        observed[0].result,
        Err(Failure::Invalid(Invalid::Series(2)))
    );
}

#[tokio::test]
async fn a_promql_execution_error_is_unavailable_with_the_servers_message() {
    let api = promdata::prometheus();
    let test = unique_name("many-to-one");
    let t0 = now_ms();
    push_two_queues(&api, &test, t0).await;
    // One-to-one matching with two series on the right is an execution error of the server.
    let observed = promdata::read(
        &api.url,
        &query_policy(&format!("vector(1) + on() queue_depth{{test=\"{test}\"}}")),
        Some(t0),
    )
    .await;
    let message = unavailable_message(&observed[0]);
    assert!(
        message.starts_with("the server refused the query (HTTP 422, execution): ")
            && message.contains("many-to-many matching not allowed"),
        "{message}"
    );
}

#[tokio::test]
async fn a_listener_that_never_answers_is_unavailable_after_the_timeout() {
    let hang = FakeServer::start(Behaviour::Hang).await;
    let source = promdata::source_with(SourceConfig {
        default: Some(ServerConfig {
            url: hang.url.parse().unwrap(),
            access: Default::default(),
            tenancy: Default::default(),
        }),
        timeout: Duration::from_secs(1),
        ..SourceConfig::default()
    });
    let started = Instant::now();
    let observed = promdata::read_with(&source, &query_policy("vector(1)"), None).await;
    let took = started.elapsed();
    assert_eq!(
        unavailable_message(&observed[0]),
        format!(
            "no answer from {}/ within 1s (the request timeout)",
            hang.url
        )
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "took {took:?}"
    );
    assert_eq!(hang.requests().len(), 1);
}

#[tokio::test]
async fn an_http_500_is_unavailable_with_status_and_body() {
    let broken = FakeServer::start(Behaviour::Respond {
        status: 500,
        content_type: "text/plain",
        body: "upstream connect error\n".into(),
        headers: Vec::new(),
    })
    .await;
    let observed = promdata::read(&broken.url, &query_policy("vector(1)"), None).await;
    assert_eq!(
        unavailable_message(&observed[0]),
        r#"HTTP 500 Internal Server Error: "upstream connect error""#
    );
}

#[tokio::test]
async fn a_malformed_body_is_unavailable_and_says_so() {
    let broken = FakeServer::start(Behaviour::Respond {
        status: 200,
        content_type: "application/json",
        body:
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":"#
                .into(),
        headers: Vec::new(),
    })
    .await;
    let observed = promdata::read(&broken.url, &query_policy("vector(1)"), None).await;
    assert_eq!(
        unavailable_message(&observed[0]),
        r#"malformed answer (HTTP 200, application/json): not a Prometheus API response: "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":""#
    );
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let elsewhere = FakeServer::start(Behaviour::Respond {
        status: 200,
        content_type: "application/json",
        body: r#"{"status":"success","data":{"resultType":"scalar","result":[1,"9"]}}"#.into(),
        headers: Vec::new(),
    })
    .await;
    let redirecting = FakeServer::start(Behaviour::Respond {
        status: 307,
        content_type: "text/plain",
        body: String::new(),
        headers: vec![(
            "Location",
            format!("{}/api/v1/query?query=vector(9)", elsewhere.url),
        )],
    })
    .await;
    let observed = promdata::read(&redirecting.url, &query_policy("vector(1)"), None).await;
    assert_eq!(
        unavailable_message(&observed[0]),
        "HTTP 307 Temporary Redirect: empty body"
    );
    assert!(elsewhere.requests().is_empty());
}

#[tokio::test]
async fn each_metric_is_one_request_and_they_run_concurrently() {
    // Three metrics, each reading its value and the age of its samples with one query, against a
    // server that never answers: one after the other they would take 3 timeouts (6 s); together
    // they take about one (2 s).
    let hang = FakeServer::start(Behaviour::Hang).await;
    let source = promdata::source_with(SourceConfig {
        default: Some(ServerConfig {
            url: hang.url.parse().unwrap(),
            access: Default::default(),
            tenancy: Default::default(),
        }),
        timeout: Duration::from_secs(2),
        ..SourceConfig::default()
    });
    let policy = promdata::policy(
        "shop",
        "15s",
        "    - name: a\n      query: sum(a)\n      scaleOutAbove: 1\n    - name: b\n      query: sum(b)\n      scaleOutAbove: 1\n    - name: c\n      query: sum(c)\n      scaleOutAbove: 1\n",
    );
    let started = Instant::now();
    let observed = promdata::read_with(&source, &policy, None).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(observed.len(), 3);
    let requests = hang.requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    for request in &requests {
        // Value and age, in one query (URL-encoded: the label name is plain).
        assert!(
            request.request_line.contains("scalewise_part"),
            "{}",
            request.request_line
        );
    }
    assert_eq!(
        observed.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
}

/// A source reading from `url` with a request timeout and answer limits of its own.
fn limited_source(
    url: &str,
    timeout: Duration,
    limits: AnswerLimits,
) -> scalewise::metrics::PrometheusSource {
    promdata::source_with(SourceConfig {
        default: Some(ServerConfig {
            url: url.parse().unwrap(),
            access: Default::default(),
            tenancy: Default::default(),
        }),
        timeout,
        limits,
        ..SourceConfig::default()
    })
}

/// The start of an instant-vector answer, and one more series of it.
const VECTOR_START: &str = r#"{"status":"success","data":{"resultType":"vector","result":["#;
const ONE_SERIES: &str = r#"{"metric":{"pod":"checkout-1"},"value":[1700000000,"1"]},"#;

#[tokio::test]
async fn an_answer_that_never_ends_is_invalid_at_the_byte_cap_within_the_timeout() {
    let endless = FakeServer::start(Behaviour::Endless {
        start: VECTOR_START.into(),
        repeat: ONE_SERIES.repeat(100),
        pause: Duration::ZERO,
        for_at_most: Duration::from_secs(30),
    })
    .await;
    let timeout = Duration::from_secs(5);
    let source = limited_source(&endless.url, timeout, AnswerLimits::default());
    let started = Instant::now();
    let observed = promdata::read_with(&source, &query_policy("vector(1)"), None).await;
    let took = started.elapsed();
    assert_eq!(
        observed[0].result,
        Err(Failure::Invalid(Invalid::TooLarge { limit: 1024 * 1024 }))
    );
    let message = observed[0].result.as_ref().unwrap_err().to_string();
    assert!(
        message.starts_with("the answer exceeds 1 MiB (--prometheus-max-answer-bytes)"),
        "{message}"
    );
    assert!(took < timeout, "took {took:?}");
}

#[tokio::test]
async fn an_answer_that_trickles_forever_is_unavailable_at_the_timeout() {
    let trickle = FakeServer::start(Behaviour::Endless {
        start: VECTOR_START.into(),
        repeat: ONE_SERIES.into(),
        pause: Duration::from_millis(50),
        for_at_most: Duration::from_secs(30),
    })
    .await;
    let source = limited_source(
        &trickle.url,
        Duration::from_secs(1),
        AnswerLimits::default(),
    );
    let started = Instant::now();
    let observed = promdata::read_with(&source, &query_policy("vector(1)"), None).await;
    let took = started.elapsed();
    assert_eq!(
        unavailable_message(&observed[0]),
        format!(
            "the answer from {}/ did not end within 1s (the request timeout)",
            trickle.url
        )
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "took {took:?}"
    );
}

#[tokio::test]
async fn an_answer_declaring_more_than_the_cap_is_invalid_before_it_is_read() {
    let big = FakeServer::start(Behaviour::Respond {
        status: 200,
        content_type: "application/json",
        body: format!("{VECTOR_START}{}]}}}}", ONE_SERIES.repeat(200)),
        headers: Vec::new(),
    })
    .await;
    let source = limited_source(
        &big.url,
        Duration::from_secs(5),
        AnswerLimits {
            max_bytes: 4096,
            ..AnswerLimits::default()
        },
    );
    let observed = promdata::read_with(&source, &query_policy("vector(1)"), None).await;
    assert_eq!(
        observed[0].result,
        Err(Failure::Invalid(Invalid::TooLarge { limit: 4096 }))
    );
    assert!(
        observed[0]
            .result
            .as_ref()
            .unwrap_err()
            .to_string()
            .starts_with("the answer exceeds 4 KiB (--prometheus-max-answer-bytes)")
    );
}

#[tokio::test]
async fn more_series_than_the_cap_are_invalid_naming_the_limit() {
    let api = promdata::prometheus();
    let test = unique_name("many");
    let t0 = now_ms();
    push_two_queues(&api, &test, t0).await;
    let source = limited_source(
        &api.url,
        Duration::from_secs(5),
        AnswerLimits {
            max_series: 1,
            ..AnswerLimits::default()
        },
    );
    let observed = promdata::read_with(
        &source,
        &query_policy(&format!("queue_depth{{test=\"{test}\"}}")),
        Some(t0),
    )
    .await;
    assert_eq!(
        observed[0].result,
        Err(Failure::Invalid(Invalid::TooManySeries { limit: 1 }))
    );
    assert!(
        observed[0]
            .result
            .as_ref()
            .unwrap_err()
            .to_string()
            .starts_with("the answer holds more than 1 series (--prometheus-max-series)")
    );
}

#[tokio::test]
async fn a_huge_error_from_the_server_is_cut_in_the_message() {
    let verbose = FakeServer::start(Behaviour::Respond {
        status: 422,
        content_type: "application/json",
        body: format!(
            r#"{{"status":"error","errorType":"execution","error":"{}"}}"#,
            "expanding series: ".repeat(6000)
        ),
        headers: Vec::new(),
    })
    .await;
    let observed = promdata::read(&verbose.url, &query_policy("vector(1)"), None).await;
    let message = unavailable_message(&observed[0]);
    assert!(
        message.len() <= scalewise::metrics::limits::MAX_MESSAGE_BYTES
            && message.starts_with(
                "the server refused the query (HTTP 422, execution): expanding series"
            )
            && message.ends_with('…'),
        "{message}"
    );
}
