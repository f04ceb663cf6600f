//! The operator's pod cache holds [`LeanPod`]s: a pod decoded into only what scaling needs (its
//! name, labels, controller, readiness, start and ready times, and the total CPU and memory its
//! containers request). Everything else in a pod (its spec, volumes, environment, annotations,
//! managed fields) is skipped while the JSON is read and never held.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::Deserialize;

/// A pod as the cache keeps it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "RawPod")]
pub struct LeanPod {
    /// Only name, namespace, uid, resourceVersion, labels, the controller's owner reference, and
    /// the creation and deletion timestamps.
    pub metadata: ObjectMeta,
    /// `status.phase`: Pending, Running, Succeeded, Failed or Unknown.
    pub phase: Option<String>,
    /// When the kubelet started the pod (`status.startTime`).
    pub start_time: Option<Timestamp>,
    /// The `Ready` condition, when the pod has one.
    pub ready: Option<Ready>,
    /// The CPU the pod's containers request, in cores.
    pub cpu: Request,
    /// The memory the pod's containers request, in bytes.
    pub memory: Request,
}

/// A pod's `Ready` condition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ready {
    pub status: bool,
    /// When the condition last changed.
    pub since: Option<Timestamp>,
}

/// What a pod's containers request of one resource.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// The sum over its containers.
    Total(f64),
    /// A container requests none: utilization cannot be computed for this pod (as in the HPA).
    Missing { container: String },
    /// A container's request is not a quantity (an API server never stores one, but a cache
    /// is fed by whatever answers).
    Unreadable { container: String, value: String },
}

impl LeanPod {
    /// The pod's name.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// The owner reference marked as the pod's controller.
    pub fn controller(&self) -> Option<&OwnerReference> {
        controller_of(&self.metadata)
    }

    /// Whether the pod is being deleted or has ended: it is no capacity and carries no load.
    pub fn gone(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
            || matches!(self.phase.as_deref(), Some("Succeeded" | "Failed"))
    }

    /// Whether the pod is Ready now.
    pub fn is_ready(&self) -> bool {
        self.ready.is_some_and(|r| r.status)
    }

    /// When the pod was created.
    pub fn created(&self) -> Option<Timestamp> {
        self.metadata.creation_timestamp.as_ref().map(|t| t.0)
    }

    /// The pod's labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.metadata.labels.as_ref().unwrap_or(&EMPTY)
    }
}

/// The owner reference of `meta` marked as its controller.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
}

impl kube::Resource for LeanPod {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The parts of a pod that are read; serde skips every other field without keeping it.
#[derive(Deserialize)]
struct RawPod {
    #[serde(default)]
    metadata: RawMeta,
    #[serde(default)]
    spec: RawSpec,
    #[serde(default)]
    status: RawStatus,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    owner_references: Vec<OwnerReference>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
}

#[derive(Deserialize, Default)]
struct RawSpec {
    #[serde(default)]
    containers: Vec<RawContainer>,
}

#[derive(Deserialize)]
struct RawContainer {
    #[serde(default)]
    name: String,
    #[serde(default)]
    resources: RawResources,
}

#[derive(Deserialize, Default)]
struct RawResources {
    #[serde(default)]
    requests: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawStatus {
    phase: Option<String>,
    start_time: Option<Time>,
    #[serde(default)]
    conditions: Vec<RawCondition>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCondition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    last_transition_time: Option<Time>,
}

impl From<RawPod> for LeanPod {
    fn from(raw: RawPod) -> Self {
        let m = raw.metadata;
        // Only the controller is ever followed.
        let owners: Vec<OwnerReference> = m
            .owner_references
            .into_iter()
            .filter(|o| o.controller == Some(true))
            .take(1)
            .collect();
        let ready = raw
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| Ready {
                status: c.status == "True",
                since: c.last_transition_time.as_ref().map(|t| t.0),
            });
        LeanPod {
            metadata: ObjectMeta {
                name: m.name,
                namespace: m.namespace,
                uid: m.uid,
                resource_version: m.resource_version,
                labels: m.labels,
                owner_references: (!owners.is_empty()).then_some(owners),
                creation_timestamp: m.creation_timestamp,
                deletion_timestamp: m.deletion_timestamp,
                ..ObjectMeta::default()
            },
            phase: raw.status.phase,
            start_time: raw.status.start_time.map(|t| t.0),
            ready,
            cpu: total(&raw.spec.containers, "cpu"),
            memory: total(&raw.spec.containers, "memory"),
        }
    }
}

/// The sum of one resource's requests over the containers (init containers, which do not run
/// beside them, are not counted, as in the HPA).
fn total(containers: &[RawContainer], resource: &str) -> Request {
    let mut sum = 0.0;
    for c in containers {
        let Some(text) = c.resources.requests.get(resource) else {
            return Request::Missing {
                container: c.name.clone(),
            };
        };
        match parse_quantity(text) {
            Some(v) => sum += v,
            None => {
                return Request::Unreadable {
                    container: c.name.clone(),
                    value: crate::text::shorten(text, 64),
                };
            }
        }
    }
    if containers.is_empty() {
        return Request::Missing {
            container: String::new(),
        };
    }
    Request::Total(sum)
}

/// A Kubernetes quantity (`100m`, `0.5`, `64Mi`, `1e9`) in its base unit (cores, bytes).
pub fn parse_quantity(text: &str) -> Option<f64> {
    let parsed = kube_quantity::ParsedQuantity::try_from(text).ok()?;
    parsed.to_bytes_f64().filter(|v| v.is_finite() && *v >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_keeps_only_what_scaling_needs() {
        let pod: LeanPod = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "web-7d9f-abcde", "namespace": "shop", "uid": "p1",
                "resourceVersion": "12",
                "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
                "managedFields": [{"manager": "kubelet"}],
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Other", "name": "x", "uid": "o0"},
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f", "uid": "rs1", "controller": true}
                ],
                "creationTimestamp": "2026-01-01T00:00:00Z"
            },
            "spec": {"containers": [
                {"name": "app", "image": "x", "env": [{"name": "A", "value": "1"}],
                 "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                {"name": "sidecar", "resources": {"requests": {"cpu": "0.25", "memory": "1Gi"}}}
            ], "volumes": [{"name": "v"}]},
            "status": {"phase": "Running", "startTime": "2026-01-01T00:00:05Z",
                "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:30Z"}
                ]}
        }))
        .unwrap();
        assert_eq!(pod.name(), "web-7d9f-abcde");
        assert_eq!(pod.controller().unwrap().uid, "rs1");
        assert_eq!(pod.metadata.owner_references.as_ref().unwrap().len(), 1);
        assert!(pod.metadata.annotations.is_none());
        assert!(pod.metadata.managed_fields.is_none());
        assert!(pod.is_ready());
        assert_eq!(
            pod.ready.unwrap().since,
            Some("2026-01-01T00:00:30Z".parse().unwrap())
        );
        assert_eq!(pod.cpu, Request::Total(0.5));
        assert_eq!(pod.memory, Request::Total(64.0 * 1048576.0 + 1073741824.0));
    }

    #[test]
    fn a_container_without_a_request_is_named() {
        let pod: LeanPod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "app", "resources": {"requests": {"cpu": "1"}}},
                {"name": "proxy"}
            ]}
        }))
        .unwrap();
        assert_eq!(
            pod.cpu,
            Request::Missing {
                container: "proxy".into()
            }
        );
        assert!(!pod.is_ready());
        assert!(!pod.gone());
    }

    #[test]
    fn quantities_read_in_base_units() {
        assert_eq!(parse_quantity("100m"), Some(0.1));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("1Ki"), Some(1024.0));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("lots"), None);
    }
}
