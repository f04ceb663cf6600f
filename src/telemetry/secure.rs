//! `/metrics` for authenticated, authorized clients only, over TLS: every policy's metric values
//! are in it, and whoever may create a pod should not read them all. As kube-rbac-proxy does, a
//! request's bearer token is reviewed by the API server (TokenReview), and the user it names must
//! be allowed `get` on the non-resource URL `/metrics` (SubjectAccessReview); answers are cached
//! for a minute (denials for ten seconds). `/healthz` and `/readyz` stay open.
//!
//! The serving certificate comes from PEM files (a Secret mounted from cert-manager, say), read
//! again when they change, or is generated, self-signed, at start.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use futures::future::BoxFuture;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tracing::{debug, warn};

use super::http::Probes;
use super::metrics::Metrics;

/// What the API server said of a bearer token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated and allowed to get /metrics.
    Allowed,
    /// Not authenticated: the reason.
    Unauthenticated(String),
    /// Authenticated as this user, who may not get /metrics.
    Forbidden(String),
}

/// Reviews bearer tokens (TokenReview, then SubjectAccessReview for `get /metrics`).
pub trait Authorize: Send + Sync + 'static {
    /// The verdict on `token`; `Err` when the API server could not be asked (answered 503, not
    /// cached).
    fn review<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Verdict, String>>;
}

/// How long an answer is trusted.
const ALLOWED_FOR: Duration = Duration::from_secs(60);
const DENIED_FOR: Duration = Duration::from_secs(10);
/// Cached verdicts at most (the cache is emptied when full).
const CACHE_ENTRIES: usize = 4096;
/// The longest bearer token reviewed.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Verdicts by a keyed hash of the token (tokens themselves are not kept).
struct Cache {
    hasher: RandomState,
    entries: Mutex<HashMap<u64, (Instant, Verdict)>>,
}

impl Cache {
    fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, token: &str) -> Option<Verdict> {
        let key = self.hasher.hash_one(token);
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(&key)
            .filter(|(until, _)| Instant::now() < *until)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, token: &str, verdict: &Verdict) {
        let ttl = match verdict {
            Verdict::Allowed => ALLOWED_FOR,
            _ => DENIED_FOR,
        };
        let key = self.hasher.hash_one(token);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHE_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (Instant::now() + ttl, verdict.clone()));
    }
}

struct Secure<P> {
    metrics: Arc<Metrics>,
    probes: Arc<P>,
    authorize: Arc<dyn Authorize>,
    cache: Cache,
}

/// The router of the TLS port: `/metrics` behind the review, the probes open.
fn router<P: Probes>(state: Arc<Secure<P>>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler::<P>))
        .route("/healthz", get(healthz::<P>))
        .route("/readyz", get(readyz::<P>))
        .with_state(state)
}

/// The bearer token of a request, if it carries one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn metrics_handler<P: Probes>(
    State(s): State<Arc<Secure<P>>>,
    headers: HeaderMap,
) -> axum::response::Response {
    let Some(token) = bearer(&headers) else {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "unauthorized: /metrics needs a bearer token of a user allowed to get /metrics\n",
        )
            .into_response();
    };
    if token.len() > MAX_TOKEN_BYTES {
        return (
            StatusCode::UNAUTHORIZED,
            "unauthorized: the token is too long\n",
        )
            .into_response();
    }
    let verdict = match s.cache.get(token) {
        Some(v) => v,
        None => match s.authorize.review(token).await {
            Ok(v) => {
                s.cache.put(token, &v);
                v
            }
            Err(e) => {
                warn!("cannot review a /metrics client's token: {e}");
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the API server could not review the token; try again\n",
                )
                    .into_response();
            }
        },
    };
    match verdict {
        Verdict::Allowed => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            s.metrics.encode(),
        )
            .into_response(),
        Verdict::Unauthenticated(why) => {
            debug!("a /metrics client was not authenticated: {why}");
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "unauthorized: the token was not accepted by the API server\n",
            )
                .into_response()
        }
        Verdict::Forbidden(user) => (
            StatusCode::FORBIDDEN,
            format!(
                "forbidden: {user} may not get /metrics (bind a ClusterRole allowing get on the non-resource URL /metrics)\n"
            ),
        )
            .into_response(),
    }
}

async fn healthz<P: Probes>(State(s): State<Arc<Secure<P>>>) -> impl IntoResponse {
    super::http::probe(s.probes.liveness(), "unhealthy")
}

async fn readyz<P: Probes>(State(s): State<Arc<Secure<P>>>) -> impl IntoResponse {
    super::http::probe(s.probes.readiness(), "not ready")
}

/// Where the serving certificate comes from.
#[derive(Clone, Debug)]
pub enum Certificate {
    /// PEM files (certificate chain, private key), read again when either changes.
    Files { cert: PathBuf, key: PathBuf },
    /// Generated at start, self-signed, for these DNS names.
    SelfSigned(Vec<String>),
}

/// Why the TLS port cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the serving certificate {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("cannot generate a self-signed serving certificate: {0}")]
    Generate(String),
    #[error("the serving certificate is not usable: {0}")]
    Config(String),
}

/// The certified key of PEM files.
fn load(cert: &PathBuf, key: &PathBuf) -> Result<CertifiedKey, TlsError> {
    let read = |path: &PathBuf, message: String| TlsError::Read {
        path: path.clone(),
        message,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| read(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| read(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(read(cert, "no CERTIFICATE in it".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| read(key, e.to_string()))?;
    certified(chain, private)
}

fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, TlsError> {
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider).map_err(|e| TlsError::Config(e.to_string()))
}

fn self_signed(names: Vec<String>) -> Result<CertifiedKey, TlsError> {
    let generated =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    certified(vec![generated.cert.der().clone()], key)
}

/// Serves the certificate, reloading PEM files when they change (checked at most every 10 s).
#[derive(Debug)]
struct Resolver {
    files: Option<(PathBuf, PathBuf)>,
    current: Mutex<(Arc<CertifiedKey>, Instant, Option<SystemTime>)>,
}

fn modified(files: &(PathBuf, PathBuf)) -> Option<SystemTime> {
    let a = std::fs::metadata(&files.0)
        .and_then(|m| m.modified())
        .ok()?;
    let b = std::fs::metadata(&files.1)
        .and_then(|m| m.modified())
        .ok()?;
    Some(a.max(b))
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(files) = &self.files
            && current.1.elapsed() >= Duration::from_secs(10)
        {
            current.1 = Instant::now();
            let changed = modified(files);
            if changed.is_some() && changed != current.2 {
                match load(&files.0, &files.1) {
                    Ok(key) => *current = (Arc::new(key), Instant::now(), changed),
                    // The old certificate serves until the new one is whole.
                    Err(e) => warn!("keeping the serving certificate: {e}"),
                }
            }
        }
        Some(current.0.clone())
    }
}

/// The TLS configuration of the port.
pub fn tls_config(certificate: &Certificate) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (files, key) = match certificate {
        Certificate::Files { cert, key } => {
            let files = (cert.clone(), key.clone());
            (Some(files), load(cert, key)?)
        }
        Certificate::SelfSigned(names) => (None, self_signed(names.clone())?),
    };
    let stamp = files.as_ref().and_then(modified);
    let resolver = Resolver {
        files,
        current: Mutex::new((Arc::new(key), Instant::now(), stamp)),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Config(e.to_string()))?
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 256;

/// Serves `/metrics` (reviewed), `/healthz` and `/readyz` over TLS on `listener` until
/// `shutdown` resolves.
pub async fn serve_tls<P: Probes>(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    metrics: Arc<Metrics>,
    probes: Arc<P>,
    authorize: Arc<dyn Authorize>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let state = Arc::new(Secure {
        metrics,
        probes,
        authorize,
        cache: Cache::new(),
    });
    let app = router(state);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        connections.spawn(async move {
            let _permit = permit;
            let Ok(Ok(tls)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
            else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HANDSHAKE_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
        });
        // Reap the connections that ended.
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_is_read_from_the_authorization_header_only() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "bearer  abc ".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn verdicts_are_cached_by_token_and_forgotten_when_full() {
        let c = Cache::new();
        c.put("a", &Verdict::Allowed);
        c.put("b", &Verdict::Forbidden("u".into()));
        assert_eq!(c.get("a"), Some(Verdict::Allowed));
        assert_eq!(c.get("b"), Some(Verdict::Forbidden("u".into())));
        assert_eq!(c.get("c"), None);
        for i in 0..CACHE_ENTRIES {
            c.put(&i.to_string(), &Verdict::Allowed);
        }
        assert!(c.entries.lock().unwrap().len() <= CACHE_ENTRIES);
    }

    #[test]
    fn a_self_signed_certificate_is_made_and_files_that_are_not_pem_are_refused() {
        assert!(tls_config(&Certificate::SelfSigned(vec!["localhost".into()])).is_ok());
        let dir = std::env::temp_dir().join(format!("sw-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let e = tls_config(&Certificate::Files {
            cert: cert.clone(),
            key,
        })
        .unwrap_err();
        assert!(e.to_string().contains("tls.crt"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
