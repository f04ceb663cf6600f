//! The `ScalingPolicy` API (`scalewise.dev/v1alpha1`): spec and status types, durations,
//! conditions and validation.

pub mod address;
mod checker;
pub mod conditions;
pub mod crd;
pub mod duration;
pub mod limits;
pub mod policy;
mod promql_check;
pub mod reason;
pub mod spec;
pub mod status;
pub mod validate;

pub use duration::DurationString;
pub use policy::{
    DirectionRules, FailureRules, ForecastRule, MetricRule, PodPolicy, Policy, RateLimit, Rule,
    Source, SourceKind, TargetKind,
};
pub use promql_check::{check_matcher_list, is_metric_name};
pub use spec::*;
pub use status::*;
pub use validate::{FieldError, ValidationErrors, validate};
