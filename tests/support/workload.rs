//! Deployments for the end-to-end tests: created with a replica count, read through `/scale`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};

use super::TestEnv;
use super::kwok::FakeNode;

/// The name of the pods' one container.
pub const CONTAINER: &str = "app";
/// What that container requests: millicores of CPU and MiB of memory.
pub const CPU_REQUEST_MILLICORES: u32 = 100;
pub const MEMORY_REQUEST_MIB: u32 = 64;

/// Creates Deployment `name` with `replicas` in the test's namespace, its pods requesting 100m CPU
/// and 64Mi memory. Its pod only sleeps: on the default test environment KWOK runs it on a fake
/// node with no container, a real cluster runs it, and the Debian-built 1.20 runs no pods at all.
pub async fn create_deployment(env: &TestEnv, name: &str, replicas: i32) {
    create_deployment_with(env, name, replicas, &Pods::default()).await;
}

/// Where a Deployment's pods run and how they behave there.
#[derive(Default)]
pub struct Pods<'a> {
    /// The test's own fake node, the only one they may run on.
    pub node: Option<&'a FakeNode>,
    /// Annotations of the pod template, e.g. [`kwok::READY_AFTER`](super::kwok::READY_AFTER).
    pub annotations: BTreeMap<String, String>,
    /// The pods' labels, which the workload's selector matches too; default `app=<name>`.
    pub labels: Option<BTreeMap<String, String>>,
}

impl<'a> Pods<'a> {
    /// Pods on `node`, with no annotations.
    pub fn on(node: &'a FakeNode) -> Pods<'a> {
        Pods {
            node: Some(node),
            annotations: BTreeMap::new(),
            labels: None,
        }
    }

    /// These pods with annotation `key: value` too.
    pub fn annotated(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_owned(), value.to_owned());
        self
    }

    /// These pods labelled `labels` (and selected by them) instead of `app=<name>`.
    pub fn labelled(mut self, labels: &[(&str, &str)]) -> Self {
        self.labels = Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        self
    }

    /// The labels of workload `name`'s pods.
    fn labels_for(&self, name: &str) -> BTreeMap<String, String> {
        self.labels
            .clone()
            .unwrap_or_else(|| BTreeMap::from([("app".to_owned(), name.to_owned())]))
    }

    /// A pod template on the node, with the labels, annotations and the one container requesting
    /// [`CPU_REQUEST_MILLICORES`] and [`MEMORY_REQUEST_MIB`].
    pub fn template(&self, name: &str) -> PodTemplateSpec {
        let (node_selector, tolerations) = match self.node {
            Some(node) => {
                let (selector, toleration) = node.pins();
                (Some(selector), Some(vec![toleration]))
            }
            None => (None, None),
        };
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(self.labels_for(name)),
                annotations: (!self.annotations.is_empty()).then(|| self.annotations.clone()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                node_selector,
                tolerations,
                containers: vec![Container {
                    name: CONTAINER.into(),
                    image: Some("busybox:1.36".into()),
                    command: Some(vec!["sleep".into(), "3600".into()]),
                    // As real workloads declare them: what CPU and memory utilisation are
                    // measured against, and what the scheduler places on the fake nodes.
                    resources: Some(ResourceRequirements {
                        requests: Some(BTreeMap::from([
                            (
                                "cpu".to_owned(),
                                Quantity(format!("{CPU_REQUEST_MILLICORES}m")),
                            ),
                            (
                                "memory".to_owned(),
                                Quantity(format!("{MEMORY_REQUEST_MIB}Mi")),
                            ),
                        ])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }
}

/// Creates StatefulSet `name` with `replicas` pods (started in parallel), as
/// [`create_deployment_with`] does a Deployment's.
pub async fn create_statefulset_with(env: &TestEnv, name: &str, replicas: i32, pods: &Pods<'_>) {
    let statefulset = StatefulSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(name.into()),
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(pods.labels_for(name)),
                ..Default::default()
            },
            template: pods.template(name),
            ..Default::default()
        }),
        ..Default::default()
    };
    env.api::<StatefulSet>()
        .create(&PostParams::default(), &statefulset)
        .await
        .unwrap_or_else(|e| panic!("cannot create StatefulSet {name}: {e}"));
}

/// [`create_deployment`], with the pods' node and annotations.
pub async fn create_deployment_with(env: &TestEnv, name: &str, replicas: i32, pods: &Pods<'_>) {
    let deployment = Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(pods.labels_for(name)),
                ..Default::default()
            },
            template: pods.template(name),
            ..Default::default()
        }),
        ..Default::default()
    };
    env.api::<Deployment>()
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap_or_else(|e| panic!("cannot create Deployment {name}: {e}"));
}

/// Starts a rolling update of Deployment `name`, as `kubectl rollout restart` does: a new pod
/// template annotation, so the Deployment controller makes a new ReplicaSet and replaces the pods
/// (with the default strategy, at most 25% more and 25% fewer than desired at a time).
pub async fn rollout_restart(env: &TestEnv, name: &str, at: &str) {
    let patch = serde_json::json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": at,
    }}}}});
    env.api::<Deployment>()
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("cannot restart Deployment {name}: {e}"));
}

/// The pods of Deployment `name` (label `app=<name>`) in the test's namespace.
pub async fn pods(env: &TestEnv, name: &str) -> Vec<Pod> {
    pods_in(&env.client, &env.namespace, name).await
}

/// The pods of Deployment `name` in `namespace` (none when they cannot be listed: the caller
/// polls).
pub async fn pods_in(client: &Client, namespace: &str, name: &str) -> Vec<Pod> {
    pods_selected(client, namespace, &format!("app={name}")).await
}

/// The pods `selector` (a label selector) matches in `namespace` (none when they cannot be
/// listed: the caller polls).
pub async fn pods_selected(client: &Client, namespace: &str, selector: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(selector))
        .await
        .map(|list| list.items)
        .unwrap_or_default()
}

/// Whether `pod`'s Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The replicas of Deployment `name`, read through `/scale` as the operator reads them.
pub async fn replicas(env: &TestEnv, name: &str) -> i32 {
    let scale = env
        .api::<Deployment>()
        .get_scale(name)
        .await
        .unwrap_or_else(|e| panic!("cannot read the /scale of Deployment {name}: {e}"));
    scale.spec.and_then(|s| s.replicas).unwrap_or_default()
}

/// A port of 127.0.0.1 nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("no local address: {e}"))
        .port()
}
