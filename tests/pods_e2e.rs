//! `cpu` counted over the target's real pods, on the test environment's KWOK nodes: the pods a
//! target owns (never a name pattern, never another workload's pods with the same labels), their
//! readiness (starting pods are capacity that is not there yet), rollouts (no scale-in while one
//! runs), and targets of any kind with a `/scale` subresource: a Deployment, a StatefulSet, a
//! custom resource.
//!
//! Needs pods (KWOK): the Debian-built 1.20 environment runs none and these tests skip there;
//! against your cluster (SCALEWISE_E2E_CLUSTER=1) they need KWOK there and fail saying so. Run
//! with `make test`; see README.md, "Test environment".

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use scalewise::api::{LimitKind, ScalingPolicy, ScalingPolicyStatus};
use serde_json::{Value, json};
use support::kwok::{self, FakeNode};
use support::operator::Operator;
use support::pod_series::{PodSeries, Usage};
use support::policies::{condition, create_policy, status, with_spec};
use support::workload::{self, Pods};
use support::{TestEnv, install_crd};

const WAIT: Duration = Duration::from_secs(120);

/// Each pod's usage, in cores of its 100m request (0.06 is 60%).
fn cpu(cores: f64) -> Usage {
    Usage {
        cpu_cores: cores,
        memory_bytes: 30e6,
    }
}

/// A policy on `kind` `target` with one `cpu: {}` metric at `target_percent`, evaluated every 2 s
/// over a 10 s window; `extra` is merged into the spec.
fn cpu_policy(
    env: &TestEnv,
    name: &str,
    (api_version, kind, target): (&str, &str, &str),
    target_percent: f64,
    extra: Value,
) -> ScalingPolicy {
    let spec = json!({
        "targetRef": {"apiVersion": api_version, "kind": kind, "name": target},
        "minReplicas": 1,
        "maxReplicas": 10,
        "interval": "2s",
        "metrics": [{"name": "cpu", "cpu": {}, "target": target_percent, "window": "10s"}],
        "behavior": {
            "scaleOut": {"cooldown": "0s"},
            "scaleIn": {"cooldown": "0s", "stabilizationWindow": "0s"}
        }
    });
    with_spec(env, name, spec, extra)
}

fn deployment(name: &str) -> (&'static str, &'static str, &str) {
    ("apps/v1", "Deployment", name)
}

/// The policy's status once `check` holds for it.
async fn status_where(
    env: &TestEnv,
    name: &str,
    what: &str,
    check: impl Fn(&ScalingPolicyStatus) -> bool,
) -> ScalingPolicyStatus {
    support::eventually(what, WAIT, || async {
        let s = status(env, name).await;
        check(&s).then_some(s)
    })
    .await
}

/// The value and message of the policy's one metric.
fn cpu_read(s: &ScalingPolicyStatus) -> (Option<f64>, String) {
    s.metrics
        .first()
        .map(|m| (m.value, m.message.clone()))
        .unwrap_or_default()
}

fn limited_by(s: &ScalingPolicyStatus, kind: LimitKind) -> bool {
    s.last_decision
        .as_ref()
        .is_some_and(|d| d.limits.iter().any(|l| l.kind == kind))
}

/// Waits for `count` Ready pods matching `selector`.
async fn ready_pods(env: &TestEnv, selector: &str, count: usize) -> Vec<Pod> {
    support::eventually(&format!("{count} Ready pods {selector}"), WAIT, || async {
        let pods = workload::pods_selected(&env.client, &env.namespace, selector).await;
        (pods.iter().filter(|p| workload::is_ready(p)).count() >= count).then_some(pods)
    })
    .await
}

/// Waits until Prometheus reads each of `count` pods whose names match `pods` (a regular
/// expression) at `cores` (within 10%)
/// over the policies' 10 s window: a new counter's first rates are extrapolated from few
/// samples, and a policy deciding from them would see load that is not there.
async fn settled(env: &TestEnv, pods: &str, count: usize, cores: f64) {
    let promql = format!(
        "rate(container_cpu_usage_seconds_total{{namespace=\"{}\", pod=~\"{pods}\"}}[10s])",
        env.namespace
    );
    support::eventually(
        &format!("{count} pods {pods} at {cores} cores in Prometheus"),
        WAIT,
        || async {
            let samples = env.prometheus.query(&promql, None).await;
            (samples.len() >= count
                && samples
                    .iter()
                    .all(|s| (s.value - cores).abs() <= 0.1 * cores))
            .then_some(())
        },
    )
    .await;
}

fn scalewise_query(env: &TestEnv, policy: &ScalingPolicy, pods: &str) -> String {
    let file = std::env::temp_dir().join(format!(
        "scalewise-e2e-{}-{}.yaml",
        env.namespace,
        policy.name_any()
    ));
    std::fs::write(&file, serde_yaml_ng::to_string(policy).expect("YAML")).expect("write policy");
    let out = Command::new(env!("CARGO_BIN_EXE_scalewise"))
        .args(["query", "--policy"])
        .arg(&file)
        .args(["--pods", pods, "--prometheus-url"])
        .arg(support::required_env("SCALEWISE_PROMETHEUS_URL"))
        .output()
        .expect("scalewise query runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The number after `cpu: ` in `scalewise query`'s output.
fn queried_cpu(output: &str) -> Option<f64> {
    let line = output.lines().find(|l| l.starts_with("cpu: "))?;
    line.trim_start_matches("cpu: ")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[tokio::test]
async fn the_prefix_trap_a_statefulset_named_like_the_deployment_is_not_its_pods() {
    let env = TestEnv::new("pods-prefix").await;
    let Some(node) = FakeNode::for_test(&env).await else {
        return;
    };
    install_crd(&env.client).await;
    // checkout's two pods use 60% of their requests; checkout-db-0, which the old name pattern
    // `checkout-[a-z0-9]+-[a-z0-9]+` also matched, uses 200%: together they read 130%.
    workload::create_deployment_with(&env, "checkout", 2, &Pods::on(&node)).await;
    workload::create_statefulset_with(&env, "checkout-db", 1, &Pods::on(&node)).await;
    let _checkout = PodSeries::start(&env, "checkout", cpu(0.06)).await;
    let _db = PodSeries::start(&env, "checkout-db", cpu(0.2)).await;
    settled(&env, "checkout-db-0", 1, 0.2).await;
    // A ReplicaSet's pod-template-hash has more than two characters: not checkout-db-0.
    settled(&env, "checkout-[a-z0-9]{5,}-[a-z0-9]+", 2, 0.06).await;
    let _operator = Operator::start(&env, "pods-prefix", &[]);
    let checkout = cpu_policy(
        &env,
        "checkout",
        deployment("checkout"),
        60.0,
        json!({"minReplicas": 2}),
    );
    create_policy(&env, &checkout).await;
    // The StatefulSet is a target too: 200% against 50% asks for 4.
    let db = cpu_policy(
        &env,
        "checkout-db",
        ("apps/v1", "StatefulSet", "checkout-db"),
        50.0,
        json!({"maxReplicas": 4}),
    );
    create_policy(&env, &db).await;

    let s = status_where(
        &env,
        "checkout",
        "checkout's cpu read from its 2 ready pods",
        |s| cpu_read(s).1.contains("pods: 2 ready"),
    )
    .await;
    let (value, message) = cpu_read(&s);
    let value = value.expect("a value");
    assert!(
        (50.0..70.0).contains(&value),
        "checkout reads {value}: {message}"
    );
    let capacity = s.capacity.expect("capacity in status");
    assert_eq!((capacity.pods, capacity.ready_pods), (2, 2), "{capacity:?}");
    assert_eq!(
        s.current_replicas,
        Some(2),
        "no scale-out for the database's load"
    );

    // `scalewise query` counts the same pods, from the cluster or through kube-state-metrics.
    let out = scalewise_query(&env, &checkout, "cluster");
    let read = queried_cpu(&out).unwrap_or_else(|| panic!("no cpu value:\n{out}"));
    assert!((50.0..70.0).contains(&read), "{out}");
    assert!(
        out.contains("pods: 2 of the target, from the cluster"),
        "{out}"
    );
    assert!(out.contains("; pods: 2 ready"), "{out}");
    let out = scalewise_query(&env, &checkout, "kube-state-metrics");
    let read = queried_cpu(&out).unwrap_or_else(|| panic!("no cpu value:\n{out}"));
    assert!((50.0..70.0).contains(&read), "{out}");
    assert!(out.contains("through kube-state-metrics"), "{out}");

    // The StatefulSet policy scaled its StatefulSet.
    support::eventually("checkout-db scaled out to 4", WAIT, || async {
        let scale = env
            .api::<StatefulSet>()
            .get_scale("checkout-db")
            .await
            .ok()?;
        (scale.spec?.replicas? == 4).then_some(())
    })
    .await;
}

#[tokio::test]
async fn pods_of_another_workload_with_the_same_labels_are_left_out_and_counted() {
    let env = TestEnv::new("pods-overlap").await;
    let Some(node) = FakeNode::for_test(&env).await else {
        return;
    };
    install_crd(&env.client).await;
    // web selects app=web; web-canary's pods carry app=web too (and track=canary).
    workload::create_deployment_with(&env, "web", 2, &Pods::on(&node)).await;
    workload::create_deployment_with(
        &env,
        "web-canary",
        1,
        &Pods::on(&node).labelled(&[("app", "web"), ("track", "canary")]),
    )
    .await;
    let _web = PodSeries::start_selecting(&env, "web", "app=web,!track", cpu(0.02)).await;
    let _canary = PodSeries::start_selecting(&env, "web-canary", "track=canary", cpu(0.3)).await;
    let _operator = Operator::start(&env, "pods-overlap", &[]);
    create_policy(
        &env,
        &cpu_policy(
            &env,
            "web",
            deployment("web"),
            20.0,
            json!({"minReplicas": 2}),
        ),
    )
    .await;

    // Until web's own counters have a whole window of samples their rate reads low; wait for
    // the settled value (with the canary's pod counted it would read 113%).
    let s = status_where(&env, "web", "web's cpu with the canary pod left out", |s| {
        let (value, message) = cpu_read(s);
        message.contains("1 of other workloads left out")
            && value.is_some_and(|v| (15.0..25.0).contains(&v))
    })
    .await;
    let (value, message) = cpu_read(&s);
    let value = value.expect("a value");
    // By labels alone: (0.02 + 0.02 + 0.3) / 0.3 = 113%.
    assert!(
        (15.0..25.0).contains(&value),
        "web reads {value}: {message}"
    );
    assert_eq!(s.capacity.expect("capacity").other_workload_pods, 1);
    assert_eq!(workload::replicas(&env, "web").await, 2);
}

/// A Deployment `web` of `replicas` pods on the test's fake node, each Ready `ready_after` its
/// start and using `cores`, settled in Prometheus, with the operator running.
struct Web {
    env: TestEnv,
    /// The names of its first pods.
    first: BTreeSet<String>,
    series: PodSeries,
    _operator: Operator,
    _node: FakeNode,
}

/// [`Web`] for test `test`; None where no pods run (see [`FakeNode::for_test`]).
async fn web_under_load(test: &str, ready_after: &str, replicas: i32, cores: f64) -> Option<Web> {
    let env = TestEnv::new(test).await;
    let node = FakeNode::for_test(&env).await?;
    install_crd(&env.client).await;
    let pods = Pods::on(&node).annotated(kwok::READY_AFTER, ready_after);
    workload::create_deployment_with(&env, "web", replicas, &pods).await;
    let count = usize::try_from(replicas).unwrap_or_default();
    let first = ready_pods(&env, "app=web", count)
        .await
        .iter()
        .map(|p| p.name_any())
        .collect();
    let series = PodSeries::start(&env, "web", cpu(cores)).await;
    settled(&env, "web-.+", count, cores).await;
    let operator = Operator::start(&env, test, &[]);
    Some(Web {
        env,
        first,
        series,
        _operator: operator,
        _node: node,
    })
}

#[tokio::test]
async fn slow_starting_pods_count_as_idle_so_a_scale_out_does_not_run_away() {
    // 90% against 50%: 2 -> ceil(2 x 1.8) = 4. The two new pods take 20 s to be Ready; until
    // then (and for a window after) they count at 0%: 180% / 4 pods = 45%, inside the band.
    // Counted at their usage, as before, all four would read 90% and ask for 8 at once.
    let Some(web) = web_under_load("pods-slow", "20s", 2, 0.09).await else {
        return;
    };
    let env = &web.env;
    create_policy(
        env,
        &cpu_policy(
            env,
            "web",
            deployment("web"),
            50.0,
            json!({"minReplicas": 2}),
        ),
    )
    .await;
    support::eventually("web scaled out to 4", WAIT, || async {
        (workload::replicas(env, "web").await == 4).then_some(())
    })
    .await;
    let started = Instant::now();
    let mut saw_starting = false;
    // While the new pods start (20 s to Ready), the policy holds at 4.
    while started.elapsed() < Duration::from_secs(15) {
        let replicas = workload::replicas(env, "web").await;
        assert_eq!(replicas, 4, "scaled again while the new pods were starting");
        saw_starting |= cpu_read(&status(env, "web").await).1.contains("starting");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        saw_starting,
        "the metric's message never counted starting pods"
    );
    // Once they are Ready and carry the load, the policy goes on.
    support::eventually(
        "web scaled beyond 4 once its pods were ready",
        WAIT,
        || async { (workload::replicas(env, "web").await > 4).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn pods_that_never_become_ready_hold_further_scale_out() {
    let Some(web) = web_under_load("pods-never", "15s", 2, 0.2).await else {
        return;
    };
    let (env, first) = (&web.env, &web.first);
    // 200% against 50%: a scale-out to 6 (the rate policies allow +4). Its pods never become
    // Ready; after the cooldown the ready pods still ask for more (400% / 6 pods = 67%), and the
    // policy waits for the capacity it added instead.
    create_policy(
        env,
        &cpu_policy(
            env,
            "web",
            deployment("web"),
            50.0,
            json!({
                "minReplicas": 2,
                "behavior": {"scaleOut": {"cooldown": "25s"}},
                "pods": {"readinessTimeout": "10s"}
            }),
        ),
    )
    .await;
    // Every pod the scale-out adds is made to never become Ready, before its 15 s are over,
    // until the policy holds for them.
    let deadline = Instant::now() + WAIT;
    let mut marked = BTreeSet::new();
    let s = loop {
        for pod in workload::pods(env, "web").await {
            let name = pod.name_any();
            if !first.contains(&name) && marked.insert(name.clone()) {
                let patch = json!({"metadata": {"annotations": {kwok::READY_AFTER: "never"}}});
                env.api::<Pod>()
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap_or_else(|e| panic!("cannot annotate {name}: {e}"));
            }
        }
        let s = status(env, "web").await;
        if limited_by(&s, LimitKind::CapacityNotReady) {
            break s;
        }
        assert!(Instant::now() < deadline, "no CapacityNotReady hold: {s:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let replicas = workload::replicas(env, "web").await;
    assert_eq!(replicas, 6, "the rate policies allow 2 -> 6 at once");
    let decision = s.last_decision.expect("a decision");
    assert_eq!((decision.from, decision.to), (6, 6), "{}", decision.message);
    assert!(
        decision
            .message
            .contains("4 pods created since the scale-out"),
        "{}",
        decision.message
    );
    assert_eq!(s.capacity.map(|c| (c.pods, c.ready_pods)), Some((6, 2)));
    assert_eq!(workload::replicas(env, "web").await, 6);
}

#[tokio::test]
async fn a_rolling_update_under_steady_load_neither_runs_away_nor_scales_in() {
    let Some(web) = web_under_load("pods-rollout", "8s", 4, 0.05).await else {
        return;
    };
    let (env, series) = (&web.env, &web.series);
    create_policy(
        env,
        &cpu_policy(env, "web", deployment("web"), 50.0, json!({})),
    )
    .await;
    status_where(env, "web", "web evaluated at 50% with its 4 pods", |s| {
        cpu_read(s).1.contains("pods: 4 ready")
    })
    .await;

    // A rollout starts, and the load drops to 20% (which asks for 2 replicas).
    workload::rollout_restart(env, "web", "2026-01-01T00:00:00Z").await;
    support::eventually("the rollout under way", WAIT, || async {
        let d = env.api::<Deployment>().get("web").await.ok()?;
        let status = d.status?;
        (status.updated_replicas.unwrap_or(0) < 4 || status.replicas.unwrap_or(0) > 4).then_some(())
    })
    .await;
    series.set(cpu(0.02));
    let held = AtomicBool::new(false);
    let done = support::eventually("the rollout to end", WAIT, || async {
        let replicas = workload::replicas(env, "web").await;
        assert_eq!(replicas, 4, "the replicas changed during the rollout");
        if limited_by(&status(env, "web").await, LimitKind::Rollout) {
            held.store(true, Ordering::SeqCst);
        }
        let d = env.api::<Deployment>().get("web").await.ok()?;
        let generation = d.metadata.generation?;
        let s = d.status?;
        (s.observed_generation? >= generation
            && s.updated_replicas? == 4
            && s.replicas? == 4
            && s.ready_replicas.unwrap_or(0) == 4)
            .then_some(())
    })
    .await;
    let () = done;
    assert!(
        held.load(Ordering::SeqCst),
        "no Rollout limit was seen while the rollout ran"
    );
    // After it, the policy scales in.
    support::eventually("web scaled in after the rollout", WAIT, || async {
        (workload::replicas(env, "web").await < 4).then_some(())
    })
    .await;
}

/// A namespaced kind with a `/scale` subresource that no controller runs: the test makes its pods.
struct ScalableCrd {
    crd: CustomResourceDefinition,
    config: kube::Config,
}

impl Drop for ScalableCrd {
    fn drop(&mut self) {
        support::delete_when_dropped::<CustomResourceDefinition>(
            &self.config,
            &self.crd.name_any(),
        );
    }
}

const SCALABLE_GROUP: &str = "e2e.scalewise.dev";

async fn install_scalable(env: &TestEnv) -> (ScalableCrd, ApiResource) {
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("scalables.{SCALABLE_GROUP}")},
        "spec": {
            "group": SCALABLE_GROUP,
            "scope": "Namespaced",
            "names": {"plural": "scalables", "singular": "scalable", "kind": "Scalable"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {
                    "status": {},
                    "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas",
                        "labelSelectorPath": ".status.selector"
                    }
                }
            }]
        }
    }))
    .expect("a CRD");
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    match crds.create(&PostParams::default(), &crd).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("cannot create the Scalable CRD: {e}"),
    }
    let guard = ScalableCrd {
        crd,
        config: env.kube_config().clone(),
    };
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(SCALABLE_GROUP, "v1", "Scalable"),
        "scalables",
    );
    (guard, resource)
}

#[tokio::test]
async fn a_custom_resource_with_a_scale_subresource_is_scaled_from_its_own_pods() {
    let env = TestEnv::new("pods-crd").await;
    let Some(node) = FakeNode::for_test(&env).await else {
        return;
    };
    install_crd(&env.client).await;
    let (_crd, resource) = install_scalable(&env).await;
    let things: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &env.namespace, &resource);
    let thing: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{SCALABLE_GROUP}/v1"),
        "kind": "Scalable",
        "metadata": {"name": "thing"},
        "spec": {"replicas": 2}
    }))
    .expect("a Scalable");
    let thing = support::eventually("the Scalable CRD served", WAIT, || async {
        things.create(&PostParams::default(), &thing).await.ok()
    })
    .await;
    things
        .patch_status(
            "thing",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 2, "selector": "app=thing"}})),
        )
        .await
        .expect("the Scalable's status");
    // Its two pods, owned by it (as its controller would make them).
    let template = Pods::on(&node).template("thing");
    for i in 0..2 {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some(format!("thing-{i}")),
                owner_references: Some(vec![OwnerReference {
                    api_version: format!("{SCALABLE_GROUP}/v1"),
                    kind: "Scalable".into(),
                    name: "thing".into(),
                    uid: thing.uid().expect("a uid"),
                    controller: Some(true),
                    block_owner_deletion: None,
                }]),
                ..template.metadata.clone().unwrap_or_default()
            },
            spec: template.spec.clone(),
            status: None,
        };
        env.api::<Pod>()
            .create(&PostParams::default(), &pod)
            .await
            .expect("a pod of the Scalable");
    }
    ready_pods(&env, "app=thing", 2).await;
    let _series = PodSeries::start(&env, "thing", cpu(0.09)).await;
    settled(&env, "thing-.+", 2, 0.09).await;
    let _operator = Operator::start(&env, "pods-crd", &[]);
    create_policy(
        &env,
        &cpu_policy(
            &env,
            "thing",
            (&format!("{SCALABLE_GROUP}/v1"), "Scalable", "thing"),
            50.0,
            json!({"maxReplicas": 4}),
        ),
    )
    .await;
    // A kind without /scale is a clear condition, not an error loop.
    create_policy(
        &env,
        &cpu_policy(
            &env,
            "config",
            ("v1", "ConfigMap", "settings"),
            50.0,
            json!({}),
        ),
    )
    .await;

    // 90% against 50% over its 2 pods: ceil(2 x 1.8) = 4.
    support::eventually("the Scalable scaled to 4", WAIT, || async {
        let thing = things.get("thing").await.ok()?;
        (thing.data["spec"]["replicas"].as_i64()? == 4).then_some(())
    })
    .await;
    // The scale is made between two status writes (its intent, then the status recording it):
    // read the second, which counts the pods the decision was made on.
    let s = status_where(&env, "thing", "the status recording the scale", |s| {
        s.pending_scale.is_none() && s.last_scale_time.is_some()
    })
    .await;
    assert_eq!(s.capacity.map(|c| c.pods), Some(2));
    let s = status_where(&env, "config", "config's TargetNotScalable", |s| {
        condition(s, "Ready").is_some_and(|(_, reason, _)| reason == "TargetNotScalable")
    })
    .await;
    let (_, _, message) = condition(&s, "Ready").expect("Ready");
    assert!(
        message.contains("ConfigMap has no /scale subresource"),
        "{message}"
    );
}
