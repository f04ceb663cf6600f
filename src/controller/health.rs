//! The controller's health state: leadership, synced caches, a running loop that makes progress.
//! Health state lives with the controller; telemetry only renders it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use kube::runtime::watcher;

use crate::telemetry::Probes;

/// What one event of a watch says about whether it works: `Some(true)` for objects and the end
/// of a list, `Some(false)` for an error, `None` for the start of a (re)list, which kube's
/// watcher announces before it lists: it proves nothing.
pub fn watch_works<K>(event: &Result<watcher::Event<K>, watcher::Error>) -> Option<bool> {
    match event {
        Ok(watcher::Event::Init) => None,
        Ok(_) => Some(true),
        Err(_) => Some(false),
    }
}

/// The controller's health: whether it leads, its caches are synced, its loop runs and makes
/// progress. Telemetry renders it on `/healthz` and `/readyz` (through [`Probes`]).
#[derive(Debug)]
pub struct Health {
    /// Leader election has told us whether we lead.
    leader_known: AtomicBool,
    leader: AtomicBool,
    /// The controller's caches are synced.
    synced: AtomicBool,
    /// The controller loop is running (it stops when its watch ends for good).
    running: AtomicBool,
    /// Monotonic seconds of the last reconcile attempt.
    last_progress: AtomicI64,
    /// Policies in the cache, and the longest interval among them, in seconds.
    policies: AtomicI64,
    longest_interval: AtomicI64,
    /// How long a controller with policies may go without a reconcile before it is unhealthy.
    stall_after: Duration,
    /// Since when (monotonic seconds) the policy watch has failed without a success;
    /// `NOT_FAILING` while it works.
    watch_failing_since: AtomicI64,
    /// How long the policy watch may fail before the controller is unhealthy.
    list_failure_after: Duration,
}

impl Health {
    pub fn new(stall_after: Duration, list_failure_after: Duration) -> Self {
        Self {
            leader_known: AtomicBool::new(false),
            leader: AtomicBool::new(false),
            synced: AtomicBool::new(false),
            running: AtomicBool::new(false),
            last_progress: AtomicI64::new(now_secs()),
            policies: AtomicI64::new(0),
            longest_interval: AtomicI64::new(0),
            stall_after,
            watch_failing_since: AtomicI64::new(NOT_FAILING),
            list_failure_after,
        }
    }

    /// The policy watch failed to list or watch; returns how long it has failed without a
    /// success.
    pub fn watch_failed(&self) -> Duration {
        let now = now_secs();
        let since = match self.watch_failing_since.compare_exchange(
            NOT_FAILING,
            now,
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            Ok(_) => now,
            Err(since) => since,
        };
        Duration::from_secs(u64::try_from(now.saturating_sub(since)).unwrap_or(0))
    }

    /// How long the policy watch has failed without a success (zero while it works).
    pub fn watch_failing_for(&self) -> Duration {
        match self.watch_failing_since.load(Ordering::SeqCst) {
            NOT_FAILING => Duration::ZERO,
            since => {
                Duration::from_secs(u64::try_from(now_secs().saturating_sub(since)).unwrap_or(0))
            }
        }
    }

    /// The policy watch delivered an event: it works.
    pub fn watch_ok(&self) {
        self.watch_failing_since
            .store(NOT_FAILING, Ordering::SeqCst);
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::SeqCst);
        self.leader_known.store(true, Ordering::SeqCst);
        if !leader {
            self.synced.store(false, Ordering::SeqCst);
            self.running.store(false, Ordering::SeqCst);
        }
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    pub fn set_synced(&self, synced: bool) {
        self.synced.store(synced, Ordering::SeqCst);
    }

    pub fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::SeqCst);
        if running {
            self.progress();
        }
    }

    /// A reconcile ran (successfully or not).
    pub fn progress(&self) {
        self.last_progress.store(now_secs(), Ordering::SeqCst);
    }

    /// The policies the controller is responsible for.
    pub fn set_workload(&self, policies: usize, longest_interval: Duration) {
        self.policies.store(
            i64::try_from(policies).unwrap_or(i64::MAX),
            Ordering::SeqCst,
        );
        self.longest_interval.store(
            i64::try_from(longest_interval.as_secs()).unwrap_or(i64::MAX),
            Ordering::SeqCst,
        );
    }

    /// Ready: the leader state is known and, when leading, the caches are synced.
    pub fn ready(&self) -> Result<(), String> {
        if !self.leader_known.load(Ordering::SeqCst) {
            return Err("leader election has not decided yet".into());
        }
        if self.is_leader() && !self.synced.load(Ordering::SeqCst) {
            return Err("leading, but the caches are not synced yet".into());
        }
        Ok(())
    }

    /// Healthy: a leading controller can list its policies, is running and has reconciled
    /// recently enough.
    pub fn healthy(&self) -> Result<(), String> {
        let since = self.watch_failing_since.load(Ordering::SeqCst);
        if self.is_leader() && since != NOT_FAILING {
            let failing = now_secs().saturating_sub(since);
            let limit = i64::try_from(self.list_failure_after.as_secs()).unwrap_or(i64::MAX);
            if failing > limit {
                return Err(format!(
                    "the ScalingPolicy watch has failed to list for {failing}s (limit {limit}s, --list-failure-timeout): check the operator's RBAC, the CRD and the API server"
                ));
            }
        }
        if !self.is_leader() || !self.synced.load(Ordering::SeqCst) {
            return Ok(());
        }
        if !self.running.load(Ordering::SeqCst) {
            return Err("the controller loop has stopped".into());
        }
        if self.policies.load(Ordering::SeqCst) == 0 {
            return Ok(());
        }
        let window = i64::try_from(self.stall_after.as_secs())
            .unwrap_or(i64::MAX)
            .max(
                self.longest_interval
                    .load(Ordering::SeqCst)
                    .saturating_mul(3),
            );
        let idle = now_secs().saturating_sub(self.last_progress.load(Ordering::SeqCst));
        if idle > window {
            return Err(format!(
                "no reconcile for {idle}s although policies are due (limit {window}s)"
            ));
        }
        Ok(())
    }
}

/// Seconds on this process's monotonic clock: a step of the wall clock changes no stall or
/// list-failure judgement.
fn now_secs() -> i64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    i64::try_from(start.elapsed().as_secs()).unwrap_or(i64::MAX)
}

/// `watch_failing_since` while the watch works.
const NOT_FAILING: i64 = i64::MIN;

impl Probes for Health {
    fn liveness(&self) -> Result<(), String> {
        self.healthy()
    }

    fn readiness(&self) -> Result<(), String> {
        self.ready()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relist_that_has_only_started_proves_nothing_about_the_watch() {
        // kube's watcher announces a (re)list before it lists: a watch that can never list
        // (403) answers Init, then the error, again and again. Taking Init as a success made a
        // watch that never listed look healthy between retries.
        let started: Result<watcher::Event<()>, watcher::Error> = Ok(watcher::Event::Init);
        assert_eq!(watch_works(&started), None);
        let listed: Result<watcher::Event<()>, watcher::Error> = Ok(watcher::Event::InitDone);
        assert_eq!(watch_works(&listed), Some(true));
        assert_eq!(watch_works(&Ok(watcher::Event::InitApply(()))), Some(true));
        assert_eq!(watch_works(&Ok(watcher::Event::Apply(()))), Some(true));
        assert_eq!(watch_works(&Ok(watcher::Event::Delete(()))), Some(true));
        let failed: Result<watcher::Event<()>, watcher::Error> =
            Err(watcher::Error::NoResourceVersion);
        assert_eq!(watch_works(&failed), Some(false));
    }

    #[test]
    fn not_ready_until_leadership_is_known_and_caches_synced() {
        let h = Health::new(Duration::from_secs(60), Duration::from_secs(60));
        assert!(h.ready().is_err());
        h.set_leader(false);
        assert!(
            h.ready().is_ok(),
            "a standby that knows it is a standby is ready"
        );
        h.set_leader(true);
        assert!(h.ready().is_err());
        h.set_synced(true);
        assert!(h.ready().is_ok());
    }

    #[test]
    fn unhealthy_when_the_loop_stopped_or_stalled_with_policies() {
        let h = Health::new(Duration::from_secs(0), Duration::from_secs(60));
        h.set_leader(true);
        h.set_synced(true);
        assert!(h.healthy().is_err(), "leading and synced but not running");
        h.set_running(true);
        assert!(h.healthy().is_ok());
        h.set_workload(3, Duration::from_secs(0));
        h.last_progress.store(now_secs() - 10, Ordering::SeqCst);
        assert!(
            h.healthy().is_err(),
            "policies due and no reconcile for 10 s"
        );
        h.progress();
        assert!(h.healthy().is_ok());
    }

    #[test]
    fn unhealthy_when_the_policy_watch_fails_for_longer_than_its_limit() {
        let h = Health::new(Duration::from_secs(300), Duration::from_secs(30));
        h.set_leader(true);
        // Never synced: before, a watch that never listed was healthy forever.
        assert_eq!(h.watch_failed(), Duration::ZERO);
        assert!(h.healthy().is_ok(), "a failure within the limit is retried");
        h.watch_failing_since
            .store(now_secs().saturating_sub(31), Ordering::SeqCst);
        assert!(h.watch_failed() >= Duration::from_secs(31));
        let error = h.healthy().unwrap_err();
        assert!(error.contains("failed to list for 31s"), "{error}");
        h.watch_ok();
        assert!(h.healthy().is_ok());
        h.set_leader(false);
        h.watch_failing_since
            .store(now_secs().saturating_sub(100), Ordering::SeqCst);
        assert!(h.healthy().is_ok(), "a standby does not list");
    }
}
