//! Every scale exactly once, under faults (issue 12): `scalewise run` talks to the API server
//! through a fault-injecting proxy (tests/support/proxy.rs) that refuses or holds chosen requests,
//! so these tests run the same against the test environment and a real cluster
//! (SCALEWISE_E2E_CLUSTER=1). Each asserts what a user would see: the Deployment's replicas,
//! the policy's status and events, the operator's /metrics.
//!
//! The policy steps by one replica with a one-minute scale-out cooldown while its load stays
//! high, so a lost cooldown shows as a second step, a double step as two.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use support::exporter::Exporter;
use support::operator::Operator;
use support::policies::{condition, create_policy, events, policy, status};
use support::proxy::Proxy;
use support::workload::{create_deployment, replicas};
use support::{TestEnv, eventually, install_crd};

const WAIT: Duration = Duration::from_secs(60);

/// A test's environment: Deployment `web` at 2 replicas, its policy `web` (load 90: scale out;
/// `spec` merged into its spec), and a proxy in front of the API server.
async fn setup_with(test: &str, spec: serde_json::Value) -> (TestEnv, Exporter, Proxy) {
    let env = TestEnv::new(test).await;
    install_crd(&env.client).await;
    let exporter = Exporter::start(&env.namespace, "e2e_load 90\n").await;
    env.scrape(&exporter).await;
    create_deployment(&env, "web", 2).await;
    create_policy(&env, &policy(&env, "web", "web", "", spec)).await;
    let proxy = Proxy::start(env.client.clone(), &env.namespace).await;
    (env, exporter, proxy)
}

/// As [`setup_with`], stepping by one with a one-minute scale-out cooldown.
async fn setup(test: &str) -> (TestEnv, Exporter, Proxy) {
    setup_with(
        test,
        json!({"behavior": {"scaleOut": {"step": 1, "cooldown": "60s"}}}),
    )
    .await
}

const STATUS: &str = "/scalingpolicies/web/status";
const SCALE: &str = "/deployments/web/scale";

fn reasons(events: &[(String, String)], reason: &str) -> Vec<String> {
    events
        .iter()
        .filter(|(r, _)| r == reason)
        .map(|(_, note)| note.clone())
        .collect()
}

/// `scalewise run` without leader election, talking to the API server through `proxy`.
fn behind(env: &TestEnv, proxy: &Proxy, identity: &str) -> Operator {
    Operator::start_via(
        env,
        identity,
        proxy.kubeconfig(),
        &["--leader-election", "false"],
    )
}

/// The note of the first event `reason` about the policy, once there is one.
async fn first_event(env: &TestEnv, reason: &str) -> String {
    eventually(&format!("a {reason} event"), WAIT, || async {
        reasons(&events(env, "web").await, reason)
            .into_iter()
            .next()
    })
    .await
}

async fn wait_replicas(env: &TestEnv, want: i32, op: &Operator) {
    let what = format!("web to reach {want} replicas (log: {})", op.log.display());
    eventually(&what, WAIT, || async {
        (replicas(env, "web").await == want).then_some(())
    })
    .await;
}

/// Waits until the operator's sample `name` reaches `at_least`.
async fn wait_metric(op: &Operator, name: &str, at_least: f64) {
    let what = format!("{name} >= {at_least} (log: {})", op.log.display());
    eventually(&what, WAIT, || async {
        (op.metric(name).await >= at_least).then_some(())
    })
    .await;
}

/// Status writes refused outright (a role that may patch /scale but not the policy's status, a
/// webhook, a quota): the scale cannot be recorded first, so none is made.
#[tokio::test]
async fn status_writes_refused_outright_mean_no_scale_at_all() {
    let (env, _exporter, proxy) = setup("refused-status").await;
    proxy.refuse("PATCH", STATUS, "", 403);
    let op = behind(&env, &proxy, "op");
    // Three evaluations decided to scale and could not record it.
    wait_metric(
        &op,
        "scalewise_reconciles_total{result=\"IntentNotRecorded\"}",
        3.0,
    )
    .await;
    assert_eq!(replicas(&env, "web").await, 2, "scaled without a record");
    let refused = first_event(&env, "IntentNotRecorded").await;
    assert!(
        refused.contains("cannot record the scale from 2 to 3")
            && refused.contains("so the target was not scaled"),
        "{refused}"
    );
    // Once it may write, it scales, once.
    proxy.heal();
    wait_replicas(&env, 3, &op).await;
    eventually("the status to record the scale", WAIT, || async {
        let s = status(&env, "web").await;
        (s.last_scale_time.is_some() && s.pending_scale.is_none()).then_some(())
    })
    .await;
    assert_eq!(replicas(&env, "web").await, 3);
}

/// The status write after a successful /scale fails: the intent recorded before it still counts,
/// so the cooldown holds (before write-ahead, this took the Deployment from 2 to 10 in 50 ms).
#[tokio::test]
async fn a_status_write_failing_after_the_scale_loses_no_cooldown() {
    let (env, _exporter, proxy) = setup("status-after-scale").await;
    // Server-side apply of the status fails; the intent (a merge patch) goes through.
    proxy.refuse("PATCH", STATUS, "apply-patch", 500);
    let op = behind(&env, &proxy, "op");
    wait_replicas(&env, 3, &op).await;
    // Three more reconciles, each deciding from the recorded intent, each failing to write.
    wait_metric(
        &op,
        "scalewise_reconciles_total{result=\"StatusWriteFailed\"}",
        3.0,
    )
    .await;
    assert_eq!(
        replicas(&env, "web").await,
        3,
        "a second step: the cooldown was lost"
    );
    let s = status(&env, "web").await;
    let intent = s.pending_scale.expect("the intent is in status");
    assert_eq!((intent.decision.from, intent.decision.to), (2, 3));

    proxy.heal();
    let recovered = first_event(&env, "IntentRecovered").await;
    assert!(recovered.contains("from 2 to 3"), "{recovered}");
    assert!(recovered.contains("was made"), "{recovered}");
    let s = eventually("the status to record the scale", WAIT, || async {
        let s = status(&env, "web").await;
        (s.pending_scale.is_none() && s.last_scale_time.is_some()).then_some(s)
    })
    .await;
    assert_eq!(replicas(&env, "web").await, 3);
    assert_ne!(
        condition(&s, "ExternalScale").map(|c| c.0),
        Some("True"),
        "its own scale reported as someone else's"
    );
    assert!(
        op.metric("scalewise_intents_recovered_total{outcome=\"applied\"}")
            .await
            >= 1.0
    );
    assert!(
        events(&env, "web")
            .await
            .iter()
            .all(|(r, _)| r != "ExternalScale")
    );
}

/// The operator dies (SIGKILL) between /scale and its status: the operator started next finds
/// the intent, counts the scale it made, and keeps the cooldown.
#[tokio::test]
async fn an_operator_killed_between_scale_and_status_is_succeeded_without_a_double_step() {
    let (env, _exporter, proxy) = setup("kill-mid-scale").await;
    // Hold the status that records the first scale (no status before it has a last scale).
    let gate = proxy.hold("PATCH", STATUS, "apply-patch", "\"lastScaleTime\"");
    let mut first = behind(&env, &proxy, "op-a");
    gate.wait_held(1, WAIT).await;
    assert_eq!(replicas(&env, "web").await, 3, "held after the scale");
    first.kill();
    gate.drop_all();
    proxy.heal();

    let second = behind(&env, &proxy, "op-b");
    // Its next evaluations hold at 3: the cooldown of the scale the first operator made.
    counted_once(&env, &second).await;
}

/// A human `kubectl scale` lands while the operator's scale is in flight (held by the proxy): the
/// operator's write is conditional on the version it decided from, so the human's change stands,
/// is reported as ExternalScale, and is decided from.
#[tokio::test]
async fn a_human_scale_during_a_reconcile_is_never_overwritten() {
    // No cooldown, and a maximum of 3 until the scale is held.
    let spec = json!({"maxReplicas": 3, "behavior": {"scaleOut": {"step": 1, "cooldown": "0s"}}});
    let (env, _exporter, proxy) = setup_with("human-mid-scale", spec).await;
    let op = behind(&env, &proxy, "op");
    wait_replicas(&env, 3, &op).await;
    eventually("the scale to 3 recorded", WAIT, || async {
        let s = status(&env, "web").await;
        (s.last_decision.as_ref()?.to == 3 && s.pending_scale.is_none()).then_some(())
    })
    .await;
    let gate = proxy.hold("PATCH", SCALE, "", "");
    env.api::<scalewise::api::ScalingPolicy>()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"maxReplicas": 10}})),
        )
        .await
        .expect("raise maxReplicas");
    gate.wait_held(1, WAIT).await;
    // The intent 3 -> 4 is recorded; the scale waits at the proxy. A human scales to 7.
    let s = status(&env, "web").await;
    let intent = s
        .pending_scale
        .expect("the intent is recorded before the scale");
    assert_eq!((intent.decision.from, intent.decision.to), (3, 4));
    env.api::<Deployment>()
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 7}})),
        )
        .await
        .expect("kubectl scale");
    gate.release();

    let changed = first_event(&env, "TargetChanged").await;
    assert!(changed.contains("from 3 to 7"), "{changed}");
    // Decided again from the human's 7 (and, the load still high, stepping out of it).
    let s = eventually("an evaluation from 7", WAIT, || async {
        let s = status(&env, "web").await;
        (s.last_decision.as_ref()?.from == 7).then_some(s)
    })
    .await;
    let now = replicas(&env, "web").await;
    assert!(now >= 7, "the human's 7 was overwritten with {now}");
    assert_eq!(
        condition(&s, "ExternalScale").map(|c| (c.0, c.1)),
        Some(("True", "ExternalScale"))
    );
    // The intent decided from 3 is gone (one decided from 7 may be in flight: no cooldown here).
    assert!(
        s.pending_scale
            .as_ref()
            .is_none_or(|i| i.decision.from != 3),
        "{:?}",
        s.pending_scale
    );
    assert!(
        op.metric("scalewise_write_conflicts_total{write=\"scale\"}")
            .await
            >= 1.0
    );
}

/// The arguments of a replica electing a leader on Lease `scalewise-fence` (4 s: a standby takes
/// over within about 4 s of the leader's last renewal; the leader stops writing 1.3 s before).
const LEASE_ARGS: [&str; 6] = [
    "--leader-election",
    "true",
    "--lease-name",
    "scalewise-fence",
    "--lease-duration",
    "4s",
];

async fn lease_holder(env: &TestEnv) -> Option<(String, i32)> {
    let lease = env
        .api::<k8s_openapi::api::coordination::v1::Lease>()
        .get("scalewise-fence")
        .await
        .ok()?;
    let spec = lease.spec?;
    let holder = spec.holder_identity.filter(|h| !h.is_empty())?;
    Some((holder, spec.lease_transitions.unwrap_or(0)))
}

async fn wait_holder(env: &TestEnv, identity: &str) -> i32 {
    eventually(&format!("{identity} to hold the lease"), WAIT, || async {
        lease_holder(env)
            .await
            .filter(|(h, _)| h == identity)
            .map(|(_, transitions)| transitions)
    })
    .await
}

/// Scale events (ScaledOut) about the policy, by the replica that reported them.
async fn scaled_out_by(env: &TestEnv) -> Vec<String> {
    support::operator::scaled_out(env)
        .await
        .into_iter()
        .map(|(_, replica)| replica)
        .collect()
}

/// The leader is frozen (SIGSTOP) while a standby takes over, then thawed (SIGCONT): by then its
/// renew deadline has passed, so it writes nothing and stands by; the standby keeps the cooldown
/// of the leader's scale.
#[tokio::test]
async fn a_frozen_leader_thawed_after_a_takeover_writes_nothing() {
    let (env, _exporter, _proxy) = setup("frozen-leader").await;
    let a = Operator::start(&env, "op-a", &LEASE_ARGS);
    wait_holder(&env, "op-a").await;
    wait_replicas(&env, 3, &a).await;
    // op-a's scale is whole (scale, status, then its event) before it is frozen: a freeze
    // between the status write and the event would leave the scale unreported, which is not
    // what this test is about.
    eventually("op-a's ScaledOut event", WAIT, || async {
        (scaled_out_by(&env).await == ["op-a"]).then_some(())
    })
    .await;
    let b = Operator::start(&env, "op-b", &LEASE_ARGS);
    a.signal("STOP");
    wait_holder(&env, "op-b").await;
    // The new leader evaluates and holds: the cooldown of op-a's scale.
    eventually("op-b to evaluate", WAIT, || async {
        (b.metric("scalewise_decisions_total{action=\"Hold\"}").await >= 1.0).then_some(())
    })
    .await;
    a.signal("CONT");
    // op-a learns it lost the lease and stands by; it never takes the lease back.
    eventually("op-a to stand by", WAIT, || async {
        let logs = a.logs();
        (logs.contains("lost leadership: standing by")).then_some(())
    })
    .await;
    assert_eq!(
        lease_holder(&env).await.map(|(h, _)| h).as_deref(),
        Some("op-b")
    );
    assert_eq!(replicas(&env, "web").await, 3, "a double step");
    assert_eq!(scaled_out_by(&env).await, vec!["op-a".to_owned()]);
    let s = status(&env, "web").await;
    assert_ne!(condition(&s, "ExternalScale").map(|c| c.0), Some("True"));
    drop(b);
}

/// Where Debian's libfaketime is (`make tools` installs it).
fn libfaketime() -> String {
    let found = ["x86_64-linux-gnu", "aarch64-linux-gnu"]
        .iter()
        .map(|arch| format!("/usr/lib/{arch}/faketime/libfaketime.so.1"))
        .find(|p| std::path::Path::new(p).is_file());
    found.unwrap_or_else(|| {
        panic!("libfaketime is not installed: `make tools` installs it (Debian's libfaketime)")
    })
}

/// A standby whose clock runs 30 s fast never takes a live leader's Lease (it times the Lease on
/// its own clock from the renewals it sees); once it leads, the times it stamps lie 30 s ahead,
/// and the replica after it treats them as now and says so (ClockSkew).
///
/// Local environment or real cluster alike: the skew is the operator process's own (libfaketime).
#[tokio::test]
async fn a_standby_with_a_fast_clock_never_takes_a_live_leaders_lease() {
    let (env, _exporter, _proxy) = setup("fast-clock").await;
    let lib = libfaketime();
    let fast = [("LD_PRELOAD", lib.as_str()), ("FAKETIME", "+30")];
    let mut a = Operator::start(&env, "op-a", &LEASE_ARGS);
    let transitions = wait_holder(&env, "op-a").await;
    let fast_standby = Operator::start_env(&env, "op-fast", &fast, &LEASE_ARGS);
    // The standby runs (its /healthz answers) and watches the Lease for three lease durations.
    eventually("the fast standby to serve", WAIT, || async {
        fast_standby.get("/healthz").await.map(|_| ())
    })
    .await;
    let watched = std::time::Instant::now();
    while watched.elapsed() < Duration::from_secs(12) {
        assert_eq!(
            lease_holder(&env).await,
            Some(("op-a".to_owned(), transitions)),
            "the fast standby took a live leader's lease"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The leader dies: the fast standby takes over and stamps its clock's times.
    a.kill();
    wait_holder(&env, "op-fast").await;
    let ahead = eventually("a status stamped ahead", WAIT, || async {
        let s = status(&env, "web").await;
        let t = s.last_evaluation_time?.0;
        (t > jiff::Timestamp::now() + jiff::SignedDuration::from_secs(20)).then_some(t)
    })
    .await;
    drop(fast_standby);
    // A replica with a correct clock reads times 30 s ahead: taken as now, said so.
    let c = Operator::start(&env, "op-c", &["--leader-election", "false"]);
    let s = eventually("a ClockSkew condition", WAIT, || async {
        let s = status(&env, "web").await;
        (condition(&s, "ClockSkew")?.0 == "True").then_some(s)
    })
    .await;
    let (_, reason, message) = condition(&s, "ClockSkew").expect("ClockSkew");
    assert_eq!(reason, "FutureTimestamps");
    assert!(
        message.contains("ahead of this replica's clock: treated as now"),
        "{message}"
    );
    // Its evaluations run at once, not 30 s late: one is stamped before the fast one's.
    eventually("an evaluation by op-c", WAIT, || async {
        let s = status(&env, "web").await;
        (s.last_evaluation_time?.0 < ahead).then_some(())
    })
    .await;
    drop(c);
}

/// The scale from 2 to 3 whose record was lost is found by `op`, counted once (an IntentRecovered
/// event says it was made, and the cooldown it started holds the next evaluations at 3), and
/// never taken for someone else's.
async fn counted_once(env: &TestEnv, op: &Operator) {
    let recovered = first_event(env, "IntentRecovered").await;
    assert!(recovered.contains("was made"), "{recovered}");
    let s = held_by_cooldown_after(env, None).await;
    assert_eq!(replicas(env, "web").await, 3, "a double step");
    assert_ne!(condition(&s, "ExternalScale").map(|c| c.0), Some("True"));
    assert!(
        op.metric("scalewise_intents_recovered_total{outcome=\"applied\"}")
            .await
            >= 1.0
    );
}

/// Waits until the operator has evaluated again after `since` (an evaluation held by the
/// cooldown, with no intent left), and returns that status.
async fn held_by_cooldown_after(
    env: &TestEnv,
    since: Option<jiff::Timestamp>,
) -> scalewise::api::ScalingPolicyStatus {
    eventually("an evaluation held by the cooldown", WAIT, || async {
        let s = status(env, "web").await;
        let evaluated = s.last_evaluation_time.as_ref()?.0;
        let held = s
            .last_decision
            .as_ref()?
            .limits
            .iter()
            .any(|l| l.kind == scalewise::api::LimitKind::Cooldown);
        (held && s.pending_scale.is_none() && since.is_none_or(|t| evaluated > t)).then_some(s)
    })
    .await
}

/// The policy watch is forced to relist: every watch in flight is cut and new ones answered
/// `410 Gone` for a while. The operator lists again and goes on, with no double step and no lost
/// cooldown.
#[tokio::test]
async fn a_policy_watch_forced_to_relist_loses_nothing() {
    let (env, _exporter, proxy) = setup("watch-gone").await;
    let op = behind(&env, &proxy, "op");
    wait_replicas(&env, 3, &op).await;
    let before = held_by_cooldown_after(&env, None).await;
    let gone = proxy.refuse_where("GET", "/scalingpolicies", "", "watch=", 410);
    proxy.cut();
    eventually("two watches refused with 410", WAIT, || async {
        (gone.load(std::sync::atomic::Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    proxy.heal();
    let after = held_by_cooldown_after(&env, before.last_evaluation_time.map(|t| t.0)).await;
    assert_eq!(
        replicas(&env, "web").await,
        3,
        "a double step after the relist"
    );
    assert_eq!(
        after.last_scale_time, before.last_scale_time,
        "the cooldown moved"
    );
    assert_ne!(
        condition(&after, "ExternalScale").map(|c| c.0),
        Some("True")
    );
    assert_eq!(scaled_out_by(&env).await.len(), 1);
}

/// The API server goes away during a scale-out, after /scale and before the status that records
/// it: that write is lost, every connection (watches included) is cut, and nothing answers for a
/// while. Back, the operator finds its intent, counts the scale, and keeps the cooldown.
///
/// Against the local environment as against a real cluster, the restart is the proxy's: the
/// suite's tests share one API server and run at the same time, so none may restart it.
#[tokio::test]
async fn an_api_server_going_away_during_a_scale_out_loses_no_cooldown() {
    let (env, _exporter, proxy) = setup("apiserver-away").await;
    let gate = proxy.hold("PATCH", STATUS, "apply-patch", "\"lastScaleTime\"");
    let op = behind(&env, &proxy, "op");
    gate.wait_held(1, WAIT).await;
    assert_eq!(replicas(&env, "web").await, 3, "held after the scale");
    let down = proxy.go_away();
    gate.drop_all();
    proxy.cut();
    eventually("the operator to find the server gone", WAIT, || async {
        (down.load(std::sync::atomic::Ordering::SeqCst) >= 5).then_some(())
    })
    .await;
    proxy.heal();

    counted_once(&env, &op).await;
}
