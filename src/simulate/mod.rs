//! The simulator: what a policy would do, before it touches production.
//!
//! Two ways to feed it, both through the same decision engine the controller runs
//! ([`crate::decide::decide`], called by [`ScalewiseAutoscaler`]; nothing here copies it):
//!
//! - **Trace mode** ([`run_trace`]): a load trace ([`trace`], or a synthetic one from
//!   [`generate`]) drives a service model ([`model`]) that turns load and ready replicas into the
//!   metrics the policy reads ([`bind`]). Decisions feed back: a new replica serves after the
//!   model's start-up delay. The engine runs every `interval` of simulated time.
//! - **Backtest mode** ([`backtest`]): each metric's history from Prometheus range queries is
//!   replayed through the engine. History cannot show feedback from the policy's own decisions.
//!
//! [`oracle`] is the limit of trace mode: the fewest replicas, second by second, that keep the
//! SLO with perfect knowledge of the trace; every summary is measured against it. [`curve`] is
//! the HPA's trade-off curve over a sweep of CPU targets.
//!
//! [`hpa`] is the baseline: the Kubernetes HorizontalPodAutoscaler v2 algorithm with its defaults,
//! implemented on its own (a baseline must not share the code it is compared with). [`report`]
//! sums a run up, writes its timeline as CSV, and [`plot`] draws both runs on one figure.

pub mod autoscaler;
pub mod backtest;
pub mod bind;
pub mod curve;
mod error;
pub mod generate;
pub mod hpa;
pub mod model;
pub mod oracle;
pub mod plot;
mod png_text;
pub mod report;
pub mod run;
pub mod trace;

pub use autoscaler::{Autoscaler, Evaluation, Outcome, ScalewiseAutoscaler};
pub use bind::{MetricBinding, ModelMetric};
pub use error::SimulateError;
pub use model::{ModelParams, Service};
pub use report::{Row, Run, Slo, Summary};
pub use run::{TraceSetup, run_trace};
pub use trace::Trace;
