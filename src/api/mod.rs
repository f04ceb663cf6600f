//! The `ScalingPolicy` API (`scalewise.dev/v1alpha1`): spec and status types, durations,
//! conditions and validation.

pub mod address;
pub mod conditions;
pub mod crd;
pub mod duration;
pub mod reason;
pub mod spec;
pub mod status;
pub mod validate;

pub use duration::DurationString;
pub use spec::*;
pub use status::*;
pub use validate::{FieldError, Policy, ValidationErrors, validate};
