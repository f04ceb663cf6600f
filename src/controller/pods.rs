//! The target's pods, from the operator's caches: one lean pod cache and one ReplicaSet metadata
//! cache per watched scope, shared by every policy, and the Deployments and StatefulSets the
//! controller already watches. From them each evaluation learns the target's pods (by selector
//! and owner chain), whether it is mid-rollout, and whether the capacity of its last scale-out
//! is there.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::{Capacity, Policy, ScaleDirection, ScalingPolicyStatus};
use crate::decide::TargetState;
use crate::pods::attribution::replicaset_parent;
use crate::pods::{LeanPod, Selector, TargetPods, revisions, target_pods};
use crate::text::{Resolution, duration};

/// The caches of one watched scope.
#[derive(Clone)]
pub struct PodCaches {
    pub pods: Store<LeanPod>,
    /// The pods by namespace and label, rebuilt from the store when it changed.
    pub index: Arc<PodIndex>,
    pub replicasets: Store<PartialObjectMeta<ReplicaSet>>,
    pub deployments: Store<Deployment>,
    pub statefulsets: Store<StatefulSet>,
}

/// The most pod names one message lists.
const NAMES_SHOWN: usize = 3;

/// The cached pods by namespace, and within a namespace by label, so that finding a target's
/// pods costs the pods carrying one of its selector's labels, not every pod (measured: with
/// 1,000 policies and pods in one namespace, matching each policy's selector against every pod
/// was most of the operator's CPU). Rebuilt from the store, once, after the store changed (the
/// pod watch counts its events in `changes`), so that it is never older than the store.
#[derive(Default)]
pub struct PodIndex {
    /// Events of the pod watch so far.
    changes: std::sync::atomic::AtomicU64,
    built: std::sync::Mutex<Option<(u64, Arc<Indexed>)>>,
}

/// One build of the index.
#[derive(Default)]
struct Indexed {
    namespaces: HashMap<String, NamespacePods>,
}

#[derive(Default)]
struct NamespacePods {
    all: Vec<Arc<LeanPod>>,
    /// Positions in `all` of the pods carrying each label.
    by_label: HashMap<(String, String), Vec<usize>>,
}

impl PodIndex {
    /// The pod watch saw one more event.
    pub fn changed(&self) {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// The index of `store` as it is now.
    fn of(&self, store: &Store<LeanPod>) -> Arc<Indexed> {
        let changes = self.changes.load(std::sync::atomic::Ordering::Acquire);
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, index)) = built.as_ref()
            && *at == changes
        {
            return index.clone();
        }
        let mut indexed = Indexed::default();
        for pod in store.state() {
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let ns = indexed.namespaces.entry(namespace).or_default();
            let at = ns.all.len();
            for (k, v) in pod.labels() {
                ns.by_label
                    .entry((k.clone(), v.clone()))
                    .or_default()
                    .push(at);
            }
            ns.all.push(pod);
        }
        let indexed = Arc::new(indexed);
        *built = Some((changes, indexed.clone()));
        indexed
    }
}

impl PodCaches {
    /// The pods of the target with uid `uid` in `namespace`: matched by its `/scale`
    /// `status.selector` (when it has one that parses) and owned by it through the cached
    /// ReplicaSets.
    pub fn target_pods(&self, namespace: &str, uid: &str, selector: Option<&str>) -> TargetPods {
        let selector = selector
            .and_then(|s| Selector::parse(s).ok())
            .unwrap_or_default();
        let replicasets = &self.replicasets;
        let parent = |owner: &OwnerReference| {
            let rs = replicasets.get(&ObjectRef::new(&owner.name).within(namespace));
            replicaset_parent(owner, |_| rs.as_deref().map(|rs| &rs.metadata))
        };
        let index = self.index.of(&self.pods);
        let Some(ns) = index.namespaces.get(namespace) else {
            return TargetPods::default();
        };
        // Every pod the selector matches carries its first `key=value` label: those are the
        // candidates; a selector without one looks at the whole namespace.
        let candidates: Vec<Arc<LeanPod>> = match selector.equality() {
            Some((k, v)) => ns
                .by_label
                .get(&(k.to_owned(), v.to_owned()))
                .map(|at| at.iter().filter_map(|i| ns.all.get(*i).cloned()).collect())
                .unwrap_or_default(),
            None => ns.all.clone(),
        };
        target_pods(candidates, uid, &selector, &parent)
    }

    /// Why the target is mid-rollout, or that its rollouts cannot be told (`Err`); `Ok(None)`
    /// when it is not mid-rollout.
    pub fn rollout(
        &self,
        policy: &Policy,
        namespace: &str,
        pods: &TargetPods,
    ) -> Result<Option<String>, String> {
        if policy.target_kind.is("apps", "Deployment")
            && let Some(d) = self
                .deployments
                .get(&ObjectRef::new(&policy.target).within(namespace))
        {
            return Ok(deployment_rollout(&d));
        }
        if policy.target_kind.is("apps", "StatefulSet")
            && let Some(s) = self
                .statefulsets
                .get(&ObjectRef::new(&policy.target).within(namespace))
        {
            return Ok(statefulset_rollout(&s));
        }
        match revisions(&pods.pods) {
            Some(n) if n > 1 => Ok(Some(format!("its pods belong to {n} revisions"))),
            Some(_) => Ok(None),
            None => Err(format!(
                "rollouts of {} cannot be told: its pods carry no pod-template-hash or controller-revision-hash label and no controller",
                policy.target_kind
            )),
        }
    }
}

/// Why a Deployment is mid-rollout, if it is. One its controller never observed (no status,
/// as right after its creation, or where no controller-manager runs) has nothing rolling.
fn deployment_rollout(d: &Deployment) -> Option<String> {
    let generation = d.metadata.generation.unwrap_or(0);
    let status = d.status.as_ref()?;
    let observed = status.observed_generation?;
    if observed < generation {
        return Some(format!(
            "the Deployment controller has not yet seen generation {generation} (observed {observed})"
        ));
    }
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    if updated < desired || replicas > updated {
        return Some(format!(
            "{updated} of {desired} replicas updated, {replicas} pods in all"
        ));
    }
    None
}

/// Why a StatefulSet is mid-rollout, if it is (one never observed: see [`deployment_rollout`]).
fn statefulset_rollout(s: &StatefulSet) -> Option<String> {
    let generation = s.metadata.generation.unwrap_or(0);
    let status = s.status.as_ref()?;
    let observed = status.observed_generation?;
    if observed < generation {
        return Some(format!(
            "the StatefulSet controller has not yet seen generation {generation} (observed {observed})"
        ));
    }
    match (&status.current_revision, &status.update_revision) {
        (Some(current), Some(update)) if current != update => Some(format!(
            "pods move from revision {current} to {update} ({} of {} updated)",
            status.updated_replicas.unwrap_or(0),
            status.replicas
        )),
        _ => None,
    }
}

/// The pods created since the last scale-out that are still not Ready `readinessTimeout` after
/// their creation, as a message; `None` when there are none (or the last scale was not out).
pub fn capacity_not_ready(
    policy: &Policy,
    previous: &ScalingPolicyStatus,
    pods: &TargetPods,
    now: Timestamp,
) -> Option<String> {
    if previous.last_scale_direction != Some(ScaleDirection::Out) {
        return None;
    }
    let scaled = previous.last_scale_time.as_ref()?.0;
    // Pods created within a second before the recorded scale-out (times are kept to the second)
    // are its pods too.
    let since = scaled
        .checked_sub(SignedDuration::from_secs(1))
        .unwrap_or(scaled);
    let timeout = policy.pods.readiness_timeout;
    let late: Vec<&str> = pods
        .pods
        .iter()
        .filter(|p| !p.gone() && !p.is_ready())
        .filter(|p| {
            p.created()
                .is_some_and(|c| c >= since && now.duration_since(c) >= timeout)
        })
        .map(|p| p.name())
        .collect();
    if late.is_empty() {
        return None;
    }
    Some(format!(
        "{} created since the scale-out at {scaled} {} not Ready {} after creation ({})",
        plural(late.len(), "pod"),
        if late.len() == 1 { "is" } else { "are" },
        duration(timeout.unsigned_abs(), Resolution::Seconds),
        names(&late)
    ))
}

/// The capacity for status and the engine's view of the target.
pub fn target_state(
    pods: &TargetPods,
    rollout: &Result<Option<String>, String>,
    capacity_not_ready: Option<String>,
) -> (Capacity, TargetState) {
    let live: Vec<&Arc<LeanPod>> = pods.pods.iter().filter(|p| !p.gone()).collect();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let capacity = Capacity {
        pods: count(live.len()),
        ready_pods: count(live.iter().filter(|p| p.is_ready()).count()),
        other_workload_pods: count(pods.other_workloads),
        rollout: match rollout {
            Ok(why) => why.clone(),
            Err(cannot) => Some(cannot.clone()),
        },
    };
    let state = TargetState {
        rollout: rollout.clone().ok().flatten(),
        capacity_not_ready,
        forecast: None,
    };
    (capacity, state)
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Up to three names, and how many more.
fn names(all: &[&str]) -> String {
    let shown: Vec<&str> = all.iter().take(NAMES_SHOWN).copied().collect();
    let more = all.len().saturating_sub(NAMES_SHOWN);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};

    use super::*;

    fn deployment(
        generation: i64,
        observed: i64,
        desired: i32,
        updated: i32,
        all: i32,
    ) -> Deployment {
        Deployment {
            metadata: kube::api::ObjectMeta {
                generation: Some(generation),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(desired),
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                observed_generation: Some(observed),
                updated_replicas: Some(updated),
                replicas: Some(all),
                ..Default::default()
            }),
        }
    }

    /// A pod `name` in `namespace` labelled `app`, controlled by the owner of uid `owner`.
    fn pod(namespace: &str, name: &str, app: &str, owner: &str) -> LeanPod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name, "namespace": namespace, "uid": format!("uid-{name}"),
                "labels": {"app": app},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "x",
                    "uid": owner, "controller": true}]
            }
        }))
        .unwrap()
    }

    #[test]
    fn the_pod_index_finds_the_targets_pods_and_follows_every_change_of_the_store() {
        let (pods, mut writer) = kube::runtime::reflector::store::<LeanPod>();
        let caches = PodCaches {
            pods,
            index: Arc::new(PodIndex::default()),
            replicasets: kube::runtime::reflector::store().0,
            deployments: kube::runtime::reflector::store().0,
            statefulsets: kube::runtime::reflector::store().0,
        };
        let apply = |writer: &mut kube::runtime::reflector::store::Writer<LeanPod>, p: LeanPod| {
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(p));
            caches.index.changed();
        };
        apply(&mut writer, pod("shop", "web-1", "web", "sts-web"));
        apply(&mut writer, pod("shop", "web-2", "web", "sts-web"));
        // Same labels, another owner: left out and counted; another namespace: not looked at.
        apply(&mut writer, pod("shop", "impostor", "web", "sts-other"));
        apply(&mut writer, pod("cart", "web-9", "web", "sts-web"));
        let found = caches.target_pods("shop", "sts-web", Some("app=web"));
        let names: Vec<&str> = found.pods.iter().map(|p| p.name()).collect();
        assert_eq!(names, ["web-1", "web-2"]);
        assert_eq!(found.other_workloads, 1);
        // A selector without key=value looks at the whole namespace, with the same answer.
        let by_set = caches.target_pods("shop", "sts-web", Some("app in (web)"));
        assert_eq!(by_set.pods.len(), 2);
        // A new pod is seen by the next call.
        apply(&mut writer, pod("shop", "web-3", "web", "sts-web"));
        assert_eq!(
            caches
                .target_pods("shop", "sts-web", Some("app=web"))
                .pods
                .len(),
            3
        );
        assert!(
            caches
                .target_pods("none", "sts-web", Some("app=web"))
                .pods
                .is_empty()
        );
    }

    #[test]
    fn a_deployment_is_mid_rollout_until_every_pod_is_updated_and_old_ones_are_gone() {
        assert_eq!(deployment_rollout(&deployment(2, 2, 4, 4, 4)), None);
        assert_eq!(
            deployment_rollout(&deployment(3, 2, 4, 4, 4)).as_deref(),
            Some("the Deployment controller has not yet seen generation 3 (observed 2)")
        );
        assert_eq!(
            deployment_rollout(&deployment(3, 3, 4, 2, 5)).as_deref(),
            Some("2 of 4 replicas updated, 5 pods in all")
        );
        assert!(deployment_rollout(&deployment(3, 3, 4, 4, 5)).is_some());
    }

    #[test]
    fn a_deployment_its_controller_never_observed_is_not_mid_rollout() {
        let mut d = deployment(1, 0, 4, 0, 0);
        d.status = None;
        assert_eq!(deployment_rollout(&d), None);
    }

    #[test]
    fn up_to_three_names_are_listed() {
        assert_eq!(names(&["a", "b"]), "a, b");
        assert_eq!(names(&["a", "b", "c", "d", "e"]), "a, b, c and 2 more");
    }
}
