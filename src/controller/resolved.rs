//! Each policy resolved once per generation (as KEDA caches its scalers): the spec validated, its
//! defaults applied, its PromQL built and parsed, and checked against the operator's metrics
//! configuration. Every reconcile of the same generation reads the same value; the health task
//! reads the intervals from here instead of resolving again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::SignedDuration;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::observe::Observe;
use crate::api::{FieldError, Policy, ScalingPolicy};
use crate::metrics::QueryPlan;

/// A valid policy: what the engine decides from and what the metrics layer queries.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// Its interval raised to the operator's floor (`--min-interval`) when the spec's is shorter.
    pub policy: Policy,
    pub plan: QueryPlan,
    /// The spec's interval, when the floor raised it.
    pub raised_from: Option<SignedDuration>,
}

/// The resolved policy, or every problem with it.
pub type Resolution = Result<Arc<Resolved>, Arc<[FieldError]>>;

/// Validates and resolves a policy object: its spec, the PromQL of its metrics in its namespace,
/// and what the operator's configuration allows. Returns every problem at once.
pub fn resolve(
    object: &ScalingPolicy,
    observer: &dyn Observe,
    floor: SignedDuration,
) -> Result<Resolved, Vec<FieldError>> {
    let address = object.spec.prometheus.as_ref().map(|p| p.address.as_str());
    let namespace = crate::metrics::plan::namespace_of(object);
    let allowed = observer.check(namespace, address);
    let policy = Policy::resolve(&object.spec).map_err(|e| {
        let mut problems = e.0;
        problems.extend(allowed.iter().cloned());
        problems
    })?;
    let mut policy = policy;
    let raised_from = (policy.interval < floor).then_some(policy.interval);
    policy.interval = policy.interval.max(floor);
    let mut problems = allowed;
    match QueryPlan::scoped(&policy, observer.scope(namespace, address)) {
        Ok(plan) if problems.is_empty() => Ok(Resolved {
            policy,
            plan,
            raised_from,
        }),
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
    /// The shortest interval a policy is evaluated at (`--min-interval`).
    floor: SignedDuration,
}

impl Cache {
    /// A cache raising every interval to at least `floor`.
    pub fn new(floor: SignedDuration) -> Self {
        Self {
            entries: Mutex::default(),
            floor,
        }
    }

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
        let resolution = match resolve(object, observer, self.floor) {
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

    /// The shortest interval a policy is evaluated at, and the shortest time between two
    /// evaluations of one policy.
    pub fn floor(&self) -> Duration {
        self.floor.unsigned_abs()
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    use futures::future::BoxFuture;
    use kube::api::ObjectMeta;

    use super::*;
    use crate::decide::Observation;

    /// An operator configuration that allows one address, counts how often it is asked, and can
    /// be "reloaded" (its epoch bumped).
    #[derive(Default)]
    struct Config {
        checks: AtomicUsize,
        epoch: AtomicU64,
    }

    impl Observe for Config {
        fn check(&self, _namespace: &str, address: Option<&str>) -> Vec<FieldError> {
            self.checks.fetch_add(1, Ordering::SeqCst);
            match address {
                Some(a) if a != "https://allowed.example/" => vec![FieldError {
                    path: "spec.prometheus.address".into(),
                    message: format!("{a} is not allowed"),
                }],
                _ => Vec::new(),
            }
        }
        fn config_epoch(&self) -> u64 {
            self.epoch.load(Ordering::SeqCst)
        }
        fn observe<'a>(
            &'a self,
            _plan: &'a QueryPlan,
            _at: Option<jiff::Timestamp>,
            _pods: Result<&'a crate::pods::TargetPods, &'a str>,
        ) -> BoxFuture<'a, Vec<Observation>> {
            Box::pin(async { Vec::new() })
        }
    }

    fn object(name: &str, extra: &str) -> ScalingPolicy {
        let spec = serde_yaml_ng::from_str(&format!(
            "targetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}\nminReplicas: 1\nmaxReplicas: 10\ninterval: 20s\nmetrics: [{{name: jobs, query: 'sum(jobs{{namespace=\"{{namespace}}\"}})', targetPerReplica: 5}}]\n{extra}"
        ))
        .unwrap();
        ScalingPolicy {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                uid: Some(format!("uid-{name}")),
                generation: Some(1),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }

    #[test]
    fn a_policy_is_resolved_once_per_generation() {
        let (cache, config) = (Cache::default(), Config::default());
        let policy = object("a", "");
        let first = cache.resolve(&policy, &config).unwrap();
        let again = cache.resolve(&policy, &config).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the same resolution is shared");
        assert_eq!(config.checks.load(Ordering::SeqCst), 1);
        assert_eq!(
            first.plan.metrics[0].promql, r#"sum(jobs{namespace="shop"})"#,
            "the plan is built in the policy's namespace"
        );
        assert_eq!(first.policy.metrics[0].name, "jobs");

        let mut edited = policy.clone();
        edited.metadata.generation = Some(2);
        edited.spec.max_replicas = 20;
        let second = cache.resolve(&edited, &config).unwrap();
        assert_eq!(second.policy.max_replicas, 20);
        assert_eq!(cache.len(), 1, "never more than one entry per policy");
    }

    #[test]
    fn a_recreated_policy_of_the_same_name_is_resolved_anew() {
        let (cache, config) = (Cache::default(), Config::default());
        let policy = object("a", "");
        cache.resolve(&policy, &config).unwrap();
        let mut recreated = object("a", "");
        recreated.spec.max_replicas = 3;
        recreated.metadata.uid = Some("uid-other".into());
        // Same name and generation, another object.
        assert_eq!(
            cache
                .resolve(&recreated, &config)
                .unwrap()
                .policy
                .max_replicas,
            3
        );
    }

    #[test]
    fn a_changed_configuration_resolves_every_policy_again() {
        let (cache, config) = (Cache::default(), Config::default());
        let policy = object("a", "");
        cache.resolve(&policy, &config).unwrap();
        config.epoch.store(1, Ordering::SeqCst);
        cache.resolve(&policy, &config).unwrap();
        assert_eq!(config.checks.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn every_problem_is_returned_at_once_and_cached_too() {
        let (cache, config) = (Cache::default(), Config::default());
        let policy = object(
            "a",
            "prometheus: {address: 'https://other.example/'}\ntolerance: 2\n",
        );
        let problems = cache.resolve(&policy, &config).unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, vec!["spec.tolerance", "spec.prometheus.address"]);
        cache.resolve(&policy, &config).unwrap_err();
        assert_eq!(config.checks.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn deleted_policies_are_forgotten() {
        let (cache, config) = (Cache::default(), Config::default());
        let (a, mut b) = (object("a", ""), object("b", ""));
        b.spec.interval = Some("90s".into());
        cache.resolve(&a, &config).unwrap();
        cache.resolve(&b, &config).unwrap();
        assert_eq!(cache.longest_interval(), Duration::from_secs(90));
        cache.forget(&ObjectRef::from_obj(&b));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.longest_interval(), Duration::from_secs(20));
        cache.retain(|_| false);
        assert!(cache.is_empty());
    }
}
