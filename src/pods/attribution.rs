//! Which pods are the target's: those its `/scale` `status.selector` matches **and** that it
//! owns, through the chain of controllers (a Deployment owns ReplicaSets that own pods; a
//! StatefulSet or a ReplicaSet owns its pods; an Argo Rollout owns ReplicaSets). A selector
//! alone also matches another workload's pods that carry the same labels (the HPA's
//! overlapping-selector problem, kubernetes/kubernetes#124307, which KEP-5325 fixes with owner
//! references, as here).

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::lean::LeanPod;
use super::selector::Selector;

/// How many controllers are followed up from a pod (pod -> ReplicaSet -> Deployment is two).
pub const MAX_OWNER_CHAIN: usize = 4;

/// The pods of one target.
#[derive(Clone, Debug, Default)]
pub struct TargetPods {
    /// The pods the selector matches and the target owns, by name.
    pub pods: Vec<Arc<LeanPod>>,
    /// Pods the selector matches that belong to another workload (left out).
    pub other_workloads: usize,
}

/// The pods among `candidates` (the target's namespace) that `selector` matches and that the
/// object with uid `target_uid` controls. `parent` gives the controller of an intermediate
/// owner (a ReplicaSet), from the operator's cache; an owner it does not know ends the chain.
pub fn target_pods(
    candidates: impl IntoIterator<Item = Arc<LeanPod>>,
    target_uid: &str,
    selector: &Selector,
    parent: &dyn Fn(&OwnerReference) -> Option<OwnerReference>,
) -> TargetPods {
    let mut found = TargetPods::default();
    for pod in candidates {
        if !selector.matches(pod.labels()) {
            continue;
        }
        if owned_by(&pod, target_uid, parent) {
            found.pods.push(pod);
        } else {
            found.other_workloads = found.other_workloads.saturating_add(1);
        }
    }
    found.pods.sort_by(|a, b| a.name().cmp(b.name()));
    found
}

/// The controller of `owner` when it is a ReplicaSet: `find` gives the metadata of the
/// ReplicaSet it names (by name or uid), which must have the owner's uid. The one intermediate
/// kind the chain follows, for the controller's cache and `scalewise query` alike.
pub fn replicaset_parent<'a>(
    owner: &OwnerReference,
    find: impl FnOnce(&OwnerReference) -> Option<&'a ObjectMeta>,
) -> Option<OwnerReference> {
    if owner.kind != "ReplicaSet" {
        return None;
    }
    let rs = find(owner)?;
    if rs.uid.as_deref() != Some(owner.uid.as_str()) {
        return None;
    }
    super::lean::controller_of(rs).cloned()
}

/// Whether the chain of controllers above `pod` reaches `target_uid`.
fn owned_by(
    pod: &LeanPod,
    target_uid: &str,
    parent: &dyn Fn(&OwnerReference) -> Option<OwnerReference>,
) -> bool {
    let mut owner = pod.controller().cloned();
    for _ in 0..MAX_OWNER_CHAIN {
        let Some(o) = owner else {
            return false;
        };
        if o.uid == target_uid {
            return true;
        }
        owner = parent(&o);
    }
    false
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    pub(crate) fn owner(kind: &str, name: &str, uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: None,
        }
    }

    fn pod(name: &str, app: &str, owner: OwnerReference) -> Arc<LeanPod> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "labels": {"app": app}, "ownerReferences": [owner]}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn the_prefix_trap_a_statefulset_named_like_the_deployment_is_not_its_pods() {
        // Deployment checkout (uid d1) -> ReplicaSet checkout-5f7 (rs1) -> two pods; StatefulSet
        // checkout-db (s1) -> checkout-db-0, whose name the old default pattern
        // `checkout-[a-z0-9]+-[a-z0-9]+` matched.
        let pods = [
            pod(
                "checkout-5f7-a1b2c",
                "checkout",
                owner("ReplicaSet", "checkout-5f7", "rs1"),
            ),
            pod(
                "checkout-5f7-d3e4f",
                "checkout",
                owner("ReplicaSet", "checkout-5f7", "rs1"),
            ),
            pod(
                "checkout-db-0",
                "checkout-db",
                owner("StatefulSet", "checkout-db", "s1"),
            ),
        ];
        let replicasets: BTreeMap<&str, OwnerReference> =
            [("rs1", owner("Deployment", "checkout", "d1"))].into();
        let parent = |o: &OwnerReference| replicasets.get(o.uid.as_str()).cloned();
        let all = Selector::parse("").unwrap();
        let found = target_pods(pods.clone(), "d1", &all, &parent);
        let names: Vec<&str> = found.pods.iter().map(|p| p.name()).collect();
        assert_eq!(names, ["checkout-5f7-a1b2c", "checkout-5f7-d3e4f"]);
        assert_eq!(found.other_workloads, 1);
        let db = target_pods(pods.clone(), "s1", &all, &parent);
        assert_eq!(db.pods.len(), 1);
    }

    #[test]
    fn pods_with_the_same_labels_from_another_workload_are_left_out_and_counted() {
        let pods = [
            pod("web-1", "web", owner("ReplicaSet", "web-1", "rs-web")),
            pod(
                "web-canary-1",
                "web",
                owner("ReplicaSet", "canary", "rs-canary"),
            ),
            pod("other", "api", owner("ReplicaSet", "api", "rs-api")),
        ];
        let replicasets: BTreeMap<&str, OwnerReference> = [
            ("rs-web", owner("Deployment", "web", "d-web")),
            ("rs-canary", owner("Deployment", "web-canary", "d-canary")),
        ]
        .into();
        let parent = |o: &OwnerReference| replicasets.get(o.uid.as_str()).cloned();
        let selector = Selector::parse("app=web").unwrap();
        let found = target_pods(pods.clone(), "d-web", &selector, &parent);
        assert_eq!(found.pods.len(), 1);
        assert_eq!(
            found.other_workloads, 1,
            "the api pod is not matched at all"
        );
    }

    #[test]
    fn a_custom_resource_owning_pods_directly_or_through_replicasets_is_followed() {
        let pods = [
            pod("direct", "x", owner("Thing", "t", "cr1")),
            pod("via-rs", "x", owner("ReplicaSet", "t-abc", "rs9")),
            pod("orphan", "x", owner("ReplicaSet", "gone", "rs-unknown")),
        ];
        let parent = |o: &OwnerReference| (o.uid == "rs9").then(|| owner("Rollout", "t", "cr1"));
        let found = target_pods(
            pods.clone(),
            "cr1",
            &Selector::parse("app=x").unwrap(),
            &parent,
        );
        assert_eq!(found.pods.len(), 2);
        assert_eq!(found.other_workloads, 1);
    }

    proptest::proptest! {
        /// However workloads share labels, each pod belongs to one target at most, and a target's
        /// selector splits exactly into its own pods and other workloads' pods.
        #[test]
        fn every_matched_pod_is_counted_once_either_owned_or_another_workloads(
            replicasets in proptest::collection::vec(0usize..4, 1..6),
            pods in proptest::collection::vec((0usize..10, 0usize..3), 0..30),
        ) {
            // ReplicaSet i is owned by Deployment d<k>; a pod names ReplicaSet i (i below the
            // count) or StatefulSet s<j> directly, and carries label app=a<label>.
            let owners: BTreeMap<String, OwnerReference> = replicasets
                .iter()
                .enumerate()
                .map(|(i, d)| (format!("rs{i}"), owner("Deployment", "d", &format!("d{d}"))))
                .collect();
            let parent = |o: &OwnerReference| owners.get(&o.uid).cloned();
            let all: Vec<Arc<LeanPod>> = pods
                .iter()
                .enumerate()
                .map(|(n, (o, label))| {
                    let controller = if *o < replicasets.len() {
                        owner("ReplicaSet", "rs", &format!("rs{o}"))
                    } else {
                        owner("StatefulSet", "s", &format!("s{o}"))
                    };
                    pod(&format!("p{n}"), &format!("a{label}"), controller)
                })
                .collect();
            let targets: Vec<String> = (0..4)
                .map(|d| format!("d{d}"))
                .chain((0..10).map(|s| format!("s{s}")))
                .collect();
            let selector = Selector::parse("app in (a0,a1)").unwrap();
            let matched = all.iter().filter(|p| selector.matches(p.labels())).count();
            let mut seen = std::collections::BTreeSet::new();
            for t in &targets {
                let found = target_pods(all.clone(), t, &selector, &parent);
                proptest::prop_assert_eq!(found.pods.len().checked_add(found.other_workloads), Some(matched));
                for p in &found.pods {
                    proptest::prop_assert!(seen.insert(p.name().to_owned()), "{} owned twice", p.name());
                }
            }
        }
    }

    #[test]
    fn an_owner_cycle_ends() {
        let pods = [pod("p", "x", owner("ReplicaSet", "a", "a"))];
        let parent = |o: &OwnerReference| Some(owner("ReplicaSet", &o.name, &o.uid));
        let found = target_pods(pods.clone(), "t", &Selector::default(), &parent);
        assert!(found.pods.is_empty());
    }
}
