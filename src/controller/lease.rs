//! Leader election on a coordination.k8s.io/v1 Lease, with fencing.
//!
//! As client-go's leader election does it, and unlike libraries that compare the Lease's
//! `renewTime` with the local wall clock:
//! - a standby judges expiry on its own monotonic clock, from the moment it last saw the Lease's
//!   holder or `renewTime` change; clocks that disagree (a standby 30 s fast) never let it take a
//!   live leader's Lease;
//! - the leader may write only until its renew deadline (the start of its last successful
//!   renewal plus the lease duration minus a skew margin of a third of it), so it has stopped
//!   writing before any standby can take over, even when a renewal hangs;
//! - every call to the API server has a timeout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Whether, and for how long, a replica may write.
pub trait Gate: Sync {
    /// How long writes are still allowed (`Duration::MAX`: no limit), or `None`: not at all.
    fn remaining(&self) -> Option<Duration>;
}

impl<F: Fn() -> Option<Duration> + Sync> Gate for F {
    fn remaining(&self) -> Option<Duration> {
        self()
    }
}

impl Gate for Fence {
    fn remaining(&self) -> Option<Duration> {
        Fence::remaining(self)
    }
}

/// When this replica may write: until its renew deadline while it leads, never otherwise.
#[derive(Debug)]
pub struct Fence {
    /// Without leader election every write is allowed.
    elected: bool,
    until: Mutex<Option<Instant>>,
}

impl Fence {
    /// A fence for a replica that runs with leader election (`elected`), or without it.
    pub fn new(elected: bool) -> Self {
        Self {
            elected,
            until: Mutex::new(None),
        }
    }

    /// How long this replica may still write, if it may: `Duration::MAX` without leader election.
    pub fn remaining(&self) -> Option<Duration> {
        if !self.elected {
            return Some(Duration::MAX);
        }
        let until = *self.until.lock().unwrap_or_else(|e| e.into_inner());
        until
            .map(|t| t.saturating_duration_since(Instant::now()))
            .filter(|left| !left.is_zero())
    }

    /// Whether this replica may write now.
    pub fn may_write(&self) -> bool {
        self.remaining().is_some()
    }

    /// Writes are allowed until `until` (a renewal succeeded).
    pub(crate) fn extend(&self, until: Instant) {
        *self.until.lock().unwrap_or_else(|e| e.into_inner()) = Some(until);
    }

    /// No more writes (the lease was lost or released).
    pub(crate) fn close(&self) {
        *self.until.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// How the Lease is held.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    /// How long a Lease holds without renewal, as seen by a standby.
    pub duration: Duration,
    /// The longest one call to the API server may take.
    pub api_timeout: Duration,
}

impl LeaseSettings {
    /// The leader stops writing this long after the start of its last successful renewal: the
    /// lease duration minus a third of it, the margin for clocks that run at different rates and
    /// for a write already sent.
    pub fn renew_deadline(&self) -> Duration {
        self.duration
            .saturating_sub(self.duration.checked_div(3).unwrap_or_default())
    }

    /// How often the Lease is renewed, or looked at by a standby.
    pub fn retry_period(&self) -> Duration {
        self.duration
            .checked_div(7)
            .unwrap_or_default()
            .max(Duration::from_millis(100))
    }
}

/// What a Lease said when this replica last saw it change, and when, on its monotonic clock.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Observed {
    pub(crate) record: Record,
    pub(crate) seen_at: Instant,
}

/// What the Lease says, as the elector compares it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Record {
    pub(crate) holder: Option<String>,
    renew_time: Option<MicroTime>,
    transitions: Option<i32>,
}

impl Record {
    pub(crate) fn of(spec: Option<&LeaseSpec>) -> Self {
        Self {
            holder: spec
                .and_then(|s| s.holder_identity.clone())
                .filter(|h| !h.is_empty()),
            renew_time: spec.and_then(|s| s.renew_time.clone()),
            transitions: spec.and_then(|s| s.lease_transitions),
        }
    }
}

/// What to do with a Lease as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Held by this replica: renew it.
    Renew,
    /// Free, released, or held by a replica that has not renewed it for a whole lease duration
    /// on this replica's clock: take it.
    Take,
    /// Held by another replica that renewed it within the lease duration: stand by.
    StandBy,
}

/// The elector's memory between attempts.
struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    observed: Option<Observed>,
}

/// Judges `record` against what was `observed` before, at `now`: a change of holder or
/// renewTime restarts the lease duration from `now`. Returns the verdict and the observation
/// to keep.
pub(crate) fn judge(
    observed: Option<&Observed>,
    record: &Record,
    identity: &str,
    duration: Duration,
    now: Instant,
) -> (Verdict, Observed) {
    // A change of holder or renewTime restarts the lease duration from now.
    let seen = match observed {
        Some(o) if o.record == *record => o.clone(),
        _ => Observed {
            record: record.clone(),
            seen_at: now,
        },
    };
    let verdict = match record.holder.as_deref() {
        None => Verdict::Take,
        Some(holder) if holder == identity => Verdict::Renew,
        Some(_) => {
            let silent = now.saturating_duration_since(seen.seen_at);
            if silent >= duration {
                Verdict::Take
            } else {
                Verdict::StandBy
            }
        }
    };
    (verdict, seen)
}

impl Elector {
    /// One attempt to take or renew the Lease: whether this replica holds it afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let name = self.settings.name.clone();
        let existing = match self.api.get(&name).await {
            Ok(lease) => Some(lease),
            Err(kube::Error::Api(status)) if status.code == 404 => None,
            Err(e) => return Err(e),
        };
        let now_wall = MicroTime(Timestamp::now());
        let seconds = i32::try_from(self.settings.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.settings.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now_wall.clone()),
                    renew_time: Some(now_wall),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe_own(&created);
                    Ok(true)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let record = Record::of(lease.spec.as_ref());
        let (verdict, seen) = judge(
            self.observed.as_ref(),
            &record,
            &self.settings.identity,
            self.settings.duration,
            Instant::now(),
        );
        self.observed = Some(seen);
        if verdict == Verdict::StandBy {
            return Ok(false);
        }
        let mut spec = lease.spec.clone().unwrap_or_default();
        if verdict == Verdict::Take {
            spec.acquire_time = Some(now_wall.clone());
            spec.lease_transitions = Some(
                spec.lease_transitions
                    .unwrap_or(0)
                    .saturating_add(i32::from(record.holder.is_some())),
            );
        }
        spec.holder_identity = Some(self.settings.identity.clone());
        spec.lease_duration_seconds = Some(seconds);
        spec.renew_time = Some(now_wall);
        // Conditional on the resourceVersion read: of two replicas taking it at once, one wins.
        match self
            .api
            .patch(&name, &PatchParams::default(), &conditional(&lease, &spec))
            .await
        {
            Ok(written) => {
                self.observe_own(&written);
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn observe_own(&mut self, lease: &Lease) {
        self.observed = Some(Observed {
            record: Record::of(lease.spec.as_ref()),
            seen_at: Instant::now(),
        });
    }

    /// Gives the Lease up, if this replica holds it: a standby takes over at once.
    async fn release(&mut self) -> Result<(), kube::Error> {
        let lease = self.api.get(&self.settings.name).await?;
        if Record::of(lease.spec.as_ref()).holder.as_deref() != Some(&self.settings.identity) {
            return Ok(());
        }
        let mut spec = lease.spec.clone().unwrap_or_default();
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api
            .patch(
                &self.settings.name,
                &PatchParams::default(),
                &conditional(&lease, &spec),
            )
            .await
            .map(|_| ())
    }
}

/// A merge patch setting the Lease's spec to `spec`, on condition that the Lease is still at the
/// resourceVersion it was read at (a conflict otherwise).
fn conditional(lease: &Lease, spec: &LeaseSpec) -> Patch<serde_json::Value> {
    Patch::Merge(serde_json::json!({
        "metadata": { "resourceVersion": lease.metadata.resource_version },
        "spec": {
            "holderIdentity": spec.holder_identity,
            "leaseDurationSeconds": spec.lease_duration_seconds,
            "acquireTime": spec.acquire_time,
            "renewTime": spec.renew_time,
            "leaseTransitions": spec.lease_transitions,
        },
    }))
}

/// How long to wait before the next renewal: the retry period, and never past the renew deadline
/// `held_until` of a Lease held.
pub(crate) fn renewal_wait(retry: Duration, held_until: Option<Instant>) -> Duration {
    match held_until {
        Some(until) => retry.min(until.saturating_duration_since(Instant::now())),
        None => retry,
    }
}

/// Runs the election until `stop` turns true, then releases the Lease if this replica holds it.
/// `leading` says whether this replica leads; `fence` says until when it may write.
pub async fn elect(
    client: Client,
    settings: LeaseSettings,
    fence: std::sync::Arc<Fence>,
    leading: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let mut elector = Elector {
        api,
        settings: settings.clone(),
        observed: None,
    };
    let renew_deadline = settings.renew_deadline();
    let retry = settings.retry_period();
    // Until when this replica has held the Lease by its own clock (the last renewal's start plus
    // the renew deadline).
    let mut held_until: Option<Instant> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        let started = Instant::now();
        let attempt =
            tokio::time::timeout(settings.api_timeout, elector.try_acquire_or_renew()).await;
        match attempt {
            Ok(Ok(true)) => {
                let until = started.checked_add(renew_deadline).unwrap_or(started);
                held_until = Some(until);
                fence.extend(until);
                if !*leading.borrow() {
                    info!(identity = %settings.identity, "acquired the lease");
                }
                leading.send_replace(true);
            }
            Ok(Ok(false)) => {
                if *leading.borrow() {
                    warn!(identity = %settings.identity, "the lease is held by another replica");
                }
                held_until = None;
                fence.close();
                leading.send_replace(false);
            }
            Ok(Err(e)) => {
                debug!("cannot renew or acquire the lease: {e}");
            }
            Err(_) => {
                debug!(
                    "renewing or acquiring the lease took over {}s",
                    settings.api_timeout.as_secs()
                );
            }
        }
        // A leader that could not renew by its deadline stops: the fence is already shut.
        if held_until.is_some_and(|until| Instant::now() >= until) {
            warn!(identity = %settings.identity, "could not renew the lease before its renew deadline: standing by");
            held_until = None;
            fence.close();
            leading.send_replace(false);
        }
        let wait = renewal_wait(retry, held_until);
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
    fence.close();
    leading.send_replace(false);
    match tokio::time::timeout(settings.api_timeout, elector.release()).await {
        Ok(Ok(())) => info!("lease released"),
        Ok(Err(e)) => warn!("releasing the lease failed: {e}"),
        Err(_) => warn!("releasing the lease timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DURATION: Duration = Duration::from_secs(15);

    fn record(holder: &str, renewed: i64) -> Record {
        Record {
            holder: Some(holder.into()),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
            transitions: Some(0),
        }
    }

    #[test]
    fn a_free_lease_is_taken_and_an_own_lease_renewed() {
        let now = Instant::now();
        let free = Record {
            holder: None,
            renew_time: None,
            transitions: None,
        };
        assert_eq!(judge(None, &free, "a", DURATION, now).0, Verdict::Take);
        assert_eq!(
            judge(None, &record("a", 0), "a", DURATION, now).0,
            Verdict::Renew
        );
    }

    #[test]
    fn a_standby_waits_a_whole_duration_on_its_own_clock_from_the_first_sight() {
        let start = Instant::now();
        // The leader's renewTime is an hour old by any wall clock: it does not matter.
        let held = record("leader", 0);
        let (verdict, seen) = judge(None, &held, "standby", DURATION, start);
        assert_eq!(verdict, Verdict::StandBy);
        let later = start + Duration::from_secs(14);
        assert_eq!(
            judge(Some(&seen), &held, "standby", DURATION, later).0,
            Verdict::StandBy
        );
        let expired = start + DURATION;
        assert_eq!(
            judge(Some(&seen), &held, "standby", DURATION, expired).0,
            Verdict::Take
        );
    }

    #[test]
    fn a_renewal_seen_restarts_the_standbys_wait() {
        let start = Instant::now();
        let (_, seen) = judge(None, &record("leader", 0), "standby", DURATION, start);
        // At 14 s the leader's renewTime changed: another whole duration from now.
        let renewed = start + Duration::from_secs(14);
        let (verdict, seen) = judge(
            Some(&seen),
            &record("leader", 2),
            "standby",
            DURATION,
            renewed,
        );
        assert_eq!(verdict, Verdict::StandBy);
        assert_eq!(seen.seen_at, renewed);
        assert_eq!(
            judge(
                Some(&seen),
                &record("leader", 2),
                "standby",
                DURATION,
                start + Duration::from_secs(20)
            )
            .0,
            Verdict::StandBy
        );
    }

    #[test]
    fn a_renew_time_far_ahead_or_behind_never_decides_alone() {
        // A leader whose clock runs 30 s fast or an hour slow: only changes count.
        let start = Instant::now();
        for renewed in [4_000_000_000, 1] {
            let held = record("leader", renewed);
            let (verdict, _) = judge(None, &held, "standby", DURATION, start);
            assert_eq!(verdict, Verdict::StandBy);
        }
    }

    #[test]
    fn the_leader_stops_writing_a_third_of_the_duration_before_a_standby_may_take_over() {
        let settings = LeaseSettings {
            name: "l".into(),
            namespace: "n".into(),
            identity: "a".into(),
            duration: DURATION,
            api_timeout: Duration::from_secs(10),
        };
        assert_eq!(settings.renew_deadline(), Duration::from_secs(10));
        assert_eq!(settings.retry_period().as_millis(), 2142);
    }

    #[test]
    fn a_fence_allows_writes_until_its_deadline_only() {
        let fence = Fence::new(true);
        assert!(!fence.may_write(), "no lease yet");
        fence.extend(Instant::now() + Duration::from_secs(60));
        assert!(fence.may_write());
        assert!(fence.remaining().unwrap() <= Duration::from_secs(60));
        fence.extend(Instant::now());
        assert!(!fence.may_write(), "the deadline passed");
        fence.extend(Instant::now() + Duration::from_secs(60));
        fence.close();
        assert!(!fence.may_write(), "the lease was lost");
        assert_eq!(Fence::new(false).remaining(), Some(Duration::MAX));
    }
}
