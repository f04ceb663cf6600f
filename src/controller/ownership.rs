//! Who else scales a target: another ScalingPolicy or a HorizontalPodAutoscaler.

use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use kube::ResourceExt;
use kube::runtime::reflector::Store;

use super::decoded::Decoded;
use crate::api::ScalingPolicy;

/// The other owners of `policy`'s target in its namespace, as `Kind namespace/name`, sorted: its
/// HorizontalPodAutoscalers and its other live ScalingPolicies. A policy in `dryRun` or `paused`
/// only watches: it never blocks a live owner.
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
        .filter(|other| live(other))
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

/// Whether `policy` writes its target's replicas (it is neither in `dryRun` nor `paused`).
pub fn live(policy: &ScalingPolicy) -> bool {
    !policy.spec.dry_run.unwrap_or(false) && !policy.spec.paused.unwrap_or(false)
}

/// Whether `policy` scales Deployment `namespace/name`.
pub fn targets(policy: &ScalingPolicy, namespace: &str, name: &str) -> bool {
    policy.namespace().as_deref() == Some(namespace)
        && policy.spec.target_ref.kind == "Deployment"
        && policy.spec.target_ref.name == name
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector::{self, Store};
    use kube::runtime::watcher;

    use super::*;
    use crate::controller::fixtures::policy_object;

    const SPEC: &str = "targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\nminReplicas: 1\nmaxReplicas: 10\nmetrics: [{name: cpu, cpu: {}, target: 50}]\n";

    fn named(name: &str, extra: &str) -> ScalingPolicy {
        let mut p = policy_object(&format!("{SPEC}{extra}"));
        p.metadata.name = Some(name.into());
        p
    }

    fn store(policies: &[ScalingPolicy]) -> Store<Decoded> {
        let (reader, mut writer) = reflector::store();
        for p in policies {
            writer.apply_watcher_event(&watcher::Event::Apply(Decoded(Ok(p.clone()))));
        }
        reader
    }

    fn hpas() -> Store<HorizontalPodAutoscaler> {
        reflector::store().0
    }

    #[test]
    fn two_live_policies_on_one_target_block_each_other() {
        let (a, b) = (named("a", ""), named("b", ""));
        let policies = store(&[a.clone(), b.clone()]);
        assert_eq!(
            other_owners(&a, &policies, &hpas()),
            ["ScalingPolicy shop/b"]
        );
        assert_eq!(
            other_owners(&b, &policies, &hpas()),
            ["ScalingPolicy shop/a"]
        );
    }

    #[test]
    fn a_dry_run_or_paused_policy_never_blocks_a_live_owner() {
        let live_one = named("live", "");
        let shadow = named("shadow", "dryRun: true\n");
        let stopped = named("stopped", "paused: true\n");
        let policies = store(&[live_one.clone(), shadow.clone(), stopped.clone()]);
        assert!(other_owners(&live_one, &policies, &hpas()).is_empty());
        // The shadow still sees who it shadows.
        assert_eq!(
            other_owners(&shadow, &policies, &hpas()),
            ["ScalingPolicy shop/live"]
        );
    }
}
