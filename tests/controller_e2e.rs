//! End-to-end tests of `scalewise run` against the real test environment (kube-apiserver and
//! etcd, or your cluster with SCALEWISE_E2E_CLUSTER=1; Prometheus scraping an exporter the test
//! serves). Each test asserts what a user would see with kubectl: the Deployment's replicas, the
//! policy's status and conditions, and events. Run with `make test`.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use scalewise::api::ScalingPolicy;
use serde_json::json;
use support::exporter::Exporter;
use support::operator::{Operator, counter};
use support::policies::{condition, create_policy, events, policy, status};
use support::workload::{create_deployment, free_port, replicas};
use support::{TestEnv, eventually, install_crd};

const WAIT: Duration = Duration::from_secs(45);

/// A child process killed (and reaped) when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Installs the CRD and serves `e2e_load` values for this test, scraped every second.
async fn setup(test: &str, body: &str) -> (TestEnv, Exporter) {
    let env = TestEnv::new(test).await;
    install_crd(&env.client).await;
    let exporter = Exporter::start(&env.namespace, body).await;
    env.scrape(&exporter).await;
    (env, exporter)
}

/// A change of a Deployment's replicas, seen between two reads.
struct Change {
    /// It came after this (the start of the last read that saw the replicas before it).
    after: Instant,
    /// It came before this (the end of the first read that saw it).
    before: Instant,
    replicas: i32,
}

async fn wait_replicas(
    env: &TestEnv,
    name: &str,
    want: i32,
    timeout: Duration,
    op: &Operator,
) -> Instant {
    let what = format!(
        "Deployment {name} to reach {want} replicas (operator log: {})",
        op.log.display()
    );
    eventually(&what, timeout, || async {
        (replicas(env, name).await == want).then(Instant::now)
    })
    .await
}

/// Checks that `name` keeps `want` replicas for `period`.
async fn holds(env: &TestEnv, name: &str, want: i32, period: Duration) {
    let start = Instant::now();
    while start.elapsed() < period {
        let now = replicas(env, name).await;
        assert_eq!(
            now,
            want,
            "Deployment {name} moved to {now} after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// When the policy's status recorded that it scaled its target to `to`: its `lastScaleTime`,
/// stamped to the whole second of the evaluation that decided it.
async fn scaled_at(env: &TestEnv, name: &str, to: i32) -> jiff::Timestamp {
    eventually(
        &format!("policy {name} to record its scale to {to}"),
        WAIT,
        || async {
            let s = status(env, name).await;
            let last = s.last_decision.as_ref()?;
            (last.to == to && !last.dry_run).then_some(s.last_scale_time.as_ref()?.0)
        },
    )
    .await
}

/// Checks that `name` keeps `want` replicas until a second before `until`: the operator may not
/// act before `until`, and a read sent just before it may be answered after it.
async fn holds_until(env: &TestEnv, name: &str, want: i32, until: jiff::Timestamp) {
    let until = until - jiff::SignedDuration::from_secs(1);
    while jiff::Timestamp::now() < until {
        let now = replicas(env, name).await;
        assert_eq!(now, want, "Deployment {name} moved to {now} before {until}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_event(env: &TestEnv, policy: &str, reason: &str) -> String {
    eventually(
        &format!("a {reason} event about {policy}"),
        WAIT,
        || async {
            events(env, policy)
                .await
                .into_iter()
                .find(|(r, _)| r == reason)
                .map(|(_, note)| note)
        },
    )
    .await
}

#[tokio::test]
async fn high_load_scales_out_by_the_step_and_the_cooldown_holds_the_next_step() {
    let (env, _exporter) = setup("scale-out", "e2e_load 90\n").await;
    create_deployment(&env, "web", 2).await;
    create_policy(
        &env,
        &policy(
            &env,
            "web",
            "web",
            "",
            json!({"behavior": {"scaleOut": {"step": 2, "cooldown": "8s"}}}),
        ),
    )
    .await;
    let op = Operator::start(&env, "op", &["--leader-election", "false"]);

    wait_replicas(&env, "web", 4, WAIT, &op).await;
    let first = scaled_at(&env, "web", 4).await;
    holds_until(&env, "web", 4, first + jiff::SignedDuration::from_secs(8)).await;
    wait_replicas(&env, "web", 6, WAIT, &op).await;
    let second = scaled_at(&env, "web", 6).await;
    // Exact: both times are whole seconds of the evaluations that decided them.
    assert!(
        second.duration_since(first) >= jiff::SignedDuration::from_secs(8),
        "the second step came {} after the first",
        second.duration_since(first)
    );

    let s = status(&env, "web").await;
    assert_eq!(s.metrics[0].value, Some(90.0));
    assert_eq!(
        s.metrics[0].query.as_deref(),
        // What ran: the policy's query scoped to its namespace.
        Some(
            format!(
                "max(e2e_load{{job=\"{ns}\",namespace=\"{ns}\"}})",
                ns = env.namespace
            )
            .as_str()
        )
    );
    assert_eq!(
        s.last_scale_direction,
        Some(scalewise::api::ScaleDirection::Out)
    );
    assert_eq!(condition(&s, "Ready").map(|c| c.0), Some("True"));
    // Each scale action is its own event with its own explanation.
    let ns = &env.namespace;
    let notes = eventually("both ScaledOut events", WAIT, || async {
        let notes: Vec<String> = events(&env, "web")
            .await
            .into_iter()
            .filter(|(reason, _)| reason == "ScaledOut")
            .map(|(_, note)| note)
            .collect();
        (notes.len() >= 2).then_some(notes)
    })
    .await;
    for step in ["from 2 to 4", "from 4 to 6"] {
        let expected = format!("Scaled out {ns}/web {step}: load 90 > 70");
        assert!(
            notes.iter().any(|n| n == &expected),
            "no event `{expected}` in {notes:?}"
        );
    }
}

#[tokio::test]
async fn low_load_scales_in_never_below_min_and_high_load_never_above_max() {
    let (env, _exporter) = setup(
        "scale-in",
        "e2e_load{app=\"low\"} 10\ne2e_load{app=\"high\"} 90\n",
    )
    .await;
    create_deployment(&env, "low", 4).await;
    create_deployment(&env, "high", 5).await;
    create_policy(
        &env,
        &policy(
            &env,
            "low",
            "low",
            ",app=\"low\"",
            json!({"minReplicas": 2}),
        ),
    )
    .await;
    create_policy(
        &env,
        &policy(
            &env,
            "high",
            "high",
            ",app=\"high\"",
            json!({"maxReplicas": 5}),
        ),
    )
    .await;
    let op = Operator::start(&env, "op", &["--leader-election", "false"]);

    wait_replicas(&env, "low", 2, WAIT, &op).await;
    holds(&env, "low", 2, Duration::from_secs(4)).await;
    let s = status(&env, "low").await;
    assert_eq!(
        condition(&s, "ScalingLimited").map(|c| (c.0, c.1)),
        Some(("True", "TooFewReplicas"))
    );

    let s = eventually("the high policy to be evaluated", WAIT, || async {
        let s = status(&env, "high").await;
        s.last_decision.is_some().then_some(s)
    })
    .await;
    assert_eq!(replicas(&env, "high").await, 5);
    assert_eq!(
        condition(&s, "ScalingLimited").map(|c| (c.0, c.1)),
        Some(("True", "TooManyReplicas"))
    );
    holds(&env, "high", 5, Duration::from_secs(3)).await;
}

#[tokio::test]
async fn a_failing_metric_never_scales_in_and_fallback_applies_after_repeated_failures() {
    let (env, _exporter) = setup("metric-failure", "e2e_load 10\n").await;
    create_deployment(&env, "web", 4).await;
    create_deployment(&env, "fb", 2).await;
    let missing = json!({"name": "missing", "query": format!("max(e2e_absent{{job=\"{}\"}})", env.namespace), "scaleOutAbove": 70, "scaleInBelow": 30});
    let mut hold = policy(&env, "web", "web", "", json!({}));
    hold.spec
        .metrics
        .push(serde_json::from_value(missing.clone()).unwrap());
    create_policy(&env, &hold).await;
    let fallback = policy(
        &env,
        "fb",
        "fb",
        "",
        json!({"onMetricFailure": {"action": "Fallback", "fallbackReplicas": 5, "after": 3}}),
    );
    let mut fallback = fallback;
    fallback.spec.metrics = vec![serde_json::from_value(missing).unwrap()];
    create_policy(&env, &fallback).await;
    let op = Operator::start(&env, "op", &["--leader-election", "false"]);

    let s = eventually("the failing metric in status", WAIT, || async {
        let s = status(&env, "web").await;
        (s.metrics.len() == 2 && s.metrics[1].failure.is_some()).then_some(s)
    })
    .await;
    assert_eq!(
        s.metrics[1].failure,
        Some(scalewise::api::FailureKind::Empty)
    );
    assert_eq!(
        condition(&s, "MetricsAvailable").map(|c| (c.0, c.1)),
        Some(("False", "MetricsFailed"))
    );
    holds(&env, "web", 4, Duration::from_secs(5)).await;
    let s = status(&env, "web").await;
    let limits: Vec<_> = s
        .last_decision
        .as_ref()
        .unwrap()
        .limits
        .iter()
        .map(|l| l.kind)
        .collect();
    assert!(
        limits.contains(&scalewise::api::LimitKind::FailureHold),
        "{limits:?}"
    );
    wait_event(&env, "web", "MetricsFailed").await;
    let failures = eventually("empty reads counted in /metrics", WAIT, || async {
        let text = op.get("/metrics").await?.1;
        let n = counter(
            &text,
            "scalewise_metric_query_failures_total{kind=\"empty\"}",
        );
        (n >= 1.0).then_some(n)
    })
    .await;
    assert!(failures >= 1.0);

    wait_replicas(&env, "fb", 5, WAIT, &op).await;
    let s = status(&env, "fb").await;
    assert!(s.consecutive_failures >= 3, "{}", s.consecutive_failures);
    let note = wait_event(&env, "fb", "ScaledOut").await;
    assert!(note.contains("onMetricFailure fallback"), "{note}");
}

#[tokio::test]
async fn dry_run_records_the_decision_and_paused_changes_nothing() {
    let (env, _exporter) = setup("dry-run-paused", "e2e_load 90\n").await;
    create_deployment(&env, "dry", 2).await;
    create_deployment(&env, "still", 2).await;
    create_policy(
        &env,
        &policy(&env, "dry", "dry", "", json!({"dryRun": true})),
    )
    .await;
    create_policy(
        &env,
        &policy(&env, "still", "still", "", json!({"paused": true})),
    )
    .await;
    let op = Operator::start(&env, "op", &["--leader-election", "false"]);

    let s = eventually("the dry-run decision in status", WAIT, || async {
        let s = status(&env, "dry").await;
        s.last_decision
            .clone()
            .filter(|d| d.to == 3)
            .map(|d| (s, d))
    })
    .await;
    assert!(s.1.dry_run);
    assert_eq!(condition(&s.0, "AbleToScale").map(|c| c.1), Some("DryRun"));
    let note = wait_event(&env, "dry", "DryRun").await;
    assert!(
        note.starts_with(&format!(
            "Would scale out {}/dry from 2 to 3",
            env.namespace
        )),
        "{note}"
    );
    holds(&env, "dry", 2, Duration::from_secs(3)).await;
    assert_eq!(
        status(&env, "dry").await.last_scale_time,
        None,
        "an unapplied decision starts no cooldown"
    );

    let s = eventually("the paused decision in status", WAIT, || async {
        let s = status(&env, "still").await;
        s.last_decision.is_some().then_some(s)
    })
    .await;
    assert_eq!(
        condition(&s, "AbleToScale").map(|c| (c.0, c.1)),
        Some(("False", "Paused"))
    );
    holds(&env, "still", 2, Duration::from_secs(3)).await;
    // Scaling a paused policy's target by hand is what pausing is for: no ExternalScale.
    let by_hand = json!({"spec": {"replicas": 5}});
    env.api::<Deployment>()
        .patch_scale("still", &PatchParams::default(), &Patch::Merge(&by_hand))
        .await
        .expect("scale by hand");
    holds(&env, "still", 5, Duration::from_secs(3)).await;
    assert!(
        !events(&env, "still")
            .await
            .iter()
            .any(|(reason, _)| reason == "ExternalScale"),
        "an ExternalScale warning for a paused policy"
    );
    let s = status(&env, "still").await;
    assert_eq!(s.current_replicas, Some(5));
    drop(op);
}

#[tokio::test]
async fn an_invalid_spec_is_reported_and_never_touches_the_target_until_fixed() {
    let (env, _exporter) = setup("invalid-spec", "e2e_load 90\n").await;
    create_deployment(&env, "web", 2).await;
    // Only scalewise's own validation can refuse this: the schema accepts it.
    create_policy(&env, &policy(&env, "web", "web", "", json!({"maxReplicas": 3, "metrics": [{"name": "load", "query": "vector(90)", "scaleOutAbove": 70, "scaleInBelow": 80}]}))).await;
    let op = Operator::start(&env, "op", &["--leader-election", "false"]);

    let s = eventually("the InvalidSpec condition", WAIT, || async {
        let s = status(&env, "web").await;
        condition(&s, "Ready")
            .filter(|c| c.1 == "InvalidSpec")
            .map(|c| c.2.to_owned())
    })
    .await;
    assert!(
        s.contains("spec.metrics[0].scaleInBelow: must be below scaleOutAbove (70)"),
        "{s}"
    );
    let note = wait_event(&env, "web", "InvalidSpec").await;
    assert!(note.contains("spec.metrics[0].scaleInBelow"), "{note}");
    holds(&env, "web", 2, Duration::from_secs(3)).await;

    let fix = json!({"spec": {"metrics": [{"name": "load", "query": "vector(90)", "scaleOutAbove": 70, "scaleInBelow": 30}]}});
    env.api::<ScalingPolicy>()
        .patch("web", &PatchParams::default(), &Patch::Merge(&fix))
        .await
        .expect("fix the spec");
    wait_replicas(&env, "web", 3, WAIT, &op).await;
    assert_eq!(
        condition(&status(&env, "web").await, "Ready").map(|c| c.0),
        Some("True")
    );
}

#[tokio::test]
async fn a_missing_target_is_reported_then_scaled_once_created() {
    let (env, _exporter) = setup("missing-target", "e2e_load 90\n").await;
    create_policy(
        &env,
        &policy(&env, "later", "later", "", json!({"maxReplicas": 3})),
    )
    .await;
    let op = Operator::start(&env, "op", &["--leader-election", "false"]);

    eventually("the TargetNotFound condition", WAIT, || async {
        let s = status(&env, "later").await;
        condition(&s, "Ready")
            .filter(|c| c.1 == "TargetNotFound")
            .map(|_| ())
    })
    .await;
    wait_event(&env, "later", "TargetNotFound").await;

    create_deployment(&env, "later", 2).await;
    wait_replicas(&env, "later", 3, WAIT, &op).await;
    assert_eq!(
        condition(&status(&env, "later").await, "Ready").map(|c| c.1),
        Some("Evaluated")
    );
}

#[tokio::test]
async fn an_hpa_on_the_same_deployment_blocks_scaling() {
    let (env, _exporter) = setup("ambiguous", "e2e_load 90\n").await;
    create_deployment(&env, "web", 2).await;
    let hpa = HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some("web-hpa".into()),
            ..Default::default()
        },
        spec: Some(HorizontalPodAutoscalerSpec {
            max_replicas: 4,
            min_replicas: Some(2),
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: "web".into(),
            },
            target_cpu_utilization_percentage: Some(80),
        }),
        ..Default::default()
    };
    env.api::<HorizontalPodAutoscaler>()
        .create(&PostParams::default(), &hpa)
        .await
        .expect("create HPA");
    create_policy(&env, &policy(&env, "web", "web", "", json!({}))).await;
    let _op = Operator::start(&env, "op", &["--leader-election", "false"]);

    let message = eventually("the AmbiguousTarget condition", WAIT, || async {
        let s = status(&env, "web").await;
        condition(&s, "AbleToScale")
            .filter(|c| c.1 == "AmbiguousTarget")
            .map(|c| (c.0.to_owned(), c.2.to_owned()))
    })
    .await;
    assert_eq!(message.0, "False");
    assert!(
        message.1.contains(&format!(
            "HorizontalPodAutoscaler {}/web-hpa",
            env.namespace
        )),
        "{}",
        message.1
    );
    let note = wait_event(&env, "web", "AmbiguousTarget").await;
    assert!(note.contains("web-hpa"), "{note}");
    holds(&env, "web", 2, Duration::from_secs(3)).await;
}

#[tokio::test]
async fn a_restarted_controller_honours_the_cooldown() {
    let (env, _exporter) = setup("restart-cooldown", "e2e_load 90\n").await;
    create_deployment(&env, "web", 2).await;
    create_policy(
        &env,
        &policy(
            &env,
            "web",
            "web",
            "",
            json!({"behavior": {"scaleOut": {"cooldown": "15s"}}}),
        ),
    )
    .await;
    let mut op = Operator::start(&env, "first", &["--leader-election", "false"]);
    wait_replicas(&env, "web", 3, WAIT, &op).await;
    let first = scaled_at(&env, "web", 3).await;
    op.kill();

    let op = Operator::start(&env, "second", &["--leader-election", "false"]);
    // The new process reads the cooldown from status and waits it out.
    holds_until(&env, "web", 3, first + jiff::SignedDuration::from_secs(15)).await;
    wait_replicas(&env, "web", 4, WAIT, &op).await;
    let second = scaled_at(&env, "web", 4).await;
    assert!(
        second.duration_since(first) >= jiff::SignedDuration::from_secs(15),
        "scaled {} after the first step, within the 15s cooldown",
        second.duration_since(first)
    );
}

#[tokio::test]
async fn a_standby_takes_over_when_the_leader_dies_without_a_double_step() {
    let (env, _exporter) = setup("failover", "e2e_load 90\n").await;
    create_deployment(&env, "web", 2).await;
    create_policy(
        &env,
        &policy(
            &env,
            "web",
            "web",
            "",
            json!({"behavior": {"scaleOut": {"cooldown": "10s"}}}),
        ),
    )
    .await;
    let lease_args = [
        "--leader-election",
        "true",
        "--lease-name",
        "scalewise-e2e",
        "--lease-duration",
        "4s",
    ];
    let mut a = Operator::start(&env, "op-a", &lease_args);
    let mut b = Operator::start(&env, "op-b", &lease_args);
    let leases = env.api::<Lease>();

    let leader = eventually("a leader", WAIT, || async {
        let lease = leases.get("scalewise-e2e").await.ok()?;
        lease.spec?.holder_identity.filter(|h| !h.is_empty())
    })
    .await;
    let (dead, survivor) = if leader == "op-a" {
        (&mut a, "op-b")
    } else {
        (&mut b, "op-a")
    };

    // Record every change of replicas from here on, each with the start of the last read that
    // still saw the replicas before it (the change came after that) and the end of the first
    // read that saw it (the change came before that); and every scale time status records.
    let mut changes: Vec<Change> = vec![Change {
        after: Instant::now(),
        before: Instant::now(),
        replicas: replicas(&env, "web").await,
    }];
    let mut recorded: Vec<jiff::Timestamp> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut killed = false;
    let mut last_read = Instant::now();
    while Instant::now() < deadline {
        let started = Instant::now();
        let r = replicas(&env, "web").await;
        if r != changes.last().map(|c| c.replicas).unwrap_or_default() {
            changes.push(Change {
                after: last_read,
                before: Instant::now(),
                replicas: r,
            });
        }
        last_read = started;
        if let Some(t) = status(&env, "web").await.last_scale_time
            && recorded.last() != Some(&t.0)
        {
            recorded.push(t.0);
        }
        if !killed && r >= 3 {
            dead.kill();
            killed = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        killed,
        "the leader never scaled: {:?}",
        changes.iter().map(|c| c.replicas).collect::<Vec<_>>()
    );
    let holder = leases
        .get("scalewise-e2e")
        .await
        .ok()
        .and_then(|l| l.spec?.holder_identity);
    assert_eq!(
        holder.as_deref(),
        Some(survivor),
        "the standby took the lease"
    );
    let steps: Vec<i32> = changes.iter().map(|c| c.replicas).collect();
    assert!(
        steps.len() >= 3,
        "scaling did not continue after the failover: {steps:?}"
    );
    for pair in changes.windows(2).skip(1) {
        assert_eq!(
            pair[1].replicas,
            pair[0].replicas + 1,
            "each change is one step: {steps:?}"
        );
        // The cooldown runs from a whole-second stamp: at least 9 s between two steps, and the
        // longest the reads allow is what is checked, so slow reads cannot fail it.
        let longest = pair[1].before - pair[0].after;
        assert!(
            longest >= Duration::from_secs(9),
            "a double step across the failover: {steps:?}, at most {longest:?} apart"
        );
    }
    for pair in recorded.windows(2) {
        assert!(
            pair[1].duration_since(pair[0]) >= jiff::SignedDuration::from_secs(10),
            "status recorded scales {} apart, within the 10s cooldown: {recorded:?}",
            pair[1].duration_since(pair[0])
        );
    }
}

#[tokio::test]
async fn health_readiness_and_metrics_answer_as_described() {
    let (env, _exporter) = setup("telemetry", "e2e_load 90\n").await;
    create_deployment(&env, "web", 2).await;
    create_policy(
        &env,
        &policy(&env, "web", "web", "", json!({"maxReplicas": 3})),
    )
    .await;
    let lease_args = [
        "--leader-election",
        "true",
        "--lease-name",
        "scalewise-telemetry",
        "--lease-duration",
        "6s",
    ];
    let mut op = Operator::start(&env, "op", &lease_args);

    eventually("/readyz to answer 200", WAIT, || async {
        op.get("/readyz").await.filter(|r| r.0 == 200)
    })
    .await;
    wait_replicas(&env, "web", 3, WAIT, &op).await;
    assert_eq!(op.get("/healthz").await.map(|r| r.0), Some(200));
    let ns = &env.namespace;
    let series = format!("scalewise_policy_current_replicas{{namespace=\"{ns}\",name=\"web\"}}");
    // The operator records an evaluation's metrics after its scale and status
    // writes, so the scale can be seen before them: wait for the evaluation
    // that scaled (an earlier one may have held, its read before the
    // exporter's first scrape).
    let scaled = "scalewise_decisions_total{action=\"ScaleOut\"} 1";
    let text = eventually("the scale-out's series in /metrics", WAIT, || async {
        op.get("/metrics")
            .await
            .filter(|r| r.1.contains(&series) && r.1.contains(scaled))
            .map(|r| r.1)
    })
    .await;
    for expected in [
        format!("scalewise_policy_max_replicas{{namespace=\"{ns}\",name=\"web\"}} 3"),
        format!(
            "scalewise_policy_metric_value{{namespace=\"{ns}\",name=\"web\",metric=\"load\"}} 90.0"
        ),
        format!(
            "scalewise_policy_metric_bound{{namespace=\"{ns}\",name=\"web\",metric=\"load\",bound=\"scale_out_above\"}} 70.0"
        ),
        "scalewise_reconciles_total{result=\"success\"}".to_owned(),
        "scalewise_scale_actions_total{direction=\"out\"} 1".to_owned(),
        "scalewise_reconcile_duration_seconds_bucket".to_owned(),
        "scalewise_decisions_total{action=\"ScaleOut\"} 1".to_owned(),
    ] {
        assert!(
            text.contains(&expected),
            "/metrics lacks {expected}:\n{text}"
        );
    }
    let queries = counter(&text, "scalewise_metric_query_duration_seconds_count");
    assert!(queries >= 1.0, "no metric query was timed:\n{text}");

    env.api::<ScalingPolicy>()
        .delete("web", &Default::default())
        .await
        .expect("delete policy");
    eventually("the deleted policy's series to disappear", WAIT, || async {
        op.get("/metrics")
            .await
            .filter(|r| !r.1.contains("name=\"web\""))
            .map(|_| ())
    })
    .await;

    // SIGTERM: a clean exit that releases the lease.
    assert_eq!(
        op.terminate(Duration::from_secs(20)),
        Some(0),
        "logs:\n{}",
        op.logs()
    );
    let lease = env
        .api::<Lease>()
        .get("scalewise-telemetry")
        .await
        .expect("the lease");
    let holder = lease
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    assert!(holder.is_empty(), "the lease is still held by {holder:?}");
}

#[tokio::test]
async fn readiness_fails_until_the_caches_sync() {
    let env = TestEnv::new("not-ready").await;
    // A kubeconfig whose server nothing listens on: the caches can never sync.
    let dead = format!("https://127.0.0.1:{}", free_port());
    let kubeconfig =
        std::env::temp_dir().join(format!("scalewise-e2e-{}-dead.kubeconfig", env.namespace));
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: dead, cluster: {{server: \"{dead}\", insecure-skip-tls-verify: true}}}}]\n\
             users: [{{name: u, user: {{token: x}}}}]\ncontexts: [{{name: c, context: {{cluster: dead, user: u, namespace: default}}}}]\ncurrent-context: c\n"
        ),
    )
    .expect("write kubeconfig");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_scalewise"))
        .args([
            "run",
            "--prometheus-url",
            "http://127.0.0.1:9",
            "--leader-election",
            "false",
        ])
        .args(["--metrics-bind", &format!("127.0.0.1:{port}")])
        .args(["--secure-metrics-bind", "127.0.0.1:0"])
        .env("KUBECONFIG", &kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("scalewise run starts");
    // Stopped on every path out of the test, a failed assertion included.
    let child = KillOnDrop(child);
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let ready = eventually("/readyz to answer", WAIT, || async {
        support::http::request(
            hyper::Method::GET,
            &url("/readyz"),
            &[],
            bytes::Bytes::new(),
        )
        .await
        .ok()
    })
    .await;
    let healthz = support::http::request(
        hyper::Method::GET,
        &url("/healthz"),
        &[],
        bytes::Bytes::new(),
    )
    .await
    .ok();
    drop(child);
    let _ = std::fs::remove_file(&kubeconfig);
    assert_eq!(ready.status.as_u16(), 503, "{}", ready.text());
    assert!(
        ready.text().contains("caches are not synced"),
        "{}",
        ready.text()
    );
    assert_eq!(
        healthz.map(|r| r.status.as_u16()),
        Some(200),
        "a controller waiting for its caches is not stalled"
    );
}

#[tokio::test]
async fn a_scale_by_someone_else_is_reported_and_decided_from() {
    let (env, exporter) = setup("external-scale", "e2e_load 50\n").await;
    create_deployment(&env, "web", 3).await;
    create_policy(
        &env,
        &policy(&env, "web", "web", "", json!({"maxReplicas": 7})),
    )
    .await;
    let op = Operator::start(&env, "op", &["--leader-election", "false"]);
    eventually("a first evaluation", WAIT, || async {
        status(&env, "web").await.last_decision.map(|_| ())
    })
    .await;

    // `kubectl scale deployment web --replicas 6`, as a person or a GitOps sync would.
    let scale = json!({"spec": {"replicas": 6}});
    env.api::<Deployment>()
        .patch_scale("web", &PatchParams::default(), &Patch::Merge(&scale))
        .await
        .expect("scale by hand");
    let note = wait_event(&env, "web", "ExternalScale").await;
    assert!(
        note.starts_with(&format!(
            "{}/web was scaled from 3 to 6 by someone other than scalewise",
            env.namespace
        )),
        "{note}"
    );
    let s = status(&env, "web").await;
    assert_eq!(
        condition(&s, "ExternalScale").map(|c| (c.0, c.1)),
        Some(("True", "ExternalScale"))
    );
    assert_eq!(
        s.current_replicas,
        Some(6),
        "the decision starts from the new count"
    );

    // Load above the threshold: the next step starts from 6.
    exporter.set("e2e_load 90\n");
    wait_replicas(&env, "web", 7, WAIT, &op).await;
    // The status of the evaluation that scaled is written just after the scale.
    eventually("ExternalScale to turn False", WAIT, || async {
        let s = status(&env, "web").await;
        condition(&s, "ExternalScale")
            .filter(|c| c.0 == "False")
            .map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn health_fails_when_the_controller_stops_making_progress() {
    let env = TestEnv::new("stalled").await;
    install_crd(&env.client).await;
    create_deployment(&env, "web", 2).await;
    // A metrics server that accepts connections and never answers: with a long query timeout
    // and one reconcile at a time, the controller hangs on its first evaluation.
    let (address, held, _accepted) = support::http::blackhole(&env.namespace).await;
    create_policy(&env, &policy(&env, "web", "web", "", json!({}))).await;
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_scalewise"))
        .args([
            "run",
            "--leader-election",
            "false",
            "--namespace",
            &env.namespace,
        ])
        .args(["--prometheus-url", &address, "--prometheus-timeout", "10m"])
        .args(["--max-concurrent-reconciles", "1", "--stall-timeout", "3s"])
        .args(["--metrics-bind", &format!("127.0.0.1:{port}")])
        .args(["--secure-metrics-bind", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("scalewise run starts");
    // Stopped on every path out of the test, a failed assertion included.
    let child = KillOnDrop(child);
    let url = format!("http://127.0.0.1:{port}/healthz");
    let get = || async {
        support::http::request(hyper::Method::GET, &url, &[], bytes::Bytes::new())
            .await
            .ok()
            .map(|r| (r.status.as_u16(), r.text()))
    };
    let healthy = eventually("/healthz to answer 200", WAIT, || async {
        get().await.filter(|r| r.0 == 200)
    })
    .await;
    let stalled = eventually("/healthz to report the stall", WAIT, || async {
        get().await.filter(|r| r.0 == 503)
    })
    .await;
    drop(child);
    held.abort();
    assert_eq!(healthy.1, "ok\n");
    assert!(stalled.1.contains("no reconcile for"), "{}", stalled.1);
}

#[tokio::test]
async fn a_policy_the_types_cannot_hold_is_reported_on_itself_and_the_others_keep_scaling() {
    if support::e2e_cluster() {
        eprintln!("skipped with SCALEWISE_E2E_CLUSTER=1: it lifts a bound of the cluster's CRD");
        return;
    }
    let (env, _exporter) = setup("undecodable", "e2e_load 90\n").await;
    create_deployment(&env, "web", 2).await;
    create_deployment(&env, "other", 2).await;
    // Before: this object made the operator's list of policies fail to decode, and no policy in
    // its scope was reconciled any more.
    let mut huge = serde_json::to_value(policy(&env, "huge", "other", "", json!({}))).unwrap();
    huge["spec"]["maxReplicas"] = json!(2_147_483_648u64);
    support::store_unbounded(&env, huge).await;
    create_policy(&env, &policy(&env, "web", "web", "", json!({}))).await;
    let op = Operator::start(&env, "op", &["--leader-election", "false"]);
    let at_least = |n: i32| {
        let env = &env;
        let what = format!("web to reach {n} replicas (log: {})", op.log.display());
        async move {
            eventually(&what, WAIT, || async {
                (replicas(env, "web").await >= n).then_some(())
            })
            .await
        }
    };

    at_least(3).await;
    let decoded =
        Api::<scalewise::controller::Decoded>::namespaced(env.client.clone(), &env.namespace);
    let message = eventually("the undecodable policy to say why", WAIT, || async {
        // Tests beside this one install the bounded CRD again, and an API server may refuse the
        // status of an object its schema refuses: keep the bound lifted while the operator
        // retries.
        let _ = support::lift_max_replicas_bound(&env).await;
        let Ok(d) = decoded.get("huge").await else {
            return None;
        };
        let bad = d.0.err()?;
        let ready = bad
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (ready.status == "False" && ready.reason == "InvalidObject").then_some(ready.message)
    })
    .await;
    assert!(
        message
            .starts_with("spec.maxReplicas: must be at most 2147483647 (an int32), got 2147483648"),
        "{message}"
    );
    let note = wait_event(&env, "huge", "InvalidObject").await;
    assert!(note.contains("spec.maxReplicas"), "{note}");
    assert_eq!(
        replicas(&env, "other").await,
        2,
        "the target is never touched"
    );
    // The good policy keeps being reconciled at its interval.
    at_least(5).await;
    assert!(
        !op.logs().contains("\"maxReplicas\":2147483648"),
        "a log line holds an object's body"
    );
}

#[tokio::test]
async fn sigterm_ends_the_process_in_time_while_queries_hang_and_policies_queue() {
    // Before: a reconcile waiting on a query to a server that never answers (with a long query
    // timeout) kept the process alive after SIGTERM until the query timed out.
    let env = TestEnv::new("sigterm-hang").await;
    install_crd(&env.client).await;
    create_deployment(&env, "web", 2).await;
    let (address, held, mut accepted) = support::http::blackhole(&env.namespace).await;
    // A few hundred policies: every reconcile and query slot busy, and a queue behind them. Each
    // has a query of its own: identical ones would be coalesced into one request, which all of
    // them could join before any other is sent.
    for i in 0..200 {
        let own = format!(",policy=\"{i}\"");
        create_policy(
            &env,
            &policy(&env, &format!("web-{i}"), "web", &own, json!({})),
        )
        .await;
    }
    let mut op = Operator::start_on(
        &env,
        "op",
        &address,
        &[
            "--leader-election",
            "false",
            "--prometheus-timeout",
            "10m",
            "--max-concurrent-reconciles",
            "2",
            "--max-concurrent-queries",
            "2",
            "--shutdown-timeout",
            "2s",
        ],
    );
    // Both query slots hold a query of this test's policies: two reconciles wait on them (and
    // the rest queue behind). A second for both to be well under way.
    for _ in 0..2 {
        let queried = tokio::time::timeout(WAIT, accepted.recv())
            .await
            .expect("the operator queried the server that hangs");
        assert!(queried.is_some(), "the server that hangs stopped accepting");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked = Instant::now();
    let code = op.terminate(Duration::from_secs(30));
    held.abort();
    assert!(
        code.is_some(),
        "still running {:?} after SIGTERM (log: {})",
        asked.elapsed(),
        op.log.display()
    );
    assert!(
        op.logs()
            .contains("did not finish within the shutdown timeout"),
        "{}",
        op.logs()
    );
}

/// The policy's resourceVersion and status.
async fn versioned(env: &TestEnv, name: &str) -> (String, scalewise::api::ScalingPolicyStatus) {
    let p = env
        .api::<ScalingPolicy>()
        .get(name)
        .await
        .expect("read policy");
    (
        p.metadata.resource_version.unwrap_or_default(),
        p.status.unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_steady_policy_writes_its_status_when_something_changes_and_at_the_heartbeat() {
    let (env, exporter) = setup("status-writes", "e2e_load 50\n").await;
    create_deployment(&env, "web", 2).await;
    create_policy(
        &env,
        &policy(&env, "web", "web", "", json!({"interval": "2s"})),
    )
    .await;
    let op = Operator::start(
        &env,
        "op",
        &["--leader-election", "false", "--status-heartbeat", "30s"],
    );
    // Load 50 lies between 30 and 70: the policy holds, evaluation after evaluation.
    eventually("a first evaluation", WAIT, || async {
        let s = status(&env, "web").await;
        s.metrics.first()?.value.filter(|v| *v == 50.0).map(|_| ())
    })
    .await;
    // Once its first evaluations settled (the run, the pods counted), nothing that matters
    // changes: the evaluations go on, the status is not rewritten.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (version, before) = versioned(&env, "web").await;
    let deferred = op
        .metric("scalewise_status_writes_total{outcome=\"deferred\"}")
        .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (still, after) = versioned(&env, "web").await;
    let deferred_since = op
        .metric("scalewise_status_writes_total{outcome=\"deferred\"}")
        .await
        - deferred;
    assert!(
        deferred_since >= 3.0,
        "only {deferred_since} evaluations deferred in 10 s at a 2s interval (log: {})",
        op.log.display()
    );
    assert_eq!(
        (still.as_str(), &after.last_evaluation_time),
        (version.as_str(), &before.last_evaluation_time),
        "the status was rewritten while nothing changed"
    );

    // A reading that changes what the status says is written at the next evaluation.
    exporter.set("e2e_load 60\n");
    let changed = Instant::now();
    eventually("the new reading in status", WAIT, || async {
        let s = status(&env, "web").await;
        s.metrics.first()?.value.filter(|v| *v == 60.0).map(|_| ())
    })
    .await;
    assert!(
        changed.elapsed() < Duration::from_secs(15),
        "the new reading took {:?} to reach the status",
        changed.elapsed()
    );

    // With nothing changing again, lastEvaluationTime still moves at the heartbeat: at most
    // 30 s old (plus an interval), and not at every evaluation.
    let written = status(&env, "web").await.last_evaluation_time.unwrap().0;
    let refreshed = eventually("a heartbeat write", Duration::from_secs(45), || async {
        let t = status(&env, "web").await.last_evaluation_time?.0;
        (t > written).then_some(t)
    })
    .await;
    let lag = refreshed.duration_since(written);
    assert!(
        lag >= jiff::SignedDuration::from_secs(20) && lag <= jiff::SignedDuration::from_secs(34),
        "the heartbeat came {lag} after the last write (heartbeat 30s, spread over its last fifth)"
    );
    assert_eq!(replicas(&env, "web").await, 2);
}

#[tokio::test]
async fn a_replica_that_takes_a_policy_over_waits_a_whole_scale_in_window() {
    // Load 20 is below 30: the policy wants to scale in, once it has a whole 20 s scale-in
    // window of evidence.
    let (env, _exporter) = setup("resume-window", "e2e_load 20\n").await;
    create_deployment(&env, "web", 3).await;
    create_policy(
        &env,
        &policy(
            &env,
            "web",
            "web",
            "",
            json!({"behavior": {"scaleIn": {"stabilizationWindow": "20s"}}}),
        ),
    )
    .await;
    let mut first = Operator::start(
        &env,
        "first",
        &["--leader-election", "false", "--status-heartbeat", "1h"],
    );
    let since = eventually("a run of evaluations", WAIT, || async {
        status(&env, "web").await.evaluating_since.map(|t| t.0)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    // The first replica's newest evaluations were remembered, not written: a crash loses them.
    first.kill();
    let taken = jiff::Timestamp::now();
    let second = Operator::start(
        &env,
        "second",
        &["--leader-election", "false", "--status-heartbeat", "1h"],
    );
    let restarted = eventually("the run to start again", WAIT, || async {
        let t = status(&env, "web").await.evaluating_since?.0;
        (t > since).then_some(t)
    })
    .await;
    assert!(restarted >= taken - jiff::SignedDuration::from_secs(1));
    // No scale-in before a whole window after the takeover, then one step.
    holds_until(
        &env,
        "web",
        3,
        restarted + jiff::SignedDuration::from_secs(20),
    )
    .await;
    wait_replicas(&env, "web", 2, WAIT, &second).await;
    let scaled = scaled_at(&env, "web", 2).await;
    assert!(
        scaled.duration_since(restarted) >= jiff::SignedDuration::from_secs(20),
        "scaled in {} after the takeover, within the 20s window",
        scaled.duration_since(restarted)
    );
}
