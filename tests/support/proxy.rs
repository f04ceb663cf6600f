//! A fault-injecting proxy in front of the API server, for the operator under test.
//!
//! It serves plain HTTP on 127.0.0.1 and forwards every request to the cluster of the test's
//! kubeconfig with the test's own credentials (as `kubectl proxy` does), so the same faults work
//! against the local environment and a real cluster. The operator is given a kubeconfig that
//! points at the proxy ([`Proxy::kubeconfig`]).
//!
//! Faults are rules matched in order on method, path and content type:
//! - [`Fault::Refuse`]: answer with an API error (`403 Forbidden`, `500`, `410 Gone`...) and never
//!   forward the request;
//! - [`Fault::Hold`]: keep the request until the test releases it (forwarded then) or drops it
//!   (never forwarded, its connection broken), so a test can act while the operator waits, with
//!   no sleeps;
//! - [`Fault::Cut`]: never forward the request and break its connection (a server gone away);
//!   [`Proxy::cut`] breaks every response in flight, watches included.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use kube::Client;
use tokio::sync::{Notify, watch};

/// What a rule does to a matching request.
#[derive(Clone)]
pub enum Fault {
    /// Answer with this HTTP status and a Kubernetes `Status` body.
    Refuse(u16),
    /// Hold the request at this gate.
    Hold(Gate),
    /// Never forward the request, and break its connection (as a server that dies does).
    Cut,
}

/// Where held requests wait.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<GateInner>,
}

struct GateInner {
    held: Mutex<usize>,
    arrived: Notify,
    /// None while holding; Some(true) forward, Some(false) drop.
    open: watch::Sender<Option<bool>>,
}

impl Gate {
    fn new() -> Self {
        Self {
            inner: Arc::new(GateInner {
                held: Mutex::new(0),
                arrived: Notify::new(),
                open: watch::channel(None).0,
            }),
        }
    }

    /// How many requests have been held so far.
    pub fn held(&self) -> usize {
        *self.inner.held.lock().unwrap()
    }

    /// Waits until at least `n` requests have been held.
    pub async fn wait_held(&self, n: usize, timeout: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.inner.arrived.notified();
            if self.held() >= n {
                return;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "the proxy held {} requests within {timeout:?}, expected {n}",
                    self.held()
                );
            }
        }
    }

    /// Lets every held request (and every later one) through.
    pub fn release(&self) {
        self.inner.open.send_replace(Some(true));
    }

    /// Drops every held request (and every later one) without forwarding it: the client sees its
    /// connection end.
    pub fn drop_all(&self) {
        self.inner.open.send_replace(Some(false));
    }

    /// Holds one request; whether to forward it.
    async fn pass(&self) -> bool {
        let mut open = self.inner.open.subscribe();
        *self.inner.held.lock().unwrap() += 1;
        self.inner.arrived.notify_waiters();
        let decided = open.wait_for(Option::is_some).await;
        decided.map(|d| d.unwrap_or(false)).unwrap_or(false)
    }
}

/// Which requests a rule applies to.
#[derive(Clone)]
pub struct Rule {
    /// The HTTP method; empty: any.
    pub method: &'static str,
    /// The path ends with this.
    pub path_suffix: String,
    /// The Content-Type contains this (for example `apply-patch` for server-side apply,
    /// `merge-patch` for a merge patch); empty: any.
    pub content_type: &'static str,
    /// The query contains this (for example `watch=`); empty: any.
    pub query: &'static str,
    /// The body contains this; empty: any.
    pub body: &'static str,
    pub fault: Fault,
    /// How many requests this rule has matched.
    pub hits: Arc<AtomicUsize>,
}

impl Rule {
    fn matches<B>(&self, request: &Request<B>, body: &[u8]) -> bool {
        let content_type = request
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        (self.method.is_empty() || request.method().as_str() == self.method)
            && request.uri().path().ends_with(&self.path_suffix)
            && content_type.contains(self.content_type)
            && request
                .uri()
                .query()
                .unwrap_or_default()
                .contains(self.query)
            && (self.body.is_empty()
                || body
                    .windows(self.body.len())
                    .any(|w| w == self.body.as_bytes()))
    }
}

/// The proxy; stopped when dropped.
pub struct Proxy {
    pub port: u16,
    rules: Arc<Mutex<Vec<Rule>>>,
    server: tokio::task::JoinHandle<()>,
    kubeconfig: PathBuf,
    /// Bumped to cut every response in flight (watches included).
    epoch: watch::Sender<u64>,
}

impl Proxy {
    /// Starts a proxy forwarding to the cluster `client` talks to, as `client`'s user.
    pub async fn start(client: Client, name: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let epoch = watch::channel(0u64).0;
        let app = {
            let (rules, epoch) = (rules.clone(), epoch.clone());
            axum::Router::new().fallback(move |request: Request<Body>| {
                let (rules, client) = (rules.clone(), client.clone());
                let epoch = epoch.subscribe();
                async move { forward(&rules, &client, request, epoch).await }
            })
        };
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let kubeconfig = std::env::temp_dir().join(format!("scalewise-proxy-{name}.kubeconfig"));
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "proxy", "cluster": {"server": format!("http://127.0.0.1:{port}")}}],
            "users": [{"name": "proxy", "user": {}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
            "current-context": "proxy",
        });
        std::fs::write(&kubeconfig, config.to_string()).expect("write the proxy's kubeconfig");
        Proxy {
            port,
            rules,
            server,
            kubeconfig,
            epoch,
        }
    }

    /// A kubeconfig for the operator, pointing at the proxy.
    pub fn kubeconfig(&self) -> &std::path::Path {
        &self.kubeconfig
    }

    /// Adds a rule; rules match in the order they were added.
    pub fn add(&self, rule: Rule) {
        self.rules.lock().unwrap().push(rule);
    }

    /// Holds requests matching `method`, `path_suffix`, `content_type` and `body`; returns
    /// their gate.
    pub fn hold(
        &self,
        method: &'static str,
        path_suffix: &str,
        content_type: &'static str,
        body: &'static str,
    ) -> Gate {
        let gate = Gate::new();
        self.add(Rule {
            method,
            path_suffix: path_suffix.to_owned(),
            content_type,
            query: "",
            body,
            fault: Fault::Hold(gate.clone()),
            hits: Arc::default(),
        });
        gate
    }

    /// Refuses requests matching `method`, `path_suffix` and `content_type` with `code`.
    pub fn refuse(
        &self,
        method: &'static str,
        path_suffix: &str,
        content_type: &'static str,
        code: u16,
    ) -> Arc<AtomicUsize> {
        self.refuse_where(method, path_suffix, content_type, "", code)
    }

    /// Refuses requests matching `method`, `path_suffix`, `content_type` and `query` with `code`;
    /// returns how many were refused so far.
    pub fn refuse_where(
        &self,
        method: &'static str,
        path_suffix: &str,
        content_type: &'static str,
        query: &'static str,
        code: u16,
    ) -> Arc<AtomicUsize> {
        let hits = Arc::<AtomicUsize>::default();
        self.add(Rule {
            method,
            path_suffix: path_suffix.to_owned(),
            content_type,
            query,
            body: "",
            fault: Fault::Refuse(code),
            hits: hits.clone(),
        });
        hits
    }

    /// Breaks the connection of every request from now on, without forwarding it (the server is
    /// gone); returns how many were broken so far.
    pub fn go_away(&self) -> Arc<AtomicUsize> {
        let hits = Arc::<AtomicUsize>::default();
        self.add(Rule {
            method: "",
            path_suffix: String::new(),
            content_type: "",
            query: "",
            body: "",
            fault: Fault::Cut,
            hits: hits.clone(),
        });
        hits
    }

    /// Cuts every response in flight, watches included, as an API server that goes away does:
    /// the client sees its connections fail mid-body.
    pub fn cut(&self) {
        self.epoch.send_modify(|e| *e = e.wrapping_add(1));
    }

    /// Removes every rule (held requests stay held until their gate says otherwise).
    pub fn heal(&self) {
        self.rules.lock().unwrap().clear();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.server.abort();
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

async fn forward(
    rules: &Mutex<Vec<Rule>>,
    client: &Client,
    request: Request<Body>,
    mut epoch: watch::Receiver<u64>,
) -> Response<Body> {
    epoch.mark_unchanged();
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(b) => b,
        Err(_) => return refusal(400),
    };
    let probe = Request::from_parts(parts, ());
    let fault = rules
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.matches(&probe, &bytes))
        .map(|r| {
            r.hits.fetch_add(1, Ordering::SeqCst);
            r.fault.clone()
        });
    let (parts, ()) = probe.into_parts();
    match fault {
        Some(Fault::Refuse(code)) => return refusal(code),
        // Dropped: never forwarded.
        Some(Fault::Hold(gate)) if !gate.pass().await => return broken(),
        Some(Fault::Cut) => return broken(),
        _ => {}
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let mut upstream = http::Request::builder().method(parts.method).uri(path);
    for (name, value) in &parts.headers {
        if name != "host" && name != "authorization" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    let Ok(upstream) = upstream.body(kube::client::Body::from(bytes.to_vec())) else {
        return refusal(400);
    };
    match client.send(upstream).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            // The body ends in an error once the proxy is cut.
            let data = futures::TryStreamExt::map_err(
                http_body_util::BodyExt::into_data_stream(body),
                |e| std::io::Error::other(e.to_string()),
            );
            let data = until_cut(Box::pin(data), epoch);
            Response::from_parts(parts, Body::from_stream(data))
        }
        Err(_) => refusal(502),
    }
}

/// A response whose connection breaks before any of its body: the client cannot tell whether the
/// request took effect, as when the server dies.
fn broken() -> Response<Body> {
    let body = futures::stream::once(async {
        Err::<bytes::Bytes, _>(std::io::Error::other("connection cut by the test's proxy"))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(body))
        .unwrap_or_default()
}

/// A Kubernetes `Status` error with `code`.
fn refusal(code: u16) -> Response<Body> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("refused by the test's fault-injecting proxy ({code})"),
        "reason": status.canonical_reason().unwrap_or("Refused").replace(' ', ""),
        "code": code,
    });
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

/// `body`, failing as soon as `epoch` changes (the proxy was cut).
fn until_cut<S>(
    body: S,
    epoch: watch::Receiver<u64>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static
where
    S: futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + Unpin + 'static,
{
    use futures::StreamExt;
    futures::stream::unfold(
        (body, epoch, false),
        |(mut body, mut epoch, cut)| async move {
            if cut {
                return None;
            }
            tokio::select! {
                item = body.next() => item.map(|i| (i, (body, epoch, false))),
                _ = epoch.changed() => Some((
                    Err(std::io::Error::other("cut by the test's proxy")),
                    (body, epoch, true),
                )),
            }
        },
    )
}
