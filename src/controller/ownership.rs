//! Who else scales a target: another ScalingPolicy or a HorizontalPodAutoscaler.

use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use kube::ResourceExt;
use kube::runtime::reflector::Store;

use super::decoded::Decoded;
use crate::api::ScalingPolicy;

/// The other owners of `policy`'s target in its namespace, as `Kind namespace/name`, sorted.
pub fn other_owners(
    policy: &ScalingPolicy,
    policies: &Store<Decoded>,
    hpas: &Store<HorizontalPodAutoscaler>,
) -> Vec<String> {
    let namespace = policy.namespace().unwrap_or_default();
    let target = &policy.spec.target_ref.name;
    let state = policies.state();
    let mut owners: Vec<String> = state
        .iter()
        .filter_map(|other| other.policy())
        .filter(|other| other.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|other| other.name_any() != policy.name_any())
        .filter(|other| targets(other, &namespace, target))
        .map(|other| format!("ScalingPolicy {namespace}/{}", other.name_any()))
        .collect();
    owners.extend(
        hpas.state()
            .iter()
            .filter(|hpa| hpa.namespace().as_deref() == Some(namespace.as_str()))
            .filter(|hpa| {
                hpa.spec.as_ref().is_some_and(|s| {
                    s.scale_target_ref.kind == "Deployment" && &s.scale_target_ref.name == target
                })
            })
            .map(|hpa| format!("HorizontalPodAutoscaler {namespace}/{}", hpa.name_any())),
    );
    owners.sort();
    owners
}

/// Whether `policy` scales Deployment `namespace/name`.
pub fn targets(policy: &ScalingPolicy, namespace: &str, name: &str) -> bool {
    policy.namespace().as_deref() == Some(namespace)
        && policy.spec.target_ref.kind == "Deployment"
        && policy.spec.target_ref.name == name
}
