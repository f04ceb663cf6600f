//! Each policy resolved once per generation (as KEDA caches its scalers): the spec validated, its
//! defaults applied, its PromQL built and parsed, and checked against the operator's metrics
//! configuration. Every reconcile of the same generation reads the same value; the health task
//! reads the intervals from here instead of resolving again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::observe::Observe;
use crate::api::{FieldError, Policy, ScalingPolicy};
use crate::metrics::QueryPlan;

/// A valid policy: what the engine decides from and what the metrics layer queries.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub policy: Policy,
    pub plan: QueryPlan,
}

/// The resolved policy, or every problem with it.
pub type Resolution = Result<Arc<Resolved>, Arc<[FieldError]>>;

/// Validates and resolves a policy object: its spec, the PromQL of its metrics in its namespace,
/// and what the operator's configuration allows. Returns every problem at once.
pub fn resolve(
    object: &ScalingPolicy,
    observer: &dyn Observe,
) -> Result<Resolved, Vec<FieldError>> {
    let address = object.spec.prometheus.as_ref().map(|p| p.address.as_str());
    let allowed = observer.check(address);
    let policy = Policy::resolve(&object.spec).map_err(|e| {
        let mut problems = e.0;
        problems.extend(allowed.iter().cloned());
        problems
    })?;
    let mut problems = allowed;
    match QueryPlan::for_policy(object, &policy) {
        Ok(plan) if problems.is_empty() => Ok(Resolved { policy, plan }),
        Ok(_) => Err(problems),
        Err(e) => {
            problems.extend(e.0);
            Err(problems)
        }
    }
}

#[derive(Debug)]
struct Entry {
    uid: Option<String>,
    generation: Option<i64>,
    epoch: u64,
    resolution: Resolution,
}

/// The resolved policies of one controller, at most one entry per live policy.
#[derive(Debug, Default)]
pub struct Cache {
    entries: Mutex<HashMap<ObjectRef<ScalingPolicy>, Entry>>,
}

impl Cache {
    /// The resolution of `object`'s current generation: cached when its uid, generation and the
    /// configuration epoch are those it was resolved with, resolved (and cached) otherwise.
    pub fn resolve(&self, object: &ScalingPolicy, observer: &dyn Observe) -> Resolution {
        let key = ObjectRef::from_obj(object);
        let uid = object.uid();
        let generation = object.metadata.generation;
        let epoch = observer.config_epoch();
        {
            let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = entries.get(&key)
                && entry.uid == uid
                && entry.generation == generation
                && entry.epoch == epoch
            {
                return entry.resolution.clone();
            }
        }
        let resolution = match resolve(object, observer) {
            Ok(resolved) => Ok(Arc::new(resolved)),
            Err(problems) => Err(Arc::from(problems)),
        };
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.insert(
            key,
            Entry {
                uid,
                generation,
                epoch,
                resolution: resolution.clone(),
            },
        );
        resolution
    }

    /// Forgets a deleted policy.
    pub fn forget(&self, object: &ObjectRef<ScalingPolicy>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(object);
    }

    /// Keeps only the policies `present` says still exist (after a relist, which may have missed
    /// deletions).
    pub fn retain(&self, present: impl Fn(&ObjectRef<ScalingPolicy>) -> bool) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|key, _| present(key));
    }

    /// How many policies are cached.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no policy is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The longest evaluation interval of the valid policies.
    pub fn longest_interval(&self) -> Duration {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .values()
            .filter_map(|e| e.resolution.as_ref().ok())
            .map(|r| r.policy.interval.unsigned_abs())
            .max()
            .unwrap_or_default()
    }
}
