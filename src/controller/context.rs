//! What every reconcile shares: one kube client, one metric reader, the resolved policies,
//! stores, telemetry, backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use kube::Client;
use kube::runtime::reflector::{ObjectRef, Store};

use super::apply::{Writer, Written};
use super::decoded::Decoded;
use super::events::Publisher;
use super::health::Health;
use super::lease::Fence;
use super::observe::Observe;
use super::resolved::Cache;
use crate::api::{ScalingPolicy, ScalingPolicyStatus};
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
    pub hpas: Store<HorizontalPodAutoscaler>,
    /// Bounds reconciles in flight across every watched namespace, shared fairly between
    /// namespaces.
    pub slots: Arc<FairSlots>,
    /// The last status this replica wrote per policy (with the policy's uid), so that an
    /// evaluation right after a write never starts from the older status the cache may still hold.
    pub written: Arc<Mutex<Written>>,
    /// Consecutive failures per policy, for the exponential backoff; reset on success.
    pub failures: Mutex<HashMap<ObjectRef<ScalingPolicy>, u32>>,
    /// Until when this replica may write: its renew deadline while it leads.
    pub fence: Arc<Fence>,
    /// The longest one call to the API server may take.
    pub api_timeout: Duration,
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
        Writer {
            client: &self.client,
            events: &self.events,
            may_write: self.fence.as_ref(),
            api_timeout: self.api_timeout,
            written: &self.written,
            metrics: &self.metrics,
        }
    }

    /// The last status this replica wrote for `policy`, if it is the same object (same uid).
    pub fn written(&self, policy: &ScalingPolicy) -> Option<Arc<ScalingPolicyStatus>> {
        use kube::ResourceExt;
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written
            .get(&ObjectRef::from_obj(policy))
            .filter(|(uid, _)| *uid == policy.uid())
            .map(|(_, status)| Arc::clone(status))
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
