//! Smoke tests of the test environment: each part the end-to-end tests rely
//! on works against the real servers (kube-apiserver and etcd, or your cluster
//! with SCALEWISE_E2E_CLUSTER=1; Prometheus; VictoriaMetrics).
//!
//! Run with `make test`; see README.md, "Test environment".

mod support;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        coordination::v1::{Lease, LeaseSpec},
        core::v1::{Container, Pod, PodSpec, PodTemplateSpec},
    },
    apimachinery::pkg::apis::meta::v1::{LabelSelector, MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{
    Api, ResourceExt,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    runtime::watcher,
};
use serde::Deserialize;
use serde_json::json;
use support::{
    TestEnv, crd_resource,
    exporter::Exporter,
    install_crd,
    kwok::{self, FakeNode},
    metrics::{Series, now_ms},
    repo_path,
    workload::{self, Pods},
};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn scaling_policy_crd_from_the_crds_directory_becomes_established() {
    let env = TestEnv::new("crd-established").await;

    let crd = install_crd(&env.client).await;

    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("scalingpolicies.scalewise.dev")
    );
    assert_eq!(crd.spec.group, "scalewise.dev");
    assert_eq!(crd.spec.names.kind, "ScalingPolicy");
    assert_eq!(crd.spec.names.plural, "scalingpolicies");
    let version = crd.spec.versions.iter().find(|v| v.storage);
    assert_eq!(version.map(|v| v.name.as_str()), Some("v1alpha1"));
    let subresources = version.and_then(|v| v.subresources.as_ref());
    assert!(
        subresources.is_some_and(|s| s.status.is_some()),
        "status subresource"
    );
}

/// The ScalingPolicy of examples/checkout.yaml (the file may hold other objects too).
fn example_scaling_policy() -> DynamicObject {
    let path = repo_path("examples/checkout.yaml");
    let yaml = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&yaml)
        .filter_map(|doc| DynamicObject::deserialize(doc).ok())
        .find(|obj| {
            obj.types
                .as_ref()
                .is_some_and(|t| t.kind == "ScalingPolicy")
        })
        .unwrap_or_else(|| panic!("{} holds no ScalingPolicy", path.display()))
}

/// Waits for the next watch event about `name` that satisfies `check`.
async fn next_apply<S>(
    stream: &mut S,
    name: &str,
    check: impl Fn(&DynamicObject) -> bool,
) -> DynamicObject
where
    S: futures::Stream<Item = Result<watcher::Event<DynamicObject>, watcher::Error>> + Unpin,
{
    let wait = async {
        while let Some(event) = stream.try_next().await.transpose() {
            match event {
                Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj))
                    if obj.name_any() == name && check(&obj) =>
                {
                    return obj;
                }
                Ok(_) => {}
                Err(e) => panic!("watch of ScalingPolicies failed: {e}"),
            }
        }
        panic!("the watch of ScalingPolicies ended");
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("no matching watch event for {name} within {WAIT:?}"))
}

#[tokio::test]
async fn example_scaling_policy_is_created_watched_and_its_status_written_through_the_subresource()
{
    let env = TestEnv::new("scaling-policy").await;
    let resource = crd_resource(&install_crd(&env.client).await);
    let api: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &env.namespace, &resource);

    // Watch first (until the initial, empty listing is done), then create.
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    let listed = tokio::time::timeout(WAIT, async {
        while let Some(event) = events.next().await {
            if let Ok(watcher::Event::InitDone) = event {
                return;
            }
        }
    });
    listed
        .await
        .unwrap_or_else(|_| panic!("the watch did not list within {WAIT:?}"));

    let mut policy = example_scaling_policy();
    let name = policy.name_any();
    policy.metadata.namespace = Some(env.namespace.clone());
    // With a status subresource, a status sent on create is dropped.
    policy.data["status"] = json!({ "desiredReplicas": 99 });
    let created = api.create(&PostParams::default(), &policy).await.unwrap();
    assert_eq!(created.data.get("status"), None);
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.data["spec"], policy.data["spec"]);

    let seen = next_apply(&mut events, &name, |_| true).await;
    assert_eq!(seen.metadata.uid, created.metadata.uid);

    // Status by merge patch through /status.
    let patched = api
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({
                "status": { "observedGeneration": 1, "currentReplicas": 2, "desiredReplicas": 4 }
            })),
        )
        .await
        .unwrap();
    let status = &patched.data["status"];
    assert_eq!(status["observedGeneration"], json!(1));
    assert_eq!(status["currentReplicas"], json!(2));
    assert_eq!(status["desiredReplicas"], json!(4));

    // And by server-side apply through /status.
    let applied = api
        .patch_status(
            &name,
            &PatchParams::apply("scalewise-tests").force(),
            &Patch::Apply(json!({
                "apiVersion": resource.api_version,
                "kind": resource.kind,
                "status": { "desiredReplicas": 5 }
            })),
        )
        .await
        .unwrap();
    assert_eq!(applied.data["status"]["desiredReplicas"], json!(5));
    assert_eq!(applied.data["status"]["currentReplicas"], json!(2));

    // The watch sees the status; status writes do not touch the spec.
    let watched = next_apply(&mut events, &name, |o| {
        o.data["status"]["desiredReplicas"] == json!(5)
    })
    .await;
    assert_eq!(watched.data["status"]["observedGeneration"], json!(1));
    assert_eq!(watched.metadata.generation, Some(1));
    assert_eq!(watched.data["spec"], policy.data["spec"]);
}

#[tokio::test]
async fn deployment_replicas_are_patched_through_the_scale_subresource() {
    let env = TestEnv::new("deployment-scale").await;
    let api: Api<Deployment> = env.api();
    let labels = [("app".to_owned(), "checkout".to_owned())].into();
    let deployment = Deployment {
        metadata: ObjectMeta {
            name: Some("checkout".to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(2),
            selector: LabelSelector {
                match_labels: Some(labels),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some([("app".to_owned(), "checkout".to_owned())].into()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "checkout".to_owned(),
                        image: Some("scalewise-test/checkout:never-pulled".to_owned()),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    };
    api.create(&PostParams::default(), &deployment)
        .await
        .unwrap();

    let scale = api.get_scale("checkout").await.unwrap();
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(2));

    let patched = api
        .patch_scale(
            "checkout",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 5 } })),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.and_then(|s| s.replicas), Some(5));

    let scale = api.get_scale("checkout").await.unwrap();
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(5));
    let deployment = api.get("checkout").await.unwrap();
    assert_eq!(deployment.spec.and_then(|s| s.replicas), Some(5));
}

fn micro_time(rfc3339: &str) -> MicroTime {
    MicroTime(rfc3339.parse::<Timestamp>().unwrap())
}

#[tokio::test]
async fn lease_is_created_and_renewed_and_a_stale_renewal_conflicts() {
    let env = TestEnv::new("lease").await;
    let api: Api<Lease> = env.api();
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("scalewise-leader".to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("scalewise-a".to_owned()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(micro_time("2025-01-01T00:00:00.000000Z")),
            renew_time: Some(micro_time("2025-01-01T00:00:00.000000Z")),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        }),
    };
    let created = api.create(&PostParams::default(), &lease).await.unwrap();

    let mut renewal = created.clone();
    if let Some(spec) = renewal.spec.as_mut() {
        spec.renew_time = Some(micro_time("2025-01-01T00:00:10.000000Z"));
    }
    let renewed = api
        .replace("scalewise-leader", &PostParams::default(), &renewal)
        .await
        .unwrap();
    let spec = renewed.spec.clone().unwrap_or_default();
    assert_eq!(spec.holder_identity.as_deref(), Some("scalewise-a"));
    assert_eq!(
        spec.renew_time,
        Some(micro_time("2025-01-01T00:00:10.000000Z"))
    );
    assert_ne!(
        renewed.metadata.resource_version,
        created.metadata.resource_version
    );

    // Another candidate renewing from the stale object loses.
    let mut takeover = created;
    if let Some(spec) = takeover.spec.as_mut() {
        spec.holder_identity = Some("scalewise-b".to_owned());
    }
    match api
        .replace("scalewise-leader", &PostParams::default(), &takeover)
        .await
    {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 409),
        other => panic!("a stale replace must conflict, got {other:?}"),
    }
    let current = api.get("scalewise-leader").await.unwrap();
    assert_eq!(
        current.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("scalewise-a")
    );
}

#[tokio::test]
async fn pushed_samples_give_the_same_exact_values_in_prometheus_and_victoriametrics() {
    let env = TestEnv::new("pushed-samples").await;
    // Whole seconds, a few minutes back: inside both servers' accepted range.
    let base = now_ms() - 300_000;
    let series = Series::new("scalewise_smoke_pushed")
        .label("test", &env.namespace)
        .sample(base + 10_000, 3.0)
        .sample(base + 20_000, 5.0)
        .sample(base + 30_000, 7.0)
        .sample(base + 40_000, 9.0);
    env.push(&[series]).await;

    let at = Some(base + 45_000);
    let selector = format!("scalewise_smoke_pushed{{test=\"{}\"}}", env.namespace);
    for api in [&env.prometheus, &env.victoriametrics] {
        let sum = support::eventually(
            &format!("{} to return the pushed samples", api.name),
            WAIT,
            || async {
                let result = api
                    .query(&format!("sum_over_time({selector}[1m])"), at)
                    .await;
                result.first().map(|s| s.value)
            },
        )
        .await;
        assert_eq!(sum, 24.0, "{}: sum_over_time", api.name);
        assert_eq!(
            api.query_value(&selector, at).await,
            9.0,
            "{}: latest",
            api.name
        );
        let max = api
            .query_value(&format!("max_over_time({selector}[1m])"), at)
            .await;
        assert_eq!(max, 9.0, "{}: max_over_time", api.name);
        let avg = api
            .query_value(&format!("avg_over_time({selector}[1m])"), at)
            .await;
        assert_eq!(avg, 6.0, "{}: avg_over_time", api.name);
    }
}

#[tokio::test]
async fn exporter_value_is_scraped_by_prometheus_and_victoriametrics() {
    let env = TestEnv::new("exporter").await;
    let exporter = Exporter::start(&env.namespace, "scalewise_smoke_scraped 7\n").await;
    env.scrape(&exporter).await;

    let query = format!("scalewise_smoke_scraped{{job=\"{}\"}}", exporter.job);
    for api in [&env.prometheus, &env.victoriametrics] {
        api.wait_for_value(&query, 7.0, WAIT).await;
    }
    exporter.set("scalewise_smoke_scraped 11\n");
    for api in [&env.prometheus, &env.victoriametrics] {
        api.wait_for_value(&query, 11.0, WAIT).await;
    }
}

#[tokio::test]
async fn exporter_registered_by_file_sd_is_scraped_by_prometheus_and_victoriametrics() {
    let env = TestEnv::new("file-sd").await;
    let exporter = Exporter::start(&env.namespace, "scalewise_smoke_file_sd 13\n").await;
    env.scrape_via_file_sd(&exporter).await;

    let query = format!("scalewise_smoke_file_sd{{exporter=\"{}\"}}", exporter.job);
    for api in [&env.prometheus, &env.victoriametrics] {
        api.wait_for_value(&query, 13.0, WAIT).await;
    }
}

/// On the default environment (Kubernetes 1.37), a Deployment's pods are created by the real
/// controllers, scheduled on the test's own KWOK node and become Ready; on the Debian-built 1.20,
/// which runs no controller-manager, none are created, as the README says. Against your cluster
/// (SCALEWISE_E2E_CLUSTER=1) it needs KWOK there, and fails saying so.
#[tokio::test]
async fn a_deployments_pods_become_ready_on_kwok_nodes() {
    let env = TestEnv::new("kwok-pods").await;
    let Some(node) = FakeNode::for_test(&env).await else {
        return;
    };
    workload::create_deployment_with(&env, "web", 2, &Pods::on(&node)).await;
    let ready = support::eventually("two Ready pods of web on the KWOK node", WAIT, || async {
        let ready: Vec<Pod> = workload::pods(&env, "web")
            .await
            .into_iter()
            .filter(workload::is_ready)
            .collect();
        (ready.len() == 2).then_some(ready)
    })
    .await;
    for pod in &ready {
        let on = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        assert!(
            pod.name_any().starts_with("web-"),
            "{} is not web's",
            pod.name_any()
        );
        assert_eq!(
            on.as_deref(),
            Some(node.name.as_str()),
            "{}",
            pod.name_any()
        );
    }
    // The Deployment controller reports them in its status soon after.
    support::eventually("web's status to count two ready replicas", WAIT, || async {
        let deployment = env.api::<Deployment>().get("web").await.ok()?;
        (deployment.status?.ready_replicas == Some(2)).then_some(())
    })
    .await;
}

/// The pod behaviours tests can ask KWOK for (tests/env/kwok/test-stages.yaml): slow to become
/// ready, never ready (also after being Ready), failing and replaced, and a rolling update that
/// replaces every pod with one of a new ReplicaSet.
#[tokio::test]
async fn pods_can_be_slow_unready_or_failing_and_a_rollout_replaces_them() {
    let env = TestEnv::new("kwok-chaos").await;
    let Some(node) = FakeNode::for_test(&env).await else {
        return;
    };
    let annotated = |key: &str, value: &str| Pods::on(&node).annotated(key, value);
    workload::create_deployment_with(&env, "slow", 1, &annotated(kwok::READY_AFTER, "8s")).await;
    workload::create_deployment_with(&env, "never", 1, &annotated(kwok::READY_AFTER, "never"))
        .await;
    workload::create_deployment_with(&env, "crash", 1, &annotated(kwok::FAIL_AFTER, "3s")).await;
    workload::create_deployment_with(&env, "steady", 2, &Pods::on(&node)).await;

    // Running but not Ready at first, then Ready once its delay is over.
    let running_unready = |pod: &Pod| {
        pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            && !workload::is_ready(pod)
    };
    support::eventually("slow's pod Running and not Ready", WAIT, || async {
        let pods = workload::pods(&env, "slow").await;
        pods.iter().any(running_unready).then_some(())
    })
    .await;
    support::eventually("slow's pod Ready after its delay", WAIT, || async {
        let pods = workload::pods(&env, "slow").await;
        pods.iter().any(workload::is_ready).then_some(())
    })
    .await;
    let never = workload::pods(&env, "never").await;
    assert!(
        never.iter().all(running_unready) && !never.is_empty(),
        "never's pods are Running and not Ready: {never:?}"
    );
    // A failing pod is Failed, and its ReplicaSet makes another.
    support::eventually(
        "a Failed pod of crash and its replacement",
        WAIT,
        || async {
            let pods = workload::pods(&env, "crash").await;
            let failed = pods
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
                .count();
            (failed >= 1 && pods.len() > failed).then_some(())
        },
    )
    .await;

    // A Ready pod annotated "never" turns unready.
    let steady = support::eventually("two Ready pods of steady", WAIT, || async {
        let pods = workload::pods(&env, "steady").await;
        (pods.iter().filter(|p| workload::is_ready(p)).count() == 2).then_some(pods)
    })
    .await;
    let first = steady[0].name_any();
    let patch = serde_json::json!({"metadata": {"annotations": {kwok::READY_AFTER: "never"}}});
    env.api::<Pod>()
        .patch(&first, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate a pod");
    support::eventually("the annotated pod of steady unready", WAIT, || async {
        let pod = env.api::<Pod>().get(&first).await.ok()?;
        (!workload::is_ready(&pod)).then_some(())
    })
    .await;

    // A rolling update: every pod replaced by one of a new ReplicaSet, Ready.
    let before: Vec<String> = workload::pods(&env, "steady")
        .await
        .iter()
        .map(|p| p.name_any())
        .collect();
    workload::rollout_restart(&env, "steady", "2026-12-01T00:00:00Z").await;
    support::eventually("steady rolled out to two new Ready pods", WAIT, || async {
        let pods = workload::pods(&env, "steady").await;
        let live: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        (live.len() == 2
            && live
                .iter()
                .all(|p| workload::is_ready(p) && !before.contains(&p.name_any())))
        .then_some(())
    })
    .await;
    let deployment = env
        .api::<Deployment>()
        .get("steady")
        .await
        .expect("get steady");
    let status = deployment.status.unwrap_or_default();
    assert_eq!(status.updated_replicas, Some(2), "{status:?}");
}
