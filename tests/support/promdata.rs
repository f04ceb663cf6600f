//! For the metrics tests: known data in both metrics servers, servers that misbehave on purpose
//! (a proxy that records what reaches it, a listener that never answers, canned answers), and a
//! private Prometheus a test may stop.

use std::{
    collections::BTreeMap,
    net::TcpListener as StdListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

use scalewise::api::ScalingPolicy;
use scalewise::metrics::{
    MetricObservation, MetricSource, PrometheusSource, QueryPlan, ServerConfig, SourceConfig,
};

use super::metrics::{PromApi, Series, TimestampMs};
use super::{HOW_TO_RUN, http, required_env, unique_name};

/// A ScalingPolicy `checkout` in `namespace` scaling Deployment `checkout`, evaluated every
/// `interval`, with `metrics` (YAML list items indented by four spaces).
pub fn policy(namespace: &str, interval: &str, metrics: &str) -> ScalingPolicy {
    let yaml = format!(
        "apiVersion: scalewise.dev/v1alpha1\n\
         kind: ScalingPolicy\n\
         metadata: {{name: checkout, namespace: {namespace}}}\n\
         spec:\n  \
           targetRef: {{apiVersion: apps/v1, kind: Deployment, name: checkout}}\n  \
           minReplicas: 1\n  \
           maxReplicas: 10\n  \
           interval: {interval}\n  \
           metrics:\n{metrics}"
    );
    serde_yaml_ng::from_str(&yaml).unwrap_or_else(|e| panic!("bad test policy: {e}\n{yaml}"))
}

/// A source reading from `url`, with the default settings.
pub fn source(url: &str) -> PrometheusSource {
    source_with(SourceConfig {
        default: Some(ServerConfig {
            url: url.parse().unwrap_or_else(|e| panic!("{url}: {e}")),
            access: Default::default(),
            tenancy: Default::default(),
        }),
        ..SourceConfig::default()
    })
}

/// A source with these settings.
pub fn source_with(config: SourceConfig) -> PrometheusSource {
    PrometheusSource::new(config).unwrap_or_else(|e| panic!("cannot build the source: {e}"))
}

/// The query plan of `policy`, and `at` (milliseconds) as a timestamp.
fn plan_at(
    policy: &ScalingPolicy,
    at: Option<TimestampMs>,
) -> (QueryPlan, Option<jiff::Timestamp>) {
    let resolved = scalewise::api::Policy::resolve(&policy.spec)
        .unwrap_or_else(|e| panic!("invalid test policy: {e}"));
    let plan = QueryPlan::for_policy(policy, &resolved)
        .unwrap_or_else(|e| panic!("invalid test policy: {e}"));
    let at = at.map(|ms| {
        jiff::Timestamp::from_millisecond(ms).unwrap_or_else(|e| panic!("bad time {ms}: {e}"))
    });
    (plan, at)
}

/// One evaluation of `policy` by `source`, at `at` (milliseconds; the server's now when `None`).
pub async fn read_with(
    source: &PrometheusSource,
    policy: &ScalingPolicy,
    at: Option<TimestampMs>,
) -> Vec<MetricObservation> {
    let (plan, at) = plan_at(policy, at);
    source
        .evaluate(&plan, at)
        .await
        .unwrap_or_else(|e| panic!("the policy cannot be read: {e}"))
}

/// One evaluation of `policy` by `source`, counting `cpu` and `memory` over `pods` (the
/// target's).
pub async fn read_with_pods(
    url: &str,
    policy: &ScalingPolicy,
    at: Option<TimestampMs>,
    pods: &scalewise::pods::TargetPods,
) -> Vec<MetricObservation> {
    let (plan, at) = plan_at(policy, at);
    source(url)
        .evaluate_with_pods(&plan, at, Ok(pods))
        .await
        .unwrap_or_else(|e| panic!("the policy cannot be read: {e}"))
}

/// The target's pods: each `(name, cpu request, memory request)` Running and Ready for an hour.
pub fn ready_pods(pods: &[(&str, &str, &str)]) -> scalewise::pods::TargetPods {
    let hour_ago = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(1))
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string();
    let pods = pods
        .iter()
        .map(|(name, cpu, memory)| {
            let pod: scalewise::pods::LeanPod = serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
                "status": {"phase": "Running", "startTime": hour_ago,
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": hour_ago}]}
            }))
            .unwrap_or_else(|e| panic!("a test pod: {e}"));
            std::sync::Arc::new(pod)
        })
        .collect();
    scalewise::pods::TargetPods {
        pods,
        other_workloads: 0,
    }
}

/// One evaluation of `policy` against the server at `url`.
pub async fn read(
    url: &str,
    policy: &ScalingPolicy,
    at: Option<TimestampMs>,
) -> Vec<MetricObservation> {
    read_with(&source(url), policy, at).await
}

/// The environment's Prometheus.
pub fn prometheus() -> PromApi {
    PromApi {
        name: "Prometheus",
        url: required_env("SCALEWISE_PROMETHEUS_URL"),
    }
}

/// The environment's VictoriaMetrics.
pub fn victoriametrics() -> PromApi {
    PromApi {
        name: "VictoriaMetrics",
        url: required_env("SCALEWISE_VICTORIAMETRICS_URL"),
    }
}

/// Writes samples with their timestamps: remote write to Prometheus, text import (then a flush)
/// to VictoriaMetrics, so that they are queryable at once.
pub async fn push(api: &PromApi, series: &[Series]) {
    if api.name == "VictoriaMetrics" {
        api.import_prometheus_text(series).await;
    } else {
        api.remote_write(series).await;
    }
}

/// A counter sampled every second from `from` to `to` (inclusive, milliseconds), rising by
/// `per_second`: its value at time t (seconds since the epoch) is `per_second * t`, so that runs
/// writing the same series again write the same samples.
pub fn counter(
    name: &str,
    labels: &[(&str, &str)],
    from: TimestampMs,
    to: TimestampMs,
    per_second: f64,
) -> Series {
    sampled(name, labels, from, to, 1000, |t| {
        per_second * (t / 1000) as f64
    })
}

/// A gauge holding `value`, sampled every `step` milliseconds from `from` to `to`.
pub fn gauge(
    name: &str,
    labels: &[(&str, &str)],
    from: TimestampMs,
    to: TimestampMs,
    step: TimestampMs,
    value: f64,
) -> Series {
    sampled(name, labels, from, to, step, |_| value)
}

/// The namespace of the series [`counter`] and [`gauge`] write unless their labels name one:
/// that of the test policies of [`policy`] given `"shop"` (a policy reads only its own
/// namespace's series).
pub const NAMESPACE: &str = "shop";

fn sampled(
    name: &str,
    labels: &[(&str, &str)],
    from: TimestampMs,
    to: TimestampMs,
    step: TimestampMs,
    value: impl Fn(TimestampMs) -> f64,
) -> Series {
    let mut series = Series::new(name).label("namespace", NAMESPACE);
    for (k, v) in labels {
        series = series.label(k, v);
    }
    let mut t = from;
    while t <= to {
        series = series.sample(t, value(t));
        t += step;
    }
    series
}

/// A free port on 127.0.0.1 (free when asked; bind it soon).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

/// What a [`FakeServer`] does with each request.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Answers with this status, content type and body.
    Respond {
        status: u16,
        content_type: &'static str,
        body: String,
        /// Extra response headers, such as `Location`.
        headers: Vec<(&'static str, String)>,
    },
    /// Accepts the connection, reads the request and never answers.
    Hang,
    /// Answers 200 `application/json` with a body that never ends (no `Content-Length`): `start`,
    /// then `repeat` again and again, pausing `pause` after each write, until the client closes
    /// the connection or `for_at_most` has passed (so that a test that fails still ends).
    Endless {
        start: String,
        repeat: String,
        pause: Duration,
        for_at_most: Duration,
    },
    /// Forwards the request (method GET, same path and query, no headers) to this base URL and
    /// returns its answer.
    Proxy(String),
}

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `GET /api/v1/query?query=...`
    pub request_line: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
}

/// An HTTP/1.1 server on 127.0.0.1 that records every request and behaves as told. Stops when
/// dropped.
pub struct FakeServer {
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: JoinHandle<()>,
}

impl FakeServer {
    pub async fn start(behaviour: Behaviour) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("fake server: cannot listen on 127.0.0.1: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fake server: no local address: {e}"))
            .port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, behaviour.clone(), Arc::clone(&recorded)));
            }
        });
        FakeServer {
            url: format!("http://127.0.0.1:{port}"),
            requests,
            task,
        }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, behaviour: Behaviour, requests: Arc<Mutex<Vec<Recorded>>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let headers: BTreeMap<String, String> = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Recorded {
            request_line: request_line.clone(),
            headers,
        });
    let (status, content_type, body, extra) = match behaviour {
        Behaviour::Hang => {
            // Keep the connection open until the client gives up.
            let _ = stream.read(&mut buf).await;
            tokio::time::sleep(Duration::from_secs(60)).await;
            return;
        }
        Behaviour::Endless {
            start,
            repeat,
            pause,
            for_at_most,
        } => {
            let began = Instant::now();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{start}"
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            while began.elapsed() < for_at_most {
                if stream.write_all(repeat.as_bytes()).await.is_err() {
                    return;
                }
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
            let _ = stream.shutdown().await;
            return;
        }
        Behaviour::Respond {
            status,
            content_type,
            body,
            headers,
        } => (status, content_type.to_owned(), body, headers),
        Behaviour::Proxy(upstream) => {
            let path = request_line.split(' ').nth(1).unwrap_or("/");
            match http::request(
                hyper::Method::GET,
                &format!("{upstream}{path}"),
                &[],
                bytes::Bytes::new(),
            )
            .await
            {
                Ok(resp) => (
                    resp.status.as_u16(),
                    "application/json".to_owned(),
                    resp.text(),
                    Vec::new(),
                ),
                Err(e) => (502, "text/plain".to_owned(), e, Vec::new()),
            }
        }
    };
    let mut response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in extra {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(&body);
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A Prometheus of the test's own (the Debian binary the environment installs), on a free port
/// of 127.0.0.1 with its data in a temporary directory, so that a test may stop it. Stopped and
/// removed when dropped.
pub struct PrivatePrometheus {
    pub api: PromApi,
    child: Option<Child>,
    dir: PathBuf,
}

impl PrivatePrometheus {
    pub async fn start() -> PrivatePrometheus {
        let dir = std::env::temp_dir().join(unique_name("private-prometheus"));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            "global:\n  scrape_interval: 1s\nstorage:\n  tsdb:\n    out_of_order_time_window: 1h\n",
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg("--web.enable-remote-write-receiver")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start the prometheus binary: {e}; {HOW_TO_RUN}")
                });
            let mut server = PrivatePrometheus {
                api: PromApi {
                    name: "Prometheus",
                    url: format!("http://127.0.0.1:{port}"),
                },
                child: Some(child),
                dir: dir.clone(),
            };
            match server.wait_ready(Duration::from_secs(30)).await {
                Ok(()) => return server,
                Err(e) => {
                    last_error = e;
                    server.kill();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("the private Prometheus did not start: {last_error}");
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let start = Instant::now();
        let url = format!("{}/-/ready", self.api.url);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("prometheus exited: {status}"));
            }
            if http::get_ok(&url).await.is_ok() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(format!("not ready within {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the server (SIGKILL) and waits for it to exit; its port is then closed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivatePrometheus {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
