//! What the modes of `scalewise simulate` share: the sides compared, the initial replicas, and
//! the exit status of each simulator error.

use std::time::Duration;

use crate::api::Policy;
use crate::cli::{Baseline, SimulateArgs};
use crate::commands::CommandError;
use crate::simulate::hpa::{HpaAutoscaler, HpaSpec};
use crate::simulate::{Autoscaler, ScalewiseAutoscaler, SimulateError};

pub(super) fn usage(message: String) -> CommandError {
    CommandError::Usage(message)
}

/// Maps the simulator's errors to exit statuses: flags, parameters and bindings are usage errors
/// (2), wrong inputs problems (1).
pub(super) fn command_error(e: SimulateError) -> CommandError {
    match e {
        SimulateError::Binding(_) | SimulateError::Parameter(_) | SimulateError::Baseline(_) => {
            CommandError::Usage(e.to_string())
        }
        other => CommandError::Simulate(other),
    }
}

/// One side of the comparison: an autoscaler, with the HPA it runs when it is the baseline.
pub(super) struct Side {
    pub(super) autoscaler: Box<dyn Autoscaler>,
    pub(super) baseline: Option<HpaSpec>,
}

/// The sides to run: the policy, and the baseline when asked for.
/// `first` says of the policy's first metric whether the HPA reads it as a Resource metric
/// (CPU or memory utilization), and its window in seconds.
pub(super) fn sides(
    args: &SimulateArgs,
    policy: &Policy,
    first: Option<(bool, usize)>,
) -> Result<Vec<Side>, CommandError> {
    let mut list = vec![Side {
        autoscaler: Box::new(ScalewiseAutoscaler::new(policy.clone(), "scalewise")),
        baseline: None,
    }];
    if args.compare == Some(Baseline::Hpa) {
        let spec = HpaSpec::for_policy(
            policy,
            first.is_some_and(|(utilization, _)| utilization),
            first.map_or(60, |(_, window)| i64::try_from(window).unwrap_or(i64::MAX)),
        )
        .map_err(command_error)?;
        list.push(Side {
            autoscaler: Box::new(HpaAutoscaler::new(spec.clone())),
            baseline: Some(spec),
        });
    }
    Ok(list)
}

pub(super) fn initial_replicas(args: &SimulateArgs, policy: &Policy) -> Result<i32, CommandError> {
    match args.initial_replicas {
        Some(n) if n < 0 => Err(usage(format!(
            "--initial-replicas must be at least 0, got {n}"
        ))),
        Some(n) => Ok(n),
        None => Ok(policy.min_replicas.max(1)),
    }
}

pub(super) fn seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
