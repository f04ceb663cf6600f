//! The target's pods: the operator's lean pod cache type ([`lean`]), label selectors in their
//! string form ([`selector`]), which pods are the target's ([`attribution`]), and how they are
//! counted for a resource metric ([`count`]). Pure: no client, no clock.

// Arithmetic on user data and on times never panics: checked or saturating only (CI makes these
// warnings errors).
#![warn(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

pub mod attribution;
pub mod count;
pub mod lean;
pub mod selector;

use std::collections::BTreeSet;

pub use attribution::{TargetPods, target_pods};
pub use count::{ReadinessRules, Resource, utilization};
pub use lean::LeanPod;
pub use selector::Selector;

/// The labels that tell a pod's revision: a ReplicaSet's template hash, a StatefulSet's or
/// DaemonSet's controller revision.
pub const REVISION_LABELS: [&str; 2] = ["pod-template-hash", "controller-revision-hash"];

/// How many revisions the running pods belong to, by their revision label or, without one, by
/// their controller; `None` when the pods carry neither (nothing tells their revisions apart).
pub fn revisions(pods: &[std::sync::Arc<LeanPod>]) -> Option<usize> {
    let mut seen = BTreeSet::new();
    for pod in pods.iter().filter(|p| !p.gone()) {
        let revision = REVISION_LABELS
            .iter()
            .find_map(|l| pod.labels().get(*l).cloned())
            .or_else(|| pod.controller().map(|c| c.uid.clone()))?;
        seen.insert(revision);
    }
    Some(seen.len())
}
