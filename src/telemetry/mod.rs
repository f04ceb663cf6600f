//! The operator's telemetry: logs ([`logging`]), its own Prometheus metrics ([`metrics`]), and
//! the `/metrics`, `/healthz`, `/readyz` server ([`http`]) that renders them and the health the
//! controller reports.

pub mod http;
pub mod logging;
pub mod metrics;

pub use http::{Probes, serve_on};
pub use logging::{LogFormat, init_tracing};
pub use metrics::Metrics;
