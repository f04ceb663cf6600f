//! Sharding across replicas (issue 16): `scalewise run --sharding true` replicas share the
//! policies of one namespace, each holding a Lease of its own. Each test asserts what a user would
//! see: which replica's /metrics carries a policy (a replica keeps series only for the policies
//! it owns), the policies' evaluation times in their status, the Deployments' replicas and the
//! scale events with the replica that reported them.
//!
//! Nothing here needs the local environment: against a real cluster (SCALEWISE_E2E_CLUSTER=1)
//! the replicas run on this machine as they do here.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::ListParams;
use scalewise::api::ScalingPolicy;
use scalewise::ring::{DEFAULT_VNODES, Ring};
use serde_json::json;
use support::exporter::Exporter;
use support::operator::Operator;
use support::policies::{create_policy, policy};
use support::workload::{create_deployment, replicas};
use support::{TestEnv, eventually, install_crd};

const POLICIES: usize = 30;
const WAIT: Duration = Duration::from_secs(90);
/// Each policy's interval: evaluations fall on its ticks (the multiples of it), so two evaluations
/// of one policy by one replica are more than half of it apart (the first one after the policy was
/// created, or one late, lies between ticks), and `--min-interval` (2 s) apart whoever made them.
const INTERVAL: Duration = Duration::from_secs(4);
/// A short lease, so that a killed replica's share moves within seconds (with 3 s, the 2 s its
/// renewals leave for each write were not always enough on this machine's busy API server: the
/// writes were fenced, and the scales recovered from their intents).
const SHARD_ARGS: [&str; 4] = ["--sharding", "true", "--lease-duration", "6s"];

/// The environment: `POLICIES` Deployments `web-N` at one replica, each with its policy `p-N`
/// reading this test's `e2e_load` (`load`), stepping out by one with a ten-minute cooldown.
async fn setup(test: &str, load: u32) -> (TestEnv, Exporter) {
    let env = TestEnv::new(test).await;
    install_crd(&env.client).await;
    let exporter = Exporter::start(&env.namespace, &format!("e2e_load {load}\n")).await;
    env.scrape(&exporter).await;
    join_all((0..POLICIES).map(|i| {
        let env = &env;
        async move {
            create_deployment(env, &format!("web-{i}"), 1).await;
            let spec = json!({
                "interval": format!("{}s", INTERVAL.as_secs()),
                "behavior": {"scaleOut": {"step": 1, "cooldown": "10m"}}
            });
            create_policy(
                env,
                &policy(env, &format!("p-{i}"), &format!("web-{i}"), "", spec),
            )
            .await;
        }
    }))
    .await;
    (env, exporter)
}

fn start(env: &TestEnv, identity: &str) -> Operator {
    Operator::start(env, identity, &SHARD_ARGS)
}

/// The policies of this test whose series `op` serves on /metrics.
async fn served(env: &TestEnv, op: &Operator) -> BTreeSet<String> {
    let Some((200, text)) = op.get("/metrics").await else {
        return BTreeSet::new();
    };
    let prefix = format!(
        "scalewise_policy_desired_replicas{{namespace=\"{}\",name=\"",
        env.namespace
    );
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// Each policy's replica, once every policy is served by exactly the replica that `ring` over the
/// replicas' names gives it, and by no other.
async fn settled(env: &TestEnv, ops: &[(&str, &Operator)]) -> BTreeMap<String, String> {
    let names: Vec<String> = ops.iter().map(|(n, _)| (*n).to_owned()).collect();
    let ring = Ring::new(&names, DEFAULT_VNODES);
    let want: BTreeMap<String, String> = (0..POLICIES)
        .map(|i| {
            let name = format!("p-{i}");
            let owner = ring.owner_of(&env.namespace, &name).unwrap_or_default();
            (name, owner.to_owned())
        })
        .collect();
    let what = format!("the {POLICIES} policies to be shared by {names:?} as the ring says");
    eventually(&what, WAIT, || async {
        let mut got: BTreeMap<String, String> = BTreeMap::new();
        for (name, op) in ops {
            for policy in served(env, op).await {
                if got.insert(policy, (*name).to_owned()).is_some() {
                    return None;
                }
            }
        }
        (got == want).then_some(())
    })
    .await;
    want
}

/// Every policy's evaluation times as its status shows them, sampled for `window`.
async fn evaluations(env: &TestEnv, window: Duration) -> BTreeMap<String, BTreeSet<i64>> {
    let mut seen: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    let start = Instant::now();
    while start.elapsed() < window {
        let list = env
            .api::<ScalingPolicy>()
            .list(&ListParams::default())
            .await
            .expect("list policies");
        for p in list.items {
            let at = p
                .status
                .and_then(|s| s.last_evaluation_time)
                .map(|t| t.0.as_millisecond());
            if let (Some(name), Some(at)) = (p.metadata.name, at) {
                seen.entry(name).or_default().insert(at);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    seen
}

/// No two evaluations of one policy closer than half its interval: one replica evaluates it at a
/// time (two replicas evaluating it would do so at the same tick, milliseconds apart).
fn evaluated_once_per_interval(seen: &BTreeMap<String, BTreeSet<i64>>, window: Duration) {
    assert_eq!(seen.len(), POLICIES, "{seen:?}");
    let least = i64::try_from((INTERVAL / 2).as_millis()).unwrap();
    let intervals = window.as_secs() / INTERVAL.as_secs();
    for (name, times) in seen {
        assert!(
            times.len() as u64 >= intervals.saturating_sub(2),
            "{name} was evaluated {} times in {window:?}: {times:?}",
            times.len()
        );
        let times: Vec<i64> = times.iter().copied().collect();
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= least,
                "{name} was evaluated twice within {} ms: {times:?}",
                pair[1] - pair[0]
            );
        }
    }
}

/// The field managers of scalewise replicas on each Deployment's `/scale`, by policy.
async fn scalers(env: &TestEnv) -> BTreeMap<String, BTreeSet<String>> {
    let list = env
        .api::<Deployment>()
        .list(&ListParams::default())
        .await
        .expect("list deployments");
    list.items
        .into_iter()
        .map(|d| {
            let name = d.metadata.name.unwrap_or_default();
            let managers = d
                .metadata
                .managed_fields
                .unwrap_or_default()
                .into_iter()
                .filter_map(|m| m.manager)
                .filter(|m| m.starts_with("scalewise-"))
                .collect();
            (name.replacen("web-", "p-", 1), managers)
        })
        .collect()
}

/// What [`scalers`] should be: each policy's owner alone.
fn scalers_by_ring(owners: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    owners
        .iter()
        .map(|(p, o)| (p.clone(), BTreeSet::from([format!("scalewise-{o}")])))
        .collect()
}

/// The replicas that reported a ScaledOut event, per policy.
async fn scaled_out_by(env: &TestEnv) -> BTreeMap<String, Vec<String>> {
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (policy, replica) in support::operator::scaled_out(env).await {
        by.entry(policy).or_default().push(replica);
    }
    by
}

/// Three replicas share thirty steady policies as the ring says, each replica's gauge counts its
/// share, and no policy is evaluated twice within an interval.
#[tokio::test]
async fn three_replicas_share_thirty_policies_and_none_is_evaluated_twice_in_an_interval() {
    let (env, _exporter) = setup("shard-share", 50).await;
    let (a, b, c) = (
        start(&env, "op-a"),
        start(&env, "op-b"),
        start(&env, "op-c"),
    );
    let ops = [("op-a", &a), ("op-b", &b), ("op-c", &c)];
    let owners = settled(&env, &ops).await;
    for (name, op) in &ops {
        let share = owners.values().filter(|o| o == name).count();
        eventually(&format!("{name}'s share gauge"), WAIT, || async {
            let gauge = op.metric("scalewise_shard_policies").await;
            let members = op.metric("scalewise_shard_members").await;
            ((gauge - share as f64).abs() < 0.5 && (members - 3.0).abs() < 0.5).then_some(())
        })
        .await;
    }
    let window = Duration::from_secs(24);
    evaluated_once_per_interval(&evaluations(&env, window).await, window);
    // Steady load: nothing scaled.
    for i in 0..POLICIES {
        assert_eq!(replicas(&env, &format!("web-{i}")).await, 1);
    }
}

/// A replica killed (SIGKILL) gives up nothing: its Lease expires and the two others take its
/// policies within seconds, each policy once, without a second step: each honours the ten-minute
/// cooldown of the scale the dead replica made (it is in the status). Who scaled is told by the
/// field manager of each replica on the Deployments' `/scale` (a scale whose status write timed
/// out is recovered from its intent, without a ScaledOut event, so events alone cannot tell).
#[tokio::test]
async fn a_killed_replicas_policies_move_within_the_lease_duration_without_a_double_step() {
    let (env, exporter) = setup("shard-kill", 50).await;
    let (a, mut b, c) = (
        start(&env, "op-a"),
        start(&env, "op-b"),
        start(&env, "op-c"),
    );
    // The load rises once the replicas have shared the policies (the first replica to start
    // owns them all until the others are seen).
    let before = settled(&env, &[("op-a", &a), ("op-b", &b), ("op-c", &c)]).await;
    exporter.set("e2e_load 90\n");
    // Every Deployment stepped out once, by its policy's owner.
    eventually("every Deployment at 2 replicas", WAIT, || async {
        let all = join_all((0..POLICIES).map(|i| {
            let env = &env;
            async move { replicas(env, &format!("web-{i}")).await }
        }))
        .await;
        all.iter().all(|r| *r == 2).then_some(())
    })
    .await;
    // Each step is recorded (its cooldown is in the status) and was written by the policy's
    // owner: its field manager on the Deployment's /scale.
    eventually(
        "every scale recorded in its policy's status",
        WAIT,
        || async {
            let list = env
                .api::<ScalingPolicy>()
                .list(&ListParams::default())
                .await
                .ok()?;
            list.items
                .iter()
                .all(|p| {
                    p.status
                        .as_ref()
                        .is_some_and(|s| s.last_scale_time.is_some() && s.pending_scale.is_none())
                })
                .then_some(())
        },
    )
    .await;
    assert_eq!(scalers(&env).await, scalers_by_ring(&before));
    let killed = Instant::now();
    b.kill();
    let after = settled(&env, &[("op-a", &a), ("op-c", &c)]).await;
    let moved_in = killed.elapsed();
    // Lease duration (6 s), then a renewal and a list of each survivor to publish and read the
    // new ring, then the first evaluation: seconds, not minutes.
    assert!(
        moved_in < Duration::from_secs(30),
        "op-b's policies took {moved_in:?} to move"
    );
    for (policy, owner) in &before {
        if owner != "op-b" {
            assert_eq!(
                &after[policy], owner,
                "{policy} moved between live replicas"
            );
        }
    }
    // Two more intervals: the new owners hold (cooldown), nothing steps twice.
    tokio::time::sleep(INTERVAL * 2).await;
    for i in 0..POLICIES {
        assert_eq!(
            replicas(&env, &format!("web-{i}")).await,
            2,
            "web-{i} stepped twice"
        );
    }
    let by = scaled_out_by(&env).await;
    assert!(by.values().all(|v| v.len() <= 1), "{by:?}");
    assert_eq!(
        scalers(&env).await,
        scalers_by_ring(&before),
        "another replica scaled"
    );
    for op in [&a, &c] {
        assert!(
            op.metric("scalewise_decisions_total{action=\"Hold\"}")
                .await
                >= 1.0
        );
    }
}

/// A third replica joining takes only its share (nothing moves between the two that were
/// there); when it stops (SIGTERM) it deletes its Lease and every policy goes back to the owner
/// it had before, without waiting for the Lease to expire.
#[tokio::test]
async fn a_replica_added_takes_only_its_share_and_gives_it_back_when_it_stops() {
    let (env, _exporter) = setup("shard-add", 50).await;
    let (a, b) = (start(&env, "op-a"), start(&env, "op-b"));
    let two = settled(&env, &[("op-a", &a), ("op-b", &b)]).await;
    // The evaluations while op-c joins: a policy handed over is not evaluated again before its
    // interval is out.
    let joining = async {
        let c = start(&env, "op-c");
        let three = settled(&env, &[("op-a", &a), ("op-b", &b), ("op-c", &c)]).await;
        (c, three)
    };
    let window = Duration::from_secs(24);
    let (seen, (mut c, three)) = tokio::join!(evaluations(&env, window), joining);
    evaluated_once_per_interval(&seen, window);
    let mut moved = 0;
    for (policy, owner) in &three {
        if owner != &two[policy] {
            assert_eq!(
                owner, "op-c",
                "{policy} moved from {} to {owner}",
                two[policy]
            );
            moved += 1;
        }
    }
    assert!(moved > 0 && moved < POLICIES, "{moved} of {POLICIES} moved");
    assert_eq!(
        c.terminate(Duration::from_secs(30)),
        Some(0),
        "op-c exits cleanly"
    );
    assert!(
        c.logs().contains("this replica's lease deleted"),
        "{}",
        c.logs()
    );
    let back = settled(&env, &[("op-a", &a), ("op-b", &b)]).await;
    assert_eq!(back, two);
}
