//! Why metrics cannot be read at all: a policy's server is not allowed or missing
//! ([`MetricsError`]), or the operator's own settings are unusable ([`ConfigError`]).

use std::path::PathBuf;

/// Why a policy's metrics cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// `spec.prometheus.address` is not on the operator's allow-list: the policy is invalid.
    #[error(
        "spec.prometheus.address: {address} is not allowed by the operator (allowed prefixes: {allowed})"
    )]
    AddressNotAllowed { address: String, allowed: String },
    /// `spec.prometheus.address` is malformed.
    #[error("spec.prometheus.address: {0}")]
    InvalidAddress(String),
    /// The policy names no server and the operator configured no default.
    #[error(
        "no Prometheus server: set --prometheus-url (or SCALEWISE_PROMETHEUS_URL), or spec.prometheus.address"
    )]
    NoServer,
}

impl MetricsError {
    /// The problem as a field error of the policy, when the policy is at fault.
    pub fn field_error(&self) -> Option<crate::api::FieldError> {
        let message = match self {
            Self::AddressNotAllowed { address, allowed } => {
                format!("{address} is not allowed by the operator (allowed prefixes: {allowed})")
            }
            Self::InvalidAddress(message) => message.clone(),
            Self::NoServer => return None,
        };
        Some(crate::api::FieldError {
            path: "spec.prometheus.address".into(),
            message,
        })
    }
}

/// A problem in the operator's metrics settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{what}: {url:?} is not usable: {message}")]
    Url {
        what: String,
        url: String,
        message: String,
    },
    #[error("cannot read {what} {path}: {source}")]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    AllowListFile { path: PathBuf, message: String },
    #[error("header {header:?}: {message}")]
    Header { header: String, message: String },
    #[error("{0}")]
    Credentials(String),
    #[error("CA bundle {path}: {message}")]
    CaBundle { path: PathBuf, message: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("{0}")]
    Tenancy(String),
}
