//! The operator's telemetry: logs ([`logging`]), its own Prometheus metrics ([`metrics`]), and
//! the `/metrics`, `/healthz`, `/readyz` server ([`http`]) that renders them and the health the
//! controller reports, and `/metrics` over TLS for reviewed clients ([`secure`]).

pub mod http;
pub mod logging;
pub mod metrics;
pub mod secure;

pub use http::{Probes, serve_on};
pub use logging::{LogFormat, init_tracing};
pub use metrics::Metrics;
