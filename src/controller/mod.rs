//! The controller: `scalewise run`.
//!
//! One kube-runtime `Controller` per watched scope (all namespaces, or each `--namespace`)
//! reconciles ScalingPolicies. It also watches Deployments and HorizontalPodAutoscalers and maps
//! each to the policies that target it, so a manual scale, a new Deployment or a competing HPA
//! is seen at once. Only the leader (a coordination.k8s.io/v1 Lease) reconciles; with
//! `--sharding` every replica reconciles its share of the policies instead ([`shard`]).

// Arithmetic on user data and on times never panics: checked or saturating only (CI makes these
// warnings errors).
#![warn(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

pub mod apply;
pub mod context;
pub mod decoded;
pub mod error;
pub mod events;
#[cfg(test)]
mod fixtures;
pub mod forecast;
pub mod health;
pub mod intent;
pub mod lean;
pub mod lease;
pub mod observe;
pub mod ownership;
pub mod persist;
pub mod plan;
pub mod pods;
pub mod reconcile;
pub mod resolved;
pub mod review;
pub mod shard;
pub mod stores;
pub mod target;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, future};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::fair::FairSlots;
use crate::pods::LeanPod;
use crate::telemetry::Metrics;
pub use context::Context;
pub use decoded::Decoded;
pub use error::Error;
pub use health::Health;
pub use lease::{Fence, LeaseSettings};
pub use observe::Observe;
pub use resolved::Cache;
pub use stores::until_ready;

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    pub metrics_bind: SocketAddr,
    /// The TLS port of `/metrics` for reviewed clients, and its certificate.
    pub secure_metrics_bind: SocketAddr,
    pub metrics_certificate: crate::telemetry::secure::Certificate,
    pub leader_election: bool,
    /// Share the policies across replicas, each holding a Lease of its own (`--sharding`),
    /// instead of electing one leader.
    pub sharding: bool,
    /// The leader's Lease, or with sharding the prefix of each replica's Lease.
    pub lease_name: String,
    /// Where the Lease lives; default: the client's namespace.
    pub lease_namespace: Option<String>,
    /// How long a lease lasts without renewal: a standby takes over within this after the
    /// leader dies. The leader stops writing a third of it earlier.
    pub lease_duration: Duration,
    /// The longest one call to the API server may take (a watch excepted).
    pub api_timeout: Duration,
    pub max_concurrent_reconciles: usize,
    /// The most evaluations of one namespace per minute; more wait their turn.
    pub namespace_evaluations_per_minute: u32,
    /// The most API writes (status, intents, `/scale`, events) per second, across policies;
    /// more wait their turn (`--api-writes-per-second`).
    pub api_writes_per_second: u32,
    /// How long a leading controller with policies may go without a reconcile before `/healthz`
    /// fails (at least three times the longest policy interval).
    pub stall_timeout: Duration,
    /// This replica's name in the Lease and in events.
    pub identity: String,
    /// How long in-flight work may take after SIGTERM before the controller stops regardless.
    pub shutdown_timeout: Duration,
    /// How long the policy watch may fail to list before `/healthz` fails.
    pub list_failure_timeout: Duration,
    /// The shortest interval any policy is evaluated at, whatever its spec says, and the
    /// shortest time between two evaluations of one policy however often its spec changes.
    pub min_interval: Duration,
    /// The longest a written status may lag its evaluations when nothing that matters changes
    /// (`--status-heartbeat`).
    pub status_heartbeat: Duration,
}

/// The longest error text one log line carries (an API error can quote a whole body).
const LOG_ERROR_BYTES: usize = 1024;

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot serve /metrics on {bind}: {source}")]
    Serve {
        bind: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot serve /metrics over TLS: {0}")]
    Tls(#[from] crate::telemetry::secure::TlsError),
}

/// Runs until `shutdown` resolves (SIGTERM): in-flight reconciles finish and the lease is
/// released, within `settings.shutdown_timeout`; work still in flight then (a query to a server
/// that hangs, a list that keeps failing) is abandoned, and a lease not released expires.
pub async fn run(
    client: Client,
    settings: Settings,
    observer: Arc<dyn Observe>,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let health = Arc::new(Health::new(
        settings.stall_timeout,
        settings.list_failure_timeout,
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        info!("shutting down: finishing in-flight reconciles");
        let _ = stop_tx.send(true);
    });

    // Everything that can fail at start first: the certificate and both ports.
    let tls = crate::telemetry::secure::tls_config(&settings.metrics_certificate)?;
    let listener = bind(settings.metrics_bind).await?;
    let secure = bind(settings.secure_metrics_bind).await?;
    info!(
        bind = %settings.metrics_bind,
        metrics = settings.metrics_bind.ip().is_loopback(),
        "serving /healthz and /readyz (and /metrics on a loopback address)"
    );
    let server = tokio::spawn(crate::telemetry::serve_on(
        listener,
        metrics.clone(),
        health.clone(),
        stopped(stop_rx.clone()),
    ));
    info!(
        bind = %settings.secure_metrics_bind,
        "serving /metrics over TLS to clients allowed to get /metrics"
    );
    let authorize = Arc::new(review::ApiReview {
        client: client.clone(),
        timeout: settings.api_timeout,
    });
    let secure_server = tokio::spawn(crate::telemetry::secure::serve_tls(
        secure,
        tls,
        metrics.clone(),
        health.clone(),
        authorize,
        stopped(stop_rx.clone()),
    ));

    let deadline = {
        let (stop, timeout) = (stop_rx.clone(), settings.shutdown_timeout);
        async move {
            stopped(stop).await;
            tokio::time::sleep(timeout).await;
        }
    };
    let fence = Arc::new(Fence::new(settings.leader_election || settings.sharding));
    let shards = settings
        .sharding
        .then(|| Arc::new(shard::Shards::new(&settings.identity)));
    let runner = Runner {
        client,
        settings,
        observer,
        metrics,
        health,
        fence,
        shards,
    };
    let work = async move {
        let result = if runner.shards.is_some() {
            runner.share_then_run(stop_rx).await;
            Ok(())
        } else if runner.settings.leader_election {
            runner.lead_then_run(stop_rx).await
        } else {
            runner.health.set_leader(true);
            runner.run_controllers(stop_rx).await;
            Ok(())
        };
        match server.await {
            Ok(Err(e)) => warn!("the metrics server failed: {e}"),
            Err(e) => warn!("the metrics server task failed: {e}"),
            Ok(Ok(())) => {}
        }
        if let Err(e) = secure_server.await {
            warn!("the TLS metrics server task failed: {e}");
        }
        result
    };
    tokio::select! {
        result = work => result,
        () = deadline => {
            warn!("shutting down: in-flight work did not finish within the shutdown timeout; stopping anyway");
            Ok(())
        }
    }
}

/// A listener on `address`, or why not.
async fn bind(address: SocketAddr) -> Result<tokio::net::TcpListener, RunError> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| RunError::Serve {
            bind: address,
            source,
        })
}

/// Resolves when `stop` turns true.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// What every controller of this replica shares, for as long as it runs.
struct Runner {
    client: Client,
    settings: Settings,
    observer: Arc<dyn Observe>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    /// Until when this replica may write (always, without leader election).
    fence: Arc<Fence>,
    /// This replica's share of the policies, with `--sharding`.
    shards: Option<Arc<shard::Shards>>,
}

impl Runner {
    /// The Lease of this replica (with sharding) or the leader's.
    fn lease(&self) -> LeaseSettings {
        let settings = &self.settings;
        LeaseSettings {
            name: settings.lease_name.clone(),
            namespace: settings
                .lease_namespace
                .clone()
                .unwrap_or_else(|| self.client.default_namespace().to_owned()),
            identity: settings.identity.clone(),
            duration: settings.lease_duration,
            api_timeout: settings.api_timeout,
        }
    }

    /// With sharding: holds this replica's Lease and runs the controllers, which reconcile only
    /// the policies this replica owns, until `stop`; then gives its share back.
    async fn share_then_run(&self, stop: watch::Receiver<bool>) {
        let Some(shards) = self.shards.clone() else {
            return;
        };
        // The lease is deleted (the share given back) only once the controllers have stopped.
        let (release_tx, release_rx) = watch::channel(false);
        let sharing = tokio::spawn(shard::share(
            self.client.clone(),
            self.lease(),
            self.fence.clone(),
            shards,
            release_rx,
        ));
        self.health.set_leader(true);
        self.run_controllers(stop).await;
        self.health.set_leader(false);
        let _ = release_tx.send(true);
        if let Err(e) = sharing.await {
            warn!("the sharding task failed: {e}");
        }
    }

    /// Waits for leadership, runs the controllers while leading, and stands by again when the lease
    /// is lost. On shutdown the lease is released.
    async fn lead_then_run(&self, stop: watch::Receiver<bool>) -> Result<(), RunError> {
        let Self {
            client,
            settings,
            health,
            ..
        } = self;
        let lease = self.lease();
        info!(lease = %format!("{}/{}", lease.namespace, lease.name), identity = %settings.identity, "waiting for leadership");
        let (leading_tx, mut leading) = watch::channel(false);
        // The election stops (and releases the lease) only once the controllers have.
        let (release_tx, release_rx) = watch::channel(false);
        let election = tokio::spawn(lease::elect(
            client.clone(),
            lease,
            self.fence.clone(),
            leading_tx,
            release_rx,
        ));
        loop {
            let is_leader = *leading.borrow_and_update();
            health.set_leader(is_leader);
            if *stop.borrow() {
                break;
            }
            if is_leader {
                info!(identity = %settings.identity, "leading: starting the controllers");
                let mut lost = leading.clone();
                let mut stop_or_lost = stop.clone();
                let (tx, rx) = watch::channel(false);
                let relay = tokio::spawn(async move {
                    tokio::select! {
                        _ = stop_or_lost.wait_for(|s| *s) => {}
                        _ = lost.wait_for(|l| !*l) => {}
                    }
                    let _ = tx.send(true);
                });
                self.run_controllers(rx).await;
                relay.abort();
                if *stop.borrow() {
                    break;
                }
                warn!(identity = %settings.identity, "lost leadership: standing by");
                continue;
            }
            let mut stop_wait = stop.clone();
            tokio::select! {
                _ = stop_wait.wait_for(|s| *s) => break,
                changed = leading.changed() => {
                    if changed.is_err() {
                        error!("leader election stopped");
                        break;
                    }
                }
            }
        }
        health.set_leader(false);
        let _ = release_tx.send(true);
        if let Err(e) = election.await {
            warn!("the leader election task failed: {e}");
        }
        Ok(())
    }

    /// Runs one controller per scope until `stop` turns true.
    async fn run_controllers(&self, stop: watch::Receiver<bool>) {
        let Self {
            client,
            settings,
            observer,
            metrics,
            health,
            fence,
            shards,
        } = self;
        let scopes: Vec<Option<String>> = if settings.namespaces.is_empty() {
            vec![None]
        } else {
            settings.namespaces.iter().cloned().map(Some).collect()
        };
        let slots = Arc::new(FairSlots::new(settings.max_concurrent_reconciles));
        let budget = Arc::new(crate::fair::Budget::new(
            settings.namespace_evaluations_per_minute,
            Duration::from_secs(60),
        ));
        // One bucket for every write of this replica, a second's worth at once.
        let pace = Arc::new(crate::fair::Budget::new(
            settings.api_writes_per_second,
            Duration::from_secs(1),
        ));
        let events = Arc::new(events::Publisher::new(
            client.clone(),
            "scalewise",
            settings.identity.clone(),
        ));
        let pending = Arc::new(AtomicUsize::new(scopes.len()));
        let kinds = Arc::new(target::Kinds::default());
        let stores: Vec<_> = scopes
            .iter()
            .map(|_| reflector::store::<Decoded>())
            .collect();
        let readers: Arc<Vec<Store<Decoded>>> =
            Arc::new(stores.iter().map(|(r, _)| r.clone()).collect());
        // One cache of resolved policies per scope.
        let floor = jiff::SignedDuration::try_from(settings.min_interval)
            .unwrap_or(jiff::SignedDuration::MAX);
        let caches: Vec<Arc<Cache>> = scopes.iter().map(|_| Arc::new(Cache::new(floor))).collect();
        health.set_running(true);
        // What the controller is responsible for, refreshed from the caches on its own clock, so
        // that a reconcile that never returns still counts as a stall.
        let workload = {
            let (health, readers, caches) = (health.clone(), readers.clone(), caches.clone());
            let (metrics, shards) = (metrics.clone(), shards.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    metrics.watch_failing(health.watch_failing_for());
                    // With sharding, only this replica's share: a stall is one of its own.
                    let policies: usize = readers
                        .iter()
                        .map(|s| {
                            s.state()
                                .iter()
                                .filter(|p| owned(shards.as_deref(), p))
                                .count()
                        })
                        .sum();
                    if let Some(shards) = &shards {
                        metrics.shard(policies, shards.members().len());
                    }
                    let longest = caches
                        .iter()
                        .map(|c| c.longest_interval())
                        .max()
                        .unwrap_or_default();
                    health.set_workload(policies, longest);
                }
            })
        };
        let runs = scopes.into_iter().zip(stores).zip(caches).map(
            |((scope, (reader, writer)), resolved)| {
                let scope_ctx = Scope {
                    resolved,
                    client: client.clone(),
                    namespace: scope,
                    events: events.clone(),
                    observer: observer.clone(),
                    metrics: metrics.clone(),
                    health: health.clone(),
                    slots: slots.clone(),
                    budget: budget.clone(),
                    pace: pace.clone(),
                    fence: fence.clone(),
                    shards: shards.clone(),
                    api_timeout: settings.api_timeout,
                    status_heartbeat: settings.status_heartbeat,
                    pending: pending.clone(),
                    all_policies: readers.clone(),
                    kinds: kinds.clone(),
                };
                run_scope(scope_ctx, reader, writer, stop.clone())
            },
        );
        future::join_all(runs).await;
        workload.abort();
        // A replica that stopped reconciling (it lost the lease, or is shutting down) no longer
        // speaks for any policy: its per-policy series would be stale.
        for (namespace, name) in metrics.known_policies() {
            metrics.forget(&namespace, &name);
        }
        health.set_running(false);
        health.set_synced(false);
        info!("controllers stopped");
    }
}

struct Scope {
    client: Client,
    resolved: Arc<Cache>,
    namespace: Option<String>,
    events: Arc<events::Publisher>,
    observer: Arc<dyn Observe>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    slots: Arc<FairSlots>,
    budget: Arc<crate::fair::Budget>,
    pace: Arc<crate::fair::Budget>,
    fence: Arc<Fence>,
    shards: Option<Arc<shard::Shards>>,
    api_timeout: Duration,
    status_heartbeat: Duration,
    /// Scopes whose caches are not synced yet.
    pending: Arc<AtomicUsize>,
    all_policies: Arc<Vec<Store<Decoded>>>,
    kinds: Arc<target::Kinds>,
}

fn api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn run_scope(
    scope: Scope,
    policies: Store<Decoded>,
    policy_writer: reflector::store::Writer<Decoded>,
    stop: watch::Receiver<bool>,
) {
    let (forget, forget_resolved) = (scope.metrics.clone(), scope.resolved.clone());
    // What this replica remembers of each policy between evaluations (the last status it
    // evaluated and the last it wrote): forgotten with the policy, and with this term of
    // leadership (a new term starts from the statuses on the cluster).
    let written: Arc<std::sync::Mutex<apply::Written>> = Arc::default();
    let forget_written = written.clone();
    let due: Arc<std::sync::Mutex<std::collections::HashMap<_, _>>> = Arc::default();
    let forget_due = due.clone();
    let forecasts: Arc<forecast::Forecasts> = Arc::default();
    let forget_forecast = forecasts.clone();
    let owners = Arc::new(ownership::PolicyIndex::default());
    let index_owners = owners.clone();
    let (watch_health, watch_metrics) = (scope.health.clone(), scope.metrics.clone());
    // Each policy is decoded on its own: one the types cannot hold is reported on itself, and
    // the list it came in is not a failed list. The operator's own status writes change no
    // generation: they do not trigger reconciles.
    let policy_stream = watcher(
        api::<Decoded>(&scope.client, &scope.namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .inspect(move |event| match (health::watch_works(event), event) {
        (Some(true), _) => {
            watch_health.watch_ok();
            watch_metrics.watch_ok();
        }
        (_, Err(e)) => {
            let failing = watch_health.watch_failed();
            watch_metrics.watch_failed(failing);
            warn!(
                failing_secs = failing.as_secs(),
                "cannot list or watch ScalingPolicies: {}",
                crate::text::shorten(&e.to_string(), LOG_ERROR_BYTES)
            );
        }
        _ => {}
    })
    .modify(lean::policy)
    .reflect(policy_writer)
    .inspect(move |event| {
        if let Ok(event) = event {
            index_owners.apply(event);
        }
        if let Ok(watcher::Event::Delete(policy)) = event {
            forget.forget(&policy.namespace().unwrap_or_default(), &policy.name_any());
            forget_resolved.forget(&policy.key());
            forget_written
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&policy.key());
            forget_due
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&policy.key());
            forget_forecast.forget(&policy.key());
        }
    })
    .applied_objects()
    .predicate_filter(predicates::generation, Default::default());

    let (hpas, hpa_writer) = reflector::store::<HorizontalPodAutoscaler>();
    let hpa_stream = watcher(
        api::<HorizontalPodAutoscaler>(&scope.client, &scope.namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(lean::hpa)
    .reflect(hpa_writer)
    .touched_objects();
    // Deployments and StatefulSets: cached (without their pod templates) for their rollout
    // state; only creations and spec changes (such as replicas) wake their policies, not status
    // churn.
    let (deployments, deployment_writer) = reflector::store::<Deployment>();
    let deployment_stream = watcher(
        api::<Deployment>(&scope.client, &scope.namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(lean::deployment)
    .reflect(deployment_writer)
    .applied_objects()
    .predicate_filter(predicates::generation, Default::default());
    let (statefulsets, statefulset_writer) = reflector::store::<StatefulSet>();
    let statefulset_stream = watcher(
        api::<StatefulSet>(&scope.client, &scope.namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(lean::statefulset)
    .reflect(statefulset_writer)
    .applied_objects()
    .predicate_filter(predicates::generation, Default::default());
    // The lean pod cache and the ReplicaSets' metadata (their owners), shared by every policy of
    // the scope. Neither wakes a policy: each is read at its next evaluation.
    let (pod_store, pod_writer) = reflector::store::<LeanPod>();
    let pod_stream = watcher(
        api::<LeanPod>(&scope.client, &scope.namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(pod_writer);
    let (replicasets, replicaset_writer) = reflector::store::<PartialObjectMeta<ReplicaSet>>();
    let replicaset_stream = watcher(
        api::<PartialObjectMeta<ReplicaSet>>(&scope.client, &scope.namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(lean::replicaset)
    .reflect(replicaset_writer);
    let index = Arc::new(pods::PodIndex::default());
    let caches = pods::PodCaches {
        pods: pod_store,
        index: index.clone(),
        replicasets,
        deployments,
        statefulsets,
    };
    let follow = tokio::spawn(async move {
        let pods = pod_stream.for_each(|event| {
            index.changed();
            if let Err(e) = event {
                warn!(
                    "cannot list or watch pods: {}",
                    crate::text::shorten(&e.to_string(), LOG_ERROR_BYTES)
                );
            }
            future::ready(())
        });
        let replicasets = replicaset_stream.for_each(|event| {
            if let Err(e) = event {
                warn!(
                    "cannot list or watch ReplicaSets: {}",
                    crate::text::shorten(&e.to_string(), LOG_ERROR_BYTES)
                );
            }
            future::ready(())
        });
        future::join(pods, replicasets).await;
    });

    let ctx = Arc::new(Context {
        client: scope.client.clone(),
        events: scope.events.clone(),
        observer: scope.observer.clone(),
        resolved: scope.resolved.clone(),
        metrics: scope.metrics.clone(),
        health: scope.health.clone(),
        policies: policies.clone(),
        owners: owners.clone(),
        hpas: hpas.clone(),
        slots: scope.slots.clone(),
        budget: scope.budget.clone(),
        pace: scope.pace.clone(),
        written: written.clone(),
        due,
        failures: Default::default(),
        fence: scope.fence.clone(),
        shards: scope.shards.clone(),
        api_timeout: scope.api_timeout,
        status_heartbeat: scope.status_heartbeat,
        caches: caches.clone(),
        kinds: scope.kinds.clone(),
        forecasts,
    });

    let by_deployment = owners.clone();
    let by_statefulset = owners.clone();
    let by_hpa = owners.clone();
    let controller = Controller::for_stream(policy_stream, policies.clone())
        .watches_stream(deployment_stream, move |d: Deployment| {
            targeting(
                &by_deployment,
                &d.namespace().unwrap_or_default(),
                Some("apps/v1"),
                "Deployment",
                &d.name_any(),
            )
        })
        .watches_stream(statefulset_stream, move |s: StatefulSet| {
            targeting(
                &by_statefulset,
                &s.namespace().unwrap_or_default(),
                Some("apps/v1"),
                "StatefulSet",
                &s.name_any(),
            )
        })
        .watches_stream(hpa_stream, move |hpa: HorizontalPodAutoscaler| {
            let Some(spec) = hpa.spec.as_ref() else {
                return Vec::new();
            };
            let r = &spec.scale_target_ref;
            targeting(
                &by_hpa,
                &hpa.namespace().unwrap_or_default(),
                r.api_version.as_deref(),
                &r.kind,
                &r.name,
            )
        })
        // With sharding, every policy is looked at again when this replica's share changes: the
        // ones it took are evaluated, the ones it gave up forgotten.
        .reconcile_all_on(share_changes(scope.shards.as_deref()))
        .graceful_shutdown_on(stopped(stop));

    // Ready once this scope's caches are synced (and every other scope's).
    let synced = {
        let (policies, hpas, health, pending, metrics, resolved) = (
            policies.clone(),
            hpas.clone(),
            scope.health.clone(),
            scope.pending.clone(),
            scope.metrics.clone(),
            scope.resolved.clone(),
        );
        let all = scope.all_policies.clone();
        tokio::spawn(async move {
            let ready = until_ready(&policies).await
                && until_ready(&hpas).await
                && until_ready(&caches.pods).await
                && until_ready(&caches.replicasets).await;
            if ready {
                if pending.fetch_sub(1, Ordering::SeqCst) == 1 {
                    health.set_synced(true);
                    info!("caches synced");
                }
                // Series of policies deleted while no one watched.
                let present: std::collections::HashSet<(String, String)> = all
                    .iter()
                    .flat_map(|s| s.state())
                    .map(|p| (p.namespace().unwrap_or_default(), p.name_any()))
                    .collect();
                for known in metrics.known_policies() {
                    if !present.contains(&known) {
                        metrics.forget(&known.0, &known.1);
                    }
                }
                resolved.retain(|key| {
                    let key = ObjectRef::<Decoded>::new(&key.name)
                        .within(key.namespace.as_deref().unwrap_or_default());
                    policies.get(&key).is_some()
                });
            }
        })
    };

    controller
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = &result {
                match e {
                    controller::Error::ReconcilerFailed(..)
                    | controller::Error::ObjectNotFound(..) => {}
                    other => warn!(
                        "controller: {}",
                        crate::text::shorten(&other.to_string(), LOG_ERROR_BYTES)
                    ),
                }
            }
            future::ready(())
        })
        .await;
    synced.abort();
    follow.abort();
}

/// Whether this replica reconciles `policy`: always without sharding.
fn owned(shards: Option<&shard::Shards>, policy: &Decoded) -> bool {
    shard::evaluates(
        shards,
        &policy.namespace().unwrap_or_default(),
        &policy.name_any(),
    )
}

/// A stream that yields each time this replica's share changes; never without sharding.
fn share_changes(shards: Option<&shard::Shards>) -> futures::stream::BoxStream<'static, ()> {
    match shards {
        Some(shards) => futures::stream::unfold(shards.changes(), |mut changes| async move {
            changes.changed().await.ok()?;
            Some(((), changes))
        })
        .boxed(),
        None => futures::stream::pending().boxed(),
    }
}

/// The policies (from the index of the cached ones) that scale the object (apiVersion, kind,
/// name) in `namespace`.
fn targeting(
    owners: &ownership::PolicyIndex,
    namespace: &str,
    api_version: Option<&str>,
    kind: &str,
    name: &str,
) -> Vec<ObjectRef<Decoded>> {
    owners
        .targeting(namespace, api_version, kind, name)
        .into_iter()
        .map(|policy| ObjectRef::new(&policy).within(namespace))
        .collect()
}
