//! Sharding: policies shared across operator replicas (`--sharding`), each replica holding a
//! coordination.k8s.io/v1 Lease of its own.
//!
//! Every replica renews the Lease `<lease-name>-<hash of its identity>`, labelled
//! [`GROUP_LABEL`], and publishes on it (the annotation [`RING_ANNOTATION`]) the members of the
//! ring it has adopted. From the list of the group's Leases it judges which replicas are alive the
//! way a standby judges a leader ([`super::lease::judge`]: on its own monotonic clock, from the
//! last change it saw), builds the ring over them ([`crate::ring`]), and owns a policy when
//! - the ring it adopted and the ring it last published both give the policy to it, and
//! - no other live replica's published ring gives the policy to that replica.
//!
//! A replica drops a policy as soon as its adopted ring gives it to another one, before it
//! publishes that ring; it takes a policy only after publishing a ring that gives it the policy
//! and then reading no other live replica's claim on it. Of two replicas that claim one policy at
//! once, the one that reads second sees the other's claim and waits; a replica whose Lease has not
//! changed for a whole lease duration claims nothing (its own fence closed a third of a duration
//! before: [`super::lease::Fence`]). So a policy is taken only when its previous owner's Lease
//! has expired or that owner has published the new ring, as the sharding issue requires.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::lease::{Fence, LeaseSettings, Observed, Record, Verdict, judge, renewal_wait};
use crate::ring::{self, DEFAULT_VNODES, MAX_MEMBERS, Ring};

/// The label of every Lease of one group of shards: the hash of `--lease-name`, in hex.
pub const GROUP_LABEL: &str = "scalewise.dev/shard-group";
/// The annotation on a replica's Lease naming the members of the ring it has adopted.
pub const RING_ANNOTATION: &str = "scalewise.dev/ring";
/// A Lease not renewed for this many lease durations is deleted by any live replica.
const FORGET_AFTER_DURATIONS: u32 = 5;

/// The name of `identity`'s Lease in the group `group` (`--lease-name`): valid for any identity.
pub fn lease_name(group: &str, identity: &str) -> String {
    format!("{group}-{:016x}", ring::hash(identity.as_bytes()))
}

/// The value of [`GROUP_LABEL`] for the group `group`.
pub fn group_label(group: &str) -> String {
    format!("{:016x}", ring::hash(group.as_bytes()))
}

/// A replica's name in the ring: its identity, without the commas that separate the members
/// of a published ring.
pub fn member_name(identity: &str) -> String {
    identity.replace(',', "_")
}

/// What a replica knows of the group when it decides what it owns.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    /// Whether this replica holds its own Lease (its last renewal is within its renew deadline).
    pub holding: bool,
    /// The ring over the replicas this one judges alive, itself included while it holds.
    pub adopted: Ring,
    /// The ring this replica published last, and read the others' claims after.
    pub published: Ring,
    /// The other live replicas and the rings they published.
    pub claims: Vec<(String, Ring)>,
}

impl Default for View {
    fn default() -> Self {
        Self {
            holding: false,
            adopted: empty(),
            published: empty(),
            claims: Vec::new(),
        }
    }
}

fn empty() -> Ring {
    Ring::new(&[], DEFAULT_VNODES)
}

impl View {
    /// Whether `me` owns the policy `key` (`namespace/name`).
    pub fn owns(&self, me: &str, key: &str) -> bool {
        self.holding
            && self.adopted.owner(key) == Some(me)
            && self.published.owner(key) == Some(me)
            && !self
                .claims
                .iter()
                .any(|(other, ring)| ring.owner(key) == Some(other.as_str()))
    }
}

/// This replica's share of the policies, as every reconcile asks it.
#[derive(Debug)]
pub struct Shards {
    me: String,
    manager: String,
    view: RwLock<View>,
    /// Bumped whenever what this replica owns may have changed.
    changes: watch::Sender<u64>,
}

/// Whether this replica evaluates the policy `namespace/name`: every policy without sharding, its
/// share with.
pub fn evaluates(shards: Option<&Shards>, namespace: &str, name: &str) -> bool {
    shards.is_none_or(|s| s.owns(namespace, name))
}

impl Shards {
    pub fn new(identity: &str) -> Self {
        let manager: String = format!("scalewise-{identity}").chars().take(128).collect();
        Self {
            me: member_name(identity),
            manager,
            view: RwLock::new(View::default()),
            changes: watch::Sender::new(0),
        }
    }

    /// This replica's name in the ring.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The field manager of this replica's writes to intents and targets: `scalewise-` and its
    /// name (at most 128 characters, as the API server allows), so that who wrote is visible.
    pub fn field_manager(&self) -> &str {
        &self.manager
    }

    /// Whether this replica owns the policy `namespace/name` now.
    pub fn owns(&self, namespace: &str, name: &str) -> bool {
        let key = format!("{namespace}/{name}");
        self.view
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .owns(&self.me, &key)
    }

    /// The members of the ring this replica adopted.
    pub fn members(&self) -> Vec<String> {
        let view = self.view.read().unwrap_or_else(|e| e.into_inner());
        view.adopted.members().to_vec()
    }

    /// Resolves each time what this replica owns may have changed.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Takes `view`; a change is announced.
    fn set(&self, view: View) {
        let mut current = self.view.write().unwrap_or_else(|e| e.into_inner());
        if *current != view {
            *current = view;
            drop(current);
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// The members a published ring names (at most [`MAX_MEMBERS`], none empty).
fn published_members(lease: &Lease) -> Vec<String> {
    lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RING_ANNOTATION))
        .map(|members| {
            members
                .split(',')
                .filter(|m| !m.is_empty())
                .take(MAX_MEMBERS)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The other replicas of the group as this one judges them from `leases`.
#[derive(Debug, Default, PartialEq)]
struct Judged {
    /// The live ones and the rings they published.
    alive: Vec<(String, Ring)>,
    /// Leases not renewed for [`FORGET_AFTER_DURATIONS`] lease durations: (name, resourceVersion).
    forgotten: Vec<(String, Option<String>)>,
}

/// Judges the group's `leases` (this replica's own, `own`, left out) at `now`, remembering in
/// `observed` when each last changed. A Lease whose holder or renewTime has not changed for a
/// whole lease duration on this replica's clock (or that names no holder) is not alive.
fn judge_all(
    observed: &mut HashMap<String, Observed>,
    leases: &[Lease],
    own: &str,
    me: &str,
    now: Instant,
) -> Judged {
    let mut judged = Judged::default();
    let mut seen = HashMap::with_capacity(leases.len());
    for lease in leases.iter().take(MAX_MEMBERS) {
        let Some(name) = lease.metadata.name.clone() else {
            continue;
        };
        if name == own {
            continue;
        }
        let spec = lease.spec.as_ref();
        let duration = Duration::from_secs(
            spec.and_then(|s| s.lease_duration_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(0),
        );
        let record = Record::of(spec);
        let (verdict, observation) = judge(observed.get(&name), &record, me, duration, now);
        let silent = now.saturating_duration_since(observation.seen_at);
        match (verdict, record.holder.as_deref()) {
            (Verdict::StandBy, Some(holder)) => judged.alive.push((
                member_name(holder),
                Ring::new(&published_members(lease), DEFAULT_VNODES),
            )),
            _ if silent >= duration.saturating_mul(FORGET_AFTER_DURATIONS) => judged
                .forgotten
                .push((name.clone(), lease.metadata.resource_version.clone())),
            _ => {}
        }
        seen.insert(name, observation);
    }
    *observed = seen;
    judged.alive.sort_by(|a, b| a.0.cmp(&b.0));
    judged
}

/// Renews (or creates) this replica's Lease, publishing `members` as its ring.
async fn renew(
    api: &Api<Lease>,
    name: &str,
    group: &str,
    settings: &LeaseSettings,
    members: &[String],
) -> Result<(), kube::Error> {
    let now = MicroTime(Timestamp::now());
    let seconds = i32::try_from(settings.duration.as_secs()).unwrap_or(i32::MAX);
    let ring = members.join(",");
    let patch = serde_json::json!({
        "metadata": {
            "labels": { GROUP_LABEL: group },
            "annotations": { RING_ANNOTATION: ring },
        },
        "spec": {
            "holderIdentity": settings.identity,
            "leaseDurationSeconds": seconds,
            "renewTime": now,
        },
    });
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    namespace: Some(settings.namespace.clone()),
                    labels: Some([(GROUP_LABEL.to_owned(), group.to_owned())].into()),
                    annotations: Some([(RING_ANNOTATION.to_owned(), ring)].into()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(settings.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    ..LeaseSpec::default()
                }),
            };
            api.create(&PostParams::default(), &lease).await.map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// Holds this replica's Lease and keeps `shards` up to date until `stop` turns true; then drops
/// every policy, closes the fence and deletes the Lease, so that the others take its policies at
/// once. `fence` says until when this replica may write, as with leader election.
pub async fn share(
    client: Client,
    settings: LeaseSettings,
    fence: Arc<Fence>,
    shards: Arc<Shards>,
    mut stop: watch::Receiver<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let own = lease_name(&settings.name, &settings.identity);
    let group = group_label(&settings.name);
    let selector = format!("{GROUP_LABEL}={group}");
    let (renew_deadline, retry) = (settings.renew_deadline(), settings.retry_period());
    let me = shards.me().to_owned();
    info!(lease = %format!("{}/{own}", settings.namespace), identity = %settings.identity, "sharding: holding this replica's lease");
    let mut observed: HashMap<String, Observed> = HashMap::new();
    let mut view = View::default();
    let mut held_until: Option<Instant> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        // 1. Renew, publishing the ring adopted so far.
        let started = Instant::now();
        let publishing = view.adopted.clone();
        let renewed = tokio::time::timeout(
            settings.api_timeout,
            renew(&api, &own, &group, &settings, publishing.members()),
        )
        .await;
        let published = match renewed {
            Ok(Ok(())) => {
                let until = started.checked_add(renew_deadline).unwrap_or(started);
                held_until = Some(until);
                fence.extend(until);
                Some(publishing)
            }
            Ok(Err(e)) => {
                debug!("cannot renew this replica's lease: {e}");
                None
            }
            Err(_) => {
                debug!(
                    "renewing this replica's lease took over {}s",
                    settings.api_timeout.as_secs()
                );
                None
            }
        };
        if held_until.is_some_and(|until| Instant::now() >= until) {
            warn!(identity = %settings.identity, "could not renew this replica's lease before its renew deadline: it owns no policy until it does");
            held_until = None;
            fence.close();
        }
        view.holding = held_until.is_some();
        // 2. Read the others, after publishing: their claims as of now.
        let listed = tokio::time::timeout(
            settings.api_timeout,
            api.list(&ListParams::default().labels(&selector)),
        )
        .await;
        match listed {
            Ok(Ok(list)) => {
                let judged = judge_all(&mut observed, &list.items, &own, &me, Instant::now());
                let mut members: Vec<String> =
                    judged.alive.iter().map(|(m, _)| m.clone()).collect();
                if view.holding {
                    members.push(me.clone());
                }
                let adopted = Ring::new(&members, DEFAULT_VNODES);
                if adopted != view.adopted {
                    info!(members = %adopted.members().join(","), "sharding: the ring changed");
                }
                view.adopted = adopted;
                view.claims = judged.alive;
                if let Some(published) = published {
                    view.published = published;
                }
                for (name, version) in judged.forgotten {
                    let params = DeleteParams {
                        preconditions: Some(Preconditions {
                            resource_version: version,
                            uid: None,
                        }),
                        ..DeleteParams::default()
                    };
                    match tokio::time::timeout(settings.api_timeout, api.delete(&name, &params))
                        .await
                    {
                        Ok(Ok(_)) => {
                            info!(lease = %name, "sharding: deleted the lease of a replica gone for {FORGET_AFTER_DURATIONS} lease durations")
                        }
                        Ok(Err(e)) => debug!("cannot delete the lease {name}: {e}"),
                        Err(_) => debug!("deleting the lease {name} timed out"),
                    }
                }
            }
            // Without a fresh read nothing new is taken: the published ring stays the one the
            // claims were read after.
            Ok(Err(e)) => debug!("cannot list the shards' leases: {e}"),
            Err(_) => debug!(
                "listing the shards' leases took over {}s",
                settings.api_timeout.as_secs()
            ),
        }
        if !view.holding {
            view.adopted = empty();
            view.published = empty();
        }
        shards.set(view.clone());
        let wait = renewal_wait(retry, held_until);
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
    shards.set(View::default());
    fence.close();
    match tokio::time::timeout(
        settings.api_timeout,
        api.delete(&own, &DeleteParams::default()),
    )
    .await
    {
        Ok(Ok(_)) => info!("sharding: this replica's lease deleted"),
        Ok(Err(e)) => warn!("deleting this replica's lease failed: {e}"),
        Err(_) => warn!("deleting this replica's lease timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(members: &[&str]) -> Ring {
        let members: Vec<String> = members.iter().map(|m| (*m).to_owned()).collect();
        Ring::new(&members, DEFAULT_VNODES)
    }

    fn keys() -> Vec<String> {
        (0..300).map(|i| format!("ns-{}/p-{i}", i % 7)).collect()
    }

    fn lease(name: &str, holder: Option<&str>, renewed: i64, members: &str) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(name.into()),
                resource_version: Some("7".into()),
                annotations: Some([(RING_ANNOTATION.to_owned(), members.to_owned())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn each_policy_has_one_owner_once_every_replica_published_the_same_ring() {
        let all = ring(&["a", "b", "c"]);
        let view_of = |me: &str| View {
            holding: true,
            adopted: all.clone(),
            published: all.clone(),
            claims: ["a", "b", "c"]
                .iter()
                .filter(|m| **m != me)
                .map(|m| ((*m).to_owned(), all.clone()))
                .collect(),
        };
        let views: Vec<(&str, View)> = ["a", "b", "c"].iter().map(|m| (*m, view_of(m))).collect();
        for key in keys() {
            let owners: Vec<&str> = views
                .iter()
                .filter(|(me, v)| v.owns(me, &key))
                .map(|(me, _)| *me)
                .collect();
            assert_eq!(owners.len(), 1, "{key}: {owners:?}");
        }
    }

    #[test]
    fn a_new_replica_waits_until_the_old_owner_published_the_new_ring() {
        let (old, new) = (ring(&["a", "b"]), ring(&["a", "b", "c"]));
        // c joined: it adopted and published the new ring, but a and b still publish the old one.
        let mut c = View {
            holding: true,
            adopted: new.clone(),
            published: new.clone(),
            claims: vec![("a".into(), old.clone()), ("b".into(), old.clone())],
        };
        let moving: Vec<String> = keys()
            .into_iter()
            .filter(|k| new.owner(k) == Some("c"))
            .collect();
        assert!(!moving.is_empty());
        assert!(
            moving.iter().all(|k| !c.owns("c", k)),
            "c took a live owner's policy"
        );
        // a published the new ring: what moves from a to c is c's now; b's not yet.
        c.claims[0].1 = new.clone();
        for k in &moving {
            assert_eq!(c.owns("c", k), old.owner(k) == Some("a"), "{k}");
        }
        // b's Lease expired: b claims nothing any more.
        c.claims.truncate(1);
        assert!(moving.iter().all(|k| c.owns("c", k)));
    }

    #[test]
    fn a_replica_drops_a_policy_as_soon_as_it_adopts_a_ring_that_moves_it() {
        let (old, new) = (ring(&["a", "b"]), ring(&["a", "b", "c"]));
        // a adopted the new ring but has not published it yet.
        let a = View {
            holding: true,
            adopted: new.clone(),
            published: old.clone(),
            claims: vec![("b".into(), old.clone())],
        };
        for k in keys() {
            if new.owner(&k) == Some("c") {
                assert!(!a.owns("a", &k), "{k} moves to c: a keeps it");
            }
            if new.owner(&k) == Some("a") && old.owner(&k) == Some("a") {
                assert!(a.owns("a", &k), "{k} stays with a");
            }
        }
    }

    #[test]
    fn a_replica_that_does_not_hold_its_lease_owns_nothing() {
        let one = ring(&["a"]);
        let view = View {
            holding: false,
            adopted: one.clone(),
            published: one,
            claims: Vec::new(),
        };
        assert!(keys().iter().all(|k| !view.owns("a", k)));
    }

    #[test]
    fn two_claims_at_once_never_give_one_policy_two_owners() {
        // a and b each think the other is gone and published a ring of one: each sees the
        // other's claim on what it wants, so neither takes it.
        let (a_ring, b_ring) = (ring(&["a"]), ring(&["b"]));
        let a = View {
            holding: true,
            adopted: a_ring.clone(),
            published: a_ring.clone(),
            claims: vec![("b".into(), b_ring.clone())],
        };
        let b = View {
            holding: true,
            adopted: b_ring.clone(),
            published: b_ring,
            claims: vec![("a".into(), a_ring)],
        };
        for k in keys() {
            assert!(!(a.owns("a", &k) && b.owns("b", &k)), "{k}");
        }
    }

    #[test]
    fn others_are_alive_until_their_lease_is_silent_for_a_duration_on_this_clock() {
        let start = Instant::now();
        let mut observed = HashMap::new();
        let leases = vec![
            lease("own", Some("me"), 1, "me"),
            lease("l-b", Some("b"), 1, "b,me"),
            lease("l-free", None, 1, ""),
        ];
        let judged = judge_all(&mut observed, &leases, "own", "me", start);
        assert_eq!(judged.alive.len(), 1);
        assert_eq!(judged.alive[0].0, "b");
        assert_eq!(judged.alive[0].1, ring(&["b", "me"]));
        // 14 s later without a change: still alive; at 15 s: gone.
        let later = start + Duration::from_secs(14);
        assert_eq!(
            judge_all(&mut observed, &leases, "own", "me", later)
                .alive
                .len(),
            1
        );
        let expired = start + Duration::from_secs(15);
        assert!(
            judge_all(&mut observed, &leases, "own", "me", expired)
                .alive
                .is_empty()
        );
        // Renewed since: alive again, for another duration.
        let renewed = vec![lease("l-b", Some("b"), 20, "b,me")];
        assert_eq!(
            judge_all(&mut observed, &renewed, "own", "me", expired)
                .alive
                .len(),
            1
        );
        // Five durations without a change: deleted.
        let gone = expired + Duration::from_secs(75);
        let judged = judge_all(&mut observed, &renewed, "own", "me", gone);
        assert_eq!(
            judged.forgotten,
            vec![("l-b".to_owned(), Some("7".to_owned()))]
        );
    }

    #[test]
    fn lease_names_are_valid_for_any_identity_and_members_hold_no_commas() {
        let name = lease_name("scalewise-leader", "Weird_Host,Name.Example");
        assert!(name.starts_with("scalewise-leader-"));
        assert_eq!(name.len(), "scalewise-leader-".len() + 16);
        assert_eq!(member_name("a,b"), "a_b");
        assert_eq!(group_label("scalewise-leader").len(), 16);
        let many = "x,".repeat(5000);
        assert!(published_members(&lease("l", Some("x"), 1, &many)).len() <= MAX_MEMBERS);
    }
}
