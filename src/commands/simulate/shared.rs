//! What the modes of `scalewise simulate` share: the sides compared, the initial replicas, and
//! the exit status of each simulator error.

use std::time::Duration;

use crate::api::Policy;
use crate::cli::{Baseline, SimulateArgs};
use crate::commands::CommandError;
use crate::simulate::hpa::{HpaAutoscaler, HpaSpec};
use crate::simulate::{Autoscaler, ScalewiseAutoscaler, SimulateError, curve, oracle};

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

/// The sides to run: the policy (labelled `label`), then the HPA when asked for (`--compare hpa`,
/// or `--hpa-target`, which fixes its target), then one HPA per target of `--hpa-sweep`.
/// `first` says of the policy's first metric whether the HPA reads it as a Resource metric
/// (CPU or memory utilization), and its window in seconds.
pub(super) fn sides(
    args: &SimulateArgs,
    policy: &Policy,
    label: &str,
    first: Option<(bool, usize)>,
) -> Result<Vec<Side>, CommandError> {
    let mut list = vec![Side {
        autoscaler: Box::new(ScalewiseAutoscaler::new(policy.clone(), label)),
        baseline: None,
    }];
    let hpa = |spec: HpaSpec, label: String| Side {
        autoscaler: Box::new(HpaAutoscaler::with_label(spec.clone(), label)),
        baseline: Some(spec),
    };
    if let Some(target) = args.hpa_target {
        let spec = HpaSpec::at_cpu_target(policy, target, "--hpa-target");
        list.push(hpa(spec, "hpa".to_owned()));
    } else if args.compare == Some(Baseline::Hpa) {
        let spec = HpaSpec::for_policy(
            policy,
            first.is_some_and(|(utilization, _)| utilization),
            first.map_or(60, |(_, window)| i64::try_from(window).unwrap_or(i64::MAX)),
        )
        .map_err(command_error)?;
        list.push(hpa(spec, "hpa".to_owned()));
    }
    if let Some(sweep) = args.hpa_sweep {
        for target in sweep.targets() {
            let spec = HpaSpec::at_cpu_target(policy, target, "--hpa-sweep");
            list.push(hpa(spec, curve::label(target)));
        }
    }
    Ok(list)
}

/// The policy's row label: its name, unless that is a name the other rows use.
pub(super) fn policy_label(name: &str) -> String {
    if name.is_empty() {
        "policy".to_owned()
    } else if name == "hpa" || name == oracle::LABEL || curve::is_swept(name) {
        format!("{name} (policy)")
    } else {
        name.to_owned()
    }
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
