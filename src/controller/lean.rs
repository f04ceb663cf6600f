//! What the controller's watch caches keep of each object: only what an evaluation reads. Each
//! function runs on every object a watch delivers, before it is stored (`WatchStreamExt::modify`).
//!
//! Every cached object loses its managed fields and annotations (kubectl's
//! `last-applied-configuration` alone is a copy of the whole manifest): no evaluation reads
//! either. The pod cache keeps only what [`crate::pods::LeanPod`] decodes.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use kube::api::ObjectMeta;
use kube::core::PartialObjectMeta;

use super::decoded::Decoded;

/// A policy keeps its spec and status; an undecodable one its error and status.
pub fn policy(p: &mut Decoded) {
    match &mut p.0 {
        Ok(policy) => meta(&mut policy.metadata),
        Err(bad) => meta(&mut bad.metadata),
    }
}

/// A Deployment keeps its spec without the pod template, and its status (the rollout).
pub fn deployment(d: &mut Deployment) {
    meta(&mut d.metadata);
    if let Some(spec) = &mut d.spec {
        spec.template = Default::default();
    }
}

/// A StatefulSet keeps its spec without the pod and volume claim templates, and its status.
pub fn statefulset(s: &mut StatefulSet) {
    meta(&mut s.metadata);
    if let Some(spec) = &mut s.spec {
        spec.template = Default::default();
        spec.volume_claim_templates = None;
    }
}

/// A ReplicaSet's metadata keeps its owners (labels too go: the pods' owners are matched by uid).
pub fn replicaset(rs: &mut PartialObjectMeta<ReplicaSet>) {
    meta(&mut rs.metadata);
    rs.metadata.labels = None;
}

/// A HorizontalPodAutoscaler keeps its spec (its scale target): its status is never read, and
/// is what changes at every one of its syncs.
pub fn hpa(hpa: &mut HorizontalPodAutoscaler) {
    meta(&mut hpa.metadata);
    hpa.status = None;
}

fn meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    meta.annotations = None;
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::autoscaling::v1::{
        CrossVersionObjectReference, HorizontalPodAutoscalerSpec, HorizontalPodAutoscalerStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    use serde_json::json;

    use super::*;

    /// Metadata as a cluster stores it for an object applied with kubectl.
    fn heavy_meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("42".into()),
            generation: Some(3),
            labels: Some([("app".to_owned(), name.to_owned())].into()),
            annotations: Some(
                [(
                    "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
                    "{\"apiVersion\":\"...\"}".repeat(50),
                )]
                .into(),
            ),
            managed_fields: Some(vec![ManagedFieldsEntry {
                manager: Some("kubectl".into()),
                operation: Some("Apply".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn a_cached_policy_keeps_what_an_evaluation_reads_and_nothing_else() {
        let value = json!({
            "apiVersion": "scalewise.dev/v1alpha1",
            "kind": "ScalingPolicy",
            "metadata": heavy_meta("web"),
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1,
                "maxReplicas": 5,
                "metrics": [{"name": "cpu", "cpu": {}, "target": 50}],
            },
            "status": {"observedGeneration": 3, "consecutiveFailures": 0},
        });
        let mut decoded: Decoded = serde_json::from_value(value).unwrap();
        let before = decoded.policy().unwrap().clone();
        policy(&mut decoded);
        let after = decoded.policy().unwrap();
        assert_eq!(after.metadata.annotations, None);
        assert_eq!(after.metadata.managed_fields, None);
        // Identity, version, generation and labels stay: writes and the key need them.
        assert_eq!(after.metadata.uid, before.metadata.uid);
        assert_eq!(
            after.metadata.resource_version,
            before.metadata.resource_version
        );
        assert_eq!(after.metadata.generation, Some(3));
        assert_eq!(after.metadata.labels, before.metadata.labels);
        assert_eq!(after.spec, before.spec);
        assert_eq!(after.status, before.status);
    }

    #[test]
    fn a_cached_hpa_keeps_its_scale_target_only() {
        let mut h = HorizontalPodAutoscaler {
            metadata: heavy_meta("web"),
            spec: Some(HorizontalPodAutoscalerSpec {
                scale_target_ref: CrossVersionObjectReference {
                    api_version: Some("apps/v1".into()),
                    kind: "Deployment".into(),
                    name: "web".into(),
                },
                max_replicas: 5,
                ..Default::default()
            }),
            status: Some(HorizontalPodAutoscalerStatus {
                current_replicas: 3,
                desired_replicas: 4,
                ..Default::default()
            }),
        };
        let spec = h.spec.clone();
        hpa(&mut h);
        assert_eq!(h.spec, spec);
        assert_eq!(h.status, None);
        assert_eq!(h.metadata.annotations, None);
        assert_eq!(h.metadata.managed_fields, None);
        assert_eq!(h.metadata.name.as_deref(), Some("web"));
    }
}
