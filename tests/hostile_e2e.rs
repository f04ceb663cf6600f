//! A hostile tenant on the real test environment (issue 11): one namespace applies every kind of
//! hostile ScalingPolicy while a good policy in another namespace keeps scaling on time; the
//! operator never restarts, `/healthz` stays 200, each hostile policy says why it is not
//! evaluated (or the API server refuses it, naming the field), and SIGTERM ends the process in
//! time.
//!
//! The operator watches the two namespaces of this test (`--namespace` twice, as the chart's
//! `watchNamespaces` does) rather than all namespaces: the other tests of the suite run beside it
//! on the same API server, and an operator watching them would scale their Deployments. One case
//! lifts a bound of the CRD for one write (an object stored before an upgrade), so with
//! SCALEWISE_E2E_CLUSTER=1 that case is skipped.

mod support;

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, PostParams};
use scalewise::api::{ScalingPolicy, ScalingPolicyStatus};
use scalewise::controller::Decoded;
use serde_json::{Value, json};
use support::exporter::Exporter;
use support::workload::{create_deployment, free_port, replicas};
use support::{TestEnv, e2e_cluster, eventually, install_crd, required_env};

const WAIT: Duration = Duration::from_secs(60);
/// The good policy's interval.
const INTERVAL: Duration = Duration::from_secs(5);

/// A policy object in `env`'s namespace on Deployment `target`, reading `e2e_load` of `job`.
fn manifest(env: &TestEnv, name: &str, target: &str, job: &str, extra: Value) -> Value {
    let mut spec = json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
        "minReplicas": 1,
        "maxReplicas": 10,
        "interval": "5s",
        "metrics": [{
            "name": "load",
            "query": format!("max(e2e_load{{job=\"{job}\"}})"),
            "scaleOutAbove": 70,
            "scaleInBelow": 30
        }],
        "behavior": {"scaleOut": {"step": 1, "cooldown": "0s"}, "scaleIn": {"step": 1, "cooldown": "0s"}}
    });
    if let (Value::Object(spec), Value::Object(extra)) = (&mut spec, extra) {
        spec.extend(extra);
    }
    json!({
        "apiVersion": "scalewise.dev/v1alpha1",
        "kind": "ScalingPolicy",
        "metadata": {"name": name, "namespace": env.namespace},
        "spec": spec
    })
}

/// `text` without the list indexes of its field paths (`spec.metrics[0].query` reads
/// `spec.metrics.query`), as API servers before 1.25 write them.
fn unindexed(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let (before, after) = rest.split_at(open);
        out.push_str(before);
        match after[1..].find(']') {
            Some(close) if close > 0 && after[1..=close].bytes().all(|b| b.is_ascii_digit()) => {
                rest = &after[close + 2..];
            }
            _ => {
                out.push('[');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The start of a long message, for an assertion's text.
fn short(text: &str) -> &str {
    text.get(..text.len().min(400)).unwrap_or(text)
}

/// Creates `object` as the API server takes it: Ok, or the server's refusal.
async fn create(env: &TestEnv, object: &Value) -> Result<(), String> {
    let resource = ApiResource::erase::<ScalingPolicy>(&());
    let api: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &env.namespace, &resource);
    let object: DynamicObject = serde_json::from_value(object.clone()).expect("an object");
    api.create(&PostParams::default(), &object)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The reason and message of a policy's `Ready` condition, however its object decodes.
async fn ready(env: &TestEnv, name: &str) -> Option<(String, String, String)> {
    let decoded = Api::<Decoded>::namespaced(env.client.clone(), &env.namespace)
        .get(name)
        .await
        .ok()?;
    let status: ScalingPolicyStatus = match decoded.0 {
        Ok(policy) => policy.status?,
        Err(bad) => bad.status?,
    };
    status
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status, c.reason, c.message))
}

struct Operator {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Operator {
    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn healthz(&self) -> Option<u16> {
        support::http::request(
            hyper::Method::GET,
            &format!("http://127.0.0.1:{}/healthz", self.port),
            &[],
            bytes::Bytes::new(),
        )
        .await
        .ok()
        .map(|r| r.status.as_u16())
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_hostile_tenant_cannot_crash_stall_or_starve_the_operator() {
    let hostile = TestEnv::new("hostile").await;
    let good = TestEnv::new("tenant").await;
    install_crd(&good.client).await;
    let exporter = Exporter::start(&good.namespace, "e2e_load 50\n").await;
    good.scrape(&exporter).await;
    create_deployment(&good, "web", 2).await;
    create_deployment(&hostile, "victim", 2).await;
    let job = good.namespace.clone();

    // Refused by the API server, each naming its field.
    let refused: Vec<(&str, Value, &str)> = vec![
        (
            "huge-query",
            json!({"metrics": [{"name": "q", "query": format!("sum(x{{l=\"{}\"}})", "a".repeat(200_000)), "scaleOutAbove": 1}]}),
            "spec.metrics.query",
        ),
        (
            "many-metrics",
            json!({"metrics": (0..1000).map(|i| json!({"name": format!("m{i}"), "query": "vector(1)", "scaleOutAbove": 1})).collect::<Vec<_>>()}),
            "spec.metrics",
        ),
        (
            "negative-min",
            json!({"minReplicas": -1}),
            "spec.minReplicas",
        ),
    ];
    for (name, extra, field) in &refused {
        let error = create(
            &hostile,
            &manifest(&hostile, name, "victim", &job, extra.clone()),
        )
        .await
        .expect_err("the API server refuses it");
        // Older API servers name a list's field without its index (spec.metrics.query), newer
        // ones with it (spec.metrics[0].query).
        assert!(
            unindexed(&error).contains(field),
            "{name}: {}",
            short(&error)
        );
    }

    // Refused by the API server or stored; either way the answer names the field. A stored one
    // must say why it is not evaluated (an API server that evaluates CEL, or checks a pattern,
    // refuses some of these; an older one stores them).
    let nested = format!("{}vector(1){}", "(".repeat(3000), ")".repeat(3000));
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "forever",
            json!({"interval": "100000000h"}),
            "spec.interval",
        ),
        ("never", json!({"interval": "0s"}), "spec.interval"),
        (
            "deep",
            json!({"metrics": [{"name": "q", "query": nested, "scaleOutAbove": 1}]}),
            "spec.metrics[0].query",
        ),
        (
            "unicode-name",
            json!({"metrics": [{"name": "läst", "query": "vector(1)", "scaleOutAbove": 1}]}),
            "spec.metrics[0].name",
        ),
        (
            "bad-selector",
            json!({"metrics": [{"name": "cpu", "cpu": {"podSelector": "pod=\"ü\"}, up{"}, "target": 50}]}),
            "spec.metrics[0].cpu.podSelector",
        ),
        (
            "min-above-max",
            json!({"minReplicas": 9, "maxReplicas": 3}),
            // The CRD's CEL rule is on the spec and names the field in its message (a rule's
            // fieldPath would need 1.28).
            "minReplicas",
        ),
    ];
    let mut invalid = Vec::new();
    for (name, extra, field) in cases {
        match create(&hostile, &manifest(&hostile, name, "victim", &job, extra)).await {
            Ok(()) => invalid.push((name, field)),
            // The API server names a field without list indexes.
            Err(e) => assert!(
                unindexed(&e).contains(&unindexed(field)),
                "{name}: {}",
                short(&e)
            ),
        }
    }
    // Valid but hostile: every series of the server, unicode in a label value, int32 bounds,
    // a name of the longest length a name may have.
    let long_name = format!("p{}", "x".repeat(252));
    let valid: Vec<(String, Value)> = vec![
        (
            "everything".into(),
            json!({"metrics": [{"name": "all", "query": "count({__name__=~\".+\"})", "scaleOutAbove": 1e300}]}),
        ),
        (
            "every-series".into(),
            json!({"metrics": [{"name": "all", "query": "{__name__=~\".+\"}", "scaleOutAbove": 1e300}]}),
        ),
        (
            "unicode-value".into(),
            json!({"metrics": [{"name": "u", "query": "sum(absent(x{l=\"ünï€\"}))", "scaleOutAbove": 1e300}]}),
        ),
        (
            "int32".into(),
            json!({"minReplicas": 0, "maxReplicas": 2147483647, "behavior": {"scaleOut": {"step": 2147483647, "cooldown": "24h"}}}),
        ),
        (long_name.clone(), json!({})),
    ];
    for (name, extra) in &valid {
        create(
            &hostile,
            &manifest(&hostile, name, "victim", &job, extra.clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("{name} is stored: {e}"));
    }
    if !e2e_cluster() {
        let mut huge = manifest(&hostile, "beyond-int32", "victim", &job, json!({}));
        huge["spec"]["maxReplicas"] = json!(2_147_483_648u64);
        support::store_unbounded(&hostile, huge).await;
    }

    // The good tenant's policy.
    let good_policy = manifest(&good, "web", "web", &job, json!({}));
    create(&good, &good_policy).await.expect("the good policy");

    let port = free_port();
    let log = std::env::temp_dir().join(format!("scalewise-hostile-{}.log", good.namespace));
    let child = Command::new(env!("CARGO_BIN_EXE_scalewise"))
        .args(["run", "--leader-election", "false"])
        .args([
            "--namespace",
            &hostile.namespace,
            "--namespace",
            &good.namespace,
        ])
        .args([
            "--prometheus-url",
            &required_env("SCALEWISE_PROMETHEUS_URL"),
        ])
        .args(["--metrics-bind", &format!("127.0.0.1:{port}")])
        .args(["--secure-metrics-bind", "127.0.0.1:0"])
        .args(["--log-format", "json"])
        // Every evaluation written: the test follows them through lastEvaluationTime.
        .args(["--status-heartbeat", "1s"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).expect("log file"))
        .spawn()
        .expect("scalewise run starts");
    let mut op = Operator { child, port, log };

    // Every stored hostile policy says why it is not evaluated.
    assert!(
        invalid.len() >= 4,
        "most hostile policies are stored: {invalid:?}"
    );
    for (name, field) in &invalid {
        let (status, reason, message) = eventually(
            &format!("{name} to say why it is not evaluated"),
            WAIT,
            || async { ready(&hostile, name).await.filter(|r| r.0 == "False") },
        )
        .await;
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", "InvalidSpec"),
            "{name}: {message}"
        );
        assert!(message.contains(field), "{name}: {}", short(&message));
    }
    if !e2e_cluster() {
        let (_, reason, message) = eventually("beyond-int32 to say why", WAIT, || async {
            // Other tests install the bounded CRD again meanwhile: keep it lifted while the
            // operator retries the status the bounded schema would refuse.
            let _ = support::lift_max_replicas_bound(&hostile).await;
            ready(&hostile, "beyond-int32")
                .await
                .filter(|r| r.0 == "False")
        })
        .await;
        assert_eq!(reason, "InvalidObject", "{message}");
    }
    // The valid ones are evaluated, and a metric that reads many series is a failure, not a zero.
    for (name, _) in &valid {
        eventually(&format!("{name} to be evaluated"), WAIT, || async {
            ready(&hostile, name).await.filter(|r| r.1 == "Evaluated")
        })
        .await;
    }

    // The good policy is evaluated at its interval and reacts to its load within two intervals.
    let good_api = Api::<ScalingPolicy>::namespaced(good.client.clone(), &good.namespace);
    let evaluated = |s: &Option<ScalingPolicyStatus>| {
        s.as_ref()
            .and_then(|s| s.last_evaluation_time.as_ref())
            .map(|t| t.0)
    };
    let mut times: Vec<Timestamp> = Vec::new();
    let watch_until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < watch_until {
        let status = good_api.get("web").await.ok().and_then(|p| p.status);
        if let Some(t) = evaluated(&status)
            && times.last() != Some(&t)
        {
            times.push(t);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        times.len() >= 4,
        "the good policy was evaluated {} times in 30 s",
        times.len()
    );
    let most = jiff::SignedDuration::try_from(INTERVAL + Duration::from_secs(5)).unwrap();
    for pair in times.windows(2) {
        assert!(
            pair[1].duration_since(pair[0]) <= most,
            "the good policy waited {} between two evaluations: {times:?}",
            pair[1].duration_since(pair[0])
        );
    }
    assert_eq!(replicas(&good, "web").await, 2);
    exporter.set("e2e_load 90\n");
    let changed = Instant::now();
    eventually("the good policy to scale out", WAIT, || async {
        (replicas(&good, "web").await > 2).then_some(())
    })
    .await;
    // Two intervals, plus a scrape of the changed value (every second) and a second of slack.
    let reacted = changed.elapsed();
    assert!(
        reacted <= INTERVAL * 2 + Duration::from_secs(2),
        "the good policy scaled {reacted:?} after its load changed"
    );

    assert_eq!(op.healthz().await, Some(200), "{}", op.logs());
    assert!(
        op.child.try_wait().ok().flatten().is_none(),
        "the operator exited: {}",
        op.logs()
    );
    assert_eq!(
        replicas(&hostile, "victim").await,
        2,
        "no invalid policy touched its target"
    );
    assert!(
        op.logs().lines().all(|l| l.len() < 8192),
        "a log line holds a whole body"
    );

    let exited = support::sigterm(&mut op.child, Duration::from_secs(30)).is_some();
    assert!(exited, "still running 30 s after SIGTERM: {}", op.logs());
}
