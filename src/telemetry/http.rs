//! `/metrics`, `/healthz` and `/readyz` over HTTP: the operator's metrics, and the health its
//! controller reports through [`Probes`].

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::metrics::Metrics;

/// What `/healthz` and `/readyz` ask: each answer is fine, or why not.
pub trait Probes: Send + Sync + 'static {
    /// Alive (`/healthz`): `Err` says why not.
    fn liveness(&self) -> Result<(), String>;
    /// Ready (`/readyz`): `Err` says why not.
    fn readiness(&self) -> Result<(), String>;
}

struct ServerState<P> {
    metrics: Arc<Metrics>,
    probes: Arc<P>,
}

impl<P> Clone for ServerState<P> {
    fn clone(&self) -> Self {
        Self {
            metrics: self.metrics.clone(),
            probes: self.probes.clone(),
        }
    }
}

/// Serves `/healthz` and `/readyz` on a bound listener until `shutdown` resolves, and `/metrics`
/// only when the listener is on a loopback address (local debugging): elsewhere every policy's
/// metric values are for reviewed clients, on the TLS port ([`super::secure`]).
pub async fn serve_on<P: Probes>(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    probes: Arc<P>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let loopback = listener.local_addr()?.ip().is_loopback();
    let app = Router::new()
        .route(
            "/metrics",
            if loopback {
                get(metrics_handler::<P>)
            } else {
                get(metrics_elsewhere)
            },
        )
        .route("/healthz", get(healthz::<P>))
        .route("/readyz", get(readyz::<P>))
        .with_state(ServerState { metrics, probes });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics_handler<P: Probes>(State(s): State<ServerState<P>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

async fn metrics_elsewhere() -> impl IntoResponse {
    (
        StatusCode::FORBIDDEN,
        "/metrics is served over TLS on --secure-metrics-bind, to clients whose token may get /metrics; this plain port serves it only on a loopback address\n",
    )
}

async fn healthz<P: Probes>(State(s): State<ServerState<P>>) -> impl IntoResponse {
    probe(s.probes.liveness(), "unhealthy")
}

async fn readyz<P: Probes>(State(s): State<ServerState<P>>) -> impl IntoResponse {
    probe(s.probes.readiness(), "not ready")
}

/// A probe's answer: 200 `ok`, or 503 with why not.
pub(super) fn probe(result: Result<(), String>, what: &str) -> (StatusCode, String) {
    match result {
        Ok(()) => (StatusCode::OK, "ok\n".to_owned()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{what}: {why}\n")),
    }
}
