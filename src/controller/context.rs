//! What every reconcile shares: one kube client, one metric reader, the resolved policies,
//! stores, telemetry, backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use kube::Client;
use kube::runtime::reflector::{ObjectRef, Store};

use super::apply::{Remembered, Writer, Written};
use super::decoded::Decoded;
use super::events::Publisher;
use super::health::Health;
use super::lease::{Fence, Gate};
use super::observe::Observe;
use super::persist::Cadence;
use super::pods::PodCaches;
use super::resolved::Cache;
use super::shard::Shards;
use super::target::Kinds;
use crate::api::ScalingPolicy;
use crate::fair::FairSlots;
use crate::telemetry::Metrics;

/// Shared by every reconcile of one controller.
pub struct Context {
    pub client: Client,
    pub events: Arc<Publisher>,
    pub observer: Arc<dyn Observe>,
    /// Each policy resolved once per generation.
    pub resolved: Arc<Cache>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub policies: Store<Decoded>,
    /// The cached policies by target (kept by the policy watch).
    pub owners: Arc<super::ownership::PolicyIndex>,
    pub hpas: Store<HorizontalPodAutoscaler>,
    /// Bounds reconciles in flight across every watched namespace, shared fairly between
    /// namespaces.
    pub slots: Arc<FairSlots>,
    /// Each namespace's evaluations per minute (`--namespace-evaluations-per-minute`).
    pub budget: Arc<crate::fair::Budget>,
    /// Every API write of this replica per second (`--api-writes-per-second`).
    pub pace: Arc<crate::fair::Budget>,
    /// What this replica remembers of each policy (with the policy's uid): the status its last
    /// evaluation left, which the next one starts from (the cache may still hold an older one,
    /// and an evaluation that changed nothing that matters is not written), and the last status
    /// it wrote.
    pub written: Arc<Mutex<Written>>,
    /// When each policy's next evaluation is due, as this replica scheduled it: how late an
    /// evaluation starts is measured from it.
    pub due: Arc<Mutex<HashMap<ObjectRef<ScalingPolicy>, Instant>>>,
    /// Consecutive failures per policy, for the exponential backoff; reset on success.
    pub failures: Mutex<HashMap<ObjectRef<ScalingPolicy>, u32>>,
    /// Until when this replica may write: its renew deadline while it leads.
    pub fence: Arc<Fence>,
    /// This replica's share of the policies, with `--sharding`.
    pub shards: Option<Arc<Shards>>,
    /// The longest one call to the API server may take.
    pub api_timeout: Duration,
    /// The longest a written status may lag its evaluations (`--status-heartbeat`).
    pub status_heartbeat: Duration,
    /// The target's pods, ReplicaSets, Deployments and StatefulSets of this scope.
    pub caches: PodCaches,
    /// The API of each target kind.
    pub kinds: Arc<Kinds>,
    /// Each policy's forecast history (`spec.forecast`), a cache of what Prometheus holds.
    pub forecasts: Arc<super::forecast::Forecasts>,
}

/// Writes for one policy are allowed while the fence allows them and, with sharding, while this
/// replica owns the policy: a policy given to another replica mid-evaluation is not written.
pub struct Owned<'a> {
    ctx: &'a Context,
    namespace: &'a str,
    name: &'a str,
}

impl Gate for Owned<'_> {
    fn remaining(&self) -> Option<Duration> {
        if self.ctx.owns(self.namespace, self.name) {
            self.ctx.fence.remaining()
        } else {
            None
        }
    }
}

/// The first retry after a failure; doubles with each consecutive failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// The longest wait between retries.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

impl Context {
    /// Records one more failure of `policy` and returns how long to wait before retrying.
    pub fn backoff(&self, policy: &ObjectRef<ScalingPolicy>) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(policy.clone()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(*n)
    }

    /// The apply step's writer, writing while the fence allows it.
    pub fn writer(&self) -> Writer<'_> {
        self.writer_gated(self.fence.as_ref())
    }

    /// A writer for `policy`'s writes: with sharding, only while this replica owns it.
    pub fn writer_for<'a>(&'a self, gate: &'a Owned<'a>) -> Writer<'a> {
        self.writer_gated(gate)
    }

    fn writer_gated<'a>(&'a self, gate: &'a dyn Gate) -> Writer<'a> {
        Writer {
            client: &self.client,
            events: &self.events,
            may_write: gate,
            api_timeout: self.api_timeout,
            written: &self.written,
            metrics: &self.metrics,
            manager: self.shards.as_ref().map(|s| s.field_manager()),
            pace: Some(&self.pace),
        }
    }

    /// Whether this replica reconciles the policy `namespace/name`: always without sharding.
    pub fn owns(&self, namespace: &str, name: &str) -> bool {
        super::shard::evaluates(self.shards.as_deref(), namespace, name)
    }

    /// The write gate of one policy: the fence, and with sharding this replica's ownership.
    pub fn gate<'a>(&'a self, namespace: &'a str, name: &'a str) -> Owned<'a> {
        Owned {
            ctx: self,
            namespace,
            name,
        }
    }

    /// What this replica remembers of `policy`, if it is the same object (same uid).
    pub fn remembered(&self, policy: &ScalingPolicy) -> Option<Remembered> {
        use kube::ResourceExt;
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written
            .get(&ObjectRef::from_obj(policy))
            .filter(|r| r.uid == policy.uid())
            .cloned()
    }

    /// How often `policy`'s status is written when nothing that matters changes.
    pub fn cadence(&self, policy: &crate::api::Policy) -> Cadence {
        Cadence::for_policy(policy, self.status_heartbeat)
    }

    /// Forgets what this replica remembers of `policy` (it belongs to another replica now): if it
    /// comes back, it starts from the status on the cluster.
    pub fn forget(&self, policy: &ObjectRef<ScalingPolicy>) {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(policy);
        self.due
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(policy);
        self.forecasts.forget(policy);
        self.reset_backoff(policy);
    }

    /// `policy` is to be evaluated again `after` from now.
    pub fn schedule(&self, policy: &ObjectRef<ScalingPolicy>, after: Duration) {
        let at = Instant::now().checked_add(after);
        let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        match at {
            Some(at) => due.insert(policy.clone(), at),
            None => due.remove(policy),
        };
    }

    /// An evaluation of `policy` starts now: how late it is against its schedule, if it had one
    /// and this is not an early evaluation (a change of its target or spec).
    pub fn started(&self, policy: &ObjectRef<ScalingPolicy>) -> Option<Duration> {
        let due = self
            .due
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(policy)?;
        Instant::now().checked_duration_since(due)
    }

    /// Forgets the failures of `policy` after a success.
    pub fn reset_backoff(&self, policy: &ObjectRef<ScalingPolicy>) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(policy);
    }
}

/// 2 s, 4 s, 8 s, ... up to 5 minutes.
pub fn backoff_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(1 << exponent).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let secs: Vec<u64> = (1..=10).map(|n| backoff_delay(n).as_secs()).collect();
        assert_eq!(secs, vec![2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff_delay(u32::MAX), BACKOFF_MAX);
    }
}
