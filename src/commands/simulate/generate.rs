//! `--generate SHAPE`: write a synthetic load trace (to `--out`, or standard output).

use std::io::Write;
use std::time::Duration;

use super::output::write_file;
use super::shared::{command_error, seconds};
use crate::api::duration::format_duration;
use crate::cli::SimulateArgs;
use crate::commands::{CommandError, Outcome};
use crate::simulate::generate::{Generator, Shape};
use crate::simulate::hpa::num;

/// Generates the trace; the note on a written file goes to `notes`.
pub(super) fn run(
    args: &SimulateArgs,
    shape: Shape,
    out: &mut impl Write,
    notes: &mut impl Write,
) -> Result<Outcome, CommandError> {
    let mut g = Generator::new(shape, args.seed.unwrap_or(1));
    if let Some(d) = args.duration {
        g.duration = seconds(d);
    }
    if let Some(s) = args.step {
        g.step = seconds(s);
    }
    if let Some(b) = args.base_load {
        g.base = b;
    }
    if let Some(p) = args.peak_load {
        g.peak = p;
    }
    g.check().map_err(command_error)?;
    let trace = g.generate();
    let csv = trace.to_csv();
    match &args.out {
        Some(path) => {
            write_file(path, csv.as_bytes())?;
            writeln!(
                notes,
                "wrote {}: {} trace, seed {}, {} rows every {}s ({}), {} to {} requests/s",
                path.display(),
                shape.as_str(),
                g.seed,
                trace.rates.len(),
                trace.step,
                format_duration(Duration::from_secs(
                    u64::try_from(trace.duration()).unwrap_or(0)
                )),
                num(g.base),
                num(g.peak)
            )?;
        }
        None => out.write_all(csv.as_bytes())?,
    }
    Ok(Outcome::Success)
}
