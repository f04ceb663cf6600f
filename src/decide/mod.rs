//! The decision engine: a pure function from (policy, persisted status, observations, current
//! replicas, now) to a [`Decision`]. No clock, no I/O, no client: the controller, the CLI and the
//! simulator all call [`decide`].
//!
//! The rules, applied in this order:
//! 1. each metric proposes a replica count (thresholds step; targets compute a ratio, with a
//!    tolerance band); a failed metric proposes the current count;
//! 2. the policy proposes the largest proposal; when every metric failed for `after` evaluations
//!    and the action is Fallback, at least `fallbackReplicas`; at least the forecast's floor
//!    (`spec.forecast`, [`forecast`]), which only ever raises it;
//! 3. stabilization windows, and no scale-in before a whole scale-in window of evidence;
//! 4. rate policies; 5. cooldowns; 6. the [minReplicas, maxReplicas] clamp.
//!
//! A current count outside the range is corrected at once; paused policies and targets scaled to
//! zero on purpose are left alone.

// Arithmetic on user data and on times never panics: checked or saturating only (CI makes these
// warnings errors).
#![warn(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

mod decision;
mod engine;
mod explain;
pub mod forecast;
mod history;
pub mod pods;
mod status;
mod tolerance;

pub use decision::{
    Decision, EngineState, Floor, FloorOutcome, MetricOutcome, Observation, Reading, TargetState,
};
pub use engine::{decide, decide_for};
pub use status::next_status;
