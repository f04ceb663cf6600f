//! [`MetricSource`] on the Prometheus HTTP API (`/api/v1/query`), through the
//! `prometheus-http-query` crate: Prometheus, Thanos, Mimir, Cortex, VictoriaMetrics.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use tokio::task::JoinSet;

use super::answer::{self, Answer};
use super::coalesce::{self, Answers, Coalescer, GroupKey, Sharing};
use super::endpoint::{ServerConfig, SourceConfig};
use super::error::{ConfigError, MetricsError};
use super::limits::{AnswerLimits, CappedBody, TooLarge};
use super::observation::{Failure, Invalid, MetricObservation, Sample};
use super::plan::{MetricQuery, PerPod, QueryPlan};
use super::source::MetricSource;
use super::tenancy::QueryScope;
use super::tls;
use crate::api::{FailureKind, FieldError};
use crate::decide::Observation;
use crate::fair::FairSlots;
use crate::pods::TargetPods;
use crate::pods::count::CountError;
use crate::text::{self, Causes, Resolution};

/// Reads metrics from servers speaking the Prometheus HTTP API. One per process: it holds the one
/// HTTP client (and its connection pool) every evaluation of every policy shares. Cloning it is
/// cheap and shares the client.
#[derive(Clone, Debug)]
pub struct PrometheusSource {
    http: reqwest::Client,
    /// Bounds the requests in flight across every policy (`--max-concurrent-queries`).
    permits: Option<Arc<FairSlots>>,
    /// Where query durations and failures are counted (the controller's own metrics).
    telemetry: Option<Arc<crate::telemetry::Metrics>>,
    /// Shares the readings of one tick between policies (the controller's; see
    /// [`super::coalesce`]).
    coalescer: Option<Arc<Coalescer<Shared>>>,
    config: SourceConfig,
}

/// A reading as the policies of one tick share it.
type Shared = Result<Reply, Failure>;

/// The slots of coalesced queries are shared under this key, beside the namespaces': a coalesced
/// query reads for many namespaces at once.
const COALESCED: &str = "(coalesced queries)";

/// A coalesced answer may be this many times as large as a metric's own (in series and bytes).
const COALESCED_ANSWER_FACTOR: usize = 4;

impl PrometheusSource {
    /// Builds the HTTP client from the operator's settings; fails on unreadable CA bundles,
    /// credential files or malformed headers.
    pub fn new(config: SourceConfig) -> Result<Self, ConfigError> {
        for server in config.servers() {
            server.access.check()?;
        }
        let tls = tls::client_config(&config)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // A redirect could lead an allowed address anywhere, with its headers.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("scalewise/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Client(text::error_chain(&e, Causes::BelowTop)))?;
        Ok(Self {
            http,
            permits: None,
            telemetry: None,
            coalescer: None,
            config,
        })
    }

    /// At most `n` requests in flight at once, across every policy this source serves.
    pub fn with_query_limit(mut self, n: usize) -> Self {
        self.permits = Some(Arc::new(FairSlots::new(n)));
        self
    }

    /// Evaluations at a tick (an `at` given to [`PrometheusSource::observe`]) share their queries
    /// with every other evaluation of the same tick ([`super::coalesce`]).
    pub fn with_coalescing(mut self) -> Self {
        self.coalescer = Some(Arc::new(Coalescer::default()));
        self
    }

    /// Counts each metric read (its duration, and its failure kind) in `metrics`.
    pub fn with_telemetry(mut self, metrics: Arc<crate::telemetry::Metrics>) -> Self {
        self.telemetry = Some(metrics);
        self
    }

    /// The HTTP client every request of this source goes through (its TLS settings, timeout and
    /// no redirects), for callers that ask a server more than instant queries (the simulator's
    /// range queries).
    pub fn http_client(&self) -> &reqwest::Client {
        &self.http
    }

    /// The settings the source was built with.
    pub fn config(&self) -> &SourceConfig {
        &self.config
    }

    /// The server a plan's queries go to; `Err` when the policy names one it may not.
    pub fn server_for(&self, plan: &QueryPlan) -> Result<ServerConfig, MetricsError> {
        self.config.server_for(plan)
    }

    /// Problems with a policy in `namespace` that depend on the operator's settings (an address
    /// off the allow-list, or on an entry not open to the namespace), with field paths.
    pub fn check(&self, namespace: &str, address: Option<&str>) -> Vec<FieldError> {
        match self.config.server_for_address(namespace, address) {
            Err(e) => e.field_error().into_iter().collect(),
            Ok(_) => Vec::new(),
        }
    }

    /// One evaluation of a plan as the decision engine takes it: one observation per metric,
    /// in spec order, carrying its PromQL. When the policy cannot be read at all, every metric
    /// is unavailable with the reason. `pods` are the target's pods, for the metrics read per
    /// pod (`cpu`, `memory`); without them those metrics are unavailable.
    pub async fn observe(
        &self,
        plan: &QueryPlan,
        at: Option<Timestamp>,
        pods: Result<&TargetPods, &str>,
    ) -> Vec<Observation> {
        match self.evaluate_with_pods(plan, at, pods).await {
            Ok(observations) => observations.into_iter().map(Observation::from).collect(),
            Err(e) => plan
                .metrics
                .iter()
                .map(|m| Observation {
                    query: Some(m.promql.clone()),
                    ..Observation::failed(
                        &m.name,
                        FailureKind::Unavailable,
                        super::limits::truncate_message(e.to_string()),
                    )
                })
                .collect(),
        }
    }
}

impl PrometheusSource {
    /// The history of the metric `name` of `plan` over `span` (one range query of its scoped
    /// PromQL), for `spec.forecast`: sent with the server's credentials and headers, in the
    /// namespace's turn for a query slot, its answer read under the byte cap.
    pub async fn history(
        &self,
        plan: &QueryPlan,
        name: &str,
        span: super::range::Span,
    ) -> Result<crate::decide::forecast::History, String> {
        let metric = plan
            .metrics
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| format!("no metric {name:?} in the policy"))?;
        let server = self.server_for(plan).map_err(|e| e.to_string())?;
        let headers = read_headers(&server, self.config.timeout)
            .await
            .map_err(|e| e.to_string())?;
        let client = prometheus_http_query::Client::from(self.http.clone(), server.url.as_str())
            .map_err(|e| e.to_string())?;
        let _permit = match &self.permits {
            Some(permits) => Some(permits.acquire(&plan.namespace).await),
            None => None,
        };
        let base = server.url.as_str();
        let mut request = client.query_range(
            metric.standalone_promql(),
            span.from,
            span.to,
            span.step as f64,
        );
        for (name, value) in &headers {
            request = request.header(name.clone(), value.clone());
        }
        let response = request
            .get_raw()
            .await
            .map_err(|e| format!("range query to {base} failed: {e}"))?;
        let status = response.status().as_u16();
        let mut body = CappedBody::new(self.config.limits.max_bytes, response.content_length())
            .map_err(|TooLarge(limit)| too_large(limit))?;
        let mut response = response;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading the range query's answer from {base} failed: {e}"))?
        {
            body.push(&chunk)
                .map_err(|TooLarge(limit)| too_large(limit))?;
        }
        super::range::history(status, body.as_slice(), span, metric.kind.allows_negative())
    }
}

fn too_large(limit: usize) -> String {
    format!(
        "the range query's answer is over {} (--prometheus-max-answer-bytes): use a longer spec.forecast.step",
        super::limits::size(limit)
    )
}

impl MetricSource for PrometheusSource {
    async fn evaluate(
        &self,
        plan: &QueryPlan,
        at: Option<Timestamp>,
    ) -> Result<Vec<MetricObservation>, MetricsError> {
        self.evaluate_with_pods(plan, at, Err(PODS_UNKNOWN)).await
    }
}

/// Why a metric counted per pod has no value when no pods were given.
const PODS_UNKNOWN: &str = "the target's pods are not known here: this metric is counted over them (give a kubeconfig, or set podSelector)";

impl PrometheusSource {
    /// [`MetricSource::evaluate`], counting the metrics read per pod over `pods` (the target's),
    /// or failing them with the reason they are not known.
    pub async fn evaluate_with_pods(
        &self,
        plan: &QueryPlan,
        at: Option<Timestamp>,
        pods: Result<&TargetPods, &str>,
    ) -> Result<Vec<MetricObservation>, MetricsError> {
        let server = self.server_for(plan)?;
        let limit = self.config.staleness_limit(plan.interval);
        let headers = match read_headers(&server, self.config.timeout).await {
            Ok(h) => h,
            // Credentials that cannot be read now fail every metric of this evaluation.
            Err(e) => {
                let failure = Failure::unavailable(e.to_string());
                return Ok(plan
                    .metrics
                    .iter()
                    .map(|m| observation(m, Err(failure.clone())))
                    .collect());
            }
        };
        let client =
            match prometheus_http_query::Client::from(self.http.clone(), server.url.as_str()) {
                Ok(c) => c,
                Err(e) => return Err(MetricsError::InvalidAddress(e.to_string())),
            };
        let server_key = coalesce::hash_of(&(
            server.url.as_str(),
            headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_bytes()))
                .collect::<Vec<_>>(),
        ));
        let target = Target {
            client,
            headers,
            server_key,
            interval: plan.interval,
            coalescer: self.coalescer.clone(),
            base: server.url.to_string(),
            timeout: self.config.timeout,
            limits: self.config.limits,
            at,
            permits: self.permits.clone(),
            namespace: plan.namespace.clone(),
            telemetry: self.telemetry.clone(),
        };
        let mut tasks = JoinSet::new();
        let pods: Result<Arc<TargetPods>, String> =
            pods.map(|p| Arc::new(p.clone())).map_err(str::to_owned);
        let now = at.unwrap_or_else(Timestamp::now);
        for (i, metric) in plan.metrics.iter().enumerate() {
            let target = target.clone();
            let metric = metric.clone();
            let pods = pods.clone();
            tasks.spawn(async move {
                let observed = match &metric.per_pod {
                    None => observe(&target, &metric, limit).await,
                    Some(per_pod) => {
                        let pods = pods.as_deref().map_err(String::as_str);
                        observe_pods(&target, &metric, per_pod, limit, pods, now).await
                    }
                };
                (i, observed)
            });
        }
        let mut results: Vec<Option<MetricObservation>> = vec![None; plan.metrics.len()];
        while let Some(joined) = tasks.join_next().await {
            if let Ok((i, observation)) = joined
                && let Some(slot) = results.get_mut(i)
            {
                *slot = Some(observation);
            }
        }
        Ok(plan
            .metrics
            .iter()
            .zip(results)
            .map(|(m, r)| {
                let observed = r.unwrap_or_else(|| {
                    observation(
                        m,
                        Err(Failure::unavailable("the query task ended abnormally")),
                    )
                });
                within_scope(&plan.scope, observed)
            })
            .collect())
    }
}

/// `observed` as its policy may read it: nothing found under a namespace scope says which label
/// it looked for, and a server's error text that names a series of a namespace the policy may
/// not read loses that series' labels (the message lands in the policy's status).
fn within_scope(scope: &QueryScope, mut observed: MetricObservation) -> MetricObservation {
    observed.result = match observed.result {
        Err(Failure::Empty) => match scope {
            QueryScope::Namespace {
                label,
                namespace,
                grants,
            } => Err(Failure::EmptyInNamespace {
                label: label.clone(),
                namespace: namespace.clone(),
                granted: grants.iter().map(|g| g.source.clone()).collect(),
            }),
            QueryScope::Unscoped { .. } => Err(Failure::Empty),
        },
        Err(Failure::Unavailable(message)) => Err(Failure::Unavailable(
            super::tenancy::redact_foreign_series(scope, &message),
        )),
        other => other,
    };
    observed
}

/// The request headers of `server`, its credential files read off the async runtime within the
/// request timeout: a hung filesystem fails the evaluation instead of holding it.
async fn read_headers(server: &ServerConfig, timeout: Duration) -> Result<HeaderMap, ConfigError> {
    tokio::time::timeout(timeout, server.access.read_headers())
        .await
        .unwrap_or_else(|_| {
            Err(ConfigError::Credentials(format!(
                "the credential files could not be read within {} (the request timeout)",
                text::duration(timeout, Resolution::Fine)
            )))
        })
}

/// Where and how one evaluation's queries are sent.
#[derive(Clone)]
struct Target {
    client: prometheus_http_query::Client,
    headers: HeaderMap,
    /// A hash of the server's URL and headers: readings share queries only within it.
    server_key: u64,
    /// The policy's interval: readings share queries only with those of the same ticks.
    interval: Duration,
    coalescer: Option<Arc<Coalescer<Shared>>>,
    /// The server's URL, for messages.
    base: String,
    timeout: Duration,
    limits: AnswerLimits,
    at: Option<Timestamp>,
    permits: Option<Arc<FairSlots>>,
    /// The policy's namespace: query slots are shared by namespaces in turn.
    namespace: String,
    telemetry: Option<Arc<crate::telemetry::Metrics>>,
}

fn observation(m: &MetricQuery, result: Result<Sample, Failure>) -> MetricObservation {
    MetricObservation {
        name: m.name.clone(),
        query: m.promql.clone(),
        age_query: m.age_query.clone(),
        result,
        pods: None,
    }
}

/// Reads a per-pod metric's value and age with its one query and counts the target's pods with
/// the answer.
async fn observe_pods(
    target: &Target,
    m: &MetricQuery,
    per_pod: &PerPod,
    limit: Duration,
    pods: Result<&TargetPods, &str>,
    now: Timestamp,
) -> MetricObservation {
    let started = Instant::now();
    let (value, age) = split(
        read_shared(target, m, true).await,
        |answered| match answered {
            Answered::Pods(values) => Ok(values),
            Answered::One(_) => Err("a value answer to a per-pod query"),
        },
    );
    let counted = value.and_then(|samples| {
        if samples.is_empty() {
            return Err(Failure::Empty);
        }
        let age = answer::fresh(age, limit)?;
        let pods = pods.map_err(Failure::unavailable)?;
        let counted = crate::pods::utilization(
            pods,
            &samples,
            per_pod.resource,
            &per_pod.readiness,
            per_pod.window,
            now,
        )
        .map_err(|e| match e {
            CountError::Request(message) => Failure::Invalid(Invalid::Request(message)),
            CountError::NoReadyPod(message) => Failure::NoReadyPod(message),
        })?;
        Ok((
            Sample {
                value: counted.value(),
                age,
            },
            counted,
        ))
    });
    let observed = match counted {
        Ok((sample, counted)) => MetricObservation {
            pods: Some(counted),
            ..observation(m, Ok(sample))
        },
        Err(failure) => observation(m, Err(failure)),
    };
    with_telemetry(target, started, observed)
}

/// `observed`, counted in the operator's own metrics (its duration and failure kind).
fn with_telemetry(
    target: &Target,
    started: Instant,
    observed: MetricObservation,
) -> MetricObservation {
    if let Some(telemetry) = &target.telemetry {
        telemetry.queried(
            started.elapsed(),
            observed.result.as_ref().err().map(Failure::kind),
        );
    }
    observed
}

/// Reads a metric's value and age with its one query and judges the answer.
async fn observe(target: &Target, m: &MetricQuery, limit: Duration) -> MetricObservation {
    let started = Instant::now();
    let (value, age) = split(
        read_shared(target, m, false).await,
        |answered| match answered {
            Answered::One(answer) => Ok(answer),
            Answered::Pods(_) => Err("a per-pod answer to a value query"),
        },
    );
    let observed = observation(m, answer::judge(m.kind, value, age, limit));
    with_telemetry(target, started, observed)
}

/// What an instant query answered for a metric's value.
#[derive(Clone, Debug)]
enum Answered {
    One(Answer),
    Pods(BTreeMap<String, f64>),
}

/// What a metric's query answered: its value and, when the query is combined, the age of the
/// samples behind it.
#[derive(Clone, Debug)]
struct Reply {
    value: Answered,
    age: Option<Answer>,
}

/// A reply's value as `pick` takes it (or the answer it got instead, unavailable), and the answer
/// of its age part, as [`answer::judge`] and [`answer::fresh`] take them.
fn split<T>(
    reply: Result<Reply, Failure>,
    pick: impl FnOnce(Answered) -> Result<T, &'static str>,
) -> (Result<T, Failure>, Option<Result<Answer, Failure>>) {
    match reply {
        Ok(Reply { value, age }) => match pick(value) {
            Ok(value) => (Ok(value), age.map(Ok)),
            Err(wrong) => (Err(Failure::unavailable(wrong)), None),
        },
        Err(failure) => (Err(failure), None),
    }
}

/// How a metric's query is sent and its answer read.
#[derive(Clone, Copy)]
struct Shape {
    /// The value is read per pod.
    per_pod: bool,
    /// The query carries the age beside the value.
    combined: bool,
}

/// A metric's reading at its evaluation's tick, shared with every other evaluation of the tick
/// that reads the same (see [`super::coalesce`]); read alone without a tick, without coalescing,
/// or when the tick's shared read left it out.
async fn read_shared(target: &Target, m: &MetricQuery, per_pod: bool) -> Result<Reply, Failure> {
    let (Some(coalescer), Some(tick)) = (&target.coalescer, target.at) else {
        return read(target, m, per_pod).await;
    };
    let (key, member) = match &m.sharing {
        Sharing::Whole => (
            GroupKey {
                server: target.server_key,
                interval: target.interval,
                query: m.sent().to_owned(),
                labels: Vec::new(),
                per_pod,
            },
            Vec::new(),
        ),
        Sharing::Split(split) => (
            GroupKey {
                server: target.server_key,
                interval: target.interval,
                query: split.template.clone(),
                labels: split.labels.clone(),
                per_pod,
            },
            split.values.clone(),
        ),
    };
    let shared = coalescer
        .read(&key, tick, &member, |members| async {
            if key.labels.is_empty() {
                Answers::Whole(read(target, m, per_pod).await)
            } else {
                Answers::Split(read_split(target, &key, members).await)
            }
        })
        .await;
    match shared {
        Some(reply) => reply,
        None => read(target, m, per_pod).await,
    }
}

/// The shares of `members` of a split group: one query per chunk of members that fits
/// ([`coalesce::chunks`]); a chunk whose answer is over the coalesced caps is read again in
/// halves, and a member alone over them is left out (it reads its own, under its own caps). A
/// chunk whose query fails fails each of its members with that failure.
async fn read_split(
    target: &Target,
    key: &GroupKey,
    members: Vec<Vec<String>>,
) -> HashMap<Vec<String>, Shared> {
    let mut shares = HashMap::new();
    let mut pending = coalesce::chunks(members, coalesce::MAX_MEMBERS);
    while !pending.is_empty() {
        let round = futures::future::join_all(
            pending
                .iter()
                .map(|chunk| read_chunk(target, key, chunk.as_slice())),
        )
        .await;
        let mut next = Vec::new();
        for (chunk, answered) in pending.into_iter().zip(round) {
            match answered {
                Chunk::Read(mut split) => {
                    for member in chunk {
                        let share = split.remove(&member);
                        let reply = share_reply(target, share, key.per_pod);
                        shares.insert(member, reply);
                    }
                }
                Chunk::TooLarge if chunk.len() > 1 => {
                    let mut chunk = chunk;
                    let half = chunk.split_off(chunk.len() / 2);
                    next.push(chunk);
                    next.push(half);
                }
                Chunk::TooLarge | Chunk::NotSent => {}
                Chunk::Failed(failure) => {
                    for member in chunk {
                        shares.insert(member, Err(failure.clone()));
                    }
                }
            }
        }
        pending = next;
    }
    shares
}

/// What a coalesced query of one chunk of members got.
enum Chunk {
    Read(HashMap<Vec<String>, answer::Share>),
    /// Over the coalesced caps.
    TooLarge,
    /// Its query could not be built; its members read their own.
    NotSent,
    Failed(Failure),
}

async fn read_chunk(target: &Target, key: &GroupKey, chunk: &[Vec<String>]) -> Chunk {
    let Ok(promql) = coalesce::query(&key.query, &key.labels, chunk) else {
        return Chunk::NotSent;
    };
    let limits = target.limits;
    let max_series = limits
        .max_series
        .max(limits.max_pod_series)
        .saturating_mul(COALESCED_ANSWER_FACTOR);
    let max_bytes = limits.max_bytes.saturating_mul(COALESCED_ANSWER_FACTOR);
    let _permit = match &target.permits {
        Some(permits) => Some(permits.acquire(COALESCED).await),
        None => None,
    };
    let answered = match request(target, &promql, max_bytes).await {
        Err(Sent::Closed(_)) => request(target, &promql, max_bytes).await,
        other => other,
    };
    let (status, content_type, body) = match answered {
        Ok(answered) => answered,
        Err(Sent::Failed(Failure::Invalid(Invalid::TooLarge { .. }))) => return Chunk::TooLarge,
        Err(Sent::Failed(failure) | Sent::Closed(failure)) => return Chunk::Failed(failure),
    };
    match answer::split_coalesced(
        status,
        content_type.as_deref(),
        body.as_slice(),
        max_series,
        &key.labels,
        key.per_pod,
    ) {
        Ok(split) => Chunk::Read(split),
        Err(Failure::Invalid(Invalid::TooManySeries { .. })) => Chunk::TooLarge,
        Err(failure) => Chunk::Failed(failure),
    }
}

/// A member's share as its own query's reply: what [`send`] makes of its own answer (its own
/// series caps apply). No share: its group was not in the answer, as its own query would have
/// found nothing.
fn share_reply(target: &Target, share: Option<answer::Share>, per_pod: bool) -> Shared {
    let Some(share) = share else {
        return Ok(Reply {
            value: if per_pod {
                Answered::Pods(BTreeMap::new())
            } else {
                Answered::One(Answer::Nothing)
            },
            age: Some(Answer::Nothing),
        });
    };
    let limit = if per_pod {
        target.limits.max_pod_series
    } else {
        target.limits.max_series
    };
    if share.value_series > limit {
        return Err(Failure::Invalid(if per_pod {
            Invalid::TooManyPods { limit }
        } else {
            Invalid::TooManySeries { limit }
        }));
    }
    let value = share.value?;
    let age = share.age?;
    let value = match share.pods {
        Some(pods) => Answered::Pods(pods?),
        None => Answered::One(value),
    };
    Ok(Reply {
        value,
        age: Some(age),
    })
}

/// A metric's one instant query (GET `/api/v1/query`), classified. A request that failed on a
/// reused connection the server had closed (it restarted, or dropped an idle connection) is
/// sent once more on a new one: the query is idempotent.
async fn read(target: &Target, m: &MetricQuery, per_pod: bool) -> Result<Reply, Failure> {
    let shape = Shape {
        per_pod,
        combined: m.combined.is_some(),
    };
    let promql = m.sent();
    // Namespaces are served in turn, each within its share: a server that hangs holds at most
    // its own namespace's slots.
    let _permit = match &target.permits {
        Some(permits) => Some(permits.acquire(&target.namespace).await),
        None => None,
    };
    match send(target, promql, shape).await {
        Err(Sent::Closed(_)) => send(target, promql, shape).await,
        other => other,
    }
    .map_err(|sent| match sent {
        Sent::Failed(failure) | Sent::Closed(failure) => failure,
    })
}

/// Why a request got no classified answer.
enum Sent {
    /// The connection closed under the request before any answer: worth one more try.
    Closed(Failure),
    Failed(Failure),
}

async fn send(target: &Target, promql: &str, shape: Shape) -> Result<Reply, Sent> {
    let (status, content_type, body) = request(target, promql, target.limits.max_bytes).await?;
    let max_series = if shape.per_pod {
        target.limits.max_pod_series
    } else {
        target.limits.max_series
    };
    let content_type = content_type.as_deref();
    let classified = if shape.combined {
        answer::classify_combined(status, content_type, body.as_slice(), max_series)
            .map(|(value, age)| (value, Some(age)))
    } else {
        answer::classify(status, content_type, body.as_slice(), max_series).map(|v| (v, None))
    };
    let (value, age) = classified
        .map_err(|failure| match failure {
            Failure::Invalid(Invalid::TooManySeries { limit }) if shape.per_pod => {
                Failure::Invalid(Invalid::TooManyPods { limit })
            }
            other => other,
        })
        .map_err(Sent::Failed)?;
    let value = if shape.per_pod {
        answer::per_pod(&value, body.as_slice(), shape.combined)
            .map(Answered::Pods)
            .map_err(Sent::Failed)?
    } else {
        Answered::One(value)
    };
    Ok(Reply { value, age })
}

/// Sends an instant query and reads its answer: the HTTP status, the `Content-Type` and the body
/// (at most `max_bytes`).
async fn request(
    target: &Target,
    promql: &str,
    max_bytes: usize,
) -> Result<(u16, Option<String>, CappedBody), Sent> {
    let mut request = target.client.query(promql);
    for (name, value) in &target.headers {
        request = request.header(name.clone(), value.clone());
    }
    if let Some(at) = target.at {
        let ms = at.as_millisecond();
        request = request.query(
            "time",
            format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000)),
        );
    }
    let response = request.get_raw().await.map_err(|e| match e {
        prometheus_http_query::Error::Client(client) => match client.inner() {
            Some(source) if source.is_request() && !source.is_timeout() && !source.is_connect() => {
                Sent::Closed(transport_failure(target, source))
            }
            Some(source) => Sent::Failed(transport_failure(target, source)),
            None => Sent::Failed(Failure::unavailable(format!(
                "request to {}: {client}",
                target.base
            ))),
        },
        other => Sent::Failed(Failure::unavailable(format!(
            "request to {}: {other}",
            target.base
        ))),
    })?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = read_body(target, response, max_bytes)
        .await
        .map_err(Sent::Failed)?;
    Ok((status, content_type, body))
}

/// Reads an answer's body chunk by chunk, stopping as soon as it passes
/// `--prometheus-max-answer-bytes` (or at once when its `Content-Length` does): the body never
/// holds more than the cap, plus the one chunk in hand. The client's request timeout still runs
/// while the body is read, so an answer that never ends fails at the cap or at the timeout,
/// whichever comes first; returning drops the response and closes its connection.
async fn read_body(
    target: &Target,
    mut response: reqwest::Response,
    max_bytes: usize,
) -> Result<CappedBody, Failure> {
    let too_large = |TooLarge(limit)| Failure::Invalid(Invalid::TooLarge { limit });
    let mut body = CappedBody::new(max_bytes, response.content_length()).map_err(too_large)?;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| body_failure(target, &e))?
    {
        body.push(&chunk).map_err(too_large)?;
    }
    Ok(body)
}

/// A message for an answer whose body could not be read to its end.
fn body_failure(target: &Target, e: &reqwest::Error) -> Failure {
    let base = &target.base;
    Failure::unavailable(if e.is_timeout() {
        format!(
            "the answer from {base} did not end within {} (the request timeout)",
            text::duration(target.timeout, Resolution::Fine)
        )
    } else {
        format!(
            "reading the answer from {base} failed: {}",
            text::error_chain(e, Causes::BelowTop)
        )
    })
}

/// A message for a request that got no answer: timeout, connection error, or other.
fn transport_failure(target: &Target, e: &reqwest::Error) -> Failure {
    let base = &target.base;
    Failure::unavailable(if e.is_timeout() {
        format!(
            "no answer from {base} within {} (the request timeout)",
            text::duration(target.timeout, Resolution::Fine)
        )
    } else if e.is_connect() {
        format!(
            "cannot connect to {base}: {}",
            text::error_chain(e, Causes::Root)
        )
    } else {
        format!(
            "request to {base} failed: {}",
            text::error_chain(e, Causes::BelowTop)
        )
    })
}
