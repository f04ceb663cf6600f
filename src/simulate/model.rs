//! The service model: what a load does to a Deployment with some replicas ready.
//!
//! Time advances in steps of one second. In each second, with `r` ready replicas, each serving
//! `capacity` requests per second:
//!
//! - **Capacity** `C = r * capacity`. Requests arrive at the trace's rate `λ`.
//! - **Queue.** Requests that cannot be served wait in a queue shared by the replicas (a
//!   load balancer in front of them): `backlog += λ - served`, with `served = min(backlog + λ, C)`.
//!   The queue holds `queueLimit` requests per ready replica; what does not fit is dropped.
//! - **Errors.** The error rate is the dropped share of the arrivals. Nothing else fails.
//! - **CPU** is the load over the capacity, as a percent. The ready replicas use CPU for the whole
//!   load (like usage over requests when pods may burst above their requests, it goes above 100
//!   when the load exceeds what they serve); replicas still starting use none but already count
//!   their requests. So the `cpu` a policy reads, usage over the requests of every pod as its
//!   PromQL computes it, is `100 * λ / (n * capacity)` with `n` replicas (ready or not), and the
//!   utilization of the ready pods alone (what the HPA reads from metrics-server) is
//!   `100 * λ / C`. Without a ready replica nothing runs: usage 0.
//! - **Latency** comes from the M/M/c queue: each replica is `s = max(1, round(capacity *
//!   baseLatency))` servers (its concurrency), so `c = r * s` servers each serve `μ = capacity / s`
//!   requests per second, and a request waits for a server with probability
//!   `P = ErlangC(c, λ/μ)`, that wait being exponential with rate `C - λ`. Service times are
//!   exponential with mean `baseLatency`. A request's latency is its service time plus its wait
//!   (a hypoexponential distribution), plus the time to drain the backlog in front of it,
//!   `backlog / C`; the waiting part is capped at the time to drain a full queue,
//!   `queueLimit / capacity` (requests that would wait longer are dropped). Quantiles (such as the
//!   p95 a policy reads) are solved from that distribution: with nothing waiting, the p95 is
//!   `baseLatency * ln(20)`, about 3 times the base latency. With `λ >= C` the M/M/c queue has no
//!   steady state and the wait is the cap.
//! - **Start-up.** A replica created at `t` is ready, and serves, from `t + startupDelay`.
//!   Replicas removed go at once, those not ready yet first (as a ReplicaSet deletes them).
//! - With no ready replica, every request fails, and CPU and latency have no value.

use serde::Deserialize;

use super::error::SimulateError;
use crate::api::DurationString;

/// The parameters of the service model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelParams {
    /// Requests per second one ready replica serves at 100% CPU.
    pub capacity: f64,
    /// The mean seconds one request takes when nothing waits (service times are exponential).
    pub base_latency: f64,
    /// Seconds from a replica's creation until it serves.
    pub startup_delay: i64,
    /// Requests that can wait per ready replica; more are dropped and count as errors.
    pub queue_limit: f64,
}

impl Default for ModelParams {
    fn default() -> Self {
        Self {
            capacity: 100.0,
            base_latency: 0.01,
            startup_delay: 30,
            queue_limit: 100.0,
        }
    }
}

/// The model file (`--model FILE`): every field optional, defaults as the flags'.
///
/// ```yaml
/// capacityPerReplica: 100     # requests per second per ready replica
/// baseLatency: 0.01           # seconds, the mean time of one request
/// startupDelay: 30s
/// queueLimit: 100             # requests per ready replica
/// ```
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelFile {
    pub capacity_per_replica: Option<f64>,
    pub base_latency: Option<f64>,
    pub startup_delay: Option<DurationString>,
    pub queue_limit: Option<f64>,
}

impl ModelParams {
    /// Applies a model file over these parameters; `path` names it in messages.
    pub fn with_file(mut self, path: &str, text: &str) -> Result<Self, SimulateError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let file: ModelFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.path().to_string();
            let inner = e.inner().to_string();
            // The YAML error names the field itself when it is about one.
            let about_a_field = at != "."
                && !inner.starts_with("unknown field")
                && !inner.starts_with(&format!("{at}: "));
            SimulateError::Model {
                path: path.to_owned(),
                field: about_a_field.then_some(at),
                source: e.into_inner(),
            }
        })?;
        if let Some(v) = file.capacity_per_replica {
            self.capacity = v;
        }
        if let Some(v) = file.base_latency {
            self.base_latency = v;
        }
        if let Some(d) = file.startup_delay {
            let d = d.parse().map_err(|source| SimulateError::StartupDelay {
                path: path.to_owned(),
                source,
            })?;
            self.startup_delay = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        }
        if let Some(v) = file.queue_limit {
            self.queue_limit = v;
        }
        Ok(self)
    }

    /// Checks the parameters; the message names the flag (and model-file field).
    pub fn check(&self) -> Result<(), SimulateError> {
        let wrong = |message: String| Err(SimulateError::Parameter(message));
        if !(self.capacity.is_finite() && self.capacity > 0.0) {
            return wrong(format!(
                "--capacity (capacityPerReplica) must be a number > 0, got {}",
                self.capacity
            ));
        }
        if !(self.base_latency.is_finite() && self.base_latency > 0.0) {
            return wrong(format!(
                "--base-latency (baseLatency) must be a number of seconds > 0, got {}",
                self.base_latency
            ));
        }
        if self.startup_delay < 0 {
            return wrong(format!(
                "--startup-delay (startupDelay) must be at least 0s, got {}s",
                self.startup_delay
            ));
        }
        if !(self.queue_limit.is_finite() && self.queue_limit >= 0.0) {
            return wrong(format!(
                "--queue-limit (queueLimit) must be a number >= 0, got {}",
                self.queue_limit
            ));
        }
        Ok(())
    }

    /// The M/M/c servers of one replica: its concurrency, `max(1, round(capacity * baseLatency))`.
    pub fn servers_per_replica(&self) -> u32 {
        let s = (self.capacity * self.base_latency).round();
        if s >= 1.0 { s.min(1e6) as u32 } else { 1 }
    }

    /// The longest wait: the time to drain a full queue, `queueLimit / capacity`.
    pub fn max_wait(&self) -> f64 {
        self.queue_limit / self.capacity
    }
}

/// What happened in one second.
#[derive(Clone, Debug, PartialEq)]
pub struct Second {
    /// Requests that arrived (the trace's rate).
    pub load: f64,
    /// Requests served.
    pub served: f64,
    /// Requests dropped because the queue was full.
    pub dropped: f64,
    /// Requests waiting at the end of the second.
    pub queue: f64,
    /// Requests per second the ready replicas can serve.
    pub capacity: f64,
    /// Requests per second every replica, ready or starting, could serve: their CPU requests.
    pub requested: f64,
    /// Ready replicas.
    pub ready: u32,
    /// Replicas that exist (ready or starting).
    pub pods: u32,
    /// How long requests took; `None` without a ready replica.
    pub latency: Option<Latency>,
    /// The latency quantiles the service was asked to compute ahead, `(q, seconds)`.
    pub quantiles: Vec<(f64, f64)>,
}

impl Second {
    /// Dropped over arrived; 0 without arrivals.
    pub fn error_rate(&self) -> f64 {
        if self.load > 0.0 {
            self.dropped / self.load
        } else {
            0.0
        }
    }

    /// CPU usage in requests per second: the load, when a replica is ready to run it.
    pub fn usage(&self) -> f64 {
        if self.ready > 0 { self.load } else { 0.0 }
    }

    /// Usage over the requests of every replica, in percent (the `cpu` of a policy); `None`
    /// without replicas.
    pub fn cpu(&self) -> Option<f64> {
        (self.requested > 0.0).then(|| 100.0 * self.usage() / self.requested)
    }

    /// The `q`-quantile of the latency, in seconds.
    pub fn latency(&self, q: f64) -> Option<f64> {
        let latency = self.latency?;
        Some(
            self.quantiles
                .iter()
                .find(|(k, _)| *k == q)
                .map_or_else(|| latency.quantile(q), |&(_, v)| v),
        )
    }
}

/// The latency of one second, from which any quantile follows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    /// The mean service time (the base latency), in seconds.
    pub base: f64,
    /// Seconds to drain the backlog in front of an arriving request.
    pub backlog_wait: f64,
    /// Probability that an arriving request waits for a server (Erlang C); 1 when saturated.
    pub wait_probability: f64,
    /// `C - λ`, the rate of the wait's exponential tail; 0 when saturated.
    pub decay: f64,
    /// The cap on any wait: the time to drain a full queue.
    pub max_wait: f64,
}

impl Latency {
    /// The `q`-quantile of the latency (`q` in (0, 1)), in seconds.
    pub fn quantile(&self, q: f64) -> f64 {
        let tail = (1.0 - q).clamp(1e-12, 1.0);
        // The service time alone: exponential with mean `base`.
        let service = self.base * (1.0 / tail).ln();
        let cap = service + self.max_wait;
        if self.decay <= 0.0 {
            return cap;
        }
        let response = if self.exceedance(cap) > tail {
            cap
        } else {
            // P(T > t) falls from above `tail` at `service` (a wait only adds) to below it at
            // `cap`: bisect.
            let (mut low, mut high) = (service, cap);
            for _ in 0..60 {
                let mid = (low + high) / 2.0;
                if self.exceedance(mid) > tail {
                    low = mid;
                } else {
                    high = mid;
                }
            }
            high
        };
        (response + self.backlog_wait).min(cap)
    }

    /// `P(T > t)` for the response time `T = S + W` of the M/M/c queue: `S` exponential with
    /// mean `base`, `W` 0 with probability `1 - P` and else exponential with rate `decay`.
    pub fn exceedance(&self, t: f64) -> f64 {
        let a = 1.0 / self.base;
        let v = self.decay;
        let served = (-a * t).exp();
        let waited = if (v - a).abs() <= 1e-9 * a {
            (1.0 + a * t) * served
        } else {
            (v * served - a * (-v * t).exp()) / (v - a)
        };
        (1.0 - self.wait_probability) * served + self.wait_probability * waited
    }
}

/// The probability that an arrival waits in an M/M/c queue with `c` servers and an offered load
/// of `a = λ/μ` erlangs (Erlang's C formula), through the numerically stable recursion of
/// Erlang's B formula. 1 when `a >= c`.
pub fn erlang_c(c: u32, a: f64) -> f64 {
    if c == 0 || a >= f64::from(c) {
        return 1.0;
    }
    if a <= 0.0 {
        return 0.0;
    }
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (f64::from(k) + a * b);
    }
    let c = f64::from(c);
    (c * b / (c - a * (1.0 - b))).clamp(0.0, 1.0)
}

/// One replica: when it was created and when it is ready to serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pod {
    pub created: i64,
    pub ready_at: i64,
}

impl Pod {
    /// A replica that has been serving since long before `now`.
    pub fn established(now: i64) -> Self {
        let long_ago = now.saturating_sub(86_400);
        Self {
            created: long_ago,
            ready_at: long_ago,
        }
    }
}

/// The Deployment as the model sees it: its replicas (with the time each is ready) and the queue.
#[derive(Clone, Debug)]
pub struct Service {
    params: ModelParams,
    /// The replicas, in creation order (so their ready times ascend).
    pods: Vec<Pod>,
    backlog: f64,
    /// The latency quantiles each second computes ahead.
    quantiles: Vec<f64>,
    /// The last Erlang C computation, (servers, load in erlangs) -> probability.
    erlang_memo: Option<(u32, f64, f64)>,
    /// The last quantiles computed, for the same latency distribution.
    quantile_memo: Option<(Latency, Vec<(f64, f64)>)>,
}

impl Service {
    /// A service with `replicas` replicas, serving since long before `now`, and no queue.
    pub fn new(params: ModelParams, replicas: u32, now: i64) -> Self {
        Self {
            params,
            pods: vec![Pod::established(now); replicas as usize],
            backlog: 0.0,
            quantiles: Vec::new(),
            erlang_memo: None,
            quantile_memo: None,
        }
    }

    /// Computes these latency quantiles ahead in every second (the SLO's and the policy's), so
    /// that reading them over a window costs nothing.
    pub fn with_quantiles(mut self, quantiles: &[f64]) -> Self {
        for &q in quantiles {
            if !self.quantiles.contains(&q) {
                self.quantiles.push(q);
            }
        }
        self
    }

    pub fn params(&self) -> &ModelParams {
        &self.params
    }

    /// Replicas that exist, ready or not.
    pub fn replicas(&self) -> u32 {
        u32::try_from(self.pods.len()).unwrap_or(u32::MAX)
    }

    /// The replicas, oldest first.
    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    /// Replicas ready at `now`.
    pub fn ready(&self, now: i64) -> u32 {
        let n = self.pods.partition_point(|p| p.ready_at <= now);
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Requests waiting now.
    pub fn backlog(&self) -> f64 {
        self.backlog
    }

    /// Sets the replica count at `now`: new replicas are ready after the start-up delay; removed
    /// ones go at once, the newest (not ready) first.
    pub fn scale_to(&mut self, replicas: u32, now: i64) {
        let replicas = replicas as usize;
        if replicas > self.pods.len() {
            let pod = Pod {
                created: now,
                ready_at: now.saturating_add(self.params.startup_delay),
            };
            self.pods.resize(replicas, pod);
        } else {
            self.pods.truncate(replicas);
        }
    }

    /// Simulates the second starting at `now` with `load` requests arriving.
    pub fn step(&mut self, now: i64, load: f64) -> Second {
        let ready = self.ready(now);
        let (second, backlog) = self.second(ready, self.replicas(), load);
        self.backlog = backlog;
        second
    }

    /// What the next second would be with exactly `ready` replicas, all ready, and the backlog
    /// as it is, without running it (the oracle's probe; the replicas themselves are left alone).
    pub fn probe(&mut self, ready: u32, load: f64) -> Second {
        self.second(ready, ready, load).0
    }

    /// Runs the next second with exactly `ready` replicas, all ready, whatever the replicas are:
    /// the backlog carries on as [`Service::probe`] says.
    pub fn step_with(&mut self, ready: u32, load: f64) -> Second {
        let (second, backlog) = self.second(ready, ready, load);
        self.backlog = backlog;
        second
    }

    /// One second with `ready` replicas serving out of `pods`: the second, and the backlog after.
    fn second(&mut self, ready: u32, pods: u32, load: f64) -> (Second, f64) {
        let p = self.params;
        let capacity = f64::from(ready) * p.capacity;
        let limit = f64::from(ready) * p.queue_limit;
        let before = self.backlog;
        let work = before + load;
        let served = work.min(capacity);
        let mut after = work - served;
        let dropped = (after - limit).max(0.0);
        after -= dropped;
        let latency = (ready > 0).then(|| {
            let backlog_wait = (before + after) / 2.0 / capacity;
            let (wait_probability, decay) = if load < capacity {
                let servers = ready.saturating_mul(p.servers_per_replica());
                let mu = p.capacity / f64::from(p.servers_per_replica());
                (self.erlang(servers, load / mu), capacity - load)
            } else {
                (1.0, 0.0)
            };
            Latency {
                base: p.base_latency,
                backlog_wait,
                wait_probability,
                decay,
                max_wait: p.max_wait(),
            }
        });
        let quantiles = match latency {
            Some(l) => self.quantiles_of(l),
            None => Vec::new(),
        };
        let second = Second {
            load,
            served,
            dropped,
            queue: after,
            capacity,
            requested: f64::from(pods) * p.capacity,
            ready,
            pods,
            latency,
            quantiles,
        };
        (second, after)
    }

    fn quantiles_of(&mut self, latency: Latency) -> Vec<(f64, f64)> {
        if let Some((l, values)) = &self.quantile_memo
            && *l == latency
        {
            return values.clone();
        }
        let values: Vec<(f64, f64)> = self
            .quantiles
            .iter()
            .map(|&q| (q, latency.quantile(q)))
            .collect();
        self.quantile_memo = Some((latency, values.clone()));
        values
    }

    fn erlang(&mut self, servers: u32, erlangs: f64) -> f64 {
        match self.erlang_memo {
            Some((c, a, p)) if c == servers && a == erlangs => p,
            _ => {
                let p = erlang_c(servers, erlangs);
                self.erlang_memo = Some((servers, erlangs, p));
                p
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_matches_hand_computed_values() {
        // One server: the probability of waiting is the utilization.
        assert!((erlang_c(1, 0.5) - 0.5).abs() < 1e-12);
        // Two servers, a = 1: B(2,1) = 0.2, C = 2*0.2 / (2 - 1*(1-0.2)) = 0.4/1.2 = 1/3.
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(erlang_c(4, 4.0), 1.0);
        assert_eq!(erlang_c(4, 0.0), 0.0);
    }

    fn latency(base: f64, wait_probability: f64, decay: f64) -> Latency {
        Latency {
            base,
            backlog_wait: 0.0,
            wait_probability,
            decay,
            max_wait: 1.0,
        }
    }

    #[test]
    fn without_waiting_the_p95_is_the_exponential_service_time_quantile() {
        // base * ln(1 / 0.05) = 0.01 * ln 20 = 0.0299573...
        let p95 = latency(0.01, 0.0, 100.0).quantile(0.95);
        assert!((p95 - 0.029_957_3).abs() < 1e-6, "{p95}");
    }

    #[test]
    fn a_wait_adds_a_second_exponential_stage() {
        // Always waiting, service rate 10, wait rate 20: P(T > t) = 2e^(-10t) - e^(-20t);
        // at t = 0.3: 2 * 0.0497871 - 0.0024788 = 0.0970954.
        let l = latency(0.1, 1.0, 20.0);
        assert!((l.exceedance(0.3) - 0.097_095_4).abs() < 1e-6);
        // Equal rates 10: P(T > t) = (1 + 10t) e^(-10t) = 0.05 at t = 0.474386...
        let p95 = latency(0.1, 1.0, 10.0).quantile(0.95);
        assert!((p95 - 0.474_386).abs() < 1e-5, "{p95}");
    }

    #[test]
    fn a_saturated_queue_waits_its_whole_length() {
        // 0.01 * ln 20 + 1.0
        let p95 = latency(0.01, 1.0, 0.0).quantile(0.95);
        assert!((p95 - 1.029_957_3).abs() < 1e-6, "{p95}");
    }

    #[test]
    fn removing_replicas_drops_the_ones_still_starting_first() {
        let mut s = Service::new(ModelParams::default(), 2, 0);
        s.scale_to(4, 10);
        assert_eq!((s.replicas(), s.ready(10)), (4, 2));
        assert_eq!(s.ready(40), 4);
        s.scale_to(3, 20);
        assert_eq!((s.replicas(), s.ready(40)), (3, 3));
        s.scale_to(1, 20);
        assert_eq!((s.replicas(), s.ready(20)), (1, 1));
    }

    #[test]
    fn a_model_file_overrides_defaults_and_rejects_unknown_fields() {
        let p = ModelParams::default()
            .with_file("m.yaml", "capacityPerReplica: 50\nstartupDelay: 1m\n")
            .unwrap();
        assert_eq!(p.capacity, 50.0);
        assert_eq!(p.startup_delay, 60);
        assert_eq!(p.base_latency, 0.01);
        let e = ModelParams::default()
            .with_file("m.yaml", "capacity: 50\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("m.yaml: unknown field `capacity`"), "{e}");
        let e = ModelParams::default()
            .with_file("m.yaml", "baseLatency: fast\n")
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("m.yaml: baseLatency: invalid type: string \"fast\""),
            "{e}"
        );
        assert!(
            std::error::Error::source(&e).is_some(),
            "keeps the YAML error"
        );
        let e = ModelParams::default()
            .with_file("m.yaml", "startupDelay: soon\n")
            .unwrap_err();
        assert!(e.to_string().starts_with("m.yaml: startupDelay: "), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    }
}
