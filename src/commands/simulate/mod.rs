//! `scalewise simulate`: what a policy would do with a load trace or with Prometheus history,
//! beside the Kubernetes HPA; or a synthetic trace (`--generate`).
//!
//! One file per mode: [`trace`] (`--trace`: a load trace through the service model), [`backtest`]
//! (`--from`, `--to`: Prometheus history) and [`generate`] (`--generate`: write a synthetic
//! trace). clap has already refused every combination of flags that mixes modes
//! ([`SimulateArgs`]); this module picks the mode; [`shared`] holds what the modes share (the sides
//! compared, exit statuses) and [`output`] what the two simulations write.

mod backtest;
mod generate;
mod output;
mod shared;
mod trace;

use std::io::Write;

pub use backtest::{DEFAULT_BACKTEST_STEP, parse_time};

use shared::usage;

use crate::cli::SimulateArgs;
use crate::commands::{CommandError, Outcome};

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
