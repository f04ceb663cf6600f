//! `scalewise run`: the controller process.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::prometheus::source_config;
use crate::cli::RunArgs;
use crate::controller::{self, Settings};
use crate::metrics::{ConfigError, PrometheusSource};
use crate::telemetry::secure::Certificate;
use crate::telemetry::{self, Metrics};

/// The names of a self-signed serving certificate: this host's (the pod's) and localhost.
fn self_signed_names() -> Vec<String> {
    let mut names = vec!["localhost".to_owned()];
    if let Ok(host) = std::env::var("HOSTNAME")
        && !host.is_empty()
        && host.len() <= 253
    {
        names.push(host);
    }
    names
}

/// Why `scalewise run` could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunCommandError {
    #[error("no Kubernetes cluster: {0} (set KUBECONFIG, or run inside a cluster)")]
    Kube(#[source] kube::Error),
    #[error(transparent)]
    Controller(#[from] controller::RunError),
    /// The metrics settings are unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Runtime(std::io::Error),
}

/// This replica's name: the pod's name (POD_NAME, from the downward API) or the host name and
/// process id.
pub fn identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "scalewise".to_owned());
    format!("{host}-{}", std::process::id())
}

/// `scalewise run`: logs, the Prometheus reader and a runtime, then the controller until SIGTERM
/// or SIGINT.
pub fn start(args: &RunArgs) -> Result<(), RunCommandError> {
    telemetry::init_tracing(args.log_format);
    let config = source_config(&args.prometheus)?;
    for entry in config.unusable_entries() {
        warn!(
            prefix = entry.url.as_str(),
            "an allowed Prometheus prefix names no namespace: no policy may use it (write --allowed-prometheus-url NAMESPACE=PREFIX, or list namespaces in the allow-list file)"
        );
    }
    for grant in &config.tenancy.grants {
        info!(grant = %grant, "cross-namespace grant in effect");
    }
    for namespace in &config.tenancy.unscoped {
        info!(
            namespace,
            "queries of this namespace's policies run as written (--allow-cross-namespace-queries)"
        );
    }
    let metrics = Arc::new(Metrics::new());
    let mut source = PrometheusSource::new(config)?
        .with_query_limit(usize::from(args.max_concurrent_queries))
        .with_telemetry(metrics.clone());
    if args.coalesce_queries {
        source = source.with_coalescing();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(RunCommandError::Runtime)?;
    let result = runtime.block_on(run(args, source, metrics));
    // Tasks still running (an abandoned reconcile, a blocking file read) end with the process.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Runs the controller until SIGTERM or SIGINT.
pub async fn run(
    args: &RunArgs,
    source: PrometheusSource,
    metrics: Arc<Metrics>,
) -> Result<(), RunCommandError> {
    let client = kube::Client::try_default()
        .await
        .map_err(RunCommandError::Kube)?;
    let settings = Settings {
        namespaces: args.namespaces.clone(),
        metrics_bind: args.metrics_bind,
        secure_metrics_bind: args.secure_metrics_bind,
        metrics_certificate: match (&args.metrics_tls_cert_file, &args.metrics_tls_key_file) {
            (Some(cert), Some(key)) => Certificate::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => Certificate::SelfSigned(self_signed_names()),
        },
        leader_election: args.leader_election && !args.sharding,
        sharding: args.sharding,
        lease_name: args.lease_name.clone(),
        lease_namespace: args.lease_namespace.clone(),
        lease_duration: args.lease_duration,
        api_timeout: args.api_timeout,
        max_concurrent_reconciles: usize::from(args.max_concurrent_reconciles),
        namespace_evaluations_per_minute: args.namespace_evaluations_per_minute,
        api_writes_per_second: args.api_writes_per_second,
        stall_timeout: args.stall_timeout,
        identity: identity(),
        shutdown_timeout: args.shutdown_timeout,
        list_failure_timeout: args.list_failure_timeout,
        min_interval: args.min_interval,
        status_heartbeat: args.status_heartbeat,
    };
    info!(
        version = env!("CARGO_PKG_VERSION"),
        identity = %settings.identity,
        namespaces = ?settings.namespaces,
        leader_election = settings.leader_election,
        sharding = settings.sharding,
        "starting scalewise"
    );
    controller::run(
        client,
        settings,
        Arc::new(source),
        metrics,
        shutdown_signal(),
    )
    .await?;
    info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM (what Kubernetes sends) or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
