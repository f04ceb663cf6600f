//! [`MetricSource`] on the Prometheus HTTP API (`/api/v1/query`), through the
//! `prometheus-http-query` crate: Prometheus, Thanos, Mimir, Cortex, VictoriaMetrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use tokio::task::JoinSet;

use super::answer::{self, Answer};
use super::endpoint::{ServerConfig, SourceConfig};
use super::error::{ConfigError, MetricsError};
use super::limits::{AnswerLimits, CappedBody, TooLarge};
use super::observation::{Failure, Invalid, MetricObservation, Sample};
use super::plan::{MetricQuery, QueryPlan};
use super::source::MetricSource;
use super::tls;
use crate::api::{FailureKind, FieldError};
use crate::decide::Observation;
use crate::fair::FairSlots;
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
    config: SourceConfig,
}

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
            config,
        })
    }

    /// At most `n` requests in flight at once, across every policy this source serves.
    pub fn with_query_limit(mut self, n: usize) -> Self {
        self.permits = Some(Arc::new(FairSlots::new(n)));
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

    /// Problems with a policy that depend on the operator's settings (an address off the
    /// allow-list), with field paths.
    pub fn check(&self, address: Option<&str>) -> Vec<FieldError> {
        match self.config.server_for_address(address) {
            Err(e) => e.field_error().into_iter().collect(),
            Ok(_) => Vec::new(),
        }
    }

    /// One evaluation of a plan as the decision engine takes it: one observation per metric,
    /// in spec order, carrying its PromQL. When the policy cannot be read at all, every metric
    /// is unavailable with the reason.
    pub async fn observe(&self, plan: &QueryPlan, at: Option<Timestamp>) -> Vec<Observation> {
        match self.evaluate(plan, at).await {
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

impl MetricSource for PrometheusSource {
    async fn evaluate(
        &self,
        plan: &QueryPlan,
        at: Option<Timestamp>,
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
        let target = Target {
            client,
            headers,
            base: server.url.to_string(),
            timeout: self.config.timeout,
            limits: self.config.limits,
            at,
            permits: self.permits.clone(),
            namespace: plan.namespace.clone(),
            telemetry: self.telemetry.clone(),
        };
        let mut tasks = JoinSet::new();
        for (i, metric) in plan.metrics.iter().enumerate() {
            let target = target.clone();
            let metric = metric.clone();
            tasks.spawn(async move { (i, observe(&target, &metric, limit).await) });
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
                r.unwrap_or_else(|| {
                    observation(
                        m,
                        Err(Failure::unavailable("the query task ended abnormally")),
                    )
                })
            })
            .collect())
    }
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
    }
}

/// Runs a metric's value and age queries concurrently and judges the answers.
async fn observe(target: &Target, m: &MetricQuery, limit: Duration) -> MetricObservation {
    let started = Instant::now();
    let value = instant_query(target, &m.promql);
    let age = async {
        match &m.age_query {
            Some(q) => Some(instant_query(target, q).await),
            None => None,
        }
    };
    let (value, age) = tokio::join!(value, age);
    let observed = observation(m, answer::judge(m.kind, value, age, limit));
    if let Some(telemetry) = &target.telemetry {
        telemetry.queried(
            started.elapsed(),
            observed.result.as_ref().err().map(Failure::kind),
        );
    }
    observed
}

/// One instant query (GET `/api/v1/query`), classified. A request that failed on a reused
/// connection the server had closed (it restarted, or dropped an idle connection) is sent once
/// more on a new one: the query is idempotent.
async fn instant_query(target: &Target, promql: &str) -> Result<Answer, Failure> {
    // Namespaces are served in turn, each within its share: a server that hangs holds at most
    // its own namespace's slots.
    let _permit = match &target.permits {
        Some(permits) => Some(permits.acquire(&target.namespace).await),
        None => None,
    };
    match send(target, promql).await {
        Err(Sent::Closed(_)) => send(target, promql).await,
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

async fn send(target: &Target, promql: &str) -> Result<Answer, Sent> {
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
    let body = read_body(target, response).await.map_err(Sent::Failed)?;
    answer::classify(
        status,
        content_type.as_deref(),
        body.as_slice(),
        target.limits.max_series,
    )
    .map_err(Sent::Failed)
}

/// Reads an answer's body chunk by chunk, stopping as soon as it passes
/// `--prometheus-max-answer-bytes` (or at once when its `Content-Length` does): the body never
/// holds more than the cap, plus the one chunk in hand. The client's request timeout still runs
/// while the body is read, so an answer that never ends fails at the cap or at the timeout,
/// whichever comes first; returning drops the response and closes its connection.
async fn read_body(
    target: &Target,
    mut response: reqwest::Response,
) -> Result<CappedBody, Failure> {
    let too_large = |TooLarge(limit)| Failure::Invalid(Invalid::TooLarge { limit });
    let mut body =
        CappedBody::new(target.limits.max_bytes, response.content_length()).map_err(too_large)?;
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
