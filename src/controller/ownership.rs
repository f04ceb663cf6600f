//! Who else scales a target: another ScalingPolicy or a HorizontalPodAutoscaler.

use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use kube::ResourceExt;
use kube::runtime::reflector::Store;

use super::decoded::Decoded;
use crate::api::{ScalingPolicy, TargetRef};

/// The other owners of `policy`'s target in its namespace, as `Kind namespace/name`, sorted: its
/// HorizontalPodAutoscalers and its other live ScalingPolicies. A policy in `dryRun` or `paused`
/// only watches: it never blocks a live owner.
pub fn other_owners(
    policy: &ScalingPolicy,
    policies: &Store<Decoded>,
    hpas: &Store<HorizontalPodAutoscaler>,
) -> Vec<String> {
    let namespace = policy.namespace().unwrap_or_default();
    let target = &policy.spec.target_ref;
    let state = policies.state();
    let mut owners: Vec<String> = state
        .iter()
        .filter_map(|other| other.policy())
        .filter(|other| other.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|other| other.name_any() != policy.name_any())
        .filter(|other| live(other))
        .filter(|other| {
            targets(
                other,
                &namespace,
                Some(&target.api_version),
                &target.kind,
                &target.name,
            )
        })
        .map(|other| format!("ScalingPolicy {namespace}/{}", other.name_any()))
        .collect();
    owners.extend(
        hpas.state()
            .iter()
            .filter(|hpa| hpa.namespace().as_deref() == Some(namespace.as_str()))
            .filter(|hpa| {
                hpa.spec.as_ref().is_some_and(|s| {
                    let r = &s.scale_target_ref;
                    same_target(r.api_version.as_deref(), &r.kind, &r.name, target)
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

/// Whether `policy` scales the object (apiVersion, kind, name) in `namespace`: the same API
/// group, kind and name, any version.
pub fn targets(
    policy: &ScalingPolicy,
    namespace: &str,
    api_version: Option<&str>,
    kind: &str,
    name: &str,
) -> bool {
    policy.namespace().as_deref() == Some(namespace)
        && same_target(api_version, kind, name, &policy.spec.target_ref)
}

/// Whether (apiVersion, kind, name) names the same object as `target`: the same group, kind and
/// name. An HPA's reference without an apiVersion matches on kind and name.
pub fn same_target(api_version: Option<&str>, kind: &str, name: &str, target: &TargetRef) -> bool {
    let group = |v: &str| v.split_once('/').map_or("", |(g, _)| g).to_owned();
    kind == target.kind
        && name == target.name
        && api_version.is_none_or(|v| group(v) == group(&target.api_version))
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
    fn owners_of_a_statefulset_or_a_custom_resource_are_found_too() {
        let sts = |name: &str| {
            let mut p = policy_object(
                "targetRef: {apiVersion: apps/v1, kind: StatefulSet, name: db}\nminReplicas: 1\nmaxReplicas: 10\nmetrics: [{name: cpu, cpu: {}, target: 50}]\n",
            );
            p.metadata.name = Some(name.into());
            p
        };
        let (a, b) = (sts("a"), sts("b"));
        // A Deployment of the same name is another object.
        let deployment_db = {
            let mut p = named("c", "");
            p.spec.target_ref.name = "db".into();
            p
        };
        let policies = store(&[a.clone(), b.clone(), deployment_db]);
        assert_eq!(
            other_owners(&a, &policies, &hpas()),
            ["ScalingPolicy shop/b"]
        );

        let (reader, mut writer) = reflector::store();
        let hpa: HorizontalPodAutoscaler = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db-hpa", "namespace": "shop"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db"}, "maxReplicas": 3}
        }))
        .unwrap();
        writer.apply_watcher_event(&watcher::Event::Apply(hpa));
        assert_eq!(
            other_owners(&a, &policies, &reader),
            [
                "HorizontalPodAutoscaler shop/db-hpa",
                "ScalingPolicy shop/b"
            ]
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
