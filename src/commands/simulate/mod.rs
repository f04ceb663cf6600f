//! `scalewise simulate`: what a policy would do with a load trace or with Prometheus history,
//! beside the Kubernetes HPA; or a synthetic trace (`--generate`).
//!
//! One file per mode: [`trace`] (`--trace`: a load trace through the service model), [`backtest`]
//! (`--from`, `--to`: Prometheus history) and [`generate`] (`--generate`: write a synthetic
//! trace). clap has already refused every combination of flags that mixes modes
//! ([`SimulateArgs`]); this module picks the mode and holds what the two simulations share:
//! the sides compared ([`Side`]) and their outputs ([`output`]).

mod backtest;
mod generate;
mod output;
mod trace;

use std::io::Write;
use std::time::Duration;

pub use backtest::{DEFAULT_BACKTEST_STEP, parse_time};

use super::{CommandError, Outcome};
use crate::api::Policy;
use crate::cli::{Baseline, SimulateArgs};
use crate::simulate::hpa::{HpaAutoscaler, HpaSpec};
use crate::simulate::{Autoscaler, ScalewiseAutoscaler, SimulateError};

/// Runs `simulate`: writes a trace with `--generate`, else simulates a trace (`--trace`) or
/// backtests history (`--from`, `--to`). Summaries go to `out`; notes on written files to `notes`.
pub fn run(
    args: &SimulateArgs,
    out: &mut impl Write,
    notes: &mut impl Write,
) -> Result<Outcome, CommandError> {
    if let Some(shape) = args.generate {
        return generate::run(args, shape, out, notes);
    }
    output::check_plot_name(args)?;
    // clap requires --policy without --generate, and exactly one mode.
    let Some(policy) = args.policy.as_deref() else {
        return Err(usage("--policy FILE is required".into()));
    };
    match (&args.trace, &args.from, &args.to) {
        (Some(trace), _, _) => trace::run(args, policy, trace, out, notes),
        (None, Some(from), Some(to)) => backtest::run(args, policy, from, to, out, notes),
        _ => Err(usage(
            "give --trace FILE, --from TIME --to TIME or --generate SHAPE".into(),
        )),
    }
}

fn usage(message: String) -> CommandError {
    CommandError::Usage(message)
}

/// Maps the simulator's errors to exit statuses: flags, parameters and bindings are usage errors
/// (2), wrong inputs problems (1).
fn command_error(e: SimulateError) -> CommandError {
    match e {
        SimulateError::Binding(_) | SimulateError::Parameter(_) | SimulateError::Baseline(_) => {
            CommandError::Usage(e.to_string())
        }
        other => CommandError::Invalid(other.to_string()),
    }
}

/// One side of the comparison: an autoscaler, with the HPA it runs when it is the baseline.
struct Side {
    autoscaler: Box<dyn Autoscaler>,
    baseline: Option<HpaSpec>,
}

/// The sides to run: the policy, and the baseline when asked for.
/// `first` says of the policy's first metric whether the HPA reads it as a Resource metric
/// (CPU or memory utilization), and its window in seconds.
fn sides(
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

fn initial_replicas(args: &SimulateArgs, policy: &Policy) -> Result<i32, CommandError> {
    match args.initial_replicas {
        Some(n) if n < 0 => Err(usage(format!(
            "--initial-replicas must be at least 0, got {n}"
        ))),
        Some(n) => Ok(n),
        None => Ok(policy.min_replicas.max(1)),
    }
}

fn seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
