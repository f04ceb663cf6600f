//! Tenant safety on the real test environment (issue 15): three namespaces with their own series
//! (`shop`, a `broker` shop's workers read, and a `platform` namespace the operator opts out),
//! one operator watching them all. A policy in `shop` reads only shop's series: every way of
//! naming another namespace (a custom query, a label override, each kind of matcher, a binary
//! operand, a subquery, an allow-listed server meant for another namespace) is refused on the
//! policy itself with a clear message, and never touches its target; the same series are read
//! under the operator's grant, and in the opted-out namespace; a series without the namespace
//! label reads as empty and says how to map the label.
//!
//! Needs nothing only the local environment has: with SCALEWISE_E2E_CLUSTER=1 it runs on a real
//! cluster whose Prometheus scrapes nothing of these namespaces but what the test pushes and
//! scrapes itself.

mod support;

use std::time::Duration;

use scalewise::api::{FailureKind, ScalingPolicyStatus};
use serde_json::{Value, json};
use support::exporter::Exporter;
use support::metrics::{Series, now_ms};
use support::operator::Operator;
use support::policies::{condition, create_policy, status, with_spec};
use support::workload::{create_deployment, replicas};
use support::{TestEnv, eventually, install_crd, required_env};

const WAIT: Duration = Duration::from_secs(60);

/// A dry-run policy on Deployment `web` of `env` with one metric `m` (merged with `metric`).
async fn apply(env: &TestEnv, name: &str, metric: Value, extra: Value) {
    let mut m = json!({"name": "m", "scaleOutAbove": 1e9});
    support::policies::merge(&mut m, metric);
    let spec = json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1,
        "maxReplicas": 10,
        "interval": "2s",
        "dryRun": true,
        "metrics": [m],
    });
    create_policy(env, &with_spec(env, name, spec, extra)).await;
}

fn query(q: String) -> Value {
    json!({"query": q})
}

/// The status of `name` once it was evaluated (`Ready` says `Evaluated`).
async fn evaluated(env: &TestEnv, name: &str) -> ScalingPolicyStatus {
    eventually(&format!("{name} to be evaluated"), WAIT, || async {
        let s = status(env, name).await;
        (condition(&s, "Ready").map(|c| c.1) == Some("Evaluated")).then_some(s)
    })
    .await
}

/// `name`'s status once an evaluation read its metric: an evaluation reads at its interval's
/// tick, up to 5 s before it starts, so the first one can come before a series' first scrape.
async fn read(env: &TestEnv, name: &str) -> ScalingPolicyStatus {
    eventually(&format!("{name} to read its metric"), WAIT, || async {
        let s = status(env, name).await;
        (condition(&s, "Ready").map(|c| c.1) == Some("Evaluated") && value(&s).is_some())
            .then_some(s)
    })
    .await
}

/// The message of `name`'s `Ready=False` condition once it says why it is not evaluated.
async fn refused(env: &TestEnv, name: &str) -> String {
    let s = eventually(&format!("{name} to be refused"), WAIT, || async {
        let s = status(env, name).await;
        (condition(&s, "Ready").map(|c| c.0) == Some("False")).then_some(s)
    })
    .await;
    let (_, reason, message) = condition(&s, "Ready").expect("Ready");
    assert_eq!(reason, "InvalidSpec", "{name}: {message}");
    assert!(
        s.metrics.is_empty(),
        "{name} read something: {:?}",
        s.metrics
    );
    message.to_owned()
}

fn value(s: &ScalingPolicyStatus) -> Option<f64> {
    s.metrics.first().and_then(|m| m.value)
}

#[tokio::test]
async fn a_policy_reads_only_its_own_namespaces_series_unless_the_operator_grants_more() {
    let shop = TestEnv::new("shop").await;
    let broker = TestEnv::new("broker").await;
    let platform = TestEnv::new("platform").await;
    install_crd(&shop.client).await;
    let (s, b, p) = (&shop.namespace, &broker.namespace, &platform.namespace);
    // The same metric names in shop and broker; each scrape labels its namespace.
    let shop_series = Exporter::start(s, "tenant_load{queue=\"orders\"} 10\n").await;
    let broker_series = Exporter::start(
        b,
        "tenant_load{queue=\"orders\"} 90\nbroker_connections 7\n",
    )
    .await;
    shop.scrape(&shop_series).await;
    broker.scrape(&broker_series).await;
    // A series of shop's without any namespace label (a recording rule that dropped it).
    shop.push(&[Series::new("tenant_unlabelled")
        .label("test", s)
        .sample(now_ms(), 5.0)])
        .await;
    create_deployment(&shop, "web", 2).await;
    create_deployment(&platform, "web", 2).await;

    // Refused, each on its own policy, naming the problem.
    let other_ns = |q: &str| q.replace("OTHER", p).replace("OWN", s);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "cross-query",
            query(other_ns(r#"sum(tenant_load{namespace="OTHER"})"#)),
            "a policy reads only its own namespace's series",
        ),
        (
            "label-override",
            json!({"requestRate": {"counter": "tenant_requests_total", "selector": other_ns(r#"namespace="OTHER""#)}}),
            "a policy reads only its own namespace's series",
        ),
        (
            "not-equal",
            query(other_ns(r#"sum(tenant_load{namespace!="OWN"})"#)),
            "namespace!=",
        ),
        (
            "regex-of-its-own",
            query(other_ns(r#"sum(tenant_load{namespace=~"OWN"})"#)),
            "namespace=~",
        ),
        (
            "not-regex",
            query(other_ns(r#"sum(tenant_load{namespace!~"x"})"#)),
            "namespace!~",
        ),
        (
            "binary-operand",
            query(other_ns(
                r#"sum(tenant_load) + sum(tenant_load{namespace="OTHER"})"#,
            )),
            "a policy reads only its own namespace's series",
        ),
        (
            "subquery",
            query(other_ns(
                r#"max_over_time(tenant_load{namespace="OTHER"}[1m:5s])"#,
            )),
            "a policy reads only its own namespace's series",
        ),
        (
            "ungranted-metric",
            query(format!(r#"sum(broker_connections{{namespace="{b}"}})"#)),
            "only for the metrics tenant_load",
        ),
    ];
    for (name, metric, _) in &cases {
        apply(&shop, name, metric.clone(), json!({})).await;
    }
    // An allow-listed server meant for the broker's policies only.
    let victoria = required_env("SCALEWISE_VICTORIAMETRICS_URL");
    apply(
        &shop,
        "brokers-server",
        query("sum(tenant_load)".into()),
        json!({"prometheus": {"address": victoria}}),
    )
    .await;

    // Read: its own series only, a granted namespace's, and nothing without the label.
    apply(&shop, "own", query("sum(tenant_load)".into()), json!({})).await;
    apply(
        &shop,
        "granted",
        query(format!(r#"sum(tenant_load{{namespace="{b}"}})"#)),
        json!({}),
    )
    .await;
    apply(
        &shop,
        "unlabelled",
        query(format!(r#"sum(tenant_unlabelled{{test="{s}"}})"#)),
        json!({}),
    )
    .await;
    // The opted-out platform namespace runs a global query as written.
    apply(
        &platform,
        "global",
        query(format!(
            r#"sum(tenant_load{{namespace=~"{s}|{b}", queue="orders"}})"#
        )),
        json!({}),
    )
    .await;

    let grant = format!("{s}={b}:tenant_load");
    let allowed = format!("{b}={victoria}");
    let op = Operator::start(
        &shop,
        "op",
        &[
            "--leader-election",
            "false",
            "--namespace",
            b,
            "--namespace",
            p,
            "--cross-namespace-grant",
            &grant,
            "--allow-cross-namespace-queries",
            p,
            "--allowed-prometheus-url",
            &allowed,
            // A prefix naming no namespace: usable by none, and the operator says so at start.
            "--allowed-prometheus-url",
            "http://127.0.0.1:9",
        ],
    );

    for (name, _, says) in &cases {
        let message = refused(&shop, name).await;
        assert!(message.contains(says), "{name}: {message}");
        // The other namespace's data never reaches the policy's status (the namespaces' names,
        // random, may hold the digits too, and the messages name them).
        let without_names = [s, b, p]
            .iter()
            .fold(message.clone(), |m, ns| m.replace(ns.as_str(), ""));
        assert!(!without_names.contains("90"), "{name}: {message}");
    }
    let message = refused(&shop, "brokers-server").await;
    assert!(
        message.contains(&format!("none for namespace {s}")),
        "{message}"
    );
    // The prefixes open to other namespaces are not listed to this one.
    assert!(!message.contains("allowed prefixes: http"), "{message}");

    let own = read(&shop, "own").await;
    assert_eq!(value(&own), Some(10.0), "{:?}", own.metrics);
    let ran = own.metrics[0].query.as_deref().unwrap_or_default();
    assert!(ran.contains(&format!(r#"namespace="{s}""#)), "{ran}");
    assert_eq!(
        own.namespace_access.as_ref().map(|a| a.unscoped),
        Some(false)
    );

    let granted = read(&shop, "granted").await;
    assert_eq!(value(&granted), Some(90.0), "{:?}", granted.metrics);
    let access = granted.namespace_access.expect("the grant is shown");
    assert_eq!(access.grants.len(), 1);
    assert_eq!(access.grants[0].namespace, *b);
    assert_eq!(access.grants[0].metrics, ["tenant_load"]);

    let unlabelled = evaluated(&shop, "unlabelled").await;
    let m = &unlabelled.metrics[0];
    assert_eq!(m.failure, Some(FailureKind::Empty), "{m:?}");
    assert!(
        m.message
            .contains(&format!(r#"no series with namespace="{s}""#))
            && m.message.contains("--prometheus-namespace-label"),
        "{}",
        m.message
    );

    // Both namespaces' series (10 and 90): the broker's exporter may be scraped after the shop's,
    // so an early evaluation reads the shop's alone.
    let global = eventually(
        "global to read both namespaces' series (100)",
        WAIT,
        || async {
            let s = status(&platform, "global").await;
            (value(&s) == Some(100.0)).then_some(s)
        },
    )
    .await;
    assert_eq!(
        global.namespace_access.map(|a| a.unscoped),
        Some(true),
        "the opt-out is shown"
    );

    // Nothing refused touched a target.
    assert_eq!(replicas(&shop, "web").await, 2);
    assert_eq!(replicas(&platform, "web").await, 2);
    let logs = op.logs();
    assert!(logs.contains("cross-namespace grant in effect"), "{logs}");
    assert!(
        logs.lines()
            .any(|l| l.contains("names no namespace: no policy may use it")
                && l.contains("http://127.0.0.1:9")),
        "{logs}"
    );
}

/// A noisy namespace of 500 policies, every query of which hangs until the query timeout, beside
/// a quiet namespace's single policy: the noisy namespace is held to the operator's budget of
/// evaluations (and says so on its policies), and the quiet policy is still evaluated at its
/// interval.
#[tokio::test]
async fn a_noisy_namespace_slows_only_itself() {
    let quiet = TestEnv::new("quiet").await;
    let noisy = TestEnv::new("noisy").await;
    install_crd(&quiet.client).await;
    let load = Exporter::start(&quiet.namespace, "quiet_load 10\n").await;
    quiet.scrape(&load).await;
    create_deployment(&quiet, "web", 2).await;
    create_deployment(&noisy, "web", 2).await;
    // The noisy namespace's own server: it accepts every query and never answers.
    let (hang, held, _accepted) = support::http::blackhole(&noisy.namespace).await;
    for i in 0..500 {
        apply(
            &noisy,
            &format!("noisy-{i}"),
            query("sum(noisy_load)".into()),
            json!({"prometheus": {"address": hang}}),
        )
        .await;
    }
    apply(
        &quiet,
        "web",
        query("sum(quiet_load)".into()),
        json!({"interval": "5s"}),
    )
    .await;
    let allowed = format!("{}={hang}", noisy.namespace);
    let op = Operator::start(
        &quiet,
        "op",
        &[
            "--leader-election",
            "false",
            "--namespace",
            &noisy.namespace,
            "--allowed-prometheus-url",
            &allowed,
            "--prometheus-timeout",
            "2s",
            "--namespace-evaluations-per-minute",
            "300",
        ],
    );
    evaluated(&quiet, "web").await;
    // The quiet policy, watched for 30 s: every gap between two evaluations within its interval
    // and a few seconds of slack.
    let mut times: Vec<jiff::Timestamp> = Vec::new();
    let watch_until = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < watch_until {
        if let Some(t) = status(&quiet, "web")
            .await
            .last_evaluation_time
            .map(|t| t.0)
            && times.last() != Some(&t)
        {
            times.push(t);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(times.len() >= 4, "evaluated {} times in 30 s", times.len());
    let most = jiff::SignedDuration::from_secs(5 + 5);
    for pair in times.windows(2) {
        assert!(
            pair[1].duration_since(pair[0]) <= most,
            "the quiet policy waited {} between two evaluations: {times:?} (log: {})",
            pair[1].duration_since(pair[0]),
            op.log.display()
        );
    }
    // The noisy namespace is held to its budget, and its policies say so.
    let throttled = eventually("a noisy policy to say it is throttled", WAIT, || async {
        for i in (0..500).step_by(25) {
            let s = status(&noisy, &format!("noisy-{i}")).await;
            if let Some(("True", reason, message)) = condition(&s, "Throttled") {
                return Some((reason.to_owned(), message.to_owned()));
            }
        }
        None
    })
    .await;
    assert_eq!(throttled.0, "NamespaceBudget");
    assert!(
        throttled.1.contains(&format!(
            "namespace {} is over the operator's budget of 300 evaluations per minute",
            noisy.namespace
        )),
        "{}",
        throttled.1
    );
    held.abort();
}
