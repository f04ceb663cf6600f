//! scalewise: a Kubernetes autoscaling operator that is safe when metrics fail and explains every
//! decision.
//!
//! - [`api`]: the `ScalingPolicy` custom resource, its status and validation.
//! - [`decide`]: the pure decision engine shared by the controller, the CLI and the simulator.
//! - [`manifest`]: reading manifests as users write them, every problem with its field path.
//! - [`metrics`]: each metric as PromQL, read from a Prometheus-compatible server.
//! - [`simulate`]: the simulator: load traces, a service model, Prometheus backtests and the
//!   HorizontalPodAutoscaler baseline, all through the decision engine.
//! - [`commands`]: the offline subcommands (`crd`, `check`, `decide`).
//! - [`cli`]: the command-line definitions.
//! - [`text`]: numbers, durations and error chains as people read them.

pub mod api;
pub mod cli;
pub mod commands;
pub mod controller;
pub mod decide;
pub mod fair;
pub mod manifest;
pub mod metrics;
pub mod pods;
pub mod ring;
pub mod simulate;
pub mod telemetry;
pub mod text;
