//! Who else scales a target: another ScalingPolicy or a HorizontalPodAutoscaler.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use super::decoded::Decoded;
use crate::api::{ScalingPolicy, TargetRef};

/// The cached policies by namespace and target, kept by the policy watch's events, so that
/// finding the other owners of a target, or the policies of a Deployment that changed, costs the
/// policies of that target and not every cached policy (measured: with 10,000 policies, scanning
/// every policy on every evaluation was most of the operator's CPU).
#[derive(Default)]
pub struct PolicyIndex {
    state: Mutex<IndexState>,
}

#[derive(Default)]
struct IndexState {
    /// The policies of each target: namespace, kind and name, then by policy name its target's
    /// API group and whether it is live.
    by_target: HashMap<TargetKey, BTreeMap<String, Entry>>,
    /// The target of each indexed policy, by namespace and name.
    of_policy: HashMap<(String, String), TargetKey>,
    /// A relist in progress: the policies it listed so far, in place of the index once it is
    /// done.
    relisting: Option<Box<IndexState>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TargetKey {
    namespace: String,
    kind: String,
    name: String,
}

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    group: String,
    live: bool,
}

impl PolicyIndex {
    /// Keeps the index in step with one event of the policy watch (after its store took it).
    pub fn apply(&self, event: &watcher::Event<Decoded>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Init => state.relisting = Some(Box::default()),
            watcher::Event::InitApply(policy) => {
                if let Some(relisting) = state.relisting.as_mut() {
                    relisting.upsert(policy);
                }
            }
            watcher::Event::InitDone => {
                if let Some(relisting) = state.relisting.take() {
                    *state = *relisting;
                }
            }
            watcher::Event::Apply(policy) => state.upsert(policy),
            watcher::Event::Delete(policy) => state.remove(policy),
        }
    }

    /// The policies other than `policy` that scale its target, live or not, as (name, live),
    /// sorted by name.
    fn others(&self, policy: &ScalingPolicy) -> Vec<(String, bool)> {
        let Some(key) = TargetKey::of(policy) else {
            return Vec::new();
        };
        let group = group(&policy.spec.target_ref.api_version);
        let own = policy.metadata.name.as_deref().unwrap_or_default();
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .by_target
            .get(&key)
            .into_iter()
            .flatten()
            .filter(|(name, entry)| name.as_str() != own && entry.group == group)
            .map(|(name, entry)| (name.clone(), entry.live))
            .collect()
    }

    /// The names of the policies in `namespace` that scale the object (apiVersion, kind, name):
    /// the same API group (any, without an apiVersion), kind and name.
    pub fn targeting(
        &self,
        namespace: &str,
        api_version: Option<&str>,
        kind: &str,
        name: &str,
    ) -> Vec<String> {
        let key = TargetKey {
            namespace: namespace.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
        };
        let wanted = api_version.map(group);
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .by_target
            .get(&key)
            .into_iter()
            .flatten()
            .filter(|(_, entry)| wanted.is_none_or(|g| g == entry.group))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

impl IndexState {
    fn upsert(&mut self, decoded: &Decoded) {
        self.remove(decoded);
        let Some(policy) = decoded.policy() else {
            return;
        };
        let (Some(key), Some(name)) = (TargetKey::of(policy), policy.metadata.name.clone()) else {
            return;
        };
        let entry = Entry {
            group: group(&policy.spec.target_ref.api_version).to_owned(),
            live: live(policy),
        };
        self.of_policy
            .insert((key.namespace.clone(), name.clone()), key.clone());
        self.by_target.entry(key).or_default().insert(name, entry);
    }

    fn remove(&mut self, decoded: &Decoded) {
        let meta = decoded.meta();
        let id = (
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        );
        let Some(key) = self.of_policy.remove(&id) else {
            return;
        };
        if let Some(names) = self.by_target.get_mut(&key) {
            names.remove(&id.1);
            if names.is_empty() {
                self.by_target.remove(&key);
            }
        }
    }
}

impl TargetKey {
    fn of(policy: &ScalingPolicy) -> Option<Self> {
        let target = &policy.spec.target_ref;
        Some(Self {
            namespace: policy.metadata.namespace.clone()?,
            kind: target.kind.clone(),
            name: target.name.clone(),
        })
    }
}

/// The API group of an apiVersion (`apps` of `apps/v1`, empty for the core group's `v1`).
fn group(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

/// The other owners of `policy`'s target in its namespace, as `Kind namespace/name`, sorted: its
/// HorizontalPodAutoscalers and its other live ScalingPolicies (from `policies`, the index of the
/// cached ones). A policy in `dryRun` or `paused` only watches: it never blocks a live owner.
pub fn other_owners(
    policy: &ScalingPolicy,
    policies: &PolicyIndex,
    hpas: &Store<HorizontalPodAutoscaler>,
) -> Vec<String> {
    let namespace = policy.metadata.namespace.as_deref().unwrap_or_default();
    let target = &policy.spec.target_ref;
    let mut owners: Vec<String> = policies
        .others(policy)
        .into_iter()
        .filter(|(_, live)| *live)
        .map(|(name, _)| format!("ScalingPolicy {namespace}/{name}"))
        .collect();
    owners.extend(
        hpas.state()
            .iter()
            .filter(|hpa| hpa.metadata.namespace.as_deref() == Some(namespace))
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

/// Whether (apiVersion, kind, name) names the same object as `target`: the same group, kind and
/// name. An HPA's reference without an apiVersion matches on kind and name.
pub fn same_target(api_version: Option<&str>, kind: &str, name: &str, target: &TargetRef) -> bool {
    kind == target.kind
        && name == target.name
        && api_version.is_none_or(|v| group(v) == group(&target.api_version))
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector;

    use super::*;
    use crate::controller::fixtures::policy_object;

    const SPEC: &str = "targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\nminReplicas: 1\nmaxReplicas: 10\nmetrics: [{name: cpu, cpu: {}, target: 50}]\n";

    fn named(name: &str, extra: &str) -> ScalingPolicy {
        let mut p = policy_object(&format!("{SPEC}{extra}"));
        p.metadata.name = Some(name.into());
        p
    }

    fn store(policies: &[ScalingPolicy]) -> PolicyIndex {
        let index = PolicyIndex::default();
        for p in policies {
            index.apply(&watcher::Event::Apply(Decoded(Ok(p.clone()))));
        }
        index
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

    #[test]
    fn the_index_follows_changes_deletions_and_relists() {
        let (a, b) = (named("a", ""), named("b", ""));
        let index = store(&[a.clone(), b.clone()]);
        // b moves to another target: a is alone on web.
        let mut moved = b.clone();
        moved.spec.target_ref.name = "api".into();
        index.apply(&watcher::Event::Apply(Decoded(Ok(moved.clone()))));
        assert!(other_owners(&a, &index, &hpas()).is_empty());
        assert_eq!(
            index.targeting("shop", Some("apps/v1"), "Deployment", "api"),
            ["b"]
        );
        // Back on web, then deleted.
        index.apply(&watcher::Event::Apply(Decoded(Ok(b.clone()))));
        assert_eq!(other_owners(&a, &index, &hpas()), ["ScalingPolicy shop/b"]);
        index.apply(&watcher::Event::Delete(Decoded(Ok(b.clone()))));
        assert!(other_owners(&a, &index, &hpas()).is_empty());
        // A relist that no longer holds a: gone once the relist is done, not before.
        index.apply(&watcher::Event::Apply(Decoded(Ok(b.clone()))));
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(Decoded(Ok(b.clone()))));
        assert_eq!(other_owners(&b, &index, &hpas()), ["ScalingPolicy shop/a"]);
        index.apply(&watcher::Event::InitDone);
        assert!(other_owners(&b, &index, &hpas()).is_empty());
        assert!(
            index
                .targeting("shop", Some("apps/v1"), "Deployment", "web")
                .contains(&"b".to_owned())
        );
    }

    #[test]
    fn policies_of_an_object_match_on_group_kind_name_and_namespace() {
        let a = named("a", "");
        let mut other_group = named("b", "");
        other_group.spec.target_ref.api_version = "example.com/v1".into();
        let mut elsewhere = named("c", "");
        elsewhere.metadata.namespace = Some("other".into());
        let index = store(&[a, other_group, elsewhere]);
        // Any version of the group.
        assert_eq!(
            index.targeting("shop", Some("apps/v1beta2"), "Deployment", "web"),
            ["a"]
        );
        // An HPA's reference without an apiVersion: every group.
        assert_eq!(
            index.targeting("shop", None, "Deployment", "web"),
            ["a", "b"]
        );
        assert_eq!(
            index.targeting("other", Some("apps/v1"), "Deployment", "web"),
            ["c"]
        );
        assert!(
            index
                .targeting("shop", Some("apps/v1"), "StatefulSet", "web")
                .is_empty()
        );
    }
}
