//! Every reason scalewise writes: on conditions ([`condition`]) and on events ([`event`]), as one
//! list of constants (as KEDA's `eventreason`), so that a condition and the event that reports it
//! always use the same word.
//!
//! Reasons are part of the API: alerts and dashboards match on them. Change none without a note
//! in the README's Upgrade section.

/// Reasons of the conditions in `status.conditions`.
pub mod condition {
    /// Ready: the policy was evaluated.
    pub const EVALUATED: &str = "Evaluated";
    /// Ready, AbleToScale: the spec is invalid; the target is not touched.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// Ready, AbleToScale: the object cannot be decoded (a value its type cannot hold).
    pub const INVALID_OBJECT: &str = "InvalidObject";
    /// Ready, AbleToScale: the target does not exist.
    pub const TARGET_NOT_FOUND: &str = "TargetNotFound";
    /// The target's kind has no `/scale` subresource, is cluster-scoped, or is not served.
    pub const TARGET_NOT_SCALABLE: &str = "TargetNotScalable";
    /// AbleToScale, ScalingActive: `spec.paused` is true.
    pub const PAUSED: &str = "Paused";
    /// AbleToScale, ScalingActive: the target has 0 replicas.
    pub const SCALED_TO_ZERO: &str = "ScaledToZero";
    /// AbleToScale: decisions are recorded, not applied.
    pub const DRY_RUN: &str = "DryRun";
    /// AbleToScale: a dry-run policy beside another owner of its target.
    pub const DRY_RUN_BESIDE_OTHER_OWNER: &str = "DryRunBesideOtherOwner";
    /// AbleToScale: a cooldown holds the next scale back.
    pub const COOLDOWN: &str = "Cooldown";
    /// AbleToScale: nothing holds the next scale back.
    pub const READY_FOR_NEW_SCALE: &str = "ReadyForNewScale";
    /// AbleToScale: another ScalingPolicy or an HPA scales the same target.
    pub const AMBIGUOUS_TARGET: &str = "AmbiguousTarget";
    /// ScalingActive: every metric failed.
    pub const METRICS_UNAVAILABLE: &str = "MetricsUnavailable";
    /// ScalingActive: at least one metric drives the decision.
    pub const VALID_METRIC_FOUND: &str = "ValidMetricFound";
    /// ScalingLimited: held at minReplicas.
    pub const TOO_FEW_REPLICAS: &str = "TooFewReplicas";
    /// ScalingLimited: held at maxReplicas.
    pub const TOO_MANY_REPLICAS: &str = "TooManyReplicas";
    /// ScalingLimited: held back by a rate policy.
    pub const SCALE_RATE_LIMITED: &str = "ScaleRateLimited";
    /// ScalingLimited (False): nothing held the decision back.
    pub const DESIRED_WITHIN_RANGE: &str = "DesiredWithinRange";
    /// MetricsAvailable: every metric was read.
    pub const ALL_METRICS_READ: &str = "AllMetricsRead";
    /// MetricsAvailable (False): at least one metric failed.
    pub const METRICS_FAILED: &str = "MetricsFailed";
    /// ExternalScale: someone else changed the target's replicas.
    pub const EXTERNAL_SCALE: &str = "ExternalScale";
    /// StatusTrusted (False): the status held impossible values and was replaced.
    pub const STATUS_RESET: &str = "StatusReset";
    /// StatusTrusted: the status holds what scalewise recorded.
    pub const STATUS_VALID: &str = "StatusValid";
    /// ClockSkew: a recorded time lies ahead of this replica's clock.
    pub const FUTURE_TIMESTAMPS: &str = "FutureTimestamps";
    /// ClockSkew (False): no recorded time lies ahead.
    pub const CLOCKS_AGREE: &str = "ClocksAgree";
    /// Throttled: the namespace is over `--namespace-evaluations-per-minute`.
    pub const NAMESPACE_BUDGET: &str = "NamespaceBudget";
    /// Throttled (False): the namespace's evaluations are within the budget.
    pub const WITHIN_BUDGET: &str = "WithinBudget";
    /// IntervalLimited: the spec's interval is below `--min-interval`.
    pub const BELOW_MIN_INTERVAL: &str = "BelowMinInterval";
    /// IntervalLimited (False): the spec's interval is used as written.
    pub const INTERVAL_AS_WRITTEN: &str = "IntervalAsWritten";
    /// ExternalScale (False): the target has the replicas scalewise left it at.
    pub const NO_EXTERNAL_SCALE: &str = "NoExternalScale";
}

/// Reasons of the events scalewise publishes (besides the error categories of failed
/// reconciles, which are their own fixed list).
pub mod event {
    pub use super::condition::{
        AMBIGUOUS_TARGET, EXTERNAL_SCALE, INVALID_OBJECT, INVALID_SPEC, METRICS_FAILED,
        STATUS_RESET, TARGET_NOT_FOUND,
    };
    /// A scale out was applied.
    pub const SCALED_OUT: &str = "ScaledOut";
    /// A scale in was applied.
    pub const SCALED_IN: &str = "ScaledIn";
    /// A change was decided and not applied (dry run, or beside another owner).
    pub const DRY_RUN: &str = "DryRun";
    /// A scale recorded before it was made (`status.pendingScale`) was found unconfirmed and
    /// judged from the target: made, not made, or changed since by someone else.
    pub const INTENT_RECOVERED: &str = "IntentRecovered";
    /// The forecast (`spec.forecast`) began to set a floor (or, in shadow mode, to record one).
    pub const FORECAST_READY: &str = "ForecastReady";
    /// The forecast's error rose above `maxError`: no say until it falls again.
    pub const FORECAST_INACCURATE: &str = "ForecastInaccurate";
    /// The forecast's history could not be read: no say until it can.
    pub const FORECAST_FAILED: &str = "ForecastFailed";
}

/// The `action` of the events scalewise publishes: the step of the reconcile it concerns.
pub mod action {
    pub const VALIDATE: &str = "Validate";
    pub const READ_TARGET: &str = "ReadTarget";
    pub const OBSERVE: &str = "Observe";
    pub const SCALE: &str = "Scale";
    pub const RECONCILE: &str = "Reconcile";
}
