//! The target as one reconcile read it, and how to reach the `/scale` of its kind.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use kube::Client;
use kube::core::{ApiResource, GroupVersionKind};

use crate::api::TargetKind;

/// The target's /scale as read: its replicas, its uid and the resourceVersion they were read at,
/// and the API it was read through (which a scale writes to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetRead {
    pub replicas: i32,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub resource: ApiResource,
}

impl TargetRead {
    /// A Deployment's /scale as read (tests).
    pub fn deployment(replicas: i32, uid: Option<&str>, resource_version: Option<&str>) -> Self {
        Self {
            replicas,
            uid: uid.map(str::to_owned),
            resource_version: resource_version.map(str::to_owned),
            resource: ApiResource::erase::<Deployment>(&()),
        }
    }
}

/// Why a target kind cannot be scaled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KindError {
    /// The API server serves no such kind.
    #[error(
        "the API server serves no kind {kind} in {api_version}: check spec.targetRef.apiVersion and kind"
    )]
    Unknown { kind: String, api_version: String },
    /// The kind has no `/scale` subresource.
    #[error(
        "{kind} has no /scale subresource: scalewise scales only kinds that have one (Deployment, StatefulSet, ReplicaSet, an Argo Rollout, a custom resource declaring subresources.scale)"
    )]
    NoScale { kind: String },
    /// The kind is cluster-scoped: a policy scales a workload in its own namespace.
    #[error("{kind} is cluster-scoped: a policy scales a workload in its own namespace")]
    ClusterScoped { kind: String },
    /// Discovery failed (the API server is unreachable or refused): retried with backoff.
    #[error("cannot discover {kind}: {message}")]
    Discovery { kind: String, message: String },
}

/// How long a discovered kind is remembered; a kind found missing is asked again sooner.
const FOUND_FOR: Duration = Duration::from_secs(300);
const MISSING_FOR: Duration = Duration::from_secs(30);

/// The API of each target kind, discovered once and remembered. Deployments, StatefulSets and
/// ReplicaSets are known without asking.
#[derive(Default)]
pub struct Kinds {
    found: Mutex<HashMap<TargetKind, Discovered>>,
}

/// When a kind was discovered, and what.
type Discovered = (Instant, Result<ApiResource, KindError>);

impl Kinds {
    /// The API of `kind`'s objects, whose `/scale` it has.
    pub async fn resource(
        &self,
        client: &Client,
        kind: &TargetKind,
        timeout: Duration,
    ) -> Result<ApiResource, KindError> {
        if let Some(known) = builtin(kind) {
            return Ok(known);
        }
        if let Some(remembered) = self.remembered(kind) {
            return remembered;
        }
        let gvk = GroupVersionKind::gvk(kind.group(), kind.version(), &kind.kind);
        let asked = tokio::time::timeout(timeout, kube::discovery::pinned_kind(client, &gvk)).await;
        let result = match asked {
            Err(_) => Err(KindError::Discovery {
                kind: kind.to_string(),
                message: format!("no answer within {}s", timeout.as_secs()),
            }),
            Ok(Err(e)) if is_missing(&e) => Err(KindError::Unknown {
                kind: kind.kind.clone(),
                api_version: kind.api_version.clone(),
            }),
            Ok(Err(e)) => Err(KindError::Discovery {
                kind: kind.to_string(),
                message: e.to_string(),
            }),
            Ok(Ok((resource, caps))) => {
                if caps.scope != kube::discovery::Scope::Namespaced {
                    Err(KindError::ClusterScoped {
                        kind: kind.to_string(),
                    })
                } else if caps.subresources.iter().any(|(s, _)| s.plural == "scale") {
                    Ok(resource)
                } else {
                    Err(KindError::NoScale {
                        kind: kind.to_string(),
                    })
                }
            }
        };
        // A failed discovery is not remembered: it is retried with the reconcile's backoff.
        if !matches!(result, Err(KindError::Discovery { .. })) {
            let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
            found.insert(kind.clone(), (Instant::now(), result.clone()));
        }
        result
    }

    fn remembered(&self, kind: &TargetKind) -> Option<Result<ApiResource, KindError>> {
        let found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        let (at, result) = found.get(kind)?;
        let fresh_for = if result.is_ok() {
            FOUND_FOR
        } else {
            MISSING_FOR
        };
        (at.elapsed() < fresh_for).then(|| result.clone())
    }
}

/// The kinds with a `/scale` subresource every API server serves.
fn builtin(kind: &TargetKind) -> Option<ApiResource> {
    if kind.api_version != "apps/v1" {
        return None;
    }
    match kind.kind.as_str() {
        "Deployment" => Some(ApiResource::erase::<Deployment>(&())),
        "StatefulSet" => Some(ApiResource::erase::<StatefulSet>(&())),
        "ReplicaSet" => Some(ApiResource::erase::<ReplicaSet>(&())),
        _ => None,
    }
}

/// Whether discovery found no such group, version or kind.
fn is_missing(e: &kube::Error) -> bool {
    match e {
        kube::Error::Discovery(_) => true,
        kube::Error::Api(status) => status.code == 404,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_and_statefulsets_need_no_discovery() {
        let kind = TargetKind {
            api_version: "apps/v1".into(),
            kind: "StatefulSet".into(),
        };
        assert_eq!(builtin(&kind).unwrap().plural, "statefulsets");
        assert!(builtin(&TargetKind::deployment()).is_some());
        let rollout = TargetKind {
            api_version: "argoproj.io/v1alpha1".into(),
            kind: "Rollout".into(),
        };
        assert!(builtin(&rollout).is_none());
    }
}
