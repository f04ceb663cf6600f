//! A fake node of the test's own, run by KWOK: its pods are scheduled, become Running and Ready
//! with no container runtime, and can be made slow, unready or failing by the annotations of
//! `tests/env/kwok/test-stages.yaml`. The default test environment runs KWOK; against your cluster
//! (SCALEWISE_E2E_CLUSTER=1) these tests need KWOK there, managing nodes annotated
//! `kwok.x-k8s.io/node=fake`, and fail saying so when the node never becomes Ready.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Config};

use super::TestEnv;

/// The label and taint key that keep other pods off a test's node, and its pods on it.
pub const NODE_KEY: &str = "scalewise.dev/test-node";
/// Pod annotation: Running at once, Ready only after this long (a Go duration), or `never`.
pub const READY_AFTER: &str = "scalewise.dev/kwok-ready-after";
/// Pod annotation: Failed this long (a Go duration) after it started.
pub const FAIL_AFTER: &str = "scalewise.dev/kwok-fail-after";

const READY_WITHIN: Duration = Duration::from_secs(30);

/// True on the Debian-built 1.20 test environment, which runs no controller-manager and no KWOK,
/// hence no pods: the tests that need pods say so and skip their pod assertions there.
pub async fn no_pods_here(env: &TestEnv) -> bool {
    if super::e2e_cluster() {
        return false;
    }
    let version = env
        .client
        .apiserver_version()
        .await
        .unwrap_or_else(|e| panic!("cannot read the API server's /version: {e}"));
    let old = version.minor.trim_end_matches('+') == "20";
    if old {
        eprintln!(
            "the Debian-built Kubernetes 1.20 test environment runs no pods: skipping the pod part"
        );
    }
    old
}

/// A node for one test, deleted (best effort) when dropped.
pub struct FakeNode {
    pub name: String,
    kube_config: Config,
}

impl FakeNode {
    /// The test's own fake node, or None on the Debian-built 1.20 environment, which runs no pods
    /// (see [`no_pods_here`]): `let Some(node) = FakeNode::for_test(&env).await else { return };`
    pub async fn for_test(env: &TestEnv) -> Option<FakeNode> {
        if no_pods_here(env).await {
            return None;
        }
        Some(FakeNode::create(env).await)
    }

    /// Creates a fake node named after the test's namespace, tainted so that only pods that
    /// tolerate it (see [`FakeNode::pins`]) run there, and waits until KWOK reports it Ready.
    pub async fn create(env: &TestEnv) -> FakeNode {
        let name = env.namespace.clone();
        let capacity = BTreeMap::from([
            ("cpu".to_owned(), Quantity("32".into())),
            ("memory".to_owned(), Quantity("256Gi".into())),
            ("pods".to_owned(), Quantity("110".into())),
        ]);
        let node = Node {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                annotations: Some(BTreeMap::from([(
                    "kwok.x-k8s.io/node".to_owned(),
                    "fake".to_owned(),
                )])),
                labels: Some(BTreeMap::from([
                    (NODE_KEY.to_owned(), name.clone()),
                    ("kubernetes.io/hostname".to_owned(), name.clone()),
                    ("type".to_owned(), "kwok".to_owned()),
                ])),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                taints: Some(vec![Taint {
                    key: NODE_KEY.to_owned(),
                    value: Some(name.clone()),
                    effect: "NoSchedule".to_owned(),
                    ..Taint::default()
                }]),
                ..NodeSpec::default()
            }),
            status: Some(NodeStatus {
                allocatable: Some(capacity.clone()),
                capacity: Some(capacity),
                ..NodeStatus::default()
            }),
        };
        let nodes: Api<Node> = Api::all(env.client.clone());
        nodes
            .create(&PostParams::default(), &node)
            .await
            .unwrap_or_else(|e| panic!("cannot create node {name}: {e}"));
        let fake = FakeNode {
            name: name.clone(),
            kube_config: env.kube_config.clone(),
        };
        let waiting = format!(
            "node {name} (annotation kwok.x-k8s.io/node=fake) to be Ready: this test needs KWOK \
             managing fake nodes, as the default test environment runs it; on your own cluster \
             (SCALEWISE_E2E_CLUSTER=1) install KWOK there with \
             --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake"
        );
        super::eventually(&waiting, READY_WITHIN, || async {
            let conditions = nodes.get(&name).await.ok()?.status?.conditions?;
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(())
        })
        .await;
        fake
    }

    /// The node selector and toleration that put a pod on this node and nowhere else.
    pub fn pins(&self) -> (BTreeMap<String, String>, Toleration) {
        (
            BTreeMap::from([(NODE_KEY.to_owned(), self.name.clone())]),
            Toleration {
                key: Some(NODE_KEY.to_owned()),
                operator: Some("Equal".to_owned()),
                value: Some(self.name.clone()),
                effect: Some("NoSchedule".to_owned()),
                ..Toleration::default()
            },
        )
    }
}

impl Drop for FakeNode {
    /// Deletes the node, like [`TestEnv`]'s namespace; the pods on it go with their namespace.
    fn drop(&mut self) {
        super::delete_when_dropped::<Node>(&self.kube_config, &self.name);
    }
}
