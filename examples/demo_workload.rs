//! The workload of `make demo`: a simulated web service behind a Deployment, exposing the
//! Prometheus series a real one would have in a cluster, so that scalewise's real metric kinds
//! (`cpu`, `latency`, `errorRate`) work on it unchanged.
//!
//! ```sh
//! cargo run --example demo_workload -- --listen 127.0.0.1:9400 --namespace demo --deployment web
//! ```
//!
//! Every second it reads the Deployment's Running pods from the API server (KUBECONFIG): those
//! its ReplicaSets created, which on the test environment run on KWOK's fake nodes. The load is
//! shared among the Ready ones, as a Service shares it; a pod that is not Ready yet gets none
//! and uses no CPU. With `--pods simulated` (for a cluster that runs no pods, like the
//! Debian-built 1.20 test environment) it reads `spec.replicas` instead and keeps one simulated
//! pod per replica, named as a ReplicaSet names its pods (`web-<hash>-<suffix>`, a fresh name for
//! every new pod, the newest removed first). The offered load follows a curve (all times from
//! the workload's start, every number a flag):
//!
//! ```text
//!  req/s
//!   300 |             ______________________
//!       |            /                      \
//!    40 |___________/                        \_________________________
//!       0          45s  65s               185s  205s                  310s
//!         baseline  ramp       surge        ramp      baseline (end)
//! ```
//!
//! and is split evenly over the pods. The service model, per pod:
//!
//! - it serves at most `--capacity` requests per second (50); utilisation `u = load / (ready pods
//!   * capacity)`;
//! - CPU: the container requests `--cpu-request` cores (0.5, as `examples/demo/deployment.yaml`
//!   says) and uses `cpu-request * min(u, 1)` (its limit equals its request), so the `cpu` metric
//!   reads `100 * min(u, 1)` percent;
//! - latency of a served request: exponential (an M/M/1 queue) with mean `--base-latency / (1 -
//!   min(u, 0.95))` (20 ms at rest, so p95 = 3 x mean: 100 ms at u = 0.4, 600 ms at u = 0.9);
//! - requests beyond capacity wait the 1 s queue timeout and fail with 503.
//!
//! Series, each with `namespace` and `pod` labels (the conventions of cAdvisor, kube-state-metrics
//! and an instrumented HTTP service; counters are floats advanced by rate x elapsed time, so
//! `rate()` over them returns the model's rates):
//!
//! - `container_cpu_usage_seconds_total{container="web"}`,
//!   `container_memory_working_set_bytes{container="web"}` (128 MiB)
//! - `kube_pod_container_resource_requests{container="web", resource="cpu"|"memory"}` (0.5 core,
//!   256 MiB), `kube_pod_status_ready{condition="true"|"false"}`, `kube_pod_owner{owner_kind=
//!   "ReplicaSet", owner_name}`, `kube_replicaset_owner{replicaset, owner_kind="Deployment"}`
//! - `http_requests_total{service="web", code="200"|"503"}`
//! - `http_request_duration_seconds_bucket{service="web", le=...}`, `_sum`, `_count`
//! - `demo_*` gauges for the demo script: offered load, replicas seen, elapsed time, the curve.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use clap::Parser;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod as K8sPod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ListParams;
use kube::{Api, Client};
use scalewise::api::duration::parse_duration;
use tokio::time::{Instant, MissedTickBehavior};

/// Latency histogram bucket bounds, in seconds (the +Inf bucket is the count).
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Utilisation above which the queue is full: latency stops rising and requests are shed.
const MAX_QUEUE_UTILISATION: f64 = 0.95;
/// The container's name in every container-level series.
const CONTAINER: &str = "web";
/// Memory each pod requests (examples/demo/deployment.yaml) and uses: 256 MiB and half of it.
const MEMORY_REQUEST_BYTES: f64 = 268_435_456.0;
const MEMORY_USED_BYTES: f64 = 134_217_728.0;

#[derive(Debug, Parser)]
#[command(about = "The simulated web service of `make demo`")]
struct Args {
    /// Where to serve /metrics.
    #[arg(long, default_value = "127.0.0.1:9400")]
    listen: SocketAddr,
    /// The Deployment's namespace.
    #[arg(long, default_value = "demo")]
    namespace: String,
    /// The Deployment whose pods serve the load.
    #[arg(long, default_value = "web")]
    deployment: String,
    /// Where the pods come from: `cluster`, the Deployment's Running pods as its ReplicaSets
    /// created them, sharing the load among the Ready ones; `simulated`, one pod per
    /// spec.replicas, named as a ReplicaSet would (for a cluster that runs no pods).
    #[arg(long, value_enum, default_value_t = PodSource::Cluster)]
    pods: PodSource,
    /// The `service` label of the HTTP series. Default: the Deployment's name.
    #[arg(long)]
    service: Option<String>,
    /// Offered load outside the surge, requests per second.
    #[arg(long, default_value_t = 40.0)]
    baseline: f64,
    /// Offered load at the top of the surge, requests per second.
    #[arg(long, default_value_t = 300.0)]
    peak: f64,
    /// When the load starts rising.
    #[arg(long, default_value = "45s", value_parser = parse_duration)]
    surge_start: Duration,
    /// How long the load takes to rise to the peak, and to fall back.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    ramp: Duration,
    /// How long the load stays at the peak.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    surge: Duration,
    /// The length of the whole curve; the demo ends there (the load stays at baseline after).
    #[arg(long, default_value = "5m10s", value_parser = parse_duration)]
    length: Duration,
    /// Requests per second one replica serves at most.
    #[arg(long, default_value_t = 50.0)]
    capacity: f64,
    /// CPU cores each pod requests (and uses at capacity).
    #[arg(long, default_value_t = 0.5)]
    cpu_request: f64,
    /// Mean latency of a request on an idle pod, in seconds.
    #[arg(long, default_value_t = 0.02)]
    base_latency: f64,
    /// How long a request beyond capacity waits before it fails with 503, in seconds.
    #[arg(long, default_value_t = 1.0)]
    queue_timeout: f64,
}

/// The offered load over time: baseline, a linear ramp to the peak, the peak, a linear ramp back,
/// baseline. Times in seconds from the start.
#[derive(Clone, Debug, PartialEq)]
struct Curve {
    baseline: f64,
    peak: f64,
    surge_start: f64,
    ramp: f64,
    surge: f64,
    length: f64,
}

/// Where the curve is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Baseline,
    RampUp,
    Surge,
    RampDown,
    After,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::RampUp => "ramp-up",
            Self::Surge => "surge",
            Self::RampDown => "ramp-down",
            Self::After => "after",
        }
    }
}

impl Curve {
    fn peak_start(&self) -> f64 {
        self.surge_start + self.ramp
    }

    fn peak_end(&self) -> f64 {
        self.peak_start() + self.surge
    }

    /// When the load is back at baseline.
    fn surge_end(&self) -> f64 {
        self.peak_end() + self.ramp
    }

    fn phase(&self, t: f64) -> Phase {
        if t < self.surge_start {
            Phase::Baseline
        } else if t < self.peak_start() {
            Phase::RampUp
        } else if t < self.peak_end() {
            Phase::Surge
        } else if t < self.surge_end() {
            Phase::RampDown
        } else {
            Phase::After
        }
    }

    /// Offered requests per second at `t`.
    fn load(&self, t: f64) -> f64 {
        let span = self.peak - self.baseline;
        match self.phase(t) {
            Phase::Baseline | Phase::After => self.baseline,
            Phase::Surge => self.peak,
            Phase::RampUp => self.baseline + span * (t - self.surge_start) / self.ramp,
            Phase::RampDown => self.peak - span * (t - self.peak_end()) / self.ramp,
        }
    }
}

/// The service model: what one pod does with its share of the load.
#[derive(Clone, Debug, PartialEq)]
struct Service {
    /// Requests per second one pod serves at most.
    capacity: f64,
    /// CPU cores each pod requests.
    cpu_request: f64,
    /// Mean latency on an idle pod, seconds.
    base_latency: f64,
    /// How long shed requests wait before their 503, seconds.
    queue_timeout: f64,
}

/// One pod's rates at a given load.
#[derive(Clone, Debug, PartialEq)]
struct PodRates {
    /// load / (replicas * capacity).
    utilisation: f64,
    /// Requests per second answered 200.
    served: f64,
    /// Requests per second answered 503.
    rejected: f64,
    /// CPU cores in use.
    cpu_cores: f64,
    /// Mean latency of a served request, seconds (exponentially distributed).
    mean_latency: f64,
}

impl Service {
    /// The rates of each of `replicas` pods sharing `load` evenly; `None` without pods.
    fn per_pod(&self, load: f64, replicas: usize) -> Option<PodRates> {
        if replicas == 0 {
            return None;
        }
        let offered = load / replicas as f64;
        let utilisation = offered / self.capacity;
        let served = offered.min(self.capacity);
        Some(PodRates {
            utilisation,
            served,
            rejected: offered - served,
            cpu_cores: self.cpu_request * utilisation.min(1.0),
            mean_latency: self.base_latency / (1.0 - utilisation.min(MAX_QUEUE_UTILISATION)),
        })
    }
}

/// One pod's counters.
#[derive(Clone, Debug, PartialEq)]
struct Pod {
    name: String,
    /// The ReplicaSet that owns it.
    replicaset: String,
    /// Whether it is Ready: only Ready pods get traffic (and use CPU), as behind a Service.
    ready: bool,
    cpu_seconds: f64,
    ok: f64,
    errors: f64,
    /// Cumulative counts per bound of [`BUCKETS`].
    buckets: [f64; BUCKETS.len()],
    latency_sum: f64,
}

impl Pod {
    fn new(name: String, replicaset: String) -> Self {
        Pod {
            name,
            replicaset,
            ready: true,
            cpu_seconds: 0.0,
            ok: 0.0,
            errors: 0.0,
            buckets: [0.0; BUCKETS.len()],
            latency_sum: 0.0,
        }
    }

    /// Advances the counters by `dt` seconds at the given rates.
    fn advance(&mut self, r: &PodRates, queue_timeout: f64, dt: f64) {
        let served = r.served * dt;
        let rejected = r.rejected * dt;
        self.cpu_seconds += r.cpu_cores * dt;
        self.ok += served;
        self.errors += rejected;
        for (count, le) in self.buckets.iter_mut().zip(BUCKETS) {
            // The exponential distribution's CDF, plus the shed requests once past their wait.
            *count += served * (1.0 - (-le / r.mean_latency).exp());
            if le >= queue_timeout {
                *count += rejected;
            }
        }
        self.latency_sum += served * r.mean_latency + rejected * queue_timeout;
    }

    fn count(&self) -> f64 {
        self.ok + self.errors
    }
}

/// A small xorshift generator for pod name suffixes (no cryptographic use).
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// `len` characters of the alphabet Kubernetes uses for generated names.
    fn name_part(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..len)
            .map(|_| char::from(ALPHABET[(self.next() % ALPHABET.len() as u64) as usize]))
            .collect()
    }
}

/// The simulation: the pods, their counters and the time they were last advanced to.
#[derive(Debug)]
struct Sim {
    curve: Curve,
    service: Service,
    namespace: String,
    deployment: String,
    service_label: String,
    /// Unix time of t = 0.
    start_unix: f64,
    /// Seconds since the start the counters were advanced to.
    now: f64,
    /// The pod-template-hash part of the pod names.
    template_hash: String,
    rng: Rng,
    pods: Vec<Pod>,
    /// Whether spec.replicas was read at least once.
    replicas_known: bool,
}

impl Sim {
    fn new(curve: Curve, service: Service, args: &Args, start_unix: f64, seed: u64) -> Self {
        let mut rng = Rng(seed | 1);
        Sim {
            curve,
            service,
            namespace: args.namespace.clone(),
            deployment: args.deployment.clone(),
            service_label: args
                .service
                .clone()
                .unwrap_or_else(|| args.deployment.clone()),
            start_unix,
            now: 0.0,
            template_hash: rng.name_part(10),
            rng,
            pods: Vec::new(),
            replicas_known: false,
        }
    }

    /// Advances every pod's counters to `t` seconds since the start, at the load of the middle of
    /// the step (exact on the linear ramps).
    fn advance_to(&mut self, t: f64) {
        let dt = t - self.now;
        if dt <= 0.0 {
            return;
        }
        let load = self.curve.load(self.now + dt / 2.0);
        if let Some(rates) = self.service.per_pod(load, self.ready_pods()) {
            for pod in self.pods.iter_mut().filter(|p| p.ready) {
                pod.advance(&rates, self.service.queue_timeout, dt);
            }
        }
        self.now = t;
    }

    /// Adds fresh pods or removes the newest ones, as a ReplicaSet does.
    fn set_replicas(&mut self, replicas: usize) {
        self.replicas_known = true;
        self.pods.truncate(replicas);
        while self.pods.len() < replicas {
            let name = loop {
                let name = format!(
                    "{}-{}-{}",
                    self.deployment,
                    self.template_hash,
                    self.rng.name_part(5)
                );
                if self.pods.iter().all(|p| p.name != name) {
                    break name;
                }
            };
            let replicaset = format!("{}-{}", self.deployment, self.template_hash);
            self.pods.push(Pod::new(name, replicaset));
        }
    }

    /// Takes the pods as the cluster has them: counters kept for the pods still there, fresh
    /// ones for new pods, none for pods gone.
    fn set_pods(&mut self, observed: Vec<ObservedPod>) {
        self.replicas_known = true;
        let mut old = std::mem::take(&mut self.pods);
        for o in observed {
            let mut pod = match old.iter().position(|p| p.name == o.name) {
                Some(i) => old.swap_remove(i),
                None => Pod::new(o.name, o.replicaset.clone()),
            };
            pod.ready = o.ready;
            pod.replicaset = o.replicaset;
            self.pods.push(pod);
        }
    }

    /// What users see now, as (p95 latency in seconds, share of requests failing): every request
    /// fails (after the queue timeout) without a Ready pod; beyond 5% shed requests the p95 is the
    /// queue timeout; below, the 95th percentile of the served requests' exponential latency.
    fn slo_now(&self) -> (f64, f64) {
        let timeout = self.service.queue_timeout;
        let Some(r) = self
            .service
            .per_pod(self.curve.load(self.now), self.ready_pods())
        else {
            return (timeout, 1.0);
        };
        let offered = r.served + r.rejected;
        if offered <= 0.0 {
            return (0.0, 0.0);
        }
        let errors = r.rejected / offered;
        if errors >= 0.05 {
            return (timeout, errors);
        }
        // P(served and latency <= x) = (1 - errors) (1 - exp(-x / mean)) = 0.95
        let p95 = -r.mean_latency * (1.0 - 0.95 / (1.0 - errors)).ln();
        (p95.min(timeout), errors)
    }

    fn ready_pods(&self) -> usize {
        self.pods.iter().filter(|p| p.ready).count()
    }

    /// The Prometheus text exposition of everything, as of `self.now`.
    fn render(&self) -> String {
        let mut out = String::new();
        let t = self.now;
        let ns = escape(&self.namespace);
        let svc = escape(&self.service_label);
        let load = self.curve.load(t);
        let rates = self.service.per_pod(load, self.ready_pods());

        // A metric family's HELP and TYPE lines.
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        let gauge = |out: &mut String, name: &str, help: &str, value: f64| {
            family(out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        };
        gauge(
            &mut out,
            "demo_offered_load_requests_per_second",
            "Offered load now.",
            load,
        );
        gauge(
            &mut out,
            "demo_replicas",
            "Pods now: the Deployment's Running pods (or with --pods simulated its spec.replicas) at the last read.",
            self.pods.len() as f64,
        );
        gauge(
            &mut out,
            "demo_ready_pods",
            "Pods Ready now, sharing the load.",
            self.ready_pods() as f64,
        );
        gauge(
            &mut out,
            "demo_replicas_known",
            "1 once spec.replicas has been read.",
            f64::from(u8::from(self.replicas_known)),
        );
        gauge(
            &mut out,
            "demo_utilisation",
            "Offered load over total capacity.",
            rates.as_ref().map_or(0.0, |r| r.utilisation),
        );
        let (p95, errors) = self.slo_now();
        gauge(
            &mut out,
            "demo_latency_p95_seconds",
            "The model's p95 request latency now (the SLO: at most 0.5 s).",
            p95,
        );
        gauge(
            &mut out,
            "demo_error_ratio",
            "The model's share of requests failing now (the SLO: at most 1%).",
            errors,
        );
        gauge(
            &mut out,
            "demo_elapsed_seconds",
            "Seconds since the start of the curve.",
            t,
        );
        gauge(
            &mut out,
            "demo_start_time_seconds",
            "Unix time of the start of the curve.",
            self.start_unix,
        );
        gauge(
            &mut out,
            "demo_surge_start_seconds",
            "When the load starts rising.",
            self.curve.surge_start,
        );
        gauge(
            &mut out,
            "demo_peak_start_seconds",
            "When the load reaches the peak.",
            self.curve.peak_start(),
        );
        gauge(
            &mut out,
            "demo_peak_end_seconds",
            "When the load starts falling.",
            self.curve.peak_end(),
        );
        gauge(
            &mut out,
            "demo_surge_end_seconds",
            "When the load is back at baseline.",
            self.curve.surge_end(),
        );
        gauge(
            &mut out,
            "demo_length_seconds",
            "The length of the demo.",
            self.curve.length,
        );
        gauge(
            &mut out,
            "demo_baseline_requests_per_second",
            "Offered load outside the surge.",
            self.curve.baseline,
        );
        gauge(
            &mut out,
            "demo_peak_requests_per_second",
            "Offered load at the top of the surge.",
            self.curve.peak,
        );
        family(
            &mut out,
            "demo_phase",
            "gauge",
            "The phase of the load curve now.",
        );
        let _ = writeln!(
            out,
            "demo_phase{{phase=\"{}\"}} 1",
            self.curve.phase(t).as_str()
        );

        family(
            &mut out,
            "container_cpu_usage_seconds_total",
            "counter",
            "Cumulative cpu time consumed in seconds.",
        );
        for p in &self.pods {
            let _ = writeln!(
                out,
                "container_cpu_usage_seconds_total{{namespace=\"{ns}\",pod=\"{}\",container=\"{CONTAINER}\"}} {}",
                escape(&p.name),
                p.cpu_seconds
            );
        }
        family(
            &mut out,
            "kube_pod_container_resource_requests",
            "gauge",
            "The number of requested request resource by a container.",
        );
        for p in &self.pods {
            let pod = escape(&p.name);
            let _ = writeln!(
                out,
                "kube_pod_container_resource_requests{{namespace=\"{ns}\",pod=\"{pod}\",container=\"{CONTAINER}\",resource=\"cpu\",unit=\"core\"}} {}",
                self.service.cpu_request
            );
            let _ = writeln!(
                out,
                "kube_pod_container_resource_requests{{namespace=\"{ns}\",pod=\"{pod}\",container=\"{CONTAINER}\",resource=\"memory\",unit=\"byte\"}} {MEMORY_REQUEST_BYTES}"
            );
        }
        family(
            &mut out,
            "container_memory_working_set_bytes",
            "gauge",
            "Current working set in bytes.",
        );
        for p in &self.pods {
            let _ = writeln!(
                out,
                "container_memory_working_set_bytes{{namespace=\"{ns}\",pod=\"{}\",container=\"{CONTAINER}\"}} {MEMORY_USED_BYTES}",
                escape(&p.name)
            );
        }
        family(
            &mut out,
            "kube_pod_status_ready",
            "gauge",
            "Describes whether the pod is ready to serve requests.",
        );
        for p in &self.pods {
            for (condition, value) in [("true", p.ready), ("false", !p.ready)] {
                let _ = writeln!(
                    out,
                    "kube_pod_status_ready{{namespace=\"{ns}\",pod=\"{}\",condition=\"{condition}\"}} {}",
                    escape(&p.name),
                    u8::from(value)
                );
            }
        }
        family(
            &mut out,
            "kube_pod_owner",
            "gauge",
            "Information about the Pod's owner.",
        );
        for p in &self.pods {
            let _ = writeln!(
                out,
                "kube_pod_owner{{namespace=\"{ns}\",pod=\"{}\",owner_kind=\"ReplicaSet\",owner_name=\"{}\",owner_is_controller=\"true\"}} 1",
                escape(&p.name),
                escape(&p.replicaset)
            );
        }
        family(
            &mut out,
            "kube_replicaset_owner",
            "gauge",
            "Information about the ReplicaSet's owner.",
        );
        let replicasets: std::collections::BTreeSet<&str> =
            self.pods.iter().map(|p| p.replicaset.as_str()).collect();
        for rs in replicasets {
            let _ = writeln!(
                out,
                "kube_replicaset_owner{{namespace=\"{ns}\",replicaset=\"{}\",owner_kind=\"Deployment\",owner_name=\"{}\",owner_is_controller=\"true\"}} 1",
                escape(rs),
                escape(&self.deployment)
            );
        }
        family(
            &mut out,
            "http_requests_total",
            "counter",
            "Requests answered, by status code.",
        );
        for p in &self.pods {
            let pod = escape(&p.name);
            for (code, value) in [("200", p.ok), ("503", p.errors)] {
                let _ = writeln!(
                    out,
                    "http_requests_total{{namespace=\"{ns}\",pod=\"{pod}\",service=\"{svc}\",code=\"{code}\"}} {value}"
                );
            }
        }
        family(
            &mut out,
            "http_request_duration_seconds",
            "histogram",
            "Request latency.",
        );
        for p in &self.pods {
            let labels = format!(
                "namespace=\"{ns}\",pod=\"{}\",service=\"{svc}\"",
                escape(&p.name)
            );
            for (le, count) in BUCKETS.iter().zip(p.buckets) {
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                p.count()
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{{labels}}} {}",
                p.latency_sum
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{{labels}}} {}",
                p.count()
            );
        }
        out
    }
}

/// Escapes a label value for the text exposition format.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

type Shared = Arc<Mutex<Sim>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum PodSource {
    Cluster,
    Simulated,
}

/// A Running pod of the Deployment, as read from the cluster.
#[derive(Clone, Debug, PartialEq)]
struct ObservedPod {
    name: String,
    replicaset: String,
    ready: bool,
}

/// The simulation, also after a panic elsewhere while it was locked (its data stays consistent:
/// every update is a few float additions).
fn lock(sim: &Mutex<Sim>) -> MutexGuard<'_, Sim> {
    sim.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Serves /metrics, advancing the counters to the moment of the scrape.
async fn metrics(State((sim, started)): State<(Shared, Instant)>) -> impl IntoResponse {
    let text = {
        let mut sim = lock(&sim);
        sim.advance_to(started.elapsed().as_secs_f64());
        sim.render()
    };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// Every second, reads the Deployment's pods (or its spec.replicas) and updates the simulation.
async fn follow(client: Client, sim: Shared, started: Instant, args: FollowArgs) {
    let FollowArgs {
        namespace,
        name,
        source,
    } = args;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last: Option<(usize, usize)> = None;
    let mut failing = false;
    loop {
        tick.tick().await;
        let read = match source {
            PodSource::Cluster => running_pods(&client, &namespace, &name)
                .await
                .map(Observed::Pods),
            PodSource::Simulated => desired_replicas(&client, &namespace, &name)
                .await
                .map(Observed::Replicas),
        };
        let observed = match read {
            Ok(observed) => {
                failing = false;
                observed
            }
            Err(e) => {
                if !failing {
                    eprintln!(
                        "demo-workload: cannot read {namespace}/{name}: {e}; keeping the pods as they are"
                    );
                }
                failing = true;
                continue;
            }
        };
        let mut sim = lock(&sim);
        sim.advance_to(started.elapsed().as_secs_f64());
        match observed {
            Observed::Pods(pods) => sim.set_pods(pods),
            Observed::Replicas(n) => sim.set_replicas(n),
        }
        let now = (sim.pods.len(), sim.ready_pods());
        if last != Some(now) {
            eprintln!(
                "demo-workload: t={:.0}s {namespace}/{name} has {} pods, {} Ready",
                sim.now, now.0, now.1
            );
            last = Some(now);
        }
    }
}

/// What one read of the cluster gave.
enum Observed {
    Pods(Vec<ObservedPod>),
    Replicas(usize),
}

struct FollowArgs {
    namespace: String,
    name: String,
    source: PodSource,
}

/// The Deployment's spec.replicas (0 when it does not exist).
async fn desired_replicas(client: &Client, namespace: &str, name: &str) -> kube::Result<usize> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    Ok(match api.get_opt(name).await? {
        // The API server defaults a missing spec.replicas to 1.
        Some(d) => usize::try_from(d.spec.and_then(|s| s.replicas).unwrap_or(1)).unwrap_or(0),
        None => 0,
    })
}

/// The Deployment's Running pods, not being deleted: those whose controller is one of the
/// ReplicaSets the Deployment controls (not merely those its selector matches).
async fn running_pods(
    client: &Client,
    namespace: &str,
    name: &str,
) -> kube::Result<Vec<ObservedPod>> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let Some(deployment) = deployments.get_opt(name).await? else {
        return Ok(Vec::new());
    };
    let selector = deployment
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let params = ListParams::default().labels(&selector);
    let controller = |refs: Option<&Vec<OwnerReference>>| {
        refs.and_then(|r| r.iter().find(|o| o.controller == Some(true)).cloned())
    };
    let uid = deployment.metadata.uid.clone();
    let replicasets: Vec<(String, String)> =
        Api::<ReplicaSet>::namespaced(client.clone(), namespace)
            .list(&params)
            .await?
            .items
            .into_iter()
            .filter(|rs| controller(rs.metadata.owner_references.as_ref()).map(|o| o.uid) == uid)
            .filter_map(|rs| Some((rs.metadata.uid?, rs.metadata.name?)))
            .collect();
    let pods = Api::<K8sPod>::namespaced(client.clone(), namespace)
        .list(&params)
        .await?
        .items;
    let mut observed: Vec<ObservedPod> = pods
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter_map(|p| {
            let owner = controller(p.metadata.owner_references.as_ref())?;
            let (_, replicaset) = replicasets.iter().find(|(uid, _)| *uid == owner.uid)?;
            let ready = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            Some(ObservedPod {
                name: p.metadata.name?,
                replicaset: replicaset.clone(),
                ready,
            })
        })
        .collect();
    observed.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(observed)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let curve = Curve {
        baseline: args.baseline,
        peak: args.peak,
        surge_start: args.surge_start.as_secs_f64(),
        ramp: args.ramp.as_secs_f64(),
        surge: args.surge.as_secs_f64(),
        length: args.length.as_secs_f64(),
    };
    anyhow::ensure!(curve.ramp > 0.0, "--ramp must be positive");
    anyhow::ensure!(
        curve.surge_end() <= curve.length,
        "the surge ends at {}s, after --length",
        curve.surge_end()
    );
    let service = Service {
        capacity: args.capacity,
        cpu_request: args.cpu_request,
        base_latency: args.base_latency,
        queue_timeout: args.queue_timeout,
    };
    anyhow::ensure!(
        service.capacity > 0.0 && service.cpu_request > 0.0 && service.base_latency > 0.0,
        "--capacity, --cpu-request and --base-latency must be positive"
    );

    let client = Client::try_default().await?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let started = Instant::now();
    let seed = u64::from(since_epoch.subsec_nanos()) ^ u64::from(std::process::id()) << 32;
    let sim = Arc::new(Mutex::new(Sim::new(
        curve.clone(),
        service,
        &args,
        since_epoch.as_secs_f64(),
        seed,
    )));
    eprintln!(
        "demo-workload: serving http://{}/metrics for {}/{}: {} req/s, rising from {}s to {} req/s at {}s, falling from {}s to {} req/s at {}s, end at {}s",
        args.listen,
        args.namespace,
        args.deployment,
        curve.baseline,
        curve.surge_start,
        curve.peak,
        curve.peak_start(),
        curve.peak_end(),
        curve.baseline,
        curve.surge_end(),
        curve.length
    );

    tokio::spawn(follow(
        client,
        sim.clone(),
        started,
        FollowArgs {
            namespace: args.namespace.clone(),
            name: args.deployment.clone(),
            source: args.pods,
        },
    ));
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state((sim, started));
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve() -> Curve {
        Curve {
            baseline: 40.0,
            peak: 300.0,
            surge_start: 45.0,
            ramp: 20.0,
            surge: 120.0,
            length: 310.0,
        }
    }

    fn service() -> Service {
        Service {
            capacity: 50.0,
            cpu_request: 0.5,
            base_latency: 0.02,
            queue_timeout: 1.0,
        }
    }

    fn args() -> Args {
        Args::parse_from(["demo_workload"])
    }

    /// histogram_quantile's answer for one pod's buckets: linear inside the bucket.
    fn quantile(q: f64, pod: &Pod) -> f64 {
        let rank = q * pod.count();
        let mut lower = (0.0, 0.0);
        for (le, count) in BUCKETS.iter().zip(pod.buckets) {
            if count >= rank {
                return lower.0 + (le - lower.0) * (rank - lower.1) / (count - lower.1);
            }
            lower = (*le, count);
        }
        lower.0
    }

    #[test]
    fn the_default_flags_are_the_documented_curve_and_model() {
        let a = args();
        let c = Curve {
            baseline: a.baseline,
            peak: a.peak,
            surge_start: a.surge_start.as_secs_f64(),
            ramp: a.ramp.as_secs_f64(),
            surge: a.surge.as_secs_f64(),
            length: a.length.as_secs_f64(),
        };
        assert_eq!(c, curve());
        assert_eq!(
            (a.capacity, a.cpu_request, a.base_latency, a.queue_timeout),
            (50.0, 0.5, 0.02, 1.0)
        );
        assert_eq!(
            (a.namespace.as_str(), a.deployment.as_str()),
            ("demo", "web")
        );
    }

    #[test]
    fn the_load_is_baseline_then_a_linear_surge_then_baseline() {
        let c = curve();
        assert_eq!((c.load(0.0), c.phase(0.0)), (40.0, Phase::Baseline));
        assert_eq!((c.load(44.9), c.phase(44.9)), (40.0, Phase::Baseline));
        assert_eq!((c.load(55.0), c.phase(55.0)), (170.0, Phase::RampUp));
        assert_eq!((c.load(65.0), c.phase(65.0)), (300.0, Phase::Surge));
        assert_eq!((c.load(184.9), c.phase(184.9)), (300.0, Phase::Surge));
        assert_eq!((c.load(195.0), c.phase(195.0)), (170.0, Phase::RampDown));
        assert_eq!((c.load(205.0), c.phase(205.0)), (40.0, Phase::After));
        assert_eq!(c.load(1000.0), 40.0);
        assert_eq!(c.surge_end(), 205.0);
    }

    #[test]
    fn cpu_is_load_over_capacity_of_the_current_replicas_capped_at_the_request() {
        let s = service();
        let two = s.per_pod(40.0, 2).unwrap();
        assert_eq!(two.utilisation, 0.4);
        assert_eq!(100.0 * two.cpu_cores / s.cpu_request, 40.0);
        assert_eq!((two.served, two.rejected), (20.0, 0.0));

        let eight = s.per_pod(300.0, 8).unwrap();
        assert_eq!(100.0 * eight.cpu_cores / s.cpu_request, 75.0);

        // Over capacity: the CPU stays at its request and the excess fails.
        let over = s.per_pod(300.0, 2).unwrap();
        assert_eq!(over.cpu_cores, s.cpu_request);
        assert_eq!((over.served, over.rejected), (50.0, 100.0));
        assert_eq!(s.per_pod(300.0, 0), None);
    }

    #[test]
    fn latency_rises_as_utilisation_approaches_one_and_stops_at_the_full_queue() {
        let s = service();
        let mean = |load: f64| s.per_pod(load, 1).unwrap().mean_latency;
        assert!((mean(0.0) - 0.02).abs() < 1e-12);
        assert!((mean(25.0) - 0.04).abs() < 1e-12);
        assert!(mean(40.0) > mean(25.0) && mean(45.0) > mean(40.0));
        assert_eq!(mean(100.0), mean(47.5));
    }

    #[test]
    fn counters_accumulate_rate_times_time_whatever_the_steps() {
        let s = service();
        let r = s.per_pod(120.0, 2).unwrap();
        let mut once = Pod::new("a".into(), "rs".into());
        once.advance(&r, s.queue_timeout, 10.0);
        let mut steps = Pod::new("a".into(), "rs".into());
        for _ in 0..40 {
            steps.advance(&r, s.queue_timeout, 0.25);
        }
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * a.abs().max(1.0);
        assert!(close(once.cpu_seconds, steps.cpu_seconds));
        assert!(close(once.cpu_seconds, 10.0 * 0.5));
        assert!(close(once.ok, 500.0) && close(once.errors, 100.0));
        for (a, b) in once.buckets.iter().zip(steps.buckets) {
            assert!(close(*a, b));
        }
        assert!(close(once.latency_sum, steps.latency_sum));
    }

    #[test]
    fn buckets_are_cumulative_and_p95_is_three_mean_latencies() {
        let s = service();
        // u = 0.4: mean 1/30 s, p95 = ln(20) x mean = 0.0999 s.
        let r = s.per_pod(40.0, 2).unwrap();
        let mut pod = Pod::new("a".into(), "rs".into());
        pod.advance(&r, s.queue_timeout, 60.0);
        assert!(pod.buckets.windows(2).all(|w| w[0] <= w[1]));
        assert!(pod.buckets[BUCKETS.len() - 1] <= pod.count());
        let exact = 20f64.ln() * r.mean_latency;
        let p95 = quantile(0.95, &pod);
        assert!((p95 - exact).abs() < 0.01, "p95 {p95}, exact {exact}");

        // Over capacity the shed requests land at the queue timeout: p95 is about 1 s.
        let mut over = Pod::new("b".into(), "rs".into());
        over.advance(&s.per_pod(300.0, 2).unwrap(), s.queue_timeout, 60.0);
        assert!(quantile(0.95, &over) > 0.5);
    }

    #[test]
    fn pods_are_named_like_a_replicasets_and_follow_the_replicas() {
        let mut sim = Sim::new(curve(), service(), &args(), 0.0, 42);
        sim.set_replicas(2);
        let first: Vec<String> = sim.pods.iter().map(|p| p.name.clone()).collect();
        sim.set_replicas(4);
        assert_eq!(sim.pods.len(), 4);
        assert_eq!(
            &sim.pods[..2]
                .iter()
                .map(|p| p.name.clone())
                .collect::<Vec<_>>(),
            &first
        );
        for p in &sim.pods {
            // What the cpu metric's default selector matches: web-[a-z0-9]+-[a-z0-9]+
            let parts: Vec<&str> = p.name.split('-').collect();
            assert_eq!(parts.len(), 3, "{}", p.name);
            assert_eq!(parts[0], "web");
            assert!(parts[1..].iter().all(|s| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            }));
        }
        let mut names: Vec<&str> = sim.pods.iter().map(|p| p.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 4);
        sim.set_replicas(3);
        assert_eq!(sim.pods.len(), 3);
        assert_eq!(
            sim.pods[..2]
                .iter()
                .map(|p| p.name.clone())
                .collect::<Vec<_>>(),
            first
        );
    }

    #[test]
    fn pods_from_the_cluster_keep_their_counters_and_only_ready_ones_serve() {
        let mut sim = Sim::new(curve(), service(), &args(), 0.0, 42);
        let pod = |name: &str, ready: bool| ObservedPod {
            name: name.into(),
            replicaset: "web-abc".into(),
            ready,
        };
        sim.set_pods(vec![pod("web-abc-1", true), pod("web-abc-2", false)]);
        sim.advance_to(10.0);
        // 40 req/s, all on the one Ready pod: u = 0.8, 0.4 cores.
        assert!((sim.pods[0].cpu_seconds - 4.0).abs() < 1e-9);
        assert_eq!(sim.pods[1].cpu_seconds, 0.0);
        assert!((sim.pods[0].ok - 400.0).abs() < 1e-9);
        sim.set_pods(vec![pod("web-abc-2", true), pod("web-abc-3", true)]);
        assert_eq!(sim.pods.len(), 2);
        assert_eq!(sim.pods[0].name, "web-abc-2");
        assert!(sim.pods.iter().all(|p| p.cpu_seconds == 0.0));
        let text = sim.render();
        assert!(text.contains(
            "kube_pod_owner{namespace=\"demo\",pod=\"web-abc-3\",owner_kind=\"ReplicaSet\",owner_name=\"web-abc\",owner_is_controller=\"true\"} 1\n"
        ));
        assert_eq!(text.matches("kube_replicaset_owner{").count(), 1);
        assert!(text.contains("demo_ready_pods 2\n"));
        // 40 req/s on 2 pods: u = 0.4, mean 20 / 0.6 ms, no errors; p95 = mean x ln 20.
        let (p95, errors) = sim.slo_now();
        assert_eq!(errors, 0.0);
        assert!((p95 - 0.02 / 0.6 * 20f64.ln()).abs() < 1e-9, "{p95}");
        sim.set_pods(vec![pod("web-abc-2", false)]);
        assert_eq!(sim.slo_now(), (1.0, 1.0));
        assert!(text.contains(
            "kube_pod_status_ready{namespace=\"demo\",pod=\"web-abc-2\",condition=\"true\"} 1\n"
        ));
    }

    #[test]
    fn the_exposition_has_one_set_of_series_per_pod_with_their_labels() {
        let mut sim = Sim::new(curve(), service(), &args(), 1000.0, 7);
        sim.set_replicas(3);
        sim.advance_to(10.0);
        let text = sim.render();
        let pod = &sim.pods[0].name;
        assert!(text.contains(&format!(
            "container_cpu_usage_seconds_total{{namespace=\"demo\",pod=\"{pod}\",container=\"web\"}} "
        )));
        assert!(text.contains(&format!(
            "kube_pod_container_resource_requests{{namespace=\"demo\",pod=\"{pod}\",container=\"web\",resource=\"cpu\",unit=\"core\"}} 0.5"
        )));
        assert!(text.contains(&format!(
            "http_requests_total{{namespace=\"demo\",pod=\"{pod}\",service=\"web\",code=\"503\"}} 0\n"
        )));
        assert_eq!(text.matches("le=\"+Inf\"").count(), 3);
        assert_eq!(
            text.matches("container_cpu_usage_seconds_total{").count(),
            3
        );
        assert!(text.contains("demo_phase{phase=\"baseline\"} 1"));
        assert!(text.contains("demo_offered_load_requests_per_second 40\n"));
        // 10 s of 40 req/s over 3 pods, 0.5 cores x u = 4/15 each.
        let cpu: f64 = sim.pods.iter().map(|p| p.cpu_seconds).sum();
        assert!((cpu - 10.0 * 0.5 * 40.0 / 50.0).abs() < 1e-9);
    }
}
